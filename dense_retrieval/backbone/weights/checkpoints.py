"""Load backbone checkpoints of any supported layout, safely and strictly (I/O; docs/architecture.md, rule 3).

Every file is read with ``torch.load(path, map_location="cpu", weights_only=True)``: a pickle that would
run code (a class whose ``__reduce__`` calls ``os.system``) is refused before anything of it runs.

Layouts understood (the result always carries torchvision key names for CNNs, timm's for ViTs):

- ``moco``: ``{'epoch', 'arch', 'state_dict', 'optimizer'}`` with ``module.encoder_q.*`` (kept, minus its
  ``fc`` projection head), ``module.encoder_k.*``, ``module.queue``, ``module.queue_ptr`` and possibly
  ``module.queue_backbone`` (dropped). The paper's COCO checkpoints and MoCo v2 ImageNet share it.
- ``torchvision``: a plain state dict, classifier included; ``backbone``: the same without the
  classifier (e.g. DINO's published ResNet-50 backbone).
- ``wrapped-state_dict`` / ``wrapped-model``: ``{'state_dict': ...}`` or ``{'model': ...}`` around one of
  the above, with or without DistributedDataParallel's ``module.`` prefix.
- ``dino``: ``{'teacher', 'student', 'optimizer', 'epoch', 'args', 'dino_loss'}`` (DINO's full checkpoints,
  ResNet or ViT); the teacher's ``backbone.*`` is kept (``module.`` stripped: DINO wraps the teacher in
  DDP only when it has batch norms), its ``head.*`` (DINOHead) dropped.
- ViT files (timm names: ``cls_token``, ``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.*``, ``norm.*``):
  ``backbone`` (DINO's ``dino_deitsmall16_pretrain.pth`` etc.: exactly timm's names); ``dinov2``
  (DINOv2 hub files: ``mask_token`` dropped, ``blocks.N.ls1.gamma``/``ls2.gamma`` kept; with registers,
  ``register_tokens`` becomes ``reg_token``, the class position ``pos_embed[:, 0]`` is folded into
  ``cls_token`` and the 1 + 37x37 table keeps its 37x37 patch part, timm's layout for the ``_reg4``
  models); ``mocov3`` (``{'epoch', 'arch', 'state_dict', 'optimizer'}`` with ``module.base_encoder.*``
  kept minus its ``head.*`` projector, ``module.momentum_encoder.*`` and ``module.predictor.*``
  dropped); ``timm`` (timm's own state dict or ``.safetensors``: ``reg_token``, or a classifier
  ``head.*``, which is dropped).

:func:`apply_state_dict` then loads strictly into a full torchvision model (the only keys allowed missing
are the classifier head, and only when the file carries no classifier at all) or a timm ViT without
classifier (every key must be there). MoCo v3's ViT-S (12 heads) has the shapes of the 6-head ViT-S:
its architecture is known from the ``mocov3`` layout only.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

from ...errors import CheckpointError, InputError
from ..specs import ARCHITECTURE_NAMES, ARCHITECTURES
from .download import file_digests, read_recorded_sha256
from .registry import REGISTRY, find_by_digest
from .reuse import remembered

_WRAPPER_KEYS = ("state_dict", "model")
_NAMED_LAYOUTS = ("moco", "mocov3")  # reported as such even inside a {'state_dict': ...} wrapper
_DINO_KEYS = ("teacher", "student")
_SAFE_GLOBALS = [argparse.Namespace]  # DINO stores its argparse options next to the weights
_SHOWN_KEYS = 5
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint reduced to one backbone's weights.

    Attributes:
        state_dict: tensors under torchvision (CNN) or timm (ViT) key names for the architecture.
        checkpoint_format: the layout detected (module docstring).
        dropped_keys: original keys dropped on purpose (momentum encoder, queues, projection heads).
        path: the file read.
        sha256: hex sha256 of the file.
        training: what made a file written by ``dense-retrieval pretrain`` (:func:`training_record`), else None.
    """

    state_dict: dict[str, torch.Tensor]
    checkpoint_format: str
    dropped_keys: tuple[str, ...]
    path: Path
    sha256: str
    training: dict | None = None


def load_checkpoint(path: str | os.PathLike, architecture: str | None = None) -> LoadedCheckpoint:
    """Read a checkpoint file and reduce it to backbone weights with torchvision key names.

    Args:
        path: the checkpoint file.
        architecture: a name of :data:`~..specs.ARCHITECTURES`, checked before the (possibly
            large) file is read; whether the weights fit is :func:`apply_state_dict`'s job. None: no check.

    Raises:
        CheckpointError: missing, unreadable, truncated or unsafe file, or a layout not understood.
        InputError: unknown architecture.
    """
    if architecture is not None:
        _check_architecture(architecture)
    path = Path(path)
    return remembered(path, lambda: _load(path))


def _load(path: Path) -> LoadedCheckpoint:
    payload = _torch_load(path)
    state_dict, checkpoint_format, dropped = _extract(payload, path)
    _check_finite(state_dict, path)
    sha256 = file_digests(path)["sha256"]
    return LoadedCheckpoint(state_dict, checkpoint_format, tuple(dropped), path, sha256, training_record(payload))


def training_record(payload: object) -> dict | None:
    """The ``pretrain`` record of a checkpoint written by ``dense-retrieval pretrain``, without its resume state.

    Returns:
        preset, epoch (completed), step, images, world size, initial weights, versions and the recipe
        (``config``), or None for any other file. RNG and gradient-scaler states are left out.
    """
    record = payload.get("pretrain") if isinstance(payload, Mapping) else None
    if not isinstance(record, Mapping):
        return None
    kept = {key: value for key, value in record.items() if key not in ("rng", "scaler")}
    epoch = payload.get("epoch")
    return {"epoch": epoch if isinstance(epoch, int) else None, "arch": payload.get("arch"), **kept}


def apply_state_dict(model: torch.nn.Module, checkpoint: LoadedCheckpoint, architecture: str) -> None:
    """Load ``checkpoint`` strictly into a full torchvision or timm ``architecture`` model (in place).

    The classifier head may be missing when the file carries none (dropped on purpose or a backbone-only
    file); it then keeps the model's own initialisation. Anything else that does not fit raises.

    Raises:
        CheckpointError: missing or unexpected keys, or shapes that differ (a few of each are named).
    """
    _check_architecture(architecture)
    problems = _mismatch(checkpoint.state_dict, _shapes(model), architecture)
    if problems:
        detected = detect_architecture(checkpoint.state_dict, checkpoint.checkpoint_format)
        hint = (
            f"this file looks like {detected}; use that architecture"
            if detected and detected != architecture
            else "pass a checkpoint made for this architecture (`dense-retrieval checkpoints inspect FILE`)"
        )
        raise CheckpointError(f"checkpoint {checkpoint.path} does not fit {architecture}: {problems}", hint=hint)
    model.load_state_dict(checkpoint.state_dict, strict=False)


def detect_architecture(state_dict: Mapping[str, torch.Tensor], checkpoint_format: str | None = None) -> str | None:
    """The supported architecture whose keys and shapes ``state_dict`` matches exactly, else None.

    ViTs are told apart by embedding width, patch size, depth and registers; MoCo v3's are chosen only for
    the ``mocov3`` layout (their shapes are those of the plain ViT-S/16 and ViT-B/16).
    """
    for architecture in _candidates(state_dict, checkpoint_format):
        if not _mismatch(state_dict, _reference_shapes(architecture), architecture):
            return architecture
    return None


def _candidates(state_dict: Mapping[str, torch.Tensor], checkpoint_format: str | None) -> list[str]:
    """Architectures worth comparing with (building a ViT's reference shapes imports timm: only plausible ones)."""
    if "cls_token" not in state_dict:
        return [name for name in ARCHITECTURE_NAMES if ARCHITECTURES[name].transformer is None]
    patch = state_dict.get("patch_embed.proj.weight")
    blocks = {key.split(".")[1] for key in state_dict if key.startswith("blocks.")}
    registers = state_dict["reg_token"].shape[1] if "reg_token" in state_dict else 0
    found = []
    for name in ARCHITECTURE_NAMES:
        vit = ARCHITECTURES[name].transformer
        if (
            vit is not None
            and vit.embed_dim == state_dict["cls_token"].shape[-1]
            and (patch is None or vit.patch_size == patch.shape[-1])
            and vit.depth == len(blocks)
            and vit.register_tokens == registers
            and name.endswith("_mocov3") == (checkpoint_format == "mocov3")
        ):
            found.append(name)
    return found


def inspect_checkpoint(path: str | os.PathLike, architecture: str | None = None) -> dict:
    """Describe a checkpoint file for people and for ``checkpoints inspect``.

    Args:
        path: the checkpoint file.
        architecture: when given, the file must fit it (CheckpointError naming the keys otherwise).

    Returns:
        format, detected architecture (with a ViT's patch size and register tokens), key counts (kept,
        dropped), tensor and parameter counts, sha256,
        size in bytes, the registry entry it matches (by published or recorded sha256), if any, and the
        ``pretrain`` record of a file written by ``dense-retrieval pretrain`` (None otherwise).
    """
    checkpoint = load_checkpoint(path, architecture)
    detected = detect_architecture(checkpoint.state_dict, checkpoint.checkpoint_format)
    if architecture is not None:
        problems = _mismatch(checkpoint.state_dict, _reference_shapes(architecture), architecture)
        if problems:
            hint = f"this file looks like {detected}" if detected else "it matches no supported architecture"
            raise CheckpointError(f"checkpoint {checkpoint.path} does not fit {architecture}: {problems}", hint=hint)
    arch = architecture or detected
    head = ARCHITECTURES[arch].head_prefix if arch else "\0"
    vit = ARCHITECTURES[arch].transformer if arch else None
    return {
        "path": str(checkpoint.path),
        "size_bytes": checkpoint.path.stat().st_size,
        "sha256": checkpoint.sha256,
        "format": checkpoint.checkpoint_format,
        "architecture": arch,
        "detected_architecture": detected,
        "patch_size": vit.patch_size if vit else None,
        "register_tokens": vit.register_tokens if vit else None,
        "kept_keys": len(checkpoint.state_dict),
        "dropped_keys": len(checkpoint.dropped_keys),
        "dropped_examples": list(checkpoint.dropped_keys[:_SHOWN_KEYS]),
        "has_classifier": any(key.startswith(head) for key in checkpoint.state_dict),
        "tensors": len(checkpoint.state_dict),
        "parameters": int(sum(t.numel() for key, t in checkpoint.state_dict.items() if not key.endswith(_BUFFERS))),
        "values": int(sum(t.numel() for t in checkpoint.state_dict.values())),
        "registry_match": _registry_match(checkpoint),
        "pretrain": checkpoint.training,
    }


def _check_finite(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    """Refuse weights holding NaN or infinity: they make NaN features and empty hits without a word."""
    bad = [key for key, value in state_dict.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise CheckpointError(
            f"checkpoint {path} holds NaN or infinite values in {len(bad)} tensor(s), first {bad[0]}",
            hint="the training run diverged or the file is damaged; use another checkpoint",
        )


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise InputError(f"unknown architecture {architecture!r}; expected one of {', '.join(ARCHITECTURE_NAMES)}")


def _torch_load(path: Path) -> object:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}", hint="check the path")
    if path.suffix == ".safetensors":  # timm's files on the Hugging Face hub; tensors only by design
        return _safetensors_load(path)
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(_SAFE_GLOBALS):
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # noqa: BLE001 - every failure of torch.load becomes one clear message
        text = str(error)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if text.startswith("Weights only load failed") and found:
            raise CheckpointError(
                f"refusing to load {path}: unsafe pickle (it calls or builds {found.group(1)}; "
                "loading it could run arbitrary code)",
                hint="save only tensors: torch.save(model.state_dict(), FILE)",
            ) from None
        opcode = re.search(r"Unsupported operand (\d+)", text)
        problem = f"unexpected pickle opcode {opcode.group(1)}" if opcode else _short(error)
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({problem}); refusing to load it",
            hint="the file may be truncated, not made by torch.save, or a plain pickle; download it again",
        ) from None


def _safetensors_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:  # pragma: no cover - safetensors comes with timm
        raise CheckpointError(
            f"{path}: reading .safetensors needs the safetensors package", hint="pip install timm"
        ) from None
    try:
        return load_file(path, device="cpu")
    except Exception as error:  # noqa: BLE001 - a damaged file becomes one clear message
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({_short(error)})", hint="download it again"
        ) from None


def _extract(payload: object, path: Path) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """Find the backbone state dict in a loaded payload: (state_dict, format, dropped keys)."""
    if not isinstance(payload, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(payload).__name__}, not a dict of tensors",
            hint="save a state dict: torch.save(model.state_dict(), FILE)",
        )
    wrapper = ""
    if any(key in payload for key in _DINO_KEYS) and not _is_state_dict(payload):
        inner = next((payload[key] for key in _DINO_KEYS if isinstance(payload.get(key), Mapping)), None)
        wrapper, payload = "dino", inner
    elif not _is_state_dict(payload):
        key = next((k for k in _WRAPPER_KEYS if isinstance(payload.get(k), Mapping)), None)
        if key is None:
            raise CheckpointError(
                f"{path} has no state dict: top-level keys {_listing(list(map(str, payload)))}",
                hint="supported: a state dict, {'state_dict': ...}, {'model': ...}, {'teacher': ...} (DINO)",
            )
        wrapper, payload = f"wrapped-{key}", payload[key]
    if payload is None or not _is_state_dict(payload):
        raise CheckpointError(
            f"{path} contains no tensors where the weights should be", hint="pass the model's state dict file"
        )
    state_dict = {str(k): v for k, v in payload.items() if isinstance(v, torch.Tensor)}
    dropped = [str(k) for k, v in payload.items() if not isinstance(v, torch.Tensor)]
    state_dict, layout, more = _normalise(state_dict)
    return state_dict, layout if layout in _NAMED_LAYOUTS or not wrapper else wrapper, dropped + more


def _normalise(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """Strip ``module.``, pick the encoder namespace, map ViT layouts to timm: (state dict, layout, dropped)."""
    names = {key: key for key in state_dict}
    if names and all(key.startswith("module.") for key in names):
        names = {key: key[len("module.") :] for key in names}
    for namespace, layout, head in (
        ("encoder_q.", "moco", "fc."),
        ("base_encoder.", "mocov3", "head."),
        ("backbone.", "dino", "fc."),
    ):
        if any(short.startswith(namespace) for short in names.values()):
            kept = {
                short[len(namespace) :]: state_dict[key]
                for key, short in names.items()
                if short.startswith(namespace) and not short.startswith(namespace + head)
            }
            dropped = [
                key
                for key in state_dict
                if not (names[key].startswith(namespace) and names[key][len(namespace) :] in kept)
            ]
            return kept, layout, dropped
    plain = {short: state_dict[key] for key, short in names.items()}
    if "cls_token" in plain:
        return _vit_layout(plain)
    heads = tuple(sorted({spec.head_prefix for spec in ARCHITECTURES.values()}))
    has_head = any(key.startswith(heads) for key in plain)
    return plain, "torchvision" if has_head else "backbone", []


def _vit_layout(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """A plain ViT state dict in timm's names: (state dict, ``dinov2`` | ``timm`` | ``backbone``, dropped)."""
    if "mask_token" in state_dict:  # DINOv2 hub file (masked-token training parameter, unused at inference)
        converted = {key: value for key, value in state_dict.items() if key != "mask_token"}
        if "register_tokens" in converted:  # to timm's no_embed_class layout of the _reg4 models
            positions = converted["pos_embed"]
            converted["reg_token"] = converted.pop("register_tokens")
            converted["cls_token"] = converted["cls_token"] + positions[:, :1]
            converted["pos_embed"] = positions[:, 1:]
        return converted, "dinov2", ["mask_token"]
    head = [key for key in state_dict if key.startswith("head.")]
    kept = {key: value for key, value in state_dict.items() if not key.startswith("head.")}
    return kept, "timm" if head or "reg_token" in state_dict else "backbone", head


def _is_state_dict(value: object) -> bool:
    return isinstance(value, Mapping) and any(isinstance(v, torch.Tensor) for v in value.values())


def _mismatch(state_dict: Mapping[str, torch.Tensor], expected: dict[str, torch.Size], architecture: str) -> str:
    """'' when ``state_dict`` fits ``expected``; else a one-line description of what differs."""
    head = ARCHITECTURES[architecture].head_prefix
    has_head = any(key.startswith(head) for key in state_dict)
    optional = {key for key in expected if key.endswith("num_batches_tracked")}
    if not has_head:
        optional |= {key for key in expected if key.startswith(head)}
    missing = [key for key in expected if key not in state_dict and key not in optional]
    unexpected = [key for key in state_dict if key not in expected]
    shapes = [
        f"{key} {tuple(state_dict[key].shape)} vs {tuple(expected[key])}"
        for key in expected
        if key in state_dict and tuple(state_dict[key].shape) != tuple(expected[key])
    ]
    parts = [
        f"{label} {_listing(keys)}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", shapes),
        )
        if keys
    ]
    return "; ".join(parts)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN_KEYS])
    return f"[{shown}{f' ... and {len(items) - _SHOWN_KEYS} more' if len(items) > _SHOWN_KEYS else ''}]"


def _shapes(model: torch.nn.Module) -> dict[str, torch.Size]:
    return {key: value.shape for key, value in model.state_dict().items()}


@functools.cache
def _reference_shapes(architecture: str) -> dict[str, torch.Size]:
    """Key -> shape of the torchvision or timm model, built on the meta device (no memory, no init cost)."""
    spec = ARCHITECTURES[architecture]
    with torch.device("meta"):
        if spec.transformer is not None:
            from ..vit import create_vit

            vit = spec.transformer
            model = create_vit(spec.constructor, vit.num_heads, vit.pretrain_size)
        else:
            model = getattr(torchvision.models, spec.constructor)(weights=None)
    return _shapes(model)


def _registry_match(checkpoint: LoadedCheckpoint) -> str | None:
    entry = find_by_digest(checkpoint.sha256)
    if entry is not None:
        return entry.name
    if read_recorded_sha256(checkpoint.path) != checkpoint.sha256:
        return None
    return next((e.name for e in REGISTRY.values() if Path(e.file_name).name == checkpoint.path.name), None)


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or error.__class__.__name__
    return f"{error.__class__.__name__}: {text[:160]}"
