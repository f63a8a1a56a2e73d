"""Reading and writing RGB images; listing image folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataFormatError, InputError
from .atomic import atomic_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_MAX_PIXELS = 40_000_000
"""Pixel budget of one decoded image (8K UHD is 33 Mpx); ``$DENSE_RETRIEVAL_MAX_PIXELS`` changes it.
Headers are checked against it before anything is decoded, so a small file that declares a huge
image is refused instead of exhausting memory."""


def pixel_budget() -> int:
    value = os.environ.get("DENSE_RETRIEVAL_MAX_PIXELS")
    return int(value) if value and value.isdigit() and int(value) > 0 else DEFAULT_MAX_PIXELS


def check_pixels(width: int, height: int, what: str) -> None:
    """Refuse an image of ``width`` x ``height`` over the pixel budget (or without pixels)."""
    if width < 1 or height < 1:
        raise DataFormatError(f"{what} is {width}x{height}: no pixels", hint="re-export the file")
    budget = pixel_budget()
    if width * height > budget:
        raise DataFormatError(
            f"{what} is {width}x{height} = {width * height:,} pixels, over the budget of {budget:,} pixels",
            hint="resize it, or raise the budget with DENSE_RETRIEVAL_MAX_PIXELS",
        )


def open_checked(path: Path, what: str) -> Image.Image:
    """``Image.open`` with the header checked against the pixel budget before any decoding."""
    image = Image.open(path)
    try:
        check_pixels(image.size[0], image.size[1], f"{what} {path}")
    except BaseException:
        image.close()
        raise
    return image


DECODERS = ("pil", "opencv")
"""Image decoders: the one a reference script uses is part of its preprocessing (backbone/preprocessing.py)."""


def read_image(path: str | os.PathLike, decoder: str = "pil") -> np.ndarray:
    """Read an image file as ``uint8 [H, W, 3]`` RGB. Truncated or corrupt files raise DataFormatError.

    Args:
        path: the image file.
        decoder: ``"pil"`` (Pillow) or ``"opencv"`` (``cv2.imread`` as CRW's and DINO's scripts call it:
            BGR flipped to RGB, EXIF orientation applied, 16-bit images reduced to 8 bits by OpenCV).

    With ``"pil"``, 16-bit images (PNG/TIFF modes ``I;16*`` and ``I``) are converted explicitly: their full
    range 0..65535 maps linearly onto 0..255 (value / 257, rounded), instead of being clipped at 255.
    Float images (mode ``F``) are refused. Either way the header is checked against the pixel budget first.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}", hint="check the path")
    if decoder not in DECODERS:
        raise InputError(f"unknown image decoder {decoder!r}", hint=f"use one of {', '.join(DECODERS)}")
    try:
        with open_checked(path, "image") as image:
            image.load()  # a truncated or corrupt file fails here, whichever decoder then runs
            if decoder == "opencv":
                return _read_opencv(path)
            if image.mode.startswith("I"):
                values = np.asarray(image, dtype=np.int64)
                if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
                    raise DataFormatError(f"image {path} holds values outside 0..65535", hint="save it as 8 or 16 bit")
                gray = ((values + 128) // 257).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=2)
            if image.mode == "F":
                raise DataFormatError(f"image {path} holds floating-point pixels", hint="save it as 8-bit RGB")
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataFormatError(f"unreadable image {path}: {error}", hint="re-download or re-export the file") from None


def _read_opencv(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataFormatError(f"unreadable image {path}: OpenCV cannot decode it", hint="re-export the file")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def check_utf8_name(path: Path) -> Path:
    """Names end up in JSON and SQLite: refuse one that is not valid UTF-8, naming it."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = repr(os.fsencode(path))[1:]
        raise InputError(f"file name {shown} is not valid UTF-8", hint="rename the file") from None
    return path


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
    paths = sorted(check_utf8_name(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
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
            paths.append(check_utf8_name(item))
        else:
            raise InputError(f"no such file or folder: {item}", hint="check the path")
    return paths
