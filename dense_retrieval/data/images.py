"""Reading and writing RGB images; listing image folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataFormatError, InputError
from .atomic import atomic_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``uint8 [H, W, 3]`` RGB. Truncated or corrupt files raise DataFormatError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}", hint="check the path")
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataFormatError(f"unreadable image {path}: {error}", hint="re-download or re-export the file") from None


def write_image(path: str | os.PathLike, rgb: np.ndarray, quality: int = 92) -> None:
    """Write ``uint8 [H, W, 3]`` atomically; the format follows the suffix (JPEG quality ``quality``)."""
    path = Path(path)
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name. Raises InputError if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}", hint="pass a folder of images")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise InputError(f"no images in {folder}", hint=f"expected files ending in {', '.join(IMAGE_SUFFIXES)}")
    return paths


def collect_images(inputs: list[str | os.PathLike]) -> list[Path]:
    """Expand a mix of image files and folders into a sorted list of image paths."""
    paths: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            paths.extend(list_images(item))
        elif item.is_file():
            paths.append(item)
        else:
            raise InputError(f"no such file or folder: {item}", hint="check the path")
    return paths
