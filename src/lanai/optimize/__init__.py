"""``lanai optimize``: from a trained PyTorch or ONNX model to a smaller, faster edge model, with its
accuracy measured after every step. Needs the ``optimize`` extra (torch, torch-pruning, onnx, matplotlib)
for PyTorch models and charts; ONNX-only runs need onnx alone.

The names below import on first use, so ``lanai --help`` stays instant.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["optimize", "Plan", "DistilStep", "PruneStep", "QuantizeConfig", "TrainConfig", "Outcome"]

_HOMES = {
    "optimize": "pipeline",
    "Plan": "pipeline",
    "DistilStep": "pipeline",
    "PruneStep": "pipeline",
    "Outcome": "pipeline",
    "QuantizeConfig": "quantize",
    "TrainConfig": "train",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'lanai.optimize' has no attribute {name!r}")
    return getattr(import_module(f"lanai.optimize.{_HOMES[name]}"), name)
