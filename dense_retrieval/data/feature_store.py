"""Feature maps on disk: an ``.npz`` file written one array at a time, with the config that made them.

Layout (readable by ``numpy.load``): ``features_000000`` ... one float [C, h, w] array per image or frame,
``names`` (the source of each array) and ``metadata`` (one JSON string: backbone, weights, layer, stride,
feature config, tool version). Written to a temporary file and renamed, so a partial file never exists.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataFormatError, InputError
from .atomic import atomic_path


@dataclass
class StoredFeatures:
    """A feature file opened lazily: ``len()``, ``names``, ``metadata``, ``store[i]`` -> float [C, h, w]."""

    path: Path
    names: list[str]
    metadata: dict
    _npz: np.lib.npyio.NpzFile

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> np.ndarray:
        return self._npz[f"features_{index:06d}"]


def write_feature_store(
    path: str | os.PathLike, items: Iterable[tuple[str, torch.Tensor]], metadata: dict, dtype: str = "float32"
) -> int:
    """Stream ``(name, float [C, h, w])`` pairs into ``path`` (atomic); returns the number written."""
    if dtype not in ("float32", "float16"):
        raise InputError(f"feature dtype {dtype!r} not supported", hint="use float32 or float16")
    names: list[str] = []
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, features in items:
            _write_array(zf, f"features_{len(names):06d}", features.detach().cpu().numpy().astype(dtype))
            names.append(name)
        _write_array(zf, "names", np.array(names, dtype=np.str_))
        _write_array(zf, "metadata", np.array([json.dumps({**metadata, "dtype": dtype}, default=str)]))
    return len(names)


def join_feature_stores(parts: list[Path], path: str | os.PathLike) -> int:
    """Concatenate feature files written by :func:`write_feature_store` into ``path`` (atomic), in order.

    The arrays are copied as stored; names follow each other; the metadata is the parts' (which must agree).
    Used to join the parts torchrun ranks write; returns the number of arrays.
    """
    names: list[str] = []
    metadata = None
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for part in parts:
            stored = read_feature_store(part)
            if metadata is not None and stored.metadata != metadata:
                raise DataFormatError(f"feature file {part} was made with another configuration than {parts[0]}")
            metadata = stored.metadata
            with zipfile.ZipFile(part) as source:
                for index in range(len(stored)):
                    key = f"features_{len(names) + index:06d}.npy"
                    with source.open(f"features_{index:06d}.npy") as src, zf.open(key, "w", force_zip64=True) as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
            names += stored.names
        _write_array(zf, "names", np.array(names, dtype=np.str_))
        _write_array(zf, "metadata", np.array([json.dumps(metadata, default=str)]))
    return len(names)


def read_feature_store(path: str | os.PathLike) -> StoredFeatures:
    """Open a feature file written by :func:`write_feature_store`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"feature file not found: {path}")
    try:
        npz = np.load(path, allow_pickle=False)
        names = [str(n) for n in npz["names"]]
        metadata = json.loads(str(npz["metadata"][0]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise DataFormatError(f"{path} is not a dense-retrieval feature file: {error}") from None
    return StoredFeatures(path, names, metadata, npz)


def _write_array(zf: zipfile.ZipFile, key: str, array: np.ndarray) -> None:
    with zf.open(f"{key}.npy", "w", force_zip64=True) as handle:
        np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)
