"""Knowledge distillation: train a smaller student to imitate the teacher (see ``train`` for the loss)."""

from __future__ import annotations

from typing import Any

from lanai.errors import OptimizeError
from lanai.optimize.data import Dataset
from lanai.optimize.export import load_factory
from lanai.optimize.train import Progress, TrainConfig, fit

__all__ = ["distill"]


def distill(
    teacher: Any, student: str, train: Dataset | None, config: TrainConfig, *, progress: Progress | None = None
) -> Any:
    """A new model from the factory ``student`` (``package.module:function``), trained against ``teacher``."""
    import torch

    if train is None:
        raise OptimizeError("distil", "distillation needs training samples.", hint="pass --train FILE.npz or FOLDER.")
    torch.manual_seed(config.seed)  # the student's initial weights
    model = load_factory(student)()
    if not isinstance(model, torch.nn.Module):
        raise OptimizeError("distil", f"{student} returned {type(model).__name__}, not a torch.nn.Module.")
    fit(model, train, config, teacher=teacher, what="distil", progress=progress)
    return model
