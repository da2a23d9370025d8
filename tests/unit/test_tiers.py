"""The house is one-way: every `seg` import (at module level and inside functions) follows the tiers below.

base      seg.config, seg.errors, seg.files,       nothing of seg (config: errors and files)
          seg.pictures, seg.case_progress, seg.metrics
data      seg.data                                 base
models    seg.models                               base (a network knows nothing of the data layer)
services  seg.runtime, seg.tracking,               base, data, models (the model folder holds a network and
          seg.model_folder                         the data fingerprint it was trained on)
methods   seg.seam                                 base, data, models, services (SEAM registers its network
                                                   with seg.models.build, which never imports it)
stages    seg.train, seg.infer                     everything above; never each other
          seg.explain                              everything above and seg.infer (it predicts), never train
          seg.heads                                all of the above (it ranks heads by the training loss,
                                                   scores like validation and reports like explain)
commands  seg.stages, seg.cli, seg.config_docs     everything
"""

from __future__ import annotations

from pathlib import Path

import pytest
from import_graph import imports

SEG = Path(__file__).resolve().parents[2] / "seg"
BASE = {
    "seg",
    "seg.config",
    "seg.errors",
    "seg.files",
    "seg.pictures",
    "seg.case_progress",
    "seg.metrics",
}  # "seg": the package's __version__
ALLOWED = {
    "seg": set(),
    "seg.config": {"seg.errors", "seg.files"},
    "seg.errors": set(),
    "seg.files": set(),
    "seg.pictures": set(),
    "seg.case_progress": set(),
    "seg.metrics": set(),
    "seg.data": BASE,
    "seg.models": BASE,
    "seg.model_folder": BASE | {"seg.data", "seg.models"},
    "seg.runtime": BASE | {"seg.data", "seg.models"},
    "seg.tracking": BASE | {"seg.data", "seg.models"},
    "seg.seam": BASE | {"seg.data", "seg.models", "seg.model_folder", "seg.runtime", "seg.tracking"},
    "seg.train": BASE | {"seg.data", "seg.models", "seg.model_folder", "seg.runtime", "seg.tracking", "seg.seam"},
    "seg.infer": BASE | {"seg.data", "seg.models", "seg.model_folder", "seg.runtime", "seg.tracking", "seg.seam"},
    "seg.explain": BASE
    | {"seg.data", "seg.models", "seg.model_folder", "seg.runtime", "seg.tracking", "seg.seam", "seg.infer"},
    "seg.heads": BASE
    | {
        "seg.data",
        "seg.models",
        "seg.model_folder",
        "seg.runtime",
        "seg.tracking",
        "seg.seam",
        "seg.infer",
        "seg.explain",
        "seg.train",
    },
    "seg.stages": None,  # None: anything
    "seg.cli": None,
    "seg.config_docs": None,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SEG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def tier(module: str) -> str:
    """The tier key of a module: its top-level seg package or module (seg.data.cache -> seg.data)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def seg_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported seg module) for every import in the file, anywhere in it (type-checking imports too)."""
    return imports(path, module_name(path), type_checking=True, ours=lambda name: name.split(".")[0] == "seg")


def violations() -> list[str]:
    out = []
    for path in sorted(SEG.rglob("*.py")):
        me = tier(module_name(path))
        assert me in ALLOWED, f"{path}: seg package {me!r} has no tier; add it to ALLOWED in {__file__}"
        allowed = ALLOWED[me]
        if allowed is None:
            continue
        for line, target in seg_imports(path):
            other = tier(target)
            if other != me and other not in allowed:
                rel = path.relative_to(SEG.parent)
                may = sorted(allowed) or "nothing of seg"
                out.append(f"{rel}:{line} ({me}) imports {target} ({other}); {me} may import {may}")
    return out


def test_every_import_follows_the_tiers():
    found = violations()
    print("\n".join(found) or f"all imports of {len(list(SEG.rglob('*.py')))} files follow the tiers")
    assert not found, "imports against the tiers:\n" + "\n".join(found)


def test_train_infer_and_explain_are_separate():
    for path in sorted(SEG.rglob("*.py")):
        me = tier(module_name(path))
        for line, target in seg_imports(path):
            if me in ("seg.infer", "seg.explain"):
                assert tier(target) != "seg.train", f"{path}:{line}: {me} imports {target}; move the shared code down"


@pytest.mark.parametrize(
    "source,expected",
    [
        ("from seg.data.cache import Cache\n", "seg.data.cache"),
        ("def f():\n    from .cache import Cache\n", "seg.data.cache"),
        ("import seg.model_folder as b\n", "seg.model_folder"),
    ],
)
def test_the_parser_sees_imports_everywhere(tmp_path, monkeypatch, source, expected):
    """The check itself: module-level, function-level and relative imports are all found."""
    fake = tmp_path / "seg" / "data"
    fake.mkdir(parents=True)
    (fake / "probe.py").write_text(source)
    monkeypatch.setattr(f"{__name__}.SEG", tmp_path / "seg")
    assert [t for _, t in seg_imports(fake / "probe.py")] == [expected]
