"""Structured channel pruning that makes the model physically smaller, then a short fine-tune.

Unlike ``torch.nn.utils.prune`` (which multiplies weights by a mask and saves nothing), whole output
channels of convolutions and linear layers are removed, together with everything that depends on them
(the next layer's input channels, batch-norm statistics, residual partners), so the exported graph has
fewer FLOPs and fewer weights. The dependency analysis is torch-pruning's (DepGraph, CVPR 2023); the
channels that go are those of smallest L2 norm. The classifier's output layer is never pruned.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from lanai.errors import OptimizeError
from lanai.optimize.data import Dataset
from lanai.optimize.train import Progress, TrainConfig, fit

__all__ = ["prune"]


def prune(
    model: Any,
    ratio: float,
    train: Dataset | None,
    config: TrainConfig,
    *,
    progress: Progress | None = None,
) -> Any:
    """A copy of ``model`` with ``ratio`` of its prunable channels removed, fine-tuned on ``train`` with
    the unpruned model as its teacher (no fine-tune without training data)."""
    import torch

    try:
        import torch_pruning as tp
    except ImportError:
        raise OptimizeError("prune", "torch-pruning is not installed.", hint="pip install 'lanai[optimize]'") from None
    if not 0.0 < ratio < 1.0:
        raise OptimizeError("prune", f"the ratio is {ratio}; it is the share of channels to remove.", hint="e.g. 0.5")
    if isinstance(model, torch.jit.ScriptModule):
        raise OptimizeError(
            "prune",
            "a TorchScript model cannot be restructured.",
            hint="give the model as package.module:factory with --weights.",
        )
    if train is None:
        raise OptimizeError("prune", "pruning needs training samples (--train) to trace and fine-tune the model.")
    sample = train.x[:1]
    pruned = copy.deepcopy(model).eval()
    example = torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32))
    ignored = _output_layers(pruned)
    try:
        pruner = tp.pruner.MetaPruner(
            pruned,
            example,
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=ratio,
            ignored_layers=ignored,
        )
        pruner.step()
    except Exception as exc:
        raise OptimizeError(
            "prune",
            f"the model's structure could not be pruned: {exc}".split("\n")[0],
            hint="prune fewer layers, or skip --prune for this model.",
        ) from exc
    fit(pruned, train, config, teacher=model, what="prune", progress=progress)
    return pruned


def _output_layers(model: Any) -> list[Any]:
    """The last Linear or Conv layer: its outputs are the classes, which must all stay."""
    import torch

    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    return layers[-1:]
