"""Options shared by `davis propagate` and `video propagate`: the protocol and the backbone defaults.

Backbone rule (documented in both commands' --help): --checkpoint or --backbone choose the network;
with neither, the embedded ImageNet MobileNetV2 runs offline. The layer defaults to layer3 (res4,
CRW's choice) for ResNets and to ``MOBILENET_LAYER`` for MobileNetV2; the output stride to 8 (by
stride removal, as CRW); features are L2-normalised unless --no-l2.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .options import backbone_config, make_extractor

if TYPE_CHECKING:  # torch is imported only when a command runs, so --help stays fast
    from ..features import FeatureExtractor
    from ..propagation import PropagationConfig

# the names of propagation.PRESETS (tests/test_cli_propagate.py checks they agree)
PRESET_CHOICES = ("crw", "dino")

MOBILENET_LAYER = "features.13"
DEFAULT_OUTPUT_STRIDE = 8
_PANEL = "Propagation"

BACKBONE_RULE = (
    "Backbone: --checkpoint FILE (architecture detected, e.g. the paper's MoCo ResNet-50) or --backbone NAME "
    "with --weights; with neither, the embedded ImageNet MobileNetV2 (offline). Layer: layer3 (res4) for "
    f"ResNets, {MOBILENET_LAYER} for MobileNetV2; output stride {DEFAULT_OUTPUT_STRIDE} by stride removal; "
    "L2-normalised features; frames at native size. The paper's protocol is --backbone resnet50 (weights "
    "downloaded first: `dense-retrieval checkpoints download resnet50-imagenet`) or --checkpoint <paper .pth.tar>."
)

PresetOption = Annotated[
    str,
    typer.Option(
        "--preset",
        help=f"Protocol: {', '.join(PRESET_CHOICES)}. crw: first frame + 20 previous, top-10, T=0.05, radius 12 "
        "(Jabri et al. 2020, the paper's); dino: first frame + 7 previous, top-5, T=0.1, square window 12.",
        rich_help_panel=_PANEL,
    ),
]
TemperatureOption = Annotated[
    float | None,
    typer.Option(
        "--temperature", help="Softmax temperature (crw 0.05; CRW's code default 0.07).", rich_help_panel=_PANEL
    ),
]
TopkOption = Annotated[int | None, typer.Option("--topk", help="Neighbours kept per position.", rich_help_panel=_PANEL)]
RadiusOption = Annotated[
    float | None,
    typer.Option(
        "--radius", help="Spatial window on the feature grid, in cells (0: unrestricted).", rich_help_panel=_PANEL
    ),
]
ContextOption = Annotated[
    int | None, typer.Option("--context", help="Previous frames in the short-term memory.", rich_help_panel=_PANEL)
]
OutputStrideOption = Annotated[
    int | None,
    typer.Option(
        "--output-stride",
        help=f"8, 16 or 32 (default {DEFAULT_OUTPUT_STRIDE}, CRW's; by --stride-mode).",
        rich_help_panel="Backbone",
    ),
]
L2Option = Annotated[
    bool, typer.Option("--l2/--no-l2", help="L2-normalise features (CRW does).", rich_help_panel="Backbone")
]


def propagation_config(
    name: str, temperature: float | None, topk: int | None, radius: float | None, context: int | None
) -> PropagationConfig:
    """The preset ``name`` with the given overrides (None keeps the preset's value; radius 0 = no window)."""
    from ..propagation import preset

    changes: dict = {}
    if temperature is not None:
        changes["temperature"] = temperature
    if topk is not None:
        changes["topk"] = topk
    if radius is not None:
        changes["radius"] = radius if radius > 0 else None
    if context is not None:
        changes["context"] = context
    return preset(name).replace(**changes)


def propagation_extractor(
    backbone: str | None,
    weights: str,
    checkpoint: Path | None,
    layer: str | None,
    output_stride: int | None,
    stride_mode: str,
    resize: str,
    l2: bool,
    batch_size: int,
    device: str,
) -> FeatureExtractor:
    """A feature extractor following the backbone rule above."""
    from ..features import FeatureConfig

    config = backbone_config(backbone, weights, checkpoint, layer, output_stride, stride_mode)
    if layer is None and config.name == "mobilenet_v2":
        config = replace(config, layer=MOBILENET_LAYER)
    if output_stride is None:
        config = replace(config, output_stride=DEFAULT_OUTPUT_STRIDE)
    features = FeatureConfig(resize=resize, l2_normalize=l2, batch_size=batch_size, device=device)
    return make_extractor(config, features)
