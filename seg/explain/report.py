"""The analysis report: one HTML file that opens offline, anywhere (a browser, MLflow's artifact viewer): images
are embedded as base64 data URIs, styles are inline, and there is no script and no external reference."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from seg.files import write_bytes

STYLE = (
    "body{font-family:sans-serif;margin:1.5em;max-width:1200px;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
    "th{background:#eee}td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.3em 0}"
    "dt{font-weight:bold;margin-top:.5em}code{background:#f3f3f3;padding:0 3px}.note{color:#a33}"
    ".facts td{text-align:left}"
)


@dataclass
class Table:
    caption: str
    header: Sequence[str]
    rows: Sequence[Sequence[object]]  # floats are shown with 3 decimals; None as a dash


@dataclass
class Figure:
    caption: str
    png: bytes


def _cell(v: object) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def _table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in t.rows)
    return f"<h3>{html.escape(t.caption)}</h3><table><tr>{head}</tr>{body}</table>"


def _figure(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    alt = html.escape(f.caption, quote=True)
    return f'<figure><img src="data:image/png;base64,{data}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'


def write_report(
    path: Path,
    title: str,
    facts: Mapping[str, str],
    tables: Sequence[Table],
    figures: Sequence[tuple[str, Sequence[Figure]]],
    definitions: Mapping[str, str],
    notes: Sequence[str] = (),
) -> Path:
    """`figures`: (section heading, figures) pairs; `definitions`: term -> what it measures."""
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><table class='facts'>",
    ]
    parts += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts.items()]
    parts.append("</table>")
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]
    parts.append("<h2>Measurements</h2>")
    parts += [_table(t) for t in tables]
    parts.append("<h2>Definitions</h2><dl>")
    parts += [f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in definitions.items()]
    parts.append("</dl>")
    for heading, figs in figures:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts += [_figure(f) for f in figs]
    parts.append("</body></html>\n")
    return write_bytes(path, "".join(parts).encode("utf-8"))
