"""JHMDB PCK and VIP part mIoU on the synthetic sets, for the embedded ImageNet MobileNetV2 and the same
network with random weights: the numbers the README quotes to show both commands end to end.

    python tools/score_crw_synth.py                      # writes benchmarks/score_crw_synth.json
    python tools/score_crw_synth.py --backbone resnet18  # another network (its weights must be available)

The sets are written by `synth jhmdb` / `synth vip` (walking stick figures with known joints and part
labels, 320x240 frames) and scored under CRW's protocols (`crw-jhmdb`, `crw-vip`) exactly as the
commands do (`jhmdb propagate` + `jhmdb evaluate`, `vip propagate` + `vip evaluate`). These are not
JHMDB or VIP numbers: the datasets are needed for those. The record (tools/benchrecord.py) holds the
inputs, the machine and the scores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from benchrecord import BenchmarkRecord, add_out_argument  # noqa: E402

from dense_retrieval.backbone.features import FeatureExtractor  # noqa: E402
from dense_retrieval.data.jhmdb import JhmdbDataset  # noqa: E402
from dense_retrieval.data.synth import make_synthetic_jhmdb, make_synthetic_vip  # noqa: E402
from dense_retrieval.data.vip import VipDataset  # noqa: E402
from dense_retrieval.propagation.config import CRW_KEYPOINTS  # noqa: E402
from dense_retrieval.protocols import CRW_JHMDB, CRW_VIP  # noqa: E402
from dense_retrieval.vos.jhmdb_eval import run_jhmdb_evaluation  # noqa: E402
from dense_retrieval.vos.jhmdb_run import propagate_jhmdb  # noqa: E402
from dense_retrieval.vos.vip_eval import run_vip_evaluation  # noqa: E402
from dense_retrieval.vos.vip_run import propagate_vip  # noqa: E402


def _extractor(protocol, backbone: str, weights: str) -> FeatureExtractor:
    features = protocol.features_for(backbone)
    return FeatureExtractor.build(features.backbone(backbone, weights=weights), features.features(device="cpu"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--weights", nargs="+", default=["default", "random"])
    parser.add_argument("--jhmdb-videos", type=int, default=4)
    parser.add_argument("--jhmdb-frames", type=int, default=30)
    parser.add_argument("--vip-videos", type=int, default=3)
    parser.add_argument("--vip-frames", type=int, default=12)
    add_out_argument(parser, "score_crw_synth")
    args = parser.parse_args()
    record = BenchmarkRecord("score_crw_synth", args.out)
    work = Path(tempfile.mkdtemp(prefix="score_crw_synth_"))
    jhmdb_manifest = make_synthetic_jhmdb(
        work / "jhmdb", num_videos=args.jhmdb_videos, num_frames=args.jhmdb_frames, size=(240, 320), train_videos=0
    )
    vip_manifest = make_synthetic_vip(work / "vip", num_videos=args.vip_videos, num_frames=args.vip_frames)
    jhmdb, vip = JhmdbDataset(work / "jhmdb"), VipDataset(work / "vip")
    scores = {}
    for weights in args.weights:
        started = time.perf_counter()
        extractor = _extractor(CRW_JHMDB, args.backbone, weights)
        propagate_jhmdb(jhmdb, work / f"jhmdb-{weights}", extractor, CRW_JHMDB.propagation, CRW_KEYPOINTS)
        keypoints, _ = run_jhmdb_evaluation(jhmdb, work / f"jhmdb-{weights}")
        extractor = _extractor(CRW_VIP, args.backbone, weights)
        propagate_vip(vip, work / f"vip-{weights}", extractor, CRW_VIP.propagation)
        parts, _ = run_vip_evaluation(vip, work / f"vip-{weights}")
        scores[weights] = {
            "backbone": extractor.describe()["backbone"],
            "jhmdb": keypoints.headline(),
            "vip": {"miou": parts.miou, "pixel_accuracy": parts.pixel_accuracy},
            "seconds": round(time.perf_counter() - started, 1),
        }
        line = f"PCK@0.1 {100 * keypoints.scores.at(0.1):.1f}, PCK@0.2 {100 * keypoints.scores.at(0.2):.1f}"
        print(f"{args.backbone} weights {weights}: JHMDB-synth {line}; VIP-synth mIoU {100 * parts.miou:.1f}")
    inputs = {
        "jhmdb_synthetic": jhmdb_manifest["params"],
        "vip_synthetic": vip_manifest["params"],
        "protocols": {
            "jhmdb": {"name": CRW_JHMDB.name, "resize": CRW_JHMDB.features.resize, **CRW_JHMDB.propagation.describe()},
            "vip": {"name": CRW_VIP.name, "resize": CRW_VIP.features.resize, **CRW_VIP.propagation.describe()},
            "keypoints": CRW_KEYPOINTS.describe(),
        },
        "note": "synthetic stand-ins of the JHMDB and VIP layouts, not the datasets",
    }
    record.write(inputs=inputs, results=scores)


if __name__ == "__main__":
    main()
