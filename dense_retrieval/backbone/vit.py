"""Vision transformers as dense backbones: timm's VisionTransformer, patch tokens as an NCHW map.

The architecture is timm's (patch embedding, blocks, attention through torch's
``scaled_dot_product_attention`` on CPU and GPU, final LayerNorm); this module only decides which
tokens come out and how the position table meets an input of any size.

Feature contract (the same as DINO's ``get_intermediate_layers(x, n=1)[0]`` for the last block): the
tokens after block ``N`` pass through the model's final norm, the class token and any register tokens
are dropped, and the patch tokens are laid out as ``[B, C, H / p, W / p]`` (stride = patch size ``p``).
Inputs must be a multiple of ``p`` on both sides; the feature extractor resizes frames to one
(:meth:`~dense_retrieval.backbone.config.FeatureConfig.input_size`). Blocks after ``N`` are not kept.

Position tables are interpolated to the token grid the way each release does it (the two ways differ by
about 1% of a smooth table resampled from 14x14 to 30x52, 10% of a white-noise one):

* ``"dino"`` (DINO, DINOv2 without registers): bicubic with scale factor ``(g + 0.1) / M``, no antialias.
* ``"size"`` (DINOv2 with registers; timm's own ``dynamic_img_size``): bicubic to the size, antialias.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError

POSITION_INTERPOLATIONS = ("dino", "size")


@dataclass
class ViTTokens:
    """What one forward pass of a ViT gives.

    Attributes:
        patches: float [B, C, H / p, W / p], the patch tokens after the final norm.
        cls: float [B, C], the class token after the final norm.
        registers: float [B, R, C], the register tokens after the final norm (R = 0 without registers).
    """

    patches: torch.Tensor
    cls: torch.Tensor
    registers: torch.Tensor


def create_vit(constructor: str, num_heads: int, image_size: int, initialise: bool = True) -> nn.Module:
    """timm's VisionTransformer ``constructor`` without classifier, its position table for ``image_size``.

    ``initialise=False`` skips timm's weight initialisation (the weights are loaded next; every tensor is
    checked present).
    """
    import timm  # imported here: ~5 s, paid only when a ViT is built

    return timm.create_model(
        constructor,
        pretrained=False,
        num_classes=0,
        img_size=image_size,
        num_heads=num_heads,
        dynamic_img_size=True,  # patch embedding returns NHWC for any size that is a multiple of the patch
        **({} if initialise else {"weight_init": "skip"}),
    )


class ViTBody(nn.Module):
    """Blocks ``0..block`` of a timm VisionTransformer; ``forward`` gives the NCHW patch-token map.

    Args:
        model: a timm ``VisionTransformer`` built with ``dynamic_img_size=True`` and no classifier.
        block: the index of the block whose output is taken (after the final norm).
        position_interpolation: ``"dino"`` or ``"size"`` (module docstring).
    """

    def __init__(self, model: nn.Module, block: int, position_interpolation: str):
        super().__init__()
        if position_interpolation not in POSITION_INTERPOLATIONS:
            raise ValueError(f"position interpolation {position_interpolation!r} not in {POSITION_INTERPOLATIONS}")
        model.prune_intermediate_layers(indices=[block], prune_norm=False, prune_head=True)
        self.model = model
        self.patch_size = int(model.patch_embed.patch_size[0])
        self.grid = tuple(int(g) for g in model.patch_embed.grid_size)  # the grid the position table is for
        self.position_interpolation = position_interpolation

    @property
    def num_registers(self) -> int:
        return int(self.model.num_reg_tokens)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """float [B, 3, H, W] with H, W multiples of the patch size -> float [B, C, H / p, W / p]."""
        return self.tokens(images).patches

    def tokens(self, images: torch.Tensor) -> ViTTokens:
        """All output tokens of the chosen block, after the final norm (patch map, class, registers)."""
        model, patch = self.model, self.patch_size
        if images.shape[-2] % patch or images.shape[-1] % patch:
            raise InputError(
                f"a ViT with {patch}-pixel patches needs inputs that are a multiple of {patch}, got "
                f"{tuple(images.shape[-2:])}",
                hint="FeatureExtractor resizes images to one (FeatureConfig.input_size)",
            )
        x = model.patch_embed(images)  # [B, h, w, C]
        batch, height, width, channels = x.shape
        table = model.pos_embed
        prefix_positions = 0 if model.no_embed_class else model.num_prefix_tokens
        x = x.reshape(batch, height * width, channels) + self._positions(table[:, prefix_positions:], height, width)
        cls = model.cls_token.expand(batch, -1, -1)
        if prefix_positions:  # DINO / DINOv2 layout: the class token has a position of its own
            cls = cls + table[:, :1]
        prefix = [cls] if model.reg_token is None else [cls, model.reg_token.expand(batch, -1, -1)]
        x = model.norm_pre(torch.cat([*prefix, x], dim=1))
        x = model.norm(model.blocks(x))
        first = 1 + self.num_registers
        patches = x[:, first:].reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        return ViTTokens(patches=patches, cls=x[:, 0], registers=x[:, 1:first])

    def _positions(self, table: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The patch-position table [1, M*M, C] resampled to ``height`` x ``width`` tokens: [1, h*w, C]."""
        rows, cols = self.grid
        if (height, width) == (rows, cols):
            return table
        grid = table.reshape(1, rows, cols, -1).permute(0, 3, 1, 2).float()
        if self.position_interpolation == "dino":
            # DINO's interpolate_pos_encoding: a scale factor with the +0.1 guard, no antialias
            scale = ((height + 0.1) / rows, (width + 0.1) / cols)
            grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
        else:
            grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
        return grid.permute(0, 2, 3, 1).reshape(1, height * width, -1).to(table.dtype)
