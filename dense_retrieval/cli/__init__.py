"""The ``dense-retrieval`` command line: one Typer app per command group (cli/groups.py), joined here.

Each command lives in its own module and attaches itself to a group with a decorator; importing the
modules below registers them. Command modules import torch only inside command bodies, so ``--help``
and the commands that never need it (``davis evaluate``, ``index info``) stay fast.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from ..runtime import tune_allocator
from . import groups

app = groups.root

_COMMAND_MODULES = (
    "demo_cmd",
    "features_cmd",
    "query_cmd",
    "backbones_cmd",
    "env_cmd",
    "davis_evaluate_cmd",
    "davis_propagate_cmd",
    "jhmdb_cmd",
    "vip_cmd",
    "video_cmd",
    "index_cmd",
    "retrieval_cmd",
    "checkpoints_cmd",
    "synth_cmd",
    "pretrain_cmd",
    "bench_cmd",
)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what the command is doing (stderr).")] = False,
) -> None:
    from .common import set_verbose

    ctx.meta["dense_retrieval.debug"] = debug
    set_verbose(verbose)
    tune_allocator()  # freed buffers stay reusable: no page faults per layer (dense_retrieval.runtime)


for _name in _COMMAND_MODULES:
    importlib.import_module(f".{_name}", __name__)

for _group_name, _group in groups.SUBGROUPS.items():
    if _group.registered_commands:
        app.add_typer(_group, name=_group_name)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="dense-retrieval")
