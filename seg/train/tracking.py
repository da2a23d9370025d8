"""MLflow: where runs go, what identifies them (git commit, data fingerprint, DVC stage), and the logged model."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")


def repo_root(start: Path | None = None) -> Path:
    """The git work tree containing `start` (default: the current directory), else the current directory."""
    start = (start or Path.cwd()).resolve()
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True, timeout=10)
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
    root = Path(os.environ.get("SEG_REPO_ROOT") or repo_root())
    return f"sqlite:///{root / 'mlflow.db'}"


def artifact_location(uri: str) -> str | None:
    """For a sqlite store, artifacts beside the database (`<repo>/mlartifacts`), not in the current directory."""
    if uri.startswith("sqlite:///"):
        return str(Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts")
    return None


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def fingerprint_hash(fingerprint: dict) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def run_tags(fingerprint: dict, stage: str = "train") -> dict[str, str]:
    tags = {
        "git_commit": git_commit(),
        "data_fingerprint": fingerprint_hash(fingerprint),
        "dvc_stage": os.environ.get("SEG_DVC_STAGE", stage),
    }
    lock = repo_root() / "dvc.lock"
    if lock.is_file():
        tags["dvc_lock_sha256"] = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    return tags


COMPARED_PARAMS = ("train.lr",)  # with `dataset`: two params, two lines above each image card's picture
TAG_BATCH = 100  # MLflow's limit of tags per log_batch call


def run_params(config: dict, runtime: dict, dataset: str) -> tuple[dict, dict]:
    """(params, tags) for a training run. MLflow 3.17's image cards print every param of the run above its images,
    so seg's ~120 config keys pushed the gate maps out of the card, and even seven short ones clip the picture
    (a card is 360 px tall). Params are the dataset and the learning rate; the whole config (`config`: flattened,
    dotted keys) and what `auto` resolved go into tags `config.<key>` and `runtime.<key>`, which the runs table
    (as columns), search (`tags."config.train.batch_size" = '4'`) and the compare view show, and image cards do
    not."""
    params = {"dataset": dataset, **{k: config[k] for k in COMPARED_PARAMS if k in config}}
    tags = {f"config.{k}": str(v) for k, v in config.items()}
    tags.update({f"runtime.{k}": str(v) for k, v in runtime.items() if not isinstance(v, dict)})
    return params, tags


def log_tags(client, run_id: str, tags: dict[str, str]) -> None:
    from mlflow.entities import RunTag

    items = [RunTag(k, v) for k, v in tags.items()]
    for i in range(0, len(items), TAG_BATCH):
        client.log_batch(run_id, tags=items[i : i + TAG_BATCH])


def log_pytorch_model(net, in_channels: int, spatial_dims: int, run_id: str, tracking: str, model_dir: Path) -> str:
    """Log `net` as an MLflow model whose signature accepts any batch and spatial size; returns its URI."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    import seg

    shape = (-1, in_channels, *(-1,) * spatial_dims)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), shape)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, *(-1,) * spatial_dims))]),
    )
    import torch

    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"seg=={seg.__version__}", "monai", "numpy"]
    mlflow.set_tracking_uri(tracking)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pytorch.log_model(
            net.cpu().eval(),
            name="model",
            signature=signature,
            pip_requirements=requirements,
            serialization_format="pickle",  # pt2 would fix the input shape; pickle keeps any spatial size
            extra_files=[str(p) for p in sorted(model_dir.glob("*")) if p.is_file()],
        )
        mlflow.log_artifacts(str(model_dir), artifact_path="model_folder")
    return info.model_uri


def dvc_lock_tags(lock: Path, stages: tuple[str, ...] = ("preprocess", "train")) -> dict[str, str]:
    """`dvc.<stage>.<deps|outs>.<path>` -> the md5 DVC recorded in dvc.lock, so a run traces back to the exact
    data, code and model DVC holds (dvc.lock is updated after each stage, so later stages see train's entry)."""
    import yaml

    if not lock.is_file():
        return {}
    entries = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    tags = {}
    for stage in stages:
        for kind in ("deps", "outs"):
            for e in entries.get(stage, {}).get(kind, []) or []:
                value = e.get("md5") or e.get("etag") or e.get("checksum")
                if value:
                    tags[f"dvc.{stage}.{kind}.{e['path']}"] = str(value)
    return tags


def tag_run_with_dvc_lock(run_id: str | None, uri: str | None, lock: Path = Path("dvc.lock")) -> int:
    """Set the dvc.lock tags on the model's run; returns how many (0 when there is no run or no lock)."""
    tags = dvc_lock_tags(lock)
    if not run_id or not uri or not tags:
        return 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    return len(tags)
