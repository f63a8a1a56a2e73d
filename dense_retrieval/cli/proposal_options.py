"""Mask-proposal options shared by `index build`, `index add`, `query` and `retrieval eval-voc`.

Each option maps 1:1 onto a field of :class:`~dense_retrieval.retrieval.proposals.config.ProposalConfig`;
the method and pooling choices come from the library's torch-free settings modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..retrieval.config import POOLING_MODES
from ..retrieval.proposals.config import PROPOSAL_METHODS, ProposalConfig

_PANEL = "Proposals"

ProposalsOption = Annotated[
    str,
    typer.Option(
        "--proposals",
        help=f"Where the masks come from: {', '.join(PROPOSAL_METHODS)}.",
        rich_help_panel=_PANEL,
    ),
]
MinAreaOption = Annotated[
    int, typer.Option("--min-area", min=1, help="Drop masks with fewer pixels (counted).", rich_help_panel=_PANEL)
]
ClustersOption = Annotated[
    int,
    typer.Option(
        "--clusters", min=1, max=1000, help="kmeans: clusters per image (K, 1..1000).", rich_help_panel=_PANEL
    ),
]
SuperpixelsOption = Annotated[
    str, typer.Option("--superpixels", help="superpixels: felzenszwalb or slic.", rich_help_panel=_PANEL)
]
GtRootOption = Annotated[
    Path | None,
    typer.Option(
        "--gt-root",
        help="gt: VOC root or folder of label PNGs (default: the VOC layout around each image).",
        rich_help_panel=_PANEL,
    ),
]
GtKindOption = Annotated[
    str, typer.Option("--gt-kind", help="gt: 'class' (SegmentationClass) or 'object'.", rich_help_panel=_PANEL)
]
CocoOption = Annotated[
    Path | None, typer.Option("--coco", help="coco: a COCO-format JSON (RLE or polygons).", rich_help_panel=_PANEL)
]
SaliencyOption = Annotated[
    Path | None,
    typer.Option("--saliency", help="saliency: folder of saliency maps named like the images.", rich_help_panel=_PANEL),
]
SaliencyThresholdOption = Annotated[
    float,
    typer.Option(
        "--saliency-threshold", min=0.0, max=1.0, help="saliency: value/255 above it.", rich_help_panel=_PANEL
    ),
]


def proposal_config(
    method: str,
    min_area: int = 32,
    clusters: int = 5,
    superpixels: str = "felzenszwalb",
    gt_root: Path | None = None,
    gt_kind: str = "class",
    coco: Path | None = None,
    saliency: Path | None = None,
    saliency_threshold: float = 0.5,
) -> ProposalConfig:
    """The ProposalConfig of the shared options."""
    return ProposalConfig(
        method=method,
        min_area=min_area,
        clusters=clusters,
        superpixels=superpixels,
        gt_root=None if gt_root is None else str(gt_root),
        gt_kind=gt_kind,
        coco_json=None if coco is None else str(coco),
        saliency_dir=None if saliency is None else str(saliency),
        saliency_threshold=saliency_threshold,
    )


PoolingOption = Annotated[
    str, typer.Option("--pooling", help=f"Mask pooling: {', '.join(POOLING_MODES)} (MaskContrast: upsample).")
]
