"""`dense-retrieval synth davis|voc|jhmdb|vip OUT`: write small synthetic datasets with known ground truth."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError
from . import groups
from .common import JsonOption, note, print_json, start_output

OutArgument = Annotated[Path, typer.Argument(help="Folder to create (refused if it exists and is not empty).")]
SeedOption = Annotated[
    int, typer.Option("--seed", min=0, help="Random seed; the output is a function of the options and the seed.")
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists and is not empty.")]


@groups.synth.command("davis")
def synth_davis(
    out: OutArgument,
    sequences: Annotated[int, typer.Option("--sequences", min=1, help="Sequences in the val set.")] = 3,
    frames: Annotated[int, typer.Option("--frames", min=1, help="Frames per sequence.")] = 20,
    height: Annotated[int, typer.Option("--height", min=32, help="Frame height.")] = 240,
    width: Annotated[int, typer.Option("--width", min=32, help="Frame width.")] = 427,
    widths: Annotated[
        str | None,
        typer.Option("--widths", help="Comma-separated widths, one per sequence (cycled), e.g. 854,910,1152."),
    ] = None,
    year: Annotated[
        str, typer.Option("--year", help="2017: indexed multi-object PNGs; 2016: one object, 0/255.")
    ] = "2017",
    train: Annotated[int, typer.Option("--train", min=0, help="Extra sequences listed in the train set.")] = 0,
    seed: SeedOption = 0,
    overwrite: OverwriteOption = False,
    json_output: JsonOption = False,
) -> None:
    """Write a synthetic DAVIS dataset: textured objects moving, scaling and occluding each other."""
    from ..data.synth import make_synthetic_davis

    start_output(json_output)
    started = time.perf_counter()
    manifest = make_synthetic_davis(
        out,
        num_sequences=sequences,
        num_frames=frames,
        size=(height, width),
        year=year,
        seed=seed,
        widths=_parse_widths(widths),
        train_sequences=train,
        overwrite=overwrite,
    )
    summary = {
        "out": str(out),
        "kind": "davis",
        "year": manifest["params"]["year"],
        "sequences": [
            {
                "name": s["name"],
                "split": s["split"],
                "size": s["size"],
                "frames": s["num_frames"],
                "objects": [o["class"] for o in s["objects"]],
                "occluded_frames": len(s["occluded_frames"]),
            }
            for s in manifest["sequences"]
        ],
        "seconds": round(time.perf_counter() - started, 3),
    }
    if json_output:
        print_json(summary)
        return
    for s in summary["sequences"]:
        typer.echo(
            f"{s['name']:<36} {s['split']:<5} {s['size'][0]}x{s['size'][1]}  {s['frames']} frames  "
            f"objects: {', '.join(s['objects'])}"
        )
    note(
        f"wrote DAVIS-{summary['year']} layout to {out} in {summary['seconds']:.1f} s (ground truth: {out}/synth.json)"
    )


@groups.synth.command("voc")
def synth_voc(
    out: OutArgument,
    train: Annotated[int, typer.Option("--train", min=1, help="Images in ImageSets/Segmentation/train.txt.")] = 24,
    val: Annotated[int, typer.Option("--val", min=1, help="Images in ImageSets/Segmentation/val.txt.")] = 16,
    size: Annotated[int, typer.Option("--size", min=32, help="Square image size in pixels.")] = 256,
    seed: SeedOption = 0,
    overwrite: OverwriteOption = False,
    json_output: JsonOption = False,
) -> None:
    """Write a synthetic PASCAL VOC segmentation set: objects of VOC classes, void band on boundaries."""
    from ..data.synth import make_synthetic_voc

    start_output(json_output)
    started = time.perf_counter()
    manifest = make_synthetic_voc(out, num_train=train, num_val=val, size=size, seed=seed, overwrite=overwrite)
    counts: dict[str, int] = {}
    for image in manifest["images"]:
        for obj in image["objects"]:
            counts[obj["class"]] = counts.get(obj["class"], 0) + 1
    summary = {
        "out": str(out),
        "kind": "voc",
        "train": train,
        "val": val,
        "size": manifest["params"]["size"],
        "objects_per_class": dict(sorted(counts.items())),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if json_output:
        print_json(summary)
        return
    typer.echo(f"{train} train + {val} val images, {size}x{size}")
    typer.echo("objects: " + ", ".join(f"{name} {count}" for name, count in summary["objects_per_class"].items()))
    note(f"wrote VOC layout to {out} in {summary['seconds']:.1f} s (ground truth: {out}/synth.json)")


@groups.synth.command("jhmdb")
def synth_jhmdb(
    out: OutArgument,
    videos: Annotated[int, typer.Option("--videos", min=1, help="Test videos of split 1.")] = 3,
    frames: Annotated[int, typer.Option("--frames", min=2, help="Frames per video (JHMDB: 15-40).")] = 40,
    height: Annotated[int, typer.Option("--height", min=32, help="Frame height (JHMDB: 240).")] = 240,
    width: Annotated[int, typer.Option("--width", min=32, help="Frame width (JHMDB: 320).")] = 320,
    train: Annotated[int, typer.Option("--train", min=0, help="Extra videos marked 1 (training) in the split.")] = 1,
    seed: SeedOption = 0,
    overwrite: OverwriteOption = False,
    json_output: JsonOption = False,
) -> None:
    """Write a synthetic JHMDB set: walking stick figures with known joints, in JHMDB's exact layout.

    Rename_Images/<action>/<video>/00001.png..., joint_positions/<action>/<video>/joint_positions.mat
    (pos_img 2 x 15 x T, 1-based) and splits/<action>_test_split1.txt; for `jhmdb propagate`.
    """
    from ..data.synth import make_synthetic_jhmdb

    start_output(json_output)
    started = time.perf_counter()
    manifest = make_synthetic_jhmdb(
        out, num_videos=videos, num_frames=frames, size=(height, width), seed=seed, train_videos=train,
        overwrite=overwrite,
    )  # fmt: skip
    summary = {"out": str(out), "kind": "jhmdb", "videos": manifest["videos"]}
    summary["seconds"] = round(time.perf_counter() - started, 3)
    if json_output:
        print_json(summary)
        return
    for video in manifest["videos"]:
        typer.echo(f"{video['name']:<24} {video['action']:<6} {video['split']:<5} {video['num_frames']} frames")
    note(f"wrote the JHMDB layout to {out} in {summary['seconds']:.1f} s (ground truth: {out}/synth.json)")


@groups.synth.command("vip")
def synth_vip(
    out: OutArgument,
    videos: Annotated[int, typer.Option("--videos", min=1, help="Videos in lists/val_videos.txt.")] = 3,
    frames: Annotated[int, typer.Option("--frames", min=2, help="Frames per video.")] = 12,
    height: Annotated[int, typer.Option("--height", min=32, help="Frame height.")] = 240,
    width: Annotated[int, typer.Option("--width", min=32, help="Frame width.")] = 320,
    annotate_every: Annotated[
        int, typer.Option("--annotate-every", min=1, help="Part annotations on frames 0, N, 2N, ...")
    ] = 1,
    seed: SeedOption = 0,
    overwrite: OverwriteOption = False,
    json_output: JsonOption = False,
) -> None:
    """Write a synthetic VIP set: walking figures whose textured body parts carry VIP part ids.

    Images/<video>/<frame>.jpg, Category_ids/<video>/<frame>.png (part ids 0..19 on the annotated
    frames) and lists/val_videos.txt, VIP_Fine's layout; for `vip propagate`.
    """
    from ..data.synth import make_synthetic_vip

    start_output(json_output)
    started = time.perf_counter()
    manifest = make_synthetic_vip(
        out, num_videos=videos, num_frames=frames, size=(height, width), seed=seed, annotate_every=annotate_every,
        overwrite=overwrite,
    )  # fmt: skip
    summary = {"out": str(out), "kind": "vip", "videos": manifest["videos"]}
    summary["seconds"] = round(time.perf_counter() - started, 3)
    if json_output:
        print_json(summary)
        return
    for video in manifest["videos"]:
        counts = f"{video['num_frames']} frames, {video['annotated']} annotated"
        typer.echo(f"{video['name']:<12} {counts}, parts {video['parts']}")
    note(f"wrote the VIP layout to {out} in {summary['seconds']:.1f} s (ground truth: {out}/synth.json)")


def _parse_widths(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(
            f"--widths must be comma-separated integers, got {text!r}", hint="e.g. --widths 854,910,1152"
        ) from None
