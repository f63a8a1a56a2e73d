"""The command groups. Every command module attaches its commands to one of these apps with a decorator:
``@groups.root.command("query")`` for a top-level command, ``@groups.davis.command("propagate")`` for
``dense-retrieval davis propagate``. cli/__init__.py imports the command modules and joins the groups."""

from __future__ import annotations

from .common import new_app

root = new_app(
    "Zero-finetune dense retrieval: segment retrieval and video label propagation from a pretrained backbone.\n\n"
    "Start with `dense-retrieval demo`; every command has --help."
)
checkpoints = new_app("List, inspect and download backbone weights.")
synth = new_app("Write small synthetic datasets (DAVIS, VOC, JHMDB or VIP layout) with known ground truth.")
davis = new_app("DAVIS video object segmentation: propagate first-frame masks, score results with J&F.")
jhmdb = new_app("JHMDB pose propagation: propagate frame-0 joints (CRW's protocol), score results with PCK.")
vip = new_app("VIP human-part propagation: propagate the first part map (CRW's protocol), score results with mIoU.")
video = new_app("Propagate a first-frame mask through any video file or frame folder.")
index = new_app("Build and inspect segment indexes (FAISS + SQLite).")
retrieval = new_app("Score segment retrieval by the MaskContrast protocol (PASCAL VOC mIoU).")
bench = new_app("Compare backbones on benchmarks: a matrix of checkpoints x benchmarks, one table (torchrun-ready).")

SUBGROUPS = {
    "davis": davis,
    "jhmdb": jhmdb,
    "vip": vip,
    "video": video,
    "index": index,
    "retrieval": retrieval,
    "checkpoints": checkpoints,
    "synth": synth,
    "bench": bench,
}
