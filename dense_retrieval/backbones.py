"""Dense backbones built by name: the feature layer by name, the output stride by stride removal or dilation.

Two ways to get an output stride below the layer's natural one:

* ``"remove"`` (CRW, Jabri et al. 2020): every strided conv after the target stride is set to stride 1,
  with no dilation. This is what the paper's DAVIS evaluation uses (ResNet-50 ``layer3`` at stride 8).
* ``"dilate"`` (DeepLab): the same strides are removed and the following convs are dilated to keep
  their receptive field (torchvision's ``replace_stride_with_dilation`` convention).

For every input of size H x W the feature map is ``ceil(H / stride) x ceil(W / stride)``.
Layers after the chosen one are not built into the module, so they are never run.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torchvision
from torch import nn

from .errors import InputError

STRIDE_MODES = ("remove", "dilate")
OUTPUT_STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class LayerInfo:
    """A layer one can take features from: its name, aliases, channels and natural stride."""

    name: str
    channels: int
    stride: int
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class _BackboneSpec:
    name: str
    constructor: Callable[[], nn.Module]
    stem: tuple[str, ...]  # modules always run before the first named layer
    layers: tuple[LayerInfo, ...]  # in forward order; each is a direct child (or features.N)
    default_layer: str
    # blocks holding a stride-2 conv, with the cumulative stride after them (only those past stride 4)
    stride_blocks: tuple[tuple[str, int], ...]


def _resnet_layers(widths: tuple[int, int, int, int]) -> tuple[LayerInfo, ...]:
    return tuple(LayerInfo(f"layer{i + 1}", widths[i], 4 * 2**i, (f"res{i + 2}",)) for i in range(4))


def _mobilenet_layers() -> tuple[LayerInfo, ...]:
    channels = (32, 16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320, 1280)
    strides = (2, 2, 4, 4, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32)
    return tuple(LayerInfo(f"features.{i}", c, s) for i, (c, s) in enumerate(zip(channels, strides, strict=True)))


_SPECS: dict[str, _BackboneSpec] = {
    "resnet18": _BackboneSpec(
        "resnet18",
        lambda: torchvision.models.resnet18(weights=None),
        ("conv1", "bn1", "relu", "maxpool"),
        _resnet_layers((64, 128, 256, 512)),
        "layer3",
        (("layer2", 8), ("layer3", 16), ("layer4", 32)),
    ),
    "resnet50": _BackboneSpec(
        "resnet50",
        lambda: torchvision.models.resnet50(weights=None),
        ("conv1", "bn1", "relu", "maxpool"),
        _resnet_layers((256, 512, 1024, 2048)),
        "layer3",
        (("layer2", 8), ("layer3", 16), ("layer4", 32)),
    ),
    "mobilenet_v2": _BackboneSpec(
        "mobilenet_v2",
        lambda: torchvision.models.mobilenet_v2(weights=None),
        (),
        _mobilenet_layers(),
        "features.13",
        (("features.4", 8), ("features.7", 16), ("features.14", 32)),
    ),
}
BACKBONE_NAMES = tuple(_SPECS)


@dataclass(frozen=True)
class BackboneConfig:
    """Which network, which layer, which output stride, which weights.

    Attributes:
        name: "resnet18", "resnet50" or "mobilenet_v2".
        layer: layer name ("layer3" = "res4" for ResNets; "features.N" for MobileNetV2);
            None takes the backbone's default (ResNets: layer3, MobileNetV2: features.13).
        output_stride: 8, 16 or 32; None keeps the layer's natural stride.
        stride_mode: "remove" (CRW: strides set to 1, no dilation) or "dilate" (DeepLab).
        weights: "default" (the registry's default for the architecture), "random" or "random:SEED"
            (explicit, reproducible random initialisation; seed 0 by default), a registry name
            (see ``dense-retrieval checkpoints list``) or a checkpoint path.
    """

    name: str = "mobilenet_v2"
    layer: str | None = None
    output_stride: int | None = None
    stride_mode: str = "remove"
    weights: str = "default"


def available_layers(name: str) -> tuple[LayerInfo, ...]:
    """The layers of backbone ``name`` one can take features from."""
    return _spec(name).layers


def default_layer(name: str) -> str:
    """The layer used when none is named (ResNets: layer3 = res4, CRW's choice; MobileNetV2: features.13)."""
    return _spec(name).default_layer


class DenseBackbone(nn.Module):
    """A truncated, stride-adjusted backbone in eval mode with frozen parameters.

    ``forward(x)``: float [N, 3, H, W] (ImageNet-normalised RGB) -> float [N, channels, ceil(H/stride), ceil(W/stride)].
    """

    def __init__(
        self,
        body: nn.Sequential,
        config: BackboneConfig,
        channels: int,
        stride: int,
        weights_id: str,
        weights_sha256: str | None,
    ):
        super().__init__()
        self.body = body
        self.config = config
        self.channels = channels
        self.stride = stride
        self.weights_id = weights_id
        self.weights_sha256 = weights_sha256
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> DenseBackbone:
        # frozen feature extractor: batch-norm statistics never update
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def describe(self) -> dict:
        """What made these features; recorded in every output (house rule 4)."""
        return {
            **asdict(self.config),
            "channels": self.channels,
            "stride": self.stride,
            "weights": self.weights_id,
            "weights_sha256": self.weights_sha256,
        }


def build_backbone(config: BackboneConfig | None = None, **overrides) -> DenseBackbone:
    """Build a dense backbone; ``overrides`` replace fields of ``config`` (or of the default config).

    Raises:
        InputError: unknown backbone, layer, stride or stride mode.
        CheckpointError: weights that cannot be loaded or do not fit the architecture.
    """
    config = replace(config or BackboneConfig(), **overrides)
    spec = _spec(config.name)
    layer = _resolve_layer(spec, config.layer)
    config = replace(config, layer=layer.name)
    stride = _resolve_stride(layer, config.output_stride, config.stride_mode)
    config = replace(config, output_stride=stride)

    with torch.random.fork_rng(devices=[]):  # random init is reproducible and leaves the global RNG alone
        torch.manual_seed(_random_seed(config.weights))
        model = spec.constructor()
    weights_id, weights_sha256 = _load_weights(model, spec.name, config.weights)
    body = _truncate(model, spec, layer)
    _set_output_stride(body, spec, stride, config.stride_mode)
    return DenseBackbone(body, config, layer.channels, stride, weights_id, weights_sha256)


def _spec(name: str) -> _BackboneSpec:
    if name not in _SPECS:
        raise InputError(f"unknown backbone {name!r}", hint=f"choose one of {', '.join(BACKBONE_NAMES)}")
    return _SPECS[name]


def _resolve_layer(spec: _BackboneSpec, layer: str | None) -> LayerInfo:
    wanted = layer or spec.default_layer
    for info in spec.layers:
        if wanted == info.name or wanted in info.aliases:
            return info
    names = ", ".join(info.name + (f" ({'/'.join(info.aliases)})" if info.aliases else "") for info in spec.layers)
    raise InputError(f"backbone {spec.name} has no layer {wanted!r}", hint=f"choose one of {names}")


def _resolve_stride(layer: LayerInfo, output_stride: int | None, mode: str) -> int:
    if mode not in STRIDE_MODES:
        raise InputError(f"unknown stride mode {mode!r}", hint="use 'remove' (CRW) or 'dilate' (DeepLab)")
    if output_stride is None:
        return layer.stride
    if output_stride not in OUTPUT_STRIDES:
        raise InputError(f"output stride {output_stride} is not supported", hint="use 8, 16 or 32")
    # a layer cannot be made coarser than its natural stride; asking for more is a no-op made explicit
    return min(output_stride, layer.stride)


def _random_seed(weights: str) -> int:
    """The seed of random initialisation: "random" is seed 0, "random:N" seed N (ignored for real weights)."""
    if weights.startswith("random:"):
        try:
            return int(weights.split(":", 1)[1])
        except ValueError:
            raise InputError(f"weights {weights!r}: the seed must be an integer", hint="e.g. random:1") from None
    return 0


def _load_weights(model: nn.Module, architecture: str, weights: str) -> tuple[str, str | None]:
    """Load ``weights`` into the full torchvision ``model``; returns (weights id, file sha256)."""
    if weights == "random" or weights.startswith("random:"):
        return f"random:{_random_seed(weights)}", None
    from .checkpoints import apply_state_dict, load_checkpoint
    from .weights_registry import DEFAULT_WEIGHTS, REGISTRY, resolve_weights_path

    name = DEFAULT_WEIGHTS[architecture] if weights == "default" else weights
    if name in REGISTRY:
        entry = REGISTRY[name]
        if entry.architecture != architecture:
            raise InputError(
                f"weights {name!r} are for {entry.architecture}, not {architecture}",
                hint=f"use --backbone {entry.architecture}",
            )
        path = resolve_weights_path(name)
        weights_id = name
    else:
        path = Path(weights)
        if not path.is_file():
            raise InputError(
                f"weights {weights!r} are neither a registry name nor a file",
                hint="see `dense-retrieval checkpoints list`, or pass a checkpoint path",
            )
        weights_id = f"file:{path.name}"
    checkpoint = load_checkpoint(path, architecture)
    apply_state_dict(model, checkpoint, architecture)
    return weights_id, checkpoint.sha256


def _truncate(model: nn.Module, spec: _BackboneSpec, layer: LayerInfo) -> nn.Sequential:
    """Keep the stem and every layer up to and including ``layer``; later layers are dropped."""
    modules: OrderedDict[str, nn.Module] = OrderedDict((name, model.get_submodule(name)) for name in spec.stem)
    for info in spec.layers:
        modules[info.name.replace(".", "_")] = model.get_submodule(info.name)
        if info.name == layer.name:
            break
    return nn.Sequential(modules)


def _set_output_stride(body: nn.Sequential, spec: _BackboneSpec, stride: int, mode: str) -> None:
    """Remove the strides that would take the map below ``1 / stride``; dilate after them if asked."""
    removed = tuple(block.replace(".", "_") for block, after in spec.stride_blocks if after > stride)
    rate = 1
    doubled: set[str] = set()
    for path, conv in body.named_modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        block = next((b for b in removed if path == b or path.startswith(b + ".")), None)
        if block is not None and conv.stride != (1, 1):
            conv.stride = (1, 1)
            if mode == "dilate":
                _dilate(conv, rate)  # the conv that had the stride keeps the previous rate
                if block not in doubled:
                    doubled.add(block)
                    rate *= 2
        elif mode == "dilate" and rate > 1 and conv.kernel_size != (1, 1):
            _dilate(conv, rate)


def _dilate(conv: nn.Conv2d, rate: int) -> None:
    conv.dilation = (rate, rate)
    conv.padding = tuple(rate * (k - 1) // 2 for k in conv.kernel_size)
