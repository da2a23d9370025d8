"""dvc.yaml says what each stage reads, so DVC reruns exactly what a change affects.

Code: a stage's `deps` under seg/ and pipelines/ are exactly the files its command imports (tools/dvc_deps.py
derives them from the import graph; `make dvc-deps` rewrites them). Params: the config keys each stage reads
(`SECTION_STAGES` and `KEY_STAGES`, with the code that reads them). tests/integration/test_dvc_status.py asks DVC
itself that a changed key or code file stales exactly these stages.
"""

from __future__ import annotations

import json

import pytest
import yaml
from dvc_deps import (
    ALWAYS,
    CODE_ROOTS,
    REPO,
    STAGES,
    code_files_under,
    dvc_stages,
    required_code,
    stage_deps,
    suggested_deps,
)

from seg.config import Config, flatten, to_dict

# Which stages read a config key. A section stands for all its keys; `KEY_STAGES` overrides single keys.
SECTION_STAGES: dict[str, set[str]] = {
    "data": {"preprocess"},  # seg/stages/preprocess.py: load_config(...).data -> preprocess_dataset(cfg)
    "model": {"train"},
    "train": {"train"},
    "infer": {"infer"},  # seg/stages/infer.py: config_with_flags(args, "infer"); the model comes from its folder
    "analyze": {"analyze"},  # seg/stages/analyze.py: config_with_flags(args, "analyze")
    "crossval": set(),  # read by crossval/dvc.yaml's stages (`dvc repro crossval/dvc.yaml`), not by these
    "seam": {"train"},  # with train.supervision: seam (seg/train/run.py: build_for(cfg), SegDataModule(..., seam))
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
    # train logs it with the resolved config (MLflow params); the dataset's name comes from the cache
    "data.root": {"preprocess", "train"},
}
# Keys the slow test changes one at a time (present in params.yaml or not: a missing key is added).
PROBED_KEYS = (
    "data.root",
    "data.fold",
    "data.folds",
    "data.seed",
    "data.test_fraction",
    "data.cache_dir",
    "data.num_workers",
    "data.target_spacing",
    "model.channels",
    "train.lr",
    "train.augment.flip_prob",
    "infer.overlap",
    "analyze.max_cases",
)


def expected_stages(key: str) -> set[str]:
    if key in KEY_STAGES:
        return set(KEY_STAGES[key])
    return set(SECTION_STAGES[key.split(".")[0]])


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


def covered(rel: str, deps: list[str]) -> bool:
    return any(rel == d or rel.startswith(d + "/") for d in deps)


# ------------------------------------------------------------------------------------------------- fast tests


@pytest.mark.parametrize("stage", STAGES)
def test_stage_lists_every_file_it_imports(stage: str) -> None:
    deps = stage_deps(stage)
    missing = {f for f in required_code(stage) if not covered(f, deps)}
    lines = []
    for dep in suggested_deps(missing):  # a package none of whose files is listed: one line for it
        if (REPO / dep).is_dir():
            lines.append(
                f"stage {stage} imports every file of {dep}/ but dvc.yaml lists none; add {dep} to {stage}'s deps"
            )
        else:
            lines.append(
                f"stage {stage} imports {dep} but dvc.yaml does not list it; add {dep} (or its package) to "
                f"{stage}'s deps"
            )
    assert not lines, "\n".join(lines + [f"({stage}'s code deps, shortest: {suggested_deps(required_code(stage))})"])


@pytest.mark.parametrize("stage", STAGES)
def test_stage_lists_no_code_it_does_not_import(stage: str) -> None:
    required = required_code(stage)
    problems = []
    for dep in stage_deps(stage):
        if dep.split("/")[0] not in CODE_ROOTS:
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


def _prefixes(key: str) -> list[str]:
    parts = key.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def missing_params() -> list[str]:
    """A line for each key a stage lists that params.yaml lacks."""
    present = flatten(yaml.safe_load((REPO / "params.yaml").read_text()) or {})
    sections = {k for key in present for k in _prefixes(key)}
    defaults = flatten(to_dict(Config()))
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
            problems.append(
                f"stage {s} does not read {key} but dvc.yaml's params for {s} include it; list the "
                f"keys {s} reads instead"
            )
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


def test_the_code_deps_are_what_make_dvc_deps_writes() -> None:
    """`make dvc-deps` (tools/dvc_deps.py --write) leaves dvc.yaml as it is: nothing to regenerate."""
    from dvc_deps import code_deps_text

    assert yaml.safe_load(code_deps_text()) == yaml.safe_load((REPO / "dvc.yaml").read_text()), (
        "dvc.yaml's code deps are stale; run `make dvc-deps`"
    )
