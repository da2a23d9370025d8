"""dvc.yaml says what each stage reads, so DVC reruns exactly what a change affects.

Code: a stage's `deps` under seg/ and pipelines/ are exactly the files its command imports, found from the import
graph (module level and inside functions, followed transitively from `pipelines/<stage>.py`), plus seg/config.py
(every default lives there). A directory dep stands for all its .py files, so it is listed only when the stage
imports every one of them.

Params: the config keys each stage reads (`EXPECTED_STAGES`, with the code that reads them). The slow test asks
DVC itself: in a scratch copy whose stages DVC considers up to date, changing one key (or one code file) must make
exactly the expected stages stale in `dvc status`. Stages downstream of a changed one rerun when its outputs
change, which `dvc status` cannot predict; the expected sets are the stages that read the key themselves.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from seg.config import Config, flatten, flatten_dict, to_dict

REPO = Path(__file__).resolve().parents[2]
STAGES = ("preprocess", "train", "infer", "analyze")
CODE_ROOTS = ("seg", "pipelines")  # deps under these are code, checked against the import graph
ALWAYS = "seg/config.py"  # the defaults of every key absent from params.yaml

# Which stages read a config key. A section stands for all its keys; `KEY_STAGES` overrides single keys.
SECTION_STAGES: dict[str, set[str]] = {
    "data": {"preprocess"},  # seg/stages/preprocess.py: load_config(...).data -> preprocess_dataset(cfg)
    "model": {"train"},
    "train": {"train"},
    "infer": {"infer"},  # seg/stages/infer.py: config_with_flags(args, "infer"); the model comes from its folder
    "analyze": {"analyze"},  # seg/stages/analyze.py: config_with_flags(args, "analyze")
    "crossval": set(),  # read by crossval/dvc.yaml's stages (`dvc repro crossval/dvc.yaml`), not by these
    "seam": {"train"},  # with train.supervision: seam (seg/train/run.py: objective_for(cfg), build_for(cfg))
}
SPLIT_READERS = {"train", "infer", "analyze"}  # they read fold `data.fold` of <data.cache_dir>/splits.json
KEY_STAGES: dict[str, set[str]] = {
    # not read by preprocess (only validated against data.folds); train: SegDataModule load_split(cache, data.fold),
    # infer: evaluation_cases(cache_dir, fold), analyze: pipeline_cases(cache_dir, fold, ...) (seg/stages/)
    "data.fold": SPLIT_READERS,
    # preprocess writes the cache there; the others read fingerprint.json, splits.json and cases/ from it
    "data.cache_dir": {"preprocess"} | SPLIT_READERS,
    # preprocess makes the split (make_splits(valid_ids, cfg.folds, cfg.seed)); the readers' `data.fold` indexes it
    "data.folds": {"preprocess"} | SPLIT_READERS,
    "data.seed": {"preprocess"} | SPLIT_READERS,
    "data.test_fraction": {"preprocess"} | SPLIT_READERS,  # the test part: in no fold; fold "all" evaluates on it
    # train names the dataset after it (seg/train/run.py: Path(cfg.data.root).name, MLflow param `dataset`)
    "data.root": {"preprocess", "train"},
}
# Keys the slow test changes one at a time (present in params.yaml or not: a missing key is added).
PROBED_KEYS = ("data.root", "data.fold", "data.folds", "data.seed", "data.test_fraction", "data.cache_dir",
               "data.num_workers",
               "data.target_spacing", "model.channels", "train.lr", "train.augment.flip_prob", "infer.overlap",
               "analyze.max_cases")


def expected_stages(key: str) -> set[str]:
    if key in KEY_STAGES:
        return set(KEY_STAGES[key])
    return set(SECTION_STAGES[key.split(".")[0]])


# ------------------------------------------------------------------------------------------------ dvc.yaml


@cache
def dvc_stages() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def stage_deps(stage: str) -> list[str]:
    return [str(d).rstrip("/") for d in dvc_stages()[stage].get("deps", [])]


def stage_params(stage: str) -> list[str]:
    """Keys of params.yaml the stage lists (the default params file; other files are not used here)."""
    keys: list[str] = []
    for item in dvc_stages()[stage].get("params", []):
        if isinstance(item, str):
            keys.append(item)
        else:
            for file, names in item.items():
                assert file == "params.yaml", f"stage {stage} reads params from {file}; seg reads params.yaml only"
                keys.extend(names or [])
    return keys


def stage_script(stage: str) -> Path:
    scripts = [t for t in dvc_stages()[stage]["cmd"].split() if t.endswith(".py")]
    assert len(scripts) == 1, f"stage {stage}'s cmd should run one pipelines/<stage>.py, got {scripts}"
    return REPO / scripts[0]


def covered(rel: str, deps: list[str]) -> bool:
    return any(rel == d or rel.startswith(d + "/") for d in deps)


# ------------------------------------------------------------------------------------------- import graph


def _module_file(name: str) -> Path | None:
    """seg.x.y -> seg/x/y.py or seg/x/y/__init__.py; a bare name -> pipelines/<name>.py (the script's folder is
    first on sys.path); None when no such file."""
    parts = name.split(".")
    bases = [REPO.joinpath(*parts)] if parts[0] == "seg" else []
    if len(parts) == 1 and parts[0] != "seg":
        bases.append(REPO / "pipelines" / parts[0])
    for base in bases:
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
    return None


def _is_ours(name: str) -> bool:
    return name == "seg" or name.startswith("seg.") or (
        "." not in name and (REPO / "pipelines" / f"{name}.py").is_file()
    )


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(path: Path, module: str) -> set[str]:
    """Every module of ours that `path` imports when it runs: `import`, `from ... import` (a name that is a
    submodule counts as that module), relative imports, `__import__`/`importlib.import_module` of a literal,
    anywhere in the file; `if TYPE_CHECKING:` blocks are skipped (they never run)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                head = parts[: len(parts) - node.level + 1]
                base = ".".join(head + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if _module_file(f"{base}.{a.name}") is not None)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in ("__import__", "import_module") and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return {m for m in found if m and _is_ours(m)}


@cache
def import_closure(script: Path) -> frozenset[Path]:
    """The script and every file of ours it imports, transitively; importing a.b.c runs a/__init__.py and
    a/b/__init__.py first, so those count too."""
    files = {script}
    seen: set[str] = set()
    todo = [(m, script) for m in imported_modules(script, "__main__")]
    while todo:
        name, importer = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            mod = ".".join(parts[:i])
            if mod in seen:
                continue
            seen.add(mod)
            path = _module_file(mod)
            assert path is not None, f"{importer.relative_to(REPO)} imports {mod}, which has no file in the repository"
            files.add(path)
            todo.extend((m, path) for m in imported_modules(path, mod))
    return frozenset(files)


def required_code(stage: str) -> set[str]:
    files = {str(p.relative_to(REPO)) for p in import_closure(stage_script(stage))}
    return files | {ALWAYS}


def code_files_under(rel: str) -> set[str]:
    """The .py files a dep path stands for (a file itself, or every .py file below a directory)."""
    path = REPO / rel
    if path.is_file():
        return {rel}
    return {str(p.relative_to(REPO)) for p in path.rglob("*.py") if "__pycache__" not in p.parts}


def suggested_deps(files: set[str]) -> list[str]:
    """The shortest dep list for `files`: a directory where every .py file in it is needed, else the files."""
    out: set[str] = set()
    for f in files:
        best = f
        parent = Path(f).parent
        while str(parent) not in (".", "") and code_files_under(str(parent)) <= files:
            best = str(parent)
            parent = parent.parent
        out.add(best)
    return sorted(out)


# ------------------------------------------------------------------------------------------------- fast tests


@pytest.mark.parametrize("stage", STAGES)
def test_stage_lists_every_file_it_imports(stage: str) -> None:
    deps = stage_deps(stage)
    missing = {f for f in required_code(stage) if not covered(f, deps)}
    lines = []
    for dep in suggested_deps(missing):  # a package none of whose files is listed: one line for it
        if (REPO / dep).is_dir():
            lines.append(f"stage {stage} imports every file of {dep}/ but dvc.yaml lists none; add {dep} to "
                         f"{stage}'s deps")
        else:
            lines.append(f"stage {stage} imports {dep} but dvc.yaml does not list it; add {dep} (or its package) to "
                         f"{stage}'s deps")
    assert not lines, "\n".join(lines + [f"({stage}'s code deps, shortest: {suggested_deps(required_code(stage))})"])


@pytest.mark.parametrize("stage", STAGES)
def test_stage_lists_no_code_it_does_not_import(stage: str) -> None:
    required = required_code(stage)
    problems = []
    for dep in stage_deps(stage):
        if not dep.split("/")[0] in CODE_ROOTS:
            continue
        assert (REPO / dep).exists(), f"stage {stage} lists {dep}, which does not exist; remove it from its deps"
        extra = sorted(code_files_under(dep) - required)
        if dep == ALWAYS or not extra:
            continue
        if (REPO / dep).is_file() or extra == sorted(code_files_under(dep)):
            problems.append(f"stage {stage} lists {dep} but does not import it; remove {dep} from {stage}'s deps")
        else:
            needed = sorted(code_files_under(dep) & required)
            problems.append(
                f"stage {stage} lists {dep} but does not import {', '.join(extra)}; list only what it imports "
                f"instead of {dep}: {suggested_deps(set(needed))}"
            )
    assert not problems, "\n".join(problems + [f"({stage}'s code deps, shortest: {suggested_deps(required)})"])


def missing_params() -> list[str]:
    """A line for each key a stage lists that params.yaml lacks."""
    present = flatten_dict(yaml.safe_load((REPO / "params.yaml").read_text()) or {})
    sections = {k for key in present for k in _prefixes(key)}
    defaults = flatten_dict(to_dict(Config()))
    missing = sorted({(k, s) for s in STAGES for k in stage_params(s) if k not in present and k not in sections})
    return [
        f"dvc.yaml's {s} reads params key {k} but params.yaml lacks it (dvc repro fails: MissingParamsError); add "
        f"`{k.rpartition('.')[2]}: {json.dumps(defaults.get(k))}` under `{k.rpartition('.')[0]}:` in params.yaml"
        for k, s in missing
    ]


def test_every_listed_param_is_in_params_yaml() -> None:
    """DVC refuses to run or commit a stage whose listed key is absent (MissingParamsError): a key a stage
    reads must be written out in params.yaml, with its default when unchanged."""
    lines = missing_params()
    assert not lines, "\n".join(lines)


def test_params_are_what_each_stage_reads() -> None:
    """Every key of every config section is listed by exactly the stages that read it, no more."""
    problems = []
    for key in flatten(Config()):
        listing = {s for s in STAGES if any(key == p or key.startswith(p + ".") for p in stage_params(s))}
        for s in sorted(expected_stages(key) - listing):
            problems.append(f"stage {s} reads {key} but dvc.yaml's params for {s} do not include it; add {key}")
        for s in sorted(listing - expected_stages(key)):
            problems.append(f"stage {s} does not read {key} but dvc.yaml's params for {s} include it; list the "
                            f"keys {s} reads instead")
    assert not problems, "\n".join(problems)


def test_directory_deps_ignore_bytecode() -> None:
    """A directory dep's hash counts every file in it: __pycache__/*.pyc written by a run (or not, or by another
    Python) would make the stage look changed. .dvcignore must leave them out."""
    dirs = sorted({d for s in STAGES for d in stage_deps(s) if d.split("/")[0] in CODE_ROOTS and (REPO / d).is_dir()})
    if not dirs:
        return
    ignore = (REPO / ".dvcignore").read_text() if (REPO / ".dvcignore").is_file() else ""
    lines = {line.strip() for line in ignore.splitlines()}
    assert lines & {"__pycache__/", "__pycache__", "**/__pycache__/", "*.pyc"}, (
        f"dvc.yaml lists directories {dirs}; add a line `__pycache__/` to .dvcignore so bytecode does not count"
    )


def _prefixes(key: str) -> list[str]:
    parts = key.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


# ------------------------------------------------------------------------------ slow: what DVC itself says


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    run = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True, env=env,
                         timeout=120)
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
    return [next(iter(o)) if isinstance(o, dict) else o
            for kind in ("outs", "metrics", "plots") for o in stage.get(kind, [])]


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
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
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
    """seg/config.py stales every stage; each script its own stage; each seg package's __init__.py the stages
    whose imports reach it."""
    packages = sorted(str(p.relative_to(REPO)) for p in (REPO / "seg").rglob("__init__.py")
                      if "__pycache__" not in p.parts)
    probes = {ALWAYS: set(STAGES)}
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



def write_code_deps() -> None:
    """Rewrite the code deps (seg/, pipelines/) of every stage in dvc.yaml from the import graph; other deps
    (data, models) and everything else in the file stay."""
    text = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for name in STAGES:
        stage = text["stages"][name]
        data = [d for d in stage.get("deps", []) if not str(d).startswith(("seg/", "pipelines/"))]
        stage["deps"] = data + suggested_deps(required_code(name))
    (REPO / "dvc.yaml").write_text(yaml.safe_dump(text, sort_keys=False, width=120))


if __name__ == "__main__":  # `python tests/integration/test_dvc_deps.py [--write]`: each stage's code deps
    if "--write" in sys.argv:
        write_code_deps()
    for name in STAGES:
        print(f"{name}:\n" + "".join(f"  - {d}\n" for d in suggested_deps(required_code(name))))


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
