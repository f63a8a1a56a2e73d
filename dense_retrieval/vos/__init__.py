"""Video label propagation: the frame loop, the benchmark runners (DAVIS, JHMDB, VIP), their scoring.

frames.py      the one frame loop: frames -> features -> propagated soft labels (or label maps); the run record
results_run.py a results folder filled one video at a time: resumable, locked, one configuration
davis_run.py   propagate every DAVIS sequence into a resumable results folder
jhmdb_run.py   propagate JHMDB's frame-0 joints (Gaussian channels, top-3 read-out), one JSON file per video
vip_run.py     propagate VIP's first part map, one folder of part PNGs per video
video_run.py   propagate through any video file or frame folder; masks plus an overlay picture
davis_eval.py  J&F exactly as the official DAVIS evaluation, in parallel, never reusing old results
jhmdb_eval.py  PCK as CRW's eval_pck.py;  vip_eval.py  part mIoU as CRW's eval_vip.py
"""

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "check_first_mask": ".frames",
        "propagate_frames": ".frames",
        "propagate_soft": ".frames",
        "propagate_jhmdb": ".jhmdb_run",
        "run_jhmdb_evaluation": ".jhmdb_eval",
        "propagate_vip": ".vip_run",
        "run_vip_evaluation": ".vip_eval",
        "propagate_davis": ".davis_run",
        "sequence_strip": ".davis_run",
        "write_propagation": ".video_run",
        "evaluate_davis": ".davis_eval",
        "run_davis_evaluation": ".davis_eval",
    },
)
