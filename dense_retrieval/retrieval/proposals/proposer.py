"""The Proposer: masks of one image by the configured method, with counts of what was dropped."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import DataFormatError, InputError
from .clustering import kmeans_masks, superpixel_masks
from .config import ProposalConfig
from .files import CocoProposals, gt_masks, resize_masks, saliency_masks


@dataclass
class ImageProposals:
    """The kept masks of one image.

    Attributes:
        image: the image file.
        masks: bool [K, H, W] at the working image size.
        labels: K class ids where the method knows them (gt, coco), else None each.
        method: the proposal method.
        weights: float32 [K, H, W] soft pooling weights where the method has them (``saliency``: the
            saliency value inside the mask, 0 outside); None otherwise.
    """

    image: Path
    masks: np.ndarray
    labels: list[int | None]
    method: str
    weights: np.ndarray | None = None


@dataclass
class ProposalStats:
    """Counts over every image seen: nothing is dropped silently."""

    images: int = 0
    kept: int = 0
    dropped_empty: int = 0
    dropped_small: int = 0
    images_without_masks: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class Proposer:
    """Makes the masks of one image by ``config.method`` and keeps the counts."""

    def __init__(self, config: ProposalConfig):
        self.config = config
        self.stats = ProposalStats()
        self._coco = CocoProposals(config.coco_json) if config.method == "coco" else None

    @property
    def needs_features(self) -> bool:
        """True when the method works on the dense features (kmeans)."""
        return self.config.method == "kmeans"

    def check_images(self, images: list[Path]) -> None:
        """Fail early when the method's files do not match ``images`` (COCO: every JSON image given)."""
        if self._coco is not None:
            self._coco.check_images(images)

    def __call__(
        self,
        image_path: str | os.PathLike,
        image: np.ndarray,
        features: torch.Tensor | None = None,
        native_size: tuple[int, int] | None = None,
        resize: Callable[[np.ndarray, tuple[int, int]], np.ndarray] | None = None,
    ) -> ImageProposals:
        """Masks of one image.

        Args:
            image_path: the image file (masks in files are found by its name).
            image: uint8 [H, W, 3], the image at the working size.
            features: float [C, h, w] of ``image`` (kmeans only).
            native_size: (H0, W0) of the file on disk when ``image`` was resized; masks read from
                files must have this size and are resized to (H, W).
            resize: how one mask [H0, W0] (bool or float32) is resized to (H, W): the label filter of the
                preprocessing recipe (:meth:`Preprocessing.resize_labels`); default PIL nearest.

        Returns:
            The kept masks (empty and tiny ones dropped and counted).
        """
        path = Path(image_path)
        size = tuple(image.shape[:2])
        native = tuple(native_size) if native_size is not None else size
        cfg = self.config
        weights = None
        if cfg.method == "kmeans":
            if features is None:
                raise InputError("k-means proposals need the image's features")
            masks = kmeans_masks(features, size, clusters=cfg.clusters, seed=cfg.seed).cpu().numpy()
            labels: list[int | None] = [None] * len(masks)
        elif cfg.method == "superpixels":
            masks = superpixel_masks(image, cfg.superpixels, cfg.felzenszwalb_scale, cfg.slic_segments)
            labels = [None] * len(masks)
        else:
            if cfg.method == "gt":
                masks, labels = gt_masks(path, native, cfg.gt_root, cfg.gt_kind, cfg.include_background)
            elif cfg.method == "saliency":
                masks, labels, weights = saliency_masks(path, native, cfg.saliency_dir, cfg.saliency_threshold)
            else:
                masks, labels = self._coco.masks(path, native)
            if native != size:
                masks = _resize_each(masks, size, resize)
                weights = None if weights is None else _resize_each(weights, size, resize)
        return self._filter(path, masks, labels, weights)

    def _filter(
        self, path: Path, masks: np.ndarray, labels: list[int | None], weights: np.ndarray | None = None
    ) -> ImageProposals:
        if masks.ndim != 3:
            raise DataFormatError(f"proposals for {path} are not [K, H, W] masks: shape {masks.shape}")
        areas = masks.reshape(len(masks), -1).sum(1) if len(masks) else np.zeros(0, dtype=np.int64)
        empty = areas == 0
        small = ~empty & (areas < self.config.min_area)
        keep = ~(empty | small)
        stats = self.stats
        stats.images += 1
        stats.kept += int(keep.sum())
        stats.dropped_empty += int(empty.sum())
        stats.dropped_small += int(small.sum())
        stats.images_without_masks += int(not keep.any())
        kept_labels = [label for label, k in zip(labels, keep, strict=True) if k]
        kept_weights = None if weights is None else weights[keep]
        return ImageProposals(path, masks[keep].astype(bool), kept_labels, self.config.method, kept_weights)


def _resize_each(
    masks: np.ndarray, size: tuple[int, int], resize: Callable[[np.ndarray, tuple[int, int]], np.ndarray] | None
) -> np.ndarray:
    """[K, H0, W0] masks or weights -> [K, H, W] by ``resize`` (one mask at a time), or PIL nearest."""
    if resize is None:
        return resize_masks(masks, size)
    return np.stack([resize(mask, size) for mask in masks]) if len(masks) else np.zeros((0, *size), masks.dtype)
