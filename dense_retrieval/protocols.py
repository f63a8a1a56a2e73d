"""Named end-to-end protocols: the feature side and the algorithm side of each published evaluation.

A protocol says how features are taken (which layer, output stride and how it is reached, L2
normalisation, input resizing, and the preprocessing recipe of its reference script: decoder, resize
library and filter, rounding, mean/std, :mod:`.backbone.preprocessing`) and what is done with them (the
propagation settings, or the VOC retrieval settings). Vision transformers have no output stride to
choose (patch tokens come at stride = patch size) and may have a feature side of their own
(:meth:`Protocol.features_for`): DINO's resizes frames to a short side of 480 with the long side floored
to a multiple of 64. Commands and the library start from these presets; every CLI option overrides one
field. Adding a protocol means adding one named :class:`Protocol` to :data:`PROTOCOLS`.

Nothing here imports torch: the CLI reads its defaults from this module while printing ``--help``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .backbone.config import BackboneConfig, FeatureConfig
from .backbone.preprocessing import get_preprocessing
from .backbone.specs import STRIDE_MODES, get_spec
from .errors import InputError
from .propagation import config as propagation
from .retrieval.config import VocProtocol


@dataclass(frozen=True)
class FeatureProtocol:
    """The feature side of a protocol.

    Attributes:
        layer: the layer features are taken from; None: the architecture's default layer
            (:attr:`ArchitectureSpec.default_layer`: ResNets layer3 = res4, MobileNetV2 features.13).
        output_stride: 8, 16 or 32; None keeps the layer's natural stride.
        stride_mode: ``"remove"`` (CRW: strides set to 1, no dilation) or ``"dilate"`` (DeepLab).
        l2_normalize: L2-normalise every feature vector over channels.
        resize: the input resize policy (``native``, ``short:N``, ``short:N/M``, ``fixed:HxW``); for a ViT
            both sides are then floored to a multiple of the patch size.
        preprocess: the preprocessing recipe of the protocol's reference script (``--preprocess``
            overrides it): how a file is decoded, resized, rounded and normalised.
    """

    layer: str | None = None
    output_stride: int | None = None
    stride_mode: str = "remove"
    l2_normalize: bool = False
    resize: str = "native"
    preprocess: str = "pil-bicubic"

    def __post_init__(self) -> None:
        if self.stride_mode not in STRIDE_MODES:
            raise InputError(f"unknown stride mode {self.stride_mode!r}", hint="use 'remove' or 'dilate'")
        get_preprocessing(self.preprocess)

    def backbone(
        self,
        name: str,
        weights: str = "default",
        layer: str | None = None,
        output_stride: int | None = None,
        stride_mode: str | None = None,
    ) -> BackboneConfig:
        """The BackboneConfig of architecture ``name`` under this protocol; given values override it."""
        get_spec(name)  # an unknown architecture fails here, naming the known ones
        return BackboneConfig(
            name=name,
            layer=layer or self.layer,
            output_stride=output_stride or self.output_stride,
            stride_mode=stride_mode or self.stride_mode,
            weights=weights,
        )

    def features(self, **overrides: object) -> FeatureConfig:
        """The FeatureConfig of this protocol; ``overrides`` (batch_size, device, preprocess, ...) win."""
        settings = {"resize": self.resize, "preprocess": self.preprocess, "l2_normalize": self.l2_normalize}
        settings.update({key: value for key, value in overrides.items() if value is not None})
        return FeatureConfig(**settings)


@dataclass(frozen=True)
class Protocol:
    """A published evaluation protocol, end to end.

    Attributes:
        name: what users type (``--preset crw``).
        features: how features are taken.
        vit_features: how a vision transformer's features are taken, when the protocol says so (DINO);
            None: :attr:`features` without its output stride.
        propagation: label propagation settings (video protocols).
        voc: segment retrieval settings (VOC protocols).
        source: the paper and code the protocol follows.
    """

    name: str
    features: FeatureProtocol
    propagation: propagation.PropagationConfig | None = None
    voc: VocProtocol | None = None
    source: str = ""
    vit_features: FeatureProtocol | None = None

    def replace(self, **changes: object) -> Protocol:
        return replace(self, **changes)

    def features_for(self, architecture: str) -> FeatureProtocol:
        """The feature side of this protocol for ``architecture``.

        CNNs get :attr:`features`. A ViT gets :attr:`vit_features` (or :attr:`features`) without an output
        stride; a ``short:N/M`` resize whose ``M`` is not a multiple of the patch size (DINO's 64 with
        14-pixel patches) floors the long side to a multiple of the patch size instead.
        """
        spec = get_spec(architecture)
        if spec.transformer is None:
            return self.features
        chosen = replace(self.vit_features or self.features, output_stride=None)
        floor = re.fullmatch(r"short:(\d+)/(\d+)", chosen.resize)
        patch = spec.transformer.patch_size
        if floor and int(floor.group(2)) % patch:
            chosen = replace(chosen, resize=f"short:{floor.group(1)}/{patch}")
        return chosen


_PROPAGATION_FEATURES = FeatureProtocol(output_stride=8, stride_mode="remove", l2_normalize=True, resize="native")

CRW = Protocol(
    "crw",
    replace(_PROPAGATION_FEATURES, preprocess="crw"),
    propagation=propagation.CRW,
    source="Jabri et al., NeurIPS 2020 (ajabri/videowalk code/test.py), as used by Van Gansbeke et al., "
    "NeurIPS 2021 for DAVIS-2017: res4 at output stride 8 by stride removal, L2-normalised, native 480p frames "
    "read by cv2.imread, ImageNet mean/std",
)
"""The paper's DAVIS protocol: layer3 (res4) for ResNets at stride 8 by stride removal, L2, native frames,
CRW's loader (``crw``: OpenCV decode, ImageNet mean/std; a ``--resize`` resizes the /255 frame with OpenCV)."""

DINO = Protocol(
    "dino",
    replace(_PROPAGATION_FEATURES, preprocess="dino"),
    propagation=propagation.DINO,
    source="Caron et al., ICCV 2021 (facebookresearch/dino eval_video_segmentation.py): ViT features of the last "
    "block after the final norm, L2-normalised, frames read by read_frame (cv2.imread, cv2.resize INTER_LINEAR of "
    "the uint8 frame to short side 480 with the long side floored to a multiple of 64, std (0.228, 0.224, 0.225))",
    vit_features=FeatureProtocol(l2_normalize=True, resize="short:480/64", preprocess="dino"),
)
"""DINO's protocol. ViTs: the last block's patch tokens, L2, short side 480 and the long side floored to a
multiple of 64 (854 -> 832, 910 -> 896; /14 models: to a multiple of 14, 480x854 -> 476x854), resized and
normalised as ``read_frame`` does (``dino``). CNNs: DINO's propagation settings and frame preprocessing on
the same features as CRW (layer3 at stride 8, native frames)."""

CRW_JHMDB = Protocol(
    "crw-jhmdb",
    replace(_PROPAGATION_FEATURES, resize="fixed:320x320", preprocess="crw"),
    propagation=propagation.CRW.replace(context=7),
    source="Jabri et al., NeurIPS 2020 (ajabri/videowalk code/data/jhmdb.py, code/test.py): frames stretched to "
    "320x320 by the crw recipe (cv2.imread, / 255, cv2.resize INTER_LINEAR of the float frame), res4 at stride 8 "
    "(a 40x40 grid), L2; first frame + 7 previous, top-10, T=0.05, radius 12; 15 joints as Gaussians of sigma 0.5 "
    "cells, read out as the weighted mean of their 3 best cells",
)
"""CRW's JHMDB keypoint protocol: the DAVIS settings with a context of 7 frames (the paper's JHMDB setting as its
users reproduce it, ajabri/videowalk issue 10) on frames stretched to 320x320 (CRW's loader resizes both sides to
``--cropSize``), preprocessed by the ``crw`` recipe."""

CRW_VIP = Protocol(
    "crw-vip",
    replace(_PROPAGATION_FEATURES, resize="fixed:560x560", preprocess="crw"),
    propagation=propagation.CRW.replace(context=4),
    source="Jabri et al., NeurIPS 2020 (ajabri/videowalk code/data/vos.py, code/eval/eval_vip.py): frames stretched "
    "to 560x560 by the crw recipe, res4 at stride 8, L2; first frame + 4 previous, top-10, T=0.05, radius 12; "
    "predictions upsampled to the network input, argmax, nearest-resized to the annotation",
)
"""CRW's VIP part protocol: the DAVIS settings with a context of 4 frames (ajabri/videowalk issue 10) on frames
stretched to 560x560, preprocessed by the ``crw`` recipe."""

MASKCONTRAST = Protocol(
    "maskcontrast",
    FeatureProtocol(resize="fixed:512x512", preprocess="maskcontrast"),
    voc=VocProtocol(),
    source="Van Gansbeke et al., ICCV 2021 (wvangansbeke/Unsupervised-Semantic-Segmentation): VOC at 512x512 "
    "(cv2.resize: image INTER_CUBIC, labels INTER_NEAREST), mask-pooled (saliency-weighted), L2-normalised, "
    "nearest prototype",
)
"""Segment retrieval on PASCAL VOC. The paper's backbone setting is ResNet-50 layer4 at stride 8 by dilation
(``--layer layer4 --output-stride 8 --stride-mode dilate``); the defaults keep the layer's natural stride."""

SEGMENT_INDEX = Protocol(
    "index",
    FeatureProtocol(preprocess="pil-bicubic"),
    source="dense-retrieval's segment indexes: the architecture's default layer at its natural stride, native size, "
    "PIL decode and bicubic resize, ImageNet mean/std",
)
"""Indexing any image collection: default layer, natural stride, images at their own size."""

HUMMINGBIRD_FEATURES = FeatureProtocol(resize="fixed:512x512", preprocess="hummingbird")
"""The network input of the Hummingbird protocol (Balažević et al., NeurIPS 2023, as open-hummingbird-eval's
validation transform computes it): PIL bilinear resize to 512x512 (a /14 model: floored to 504x504, as
every ViT input is floored to its patch size), std (0.229, 0.224, 0.255) as that code has it (``--preprocess
hummingbird-imagenet`` for ImageNet's 0.225). For any road that runs that protocol."""

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (CRW, DINO, CRW_JHMDB, CRW_VIP, MASKCONTRAST, SEGMENT_INDEX)}
PROPAGATION_PROTOCOLS: tuple[str, ...] = tuple(name for name, p in PROTOCOLS.items() if p.propagation is not None)


def default_propagation_protocol(architecture: str) -> Protocol:
    """The propagation protocol used when none is named: DINO's for a ViT, CRW's (the paper's) otherwise."""
    return DINO if get_spec(architecture).transformer is not None else CRW


def benchmark_protocol(benchmark: str, name: str) -> Protocol:
    """The protocol ``name`` means on ``benchmark``: ``crw`` on ``jhmdb`` is ``crw-jhmdb`` where that exists,
    any other propagation protocol is itself."""
    specific = PROTOCOLS.get(f"{name.lower()}-{benchmark}")
    if specific is not None:
        return specific
    if name.lower() not in PROPAGATION_PROTOCOLS:
        raise InputError(f"unknown propagation preset {name!r}", hint=f"use one of {', '.join(PROPAGATION_PROTOCOLS)}")
    return get_protocol(name)


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``."""
    try:
        return PROTOCOLS[name.lower()]
    except KeyError:
        raise InputError(f"unknown protocol {name!r}", hint=f"use one of {', '.join(PROTOCOLS)}") from None
