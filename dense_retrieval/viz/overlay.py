"""Label overlays and mask outlines on RGB images."""

from __future__ import annotations

import numpy as np

from ..data.masks import DAVIS_PALETTE


def overlay_labels(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5, outline: bool = True) -> np.ndarray:
    """Blend DAVIS-palette colours of ``labels`` over ``image``.

    Args:
        image: uint8 [H, W, 3] RGB.
        labels: integer [H, W]; 0 is background (left untouched), 255 is void (grey).
        alpha: opacity of the colour on labelled pixels.
        outline: draw each label's boundary in its full colour.

    Returns:
        uint8 [H, W, 3].
    """
    _check_same_size(image, labels)
    labels = labels.astype(np.int64)
    colours = DAVIS_PALETTE[np.clip(labels, 0, 255)].astype(np.float32)
    out = image.astype(np.float32)
    labelled = labels != 0
    out[labelled] = (1 - alpha) * out[labelled] + alpha * colours[labelled]
    if outline:
        edges = label_boundaries(labels) & labelled
        out[edges] = colours[edges]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def masks_to_labels(masks: np.ndarray) -> np.ndarray:
    """One label map from a stack of masks, to draw proposals with :func:`overlay_labels`.

    Args:
        masks: bool [K, H, W] (e.g. ``ImageProposals.masks``); they may overlap.

    Returns:
        uint8 [H, W]: 0 where no mask is, else the id of the last mask covering the pixel (later masks
        win, as in the VOC retrieval protocol). Ids are 1..K; past 254 they wrap to 1 (colours repeat,
        255 stays reserved for void).
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [K, H, W], got shape {masks.shape}")
    labels = np.zeros(masks.shape[1:], dtype=np.uint8)
    for k, mask in enumerate(masks):
        labels[mask] = 1 + k % 254
    return labels


def outline_mask(
    image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (255, 220, 0), thickness: int = 2
) -> np.ndarray:
    """Draw the boundary of a boolean ``mask`` [H, W] on ``image`` uint8 [H, W, 3] in ``colour``."""
    _check_same_size(image, mask)
    edges = label_boundaries(mask.astype(np.int64))
    for _ in range(max(thickness - 1, 0)):
        edges = _dilate4(edges)
    out = image.copy()
    out[edges & _dilate4(mask.astype(bool), times=thickness)] = colour
    return out


def dim_outside(image: np.ndarray, mask: np.ndarray, factor: float = 0.35) -> np.ndarray:
    """Darken ``image`` outside the boolean ``mask`` so the segment stands out."""
    _check_same_size(image, mask)
    out = image.astype(np.float32)
    out[~mask.astype(bool)] *= factor
    return out.astype(np.uint8)


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """Boolean [H, W]: pixels whose 4-neighbour has another label."""
    edges = np.zeros(labels.shape, dtype=bool)
    edges[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edges[1:, :] |= labels[1:, :] != labels[:-1, :]
    edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edges[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    return edges


def _dilate4(mask: np.ndarray, times: int = 1) -> np.ndarray:
    out = mask.copy()
    for _ in range(times):
        grown = out.copy()
        grown[:-1, :] |= out[1:, :]
        grown[1:, :] |= out[:-1, :]
        grown[:, :-1] |= out[:, 1:]
        grown[:, 1:] |= out[:, :-1]
        out = grown
    return out


def _check_same_size(image: np.ndarray, labels: np.ndarray) -> None:
    if image.shape[:2] != labels.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and mask {labels.shape[:2]} differ in size")
