"""The demo: what the toolkit does, on the embedded backbone, offline, in about a minute on 2 CPU cores.

Each stage writes one sub-folder of the output folder; a rerun deletes the stage's previous outputs
and recomputes them (never reused). The output folder must be new, empty or an earlier demo's:

    features/     scikit-image's bundled photos beside their feature PCA (the spatial structure of features)
    propagation/  a synthetic DAVIS set, its first-frame masks propagated (CRW protocol), scored with J&F,
                  strips of frames with the propagated masks, a J&F chart
    retrieval/    an index of the bundled photos and a synthetic VOC set, a query and its gallery
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import skimage.data

from .. import protocols
from ..backbone.features import FeatureExtractor
from ..backbone.specs import DEFAULT_ARCHITECTURE
from ..data.atomic import write_json
from ..data.davis import DavisDataset
from ..data.images import write_image
from ..data.synth import make_synthetic_davis
from ..errors import OutputExistsError
from ..viz.charts import figure_to_rgb, jf_bar_chart
from ..viz.layout import caption, resize_to_height, tile
from ..viz.pca import feature_pca_rgb
from ..vos.davis_eval import run_davis_evaluation
from ..vos.davis_run import propagate_davis, sequence_strip
from .retrieval import DEMO_PHOTOS, run_retrieval_demo

DEMO_PROTOCOL = protocols.CRW
"""The embedded ImageNet MobileNetV2 under the paper's DAVIS protocol, as `davis propagate` runs it."""
SUMMARY = "summary.json"
DEMO_DAVIS = {"num_sequences": 3, "num_frames": 20, "size": (240, 427), "seed": 0}


def demo_features(extractor: FeatureExtractor, out: Path) -> dict:
    """Write each bundled photo beside the PCA of its features (``out/<photo>_pca.png``)."""
    written = []
    for name in DEMO_PHOTOS:
        photo = getattr(skimage.data, name)()
        features = extractor.extract([photo]).features[0]
        pca = feature_pca_rgb(features, size=photo.shape[:2])
        pair = tile(
            [caption(resize_to_height(photo, 200), name), caption(resize_to_height(pca, 200), "feature PCA")], 2
        )
        write_image(out / f"{name}_pca.png", pair)
        written.append(str(out / f"{name}_pca.png"))
    return {"photos": list(DEMO_PHOTOS), "files": written}


def demo_propagation(extractor: FeatureExtractor, out: Path) -> dict:
    """Synthetic DAVIS set -> propagated masks -> J&F, strips and a chart, all under ``out``."""
    make_synthetic_davis(out / "davis", **DEMO_DAVIS)
    dataset = DavisDataset(out / "davis", year="2017", split="val")
    results = out / "results"
    run = propagate_davis(dataset, results, extractor, DEMO_PROTOCOL.propagation)
    evaluation, score_files = run_davis_evaluation(dataset.root, results, year="2017", split="val", processes=1)
    strips = []
    for name in dataset.sequences:
        path = out / f"strip_{name}.png"
        write_image(path, sequence_strip(dataset, name, results, count=6, height=120))
        strips.append(str(path))
    chart = {obj_name: (j, f) for obj_name, j, f in evaluation.per_object_table()}
    write_image(out / "jf.png", figure_to_rgb(jf_bar_chart(chart, title="J&F per object (synthetic DAVIS)")))
    return {
        "dataset": str(dataset.root),
        "results": str(results),
        "preset": "crw",
        "frames_per_second": run["frames_per_second"],
        "global": evaluation.global_scores,
        "per_object": {name: {"J": round(j, 3), "F": round(f, 3)} for name, j, f in evaluation.per_object_table()},
        "files": [str(p) for p in score_files.values()] + strips + [str(out / "jf.png")],
    }


def run_demo(out: str | Path, device: str = "auto") -> dict:
    """Run every demo stage into ``out``; returns a summary (also written to ``out/summary.json``).

    Raises:
        OutputExistsError: ``out`` is a non-empty folder that is not an earlier demo's output.
    """
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not (out / SUMMARY).is_file():
        raise OutputExistsError(
            f"{out} is not empty and holds no earlier demo output", hint="pass a new or empty folder with --out"
        )
    start = time.perf_counter()
    features = DEMO_PROTOCOL.features
    extractor = FeatureExtractor.build(features.backbone(DEFAULT_ARCHITECTURE), features.features(device=device))
    summary: dict = {"output": str(out), "backbone": extractor.describe()}
    write_json(out / SUMMARY, {**summary, "status": "running"})  # marks the folder as the demo's
    stages = {
        "features": lambda folder: demo_features(extractor, folder),
        "propagation": lambda folder: demo_propagation(extractor, folder),
        "retrieval": lambda folder: run_retrieval_demo(folder, device=device),
    }
    for stage, run in stages.items():
        began = time.perf_counter()
        folder = out / stage
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        summary[stage] = run(folder)
        summary[stage]["seconds"] = round(time.perf_counter() - began, 1)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    summary["status"] = "complete"
    write_json(out / SUMMARY, summary)
    return summary
