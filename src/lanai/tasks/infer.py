"""The infer task: named tensors in, named tensors out, as the model takes and gives them.

Its door is the Open Inference Protocol (REST and gRPC), which already says how tensors travel, so it
has no endpoint of its own.
"""

from __future__ import annotations

from lanai.tasks.base import NoParams, Task

__all__ = ["TASK"]


class Infer(Task[NoParams, NoParams]):
    name = "infer"
    summary = "Run the model on tensors"
    kind = "tensor"
    accepts = "tensors"
    backends = ("onnx", "litert", "hailo")
    params = NoParams


TASK = Infer()
