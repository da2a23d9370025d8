"""Logging an analysis into the model's own MLflow run (`ModelMeta.mlflow_run_id` at its `tracking_uri`):
artifact folders per kind (analysis/gates, analysis/spatial, analysis/self, analysis/queries, analysis/channels,
analysis/cams, analysis/overlays; report.html and analysis.json in analysis/report), the pictures as MLflow images
(step 0, so they show in the run's image viewer) and the metrics (attention distances among them) under
`analysis/`.
An unreachable run is a one-line warning, never a failed analysis."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from seg.tracking.images import card_shaped, image_key

FOLDERS = ("gates", "spatial", "self", "queries", "channels", "cams", "overlays")  # as seg.explain.outputs writes
REPORT_FILES = ("report.html", "analysis.json")


def log_analysis(
    run_id: str | None, uri: str | None, out_dir: Path, pictures: Mapping[str, np.ndarray], metrics: Mapping[str, float]
) -> str | None:
    """Returns the run id logged into, or None (with a warning on stderr) when the run cannot be reached."""
    artifacts = [(out_dir / kind, f"analysis/{kind}") for kind in FOLDERS]
    artifacts += [(out_dir / name, "analysis/report") for name in REPORT_FILES]
    return log_into_run(run_id, uri, artifacts, pictures, metrics, "analysis")


def log_into_run(
    run_id: str | None,
    uri: str | None,
    artifacts: Sequence[tuple[Path, str]],
    pictures: Mapping[str, np.ndarray],
    metrics: Mapping[str, float],
    prefix: str,
    command: str = "analyze",
) -> str | None:
    """Log files and non-empty folders (path, artifact folder), pictures as MLflow images (step 0, so they show
    in the run's image viewer) and metrics, under `prefix/`, into an existing run. Returns the run id, or None
    (with a warning on stderr naming `seg <command>`) when the run cannot be reached: outputs stay on disk."""
    if not run_id or not uri:
        _warn("the model records no MLflow run (mlflow_run_id, tracking_uri in model.json); not logged", command)
        return None
    try:
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        client = MlflowClient(tracking_uri=uri)
        with _quick_http():
            client.get_run(run_id)
        for path, artifact_dir in artifacts:
            if path.is_dir() and any(path.iterdir()):
                client.log_artifacts(run_id, str(path), artifact_dir)
            elif path.is_file():
                client.log_artifact(run_id, str(path), artifact_dir)
        for name, rgb in pictures.items():
            client.log_image(run_id, card_shaped(rgb), key=image_key(f"{prefix}/{name}"), step=0)
        now = int(time.time() * 1000)
        batch = [Metric(image_key(f"{prefix}/{k}"), float(v), now, 0) for k, v in metrics.items()]
        for i in range(0, len(batch), 500):  # MLflow's batch limit is 1000 metrics
            client.log_batch(run_id, metrics=batch[i : i + 500])
    except Exception as e:  # noqa: BLE001 -- unreachable server, unknown run, deleted experiment: report, keep the outputs
        text = " ".join(str(e).split())[:200] or type(e).__name__
        _warn(
            f"cannot log into MLflow run {run_id} at {uri} ({type(e).__name__}: {text}); outputs are on disk only",
            command,
        )
        return None
    return run_id


@contextlib.contextmanager
def _quick_http():
    """Probe the server with 2 retries and a 10 s timeout (MLflow's defaults retry for minutes); settings the user
    made in the environment win."""
    quick = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    }
    added = [k for k in quick if k not in os.environ]
    os.environ.update({k: quick[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _warn(message: str, command: str = "analyze") -> None:
    print(f"seg {command}: warning: {message}", file=sys.stderr, flush=True)
