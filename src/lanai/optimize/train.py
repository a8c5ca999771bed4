"""The training loop shared by distillation and post-pruning fine-tuning.

The loss is knowledge distillation (Hinton et al., 2015): with a teacher, ``alpha`` of it is the
KL divergence between the temperature-softened teacher and student distributions (scaled by T², so
its gradients keep their size as T changes), and ``1 - alpha`` the cross-entropy with the true
classes; without labels it is the distillation term alone, without a teacher the cross-entropy alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lanai.errors import OptimizeError
from lanai.optimize.data import Dataset

__all__ = ["TrainConfig", "fit", "Progress"]

Progress = Callable[[str, int, int, str], None]
"""``progress(what, done, total, note)``: called after every epoch."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    temperature: float = 4.0
    alpha: float = 0.7
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.lr <= 0 or self.batch_size < 1 or self.temperature <= 0:
            raise OptimizeError("train", f"invalid training settings: {self}.", hint="epochs, lr, batch size > 0.")
        if not 0.0 <= self.alpha <= 1.0:
            raise OptimizeError("train", f"alpha is {self.alpha}; it weighs two losses, so 0 ≤ alpha ≤ 1.")


def fit(
    student: Any,
    data: Dataset,
    config: TrainConfig,
    *,
    teacher: Any = None,
    what: str = "train",
    progress: Progress | None = None,
) -> list[float]:
    """Train ``student`` in place on ``data``; return the mean loss of every epoch."""
    import torch
    import torch.nn.functional as F

    if teacher is None and not data.labelled:
        raise OptimizeError(what, "training without a teacher needs labelled samples (y).")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32))
    y = None if data.y is None else torch.from_numpy(data.y)
    soft = None
    if teacher is not None:
        teacher.eval()
        with torch.no_grad():
            soft = torch.cat([teacher(x[i : i + 256]) for i in range(0, len(x), 256)])
    optimiser = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.epochs)
    t = config.temperature
    alpha = config.alpha if (soft is not None and y is not None) else (1.0 if soft is not None else 0.0)
    losses = []
    for epoch in range(config.epochs):
        student.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), config.batch_size):
            index = order[start : start + config.batch_size]
            logits = student(x[index])
            loss = torch.zeros(())
            if alpha > 0 and soft is not None:
                kd = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(soft[index] / t, 1), reduction="batchmean")
                loss = loss + alpha * kd * t * t
            if alpha < 1 and y is not None:
                loss = loss + (1 - alpha) * F.cross_entropy(logits, y[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(index)
        schedule.step()
        losses.append(total / len(x))
        if progress is not None:
            progress(what, epoch + 1, config.epochs, f"loss {losses[-1]:.4f}")
    student.eval()
    return losses
