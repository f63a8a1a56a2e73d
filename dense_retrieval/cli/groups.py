"""The command groups. Command modules attach their commands to these apps."""

from __future__ import annotations

from .common import new_app

checkpoints = new_app("List, inspect and download backbone weights.")
synth = new_app("Write small synthetic datasets (DAVIS or VOC layout) with known ground truth.")
davis = new_app("DAVIS video object segmentation: propagate first-frame masks, score results with J&F.")
video = new_app("Propagate a first-frame mask through any video file or frame folder.")
index = new_app("Build and inspect segment indexes (FAISS + SQLite).")
retrieval = new_app("Score segment retrieval by the MaskContrast protocol (PASCAL VOC mIoU).")

ALL = {
    "davis": davis,
    "video": video,
    "index": index,
    "retrieval": retrieval,
    "checkpoints": checkpoints,
    "synth": synth,
}
