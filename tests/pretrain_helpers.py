"""Real photos for the pretraining tests, and the tiny recipe they train with.

The photos are scikit-image's bundled colour pictures, cut into small JPEG tiles so that decoding stays
cheap; the recipe keeps the paper's shape (2 large + 4 small crops, constrained, AutoAugment on every
crop but the key, the NN loss) at 32 / 16 px on ResNet-18 with a 32-key queue.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data

from dense_retrieval.data.images import write_image

PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "hubble_deep_field")
TINY_RECIPE = (
    "--preset", "ours-cpu", "--large-size", "32", "--small-size", "16", "--queue-size", "32",
    "--nn-topk", "4", "--batch-size", "8",
)  # fmt: skip


def write_photos(folder: Path, count: int, size: int = 96, seed: int = 0) -> list[Path]:
    """``count`` JPEG tiles of ``size`` x ``size`` cut at random places from the bundled photos."""
    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        photo = photos[index % len(photos)]
        top = int(rng.integers(0, photo.shape[0] - size))
        left = int(rng.integers(0, photo.shape[1] - size))
        path = folder / f"photo_{index:03d}.jpg"
        write_image(path, np.ascontiguousarray(photo[top : top + size, left : left + size, :3]))
        paths.append(path)
    return paths
