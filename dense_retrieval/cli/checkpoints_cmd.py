"""`dense-retrieval checkpoints list | inspect | download`: the known weights and any checkpoint file."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse

import typer

from ..backbone.specs import ARCHITECTURE_NAMES
from ..data.outputs import check_output
from ..errors import InputError
from . import groups
from .common import JsonOption, info, note, print_json, start_output

ArchitectureOption = Annotated[
    str | None,
    typer.Option(
        "--architecture",
        "-a",
        help=f"Require the file to fit this architecture ({', '.join(ARCHITECTURE_NAMES)}); "
        "exit 2 naming the missing and unexpected keys when it does not. Default: detect it.",
    ),
]
DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Folder for downloaded weights. Default: $DENSE_RETRIEVAL_CHECKPOINTS, else the checkout's "
        "checkpoints/ folder, else ~/.cache/dense-retrieval/checkpoints.",
    ),
]


@groups.checkpoints.command("list")
def list_weights(directory: DirOption = None, json_output: JsonOption = False) -> None:
    """List the known weights: name, architecture, checkpoint format, whether the file is here, source.

    Use a NAME as `--weights NAME` elsewhere, or fetch it with `dense-retrieval checkpoints download NAME`.
    The embedded MobileNetV2 works offline; the others need one download.
    """
    from ..backbone.weights.registry import REGISTRY, checkpoints_dir, is_present

    start_output(json_output)
    folder = directory or checkpoints_dir()
    if directory is not None and directory.exists() and not directory.is_dir():
        raise InputError(f"--dir {directory} is a file, not a folder", hint="give a folder to --dir")
    rows = []
    for entry in REGISTRY.values():
        present = is_present(entry, folder)
        status = "embedded" if entry.is_embedded and present else ("yes" if present else "no")
        rows.append({**asdict(entry), "present": present, "status": status})
    if json_output:
        print_json({"directory": str(folder), "weights": rows})
        return
    header = ("NAME", "ARCH", "FORMAT", "PRESENT", "SOURCE")
    table = [header] + [(r["name"], r["architecture"], r["checkpoint_format"], r["status"], r["source"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[4])
    note(f"downloads go to {folder}")


@groups.checkpoints.command("inspect")
def inspect(
    file: Annotated[
        str,
        typer.Argument(help="A checkpoint file (.pth, .pth.tar, .pt), or the NAME of downloaded weights."),
    ],
    architecture: ArchitectureOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show what a checkpoint holds: format detected, architecture, key counts, sha256.

    Loads safely (weights only: a file that would run code is refused) and reduces it to backbone weights
    the way every command does: MoCo files keep encoder_q without its projection head; DINO files keep
    the teacher backbone; {'model': ...} / {'state_dict': ...} wrappers and 'module.' prefixes are
    unwrapped.

    \b
    Examples:
      dense-retrieval checkpoints inspect checkpoints/ours_coco_800ep.pth.tar -a resnet50
      dense-retrieval checkpoints inspect mobilenet_v2-imagenet --json
    """
    from ..backbone.weights.checkpoints import inspect_checkpoint
    from ..backbone.weights.registry import REGISTRY, resolve_weights_path

    start_output(json_output)
    path = Path(file)
    if not path.exists() and file in REGISTRY:
        path = resolve_weights_path(file)
    report = inspect_checkpoint(path, architecture)
    if json_output:
        print_json(report)
        return
    training = report.pop("pretrain")
    width = max(len(key) for key in report)
    for key, value in report.items():
        typer.echo(f"{key:<{width}}  {value}")
    if training is not None:
        for line in _training_lines(training):
            typer.echo(line)


def _training_lines(record: dict) -> list[str]:
    """The ``pretrain`` record of a checkpoint written by ``dense-retrieval pretrain``, for people."""
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    init = record.get("init") if isinstance(record.get("init"), dict) else {}
    versions = record.get("versions") if isinstance(record.get("versions"), dict) else {}
    rows = {
        "preset": record.get("preset"),
        "epoch": f"{record.get('epoch')} of {config.get('epochs', '?')} (step {record.get('step')})",
        "images": record.get("images"),
        "world size": record.get("world_size"),
        "initial weights": ", ".join(f"{key} {value}" for key, value in init.items()) or None,
        "recipe": ", ".join(f"{key} {config[key]}" for key in _RECIPE_KEYS if key in config) or None,
        "versions": ", ".join(f"{key} {value}" for key, value in versions.items()) or None,
    }
    return ["written by dense-retrieval pretrain:"] + [f"  {key:<16}{value}" for key, value in rows.items()]


_RECIPE_KEYS = ("arch", "queue_size", "nn_topk", "nn_weight", "batch_size", "lr", "temperature", "key_momentum")


@groups.checkpoints.command("download")
def download(
    name: Annotated[str, typer.Argument(help="Registry name from `dense-retrieval checkpoints list`.")],
    directory: DirOption = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Download from this URL instead (a mirror); the registry's hash still applies."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Download known weights, verified by their hash, resumable.

    The file goes to --dir (default: see --dir) as FILE.part and takes its final name only after its
    sha256 (or the hash prefix its publisher printed) matched. Interrupted? Run the same command again:
    it resumes where it stopped. A file already present with the right hash is not downloaded again.
    Weights without a published hash (the paper's Google Drive files) get their sha256 recorded in
    FILE.sha256, and later runs check against it.

    \b
    Examples:
      dense-retrieval checkpoints download ours-coco-800ep
      dense-retrieval checkpoints download resnet50-imagenet --dir /data/weights
    """
    from ..backbone.weights.download import download_weights
    from ..backbone.weights.registry import checkpoints_dir, get_entry

    start_output(json_output)
    entry = get_entry(name)
    folder = directory or checkpoints_dir()
    if url is not None and urlparse(url).scheme not in ("http", "https"):
        raise InputError(f"--url {url!r} is not an http(s) URL", hint="e.g. --url https://mirror.example/weights.pth")
    check_output(folder, [], "dir", "--dir")
    if not entry.is_embedded:
        info(f"{entry.name}: {url or entry.url} -> {folder}")
    report = download_weights(entry, folder, url)
    if json_output:
        print_json(report)
        return
    if report["embedded"]:
        typer.echo(f"{name} is embedded in the package {entry.embedded_package}: {report['path']}")
    elif report["downloaded"]:
        stale = " (the file there before failed its check and was replaced)" if report["replaced_stale"] else ""
        typer.echo(f"downloaded {name} to {report['path']}{stale}")
    else:
        typer.echo(f"{name} is already present: {report['path']}")
    if report["verified"] == "none":
        note(
            f"no published hash for {name}; its sha256 {report['sha256']} is recorded in "
            f"{report['path']}.sha256 and later downloads are checked against it"
        )
    else:
        typer.echo(f"verified ({report['verified']}): sha256 {report['sha256']}")
