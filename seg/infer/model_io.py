"""Load a trained model from wherever it is: a model folder, a Lightning checkpoint written by `seg train`, or an
MLflow model URI. Weights load with `weights_only=True`, so no pickled code runs."""

from __future__ import annotations

from pathlib import Path

from seg.models.bundle import ModelBundle, ModelLoadError, load_bundle, load_checkpoint


def is_mlflow_uri(text: str) -> bool:
    return "://" in text or text.startswith(("runs:/", "models:/"))


def load_model(source: str | Path) -> ModelBundle:
    """A model folder (weights.pt, config.yaml, fingerprint.json, model.json), a Lightning `.ckpt` written by
    `seg train`, or an MLflow model URI (`runs:/<id>/model`, `models:/<name>/<version>`, `models:/<name>@<alias>`)."""
    text = str(source)
    if is_mlflow_uri(text):
        from seg.tracking.model import ModelDownloadError, download_model

        try:
            return load_bundle(download_model(text), text)
        except ModelDownloadError as e:
            raise ModelLoadError(str(e)) from None
    path = Path(text)
    if path.is_dir():
        return load_bundle(path, text)
    if path.is_file() and path.suffix == ".ckpt":
        return load_checkpoint(path)
    if path.is_file():
        raise ModelLoadError(
            f"{path}: not a model. Pass a model folder (from `seg train`), a Lightning .ckpt or an MLflow model URI."
        )
    raise ModelLoadError(f"{path}: no such model folder or checkpoint. Train one first (`dvc repro train`).")
