"""Where MLflow runs go: the tracking URI (config, $MLFLOW_TRACKING_URI, else a sqlite file at the repository's
root) and where a sqlite store keeps artifacts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def repo_root(start: Path | None = None) -> Path:
    """The git work tree containing `start` (default: the current directory), else `start`."""
    start = (start or Path.cwd()).resolve()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True, timeout=10
        )
        if out.returncode == 0:
            return Path(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return start


def tracking_uri(configured: str | None = None) -> str:
    """Config, then $MLFLOW_TRACKING_URI, then sqlite:///<repo>/mlflow.db (MLflow 3 refuses ./mlruns; an absolute
    path keeps working under `dvc exp run --temp`, which runs in a temporary copy of the repository)."""
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{repo_root() / 'mlflow.db'}"


def artifact_location(uri: str) -> str | None:
    """For a sqlite store, artifacts beside the database (`<repo>/mlartifacts`), not in the current directory."""
    if uri.startswith("sqlite:///"):
        return str(Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts")
    return None
