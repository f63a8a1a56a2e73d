"""The matrix spec of ``bench run``: which backbones on which benchmarks, read from TOML and checked up front.

    [run]                          # optional
    device = "auto"                # auto | cpu | cuda (under torchrun: cuda:LOCAL_RANK)
    batch_size = 4

    [[backbone]]                   # one row of the table per backbone (a pretraining run: one per checkpoint)
    label = "mobilenet"            # the row's name (default: from what follows)
    arch = "mobilenet_v2"          # the network (default: from the weights, the checkpoint or the run)
    weights = "default"            # default | random | random:N | a registry name (`checkpoints list`)
    # checkpoint = "ckpt.pth.tar"  # or a checkpoint file (any layout `checkpoints inspect` reads)
    # pretrain_run = "runs/tiny"   # or a `pretrain` run folder: every kept checkpoint, one row each

    [benchmark.davis17]            # one column per table; its key names the column and the cell folders
    kind = "davis"                 # the registration (default: the key); see bench/benchmarks.py
    root = "data/DAVIS"            # relative paths are relative to the spec file's folder

TOML is read with the standard library's ``tomllib`` (Python 3.11+) or its backport ``tomli`` (3.10): no
new dependency where the standard library has it, one small pure-Python one where it does not. Every
error is one line naming the spec, the entry and the key, and how to fix it.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backbone.specs import ARCHITECTURE_NAMES, DEFAULT_ARCHITECTURE
from ..errors import InputError
from .benchmarks import get_benchmark
from .registry import Benchmark

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@=-]{0,63}")
_BACKBONE_KEYS = ("label", "arch", "weights", "checkpoint", "pretrain_run")
_RUN_KEYS = {"device": str, "batch_size": int}
_TOP_KEYS = ("run", "backbone", "benchmark")


@dataclass(frozen=True)
class BackboneChoice:
    """One row of the matrix.

    Attributes:
        label: the row's name (a plain name: it names the cell folders).
        arch: the architecture, or None to detect it from ``weights`` (a checkpoint file) when built.
        weights: ``default``, ``random:N``, a registry name, or a checkpoint file's absolute path.
        run: the label of the pretraining run the checkpoint comes from (None otherwise).
        epoch: the epochs done at that checkpoint (pretraining runs only).
    """

    label: str
    arch: str | None
    weights: str
    run: str | None = None
    epoch: int | None = None

    @property
    def checkpoint(self) -> Path | None:
        """The checkpoint file the row reads (an input of the run), if any."""
        return Path(self.weights) if Path(self.weights).is_absolute() else None


@dataclass(frozen=True)
class BenchmarkChoice:
    """One column of the matrix: a registered benchmark with its checked settings."""

    name: str
    benchmark: Benchmark
    settings: dict[str, Any]


@dataclass(frozen=True)
class BenchSpec:
    """A checked spec: rows, columns, and how to run (``device``, ``batch_size``)."""

    path: Path
    backbones: tuple[BackboneChoice, ...]
    benchmarks: tuple[BenchmarkChoice, ...]
    device: str = "auto"
    batch_size: int = 4
    run_folders: tuple[Path, ...] = field(default_factory=tuple)

    def inputs(self) -> list[Path]:
        """Every file and folder the run reads: the spec, data roots, checkpoints, pretraining run folders."""
        paths = [self.path, *self.run_folders]
        paths += [b.checkpoint for b in self.backbones if b.checkpoint is not None]
        for column in self.benchmarks:
            paths += column.benchmark.inputs(column.settings)
        return list(dict.fromkeys(paths))

    def as_dict(self) -> dict[str, Any]:
        """The spec as checked (paths absolute, defaults filled in), recorded in ``bench.json``."""
        return {
            "spec": str(self.path),
            "device": self.device,
            "batch_size": self.batch_size,
            "backbones": [vars(b) for b in self.backbones],
            "benchmarks": {c.name: {"kind": c.benchmark.name, **c.settings} for c in self.benchmarks},
        }


def read_spec(path: str | os.PathLike) -> BenchSpec:
    """Read and check a matrix spec (module docstring).

    Raises:
        InputError: the file is missing or not TOML, or any entry does not fit; one line naming the key.
    """
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"spec {path} not found", hint="pass the TOML file that lists backbones and benchmarks"
        ) from None
    except IsADirectoryError:
        raise InputError(f"spec {path} is a folder", hint="pass the TOML file itself") from None
    except UnicodeDecodeError:
        raise InputError(f"spec {path} is not UTF-8 text", hint="write the spec as a UTF-8 TOML file") from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(
            f"spec {path} is not valid TOML: {error}", hint="see the example in `bench run --help`"
        ) from None
    return check_spec(document, path)


def check_spec(document: dict[str, Any], path: Path) -> BenchSpec:
    """A parsed spec ``document`` checked; relative paths are resolved against ``path``'s folder."""
    where = f"spec {path}"
    for key in document:
        if key not in _TOP_KEYS:
            raise InputError(f"{where}: unknown table {key!r}", hint="use [run], [[backbone]] and [benchmark.NAME]")
    base = path.resolve().parent
    run = _table(document.get("run", {}), f"{where}: [run]")
    for key, value in run.items():
        wanted = _RUN_KEYS.get(key)
        if wanted is None:
            raise InputError(f"{where}: [run] has unknown key {key!r}", hint=f"use {', '.join(_RUN_KEYS)}")
        if not isinstance(value, wanted) or isinstance(value, bool) or (key == "batch_size" and value < 1):
            raise InputError(
                f"{where}: [run] {key} = {value!r} is not valid", hint='e.g. device = "cpu", batch_size = 4'
            )
    entries = document.get("backbone")
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{where}: no [[backbone]] entries", hint='add [[backbone]] tables, e.g. weights = "default"')
    backbones: list[BackboneChoice] = []
    run_folders: list[Path] = []
    for number, entry in enumerate(entries, start=1):
        rows, folder = _backbone(_table(entry, f"{where}: backbone {number}"), f"{where}: backbone {number}", base)
        backbones += rows
        run_folders += [folder] if folder else []
    _unique([b.label for b in backbones], f"{where}: backbone label", "give each [[backbone]] its own label")
    tables = _table(document.get("benchmark", {}), f"{where}: [benchmark]")
    if not tables:
        raise InputError(f"{where}: no [benchmark.NAME] tables", hint='add e.g. [benchmark.davis] with root = "DAVIS"')
    benchmarks = [_benchmark(name, table, f"{where}: [benchmark.{name}]", base) for name, table in tables.items()]
    return BenchSpec(
        path.resolve(),
        tuple(backbones),
        tuple(benchmarks),
        device=run.get("device", "auto"),
        batch_size=run.get("batch_size", 4),
        run_folders=tuple(run_folders),
    )


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{where} is not a table", hint="see the example in `bench run --help`")
    return value


def _unique(labels: list[str], what: str, hint: str) -> None:
    seen: set[str] = set()
    for label in labels:
        if label in seen:
            raise InputError(f"{what} {label!r} appears twice", hint=hint)
        seen.add(label)


def _plain_label(label: Any, where: str) -> str:
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise InputError(
            f"{where}: label {label!r} is not a plain name",
            hint="use up to 64 letters, digits and . _ + @ = - (it names the cell folders)",
        )
    return label


def _backbone(entry: dict[str, Any], where: str, base: Path) -> tuple[list[BackboneChoice], Path | None]:
    """The rows of one ``[[backbone]]`` entry (several for a pretraining run), and the run folder if any."""
    for key in entry:
        if key not in _BACKBONE_KEYS:
            raise InputError(f"{where}: unknown key {key!r}", hint=f"use {', '.join(_BACKBONE_KEYS)}")
        if not isinstance(entry[key], str):
            raise InputError(f"{where}: {key} = {entry[key]!r} is not text", hint=f'write {key} = "..." (quoted)')
    sources = [key for key in ("weights", "checkpoint", "pretrain_run") if key in entry]
    if len(sources) > 1:
        raise InputError(
            f"{where}: {' and '.join(sources)} both given", hint="give one of weights, checkpoint, pretrain_run"
        )
    arch = entry.get("arch")
    if arch is not None and arch not in ARCHITECTURE_NAMES:
        raise InputError(
            f"{where}: arch = {arch!r} is not a known network", hint=f"use one of {', '.join(ARCHITECTURE_NAMES)}"
        )
    if "pretrain_run" in entry:
        return _run_rows(entry, where, base)
    if "checkpoint" in entry:
        file = _path(entry["checkpoint"], base)
        if not file.is_file():
            raise InputError(f"{where}: checkpoint {entry['checkpoint']!r} not found ({file})", hint="fix the path")
        label = _plain_label(entry.get("label", _stem(file)), where)
        return [BackboneChoice(label, arch, str(file))], None
    weights = entry.get("weights", "default")
    arch = _weights_architecture(weights, arch, where)
    default = arch if weights == "default" else weights if not weights.startswith("random") else f"{arch}-{weights}"
    label = _plain_label(entry.get("label", default.replace(":", "")), where)
    return [BackboneChoice(label, arch, weights)], None


def _weights_architecture(weights: str, arch: str | None, where: str) -> str:
    """The architecture of registry weights (checked against ``arch``), or ``arch`` for default/random weights."""
    if weights == "default" or re.fullmatch(r"random(:\d+)?", weights):
        return arch or DEFAULT_ARCHITECTURE
    from ..backbone.weights.registry import REGISTRY

    entry = REGISTRY.get(weights)
    if entry is None:
        raise InputError(
            f"{where}: weights = {weights!r} is not default, random[:N] or a registry name",
            hint='see `dense-retrieval checkpoints list`; for a file use checkpoint = "PATH"',
        )
    if arch is not None and arch != entry.architecture:
        raise InputError(
            f"{where}: weights {weights!r} are for {entry.architecture}, not {arch}", hint="drop arch or fix it"
        )
    return entry.architecture


def _run_rows(entry: dict[str, Any], where: str, base: Path) -> tuple[list[BackboneChoice], Path]:
    """One row per kept checkpoint of a pretraining run folder (``pretrain/run_folder.py`` knows the layout)."""
    from ..pretrain.run_folder import RunFolder

    folder = _path(entry["pretrain_run"], base)
    run = RunFolder(folder)
    if not folder.is_dir() or not run.is_run():
        raise InputError(
            f"{where}: pretrain_run {entry['pretrain_run']!r} is not a pretraining run folder ({folder})",
            hint="give the --out folder of `dense-retrieval pretrain` (it holds config.json)",
        )
    checkpoints = run.kept_checkpoints()
    if not checkpoints:
        raise InputError(
            f"{where}: the pretraining run {folder} has no kept checkpoint yet",
            hint="keep copies with `pretrain --keep-every N`, or wait for the run to end",
        )
    label = _plain_label(entry.get("label", folder.name), where)
    arch = entry.get("arch") or run.architecture()
    rows = [
        BackboneChoice(f"{label}@ep{epoch}", arch, str(file), run=label, epoch=epoch) for epoch, file in checkpoints
    ]
    return rows, folder


def _benchmark(name: str, table: Any, where: str, base: Path) -> BenchmarkChoice:
    table = dict(_table(table, where))
    _plain_label(name, where)
    kind = table.pop("kind", name)
    if not isinstance(kind, str):
        raise InputError(f"{where}: kind = {kind!r} is not text", hint='e.g. kind = "davis"')
    try:
        benchmark = get_benchmark(kind)
    except InputError as error:
        raise InputError(f"{where}: {error.message}", hint=error.hint) from None
    return BenchmarkChoice(name, benchmark, benchmark.check(table, where, base))


def _path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".pth.tar", ".pth", ".pt", ".safetensors", ".bin"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
