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
synth = new_app("Write small synthetic datasets (DAVIS, VOC or ADE20K layout) with known ground truth.")
davis = new_app("DAVIS video object segmentation: propagate first-frame masks, score results with J&F.")
video = new_app("Propagate a first-frame mask through any video file or frame folder.")
index = new_app("Build and inspect segment indexes (FAISS + SQLite).")
retrieval = new_app(
    "Score retrieval: segments by the MaskContrast protocol (eval-voc), patches by the Hummingbird protocol "
    "(eval-dense)."
)

SUBGROUPS = {
    "davis": davis,
    "video": video,
    "index": index,
    "retrieval": retrieval,
    "checkpoints": checkpoints,
    "synth": synth,
}
