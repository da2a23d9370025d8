"""What DVC itself says: in a scratch copy whose stages DVC considers up to date, changing one params key (or one
code file) must make exactly the stages that read it stale in `dvc status`. Stages downstream of a changed one
rerun when its outputs change, which `dvc status` cannot predict; the expected sets are the stages that read the
key themselves (tests/unit/test_dvc_deps.py holds them).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc_deps import ALWAYS, REPO, STAGES, required_code, stage_script

from seg.config import Config, flatten

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from test_dvc_deps import PROBED_KEYS, expected_stages, missing_params

# ------------------------------------------------------------------------------ slow: what DVC itself says


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    run = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, f"dvc {' '.join(args)} failed:\n{run.stdout}{run.stderr}"
    return run


def _stale(root: Path) -> set[str]:
    """The stages `dvc status` lists, asked in this process (the same code as the command, without starting a
    Python and importing DVC each time: ~0.3 s a call instead of ~1-2 s on two busy cores)."""
    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(str(root)) as repo:  # stage names are relative to the working directory
        return set(repo.status(targets=["dvc.yaml"]))  # the default pipeline; crossval/dvc.yaml is separate


def _placeholder(path: Path) -> None:
    """A stand-in for a stage output or data dep: a small file where the name has a suffix, else a folder."""
    if path.exists():
        return
    if path.suffix:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n" if path.suffix == ".json" else "placeholder\n")
    else:
        path.mkdir(parents=True)
        (path / "placeholder").write_text("placeholder\n")


def _out_paths(stage: dict[str, Any]) -> list[str]:
    return [
        next(iter(o)) if isinstance(o, dict) else o
        for kind in ("outs", "metrics", "plots")
        for o in stage.get(kind, [])
    ]


def _different(value: Any) -> Any:
    """Some other value of the same kind (DVC compares values; seg never loads this params.yaml)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "-changed"
    if isinstance(value, list | tuple):
        return [*value, value[-1] if value else 1]
    return "changed"  # None


def _set_key(params: dict, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = params
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree (tracked and new, not ignored, files) whose four stages DVC considers up to
    date: placeholder outputs, then `dvc commit -f` records them in dvc.lock without running anything."""
    if importlib.util.find_spec("dvc") is None:
        pytest.skip("dvc is not installed in this environment (pip install -e '.[dev]' brings it)")
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the scratch copy is listed with git ls-files")
    if missing_params():
        pytest.fail("DVC cannot commit these stages:\n" + "\n".join(missing_params()))
    root = tmp_path_factory.mktemp("dvc-deps")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():  # deleted or renamed-away files are still in the index
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / rel)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    if not (root / ".dvc").is_dir():
        _dvc(root, "init", "-q")
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for stage in stages.values():
        for rel in [*_out_paths(stage), *stage.get("deps", [])]:
            _placeholder(root / rel)
    _dvc(root, "commit", "-f", "-q", "dvc.yaml")  # the default pipeline (crossval/dvc.yaml has its own)
    assert _stale(root) == set(), "right after dvc commit -f every stage should be up to date"
    return root


@pytest.mark.slow
def test_changing_a_param_stales_exactly_the_stages_that_read_it(scratch: Path) -> None:
    params_file = scratch / "params.yaml"
    original = params_file.read_text()
    start, wrong = time.time(), []
    for key in PROBED_KEYS:
        params = yaml.safe_load(original)
        current = params
        for part in key.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        if current is None:
            current = flatten(Config()).get(key)
        _set_key(params, key, _different(current))
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        try:
            stale = _stale(scratch)
        finally:
            params_file.write_text(original)
        if stale != expected_stages(key):
            wrong.append(f"{key}: dvc status shows {sorted(stale)} stale, expected {sorted(expected_stages(key))}")
    assert _stale(scratch) == set()
    assert not wrong, "\n".join(wrong)
    print(f"{len(PROBED_KEYS)} keys probed in {time.time() - start:.1f} s")


@pytest.mark.slow
def test_changing_code_stales_exactly_the_stages_that_import_it(scratch: Path) -> None:
    """A config module (seg/config/) stales every stage; each script its own stage; each seg package's __init__.py
    the stages whose imports reach it."""
    packages = sorted(
        str(p.relative_to(REPO)) for p in (REPO / "seg").rglob("__init__.py") if "__pycache__" not in p.parts
    )
    probes = {f"{ALWAYS}/model.py": set(STAGES)}
    probes.update({str(stage_script(s).relative_to(REPO)): {s} for s in STAGES})
    probes.update({p: {s for s in STAGES if p in required_code(s)} for p in packages})
    wrong = []
    for rel, expected in probes.items():
        path = scratch / rel
        original = path.read_text()
        path.write_text(original + "\n# touched by test_dvc_deps\n")
        try:
            stale = _stale(scratch)
        finally:
            path.write_text(original)
        if stale != expected:
            wrong.append(f"changing {rel}: dvc status shows {sorted(stale)} stale, expected {sorted(expected)}")
    assert _stale(scratch) == set()
    assert not wrong, "\n".join(wrong)


@pytest.mark.slow
def test_the_crossval_pipeline_has_a_train_and_predict_stage_per_listed_fold(scratch: Path) -> None:
    """crossval/dvc.yaml: nothing by default; with crossval.folds listed, train@k and predict@k per fold, then the
    summary (after every predict) and the ensemble's test prediction (after the summary's postprocessing)."""
    params_file = scratch / "params.yaml"
    original = params_file.read_text()
    assert set(_stage_names(scratch)) == {"summary", "test"}
    params = yaml.safe_load(original)
    params["crossval"]["folds"] = [0, 2, 4]
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        names = _stage_names(scratch)
        dag = _dvc(scratch, "dag", "--dot", "crossval/dvc.yaml").stdout
    finally:
        params_file.write_text(original)
    assert set(names) == {"train@0", "train@2", "train@4", "predict@0", "predict@2", "predict@4", "summary", "test"}
    for k in (0, 2, 4):
        assert f'"crossval/dvc.yaml:train@{k}" -> "crossval/dvc.yaml:predict@{k}"' in dag
        assert f'"crossval/dvc.yaml:predict@{k}" -> "crossval/dvc.yaml:summary"' in dag
    assert '"crossval/dvc.yaml:summary" -> "crossval/dvc.yaml:test"' in dag


def _stage_names(root: Path) -> list[str]:
    listing = _dvc(root, "stage", "list", "crossval/dvc.yaml").stdout
    return [line.split()[0].removeprefix("crossval/dvc.yaml:") for line in listing.splitlines() if line.strip()]


@pytest.mark.slow
def test_the_seam_pipeline_goes_from_presence_labels_to_a_segmenter(scratch: Path) -> None:
    """seam/dvc.yaml: the SEAM model, its pseudo masks, the segmenter trained on them, its predictions, in order."""
    listing = _dvc(scratch, "stage", "list", "seam/dvc.yaml").stdout
    names = [line.split()[0].removeprefix("seam/dvc.yaml:") for line in listing.splitlines() if line.strip()]
    assert names == ["train", "pseudo", "segmenter", "infer"]
    dag = _dvc(scratch, "dag", "--dot", "seam/dvc.yaml").stdout
    for a, b in (("train", "pseudo"), ("pseudo", "segmenter"), ("segmenter", "infer")):
        assert f'"seam/dvc.yaml:{a}" -> "seam/dvc.yaml:{b}"' in dag
