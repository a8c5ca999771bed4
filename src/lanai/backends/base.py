"""The contract every backend fulfils, and the options the host hands it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lanai.types import TensorSpec

__all__ = ["Backend", "BackendOptions"]


@dataclass(frozen=True)
class BackendOptions:
    """Runtime settings for a backend; ``extra`` carries the manifest's backend-specific options.

    ``providers`` lists execution providers (or delegates) in priority order; the backend uses the first
    one that loads. ``intra_op_threads`` 0 lets the runtime choose.
    """

    providers: tuple[str, ...] = ("cpu",)
    intra_op_threads: int = 0
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    allow_spinning: bool = False
    """Let idle runtime threads spin instead of sleeping: lower latency, but they burn CPU."""
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """A loaded model on one runtime. ``run`` is called from one worker thread at a time."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    platform: str
    """Open Inference Protocol platform string, e.g. ``onnx_onnxv1``."""
    execution_provider: str
    """The provider or delegate actually running the model, e.g. ``CPUExecutionProvider``."""
    runtime_version: str
    max_batch_size: int
    """1 when the model's batch axis is fixed at 1; 0 when it takes any batch size."""

    @classmethod
    def load(cls, path: Path, options: BackendOptions) -> Backend: ...

    def run(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run one batch; every input has the batch axis first. Releases the GIL while computing."""
        ...

    def close(self) -> None: ...
