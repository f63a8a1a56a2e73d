"""Regenerate the README's `bench` figure: backbones x benchmarks on synthetic data, offline, on the CPU.

    python tools/make_bench_figure.py            # docs/bench_report.png and docs/bench_table.md

The matrix of issue 20, at the demo's sizes: the embedded ImageNet MobileNetV2, a random ResNet-18 and every
kept checkpoint of a short `pretrain` run (ours-cpu recipe on ResNet-18, 3 epochs on the synthetic images), on a
synthetic DAVIS-2017 set (3 sequences of 20 frames, 240x427) and a synthetic VOC set (24 train + 16 val images,
256 px, protocol size 256 instead of 512). The numbers describe synthetic data only: they show what the
report looks like, not how the backbones compare on DAVIS or VOC. Intermediate data lives in a temporary
folder; only the PNG and the Markdown table are written.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from dense_retrieval.bench.report import load_matrix, table_rows, write_report  # noqa: E402
from dense_retrieval.bench.schedule import run_bench  # noqa: E402
from dense_retrieval.bench.spec import read_spec  # noqa: E402
from dense_retrieval.data.synth import make_synthetic_davis, make_synthetic_voc  # noqa: E402
from dense_retrieval.pretrain.config import RunOptions, get_preset  # noqa: E402
from dense_retrieval.pretrain.trainer import run_pretraining  # noqa: E402

SPEC = """[run]
device = "cpu"

[[backbone]]
label = "mobilenet_v2-imagenet"
weights = "default"

[[backbone]]
label = "resnet18-random"
arch = "resnet18"
weights = "random:0"

[[backbone]]
label = "resnet18-pretrained"
pretrain_run = "run"

[benchmark.davis]
root = "davis"

[benchmark.voc]
root = "voc"
size = 256
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=PROJECT_ROOT / "docs", help="Where the figure goes.")
    parser.add_argument("--epochs", type=int, default=3, help="Epochs of the pretraining run (one row each).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-figure-") as work:
        work = Path(work)
        make_synthetic_davis(work / "davis", num_sequences=3, num_frames=20, size=(240, 427), seed=0)
        make_synthetic_voc(work / "voc", num_train=24, num_val=16, size=256, seed=0)
        recipe = replace(get_preset("ours-cpu"), epochs=args.epochs, queue_size=32, batch_size=16)
        data = [work / "voc" / "JPEGImages", work / "davis" / "JPEGImages" / "480p"]
        run_pretraining(data, recipe, RunOptions(out=work / "run", keep_every=1, workers=0, device="cpu"), print)
        (work / "bench.toml").write_text(SPEC)
        run_bench(read_spec(work / "bench.toml"), work / "synthetic-matrix", log=print)
        matrix = load_matrix(work / "synthetic-matrix")
        files = write_report(matrix, work / "synthetic-matrix" / "report")
        args.docs.mkdir(parents=True, exist_ok=True)
        shutil.copy(files["report.png"], args.docs / "bench_report.png")
        rows = table_rows(matrix)
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        (args.docs / "bench_table.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.docs / 'bench_report.png'} and {args.docs / 'bench_table.md'}")


if __name__ == "__main__":
    main()
