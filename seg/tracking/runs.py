"""What identifies a run (git commit, data fingerprint, DVC stage and dvc.lock hashes) and what it records:
a few params people compare, the whole config and the resolved speed settings as tags."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from seg.tracking.uri import repo_root

COMPARED_PARAMS = ("train.lr",)  # with `dataset`: two params, two lines above each image card's picture
TAG_BATCH = 100  # MLflow's limit of tags per log_batch call


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_tags(data_fingerprint: str, stage: str = "train") -> dict[str, str]:
    """`data_fingerprint`: `Fingerprint.digest()` of the data the run trains on."""
    tags = {"git_commit": git_commit(), "data_fingerprint": data_fingerprint, "dvc_stage": stage}
    lock = repo_root() / "dvc.lock"
    if lock.is_file():
        tags["dvc_lock_sha256"] = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    return tags


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
