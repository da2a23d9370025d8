"""What every section's checks share: the error, the "did you mean" hint, and the checks of a single value.

Each check raises `ConfigError` with one line that names the key, what was expected and what arrived.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from seg.errors import UserError

AUTO = "auto"  # the value that lets a field be decided at run time (timed, or derived from the data)


class ConfigError(UserError, ValueError):
    """A configuration that cannot be used; the message names the file, the key, and the fix."""


def did_you_mean(value: Any, choices: Iterable[str], cutoff: float = 0.6, prefix: str = "") -> str:
    """ " Did you mean 'x'?" for the choice nearest to a misspelt `value`, or "" when none is close enough.

    `cutoff` is difflib's similarity in [0, 1]; `prefix` (a section such as "model.") is written before the
    suggestion but not compared."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=cutoff)
    return f" Did you mean '{prefix}{close[0]}'?" if close else ""


def one_of(name: str, value: Any, valid: tuple[str, ...]) -> None:
    """`value` is one of the named choices, else an error that lists them and suggests the nearest."""
    if value not in valid:
        raise ConfigError(f"{name} must be one of {', '.join(valid)}, got {value!r}.{did_you_mean(value, valid, 0.4)}")


def is_int(value: Any) -> bool:
    """An int that is not a bool (YAML's `true` would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def auto_or(name: str, value: Any, kind: type, minimum: int | None = None) -> None:
    """`value` is "auto" or of `kind` (and >= minimum); anything else names the key and both forms."""
    if value == AUTO:
        return
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{name} must be 'auto' or {kind.__name__}, got {value!r}.")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be 'auto' or >= {minimum}, got {value}.")


def thread_count(name: str, value: int | None) -> None:
    """A thread count: >= 1, or None for the cores this process may use."""
    if value is not None and value < 1:
        raise ConfigError(f"{name} must be >= 1, or null for the cores this process may use, got {value}.")
