"""``--eval-davis``: DAVIS J&F of a pretraining checkpoint, by the toolkit's own CRW protocol.

The query encoder of the checkpoint is loaded exactly as ``dense-retrieval davis propagate --checkpoint``
loads it (the MoCo layout, ``encoder_q`` minus its head), features are taken as that command takes them
(ResNets: layer3; MobileNetV2: features.13; output stride 8 by stride removal; L2-normalised; frames at
native size), propagated with the CRW preset and scored like ``dense-retrieval davis evaluate``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def evaluate_checkpoint_on_davis(
    checkpoint: str | os.PathLike,
    arch: str,
    davis_root: str | os.PathLike,
    out: str | os.PathLike,
    year: str = "2017",
    split: str = "val",
    device: str = "auto",
) -> dict:
    """Propagate DAVIS first-frame masks with ``checkpoint``'s query encoder and score them.

    Args:
        checkpoint: a pretraining checkpoint (any MoCo-layout file works).
        arch: its architecture.
        davis_root: the DAVIS folder; year / split: which ImageSets file.
        out: a folder for the masks and score files (replaced; it lies inside the run folder).
        device: where features are computed.

    Returns:
        ``{"J&F": .., "J": .., "F": .., "frames": .., "seconds": ..}`` (means as fractions, 0..1).
    """
    from ..backbone.features import FeatureExtractor
    from ..data.davis import DavisDataset
    from ..data.outputs import remove_owned
    from ..protocols import CRW
    from ..vos.davis_eval import run_davis_evaluation
    from ..vos.davis_run import propagate_davis

    start = time.perf_counter()
    out = Path(out)
    if out.exists() or out.is_symlink():
        remove_owned(out, out.parent)  # the run folder's own eval/ (the previous evaluation)
    protocol = CRW.features_for(arch)
    extractor = FeatureExtractor.build(
        protocol.backbone(arch, weights=str(checkpoint)), protocol.features(device=device)
    )
    dataset = DavisDataset(davis_root, year=year, split=split)
    summary = propagate_davis(dataset, out, extractor, CRW.propagation)
    evaluation, _ = run_davis_evaluation(davis_root, out, year=year, split=split, processes=1)
    scores = evaluation.global_scores
    return {
        "J&F": round(float(scores["J&F-Mean"]), 4),
        "J": round(float(scores["J-Mean"]), 4),
        "F": round(float(scores["F-Mean"]), 4),
        "frames": summary["frames_propagated"],
        "seconds": round(time.perf_counter() - start, 1),
    }
