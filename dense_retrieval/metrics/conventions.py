"""The J&F scoring conventions and the global table's columns: plain settings, no numpy, no OpenCV.

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
