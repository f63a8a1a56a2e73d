"""Backbone and feature options shared by every command that extracts features.

Each option maps 1:1 onto a field of BackboneConfig / FeatureConfig (docs/architecture.md, house rule 4);
names and choices come from the torch-free architecture table (backbone/specs.py) and defaults from the
command's protocol (protocols.py), so nothing here is a copy to keep in step. Commands declare the options
with these Annotated types and call :func:`make_extractor`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..backbone.preprocessing import PREPROCESSING_NAMES
from ..backbone.specs import ARCHITECTURE_NAMES, ARCHITECTURES, DEFAULT_ARCHITECTURE, OUTPUT_STRIDES, STRIDE_MODES
from ..protocols import Protocol

if TYPE_CHECKING:  # torch is imported only when a command runs, so --help stays fast
    from ..backbone.config import BackboneConfig, FeatureConfig
    from ..backbone.features import FeatureExtractor

_PANEL = "Backbone"
_DEFAULT_LAYERS = ", ".join(f"{name} {spec.default_layer}" for name, spec in ARCHITECTURES.items())

BackboneOption = Annotated[
    str | None,
    typer.Option(
        "--backbone",
        help=f"Network: {', '.join(ARCHITECTURE_NAMES)}. Default: {DEFAULT_ARCHITECTURE} (embedded weights, "
        "offline), or the architecture detected in --checkpoint.",
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
        help="A checkpoint file (the paper's MoCo .pth.tar, torchvision, DINO backbone or full, DINOv2, MoCo v3, "
        "timm, {'model':...}); overrides --weights.",
        rich_help_panel=_PANEL,
    ),
]
LayerOption = Annotated[
    str | None,
    typer.Option(
        "--layer",
        help="Feature layer by name, e.g. layer3 (= res4), features.13, or blocks.N for a ViT (its patch tokens "
        "after the final norm; 'last' = the last block, the default for ViTs; `dense-retrieval backbones` lists "
        "them all).",
        rich_help_panel=_PANEL,
    ),
]
OutputStrideOption = Annotated[
    int | None,
    typer.Option(
        "--output-stride",
        help=f"{', '.join(map(str, OUTPUT_STRIDES))} (default: the protocol's; else the layer's natural stride). "
        "Not for ViTs: their patch tokens come at stride = patch size.",
        rich_help_panel=_PANEL,
    ),
]
StrideModeOption = Annotated[
    str,
    typer.Option(
        "--stride-mode",
        help=f"How to reach the output stride: {' or '.join(STRIDE_MODES)} ('remove': CRW, no dilation; "
        "'dilate': DeepLab).",
        rich_help_panel=_PANEL,
    ),
]
_RESIZE_HELP = (
    "'native', 'short:N' (short side N), 'short:N/M' (short side N, long side floored to a multiple of M: DINO's "
    "short:480/64) or 'fixed:HxW'. ViT inputs are then floored to a multiple of the patch size."
)
ResizeOption = Annotated[str, typer.Option("--resize", help=_RESIZE_HELP, rich_help_panel=_PANEL)]
ProtocolResizeOption = Annotated[
    str | None,
    typer.Option(
        "--resize",
        help=_RESIZE_HELP + " Default: the protocol's (native; short:480/64 for a ViT under dino).",
        rich_help_panel=_PANEL,
    ),
]

PreprocessOption = Annotated[
    str | None,
    typer.Option(
        "--preprocess",
        help=f"How a file becomes the network input, as one named reference recipe ({', '.join(PREPROCESSING_NAMES)}): "
        "decoder, resize library and filter, rounding, mean/std (README, 'Preprocessing'). Default: the protocol's "
        "(crw, dino, maskcontrast; pil-bicubic for indexes and features). Recorded with the output.",
        rich_help_panel=_PANEL,
    ),
]


def backbone_config(
    protocol: Protocol,
    backbone: str | None,
    weights: str,
    checkpoint: Path | None,
    layer: str | None,
    output_stride: int | None,
    stride_mode: str | None,
) -> BackboneConfig:
    """The protocol's BackboneConfig with the given options; --checkpoint without --backbone detects the network."""
    if output_stride is not None and output_stride < 1:  # 0 would silently mean "the layer's natural stride"
        from ..errors import InputError

        raise InputError(f"--output-stride {output_stride} is not a stride", hint="e.g. --output-stride 8")
    architecture = resolve_architecture(backbone, checkpoint)
    if checkpoint is not None:
        weights = str(checkpoint)
    features = protocol.features_for(architecture)
    return features.backbone(architecture, weights, layer, output_stride, stride_mode)


def resolve_architecture(backbone: str | None, checkpoint: Path | None) -> str:
    """--backbone, else the architecture detected in --checkpoint, else the default (MobileNetV2, offline)."""
    if backbone is None and checkpoint is not None:
        backbone = _detect_architecture(checkpoint)
    return backbone or DEFAULT_ARCHITECTURE


def make_extractor(config: BackboneConfig, features: FeatureConfig) -> FeatureExtractor:
    """Build the backbone (weights loaded) and wrap it in a FeatureExtractor."""
    from ..backbone.features import FeatureExtractor

    return FeatureExtractor.build(config, features)


def _detect_architecture(checkpoint: Path) -> str | None:
    from ..backbone.weights.checkpoints import inspect_checkpoint

    return inspect_checkpoint(checkpoint).get("architecture")
