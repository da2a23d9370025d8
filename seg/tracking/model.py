"""The model in MLflow: logged with the training run (an MLflow pytorch model plus the seg model folder), and
downloaded again from a model URI (`runs:/<id>/model`, `models:/<name>/<version>`, `models:/<name>@<alias>`)."""

from __future__ import annotations

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
    except Exception as e:  # MLflow raises several types for unknown runs, models, aliases and stores
        raise ModelDownloadError(
            f"{uri}: cannot download the MLflow model ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            f"Check the URI and MLFLOW_TRACKING_URI."
        ) from None
    folders = sorted({p.parent for p in local.rglob(FOLDER_MARKER)}, key=lambda p: len(p.parts))
    if not folders:
        raise ModelDownloadError(f"{uri}: the MLflow model holds no seg model folder (weights.pt). Log it with `seg train`.")
    return folders[0]
