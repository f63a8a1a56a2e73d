"""`dense-retrieval env`: what this installation can use (versions, devices, embedded weights)."""

from __future__ import annotations

import platform
from importlib import metadata

import typer

from . import groups
from .common import JsonOption, print_json, start_output


def environment_report() -> dict:
    """Versions of the main dependencies, the devices torch and faiss can use."""
    import faiss
    import numpy
    import torch
    import torchvision

    from .. import __version__

    return {
        "dense_retrieval": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": _installed("timm"),  # vision transformers; read from the metadata (importing timm takes seconds)
        "numpy": numpy.__version__,
        "faiss": getattr(faiss, "__version__", "unknown"),
        "cuda_available": torch.cuda.is_available(),
        "faiss_gpus": faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0,
        "cpu_threads": torch.get_num_threads(),
    }


def _installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@groups.root.command("env")
def env(json_output: JsonOption = False) -> None:
    """Show versions, devices and what the toolkit can use on this machine."""
    start_output(json_output)
    report = environment_report()
    if json_output:
        print_json(report)
        return
    width = max(len(key) for key in report)
    for key, value in report.items():
        typer.echo(f"{key:<{width}}  {value}")
