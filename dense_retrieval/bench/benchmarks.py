"""The benchmarks ``bench run`` knows: one registration each (torch-free; docs/architecture.md, "Where a change
goes"). A new benchmark is one :class:`~.registry.Benchmark` in :data:`BENCHMARKS` plus its runner module."""

from __future__ import annotations

from ..backbone.preprocessing import PREPROCESSING_NAMES
from ..backbone.specs import STRIDE_MODES
from ..data.davis import YEARS
from ..errors import InputError
from ..metrics.conventions import PCK_THRESHOLDS
from ..propagation.config import CRW_KEYPOINTS
from ..protocols import PROPAGATION_PROTOCOLS
from ..retrieval.config import POOLING_MODES
from ..retrieval.dense.config import MATCHINGS
from .registry import Benchmark, Setting

FEATURE_SETTINGS = (
    Setting("layer", "text", help="feature layer by name (default: the protocol's, e.g. layer3 for ResNets)"),
    Setting("output_stride", "integer", minimum=1, help="8, 16 or 32 (default: the protocol's)"),
    Setting("stride_mode", "text", choices=STRIDE_MODES, help="remove (CRW) or dilate (DeepLab)"),
    Setting("preprocess", "text", choices=PREPROCESSING_NAMES, help="the input recipe (default: the protocol's)"),
)
"""Backbone and input overrides every benchmark accepts: they replace single fields of the benchmark's protocol."""

PROPAGATION_SETTINGS = (
    Setting("temperature", "number", help="softmax temperature (crw 0.05)"),
    Setting("topk", "integer", minimum=1, help="neighbours kept per position"),
    Setting("radius", "number", minimum=0, help="spatial window in grid cells (0: unrestricted)"),
    Setting("context", "integer", minimum=0, help="previous frames in the short-term memory"),
)
"""Overrides of single fields of a propagation protocol (``bench/propagation_cell.py``)."""

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
        *PROPAGATION_SETTINGS,
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

JHMDB = Benchmark(
    name="jhmdb",
    about="JHMDB human keypoints by label propagation (15 joints of frame 0 carried through each test video), "
    "PCK@0.2 with PCK@0.1 beside it as CRW's eval_pck.py (CRW's JHMDB protocol by default)",
    settings=(
        Setting("root", "folder", required=True, help="the JHMDB folder holding Rename_Images/ and joint_positions/"),
        Setting("split", "integer", 1, minimum=1, help="the split whose test videos run (1, 2 or 3)"),
        Setting("splits", "folder", help="the folder of <action>_test_split<N>.txt files (default: ROOT/splits)"),
        Setting("preset", "text", "crw", choices=PROPAGATION_PROTOCOLS, help="the protocol (crw: CRW's JHMDB one)"),
        *PROPAGATION_SETTINGS,
        Setting("sigma", "number", CRW_KEYPOINTS.sigma, help="Gaussian width of a joint on the grid, in cells (> 0)"),
        Setting("readout_topk", "integer", CRW_KEYPOINTS.readout_topk, minimum=1, help="cells a joint is read from"),
        Setting("resize", "text", help="the network input (default: the protocol's, fixed:320x320 under crw)"),
        *FEATURE_SETTINGS,
    ),
    runner="dense_retrieval.bench.jhmdb_cell",
    headline="PCK@0.2",
    detail=tuple(f"PCK@{t:g}" for t in PCK_THRESHOLDS),
)

VIP = Benchmark(
    name="vip",
    about="VIP human parts by label propagation (the first annotated frame's 20 classes carried through each "
    "video), mIoU as CRW's eval_vip.py (CRW's VIP protocol by default)",
    settings=(
        Setting("root", "folder", required=True, help="the VIP_Fine folder holding Images/ and Category_ids/"),
        Setting("list", "file", help="the video list, one name per line (default: ROOT/lists/val_videos.txt)"),
        Setting("preset", "text", "crw", choices=PROPAGATION_PROTOCOLS, help="the protocol (crw: CRW's VIP one)"),
        *PROPAGATION_SETTINGS,
        Setting("resize", "text", help="the network input (default: the protocol's, fixed:560x560 under crw)"),
        *FEATURE_SETTINGS,
    ),
    runner="dense_retrieval.bench.vip_cell",
    headline="mIoU",
    detail=("IoU",),
)

SEGMENTATION_KINDS = ("voc", "ade20k", "folder")
"""The layouts ``data/segmentation_sets.py`` reads (its ``KINDS``; written out here so this module stays light)."""

DENSE = Benchmark(
    name="dense",
    about="dense nearest-neighbour retrieval by the Hummingbird protocol (Balazevic et al. 2023, as "
    "open-hummingbird-eval reproduces it): a memory of patches with soft labels from the training split, every "
    "validation patch labelled from its nearest memory patches; Hungarian-matched mIoU",
    settings=(
        Setting(
            "root",
            "folder",
            required=True,
            help="VOC2012 (with SegmentationClassAug), ADEChallengeData2016, or a folder of <split>/{images,labels}",
        ),
        Setting("dataset", "text", "voc", choices=SEGMENTATION_KINDS, help="the layout of root"),
        Setting("num_classes", "integer", minimum=1, help="classes of a folder dataset"),
        Setting("train_split", "text", help="the memory split (voc: trainaug, ade20k: training)"),
        Setting("val_split", "text", help="the evaluated split (voc: val, ade20k: validation)"),
        Setting("train_list", "file", help="only the memory images this id file lists (1/128, 1/64, 1/8 splits)"),
        Setting("memory_size", "integer", minimum=0, help="memory patches (1024 x 10^2 .. 10^4; 0: all)"),
        Setting("augmentation_epochs", "integer", minimum=0, help="augmented passes (2; 0: one resize pass)"),
        Setting("neighbours", "integer", minimum=1, help="memory patches read per query (30)"),
        Setting("temperature", "number", minimum=1e-6, help="softmax temperature (0.02)"),
        Setting("input_size", "integer", minimum=16, help="network input side (512; 504 for /14 models)"),
        Setting("matching", "text", choices=MATCHINGS, help="hungarian (the published numbers) or none"),
        Setting("seed", "integer", minimum=0, help="crops, jitter and sampling noise"),
        Setting("factory", "text", help="FAISS factory of the memory (default Flat)"),
        Setting("max_memory", "text", help="budget of the memory's FAISS index (e.g. 8G): chooses the factory"),
        Setting("on_disk", "flag", False, help="IVF lists memory-mapped from disk"),
        *FEATURE_SETTINGS,
    ),
    runner="dense_retrieval.bench.dense_cell",
    headline="mIoU",
    detail=("IoU",),
)

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (DAVIS, VOC, DENSE, JHMDB, VIP)}
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
