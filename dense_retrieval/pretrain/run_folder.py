"""The run folder of a pretraining run: what made it, its log, its checkpoints.

    RUN/config.json            the recipe, the initial weights, the data, the world size (written at start)
    RUN/log.jsonl              one JSON object per line: a training step ("event": "step": loss, InfoNCE
                               accuracy, NN loss, lr, images/s ...), an epoch summary ("event": "epoch"),
                               a DAVIS evaluation ("event": "eval")
    RUN/checkpoint.pth.tar     the latest checkpoint (paper layout), replaced atomically
    RUN/checkpoint_epochNNNN.pth.tar   copies kept every --keep-every epochs
    RUN/summary.json           written when the run ends (also its --json output)
    RUN/training.png           loss, InfoNCE accuracy and DAVIS J&F against the epoch (rewritten atomically
                               at each evaluation, at the end, and at most every 30 s in between)
    RUN/eval/                  the masks and scores of the last --eval-davis evaluation

Output rules (docs/architecture.md, house rule 15): a folder that holds anything else (another
command's files, a config.json that is not a pretraining record) is never written into, with or
without --overwrite / --resume. --overwrite starts over: once every check has passed, the previous
run's own entries (and only those, through ``remove_owned``) are removed and the new run begins; there
is no "keep the old run until the new one is complete" for a training run that may last days, and a new
config.json beside an old checkpoint would make --resume continue the wrong run. The main process holds
the folder (``locked``) for the whole run; a second writer is refused at once.

Resuming rewrites the log without the lines written after the checkpoint it resumes from (a killed run
may have logged steps that are then done again), so the log always describes one uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..data.atomic import atomic_open, write_json
from ..data.outputs import remove_owned
from ..errors import ConfigMismatchError, OutputExistsError
from .checkpoint import CHECKPOINT_NAME

CONFIG_NAME = "config.json"
LOG_NAME = "log.jsonl"
SUMMARY_NAME = "summary.json"
CHART_NAME = "training.png"
EVAL_NAME = "eval"
# every entry a run folder may hold: its files, kept copies, the evaluation folder, temporary siblings
_OWN = re.compile(
    r"^(config\.json|log\.jsonl|summary\.json|training\.png|checkpoint\.pth\.tar|checkpoint_epoch\d{4,}\.pth\.tar|eval"
    r"|\.(config\.json|log\.jsonl|summary\.json|training\.png|checkpoint\.pth\.tar|eval)\.\d+\.[a-z0-9_]+\.(tmp|old)"
    r"(\.\w+)*)$"
)
# what may differ between a run and its resumption (everything else must match)
# ("sizing" says how the queue and neighbour count were chosen; the numbers themselves are in "config")
_RESUMABLE_DIFFERENCES = ("data", "started", "options", "sizing")


class RunFolder:
    """Paths and files of one run folder (module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_NAME

    @property
    def log_path(self) -> Path:
        return self.path / LOG_NAME

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.path / f"checkpoint_epoch{epoch:04d}.pth.tar"

    def check(self, record: dict, resume: bool, overwrite: bool) -> bool:
        """Read-only checks, run by every process before anything is written. Returns True when the run
        resumes from a checkpoint (``resume`` and one exists; otherwise the run starts from scratch).

        Raises:
            OutputExistsError: the folder holds anything but a pretraining run (always refused), or holds
                a run and neither ``resume`` nor ``overwrite`` was given.
            ConfigMismatchError: resuming a run made with another recipe or world size.
        """
        if not self.path.is_dir() or not any(self.path.iterdir()):
            return False
        foreign = sorted(entry.name for entry in self.path.iterdir() if not _OWN.match(entry.name))
        record_file = self.path / CONFIG_NAME
        if foreign or not record_file.is_file() or _read_record(record_file) is None:
            shown = ", ".join(foreign[:3]) or CONFIG_NAME
            raise OutputExistsError(
                f"--out {self.path} holds files that are not a pretraining run's ({shown})",
                hint="choose a new --out folder (--overwrite replaces only a previous pretraining run)",
            )
        if not resume and not overwrite:
            raise OutputExistsError(
                f"{self.path} already holds a pretraining run",
                hint="pass --resume to continue it, --overwrite to start over, or choose another --out",
            )
        resuming = resume and self.checkpoint.is_file()
        if resuming:
            self._check_same_run(record)
        return bool(resuming)

    def create(self, record: dict, resuming: bool) -> None:
        """Start the folder (main process, holding its lock): a fresh run removes the previous run's own
        entries (only those: :meth:`check` refused anything else) and writes config.json."""
        self.path.mkdir(parents=True, exist_ok=True)
        if resuming:
            return
        for entry in sorted(self.path.iterdir()):
            if _OWN.match(entry.name):
                remove_owned(entry, self.path)
        write_json(self.path / CONFIG_NAME, record)

    def _check_same_run(self, record: dict) -> None:
        old = _read_record(self.path / CONFIG_NAME) or {}
        differences = [
            key
            for key in sorted(set(old) | set(record))
            if key not in _RESUMABLE_DIFFERENCES and old.get(key) != json.loads(json.dumps(record.get(key)))
        ]
        if differences:
            details = "; ".join(_describe(key, old.get(key), record.get(key)) for key in differences)
            raise ConfigMismatchError(
                f"cannot resume {self.path}: it was made with other settings ({details})",
                hint="resume with the settings in its config.json, or start over with --overwrite",
            )

    def append_log(self, entry: dict) -> None:
        """Append one JSON line to the log (flushed at once)."""
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()

    def truncate_log(self, step: int, epoch: int) -> None:
        """Keep the log lines up to global step ``step`` (and evaluations up to ``epoch``); atomic."""
        if not self.log_path.is_file():
            return
        kept = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the kill
                continue
            if entry.get("step", 0) <= step and entry.get("epoch_done", 0) <= epoch:
                kept.append(line)
        with atomic_open(self.log_path, "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in kept))

    def read_log(self) -> list[dict]:
        if not self.log_path.is_file():
            return []
        return [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").splitlines() if line]

    def write_summary(self, summary: dict) -> None:
        write_json(self.path / SUMMARY_NAME, summary)

    def write_chart(self, queue_size: int, title: str) -> None:
        """Draw the log's epochs and evaluations into training.png (atomic)."""
        from ..data.images import write_image
        from ..viz.charts import figure_to_rgb, training_chart

        entries = self.read_log()
        epochs = [entry for entry in entries if entry.get("event") == "epoch"]
        evaluations = [entry for entry in entries if entry.get("event") == "eval"]
        if epochs:
            figure = training_chart(epochs, evaluations, queue_size, title)
            write_image(self.path / CHART_NAME, figure_to_rgb(figure))


    def is_run(self) -> bool:
        """True when the folder holds a pretraining run's config.json (read-only check)."""
        return (self.path / CONFIG_NAME).is_file() and _read_record(self.path / CONFIG_NAME) is not None

    def architecture(self) -> str | None:
        """The network the run trains (its config.json), or None when the record does not say."""
        record = _read_record(self.path / CONFIG_NAME) or {}
        arch = record.get("config", {}).get("arch")
        return arch if isinstance(arch, str) else None

    def kept_checkpoints(self) -> list[tuple[int, Path]]:
        """Every checkpoint worth scoring, as (epochs done, file), by epoch: the copies kept every --keep-every
        epochs, and the latest checkpoint of a run that ended (summary.json) when no copy holds its epoch."""
        kept = {}
        for entry in self.path.glob("checkpoint_epoch*.pth.tar"):
            match = _KEPT.fullmatch(entry.name)
            if match and entry.is_file():
                kept[int(match.group(1))] = entry
        summary = _read_json(self.path / SUMMARY_NAME)
        epochs = summary.get("epochs_done") if isinstance(summary, dict) else None
        if (
            isinstance(epochs, int)
            and not isinstance(epochs, bool)
            and epochs not in kept
            and self.checkpoint.is_file()
        ):
            kept[epochs] = self.checkpoint
        return sorted(kept.items())


class EpochMeters:
    """Running means of the logged step metrics over one epoch (the log's epoch entry)."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, metrics: dict) -> None:
        self.count += 1
        for key in ("loss", "info_nce", "nn_loss", "accuracy", "images_per_s", "lr"):
            self.sums[key] = self.sums.get(key, 0.0) + float(metrics[key])
        for key in ("fallbacks", "unreadable"):
            self.sums[key] = self.sums.get(key, 0) + metrics[key]

    def means(self) -> dict:
        count = max(self.count, 1)
        means = {
            key: round(value / count, 5) for key, value in self.sums.items() if key not in ("fallbacks", "unreadable")
        }
        return {
            **means,
            "fallbacks": int(self.sums.get("fallbacks", 0)),
            "unreadable": int(self.sums.get("unreadable", 0)),
        }


_KEPT = re.compile(r"checkpoint_epoch(\d{4,})\.pth\.tar")


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None


def _read_record(path: Path) -> dict | None:
    """The run record in ``path`` (a JSON object with ``config`` and ``preset``), or None."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict) or "preset" not in record:
        return None
    return record


def _describe(key: str, old: object, new: object) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != json.loads(json.dumps(new.get(k)))]
        return ", ".join(f"{key}.{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:4])
    return f"{key}: {old!r} -> {new!r}"
