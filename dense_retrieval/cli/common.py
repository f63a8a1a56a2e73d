"""What every command shares: the error-handling group, --json output, shared options."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from .. import progress
from ..errors import DenseRetrievalError


class ErrorHandlingGroup(TyperGroup):
    """Turns library errors into one line on stderr and an exit code (house rule 5).

    DenseRetrievalError -> its exit_code (2 for bad input, 1 at run time). Any other exception ->
    exit 1 with a one-line summary. ``--debug`` (on the root command) re-raises with the traceback.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except DenseRetrievalError as error:
            if ctx.meta.get("dense_retrieval.debug"):
                raise
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; finished outputs are kept, rerun to resume", err=True)
            raise typer.Exit(130) from None
        except Exception as error:  # noqa: BLE001 - last line of defence, one line unless --debug
            if ctx.meta.get("dense_retrieval.debug"):
                raise
            text = " ".join(str(error).split()) or error.__class__.__name__
            typer.echo(
                f"error: unexpected {error.__class__.__name__}: {text} (rerun with --debug for details)", err=True
            )
            raise typer.Exit(1) from None


def new_app(help_text: str) -> typer.Typer:
    """A Typer app (command group) with the project's settings."""
    return typer.Typer(
        help=help_text,
        cls=ErrorHandlingGroup,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout (no progress bars).")
]
DeviceOption = Annotated[
    str, typer.Option("--device", help="Torch device: 'auto' (CUDA when present, else CPU), 'cpu', 'cuda', 'cuda:1'.")
]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]


def start_output(json_output: bool) -> None:
    """Call first in every command: progress bars off under --json (house rule 7)."""
    if json_output:
        progress.set_enabled(False)


def print_json(document: Any) -> None:
    """Print ``document`` as the single JSON document of this command on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=json_default) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    """A log line for people: stderr, never stdout."""
    typer.echo(message, err=True)


def json_default(value: Any) -> Any:
    """JSON for values json cannot write itself: paths, arrays and tensors (tolist), dataclasses."""
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    return str(value)
