"""A config field together with its documentation, which the configuration reference (`seg.config_docs`) reads.

    lr: float = doc(3e-3, "peak learning rate (after warm-up)")

The text says what the field does and what it trades off; measured figures belong in docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")
DOC = "doc"  # the metadata key of a field's documentation


def doc(default: T, text: str) -> T:
    """A dataclass field with `default` and its documentation `text` (typed as the default, so annotations hold)."""
    return dataclasses.field(default=default, metadata={DOC: " ".join(text.split())})  # type: ignore[return-value]


def section(cls: type[T], text: str = "") -> T:
    """A nested section's field (a fresh default instance); without `text` the reference uses its docstring."""
    return dataclasses.field(default_factory=cls, metadata={DOC: text} if text else {})  # type: ignore[return-value]


def field_doc(f: dataclasses.Field[Any]) -> str:
    """The documentation of a field made by `doc` or `section` ("" for any other field)."""
    return str(f.metadata.get(DOC, ""))
