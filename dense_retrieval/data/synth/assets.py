"""Textures and shapes for the synthetic datasets: real photo crops from scikit-image's bundled images.

Each synthetic class takes its texture from a region of a real photograph (so an ImageNet-pretrained
network sees fur, a space suit, a motorbike...) and has a silhouette of its own. Backgrounds come from
other photos (brick, gravel, moon, coins, tissue, text). Everything is read from files that ship with
scikit-image; nothing is downloaded.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from skimage import data as skdata
from skimage import draw


@dataclass(frozen=True)
class SynthClass:
    """One object class of the synthetic sets.

    Attributes:
        name: the VOC class name.
        voc_id: the VOC class id (label value in VOC class PNGs).
        source: the scikit-image photo the texture is cut from.
        region: (top, bottom, left, right) of the photo that shows the object.
        aspect: height / width of the silhouette's bounding box.
        tint: RGB gains applied to a grayscale source (None for colour photos).
    """

    name: str
    voc_id: int
    source: str
    region: tuple[int, int, int, int]
    aspect: float
    tint: tuple[float, float, float] | None = None


SYNTH_CLASSES: tuple[SynthClass, ...] = (
    SynthClass("aeroplane", 1, "rocket", (40, 427, 120, 540), 0.55),
    SynthClass("bottle", 5, "coffee", (10, 390, 70, 490), 2.2),
    SynthClass("car", 7, "stereo_motorcycle", (110, 460, 80, 700), 0.55),
    SynthClass("cat", 8, "chelsea", (0, 300, 40, 430), 0.8),
    SynthClass("person", 15, "astronaut", (10, 512, 40, 350), 2.0),
    SynthClass("pottedplant", 16, "grass", (0, 512, 0, 512), 1.2, tint=(0.55, 1.0, 0.4)),
)
"""The classes, in VOC id order. pottedplant (16) lies outside the MaskContrast 7-class subset."""

BACKGROUNDS: tuple[str, ...] = ("brick", "gravel", "moon", "coins", "immunohistochemistry", "page")
"""Photos used as backgrounds; grayscale ones get a random muted tint."""

_MUTED_TINTS = ((1.0, 0.92, 0.8), (0.85, 0.9, 1.0), (0.95, 0.95, 0.95), (0.9, 1.0, 0.88), (1.0, 0.86, 0.86))


@functools.cache
def photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo as ``uint8 [H, W, 3]`` (grayscale replicated to 3 channels)."""
    image = skdata.stereo_motorcycle()[0] if name == "stereo_motorcycle" else getattr(skdata, name)()
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3]
    image.setflags(write=False)
    return image


def crop_texture(
    rng: np.random.Generator,
    source: np.ndarray,
    region: tuple[int, int, int, int],
    size: tuple[int, int],
    min_scale: float = 0.6,
    tint: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """A random crop of ``source[region]`` with the aspect of ``size``, resized to ``size``.

    Args:
        rng: the random generator (crop scale, position, flip, brightness).
        source: uint8 [H, W, 3] photo.
        region: (top, bottom, left, right) the crop must stay inside.
        size: (h, w) of the output.
        min_scale: smallest crop side as a fraction of the largest crop that fits the region.
        tint: RGB gains for grayscale sources.

    Returns:
        uint8 [h, w, 3].
    """
    top, bottom, left, right = region
    height, width = size
    region_h, region_w = bottom - top, right - left
    aspect = height / width
    crop_w = min(region_w, region_h / aspect)
    crop_w *= rng.uniform(min_scale, 1.0)
    crop_h = max(int(round(crop_w * aspect)), 1)
    crop_w = max(int(round(crop_w)), 1)
    y = top + int(rng.integers(0, region_h - crop_h + 1))
    x = left + int(rng.integers(0, region_w - crop_w + 1))
    crop = source[y : y + crop_h, x : x + crop_w]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    interpolation = cv2.INTER_AREA if crop_h > height else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=interpolation).astype(np.float32)
    gains = np.asarray(tint if tint is not None else (1.0, 1.0, 1.0), dtype=np.float32)
    out *= gains * rng.uniform(0.88, 1.12)
    return np.clip(out, 0, 255).astype(np.uint8)


def object_texture(rng: np.random.Generator, spec: SynthClass, size: tuple[int, int]) -> np.ndarray:
    """A texture ``uint8 [h, w, 3]`` for one object of class ``spec``.

    A random crop of the class's photo region with a random hue shift (up to 30 degrees) and saturation
    change, so that colour alone does not give the class away: a network must recognise the texture.
    """
    texture = crop_texture(rng, photo(spec.source), spec.region, size, tint=spec.tint)
    return colour_jitter(rng, texture)


def colour_jitter(
    rng: np.random.Generator,
    image: np.ndarray,
    hue_degrees: float = 30.0,
    saturation: tuple[float, float] = (0.6, 1.3),
) -> np.ndarray:
    """Rotate the hue of ``image`` (uint8 [H, W, 3] RGB) by a random angle within +-``hue_degrees`` and
    scale its saturation by a random factor in ``saturation``."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-hue_degrees, hue_degrees) / 2) % 180  # OpenCV hue: 0..180
    hsv[..., 1] *= rng.uniform(*saturation)
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)


def background_texture(rng: np.random.Generator, name: str, size: tuple[int, int]) -> np.ndarray:
    """A background ``uint8 [h, w, 3]`` cut from photo ``name``, grayscale photos tinted."""
    source = photo(name)
    grayscale = bool(np.array_equal(source[..., 0], source[..., 1]))
    tint = _MUTED_TINTS[int(rng.integers(len(_MUTED_TINTS)))] if grayscale else None
    return crop_texture(rng, source, (0, source.shape[0], 0, source.shape[1]), size, min_scale=0.5, tint=tint)


def shape_mask(name: str, size: tuple[int, int]) -> np.ndarray:
    """The silhouette of class ``name`` filling a box of ``size`` = (h, w): ``bool [h, w]``.

    Silhouettes are drawn from unit-square polygons and ellipses, so they stay crisp at any size.
    """
    height, width = size
    mask = np.zeros((height, width), dtype=bool)
    for kind, params in _SHAPES[name]:
        if kind == "poly":
            xs = np.array([p[0] for p in params]) * (width - 1)
            ys = np.array([p[1] for p in params]) * (height - 1)
            rr, cc = draw.polygon(ys, xs, shape=mask.shape)
        else:
            cx, cy, rx, ry = params
            rr, cc = draw.ellipse(
                cy * (height - 1),
                cx * (width - 1),
                max(ry * height, 0.5),
                max(rx * width, 0.5),
                shape=mask.shape,
            )
        mask[rr, cc] = True
    return mask


# Silhouettes in unit coordinates (x right, y down): ("poly", [(x, y), ...]) or ("ellipse", (cx, cy, rx, ry)).
_SHAPES: dict[str, list[tuple[str, object]]] = {
    "aeroplane": [
        ("ellipse", (0.5, 0.5, 0.5, 0.11)),
        ("poly", [(0.42, 0.5), (0.62, 0.5), (0.44, 1.0), (0.32, 1.0)]),
        ("poly", [(0.42, 0.5), (0.62, 0.5), (0.44, 0.0), (0.32, 0.0)]),
        ("poly", [(0.0, 0.5), (0.03, 0.18), (0.12, 0.18), (0.2, 0.5)]),
    ],
    "bottle": [
        ("poly", [(0.12, 0.42), (0.88, 0.42), (0.88, 1.0), (0.12, 1.0)]),
        ("ellipse", (0.5, 0.42, 0.38, 0.12)),
        ("poly", [(0.36, 0.06), (0.64, 0.06), (0.64, 0.4), (0.36, 0.4)]),
        ("poly", [(0.32, 0.0), (0.68, 0.0), (0.68, 0.08), (0.32, 0.08)]),
    ],
    "car": [
        (
            "poly",
            [
                (0.0, 0.42),
                (0.2, 0.38),
                (0.32, 0.05),
                (0.72, 0.05),
                (0.84, 0.38),
                (1.0, 0.45),
                (1.0, 0.8),
                (0.0, 0.8),
            ],
        ),
        ("ellipse", (0.22, 0.8, 0.11, 0.2)),
        ("ellipse", (0.78, 0.8, 0.11, 0.2)),
    ],
    "cat": [
        ("ellipse", (0.42, 0.66, 0.4, 0.3)),
        ("ellipse", (0.72, 0.36, 0.22, 0.24)),
        ("poly", [(0.54, 0.3), (0.58, 0.0), (0.7, 0.2)]),
        ("poly", [(0.76, 0.2), (0.88, 0.0), (0.92, 0.3)]),
        ("poly", [(0.06, 0.66), (0.0, 0.22), (0.07, 0.2), (0.14, 0.6)]),
    ],
    "person": [
        ("ellipse", (0.5, 0.12, 0.2, 0.11)),
        ("poly", [(0.2, 0.24), (0.8, 0.24), (0.94, 0.62), (0.06, 0.62)]),
        ("poly", [(0.22, 0.6), (0.48, 0.6), (0.46, 1.0), (0.26, 1.0)]),
        ("poly", [(0.52, 0.6), (0.78, 0.6), (0.74, 1.0), (0.54, 1.0)]),
    ],
    "pottedplant": [
        ("ellipse", (0.5, 0.34, 0.48, 0.33)),
        ("ellipse", (0.3, 0.2, 0.25, 0.2)),
        ("ellipse", (0.72, 0.22, 0.25, 0.2)),
        ("poly", [(0.24, 0.6), (0.76, 0.6), (0.68, 1.0), (0.32, 1.0)]),
    ],
}
