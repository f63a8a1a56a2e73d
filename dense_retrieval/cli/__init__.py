"""The ``dense-retrieval`` command line: one Typer app per command group, joined here."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from . import groups
from .common import new_app

app = new_app(
    "Zero-finetune dense retrieval: segment retrieval and video label propagation from a pretrained backbone.\n\n"
    "Start with `dense-retrieval demo`; every command has --help."
)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")] = False,
) -> None:
    ctx.meta["dense_retrieval.debug"] = debug


# Modules that define commands: each attaches to a group in `groups` or to `app` via register(app).
_COMMAND_MODULES = [
    "demo_cmd",
    "features_cmd",
    "query_cmd",
    "backbones_cmd",
    "env_cmd",
    "davis_evaluate_cmd",
    "davis_propagate_cmd",
    "video_cmd",
    "index_cmd",
    "retrieval_cmd",
    "checkpoints_cmd",
    "synth_cmd",
    "pretrain_cmd",
]

for _name in _COMMAND_MODULES:
    _module = importlib.import_module(f".{_name}", __name__)
    if hasattr(_module, "register"):
        _module.register(app)

for _group_name, _group in groups.ALL.items():
    if _group.registered_commands:
        app.add_typer(_group, name=_group_name)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="dense-retrieval")
