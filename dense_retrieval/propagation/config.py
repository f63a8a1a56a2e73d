"""Propagation settings: one frozen dataclass and the two published presets.

``CRW`` follows the evaluation of Jabri et al., "Space-Time Correspondence as a Contrastive Random
Walk" (NeurIPS 2020, ajabri/videowalk ``code/test.py``), the protocol Van Gansbeke et al. (NeurIPS
2021) used for DAVIS-2017. ``DINO`` follows Caron et al., "Emerging Properties in Self-Supervised
Vision Transformers" (ICCV 2021, facebookresearch/dino ``eval_video_segmentation.py``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ..errors import InputError

WINDOWS = ("disk", "square")
LABEL_RESIZES = ("bilinear", "nearest")
FEEDBACK = ("soft", "hard")


@dataclass(frozen=True)
class PropagationConfig:
    """How first-frame labels travel through a video by feature affinity.

    Target frame ``t`` takes its labels from a context of earlier frames: the first frame (long-term
    memory) plus the ``context`` frames before ``t`` (short-term memory). Every query position keeps
    the ``topk`` context positions with the largest feature dot product, jointly over all context
    frames, weights them by a softmax of ``dot / temperature`` over those ``topk`` and predicts the
    weighted sum of their (soft) labels.

    Attributes:
        context: number of previous frames in the short-term memory (CRW 20, DINO 7).
        topk: neighbours kept per query position, jointly over every context position.
        temperature: softmax temperature on the dot products of the kept neighbours. CRW's published
            command uses 0.05; its argparse default is 0.07.
        radius: spatial restriction on the feature grid, in grid cells; ``None`` = unrestricted.
        window: ``"disk"``: a key is allowed when its Euclidean distance to the query position is
            strictly less than ``radius`` (CRW's MaskedAttention); ``"square"``: when ``|di| <= radius``
            and ``|dj| <= radius`` (DINO's neighbourhood mask).
        restrict_first: apply the window to the first frame too (DINO); CRW leaves it global.
        fill_with_first: before ``context`` frames exist, the short-term slots hold copies of the first
            frame and its labels (CRW). ``False``: the context grows from the first frame alone and the
            first frame is only long-term memory (DINO).
        label_resize: how the first-frame one-hot labels reach the feature grid: ``"bilinear"`` (CRW)
            or ``"nearest"`` (pixel-centre sampling, as DINO's PIL resize).
        feedback: ``"soft"``: predicted label distributions return as context labels (both presets);
            ``"hard"``: their one-hot argmax does.
        normalize_prediction: before the argmax, rescale each label channel of the upsampled
            prediction to [0, 1] (DINO's ``norm_mask``; CRW's ``--norm_mask``, off by default).
        query_chunk: query positions per matrix product against an unrestricted frame (memory and speed
            only: 256 keeps one chunk's scores near the cache).
        tile: side of the square query tiles for windowed frames (speed only; results do not change).
    """

    context: int = 20
    topk: int = 10
    temperature: float = 0.05
    radius: float | None = 12.0
    window: str = "disk"
    restrict_first: bool = False
    fill_with_first: bool = True
    label_resize: str = "bilinear"
    feedback: str = "soft"
    normalize_prediction: bool = False
    query_chunk: int = 256
    tile: int = 6

    def __post_init__(self) -> None:
        checks = [
            (self.context >= 0, f"context must be >= 0 frames, got {self.context}"),
            (self.topk >= 1, f"topk must be >= 1, got {self.topk}"),
            (
                self.temperature > 0 and math.isfinite(self.temperature),
                f"temperature must be > 0, got {self.temperature}",
            ),
            (self.radius is None or self.radius > 0, f"radius must be > 0 grid cells or None, got {self.radius}"),
            (self.window in WINDOWS, f"window must be one of {WINDOWS}, got {self.window!r}"),
            (
                self.label_resize in LABEL_RESIZES,
                f"label_resize must be one of {LABEL_RESIZES}, got {self.label_resize!r}",
            ),
            (self.feedback in FEEDBACK, f"feedback must be one of {FEEDBACK}, got {self.feedback!r}"),
            (self.query_chunk >= 1, f"query_chunk must be >= 1, got {self.query_chunk}"),
            (self.tile >= 1, f"tile must be >= 1, got {self.tile}"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message, hint="see PropagationConfig's documentation for the allowed values")

    @property
    def max_offset(self) -> int | None:
        """Largest ``|di|`` (or ``|dj|``) a window allows, or ``None`` when unrestricted."""
        if self.radius is None:
            return None
        if self.window == "square":
            return int(math.floor(self.radius))
        return int(math.ceil(self.radius)) - 1  # largest integer d with d*d < radius*radius

    def replace(self, **changes: object) -> PropagationConfig:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    def describe(self) -> dict:
        """Plain-dict form, recorded next to results."""
        return asdict(self)


CRW = PropagationConfig()
"""Jabri et al. 2020 as used for DAVIS-2017 by the paper: first frame (global) + 20 previous frames,
top-10 jointly over all context positions, temperature 0.05, Euclidean radius 12 (strictly less) on the
short-term frames only, short-term slots initially filled with frame-0 copies, soft labels fed back,
first-frame one-hot labels bilinearly resized to the grid, predictions bilinearly upsampled, argmax."""

DINO = PropagationConfig(
    context=7,
    topk=5,
    temperature=0.1,
    radius=12.0,
    window="square",
    restrict_first=True,
    fill_with_first=False,
    label_resize="nearest",
    feedback="soft",
    normalize_prediction=True,
)
"""Caron et al. 2021: first frame + 7 previous frames (no frame-0 copies), top-5, temperature 0.1,
square window ``|di|, |dj| <= 12`` on every context frame including the first, nearest-downsampled
first-frame labels, per-channel min-max normalisation of the upsampled prediction before the argmax."""

PRESETS: dict[str, PropagationConfig] = {"crw": CRW, "dino": DINO}


def preset(name: str) -> PropagationConfig:
    """The preset called ``name`` (``"crw"`` or ``"dino"``)."""
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise InputError(f"unknown propagation preset {name!r}", hint=f"use one of {', '.join(PRESETS)}") from None


@dataclass(frozen=True)
class KeypointConfig:
    """How keypoints become label channels and come back (:mod:`.keypoints`; CRW's JHMDB protocol).

    Attributes:
        sigma: width in grid cells of the Gaussian each joint becomes (CRW: 0.5).
        readout_topk: a joint's position is the value-weighted mean of its channel's best cells (CRW: 3).
    """

    sigma: float = 0.5
    readout_topk: int = 3

    def __post_init__(self) -> None:
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise InputError(f"sigma must be a positive number of grid cells, got {self.sigma}", hint="CRW uses 0.5")
        if self.readout_topk < 1:
            raise InputError(f"the read-out needs at least one cell, got {self.readout_topk}", hint="CRW uses 3")

    def describe(self) -> dict:
        """Plain-dict form, recorded next to results."""
        return asdict(self)


CRW_KEYPOINTS = KeypointConfig()
"""Jabri et al. 2020 on JHMDB: Gaussians of sigma 0.5 cells, read out as the weighted mean of the 3 best cells."""
