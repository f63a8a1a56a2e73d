"""Video object segmentation: the frame loop, DAVIS and video runners, DAVIS scoring.

frames.py      the one frame loop: frames -> features -> propagated label maps; the run record
davis_run.py   propagate every DAVIS sequence into a resumable results folder
video_run.py   propagate through any video file or frame folder; masks plus an overlay picture
davis_eval.py  J&F exactly as the official DAVIS evaluation, in parallel, never reusing old results
"""

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "check_first_mask": ".frames",
        "propagate_frames": ".frames",
        "propagate_davis": ".davis_run",
        "sequence_strip": ".davis_run",
        "write_propagation": ".video_run",
        "evaluate_davis": ".davis_eval",
        "run_davis_evaluation": ".davis_eval",
    },
)
