"""Video label propagation by feature affinity (CRW and DINO protocols), pure torch.

config.py      PropagationConfig and the CRW / DINO presets (torch-free)
affinity.py    top-k affinities inside spatial windows (tiled) or over a whole frame (chunked)
propagator.py  the context memory, the joint top-k, the label update; streaming API
labels.py      integer label maps <-> soft maps on the feature grid
keypoints.py   keypoints <-> Gaussian label channels on the feature grid, top-k read-out (CRW's JHMDB)
reference.py   a plain dense implementation (full affinity), the reference the tests hold the rest to
"""

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CRW": ".config",
        "DINO": ".config",
        "PRESETS": ".config",
        "PropagationConfig": ".config",
        "KeypointConfig": ".config",
        "gaussian_grid": ".keypoints",
        "read_out": ".keypoints",
        "preset": ".config",
        "count_labels": ".labels",
        "grid_to_labels": ".labels",
        "labels_to_grid": ".labels",
        "LabelPropagator": ".propagator",
        "MemoryFrame": ".propagator",
        "Neighbours": ".propagator",
        "propagate": ".propagator",
        "propagate_step": ".propagator",
    },
)
