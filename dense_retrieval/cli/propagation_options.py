"""Options shared by the propagation commands (`davis`, `video`, `jhmdb`, `vip propagate`): the protocol and
its overrides.

Backbone rule (documented in both commands' --help): --checkpoint or --backbone choose the network;
with neither, the embedded ImageNet MobileNetV2 runs offline. The protocol (--preset; default crw, or
dino for a vision transformer) gives the rest: the architecture's default layer, output stride 8 by
stride removal (CNNs), L2-normalised features, native frames (ViTs under dino: short side 480, long
side floored to a multiple of 64) (:mod:`dense_retrieval.protocols`); every option below overrides one field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..backbone.specs import ARCHITECTURES, DEFAULT_ARCHITECTURE
from ..errors import InputError
from ..protocols import (
    CRW,
    DINO,
    PROPAGATION_PROTOCOLS,
    Protocol,
    benchmark_protocol,
    default_propagation_protocol,
    get_protocol,
)
from .options import backbone_config, make_extractor, resolve_architecture

if TYPE_CHECKING:  # torch is imported only when a command runs, so --help stays fast
    from ..backbone.features import FeatureExtractor
    from ..propagation.config import PropagationConfig

_PANEL = "Propagation"
_LAYERS = ", ".join(f"{spec.default_layer} for {name}" for name, spec in ARCHITECTURES.items() if not spec.is_vit)

BACKBONE_RULE = (
    "Backbone: --checkpoint FILE (architecture detected, e.g. the paper's MoCo ResNet-50) or --backbone NAME "
    f"with --weights; with neither, the embedded ImageNet {DEFAULT_ARCHITECTURE} (offline). Layer: {_LAYERS}, "
    f"the last block for ViTs; output stride {CRW.features.output_stride} by stride removal; L2-normalised "
    "features; frames at native size. Vision transformers (e.g. --backbone vit_small_patch16, --checkpoint "
    "dino_deitsmall16_pretrain.pth) run the dino protocol by default: the last block's patch tokens, frames "
    f"resized by {DINO.vit_features.resize} (short side 480, long side floored to a multiple of 64). The paper's "
    "protocol is --backbone resnet50 (weights downloaded first: `dense-retrieval checkpoints download "
    "resnet50-imagenet`) or --checkpoint <paper .pth.tar>."
)

PresetOption = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help=f"Protocol: {', '.join(PROPAGATION_PROTOCOLS)} (default: crw; dino for a ViT). crw: first frame + 20 "
        "previous, top-10, T=0.05, radius 12 (Jabri et al. 2020, the paper's); dino: first frame + 7 previous, "
        "top-5, T=0.1, square window 12 (Caron et al. 2021).",
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
L2Option = Annotated[
    bool, typer.Option("--l2/--no-l2", help="L2-normalise features (CRW does).", rich_help_panel="Backbone")
]


def propagation_setup(name: str | None, backbone: str | None, checkpoint: Path | None) -> tuple[Protocol, str]:
    """(protocol, architecture): ``name``, or DINO's for a ViT and CRW's otherwise; the network of the backbone rule."""
    architecture = resolve_architecture(backbone, checkpoint)
    protocol = propagation_protocol(name) if name else default_propagation_protocol(architecture)
    return protocol, architecture


def benchmark_setup(
    benchmark: str, name: str | None, backbone: str | None, checkpoint: Path | None
) -> tuple[Protocol, str]:
    """(protocol, architecture) for `jhmdb propagate` / `vip propagate`: ``name`` (default ``crw``) as that
    benchmark means it (``crw`` is ``crw-jhmdb`` on JHMDB), and the network of the backbone rule."""
    return benchmark_protocol(benchmark, name or "crw"), resolve_architecture(backbone, checkpoint)


def propagation_protocol(name: str) -> Protocol:
    """The propagation protocol called ``name`` (``crw`` or ``dino``)."""
    if name.lower() not in PROPAGATION_PROTOCOLS:
        raise InputError(f"unknown propagation preset {name!r}", hint=f"use one of {', '.join(PROPAGATION_PROTOCOLS)}")
    return get_protocol(name)


def propagation_config(
    protocol: Protocol, temperature: float | None, topk: int | None, radius: float | None, context: int | None
) -> PropagationConfig:
    """The protocol's propagation settings with the given overrides (None keeps them; radius 0 = no window)."""
    changes: dict = {}
    if temperature is not None:
        changes["temperature"] = temperature
    if topk is not None:
        changes["topk"] = topk
    if radius is not None:
        if not math.isfinite(radius) or radius < 0:
            raise InputError(
                f"--radius {radius} is not a number of grid cells >= 0", hint="use 0 for no window, e.g. --radius 12"
            )
        changes["radius"] = radius if radius > 0 else None
    if context is not None:
        changes["context"] = context
    return protocol.propagation.replace(**changes)


def propagation_preprocess(protocol: Protocol, architecture: str, preprocess: str | None) -> str:
    """The preprocessing recipe of a run: ``preprocess``, else the protocol's for ``architecture`` (checked)."""
    from ..backbone.preprocessing import get_preprocessing

    return get_preprocessing(preprocess or protocol.features_for(architecture).preprocess).name


def propagation_extractor(
    protocol: Protocol,
    backbone: str | None,
    weights: str,
    checkpoint: Path | None,
    layer: str | None,
    output_stride: int | None,
    stride_mode: str,
    resize: str | None,
    l2: bool,
    batch_size: int,
    device: str,
    preprocess: str | None = None,
) -> FeatureExtractor:
    """A feature extractor following the backbone rule above (``resize``, ``preprocess`` None: the protocol's)."""
    config = backbone_config(protocol, backbone, weights, checkpoint, layer, output_stride, stride_mode)
    side = protocol.features_for(config.name)
    features = side.features(
        resize=resize, preprocess=preprocess, l2_normalize=l2, batch_size=batch_size, device=device
    )
    return make_extractor(config, features)
