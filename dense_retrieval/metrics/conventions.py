"""The scoring conventions (DAVIS J&F, JHMDB PCK, VIP part mIoU) and the J&F table's columns: plain
settings, no numpy, no OpenCV.

Kept apart from the scoring code so that the command line can show the defaults without loading the
libraries the scoring needs (docs/architecture.md, house rule 11).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEFAULT_BOUND_TH = 0.008
"""Boundary matching tolerance of the official evaluation: a fraction of the image diagonal."""
DEFAULT_RECALL_THRESHOLD = 0.5
DEFAULT_DECAY_BINS = 4

GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
VOID_MODES = ("background", "ignore")


@dataclass(frozen=True)
class JFConventions:
    """The scoring conventions; the defaults are those of the official semi-supervised evaluation.

    Attributes:
        skip_first_and_last: leave the first frame (given as input) and the last frame out.
        bound_th: boundary matching tolerance: a fraction of the image diagonal (< 1) or pixels (>= 1).
        void: what annotation pixels labelled 255 do. "background": nothing special, they are simply
            not part of any object (the official semi-supervised evaluation passes no void mask);
            "ignore": they are left out of J and of both masks before boundaries are taken (the
            reference metric functions with a void mask).
        recall_threshold: a frame counts for Recall when its score is strictly above this.
        decay_bins: number of time bins for Decay (first bin minus last bin).
    """

    skip_first_and_last: bool = True
    bound_th: float = DEFAULT_BOUND_TH
    void: str = "background"
    recall_threshold: float = DEFAULT_RECALL_THRESHOLD
    decay_bins: int = DEFAULT_DECAY_BINS

    def __post_init__(self) -> None:
        if self.void not in VOID_MODES:
            raise ValueError(f"void must be one of {VOID_MODES}, got {self.void!r}")
        if not self.bound_th > 0:
            raise ValueError(f"bound_th must be positive, got {self.bound_th}")
        if self.decay_bins < 1:
            raise ValueError(f"decay_bins must be at least 1, got {self.decay_bins}")

    def to_dict(self) -> dict:
        return asdict(self)


PCK_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
"""The thresholds CRW's eval_pck.py prints; papers quote 0.1 and 0.2."""


@dataclass(frozen=True)
class PCKConventions:
    """How keypoints are scored (CRW's ``code/eval/eval_pck.py``; these defaults are its conventions).

    Attributes:
        thresholds: a joint is correct when its distance to the truth, divided by the frame's
            normaliser, is at most the threshold (``<=``).
        box_scale: the normaliser is ``box_scale`` x the diagonal of the box around the frame's scored
            ground-truth joints (CRW: 0.6).
        skip_first: leave out frame 0 (its joints are given as input).
        visible: which joints are scored: ``"predicted"`` (CRW: those with a predicted position; a joint
            whose label channel was empty in frame 0 never has one) or ``"all"`` (a joint without a
            position counts as a miss).
    """

    thresholds: tuple[float, ...] = PCK_THRESHOLDS
    box_scale: float = 0.6
    skip_first: bool = True
    visible: str = "predicted"

    def __post_init__(self) -> None:
        if not self.thresholds or any(not (0 < t < float("inf")) for t in self.thresholds):
            raise ValueError(f"PCK thresholds must be positive numbers, got {self.thresholds}")
        if not self.box_scale > 0:
            raise ValueError(f"box_scale must be positive, got {self.box_scale}")
        if self.visible not in ("predicted", "all"):
            raise ValueError(f"visible must be 'predicted' or 'all', got {self.visible!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PartConventions:
    """How part labels are scored (CRW's ``code/eval/eval_vip.py``; these defaults are its conventions).

    Attributes:
        num_classes: part classes including background (VIP: 20).
        ignore_index: ground-truth value left out (the void of the annotation PNGs).
        skip_first: leave out the first annotated frame. CRW scores it (its prediction is the
            annotation passed through the feature grid and back).
        absent: a class absent from both truth and prediction over the whole set is left out of the
            mean (``"skip"``, CRW's ``nanmean``) or counts 0 (``"zero"``).
    """

    num_classes: int = 20
    ignore_index: int = 255
    skip_first: bool = False
    absent: str = "skip"

    def __post_init__(self) -> None:
        if not 1 <= self.num_classes <= 255:
            raise ValueError(f"num_classes must be 1..255, got {self.num_classes}")
        if self.absent not in ("skip", "zero"):
            raise ValueError(f"absent must be 'skip' or 'zero', got {self.absent!r}")

    def to_dict(self) -> dict:
        return asdict(self)
