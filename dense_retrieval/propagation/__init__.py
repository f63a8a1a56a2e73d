"""Video label propagation by feature affinity (CRW and DINO protocols), pure torch.

config.py      PropagationConfig and the CRW / DINO presets
affinity.py    top-k affinities inside spatial windows (tiled) or over a whole frame (chunked)
propagator.py  the context memory, the joint top-k, the label update; streaming API
labels.py      integer label maps <-> soft maps on the feature grid
"""

from .config import CRW, DINO, PRESETS, PropagationConfig, preset
from .labels import count_labels, grid_to_labels, labels_to_grid
from .propagator import LabelPropagator, MemoryFrame, Neighbours, propagate, propagate_step

__all__ = [
    "CRW",
    "DINO",
    "PRESETS",
    "LabelPropagator",
    "MemoryFrame",
    "Neighbours",
    "PropagationConfig",
    "count_labels",
    "grid_to_labels",
    "labels_to_grid",
    "preset",
    "propagate",
    "propagate_step",
]
