"""Errors the user must fix: the command line prints their message and exits 2, with no traceback.

Everything else that escapes a command is a bug in gaptune. Raise a
`UserError` (or a subclass) only when the message alone tells the user what to
change: the file, row or key, and what it should be. Subclasses also derive
from the built-in type they replaced (`ValueError`), so callers that caught
that keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gaptune.data.llava_format import RowProblem


class UserError(Exception):
    """Something the user must fix (a config, a data file, a teacher setting, a run directory); the message says what."""


class ConfigError(UserError, ValueError):
    """A config file, override or setting the user must fix; the message names the key."""


class DataError(UserError, ValueError):
    """Bad input data; the message names the file, the row and the field to fix."""

    def __init__(self, message: str, problem: RowProblem | None = None) -> None:
        super().__init__(message)
        self.problem = problem

    @classmethod
    def from_problem(cls, problem: RowProblem) -> DataError:
        return cls(f"{problem.describe()} (fix or remove this row)", problem)


class RunDirectoryError(UserError, ValueError):
    """A path given as a run directory that is missing or holds no gaptune run (or not the part asked for)."""


__all__ = ["ConfigError", "DataError", "RunDirectoryError", "UserError"]
