"""Checkpoints in the exact key layouts of the public ViT files, written from a timm model's state dict.

The layouts (checked against the public repositories; details in the loader's docstring):

* DINO backbone (``dino_deitsmall16_pretrain.pth``, hubconf.py loads it strictly into DINO's
  VisionTransformer): a plain state dict whose names are timm's: ``cls_token``, ``pos_embed`` (1+14x14
  positions at 224 px for /16), ``patch_embed.proj.*``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,
  mlp.fc1,mlp.fc2}.*``, ``norm.*``.
* DINO full checkpoint (main_dino.py ``save_dict``): ``student`` (DDP: ``module.backbone.*``,
  ``module.head.*``), ``teacher`` (no DDP for a ViT: ``backbone.*``, ``head.*``), ``optimizer``, ``epoch``,
  ``args`` (an argparse.Namespace), ``dino_loss`` (``center``); heads are DINOHead: ``mlp.0/2/4``,
  ``last_layer.weight_g/weight_v``.
* DINOv2 hub file (``dinov2_vits14[_reg4]_pretrain.pth``): ``cls_token``, ``pos_embed`` with 1+37x37
  positions, ``mask_token`` (1, D), ``register_tokens`` (1, 4, D) for ``_reg4``, blocks with
  ``ls1.gamma``/``ls2.gamma``.
* MoCo v3 (``vit-s-300ep.pth.tar``, main_moco.py ``save_checkpoint``): ``{'epoch', 'arch', 'state_dict',
  'optimizer'}`` with ``module.base_encoder.*`` (its ``head.*`` a 3-layer projector), the same under
  ``module.momentum_encoder.``, and ``module.predictor.*``.
"""

from __future__ import annotations

import argparse

import torch

HEAD_DIM, HEAD_OUT, BOTTLENECK = 32, 48, 16  # small stand-ins for DINOHead's 2048/65536/256


def dino_backbone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return dict(state)


def _dino_head(prefix: str, dim: int) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}mlp.0.weight": torch.randn(HEAD_DIM, dim),
        f"{prefix}mlp.0.bias": torch.zeros(HEAD_DIM),
        f"{prefix}mlp.2.weight": torch.randn(HEAD_DIM, HEAD_DIM),
        f"{prefix}mlp.2.bias": torch.zeros(HEAD_DIM),
        f"{prefix}mlp.4.weight": torch.randn(BOTTLENECK, HEAD_DIM),
        f"{prefix}mlp.4.bias": torch.zeros(BOTTLENECK),
        f"{prefix}last_layer.weight_g": torch.ones(HEAD_OUT, 1),
        f"{prefix}last_layer.weight_v": torch.randn(HEAD_OUT, BOTTLENECK),
    }


def dino_full(teacher: dict[str, torch.Tensor], student: dict[str, torch.Tensor]) -> dict:
    dim = teacher["cls_token"].shape[-1]
    return {
        "student": {f"module.backbone.{k}": v for k, v in student.items()} | _dino_head("module.head.", dim),
        "teacher": {f"backbone.{k}": v for k, v in teacher.items()} | _dino_head("head.", dim),
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.0, "weight_decay": 0.04, "params": [0, 1]}]},
        "epoch": 100,
        "args": argparse.Namespace(arch="vit_small", patch_size=16, out_dim=HEAD_OUT, norm_last_layer=True),
        "dino_loss": {"center": torch.zeros(1, HEAD_OUT)},
    }


def dinov2_hub(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """From a timm ``vit_*_patch14[_reg4]_dinov2`` state dict (with registers timm keeps no class position)."""
    out = dict(state)
    dim = state["cls_token"].shape[-1]
    if "reg_token" in out:
        class_position = torch.randn(1, 1, dim) * 0.02
        out["cls_token"] = state["cls_token"] - class_position
        out["pos_embed"] = torch.cat([class_position, state["pos_embed"]], dim=1)
        out["register_tokens"] = out.pop("reg_token")
    out["mask_token"] = torch.zeros(1, dim)
    return out


def mocov3(base: dict[str, torch.Tensor], momentum: dict[str, torch.Tensor]) -> dict:
    dim, hidden, out = base["cls_token"].shape[-1], 32, 16

    def projector(prefix: str) -> dict[str, torch.Tensor]:
        # moco-v3 builder._build_mlp(3, dim, mlp_dim, dim): Linear(no bias), BN, ReLU, ..., BN(affine=False)
        layers = {}
        for i, (a, b) in enumerate(((dim, hidden), (hidden, hidden), (hidden, out))):
            linear, norm = f"{prefix}{3 * i}.", f"{prefix}{3 * i + 1}."
            layers[linear + "weight"] = torch.randn(b, a)
            if i < 2:
                layers[norm + "weight"], layers[norm + "bias"] = torch.ones(b), torch.zeros(b)
            layers[norm + "running_mean"], layers[norm + "running_var"] = torch.zeros(b), torch.ones(b)
            layers[norm + "num_batches_tracked"] = torch.tensor(0)
        return layers

    state = {}
    for encoder, weights in (("base_encoder", base), ("momentum_encoder", momentum)):
        state |= {f"module.{encoder}.{k}": v for k, v in weights.items()} | projector(f"module.{encoder}.head.")
    state |= {
        "module.predictor.0.weight": torch.randn(hidden, out),
        "module.predictor.1.weight": torch.ones(hidden),
        "module.predictor.1.bias": torch.zeros(hidden),
        "module.predictor.1.running_mean": torch.zeros(hidden),
        "module.predictor.1.running_var": torch.ones(hidden),
        "module.predictor.1.num_batches_tracked": torch.tensor(0),
        "module.predictor.3.weight": torch.randn(out, hidden),
    }
    return {"epoch": 300, "arch": "vit_small", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}


def timm_classifier(state: dict[str, torch.Tensor], classes: int = 10) -> dict[str, torch.Tensor]:
    """timm's own state dict of a classification ViT (a supervised file): a ``head`` on top."""
    dim = state["cls_token"].shape[-1]
    return dict(state) | {"head.weight": torch.randn(classes, dim), "head.bias": torch.zeros(classes)}
