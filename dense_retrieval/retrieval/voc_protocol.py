"""The MaskContrast segment-retrieval protocol on PASCAL VOC (REFERENCES.md, "Segment retrieval").

Bank: every proposal mask of the ``train`` split becomes a prototype (mask-pooled features,
L2-normalised) labelled with the majority ground-truth class inside it, 0 (background) and 255
(void) excluded; masks holding no such pixel are skipped and counted. Queries: every proposal mask of
the ``val`` split takes the class of its nearest prototype by cosine similarity (top-1; a top-k vote
as an option) and that class fills the mask, all other pixels are background. Images and labels are
resized to 512x512 by the extractor's preprocessing recipe (MaskContrast's: ``cv2.resize`` bicubic for
the image, nearest for labels and masks read from files); a saliency proposal is pooled with its soft
values as weights (``sal * (sal > 0.5)``). mIoU from TP/FP/FN summed over the set, 255 ignored:

- 21 classes, background included;
- 7 classes (aeroplane, bottle, bus, car, cat, cow, person): every other class is mapped to 255 in
  both splits, and background is left out of the mean.

Both variants come from one pass: the features and proposals are shared, only labels differ.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import faiss
import numpy as np
import torch

from ..backbone.features import FeatureExtractor
from ..backbone.preprocessing import Preprocessing
from ..data.voc import VOC7_CLASS_IDS, VOC_CLASSES, VocDataset, seven_class_labels
from ..errors import InputError
from ..metrics.segmentation import ConfusionMeter
from .config import VocProtocol
from .pooling import pool_masks
from .proposals import ProposalConfig, Proposer
from .proposals.files import majority_label

SEVEN_CLASS_EXCLUDED = tuple(c for c in range(len(VOC_CLASSES)) if c not in VOC7_CLASS_IDS)
"""Classes left out of the 7-class mean: background and the 13 other classes."""


@dataclass
class _Bank:
    vectors: list[np.ndarray]
    labels21: list[int | None]
    labels7: list[int | None]


def evaluate_voc(
    root: str | os.PathLike,
    extractor: FeatureExtractor,
    proposals: ProposalConfig,
    protocol: VocProtocol = VocProtocol(),
) -> dict:
    """Run the protocol and return the JSON-ready report (21- and 7-class mIoU, per-class IoU, counts).

    Args:
        root: a VOC2012 root (JPEGImages, SegmentationClass, ImageSets/Segmentation).
        extractor: dense features; its resize policy should be ``fixed:SxS`` with S = ``protocol.size``
            (a ViT floors it to its patch size), its recipe resizes and normalises the images.
        proposals: the masks of each image (``gt``, ``kmeans``, ``saliency``, ...).
        protocol: see :class:`VocProtocol`.
    """
    started = time.perf_counter()
    bank_set = VocDataset(root, protocol.bank_split)
    query_set = VocDataset(root, protocol.query_split)
    if proposals.method == "gt" and proposals.gt_root is None:
        proposals = replace(proposals, gt_root=str(bank_set.root))
    bank_proposer, query_proposer = Proposer(proposals), Proposer(proposals)

    bank = _Bank([], [], [])
    bank_images = 0
    for _sample, labels, found, vectors in _segments(bank_set, extractor, bank_proposer, protocol):
        bank_images += 1
        labels7 = seven_class_labels(labels)
        for mask, vector in zip(found.masks, vectors, strict=True):
            bank.vectors.append(vector)
            bank.labels21.append(majority_label(labels[mask]))
            bank.labels7.append(majority_label(labels7[mask]))
    searchers = {variant: _Searcher(bank, variant) for variant in ("21", "7")}
    if searchers["21"].size == 0:
        raise InputError(
            f"no bank mask of split {protocol.bank_split!r} covers a labelled object",
            hint="check the proposals (e.g. --proposals gt) and the SegmentationClass PNGs",
        )

    meters = {"21": ConfusionMeter(len(VOC_CLASSES)), "7": ConfusionMeter(len(VOC_CLASSES))}
    query_images = query_masks = 0
    for _sample, labels, found, vectors in _segments(query_set, extractor, query_proposer, protocol):
        query_images += 1
        query_masks += len(found.masks)
        targets = {"21": labels, "7": seven_class_labels(labels)}
        for variant, searcher in searchers.items():
            prediction = np.zeros(labels.shape, dtype=np.uint8)
            if len(vectors) and searcher.size:
                for mask, label in zip(found.masks, searcher.classify(vectors, protocol.top_k), strict=True):
                    prediction[mask] = label  # later masks win where proposals overlap
            meters[variant].update(prediction, targets[variant])

    return {
        "protocol": {**asdict(protocol), "reference": "MaskContrast segment retrieval (Van Gansbeke et al., 2021)"},
        "voc_root": str(bank_set.root),
        "features": extractor.describe(),
        "proposals": proposals.describe(),
        "bank": {
            "split": protocol.bank_split,
            "images": bank_images,
            "masks": len(bank.vectors),
            "prototypes_21": searchers["21"].size,
            "skipped_21": len(bank.vectors) - searchers["21"].size,
            "prototypes_7": searchers["7"].size,
            "skipped_7": len(bank.vectors) - searchers["7"].size,
            "proposal_stats": bank_proposer.stats.as_dict(),
        },
        "queries": {
            "split": protocol.query_split,
            "images": query_images,
            "masks": query_masks,
            "proposal_stats": query_proposer.stats.as_dict(),
        },
        "classes_21": _scores(meters["21"], exclude=()),
        "classes_7": _scores(meters["7"], exclude=SEVEN_CLASS_EXCLUDED),
        "seconds": round(time.perf_counter() - started, 3),
    }


class _Searcher:
    """Exact cosine top-k over the prototypes that have a label in one variant."""

    def __init__(self, bank: _Bank, variant: str):
        labels = bank.labels21 if variant == "21" else bank.labels7
        keep = [i for i, label in enumerate(labels) if label is not None]
        self.labels = np.asarray([labels[i] for i in keep], dtype=np.int64)
        self.size = len(keep)
        self.index = faiss.IndexFlatIP(bank.vectors[0].shape[0] if bank.vectors else 1)
        if keep:
            self.index.add(np.ascontiguousarray(np.stack([bank.vectors[i] for i in keep]), dtype=np.float32))

    def classify(self, vectors: np.ndarray, top_k: int) -> list[int]:
        """Class of each query vector float32 [Q, C]: nearest prototype, or a vote of the ``top_k``."""
        scores, ids = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), min(top_k, self.size))
        return [
            _vote(self.labels[row_ids[row_ids >= 0]], row_scores[row_ids >= 0])
            for row_scores, row_ids in zip(scores, ids, strict=True)
        ]


def _vote(labels: np.ndarray, scores: np.ndarray) -> int:
    """Most frequent label among the neighbours; ties go to the larger summed similarity."""
    tally: dict[int, tuple[int, float]] = collections.defaultdict(lambda: (0, 0.0))
    for label, score in zip(labels.tolist(), scores.tolist(), strict=True):
        count, total = tally[label]
        tally[label] = (count + 1, total + score)
    return max(tally, key=lambda label: tally[label])


@dataclass(frozen=True)
class _Sample:
    """One VOC image: its id, file, RGB as decoded and at the protocol's size, class labels at that size."""

    image_id: str
    path: Path
    native: np.ndarray
    rgb: np.ndarray
    labels: np.ndarray

    @property
    def native_size(self) -> tuple[int, int]:
        return self.native.shape[:2]


def _segments(
    dataset: VocDataset, extractor: FeatureExtractor, proposer: Proposer, protocol: VocProtocol
) -> Iterator[tuple[str, np.ndarray, object, np.ndarray]]:
    """Per image: (id, labels uint8 [S, S], kept proposals, float32 [K, C] pooled vectors)."""
    ids = dataset.ids[: protocol.max_images] if protocol.max_images else dataset.ids
    size = (protocol.size, protocol.size)
    recipe = extractor.preprocessing

    def samples() -> Iterator[_Sample]:
        for image_id in ids:
            rgb = dataset.read_image(image_id, recipe.decode)
            labels = dataset.read_class_labels(image_id)
            if labels.shape != rgb.shape[:2]:
                raise InputError(
                    f"label PNG of {image_id!r} is {labels.shape[0]}x{labels.shape[1]}, "
                    f"the image is {rgb.shape[0]}x{rgb.shape[1]}"
                )
            path = dataset.image_path(image_id)
            yield _Sample(image_id, path, rgb, _working_image(rgb, size, recipe), recipe.resize_labels(labels, size))

    desc = f"{dataset.split} segments"
    # the extractor resizes the decoded image itself, by its recipe, straight to its input size
    for sample, maps in extractor.stream(samples(), lambda s: s.native, total=len(ids), desc=desc):
        features = maps.single()
        found = proposer(sample.path, sample.rgb, features, native_size=sample.native_size, resize=recipe.resize_labels)
        soft = protocol.saliency_weights == "soft" and found.weights is not None
        masks = torch.from_numpy(found.weights if soft else found.masks)
        vectors = pool_masks(features, masks, protocol.pooling).numpy() if len(masks) else np.zeros((0, 1), np.float32)
        yield sample.image_id, sample.labels, found, vectors


def _working_image(rgb: np.ndarray, size: tuple[int, int], recipe: Preprocessing) -> np.ndarray:
    """The uint8 image at the protocol's size that proposals (superpixels) see, resized by the recipe."""
    if rgb.shape[:2] == size:
        return rgb
    resized = recipe.resize(rgb, size)
    if resized.dtype != np.uint8:  # a recipe resizing the /255 image (crw): rounded back for the proposals
        resized = np.clip(np.rint(resized * 255.0), 0, 255).astype(np.uint8)
    return resized


def _scores(meter: ConfusionMeter, exclude: tuple[int, ...]) -> dict:
    """mIoU (reference convention: a class absent from prediction and truth scores 0) and per-class IoU."""
    counts = meter.counts()
    iou = meter.iou(absent="zero")
    present = (counts["tp"] + counts["fp"] + counts["fn"]) > 0
    kept = [c for c in range(meter.num_classes) if c not in exclude]
    present_kept = [c for c in kept if present[c]]
    return {
        "miou": meter.miou(exclude=exclude, absent="zero"),
        "miou_present": float(np.mean(iou[present_kept])) if present_kept else float("nan"),
        "classes": [VOC_CLASSES[c] for c in kept],
        "per_class": {
            VOC_CLASSES[c]: {
                "iou": float(iou[c]),
                "tp": int(counts["tp"][c]),
                "fp": int(counts["fp"][c]),
                "fn": int(counts["fn"][c]),
                "present": bool(present[c]),
            }
            for c in kept
        },
    }
