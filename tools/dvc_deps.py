"""dvc.yaml's code deps: each stage of the default pipeline lists exactly the files under seg/ and pipelines/ that
its command imports (module level and inside functions, followed transitively from `pipelines/<stage>.py`),
plus the config package seg/config/ (every default lives there). A directory stands for all its .py files, so it
is listed only when the stage imports every one of them.

    python tools/dvc_deps.py            # print each stage's code deps
    python tools/dvc_deps.py --check    # exit 1 when dvc.yaml differs (tests/unit/test_dvc_deps.py asserts it)
    python tools/dvc_deps.py --write    # rewrite them in dvc.yaml (`make dvc-deps`)
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: import_graph beside it
from import_graph import REPO, imports, module_file

STAGES = ("preprocess", "train", "infer", "analyze")
CODE_ROOTS = ("seg", "pipelines")  # deps under these are code, derived from the import graph
ALWAYS = "seg/config"  # the defaults of every key absent from params.yaml


def dvc_stages(repo: Path = REPO) -> dict[str, dict[str, Any]]:
    return yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]


def stage_deps(stage: str) -> list[str]:
    return [str(d).rstrip("/") for d in dvc_stages()[stage].get("deps", [])]


def stage_script(stage: str) -> Path:
    scripts = [t for t in dvc_stages()[stage]["cmd"].split() if t.endswith(".py")]
    if len(scripts) != 1:
        raise ValueError(f"dvc.yaml: stage {stage}'s cmd should run one pipelines/<stage>.py, got {scripts}")
    return REPO / scripts[0]


@cache
def import_closure(script: Path) -> frozenset[Path]:
    """The script and every file of ours it imports, transitively; importing a.b.c runs a/__init__.py and
    a/b/__init__.py first, so those count too."""
    files = {script}
    seen: set[str] = set()
    todo = [(name, script) for _, name in imports(script, "__main__")]
    while todo:
        name, importer = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            mod = ".".join(parts[:i])
            if mod in seen:
                continue
            seen.add(mod)
            path = module_file(mod)
            if path is None:
                raise ValueError(f"{importer.relative_to(REPO)} imports {mod}, which has no file in the repository")
            files.add(path)
            todo.extend((m, path) for _, m in imports(path, mod))
    return frozenset(files)


def required_code(stage: str) -> set[str]:
    return {str(p.relative_to(REPO)) for p in import_closure(stage_script(stage))} | {ALWAYS}


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


def code_deps_text() -> str:
    """dvc.yaml with every stage's code deps as the import graph says; other deps (data, models) stay first."""
    text = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for name in STAGES:
        stage = text["stages"][name]
        data = [d for d in stage.get("deps", []) if not str(d).startswith(tuple(f"{r}/" for r in CODE_ROOTS))]
        stage["deps"] = data + suggested_deps(required_code(name))
    return yaml.safe_dump(text, sort_keys=False, width=120)


def main(argv: list[str]) -> int:
    if "--write" in argv:
        (REPO / "dvc.yaml").write_text(code_deps_text())
    elif "--check" in argv and yaml.safe_load(code_deps_text()) != yaml.safe_load((REPO / "dvc.yaml").read_text()):
        print("dvc.yaml: the code deps differ from what the stages import; run `make dvc-deps`", file=sys.stderr)
        return 1
    for name in STAGES:
        print(f"{name}:\n" + "".join(f"  - {d}\n" for d in suggested_deps(required_code(name))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
