"""torch's own CPU options for the feature network of ``davis propagate``, against what the toolkit runs.

    python tools/bench_feature_variants.py                     # 4 davis16-mini frames, 1 thread
    python tools/bench_feature_variants.py --threads 2 --frames 8

The network is the default of ``davis propagate``: the embedded MobileNetV2 features.13 at output stride
8, batch-norm folded (what ``FeatureExtractor`` runs), on real 854x480 frames (davis16-mini; random frames
of that size when it is absent, said so). Each variant runs in its own process (so compile caches and
oneDNN state do not leak between them), frames one at a time, with ``--threads`` torch threads (1: the
feature thread of the frame loop has one):

- ``eager-nchw``: plain NCHW tensors and weights;
- ``eager-channels-last``: channels-last tensors and weights (what the toolkit runs);
- ``jit-freeze``: ``torch.jit.trace`` + ``torch.jit.freeze`` (oneDNN convolutions with fused activations);
- ``onednn-graph``: the same with ``torch.jit.enable_onednn_fusion(True)`` (oneDNN Graph);
- ``compile``: ``torch.compile`` (inductor, CPU), ``freezing=True``, with an empty inductor cache as a
  first run has it.

Reported per variant: CPU seconds per frame (best of ``--repeat`` passes over the frames), the one-off
cost (tracing or compiling, CPU seconds, and wall), the largest feature difference to the eager
channels-last features, and whether the saving pays the one-off cost back over davis16-mini's 179 frames.
The record: ``--out`` (default benchmarks/bench_feature_variants.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from benchrecord import BenchmarkRecord, add_out_argument, davis_input, frame_size_warning  # noqa: E402

VARIANTS = ("eager-nchw", "eager-channels-last", "jit-freeze", "onednn-graph", "compile")
FRAMES_OF_DAVIS16_MINI = 179


def _frames(root: str | None, count: int):
    import numpy as np

    from dense_retrieval.data.images import read_image

    if root:
        paths = sorted((Path(root) / "JPEGImages" / "480p" / "blackswan").glob("*.jpg"))[:count]
        return [read_image(path) for path in paths]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (480, 854, 3), dtype=np.uint8) for _ in range(count)]


def variant(name: str, root: str | None, count: int, threads: int, repeat: int) -> dict:
    """One variant in this process: per-frame CPU time, one-off cost, features (saved for the comparison)."""
    import torch

    from dense_retrieval.backbone.features import FeatureExtractor
    from dense_retrieval.backbone.networks import build_backbone
    from dense_retrieval.protocols import CRW

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    backbone = build_backbone(CRW.features.backbone("mobilenet_v2"))  # features.13 at output stride 8
    extractor = FeatureExtractor(backbone, CRW.features.features(batch_size=1, device="cpu"))
    network = extractor.backbone
    inputs = [extractor.network_input([frame]) for frame in _frames(root, count)]  # channels-last float
    if name == "eager-nchw":
        network = network.to(memory_format=torch.contiguous_format)
        inputs = [x.contiguous() for x in inputs]
    began_cpu, began = time.process_time(), time.perf_counter()
    with torch.inference_mode():
        if name in ("jit-freeze", "onednn-graph"):
            torch.jit.enable_onednn_fusion(name == "onednn-graph")
            network = torch.jit.freeze(torch.jit.trace(network.eval(), inputs[0]))
            network(inputs[0])
            network(inputs[0])  # the profiling executor optimises on the second call
        elif name == "compile":
            import torch._inductor.config as inductor

            inductor.freezing = True
            network = torch.compile(network)
            network(inputs[0])
        one_off = {"cpu_s": round(time.process_time() - began_cpu, 2), "wall_s": round(time.perf_counter() - began, 2)}
        features = [network(x) for x in inputs]
        best = float("inf")
        for _ in range(repeat):
            began_cpu = time.process_time()
            for x in inputs:
                network(x)
            best = min(best, (time.process_time() - began_cpu) / len(inputs))
    return {"variant": name, "cpu_s_per_frame": round(best, 4), "one_off": one_off, "features": features}


def _child(name: str, args: argparse.Namespace, work: Path) -> dict:
    out = work / f"{name}.pt"
    command = [sys.executable, __file__, "--child", name, "--child-out", str(out), "--frames", str(args.frames)]
    command += ["--threads", str(args.threads), "--repeat", str(args.repeat)]
    command += ["--davis-root", args.davis_root] if args.davis_root else []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCHINDUCTOR_CACHE_DIR": str(work / f"inductor-{name}")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        return {"variant": name, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--davis-root", help="davis16-mini (default: $DENSE_RETRIEVAL_DAVIS_MINI or ../shared)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    add_out_argument(parser, "bench_feature_variants")
    args = parser.parse_args()
    if args.child:
        import torch

        found = variant(args.child, args.davis_root, args.frames, args.threads, args.repeat)
        torch.save(found.pop("features"), args.child_out)
        print(json.dumps(found))
        return
    shared = ROOT.parent / "shared/data/davis16-mini"
    for candidate in (args.davis_root, os.environ.get("DENSE_RETRIEVAL_DAVIS_MINI"), shared):
        if candidate and (Path(candidate) / "JPEGImages").is_dir():
            args.davis_root = str(candidate)
            break
    record = BenchmarkRecord("bench_feature_variants", args.out)
    if args.davis_root:
        inputs = davis_input(args.davis_root, ["blackswan"])
        inputs["frames_used"] = min(args.frames, inputs["frames"])
        sizes = {size: min(args.frames, count) for size, count in inputs["sizes"].items()}
    else:
        sizes = {"854x480": args.frames}
        inputs = {"frames": "synthetic random uint8 (davis16-mini absent)", "frames_used": args.frames, "sizes": sizes}
    inputs.update(network="mobilenet_v2 features.13, output stride 8, embedded weights, batch-norm folded",
                  grid="60x107", threads=args.threads, batch=1)  # fmt: skip
    print(f"input: {inputs['frames_used']} frames ({sizes}) of {args.davis_root or 'random data'}; {args.threads}"
          f" thread(s)", file=sys.stderr)  # fmt: skip
    warning = frame_size_warning(sizes)
    if warning:
        print(warning, file=sys.stderr)
    import torch

    rows = []
    with tempfile.TemporaryDirectory(prefix="feature-variants-") as tmp:
        work = Path(tmp)
        for name in VARIANTS:
            rows.append(_child(name, args, work))
            print(f"  {json.dumps(rows[-1])}", file=sys.stderr)
        reference = torch.load(work / "eager-channels-last.pt")
        base = next(row for row in rows if row["variant"] == "eager-channels-last")["cpu_s_per_frame"]
        for row in rows:
            if "error" in row:
                continue
            features = torch.load(work / f"{row['variant']}.pt")
            row["max_abs_diff"] = max(float((a - b).abs().max()) for a, b in zip(features, reference, strict=True))
            row["vs_channels_last"] = round(base / row["cpu_s_per_frame"], 3)
            saved = (base - row["cpu_s_per_frame"]) * FRAMES_OF_DAVIS16_MINI
            row["cpu_saved_on_davis16_mini_s"] = round(saved, 1)
            row["pays_back_on_davis16_mini"] = saved > row["one_off"]["cpu_s"]
    record.write(inputs, {"rows": rows})
    print(f"{'variant':<22}{'CPU s/frame':>12}{'vs CL':>8}{'one-off CPU s':>15}{'saved on 179':>14}{'max diff':>10}")
    for row in rows:
        if "error" in row:
            print(f"{row['variant']:<22} failed: {row['error']}")
            continue
        print(f"{row['variant']:<22}{row['cpu_s_per_frame']:>12.3f}{row['vs_channels_last']:>8.2f}"
              f"{row['one_off']['cpu_s']:>15.1f}{row['cpu_saved_on_davis16_mini_s']:>14.1f}"
              f"{row['max_abs_diff']:>10.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
