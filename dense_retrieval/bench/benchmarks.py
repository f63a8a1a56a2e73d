"""The benchmarks ``bench run`` knows: one registration each (torch-free; docs/architecture.md, "Where a change
goes"). A new benchmark is one :class:`~.registry.Benchmark` in :data:`BENCHMARKS` plus its runner module."""

from __future__ import annotations

from ..backbone.preprocessing import PREPROCESSING_NAMES
from ..backbone.specs import STRIDE_MODES
from ..data.davis import YEARS
from ..errors import InputError
from ..protocols import PROPAGATION_PROTOCOLS
from ..retrieval.config import POOLING_MODES
from .registry import Benchmark, Setting

FEATURE_SETTINGS = (
    Setting("layer", "text", help="feature layer by name (default: the protocol's, e.g. layer3 for ResNets)"),
    Setting("output_stride", "integer", minimum=1, help="8, 16 or 32 (default: the protocol's)"),
    Setting("stride_mode", "text", choices=STRIDE_MODES, help="remove (CRW) or dilate (DeepLab)"),
    Setting("preprocess", "text", choices=PREPROCESSING_NAMES, help="the input recipe (default: the protocol's)"),
)
"""Backbone and input overrides every benchmark accepts: they replace single fields of the benchmark's protocol."""

DAVIS = Benchmark(
    name="davis",
    about="DAVIS-2017/2016 semi-supervised video object segmentation by label propagation, J&F as the official "
    "evaluation (CRW protocol by default, DINO's for vision transformers)",
    settings=(
        Setting("root", "folder", required=True, help="the DAVIS folder holding JPEGImages/ and Annotations/"),
        Setting("year", "text", "2017", choices=YEARS[::-1], help="2017 (multi-object) or 2016 (one object)"),
        Setting("split", "text", "val", help="the ImageSets/<year>/<split>.txt to run"),
        Setting("resolution", "text", "480p", choices=("480p", "Full-Resolution")),
        Setting(
            "preset",
            "text",
            choices=PROPAGATION_PROTOCOLS,
            help="the propagation protocol (default: crw; dino for a ViT)",
        ),
        Setting("temperature", "number", help="softmax temperature (crw 0.05)"),
        Setting("topk", "integer", minimum=1, help="neighbours kept per position"),
        Setting("radius", "number", minimum=0, help="spatial window in grid cells (0: unrestricted)"),
        Setting("context", "integer", minimum=0, help="previous frames in the short-term memory"),
        *FEATURE_SETTINGS,
    ),
    runner="dense_retrieval.bench.davis_cell",
    headline="J&F-Mean",
    detail=("J-Mean", "F-Mean"),
)

VOC = Benchmark(
    name="voc",
    about="PASCAL VOC segment retrieval by the MaskContrast protocol: train masks form the bank, val masks query; "
    "mIoU over 21 classes (7-class mIoU beside it)",
    settings=(
        Setting(
            "root", "folder", required=True, help="the VOC2012 folder (JPEGImages/, SegmentationClass/, ImageSets/)"
        ),
        Setting("proposals", "text", "gt", choices=("gt", "kmeans", "superpixels"), help="how masks are proposed"),
        Setting("clusters", "integer", 5, minimum=1, help="k-means K (kmeans proposals)"),
        Setting("min_area", "integer", 32, minimum=0, help="smaller masks are dropped"),
        Setting("size", "integer", 512, minimum=16, help="images resized to size x size (reference 512)"),
        Setting("top_k", "integer", 1, minimum=1, help="1: nearest prototype; k: a vote of the k nearest"),
        Setting("pooling", "text", "upsample", choices=POOLING_MODES),
        Setting("max_images", "integer", minimum=1, help="only the first N images of each split"),
        *FEATURE_SETTINGS,
    ),
    runner="dense_retrieval.bench.voc_cell",
    headline="mIoU",
    detail=("IoU",),
)

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (DAVIS, VOC)}
"""Every registration, by name (the order of the report's columns when a spec does not choose)."""


def get_benchmark(name: str) -> Benchmark:
    """The registration called ``name``.

    Raises:
        InputError: no benchmark of that name, naming the known ones.
    """
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise InputError(f"unknown benchmark kind {name!r}", hint=f"use one of {', '.join(BENCHMARKS)}") from None
