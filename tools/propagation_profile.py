"""Per-operator profile of one real frame of ``davis propagate``, run inside any tree of the package.

    PYTHONPATH=TREE python tools/propagation_profile.py --davis-root D --sequence blackswan --frame 30

The frames before ``--frame`` are embedded and propagated first (not profiled), so the target has the
context the command gives it (CRW: frame 0 + the 20 frames before). Then the target goes through the
stages one after the other, each under ``torch.profiler`` (CPU, one torch thread, so operator times are
CPU times): decode (JPEG), features (embedded MobileNetV2 features.13, stride 8, L2), propagation (the
neighbour search and the weighted labels: ``LabelPropagator.step``), labels (upsampling to the frame and
argmax) and write (the PNG). Prints one JSON document: per stage its time and every operator's self CPU
time and calls. Works with the package's current layout and with the flat one of older trees (0021210).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

import dense_retrieval

_PACKAGE = Path(dense_retrieval.__file__).parent  # the tree's package (PYTHONPATH)


def _api() -> dict:
    """The functions the profile needs, from whichever layout this tree has (decided by its files: an
    editable install of another checkout could otherwise answer for the modules this tree lacks)."""
    if (_PACKAGE / "backbone" / "features.py").is_file():
        from dense_retrieval.backbone.config import FeatureConfig
        from dense_retrieval.backbone.features import FeatureExtractor
        from dense_retrieval.backbone.networks import build_backbone
    else:  # the flat layout of older trees
        from dense_retrieval.backbones import build_backbone
        from dense_retrieval.features import FeatureConfig, FeatureExtractor
    from dense_retrieval.data.davis import DavisDataset
    from dense_retrieval.data.images import read_image
    from dense_retrieval.data.masks import write_label_png
    from dense_retrieval.propagation import CRW, LabelPropagator, grid_to_labels, labels_to_grid

    if (_PACKAGE / "runtime.py").is_file():  # what the command line does first, in the trees that have it
        from dense_retrieval.runtime import tune_allocator

        tune_allocator()
    return {
        "FeatureConfig": FeatureConfig,
        "FeatureExtractor": FeatureExtractor,
        "build_backbone": build_backbone,
        "DavisDataset": DavisDataset,
        "read_image": read_image,
        "write_label_png": write_label_png,
        "CRW": CRW,
        "LabelPropagator": LabelPropagator,
        "grid_to_labels": grid_to_labels,
        "labels_to_grid": labels_to_grid,
    }


def _operators(profiled) -> list[dict]:
    """Every operator of a profile: name, self CPU ms, calls; largest first."""
    rows = [
        {"op": event.key, "self_cpu_ms": round(event.self_cpu_time_total / 1e3, 3), "calls": event.count}
        for event in profiled.key_averages()
        if event.self_cpu_time_total > 0
    ]
    return sorted(rows, key=lambda row: -row["self_cpu_ms"])


def profile_frame(davis_root: str, sequence: str, target: int) -> dict:
    """Stage times and operators of frame ``target`` of ``sequence`` (see the module docstring)."""
    api = _api()
    torch.set_num_threads(1)
    dataset = api["DavisDataset"](davis_root, year="2016")
    paths = dataset.sequence(sequence).frames[: target + 1]
    first = np.asarray(dataset.first_frame_labels(sequence))
    backbone = api["build_backbone"](name="mobilenet_v2", layer="features.13", output_stride=8)
    if (_PACKAGE / "protocols.py").is_file():  # the CRW protocol's feature settings (its preprocessing)
        from dense_retrieval.protocols import CRW as crw_protocol

        config = crw_protocol.features.features(batch_size=1, device="cpu")
    else:
        config = api["FeatureConfig"](l2_normalize=True, batch_size=1, device="cpu")
    extractor = api["FeatureExtractor"](backbone, config)
    if hasattr(extractor, "fuse_for_video"):  # trees whose frame loop runs the fused CNN: as the command does
        extractor.fuse_for_video()
    propagator = api["LabelPropagator"](api["CRW"])
    decoder = getattr(getattr(extractor, "preprocessing", None), "decode", None)  # trees with recipes
    read = (lambda path: api["read_image"](path, decoder)) if isinstance(decoder, str) else api["read_image"]
    with torch.inference_mode():
        for index, path in enumerate(paths[:-1]):
            features = extractor.forward_batch([read(path)])[0]
            if index == 0:
                grid = api["labels_to_grid"](first, int(first.max()) + 1, tuple(features.shape[1:]))
                propagator.start(features, grid)
            else:
                propagator.step(features)
    stages: dict[str, dict] = {}
    state: dict = {}

    def stage(name: str, work) -> None:
        with profile(activities=[ProfilerActivity.CPU]) as profiled:
            began, began_cpu = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                work()
            elapsed, cpu = time.perf_counter() - began, time.process_time() - began_cpu
        stages[name] = {"wall_ms": round(elapsed * 1e3, 1), "cpu_ms": round(cpu * 1e3, 1), "ops": _operators(profiled)}

    with tempfile.TemporaryDirectory() as tmp:
        stage("decode", lambda: state.update(frame=read(paths[-1])))
        stage("features", lambda: state.update(features=extractor.forward_batch([state["frame"]])[0]))
        stage("propagation", lambda: state.update(soft=propagator.step(state["features"])))
        stage("labels", lambda: state.update(labels=_labels(api, state["soft"], first.shape)))
        stage("write", lambda: api["write_label_png"](Path(tmp) / "frame.png", state["labels"], binary=True))
    return {
        "sequence": sequence,
        "frame": target,
        "frame_size": f"{state['frame'].shape[1]}x{state['frame'].shape[0]}",
        "grid": list(state["features"].shape[1:]),
        "channels": int(state["features"].shape[0]),
        "context": "frame 0 + the 20 frames before (CRW)",
        "threads": torch.get_num_threads(),
        "package": str(_PACKAGE.resolve()),
        "modules": sorted(
            {
                str(Path(module.__file__).resolve())
                for module in (sys.modules[name] for name in list(sys.modules) if name.startswith("dense_retrieval"))
                if getattr(module, "__file__", None)
            }
        ),
        "stages": stages,
    }


def _labels(api: dict, soft: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    return api["grid_to_labels"](soft, size).to(torch.uint8).numpy()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--davis-root", required=True)
    parser.add_argument("--sequence", default="blackswan")
    parser.add_argument("--frame", type=int, default=30)
    args = parser.parse_args()
    print(json.dumps(profile_frame(args.davis_root, args.sequence, args.frame)))
