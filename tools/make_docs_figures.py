"""Regenerate the README's figures under docs/, offline, from the embedded ImageNet MobileNetV2.

    python tools/make_docs_figures.py                       # both figures into docs/
    python tools/make_docs_figures.py --only strip --davis-root PATH --sequence libby

docs/retrieval_gallery.png
    The retrieval demo's index (scikit-image photos with k-means segments + a synthetic VOC train split
    with ground-truth segments); the objects of two validation images query it, top 4 hits each.
docs/propagation_strip.png
    First-frame masks propagated (CRW protocol, features at output stride 8) through a DAVIS-2016
    sequence of davis16-mini when it is found (features from frames resized to a 240-pixel short side,
    masks scored and drawn at 480p), else through a synthetic DAVIS sequence.

Intermediate data lives in a temporary folder; only the PNGs are written (atomically). The PNGs are
stored with an adaptive 256-colour palette to stay small; on the CPU the output is the same on every run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from dense_retrieval import (  # noqa: E402
    DavisDataset,
    FeatureExtractor,
    ProposalConfig,
    SegmentIndex,
    VocDataset,
    propagate_davis,
    protocols,
    query_proposals,
    render_gallery,
)
from dense_retrieval.backbone.specs import DEFAULT_ARCHITECTURE  # noqa: E402
from dense_retrieval.data.atomic import atomic_path  # noqa: E402
from dense_retrieval.data.synth import make_synthetic_davis  # noqa: E402
from dense_retrieval.demo.retrieval import run_retrieval_demo  # noqa: E402
from dense_retrieval.vos.davis_run import sequence_strip  # noqa: E402

DEFAULT_SEQUENCE = "motocross-jump"


def davis_mini_root() -> Path | None:
    """../shared/data/davis16-mini or $DENSE_RETRIEVAL_DAVIS_MINI, when present."""
    for candidate in (os.environ.get("DENSE_RETRIEVAL_DAVIS_MINI"), PROJECT_ROOT.parent / "shared/data/davis16-mini"):
        if candidate and (Path(candidate) / "JPEGImages").is_dir():
            return Path(candidate)
    return None


def retrieval_gallery(work: Path, device: str) -> tuple[np.ndarray, str]:
    """Build the demo's index in ``work`` and query it with the objects of two validation images."""
    features = protocols.SEGMENT_INDEX.features
    extractor = FeatureExtractor.build(features.backbone(DEFAULT_ARCHITECTURE), features.features(device=device))
    run_retrieval_demo(work, extractor)
    val = VocDataset(work / "voc", "val")
    gt = ProposalConfig(method="gt", gt_root=str(val.root))
    with SegmentIndex.open(work / "index") as index:
        results = [r for i in val.ids[:2] for r in query_proposals(index, extractor, val.image_path(i), gt, k=4)]
    return render_gallery(results, height=96), f"{len(results)} queries of synthetic VOC val images, top 4 hits"


def propagation_strip(work: Path, davis_root: Path | None, sequence: str, device: str) -> tuple[np.ndarray, str]:
    """Propagate one sequence and draw evenly spaced frames with their propagated masks."""
    protocol = protocols.CRW
    if davis_root is not None:
        dataset = DavisDataset(davis_root, year="2016")
        features = protocol.features.features(resize="short:240", device=device)
        source = f"{sequence} ({davis_root.name}, features at short side 240)"
    else:
        make_synthetic_davis(work / "synth-davis", num_sequences=2, num_frames=24, size=(240, 427), year="2017")
        dataset = DavisDataset(work / "synth-davis", year="2017")
        sequence = dataset.sequences[1]
        features = protocol.features.features(device=device)
        source = f"{sequence} (synthetic)"
    extractor = FeatureExtractor.build(protocol.features.backbone(DEFAULT_ARCHITECTURE), features)
    propagate_davis(dataset, work / "results", extractor, protocol.propagation, sequences=[sequence])
    return sequence_strip(dataset, sequence, work / "results", count=8, height=96), source


def write_png(path: Path, rgb: np.ndarray) -> int:
    """Write ``rgb`` uint8 [H, W, 3] as a 256-colour PNG, atomically; returns the file size."""
    image = Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs", help="folder for the PNGs")
    parser.add_argument("--only", choices=("gallery", "strip"), help="make one figure only")
    parser.add_argument("--davis-root", type=Path, help="a DAVIS-2016 root (default: davis16-mini if found)")
    parser.add_argument("--synthetic", action="store_true", help="draw the strip from synthetic data only")
    parser.add_argument("--sequence", default=DEFAULT_SEQUENCE, help="the DAVIS sequence of the strip")
    parser.add_argument("--device", default="cpu", help="torch device (cpu keeps the PNGs reproducible)")
    args = parser.parse_args()
    davis_root = None if args.synthetic else (args.davis_root or davis_mini_root())
    with tempfile.TemporaryDirectory(prefix="docs-figures-") as tmp:
        work = Path(tmp)
        jobs = {
            "gallery": ("retrieval_gallery.png", lambda: retrieval_gallery(work / "retrieval", args.device)),
            "strip": (
                "propagation_strip.png",
                lambda: propagation_strip(work / "propagation", davis_root, args.sequence, args.device),
            ),
        }
        for key, (name, make) in jobs.items():
            if args.only not in (None, key):
                continue
            start = time.perf_counter()
            picture, what = make()
            size = write_png(args.out / name, picture)
            print(
                f"{args.out / name}: {picture.shape[1]}x{picture.shape[0]}, {size / 1000:.0f} kB, {what}, "
                f"{time.perf_counter() - start:.0f} s"
            )


if __name__ == "__main__":
    main()
