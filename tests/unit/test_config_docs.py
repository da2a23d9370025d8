"""The configuration reference generated from the field docs in seg/config/: coverage, stability, the round trip
through a marked file."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest

from seg import config_docs
from seg.config import Config
from seg.config.fields import doc, section
from seg.config_docs import END_MARKER, START_MARKER, config_reference_markdown, undocumented_fields

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class _Inner:
    """Inner section."""

    a: int = doc(1, "the doc of a")


@dataclass(frozen=True)
class _Outer:
    x: int = doc(1, "one line")
    y: str = doc(
        "#not a comment",
        """over
        two lines""",
    )
    z: tuple[int, ...] = doc((1, 2), "a tuple default")
    bare: float = 0.5  # a comment is not documentation
    inner: _Inner = section(_Inner)
    documented: _Inner = section(_Inner, "its own doc")


@dataclass(frozen=True)
class _NoDocstring:
    a: int = 1


def _expected_keys(cls: type, prefix: str = "") -> list[str]:
    """Every field below the top level, by walking dataclasses.fields (nested sections are rows too)."""
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        tp = hints[f.name]
        if prefix:
            keys.append(f"{prefix}{f.name}")
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            keys += _expected_keys(tp, f"{prefix}{f.name}.")
    return keys


def _cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def test_every_field_of_every_section_has_a_row() -> None:
    md = config_reference_markdown()
    rows = [_cells(line) for line in md.splitlines() if line.startswith("| `")]
    keys = [r[0].strip("`") for r in rows]
    expected = _expected_keys(Config)
    assert sorted(keys) == sorted(expected)
    assert len(keys) == len(set(keys))
    assert all(len(r) == 4 for r in rows)
    for f in dataclasses.fields(Config):
        assert f"### `{f.name}`" in md  # model, data, train (+ infer, analyze, ... when they exist)
    assert "### `train.augment`" in md


def test_markdown_is_stable_and_clean() -> None:
    md = config_reference_markdown()
    assert md == config_reference_markdown()
    assert md.endswith("\n") and not md.endswith("\n\n\n")
    assert all(line == line.rstrip() for line in md.splitlines())
    assert START_MARKER not in md and END_MARKER not in md
    assert "| `model.out_channels` | `int` | `3` | classes including background |" in md
    assert '| `train.precision` | `str` | `"auto"` |' in md
    assert "| `data.root` | `str \\| None` | `null` |" in md


def test_undocumented_fields_are_exactly_the_empty_meanings() -> None:
    rows = {
        r[0].strip("`"): r[3]
        for r in (_cells(line) for line in config_reference_markdown().splitlines() if line.startswith("| `"))
    }
    missing = undocumented_fields()
    assert missing == [k for k, doc in rows.items() if not doc]
    assert "model.out_channels" not in missing


def test_field_docs_read_each_fields_documentation() -> None:
    docs = config_docs.field_docs(_Outer)
    assert docs == {
        "x": "one line",
        "y": "over two lines",
        "z": "a tuple default",
        "bare": "",
        "inner": "",
        "documented": "its own doc",
    }
    top = config_docs.sections(_Outer)  # at the top, a nested dataclass is a section, not a row
    assert [s.key for s in top] == ["", "inner", "documented"]
    assert [r.key for r in top[0].rows] == ["x", "y", "z", "bare"]
    sections = config_docs.sections(_Outer, "outer.")  # below it, also a row pointing at its table
    assert [s.key for s in sections] == ["outer", "outer.inner", "outer.documented"]
    inner_row, documented_row = sections[0].rows[-2:]
    assert inner_row.nested and inner_row.doc == "Inner section."  # falls back to the class docstring
    assert documented_row.nested and documented_row.doc == "its own doc"
    assert [r.default for r in sections[0].rows[:3]] == ["1", '"#not a comment"', "[1, 2]"]
    assert sections[1].rows[0].doc == "the doc of a"


def test_class_doc_is_the_docstring_written_not_the_one_dataclasses_invent() -> None:
    assert config_docs.class_doc(_Inner) == "Inner section."
    assert _NoDocstring.__doc__ and config_docs.class_doc(_NoDocstring) == ""
    assert config_docs.class_doc(Config) == "All sections; each stage reads only the one it needs."


def test_every_config_field_is_documented() -> None:
    assert undocumented_fields() == []


@pytest.fixture()
def readme(tmp_path: Path) -> Path:
    """A README with a stale marked section."""
    path = tmp_path / "README.md"
    path.write_text(
        "# A project\n\nSome text.\n" + f"\n## Configuration\n\n{START_MARKER}\nstale\n{END_MARKER}\n\nAfter.\n",
        encoding="utf-8",
    )
    return path


def test_write_then_check_round_trip(readme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = readme.read_text(encoding="utf-8")
    assert config_docs.main(["--write", str(readme)]) == 0
    after = readme.read_text(encoding="utf-8")
    head, tail = before.split(START_MARKER)[0], before.split(END_MARKER)[1]
    assert after.startswith(head + START_MARKER) and after.endswith(END_MARKER + tail)
    assert config_reference_markdown() in after
    assert sorted(p.name for p in readme.parent.iterdir()) == ["README.md"]  # no temp file left behind
    assert config_docs.main(["--check", str(readme)]) == 0
    assert config_docs.main(["--write", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == after  # idempotent
    assert "already up to date" in capsys.readouterr().out


def test_check_fails_on_a_stale_section(readme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert config_docs.main(["--check", str(readme)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of date" in err and "--write" in err
    config_docs.main(["--write", str(readme)])
    text = readme.read_text(encoding="utf-8")
    readme.write_text(text.replace("| `train.lr` | `float` | `0.003` |", "| `train.lr` | `float` | `0.01` |"))
    assert config_docs.main(["--check", str(readme)]) == 1


def test_missing_markers_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "README.md"
    path.write_text("# no markers\n", encoding="utf-8")
    assert config_docs.main(["--check", str(path)]) == 2
    assert config_docs.main(["--write", str(path)]) == 2
    assert path.read_text(encoding="utf-8") == "# no markers\n"
    path.write_text(f"{END_MARKER}\n{START_MARKER}\n", encoding="utf-8")
    assert config_docs.main(["--check", str(path)]) == 2
    assert config_docs.main(["--check", str(tmp_path / "absent.md")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and all(line.startswith(str(tmp_path)) for line in err)


def test_module_entry_point_prints_the_markdown() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "seg.config_docs"], capture_output=True, text=True, check=True, cwd=REPO, env=env
    ).stdout
    assert out == config_reference_markdown()


def test_repository_readme_reference_is_in_sync():
    page = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    from seg.config_docs import config_reference_markdown

    assert config_reference_markdown().strip() in page.read_text(), (
        "docs/configuration.md's configuration reference is stale: "
        "run `python -m seg.config_docs --write docs/configuration.md`"
    )
