"""Dense backbones built by name: the feature layer by name, the output stride by stride removal or dilation.

Two ways to get an output stride below the layer's natural one:

* ``"remove"`` (CRW, Jabri et al. 2020): every strided conv after the target stride is set to stride 1,
  with no dilation. This is what the paper's DAVIS evaluation uses (ResNet-50 ``layer3`` at stride 8).
* ``"dilate"`` (DeepLab): the same strides are removed and the following convs are dilated to keep
  their receptive field (torchvision's ``replace_stride_with_dilation`` convention).

For every input of size H x W the feature map is ``ceil(H / stride) x ceil(W / stride)``.
Layers after the chosen one are not built into the module, so they are never run.

Vision transformers (family ``"vit"``, built by timm in :mod:`.vit`) have no strides to change: their
layer ``blocks.N`` gives patch tokens at stride = patch size, for inputs that are a multiple of it.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import InputError
from .config import BackboneConfig
from .specs import OUTPUT_STRIDES, STRIDE_MODES, ArchitectureSpec, LayerInfo, get_spec
from .vit import ViTBody, ViTTokens, create_vit
from .weights.checkpoints import apply_state_dict, load_checkpoint
from .weights.registry import REGISTRY, resolve_weights_path


class DenseBackbone(nn.Module):
    """A truncated, stride-adjusted backbone in eval mode with frozen parameters.

    ``forward(x)``: float [N, 3, H, W] (ImageNet-normalised RGB) -> float [N, channels, ceil(H/stride), ceil(W/stride)].
    For a ViT, H and W must be multiples of :attr:`input_multiple` (its patch size; 1 for CNNs).
    """

    def __init__(
        self,
        body: nn.Module,
        config: BackboneConfig,
        channels: int,
        stride: int,
        weights_id: str,
        weights_sha256: str | None,
        input_multiple: int = 1,
    ):
        super().__init__()
        self.body = body
        self.input_multiple = input_multiple
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

    def for_inference(self) -> DenseBackbone:
        """A copy that computes the same features with less work: every batch-norm folded into the
        convolution before it (:func:`fold_batch_norm`; features move by float rounding only) and the
        weights in channels-last memory, the layout the extractor feeds. ``describe()`` is unchanged."""
        folded = copy.deepcopy(self)
        fold_batch_norm(folded.body)
        return folded.to(memory_format=torch.channels_last)

    def tokens(self, images: torch.Tensor) -> ViTTokens:
        """A ViT's patch map with its class and register tokens (after the final norm); see :class:`ViTTokens`.

        Raises:
            InputError: the backbone is not a vision transformer.
        """
        if not isinstance(self.body, ViTBody):
            raise InputError(f"{self.config.name} has no class token", hint="use a ViT, e.g. vit_small_patch16")
        return self.body.tokens(images)

    def describe(self) -> dict:
        """What made these features; recorded in every output (docs/architecture.md, house rule 4)."""
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
    spec = get_spec(config.name)
    layer = spec.layer(config.layer)
    config = replace(config, layer=layer.name)
    if spec.transformer is not None:
        return _build_vit(spec, layer, config)
    stride = _resolve_stride(layer, config.output_stride, config.stride_mode)
    config = replace(config, output_stride=stride)

    with torch.random.fork_rng(devices=[]):  # random init is reproducible and leaves the global RNG alone
        torch.manual_seed(_random_seed(config.weights))
        model = getattr(torchvision.models, spec.constructor)(weights=None)
    weights_id, weights_sha256 = _load_weights(model, spec, config.weights)
    body = _truncate(model, spec, layer)
    _set_output_stride(body, spec, stride, config.stride_mode)
    return DenseBackbone(body, config, layer.channels, stride, weights_id, weights_sha256)


def fold_batch_norm(module: nn.Module) -> nn.Module:
    """Fold every batch-norm that directly follows a convolution into that convolution, in place.

    In eval mode ``bn(conv(x))`` is one affine map per channel after the convolution, so the convolution
    can carry it (``torch.nn.utils.fusion.fuse_conv_bn_eval``) and the batch-norm becomes an identity:
    one pass over each activation instead of two, and one allocation less. Pairs are consecutive
    ``Conv2d, BatchNorm2d`` children of an ``nn.Sequential`` (stems, MobileNetV2 blocks, ResNet
    downsample branches) and the ``convN`` / ``bnN`` attributes of torchvision's ResNet blocks, whose
    forward applies each ``bnN`` to ``convN``'s output.

    Args:
        module: a network in eval mode (the batch-norm must use its running statistics).

    Returns:
        ``module`` itself.
    """
    for child in module.children():
        fold_batch_norm(child)
    children = dict(module.named_children())
    names = list(children)
    pairs = list(zip(names, names[1:], strict=False)) if isinstance(module, nn.Sequential) else []
    pairs += [(f"conv{i}", f"bn{i}") for i in range(1, 4)]
    for conv_name, bn_name in pairs:
        conv, bn = children.get(conv_name), children.get(bn_name)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and not bn.training:
            setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(module, bn_name, nn.Identity())
            children[bn_name] = nn.Identity()
    return module


def _build_vit(spec: ArchitectureSpec, layer: LayerInfo, config: BackboneConfig) -> DenseBackbone:
    """A timm VisionTransformer cut after ``layer`` (``blocks.N``), its patch map at stride = patch size."""
    vit = spec.transformer
    assert vit is not None
    if config.stride_mode not in STRIDE_MODES:
        raise InputError(f"unknown stride mode {config.stride_mode!r}", hint="use 'remove' (CRW) or 'dilate' (DeepLab)")
    if config.output_stride not in (None, vit.patch_size):
        raise InputError(
            f"{spec.name} gives patch tokens at stride {vit.patch_size} (its patch size); "
            f"output stride {config.output_stride} is not available",
            hint=f"omit --output-stride, or pass {vit.patch_size}",
        )
    config = replace(config, output_stride=vit.patch_size)
    random = _is_random(config.weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_random_seed(config.weights))
        model = create_vit(spec.constructor, vit.num_heads, vit.pretrain_size, initialise=random)
    weights_id, weights_sha256 = _load_weights(model, spec, config.weights)
    body = ViTBody(model, int(layer.name.split(".")[1]), vit.position_interpolation)
    return DenseBackbone(
        body, config, vit.embed_dim, vit.patch_size, weights_id, weights_sha256, input_multiple=vit.patch_size
    )


def _is_random(weights: str) -> bool:
    return weights == "random" or weights.startswith("random:")


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


def _load_weights(model: nn.Module, spec: ArchitectureSpec, weights: str) -> tuple[str, str | None]:
    """Load ``weights`` into the full torchvision (or timm) ``model``; returns (weights id, file sha256)."""
    if _is_random(weights):
        return f"random:{_random_seed(weights)}", None
    name = spec.default_weights if weights == "default" else weights
    return load_weights_file(model, spec.name, name)


def load_weights_file(model: nn.Module, architecture: str, weights: str, option: str = "--backbone") -> tuple[str, str]:
    """Load registry weights or a checkpoint file strictly into the full ``model``.

    Args:
        weights: a registry name or a checkpoint path.
        option: the command-line option that names the architecture (for the hint on a mismatch).

    Returns:
        (weights id: the registry name or ``file:NAME``, sha256 of the file).
    """
    if weights in REGISTRY:
        entry = REGISTRY[weights]
        if entry.architecture != architecture:
            raise InputError(
                f"weights {weights!r} are for {entry.architecture}, not {architecture}",
                hint=f"use {option} {entry.architecture}",
            )
        path, weights_id = resolve_weights_path(weights), weights
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


def _truncate(model: nn.Module, spec: ArchitectureSpec, layer: LayerInfo) -> nn.Sequential:
    """Keep the stem and every layer up to and including ``layer``; later layers are dropped."""
    modules: OrderedDict[str, nn.Module] = OrderedDict((name, model.get_submodule(name)) for name in spec.stem)
    for info in spec.layers:
        modules[info.name.replace(".", "_")] = model.get_submodule(info.name)
        if info.name == layer.name:
            break
    return nn.Sequential(modules)


def _set_output_stride(body: nn.Sequential, spec: ArchitectureSpec, stride: int, mode: str) -> None:
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
