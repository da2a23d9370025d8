"""The exception a user meets when a model cannot be used (no torch import: the CLI catches it cheaply)."""

from __future__ import annotations

from seg.errors import UserError


class ModelLoadError(UserError, ValueError):
    """A model that cannot be loaded; the message names the source, the problem and the fix."""
