"""Labelled (or unlabelled) sample sets for training, calibration and validation.

Two forms on disk:

- an ``.npz`` file with an array ``x`` (samples, in the model's input layout and dtype) and, for a
  labelled set, an integer array ``y``;
- a folder of images, turned into tensors with the model's preprocessing: one sub-folder per class
  (named after a label in the labels file, or after its index), or images directly in the folder for
  an unlabelled set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lanai.errors import LanaiError, OptimizeError
from lanai.tasks.image import image_to_tensor
from lanai.types import ImagePreprocess

__all__ = ["Dataset", "load_dataset"]

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


@dataclass(frozen=True)
class Dataset:
    """Samples ``x`` (batch axis first) and, when labelled, their classes ``y``."""

    x: np.ndarray
    y: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.x.ndim < 1 or len(self.x) == 0:
            raise OptimizeError("data", f"{self.source or 'the data set'} has no samples.")
        if self.y is not None and (self.y.ndim != 1 or len(self.y) != len(self.x)):
            raise OptimizeError(
                "data",
                f"{self.source}: y has shape {list(self.y.shape)} but x has {len(self.x)} samples.",
                hint="give one integer class per sample.",
            )

    def __len__(self) -> int:
        return len(self.x)

    @property
    def labelled(self) -> bool:
        return self.y is not None

    def head(self, count: int) -> Dataset:
        """The first ``count`` samples."""
        return Dataset(self.x[:count], None if self.y is None else self.y[:count], self.source)


def load_dataset(path: Path, preprocess: ImagePreprocess | None = None, labels: Sequence[str] = ()) -> Dataset:
    """Read an ``.npz`` file or an image folder (see the module's docstring)."""
    path = Path(path)
    if not path.exists():
        raise OptimizeError("data", f"{path} does not exist.", hint="give an .npz file or a folder of images.")
    if path.is_dir():
        if preprocess is None:
            raise OptimizeError(
                "data",
                f"{path} is a folder of images, and no preprocessing is known to turn them into tensors.",
                hint="pass --preprocess (e.g. resize=256,crop=224,mean=127,std=128).",
            )
        return _image_folder(path, preprocess, labels)
    if path.suffix != ".npz":
        raise OptimizeError("data", f"{path} is neither an .npz file nor a folder.", hint="see lanai optimize --help.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise OptimizeError("data", f"{path} is not a readable .npz file ({exc}).") from exc
    if "x" not in arrays:
        raise OptimizeError(
            "data",
            f"{path} has no array named 'x' (it has: {', '.join(arrays) or 'none'}).",
            hint="save it with np.savez(path, x=samples, y=classes).",
        )
    y = arrays.get("y")
    if y is not None and not np.issubdtype(y.dtype, np.integer):
        raise OptimizeError("data", f"{path}: y holds {y.dtype}, not integer classes.", hint="save y as integers.")
    return Dataset(arrays["x"], None if y is None else y.astype(np.int64), str(path))


def _image_folder(path: Path, preprocess: ImagePreprocess, labels: Sequence[str]) -> Dataset:
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if not classes:
        files = _images(path)
        return Dataset(_tensors(files, preprocess), None, str(path))
    index = {label: i for i, label in enumerate(labels)}
    xs, ys = [], []
    for folder in classes:
        if folder.name in index:
            cls = index[folder.name]
        elif folder.name.isdigit():
            cls = int(folder.name)
        elif not labels:
            cls = classes.index(folder)
        else:
            raise OptimizeError(
                "data",
                f"{folder} is named after no label in the labels file.",
                hint="name each class folder after its label, or after its index.",
            )
        files = _images(folder)
        xs.append(_tensors(files, preprocess))
        ys.extend([cls] * len(files))
    return Dataset(np.concatenate(xs), np.asarray(ys, dtype=np.int64), str(path))


def _images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise OptimizeError("data", f"{folder} holds no images ({', '.join(sorted(_IMAGE_SUFFIXES))}).")
    return files


def _tensors(files: Sequence[Path], preprocess: ImagePreprocess) -> np.ndarray:
    tensors = []
    for file in files:
        try:
            tensors.append(image_to_tensor(file.read_bytes(), preprocess))
        except LanaiError as exc:
            raise OptimizeError("data", f"{file}: {exc}", hint="remove or replace that file.") from exc
    return np.concatenate(tensors)
