"""`dense-retrieval jhmdb propagate | evaluate`: JHMDB pose propagation scored with PCK (CRW's protocol)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from ..metrics.conventions import PCK_THRESHOLDS, PCKConventions
from ..propagation.config import CRW_KEYPOINTS
from ..protocols import CRW_JHMDB
from . import groups
from .common import BatchSizeOption, DeviceOption, JsonOption, info, note, print_json, start_output
from .options import (
    BackboneOption,
    CheckpointOption,
    LayerOption,
    OutputStrideOption,
    PreprocessOption,
    StrideModeOption,
    WeightsOption,
)
from .propagation_options import (
    BACKBONE_RULE,
    ContextOption,
    L2Option,
    RadiusOption,
    TemperatureOption,
    TopkOption,
    benchmark_setup,
    propagation_config,
    propagation_extractor,
    propagation_preprocess,
)

RootOption = Annotated[
    Path, typer.Option("--jhmdb-root", help="JHMDB folder with Rename_Images/, joint_positions/ and splits/.")
]
SplitOption = Annotated[int, typer.Option("--split", min=1, max=3, help="Split number: its test videos are run.")]
SplitsOption = Annotated[
    Path | None,
    typer.Option("--splits", help="Folder of <action>_test_split<N>.txt files (default: JHMDB-ROOT/splits)."),
]
VideosOption = Annotated[
    str | None, typer.Option("--videos", help="Comma-separated video names (default: every test video of the split).")
]

_PROPAGATE_HELP = f"""Propagate each test video's frame-0 joints through its frames (CRW's JHMDB protocol).

The 15 puppet joints of frame 0 become label channels on the feature grid (a Gaussian of
--sigma cells each, peak 1, plus a background channel), the propagation carries them through the
video, and each frame's joints are read out as the weighted mean of their channel's 3 best cells
(--readout-topk), mapped back to the frame's pixels.

\b
Writes OUT/<video>/joints.json (the joints per frame, JSON: `jhmdb evaluate` reruns on it alone),
OUT/<video>/overlay.jpg|mp4 with --overlay strip|video (predicted skeleton; ground truth as white
rings), and OUT/propagation.json (protocol, backbone, weights, keypoint encoding, JHMDB root and split).
Videos already complete with the same configuration are skipped (rerun to resume); a folder made
with another configuration is refused unless --overwrite.

\b
Protocol (--preset crw = crw-jhmdb): frames stretched to {CRW_JHMDB.features.resize[6:]} (bilinear), res4 at
stride 8 (a 40x40 grid), L2; first frame + {CRW_JHMDB.propagation.context} previous, top-{CRW_JHMDB.propagation.topk},
T={CRW_JHMDB.propagation.temperature}, radius {CRW_JHMDB.propagation.radius:g}; sigma {CRW_KEYPOINTS.sigma} cells.

{BACKBONE_RULE}

\b
Example:
  dense-retrieval jhmdb propagate --jhmdb-root JHMDB --split 1 --out runs/jhmdb-mnv2
  dense-retrieval jhmdb evaluate  --jhmdb-root JHMDB --split 1 --results runs/jhmdb-mnv2
"""


@groups.jhmdb.command("propagate", help=_PROPAGATE_HELP)
def propagate(
    jhmdb_root: RootOption,
    out: Annotated[Path, typer.Option("--out", help="Results folder (created).")],
    split: SplitOption = 1,
    splits: SplitsOption = None,
    videos: VideosOption = None,
    checkpoint: CheckpointOption = None,
    backbone: BackboneOption = None,
    weights: WeightsOption = "default",
    layer: LayerOption = None,
    output_stride: OutputStrideOption = None,
    stride_mode: StrideModeOption = CRW_JHMDB.features.stride_mode,
    resize: Annotated[
        str | None, typer.Option("--resize", help="Network input (default: the protocol's, fixed:320x320).")
    ] = None,
    preprocess: PreprocessOption = None,
    l2: L2Option = CRW_JHMDB.features.l2_normalize,
    preset_name: Annotated[
        str | None,
        typer.Option("--preset", help="crw (CRW's JHMDB settings, the default), or another propagation protocol."),
    ] = None,
    temperature: TemperatureOption = None,
    topk: TopkOption = None,
    radius: RadiusOption = None,
    context: ContextOption = None,
    sigma: Annotated[
        float, typer.Option("--sigma", help="Gaussian width of a joint on the feature grid, in cells.")
    ] = CRW_KEYPOINTS.sigma,
    readout_topk: Annotated[
        int, typer.Option("--readout-topk", help="Cells averaged to read a joint back out.")
    ] = CRW_KEYPOINTS.readout_topk,
    overlay: Annotated[
        str | None, typer.Option("--overlay", help="strip (about 8 frames, JPEG) or video (MP4) per video.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace results of another configuration.")] = False,
    batch_size: BatchSizeOption = 4,
    device: DeviceOption = "auto",
    json_output: JsonOption = False,
) -> None:
    start_output(json_output)
    from ..data.jhmdb import JhmdbDataset
    from ..errors import InputError
    from ..propagation.config import KeypointConfig
    from ..vos.jhmdb_run import OVERLAYS, propagate_jhmdb
    from ..vos.results_run import select_names

    protocol, architecture = benchmark_setup("jhmdb", preset_name, backbone, checkpoint)
    config = propagation_config(protocol, temperature, topk, radius, context)
    preprocess = propagation_preprocess(protocol, architecture, preprocess)
    keypoints = KeypointConfig(sigma=sigma, readout_topk=readout_topk)
    dataset = JhmdbDataset(jhmdb_root, split=split, splits=splits)
    names = select_names(dataset.videos, _names(videos), f"the test videos of JHMDB split {split}")
    if overlay is not None and overlay not in OVERLAYS:
        raise InputError(f"unknown overlay {overlay!r}", hint=f"use one of {', '.join(OVERLAYS)}")
    extractor = propagation_extractor(  # the network is loaded once the inputs are known to be good
        protocol, architecture, weights, checkpoint, layer, output_stride, stride_mode, resize, l2, batch_size, device,
        preprocess,
    )  # fmt: skip
    described = extractor.backbone.describe()
    info(
        f"jhmdb propagate: {protocol.name} protocol, {described['name']} {described['layer']} stride "
        f"{described['stride']}, weights {described['weights']}, {preprocess} preprocessing; writing into {out}/"
    )
    summary = propagate_jhmdb(
        dataset, out, extractor, config, keypoints, names, overwrite=overwrite, overlay=overlay, log=info
    )
    if json_output:
        print_json(summary)
        return
    done = sum(1 for s in summary["sequences"].values() if s["status"] == "done")
    rate = f", {summary['frames_per_second']} frames/s" if summary["frames_per_second"] else ""
    typer.echo(
        f"{done} video(s) propagated, {len(summary['sequences']) - done} already complete{rate}; joints in {out}/ "
        f"(score: dense-retrieval jhmdb evaluate --jhmdb-root {jhmdb_root} --split {split} --results {out})"
    )


_EVALUATE_HELP = """Score a folder of predicted joints with PCK, as CRW's eval_pck.py does.

\b
RESULTS/<video>/joints.json per test video (written by `jhmdb propagate`). Writes into --output
(default: the results folder) pck_results-split<N>.csv (a row per joint and a mean row, PCK at
every threshold as a fraction) and pck_report-split<N>.json (conventions, per video, headline).

\b
What the numbers mean: a joint is correct when its distance to the ground truth is at most the
threshold times 0.6 x the diagonal of the box around that frame's ground-truth joints. PCK of a
joint = correct / scored over every frame but the first (given as input); the headline is the mean
over the 15 joints. CRW (ResNet-18) publishes PCK@0.1 59.3 and PCK@0.2 84.9 on split 1. Joints
whose label channel was empty in frame 0 (outside the grid) have no prediction and are not scored,
as in CRW's script (--all-joints scores them as misses).

\b
Example:
  dense-retrieval jhmdb evaluate --jhmdb-root JHMDB --split 1 --results runs/jhmdb-mnv2
"""


@groups.jhmdb.command("evaluate", help=_EVALUATE_HELP)
def evaluate(
    jhmdb_root: RootOption,
    results: Annotated[Path, typer.Option("--results", help="Folder with <video>/joints.json predictions.")],
    split: SplitOption = 1,
    splits: SplitsOption = None,
    videos: VideosOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="Folder for the CSV and the report. Default: --results.")
    ] = None,
    thresholds: Annotated[
        str, typer.Option("--thresholds", help="Comma-separated PCK thresholds.")
    ] = ",".join(f"{t:g}" for t in PCK_THRESHOLDS),
    keep_first: Annotated[
        bool, typer.Option("--keep-first", help="Also score frame 0 (given as input; not CRW's protocol).")
    ] = False,
    all_joints: Annotated[
        bool, typer.Option("--all-joints", help="Score joints without a prediction as misses (not CRW's protocol).")
    ] = False,
    no_overwrite: Annotated[
        bool, typer.Option("--no-overwrite", help="Refuse (exit 2) if the score files already exist.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    start_output(json_output)
    from ..data.jhmdb import JOINTS, JhmdbDataset
    from ..vos.jhmdb_eval import run_jhmdb_evaluation

    conventions = PCKConventions(
        thresholds=_thresholds(thresholds), skip_first=not keep_first, visible="all" if all_joints else "predicted"
    )
    dataset = JhmdbDataset(jhmdb_root, split=split, splits=splits)
    evaluation, paths = run_jhmdb_evaluation(
        dataset, results, output, conventions, overwrite=not no_overwrite, videos=_names(videos)
    )
    if json_output:
        print_json(evaluation.report(paths))
        return
    header, rows = evaluation.table()  # joint, PCK@t..., scored
    first = max(len(name) for name in JOINTS)
    typer.echo("  ".join([header[0].ljust(first), *(h.rjust(8) for h in header[1:-1])]))
    for row in rows:
        typer.echo("  ".join([row[0].ljust(first), *(_percent(v).rjust(8) for v in row[1:-1])]))
    scores = evaluation.scores
    headline = ", ".join(f"PCK@{t:g} {_percent(v)}" for t, v in zip(scores.thresholds, scores.mean, strict=True))
    note(
        f"{headline} over {len(evaluation.videos)} video(s) (percent; mean over joints); "
        f"wrote {paths['csv']}, {paths['report'].name}"
    )


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def _thresholds(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        hint = "--thresholds"
        raise typer.BadParameter(f"{text!r} is not a list of numbers, e.g. 0.1,0.2", param_hint=hint) from None
    if not values or any(not (0 < v < math.inf) for v in values):
        raise typer.BadParameter(f"{text!r}: thresholds must be positive numbers", param_hint="--thresholds")
    return values


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}"
