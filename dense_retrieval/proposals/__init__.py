"""Mask proposals: boolean masks per image, from ground truth, COCO files, features, pixels or saliency.

Methods (``ProposalConfig.method``):

- ``gt``: VOC ``SegmentationClass`` (one mask per class present, background and void excluded) or
  ``SegmentationObject`` PNGs (one mask per object id), labels known.
- ``coco``: a COCO-format JSON (RLE or polygons, via pycocotools), matched to images by file name;
  masks from any external generator can be indexed this way. Labels = ``category_id``.
- ``kmeans``: per-image k-means of the dense feature grid (K=5): the authors' segments for plain
  MoCo backbones (REFERENCES.md, "Segment retrieval"). Needs the image's features.
- ``superpixels``: scikit-image Felzenszwalb or SLIC segments.
- ``saliency``: one mask per image from a folder of saliency maps (MaskContrast), thresholded.

Masks come back at the working image size; masks read from files must have the size of the original
image (else DataFormatError) and are resized with nearest neighbour when the working size differs.
Empty masks and masks smaller than ``min_area`` pixels are dropped and counted in :class:`ProposalStats`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataFormatError, InputError
from .clustering import kmeans_masks, superpixel_masks
from .files import CocoProposals, gt_masks, resize_masks, saliency_masks

PROPOSAL_METHODS: tuple[str, ...] = ("gt", "coco", "kmeans", "superpixels", "saliency")


@dataclass(frozen=True)
class ProposalConfig:
    """How masks are proposed. Only the fields of the chosen ``method`` matter.

    Attributes:
        method: one of :data:`PROPOSAL_METHODS`.
        min_area: masks with fewer pixels (at the working size) are dropped and counted.
        clusters: k-means K (MaskContrast authors: 5).
        seed: k-means initialisation seed (results are deterministic).
        superpixels: ``"felzenszwalb"`` or ``"slic"``.
        felzenszwalb_scale: higher means larger segments.
        slic_segments: approximate number of SLIC segments.
        gt_root: VOC root (with SegmentationClass/), or a folder of label PNGs named like the images;
            None: the VOC layout around the image (``../SegmentationClass``).
        gt_kind: ``"class"`` (SegmentationClass) or ``"object"`` (SegmentationObject).
        include_background: ``gt`` class masks include class 0.
        coco_json: the COCO-format annotation file (``coco``).
        saliency_dir: folder of saliency maps named like the images (``saliency``).
        saliency_threshold: a pixel is salient when its value / 255 is above this.
    """

    method: str = "kmeans"
    min_area: int = 32
    clusters: int = 5
    seed: int = 0
    superpixels: str = "felzenszwalb"
    felzenszwalb_scale: float = 400.0
    slic_segments: int = 40
    gt_root: str | None = None
    gt_kind: str = "class"
    include_background: bool = False
    coco_json: str | None = None
    saliency_dir: str | None = None
    saliency_threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.method not in PROPOSAL_METHODS:
            raise InputError(
                f"unknown proposal method {self.method!r}", hint=f"use one of {', '.join(PROPOSAL_METHODS)}"
            )
        if self.method == "coco" and not self.coco_json:
            raise InputError("proposal method 'coco' needs a COCO JSON file", hint="pass --coco FILE.json")
        if self.method == "saliency" and not self.saliency_dir:
            raise InputError("proposal method 'saliency' needs a folder of saliency maps", hint="pass --saliency DIR")
        if self.gt_kind not in ("class", "object"):
            raise InputError(f"unknown gt kind {self.gt_kind!r}", hint="use 'class' or 'object'")
        if self.superpixels not in ("felzenszwalb", "slic"):
            raise InputError(f"unknown superpixel algorithm {self.superpixels!r}", hint="use 'felzenszwalb' or 'slic'")
        if self.clusters < 1:
            raise InputError(f"k-means needs at least 1 cluster, got {self.clusters}")

    def describe(self) -> dict:
        """The settings that matter for ``method`` (recorded in reports)."""
        keys = {"method", "min_area"} | _METHOD_KEYS[self.method]
        return {k: v for k, v in asdict(self).items() if k in keys}


_METHOD_KEYS = {
    "gt": {"gt_root", "gt_kind", "include_background"},
    "coco": {"coco_json"},
    "kmeans": {"clusters", "seed"},
    "superpixels": {"superpixels", "felzenszwalb_scale", "slic_segments"},
    "saliency": {"saliency_dir", "saliency_threshold"},
}


@dataclass
class ImageProposals:
    """The kept masks of one image.

    Attributes:
        image: the image file.
        masks: bool [K, H, W] at the working image size.
        labels: K class ids where the method knows them (gt, coco), else None each.
        method: the proposal method.
    """

    image: Path
    masks: np.ndarray
    labels: list[int | None]
    method: str


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
    ) -> ImageProposals:
        """Masks of one image.

        Args:
            image_path: the image file (masks in files are found by its name).
            image: uint8 [H, W, 3], the image at the working size.
            features: float [C, h, w] of ``image`` (kmeans only).
            native_size: (H0, W0) of the file on disk when ``image`` was resized; masks read from
                files must have this size and are resized to (H, W).

        Returns:
            The kept masks (empty and tiny ones dropped and counted).
        """
        path = Path(image_path)
        size = tuple(image.shape[:2])
        native = tuple(native_size) if native_size is not None else size
        cfg = self.config
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
                masks, labels = saliency_masks(path, native, cfg.saliency_dir, cfg.saliency_threshold)
            else:
                masks, labels = self._coco.masks(path, native)
            if native != size:
                masks = resize_masks(masks, size)
        return self._filter(path, masks, labels)

    def _filter(self, path: Path, masks: np.ndarray, labels: list[int | None]) -> ImageProposals:
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
        return ImageProposals(path, masks[keep].astype(bool), kept_labels, self.config.method)


__all__ = [
    "PROPOSAL_METHODS",
    "ImageProposals",
    "ProposalConfig",
    "ProposalStats",
    "Proposer",
    "kmeans_masks",
    "superpixel_masks",
]
