"""The configuration reference (Markdown tables) generated from the config dataclasses, so the docs cannot drift.

Each field's meaning is the documentation it is declared with in seg/config/ (`doc(default, "...")`, kept in the
field's metadata); a nested section's row takes its class docstring unless its field has its own. Sections are
found by walking `Config`'s fields and recursing into nested dataclasses, so a new section or field shows up by
itself. The reference sits between two marker lines in a Markdown file, which `--check` and `--write` name:

    python -m seg.config_docs                  # print the Markdown
    python -m seg.config_docs --check FILE.md  # exit 1 if the file's marked section is stale
    python -m seg.config_docs --write FILE.md  # replace the file's marked section in place
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg.config import Config
from seg.config.fields import field_doc
from seg.files import atomic_path

START_MARKER = "<!-- config-reference:start -->"
END_MARKER = "<!-- config-reference:end -->"
WRITE_HINT = "python -m seg.config_docs --write"
REFERENCE_PAGE = "docs/configuration.md"  # the documentation page that holds the generated reference


@dataclass(frozen=True)
class Row:
    key: str  # dotted, as in params.yaml and MLflow params: train.augment.flip_prob
    type: str
    default: str
    doc: str
    nested: bool = False  # a section inside a section: its row points at the section's own table


@dataclass(frozen=True)
class Section:
    key: str  # dotted section name ("" for fields directly on Config)
    doc: str  # the section class's docstring
    rows: tuple[Row, ...]


# ------------------------------------------------------------------------------------------ field docs


def class_doc(cls: type) -> str:
    """The class docstring as written, on one line ("" when there is none: dataclasses then invent one from the
    signature, which is no documentation)."""
    doc = cls.__doc__ or ""
    invented = cls.__name__ + str(inspect.signature(cls)).replace(" -> None", "")
    return "" if doc == invented else " ".join(doc.split())


def field_docs(cls: type) -> dict[str, str]:
    """{field: description}, from each field's documentation (`seg.config.fields.doc`)."""
    return {f.name: field_doc(f) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- walking


def _dataclass_type(tp: Any) -> type | None:
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def _format_value(value: Any) -> str:
    """YAML-style, as a user writes it in params.yaml (strings quoted so "32" reads as a string)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_format_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _format_type(annotation: Any) -> str:
    if isinstance(annotation, str):  # `from __future__ import annotations`: the text as written in the source
        return annotation
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def sections(root: type = Config, prefix: str = "") -> list[Section]:
    """One section per dataclass reachable from `root` (depth first, in field order)."""
    hints = typing.get_type_hints(root)
    docs = field_docs(root)
    rows: list[Row] = []
    nested: list[Section] = []
    for f in dataclasses.fields(root):  # type: ignore[arg-type]
        key = f"{prefix}{f.name}"
        sub = _dataclass_type(hints[f.name])
        if sub is not None:
            nested.extend(sections(sub, f"{key}."))
            if prefix:  # a section inside a section: a row in its parent too, pointing at its own table
                rows.append(Row(key, _format_type(f.type), "", docs.get(f.name) or class_doc(sub), nested=True))
            continue
        if f.default is not dataclasses.MISSING:
            default = _format_value(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = _format_value(f.default_factory())
        else:
            default = "(required)"
        rows.append(Row(key, _format_type(f.type), default, docs.get(f.name, "")))
    own = [Section(prefix.rstrip("."), class_doc(root), tuple(rows))] if rows or prefix else []
    return own + nested


def _prose(text: str) -> str:
    """Comment text as Markdown: outside `code spans`, escape what would turn into HTML or emphasis."""
    parts = re.split(r"(`[^`]*`)", text)
    for i in range(0, len(parts), 2):  # even indices are outside code spans
        parts[i] = re.sub(r"[<*]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", lambda m: "\\" + m.group(0), parts[i])
    return "".join(parts)


def _cell(text: str, code: bool = False) -> str:
    text = text if code else _prose(text)
    text = text.replace("|", "\\|")  # GFM tables split on | even inside code spans
    return f"`{text}`" if code and text else text


def config_reference_markdown() -> str:
    """The Markdown reference: a `###` heading, the section's docstring and a table per section."""
    header = (
        f"<!-- Generated from the field docs in seg/config/ by `{WRITE_HINT} {REFERENCE_PAGE}`: edit them there. -->"
    )
    out = [header, ""]
    for section in sections():
        out.append(f"### `{section.key}`" if section.key else "### top level")
        out.append("")
        if section.doc:
            out += [_prose(section.doc), ""]
        out += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for r in section.rows:
            default = f"see `{r.key}`" if r.nested else _cell(r.default, True)
            cells = [_cell(r.key, True), _cell(r.type, True), default, _cell(r.doc)]
            out.append("| " + " | ".join(cells).rstrip() + " |")
        out.append("")
    return "\n".join(out)


def undocumented_fields() -> list[str]:
    """Dotted keys of fields that have no description in seg/config/."""
    return [r.key for s in sections() for r in s.rows if not r.doc]


# ----------------------------------------------------------------------------------------- the marked file


class DocsError(Exception):
    """A file that cannot be checked or written; the message is one line."""


def _split(text: str, path: Path) -> tuple[str, str, str]:
    """(before start marker incl., between, end marker incl. and after)."""
    if text.count(START_MARKER) != 1 or text.count(END_MARKER) != 1:
        raise DocsError(f"{path}: needs exactly one {START_MARKER} and one {END_MARKER} line around the reference.")
    start, end = text.index(START_MARKER) + len(START_MARKER), text.index(END_MARKER)
    if end < start:
        raise DocsError(f"{path}: {END_MARKER} comes before {START_MARKER}; swap them.")
    return text[:start], text[start:end], text[end:]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise DocsError(f"{path}: cannot read ({e.strerror or e}).") from None


def check(path: Path) -> bool:
    """True when the file's marked section equals the generated reference (surrounding blank lines aside)."""
    _, between, _ = _split(_read(path), path)
    return between.strip() == config_reference_markdown().strip()


def write(path: Path) -> bool:
    """Replace the marked section atomically (`seg.files.atomic_path`), keeping the file's mode; True if changed."""
    text = _read(path)
    head, _, tail = _split(text, path)
    new = f"{head}\n{config_reference_markdown()}{tail}"
    if new == text:
        return False
    with atomic_path(path) as tmp:
        tmp.write_text(new, encoding="utf-8")
        os.chmod(tmp, path.stat().st_mode & 0o7777)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seg.config_docs", description="Configuration reference from seg/config/."
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", metavar="FILE", type=Path, help="exit 1 if the marked section is stale")
    group.add_argument("--write", metavar="FILE", type=Path, help="replace the marked section in place")
    args = parser.parse_args(argv)
    try:
        if args.check is not None:
            if not check(args.check):
                print(
                    f"{args.check}: configuration reference is out of date; run `{WRITE_HINT} {args.check}`.",
                    file=sys.stderr,
                )
                return 1
            print(f"{args.check}: configuration reference is up to date.")
        elif args.write is not None:
            changed = write(args.write)
            print(f"{args.write}: configuration reference {'updated' if changed else 'already up to date'}.")
        else:
            sys.stdout.write(config_reference_markdown())
    except DocsError as e:
        print(e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
