"""MoCo encoders: a torchvision network whose classifier is replaced by the MLP projection head ``fc``.

The parameter names are torchvision's (``conv1.weight``, ``layer3.1.bn2.running_var``, ``features.13...``)
plus ``fc.0.*`` / ``fc.2.*`` for the head (Linear C-C, ReLU, Linear C-dim; MoCo v2's ``--mlp``), for every
architecture. For MobileNetV2 the ``classifier`` is dropped (nothing with parameters is left under that
name) and the head sits under ``fc`` like the ResNets'. So the query encoder of a checkpoint, minus
``fc.``, loads strictly into the plain torchvision model (backbone/weights/checkpoints.py).

``Encoder(x)`` -> ``(pooled, projection)``: ``pooled`` float ``[N, C]`` is the global average pool of the
last feature map (2048 for ResNet-50, 512 for ResNet-18, 1280 for MobileNetV2), the feature the
nearest-neighbour loss searches with; ``projection`` float ``[N, dim]`` is the head's output (not
normalised).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from ..backbone.specs import get_spec
from ..errors import InputError


def trunk_names(arch: str) -> tuple[str, ...]:
    """The torchvision children run before pooling, in order: the spec's stem, then the top-level modules
    holding its layers (ResNets: conv1 .. maxpool, layer1 .. layer4; MobileNetV2: features)."""
    spec = get_spec(arch)
    names = list(spec.stem)
    for layer in spec.layers:
        top = layer.name.split(".")[0]
        if top not in names:
            names.append(top)
    return tuple(names)


def feature_dim(arch: str) -> int:
    """Channels of the pooled feature: the last layer's (512 ResNet-18, 2048 ResNet-50, 1280 MobileNetV2)."""
    return get_spec(arch).layers[-1].channels


class Encoder(nn.Module):
    """A torchvision trunk with an MLP head ``fc``; see the module docstring.

    Args:
        arch: "resnet18", "resnet50" or "mobilenet_v2".
        dim: projection dimension.
        network: the torchvision model to take the trunk from (built with random weights if None).
    """

    def __init__(self, arch: str, dim: int = 128, network: nn.Module | None = None):
        super().__init__()
        spec = get_spec(arch)
        if spec.is_vit:
            raise InputError(f"{arch} is a vision transformer; MoCo pretraining takes a CNN", hint="e.g. resnet50")
        network = network if network is not None else getattr(torchvision.models, spec.constructor)(weights=None)
        self.arch = arch
        self.trunk_names = trunk_names(arch)
        for name in self.trunk_names:
            self.add_module(name, getattr(network, name))
        width = feature_dim(arch)
        self.fc = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, dim))
        self.feature_dim = width

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images
        for name in self.trunk_names:
            x = getattr(self, name)(x)
        pooled = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return pooled, self.fc(pooled)


def build_encoder(arch: str, dim: int, weights: str, seed: int) -> tuple[Encoder, dict]:
    """A query encoder initialised as asked.

    Args:
        arch: the architecture.
        dim: projection dimension.
        weights: "random" (seeded by ``seed``), "random:N" (seed N), a registry name or a checkpoint file
            (its backbone is loaded strictly; the head starts random).
        seed: the seed of random initialisation (trunk when random, and always the head).

    Returns:
        (the encoder, a record of the initialisation: weights id and file sha256).

    Raises:
        InputError / CheckpointError: unknown weights, or a file that does not fit ``arch``.
    """
    random_seed = seed
    if weights.startswith("random:"):
        try:
            random_seed = int(weights.split(":", 1)[1])
        except ValueError:
            raise InputError(f"weights {weights!r}: the seed must be an integer", hint="e.g. random:1") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_seed)
        network = getattr(torchvision.models, get_spec(arch).constructor)(weights=None)
        encoder = Encoder(arch, dim, network)
    if weights == "random" or weights.startswith("random:"):
        return encoder, {"weights": f"random:{random_seed}", "weights_sha256": None}
    from ..backbone.networks import load_weights_file

    weights_id, sha256 = load_weights_file(network, arch, weights, option="--arch")
    return encoder, {"weights": weights_id, "weights_sha256": sha256}
