"""Make the digits example's data and teacher: train/validation sets, labels, PNG images, trained weights.

    python examples/digits/prepare.py OUT_DIR

writes ``train.npz`` and ``val.npz`` (x: [N, 1, 8, 8] float32 pixel / 255, y: class), ``labels.txt``,
``val-images/<digit>/<n>.png`` (the validation digits as 8×8 grey PNGs, what a client would send) and
``teacher.pt`` (the teacher's state dict after training on the training split only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models import teacher  # noqa: E402

LABELS = [str(d) for d in range(10)]


def digits_pixels() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits as uint8 grey pixels [N, 8, 8] (0..16 scaled to 0..255), and classes."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    return pixels, digits.target.astype(np.int64)


def split(pixels: np.ndarray, classes: np.ndarray, seed: int = 0) -> tuple[np.ndarray, ...]:
    """80 / 20, stratified, fixed seed."""
    from sklearn.model_selection import train_test_split

    return tuple(train_test_split(pixels, classes, test_size=0.2, random_state=seed, stratify=classes))


def to_samples(pixels: np.ndarray) -> np.ndarray:
    return (pixels[:, np.newaxis].astype(np.float32) / 255.0).astype(np.float32)


def train_teacher(x: np.ndarray, y: np.ndarray, epochs: int = 40, seed: int = 0):  # type: ignore[no-untyped-def]
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    model = teacher()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), 64):
            index = order[start : start + 64]
            loss = F.cross_entropy(model(xt[index]), yt[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
    return model.eval()


def prepare(out: Path) -> None:
    import torch
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    pixels, classes = digits_pixels()
    train_px, val_px, train_y, val_y = split(pixels, classes)
    np.savez(out / "train.npz", x=to_samples(train_px), y=train_y)
    np.savez(out / "val.npz", x=to_samples(val_px), y=val_y)
    (out / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    for n, (image, cls) in enumerate(zip(val_px, val_y)):
        folder = out / "val-images" / str(cls)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{n:03d}.png")
    model = train_teacher(to_samples(train_px), train_y)
    torch.save(model.state_dict(), out / "teacher.pt")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    prepare(parser.parse_args().out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
