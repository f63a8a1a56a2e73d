"""What every command shares: the error-handling group, --json output, shared options.

Every way a command can end is one of (house rule 5):

- success: its output on stdout, then one ``warning: ...`` line per warning the run raised;
- a user error (a DenseRetrievalError with exit code 2, Click's own usage errors, a file-system refusal
  such as a read-only folder or a name too long): exactly one ``error: ...`` line, exit code 2;
- a failure at run time: one ``error: ...`` line, exit code 1 (``--debug`` shows the traceback);
- Ctrl-C: one ``interrupted; ...`` line, exit code 130, unless the command had already committed its
  result (:mod:`dense_retrieval.interrupts`): then it reports success.

Log lines (``info``) are shown only with ``--verbose``, so nothing comes before an error line.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from .. import interrupts, progress
from ..errors import DenseRetrievalError

# errors of the file system that a user can fix (a path, a permission), not failures of the toolkit
_USER_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENAMETOOLONG,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENOENT,
    errno.ELOOP,
    errno.EBUSY,
    errno.ENOTEMPTY,
}
_settings = {"verbose": False}
# Click's exception classes as this Typer uses them (recent Typer versions carry their own copy of Click)
_CLICK = {cls.__name__: cls for cls in typer.BadParameter.__mro__}
_ClickException, _UsageError = _CLICK["ClickException"], _CLICK["UsageError"]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class ErrorHandlingGroup(TyperGroup):
    """Turns every way a command ends into the contract of the module docstring."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        interrupts.reset()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                result = super().main(*args, standalone_mode=False, **kwargs)
            except _ClickException as error:  # usage errors: unknown option, bad value, missing argument
                if type(error).__name__ == "NoArgsIsHelpError":  # a bare group name: its help, not an error
                    typer.echo(error.ctx.get_help())
                    sys.exit(0)
                where = f" (hint: see `{error.ctx.command_path} --help`)" if getattr(error, "ctx", None) else ""
                typer.echo(f"error: {_one_line(error.format_message())}{where}", err=True)
                sys.exit(2 if isinstance(error, _UsageError) else error.exit_code)
            except Exception as error:
                if not any(cls.__name__ == "Abort" for cls in type(error).__mro__):
                    raise
                typer.echo("interrupted; finished outputs are kept, rerun to resume", err=True)
                sys.exit(130)
        code = result if isinstance(result, int) else 0
        if code == 0:
            for line in dict.fromkeys(_one_line(str(w.message)) for w in caught):
                typer.echo(f"warning: {line}", err=True)
            if interrupts.interrupted_after_commit():
                typer.echo("note: interrupted after the result was committed; the result above is complete", err=True)
        sys.exit(code)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException, _ClickException):
            raise
        except DenseRetrievalError as error:
            if ctx.meta.get("dense_retrieval.debug"):
                raise
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            if ctx.meta.get("dense_retrieval.debug"):
                raise
            typer.echo("interrupted; finished outputs are kept, rerun to resume", err=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:  # stdout closed early (`| head`): stop quietly, as command-line tools do
            with _suppress_os_error():
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except OSError as error:
            if ctx.meta.get("dense_retrieval.debug"):
                raise
            where = f": {error.filename}" if error.filename else ""
            user = error.errno in _USER_ERRNOS
            typer.echo(f"error: {_one_line(error.strerror or error)}{where}", err=True)
            raise typer.Exit(2 if user else 1) from None
        except MemoryError:
            if ctx.meta.get("dense_retrieval.debug"):
                raise
            typer.echo("error: out of memory (hint: use smaller inputs, --batch-size 1 or --resize short:N)", err=True)
            raise typer.Exit(1) from None
        except Exception as error:  # noqa: BLE001 - last line of defence, one line unless --debug
            if ctx.meta.get("dense_retrieval.debug"):
                raise
            text = _one_line(error) or error.__class__.__name__
            typer.echo(
                f"error: unexpected {error.__class__.__name__}: {text} (rerun with --debug for details)", err=True
            )
            raise typer.Exit(1) from None


class _suppress_os_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)


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


def set_verbose(verbose: bool) -> None:
    """``--verbose`` on the root command: show the log lines of :func:`info` and the library's INFO logs."""
    _settings["verbose"] = verbose
    library = logging.getLogger("dense_retrieval")
    if verbose and not library.handlers:
        library.addHandler(logging.StreamHandler(sys.stderr))
        library.setLevel(logging.INFO)


def info(message: str) -> None:
    """A log line for people, shown with ``--verbose``: stderr, never stdout, never before an error line."""
    if _settings["verbose"]:
        typer.echo(message, err=True)


def note(message: str) -> None:
    """A line for people that belongs to a command's result (printed after success): stderr."""
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
