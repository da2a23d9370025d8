"""The model in MLflow: logged with the training run (an MLflow pytorch model plus the seg model folder),
registered as a version of a registry name with an alias on the best one, and downloaded again from a model URI
(`runs:/<id>/model`, `models:/<name>/<version>`, `models:/<name>@<alias>`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg.tracking.uri import tracking_uri

FOLDER_MARKER = "weights.pt"  # the seg model folder inside a logged model


class ModelDownloadError(ValueError):
    """A model URI that cannot be fetched; the message names the URI, the cause and the fix."""


def log_pytorch_model(net, in_channels: int, spatial_dims: int, run_id: str, tracking: str, model_dir: Path) -> str:
    """Log `net` as an MLflow model whose signature accepts any batch and spatial size; returns its URI."""
    import mlflow
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    import seg

    shape = (-1, in_channels, *(-1,) * spatial_dims)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), shape)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, *(-1,) * spatial_dims))]),
    )
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


def download_model(uri: str) -> Path:
    """The seg model folder (weights.pt, config.yaml, ...) of an MLflow model URI, downloaded to a local folder."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as e:  # noqa: BLE001 -- MLflow raises several types for unknown runs, models, aliases and stores
        raise ModelDownloadError(
            f"{uri}: cannot download the MLflow model ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            f"Check the URI and MLFLOW_TRACKING_URI."
        ) from None
    folders = sorted({p.parent for p in local.rglob(FOLDER_MARKER)}, key=lambda p: len(p.parts))
    if not folders:
        raise ModelDownloadError(
            f"{uri}: the MLflow model holds no seg model folder (weights.pt). Log it with `seg train`."
        )
    return folders[0]


REGISTRY_METRIC = "best/val_dice_mean"  # what the champion alias follows


@dataclass(frozen=True)
class Registration:
    name: str
    version: int
    alias: str
    champion: int  # the version the alias points at after this registration
    champion_dice: float | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def describe(self) -> str:
        dice = f", validation Dice {self.champion_dice:.3f}" if self.champion_dice is not None else ""
        return (
            f"registered {self.uri}; {self.alias} -> version {self.champion}{dice} (models:/{self.name}@{self.alias})"
        )


def registry_name(configured: str | None, dataset: str) -> str | None:
    """`auto`: seg-<dataset> in the characters MLflow's registry takes; None: do not register."""
    if configured is None:
        return None
    if configured != "auto":
        return configured
    return "seg-" + re.sub(r"[^A-Za-z0-9_.-]", "-", dataset)


def register_model(
    model_uri: str, name: str, run_id: str, tracking: str, alias: str = "champion", metric: str = REGISTRY_METRIC
) -> Registration:
    """Register the run's logged model as a new version of `name` and point `alias` at the version whose run
    has the best `metric` (the newest on ties; versions whose run lacks it never win over one that has it)."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking)
    client = MlflowClient(tracking_uri=tracking)
    version = int(mlflow.register_model(model_uri, name, tags={"run_id": run_id}).version)
    best: tuple[float, int] | None = None
    for v in client.search_model_versions(f"name = '{name}'"):
        if not v.run_id:
            continue
        value = client.get_run(v.run_id).data.metrics.get(metric)
        if value is None or value != value:  # no validation, or NaN
            continue
        if best is None or (value, int(v.version)) > best:
            best = (value, int(v.version))
    champion, dice = (best[1], best[0]) if best else (version, None)
    client.set_registered_model_alias(name, alias, str(champion))
    return Registration(name, version, alias, champion, dice)
