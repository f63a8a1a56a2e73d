"""Backbone and feature options shared by every command that extracts features.

Each option maps 1:1 onto a field of BackboneConfig / FeatureConfig (house rule 4). Commands
declare them with these Annotated types and call :func:`make_extractor`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # torch is imported only when a command runs, so --help stays fast
    from ..backbones import BackboneConfig
    from ..features import FeatureConfig, FeatureExtractor

# the names of backbones.BACKBONE_NAMES (tests/test_cli_basics.py checks they agree)
BACKBONE_CHOICES = ("resnet18", "resnet50", "mobilenet_v2")

_PANEL = "Backbone"

BackboneOption = Annotated[
    str | None,
    typer.Option(
        "--backbone",
        help=f"Network: {', '.join(BACKBONE_CHOICES)}. Default: the command's default, or the architecture "
        "detected in --checkpoint.",
        rich_help_panel=_PANEL,
    ),
]
WeightsOption = Annotated[
    str,
    typer.Option(
        "--weights",
        help="'default' (the architecture's registry default; MobileNetV2's is embedded and offline), "
        "'random' (seed 0) or 'random:N', "
        "or a registry name from `dense-retrieval checkpoints list`.",
        rich_help_panel=_PANEL,
    ),
]
CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        help="A checkpoint file (the paper's MoCo .pth.tar, torchvision, DINO, {'model':...}); overrides --weights.",
        rich_help_panel=_PANEL,
    ),
]
LayerOption = Annotated[
    str | None,
    typer.Option(
        "--layer",
        help="Feature layer by name: layer3 (= res4) for ResNets, features.N for MobileNetV2.",
        rich_help_panel=_PANEL,
    ),
]
OutputStrideOption = Annotated[
    int | None,
    typer.Option("--output-stride", help="8, 16 or 32 (default: the layer's natural stride).", rich_help_panel=_PANEL),
]
StrideModeOption = Annotated[
    str,
    typer.Option(
        "--stride-mode",
        help="How to reach the output stride: 'remove' (CRW, no dilation) or 'dilate' (DeepLab).",
        rich_help_panel=_PANEL,
    ),
]
ResizeOption = Annotated[
    str,
    typer.Option("--resize", help="'native', 'short:N' (short side N) or 'fixed:HxW'.", rich_help_panel=_PANEL),
]


def backbone_config(
    backbone: str | None,
    weights: str,
    checkpoint: Path | None,
    layer: str | None,
    output_stride: int | None,
    stride_mode: str,
    default_backbone: str = "mobilenet_v2",
) -> BackboneConfig:
    """Turn the shared options into a BackboneConfig; --checkpoint without --backbone detects the architecture."""
    from ..backbones import BackboneConfig

    if checkpoint is not None:
        weights = str(checkpoint)
        if backbone is None:
            backbone = _detect_architecture(checkpoint) or default_backbone
    return BackboneConfig(
        name=backbone or default_backbone,
        layer=layer,
        output_stride=output_stride,
        stride_mode=stride_mode,
        weights=weights,
    )


def make_extractor(config: BackboneConfig, features: FeatureConfig) -> FeatureExtractor:
    """Build the backbone and wrap it in a FeatureExtractor."""
    from ..backbones import build_backbone
    from ..features import FeatureExtractor

    return FeatureExtractor(build_backbone(config), features)


def _detect_architecture(checkpoint: Path) -> str | None:
    from ..checkpoints import inspect_checkpoint

    return inspect_checkpoint(checkpoint).get("architecture")
