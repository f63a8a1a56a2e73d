"""Run records: what made an output, written next to it and compared before results are mixed.

Every output of the toolkit (a DAVIS results folder's ``propagation.json``, a segment index's
metadata, a feature file) records the backbone and weights, the feature settings and the settings of
the algorithm that made it (docs/architecture.md, house rule 4). Two outputs may be combined, or a
finished one reused, only when their records have the same :meth:`RunRecord.identity`: the record
without :data:`NEUTRAL_KEYS`, the settings that change speed or placement but never the numbers.

On disk a record is one flat JSON object::

    {"backbone": {...}, "features": {...}, <setting>: ..., ...}

``backbone`` is what :meth:`DenseBackbone.describe` returns (network, layer, stride, weights and their
sha256), ``features`` the :class:`FeatureConfig` fields with ``preprocess`` expanded to the whole recipe
(:meth:`Preprocessing.record`: decoder, filters, rounding, mean/std), and the remaining keys are the
road's own settings (``propagation`` and ``davis`` for label propagation; ``pooling`` and ``dim`` for an
index).

Records written before preprocessing recipes existed have ``features.interpolation`` (a PIL filter)
instead of ``features.preprocess``. They read as the recipe that made them (:func:`upgrade_features`:
``bicubic`` -> ``pil-bicubic``, ``bilinear`` -> ``pil-bilinear``), so an old index or results folder
opens, answers queries and takes more images as before, and is never mixed with outputs of another recipe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .backbone.preprocessing import legacy_preprocessing
from .errors import DataFormatError

NEUTRAL_KEYS = frozenset({"batch_size", "device", "amp", "autocast", "num_workers", "progress", "tile", "query_chunk"})
"""Settings that never change results: batching, device placement, mixed precision on CUDA (whose effect
is within float tolerance), and the propagation tiling knobs (memory and speed only)."""

RESULTS_RECORD = "propagation.json"
"""The file in which a results folder of label propagation (DAVIS, JHMDB, VIP, any video) keeps its record."""

_BACKBONE_KEYS = ("name", "layer", "output_stride", "stride_mode", "weights", "channels", "stride")
_FEATURE_KEYS = ("resize", "preprocess", "l2_normalize")


@dataclass(frozen=True)
class RunRecord:
    """What made an output.

    Attributes:
        backbone: network, layer, output stride, stride mode, weights id and sha256, channels, stride.
        features: how images became network inputs and what happened to the output (resize, the
            preprocessing recipe, L2 normalisation, and runtime settings such as the batch size).
        settings: the road's own settings, e.g. ``{"propagation": {...}, "davis": {...}}`` or
            ``{"pooling": "upsample", "dim": 1280}``.
    """

    backbone: Mapping[str, Any]
    features: Mapping[str, Any]
    settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, described: Mapping[str, Any], **settings: Any) -> RunRecord:
        """From ``FeatureExtractor.describe()`` (``{"backbone", "features"}``) and the road's settings."""
        return cls(dict(described["backbone"]), dict(described["features"]), settings)

    @classmethod
    def from_dict(cls, document: Any, source: str) -> RunRecord:
        """Read a record back, checking its shape.

        Args:
            document: the parsed JSON object.
            source: how to name it in errors (a file path).

        A record older than preprocessing recipes is upgraded (:func:`upgrade_features`).

        Raises:
            DataFormatError: not an object, or ``backbone``/``features`` missing, not objects, or lacking
                the keys every record has.
        """
        if not isinstance(document, Mapping):
            raise DataFormatError(f"{source}: the run record is not a JSON object", hint="it was not made by this tool")
        document = {**document, "features": upgrade_features(document.get("features"))}
        for section, keys in (("backbone", _BACKBONE_KEYS), ("features", _FEATURE_KEYS)):
            value = document.get(section)
            if not isinstance(value, Mapping):
                raise DataFormatError(f"{source}: the run record has no {section!r} object")
            missing = [key for key in keys if key not in value]
            if missing:
                raise DataFormatError(f"{source}: the run record's {section!r} lacks {', '.join(missing)}")
        recipe = document["features"]["preprocess"]
        if not isinstance(recipe, Mapping) or not isinstance(recipe.get("name"), str):
            raise DataFormatError(f"{source}: the run record's preprocessing is not a recipe object with a name")
        settings = {key: value for key, value in document.items() if key not in ("backbone", "features")}
        return cls(dict(document["backbone"]), dict(document["features"]), settings)

    def as_dict(self) -> dict[str, Any]:
        """The flat JSON object written to disk."""
        return {"backbone": dict(self.backbone), "features": dict(self.features), **self.settings}

    def identity(self) -> dict[str, Any]:
        """The record without :data:`NEUTRAL_KEYS`, JSON-normalised: equal identities, equal results."""
        return identity(self.as_dict())

    def differences(self, other: RunRecord) -> list[str]:
        """Dotted keys (``backbone.weights``) where the identities of two records differ, sorted."""
        return differences(self.as_dict(), other.as_dict())


def upgrade_features(features: Any) -> Any:
    """A record's ``features`` written before preprocessing recipes, with its ``interpolation`` replaced
    by the recipe that made it; anything else (a current record, a malformed one) is returned as it is."""
    if not isinstance(features, Mapping) or "preprocess" in features or "interpolation" not in features:
        return features
    recipe = legacy_preprocessing(features["interpolation"])
    if recipe is None:
        return features
    upgraded = {key: value for key, value in features.items() if key != "interpolation"}
    return {**upgraded, "preprocess": recipe.record()}


def identity(document: Any) -> Any:
    """``document`` without :data:`NEUTRAL_KEYS` at any depth, as plain JSON values (tuples become lists)."""
    if isinstance(document, Mapping):
        return {str(key): identity(value) for key, value in document.items() if key not in NEUTRAL_KEYS}
    return json.loads(json.dumps(document, default=str))


def differences(stored: Any, given: Any) -> list[str]:
    """Dotted keys where ``identity(stored)`` and ``identity(given)`` differ, sorted."""
    return sorted(_differences(identity(stored), identity(given), ""))


def _differences(old: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in set(old) | set(new):
            found += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    return [] if old == new else [prefix.rstrip(".")]


def value_at(document: Any, dotted: str) -> Any:
    """The value under a dotted key (``backbone.name``) of a nested record, or None where the path ends early."""
    value = document
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


# ------------------------------------------------------------------------------------------ files read back
def check_entry_name(name: Any, source: str) -> str:
    """A name that a record uses to form a path inside its output: one plain path component.

    Raises:
        DataFormatError: not a string, empty, ``.``/``..``, hidden, with a path separator or NUL, not UTF-8.
    """
    ok = isinstance(name, str) and name not in ("", ".", "..") and not name.startswith(".")
    ok = ok and "/" not in name and "\\" not in name and "\0" not in name
    if ok:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            ok = False
    if not ok:
        raise DataFormatError(
            f"{source}: {name!r} is not a plain name (no folders, no '..', no hidden names)",
            hint="the file was edited or not made by this tool; remove it or choose another output",
        )
    return name


def read_propagation_record(document: Any, source: str) -> dict[str, Any]:
    """A ``propagation.json`` read back, checked against its schema before anything acts on it.

    Schema: ``{"tool": str, "run": <RunRecord>, "sequences": {<plain name>: {"frames": int >= 1,
    "objects": int >= 0, "seconds": number >= 0}}}``.

    Raises:
        DataFormatError: anything that does not fit, named.
    """
    if not isinstance(document, Mapping):
        raise DataFormatError(f"{source} is not a propagation record (not a JSON object)")
    RunRecord.from_dict(document.get("run"), source)
    sequences = document.get("sequences", {})
    if not isinstance(sequences, Mapping):
        raise DataFormatError(f"{source}: 'sequences' is not an object of sequence names")
    for name, entry in sequences.items():
        check_entry_name(name, source)
        if not isinstance(entry, Mapping):
            raise DataFormatError(f"{source}: sequence {name!r} has no entry object")
        for key, low in (("frames", 1), ("objects", 0)):
            value = entry.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise DataFormatError(f"{source}: sequence {name!r} has {key} {value!r}, expected an integer >= {low}")
        seconds = entry.get("seconds", 0)
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds < float("inf"):
            raise DataFormatError(f"{source}: sequence {name!r} has seconds {seconds!r}")
    return {**document, "sequences": dict(sequences)}


_FAISS_FILE = re.compile(r"index-\d{6,}\.faiss")


def check_index_meta(meta: Any, source: str) -> dict[str, Any]:
    """An index's ``meta`` table read back, checked before any of it names a file or a size.

    Schema: ``format`` int, ``config`` a run record, ``factory`` str, ``dim`` int >= 1, ``version`` and
    ``ntotal`` ints >= 0, ``faiss_file`` a plain ``index-NNNNNN.faiss`` name inside the index.

    Raises:
        DataFormatError: a key missing or of the wrong type or range, named.
    """
    if not isinstance(meta, Mapping):
        raise DataFormatError(f"{source}: the index metadata is not a table of values")
    if not isinstance(meta.get("config"), Mapping):
        raise DataFormatError(f"{source}: metadata 'config' is not a run record object")
    if "features" in meta["config"]:  # an index older than preprocessing recipes reads as the one that made it
        meta = {**meta, "config": {**meta["config"], "features": upgrade_features(meta["config"]["features"])}}
    checks = {
        "factory": lambda v: isinstance(v, str) and v != "",
        "dim": lambda v: _integer(v) and v >= 1,
        "version": lambda v: _integer(v) and v >= 0,
        "ntotal": lambda v: _integer(v) and v >= 0,
        "faiss_file": lambda v: isinstance(v, str) and _FAISS_FILE.fullmatch(v) is not None,
    }
    for key, valid in checks.items():
        if key not in meta or not valid(meta[key]):
            raise DataFormatError(
                f"{source}: metadata {key!r} is {meta.get(key)!r}, which is not valid",
                hint="the index was damaged or edited; rebuild it with `index build`",
            )
    return dict(meta)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
