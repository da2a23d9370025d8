"""The errors a user can meet and fix: each stage reports them as one line (the file or key, what is wrong, the
fix) and an exit code. Everything else is a bug in seg and keeps its traceback.

Each is also the built-in error it refines (a `ConfigError` is a `ValueError`, a `MissingInputError` a
`FileNotFoundError`), so library callers may catch either.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: the message names the file or key, what arrived, what was expected, the fix."""


class ModelDataMismatch(UserError, ValueError):
    """A model or training setting that does not fit the data it is given (channels, classes, patch size)."""


class MissingInputError(UserError, FileNotFoundError):
    """An input the command needs is absent or unusable: a checkpoint to resume from, a model, a folder."""
