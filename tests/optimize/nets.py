"""Small PyTorch models that the optimize tests load by ``file.py:factory``, as users name theirs."""

from __future__ import annotations

import torch
from torch import nn


class _Spectrum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft(x).real.flatten(1)  # aten::fft_fft has no ONNX form at opset 17


class _Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # [N, 4, 8, 8]: not one score per class


def spectrum() -> nn.Module:
    return _Spectrum()


def embedder() -> nn.Module:
    return _Embedder()


def not_a_module() -> str:
    return "oops"
