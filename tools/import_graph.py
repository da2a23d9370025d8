"""Which modules of ours a Python file imports, read from its syntax tree (nothing is imported).

One parser for the two checks that need it: the tier test (tests/unit/test_tiers.py: imports run one way) and
dvc.yaml's code deps (tools/dvc_deps.py: a stage lists exactly the files its command imports).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def module_file(name: str, repo: Path = REPO) -> Path | None:
    """seg.x.y -> seg/x/y.py or seg/x/y/__init__.py; a bare name -> pipelines/<name>.py (a stage script's folder is
    first on sys.path); None when the repository has no such file."""
    parts = name.split(".")
    bases = [repo.joinpath(*parts)] if parts[0] == "seg" else []
    if len(parts) == 1 and parts[0] != "seg":
        bases.append(repo / "pipelines" / parts[0])
    for base in bases:
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
    return None


def is_ours(name: str, repo: Path = REPO) -> bool:
    return (
        name == "seg" or name.startswith("seg.") or ("." not in name and (repo / "pipelines" / f"{name}.py").is_file())
    )


def _is_type_checking(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """The nodes inside `if TYPE_CHECKING:` blocks: they never run."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if _is_type_checking(node):
            for child in node.body:  # type: ignore[attr-defined]
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def _from_target(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")  # relative: resolved against the importing file's package
    return ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))


def _dynamic_target(node: ast.Call) -> str | None:
    """`__import__("x")` or `importlib.import_module("x")` of a literal."""
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    first = node.args[0] if node.args else None
    if name in ("__import__", "import_module") and isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def imports(
    path: Path, module: str, type_checking: bool = False, ours: Callable[[str], bool] = is_ours
) -> list[tuple[int, str]]:
    """(line, module) for every module of ours that `path` (the module `module`) imports, anywhere in the file:
    `import`, `from ... import` (a name that is a submodule counts as that module too), relative imports and
    dynamic imports of a literal. `if TYPE_CHECKING:` blocks count only with `type_checking`."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = set() if type_checking else _skipped_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _from_target(node, package)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names if module_file(f"{base}.{a.name}")]
        elif isinstance(node, ast.Call) and (target := _dynamic_target(node)):
            found.append((node.lineno, target))
    return sorted((line, name) for line, name in found if name and ours(name))
