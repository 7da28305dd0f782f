"""Errors a user can fix. The CLI prints them as one line, without a traceback."""

from __future__ import annotations

from pathlib import Path

__all__ = ("ArtifactError", "InputFileError", "SchemaError", "TriggerError", "UsageError")


class TriggerError(Exception):
    """Base class: reported by the command line as one line on stderr, exit status 2."""


class UsageError(TriggerError, ValueError):
    """A command-line value that cannot be used (bad rate, bad process name, ...)."""


class InputFileError(TriggerError, OSError):
    """An input file that cannot be read: missing, not HDF5, truncated."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class SchemaError(TriggerError, ValueError):
    """A readable HDF5 file whose content is not in the expected layout."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ArtifactError(TriggerError, ValueError):
    """A saved model or scaler that is missing, damaged or of another version."""
