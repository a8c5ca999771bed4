"""Object detection's parts: the output decoders of the common detector families, letterbox geometry,
and per-class NMS. The ``detect`` task (``lanai.tasks.detect``) puts them together.

A model's decoder is chosen when it is added (``lanai models add … --task detect``, or ``--option
decoder=NAME``) and recorded in its manifest's backend options; see :func:`choose_decoder`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lanai.errors import ModelLoadError
from lanai.tasks.detection.base import Decoder
from lanai.tasks.detection.gfl import Gfl
from lanai.tasks.detection.retinaface import RetinaFace
from lanai.tasks.detection.ssd import TfObjectDetection
from lanai.tasks.detection.yolo import YoloV5, YoloV8
from lanai.types import TensorSpec

__all__ = ["DECODERS", "Decoder", "choose_decoder"]

DECODERS: dict[str, Decoder] = {d.name: d for d in (YoloV8(), YoloV5(), TfObjectDetection(), RetinaFace(), Gfl())}


def _shapes(outputs: Sequence[TensorSpec]) -> str:
    return ", ".join(f"{spec.name} {list(spec.shape)}" for spec in outputs) or "none"


def _families() -> str:
    return "; ".join(f"{d.name}: {d.summary}" for d in DECODERS.values())


def choose_decoder(outputs: Sequence[TensorSpec], options: Mapping[str, Any], classes: int | None = None) -> Decoder:
    """The decoder for a model with ``outputs``: the one named by ``options["decoder"]`` (which must fit),
    else the one family that claims them (``classes``, the labels' count, tells YOLO heads apart).
    ModelLoadError says what is wrong and what to pass instead."""
    named = options.get("decoder")
    if named is not None:
        decoder = DECODERS.get(str(named))
        if decoder is None:
            raise ModelLoadError(f"there is no detector decoder {named!r}.", hint=f"decoders: {', '.join(DECODERS)}.")
        if not decoder.fits(outputs):
            raise ModelLoadError(
                f"the {decoder.name} decoder does not fit a model with outputs {_shapes(outputs)}.",
                hint=f"decoders and the outputs they take: {_families()}.",
            )
        return decoder
    claiming = [d for d in DECODERS.values() if d.claims(outputs, classes)]
    if len(claiming) == 1:
        return claiming[0]
    fitting = [d.name for d in DECODERS.values() if d.fits(outputs)]
    if not fitting:
        raise ModelLoadError(
            f"no detector decoder fits a model with outputs {_shapes(outputs)}.",
            hint=f"decoders and the outputs they take: {_families()}; or add it with --task infer.",
        )
    raise ModelLoadError(
        f"the outputs {_shapes(outputs)} could be decoded as {' or '.join(fitting)}.",
        hint=f"name the family: --option decoder={fitting[0]} (or give --labels, which tells YOLO heads apart).",
    )
