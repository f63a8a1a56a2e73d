"""The error family of the toolkit.

Library code raises a subclass of :class:`DenseRetrievalError` for anything a user can fix.
The message names the bad value and what was expected; ``hint`` says how to fix it. The CLI
prints ``str(error)`` as one line on stderr and exits with ``error.exit_code``.
"""

from __future__ import annotations


class DenseRetrievalError(Exception):
    """Base class. ``exit_code`` 1: something went wrong at run time."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __reduce__(self):
        # keep the hint when the error crosses a process boundary (multiprocessing pickles it)
        return (self.__class__, (self.message, self.hint))

    def __str__(self) -> str:
        text = self.message if not self.hint else f"{self.message} (hint: {self.hint})"
        return " ".join(text.split())  # always one line


class InputError(DenseRetrievalError):
    """Bad user input: a missing path, a value out of range, an unknown name. Exit code 2."""

    exit_code = 2


class DataFormatError(InputError):
    """A file exists but is not what was expected: unreadable image, wrong mask size, bad layout."""


class CheckpointError(InputError):
    """A checkpoint that cannot be read, is unsafe, or does not fit the architecture."""


class ConfigMismatchError(InputError):
    """Mixing results made with different configurations (e.g. another backbone in an index)."""


class OutputExistsError(InputError):
    """The output already exists and overwriting was not allowed."""


class DownloadError(DenseRetrievalError):
    """A download failed or its checksum did not match."""
