"""Two convolutional classifiers for scikit-learn's 8×8 digits: a teacher and a student a quarter its size.

Input: [N, 1, 8, 8] float32 grey pixels scaled to 0..1 (pixel / 255). Output: [N, 10] logits.
"""

from __future__ import annotations

from torch import nn


def _block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return layers + [nn.MaxPool2d(2)] if pool else layers


def _net(widths: tuple[int, int, int], hidden: int) -> nn.Sequential:
    a, b, c = widths
    return nn.Sequential(
        *_block(1, a, pool=False),
        *_block(a, b, pool=True),  # 4×4
        *_block(b, c, pool=True),  # 2×2
        nn.Flatten(),
        nn.Linear(c * 4, hidden),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(hidden, 10),
    )


def teacher() -> nn.Sequential:
    """About 160,000 parameters."""
    return _net((32, 64, 128), 128)


def student() -> nn.Sequential:
    """About 40,000 parameters."""
    return _net((16, 32, 64), 64)
