"""What a benchmark is to ``bench run``: one registration, plain data (torch-free).

A :class:`Benchmark` says everything the matrix runner needs and nothing more:

- ``name``: what a spec's ``[benchmark.X]`` table names with ``kind`` (or with its own key);
- ``settings``: what it needs in the spec (:class:`Setting`: a data root, a protocol preset, overrides),
  checked with one-line errors before any work;
- ``runner``: the module that runs one cell (one backbone on this benchmark) through the roads' library
  functions, never the CLI (the contract below);
- ``headline``: the metric of the results table (J&F-Mean, mIoU, PCK@0.1 ...), and ``detail``: the columns
  of its detail rows (per sequence, per class ...), as the runner returns them.

The registrations themselves are :data:`dense_retrieval.bench.benchmarks.BENCHMARKS`: adding a benchmark is
one entry there and one runner module (docs/architecture.md, "Where a change goes").

The runner contract (a module, imported only when a cell runs)::

    def record(cell: Cell) -> dict
        # what makes the number (backbone as built, features, protocol, data root): a finished cell is reused
        # only while its record's identity (records.identity) is unchanged. Read-only; it also checks the
        # cell's inputs (layout, first files), so that bad input is refused before anything is written
    def run(cell: Cell) -> CellResult
        # the whole cell as one unit of work, outputs inside cell.folder

    # or, for cells whose parts are shared out across torchrun ranks (a DAVIS cell's sequences):
    def prepare(cell: Cell) -> list[str]       # main rank: open the cell's outputs; the parts still to do
    def run_part(cell: Cell, part: str) -> None    # any rank: one part, committed inside cell.folder
    def finish(cell: Cell) -> CellResult       # one rank, once every part is committed: the scores

Once planned, ``cell.record`` holds what ``record`` returned, so the other functions need not rebuild it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

SETTING_KINDS = ("folder", "file", "text", "integer", "number", "flag")


@dataclass(frozen=True)
class Setting:
    """One key of a benchmark's spec table.

    Attributes:
        name: the TOML key.
        kind: ``folder`` / ``file`` (a path that must exist, relative to the spec file; an input of the run),
            ``text``, ``integer``, ``number`` (finite), ``flag`` (true/false).
        default: the value when the key is absent (None: the runner's own default).
        required: the key must be given.
        choices: the allowed values (text), empty for any.
        minimum: the smallest allowed value (integer, number).
        help: one line for people (``bench run --help`` and error hints).
    """

    name: str
    kind: str
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind not in SETTING_KINDS:
            raise ValueError(f"setting {self.name}: kind {self.kind!r} is not one of {SETTING_KINDS}")

    @property
    def is_path(self) -> bool:
        return self.kind in ("folder", "file")

    def check(self, value: Any, where: str, base: Path) -> Any:
        """``value`` from the spec, checked and normalised (paths resolved against ``base``).

        Raises:
            InputError: one line naming ``where``, the key, the bad value and the fix.
        """
        key = f"{where}: {self.name} = {value!r}"
        if self.is_path:
            if not isinstance(value, str) or not value:
                raise InputError(f"{key} is not a path", hint=f'write {self.name} = "path/to/{self.kind}"')
            path = Path(value).expanduser()
            path = path if path.is_absolute() else (base / path).resolve()
            exists = path.is_dir() if self.kind == "folder" else path.is_file()
            if not exists:
                raise InputError(f"{key}: no such {self.kind} ({path})", hint=self.help or f"fix {self.name}")
            return str(path)
        if self.kind == "flag":
            if not isinstance(value, bool):
                raise InputError(f"{key} is not true or false", hint=f"write {self.name} = true")
            return value
        if self.kind in ("integer", "number"):
            valid = isinstance(value, int) and not isinstance(value, bool)
            if self.kind == "number":
                valid = (valid or isinstance(value, float)) and math.isfinite(value)
            if not valid:
                raise InputError(f"{key} is not {'an integer' if self.kind == 'integer' else 'a finite number'}")
            if self.minimum is not None and value < self.minimum:
                raise InputError(f"{key} is below the smallest allowed value {self.minimum:g}", hint=self.help or None)
            return value
        if not isinstance(value, str):
            raise InputError(f"{key} is not text", hint=f'write {self.name} = "..." (quoted)')
        if self.choices and value not in self.choices:
            raise InputError(f"{key} is not one of {', '.join(self.choices)}", hint=self.help or None)
        return value


@dataclass(frozen=True)
class Benchmark:
    """One benchmark as ``bench run`` sees it (module docstring).

    Attributes:
        name: the registration's name (``davis``, ``voc``).
        about: one line for people: the task, the data, the protocol it follows.
        settings: the keys of its spec table.
        runner: the module running one cell (``dense_retrieval.bench.davis_cell``).
        headline: the metric in the results table (``J&F-Mean``); values are fractions in [0, 1].
        detail: the columns of the detail rows the runner returns (besides ``item``).
    """

    name: str
    about: str
    settings: tuple[Setting, ...]
    runner: str
    headline: str
    detail: tuple[str, ...] = field(default_factory=tuple)

    def setting(self, name: str) -> Setting | None:
        return next((s for s in self.settings if s.name == name), None)

    def check(self, table: Mapping[str, Any], where: str, base: Path) -> dict[str, Any]:
        """A spec table checked against :attr:`settings`: every key known, required keys given, values valid.

        Returns:
            ``{name: value}`` for every setting (defaults filled in), paths resolved.

        Raises:
            InputError: one line naming ``where`` and the key.
        """
        known = {s.name for s in self.settings}
        for key in table:
            if key not in known:
                raise InputError(
                    f"{where}: unknown key {key!r} for a {self.name} benchmark",
                    hint=f"use one of {', '.join(sorted(known))}",
                )
        checked: dict[str, Any] = {}
        for setting in self.settings:
            if setting.name in table:
                checked[setting.name] = setting.check(table[setting.name], where, base)
            elif setting.required:
                example = f'"path/to/{setting.kind}"' if setting.is_path else "..."
                raise InputError(
                    f"{where}: {setting.name!r} is required ({setting.help or setting.kind})",
                    hint=f"add {setting.name} = {example}",
                )
            else:
                checked[setting.name] = setting.default
        return checked

    def inputs(self, settings: Mapping[str, Any]) -> list[Path]:
        """The files and folders a cell of this benchmark reads (its path settings)."""
        return [Path(settings[s.name]) for s in self.settings if s.is_path and settings.get(s.name)]


@dataclass(frozen=True)
class CellResult:
    """The numbers of one finished cell, as a runner returns them.

    Attributes:
        headline: the value of the benchmark's headline metric (a fraction in [0, 1]).
        metrics: other summary numbers (``{"J-Mean": 0.61, "F-Mean": 0.66}``).
        detail: rows ``{"item": name, <column>: value, ...}`` with the benchmark's detail columns.
        files: outputs the cell wrote (paths relative to the cell folder), for people.
    """

    headline: float
    metrics: dict[str, float] = field(default_factory=dict)
    detail: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
