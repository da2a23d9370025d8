"""Load a trained model from a model folder, a Lightning checkpoint or an MLflow model URI, safely: weights
load with `weights_only=True`, so no pickled code runs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import seg
from seg.config import Config, from_dict, to_dict

MODEL_FILES = ("weights.pt", "config.yaml", "fingerprint.json")
CHECKPOINT_KEY = "seg"  # where the training module stores config, fingerprint and meta in a Lightning checkpoint


class ModelLoadError(ValueError):
    """A model that cannot be loaded; the message names the source, the problem and the fix."""


@dataclass
class LoadedModel:
    net: nn.Module  # in eval mode, on the CPU
    config: Config
    fingerprint: dict[str, Any]
    meta: dict[str, Any]  # model.json: seg_version, mlflow_run_id, tracking_uri, class_names, patch_size, ...
    source: str

    @property
    def class_names(self) -> list[str]:
        names = self.meta.get("class_names")
        k = self.config.model.out_channels
        return list(names) if names and len(names) == k else ["background", *map(str, range(1, k))]

    @property
    def patch_size(self) -> tuple[int, ...]:
        size = self.meta.get("patch_size") or self.config.train.patch_size
        if not size:
            raise ModelLoadError(f"{self.source}: the model records no patch size. Retrain with this seg version.")
        return tuple(int(s) for s in size)

    @property
    def slice_axis(self) -> int | None:
        """Spatial axis along which a 2D network predicts 3D volumes (None: network and data share dims)."""
        return self.meta.get("slice_axis")

    @property
    def mirrored_axes(self) -> tuple[int, ...]:
        """Spatial axes the network was trained mirrored along: the only ones test-time augmentation may mirror."""
        return self.config.train.augment.mirrored_axes(self.config.model.spatial_dims)

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(to_dict(self.config), sort_keys=True).encode()).hexdigest()[:16]


def load_model(source: str | Path) -> LoadedModel:
    """A model folder (weights.pt, config.yaml, fingerprint.json, model.json), a Lightning `.ckpt` written by
    `seg train`, or an MLflow model URI (`runs:/<id>/model`, `models:/<name>/<version>`)."""
    text = str(source)
    if "://" in text or text.startswith(("runs:/", "models:/")):
        return _from_mlflow(text)
    path = Path(text)
    if path.is_dir():
        return _from_folder(path, text)
    if path.is_file() and path.suffix == ".ckpt":
        return _from_checkpoint(path)
    if path.is_file():
        raise ModelLoadError(
            f"{path}: not a model. Pass a model folder (from `seg train`), a Lightning .ckpt or an MLflow model URI."
        )
    raise ModelLoadError(f"{path}: no such model folder or checkpoint. Train one first (`dvc repro train`).")


def _from_folder(folder: Path, source: str) -> LoadedModel:
    import yaml

    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelLoadError(
            f"{folder}: not a seg model folder (missing {', '.join(missing)}). Pass the folder `seg train` wrote "
            f"(train.model_dir, default models/latest)."
        )
    config = _config(yaml.safe_load((folder / "config.yaml").read_text()), folder / "config.yaml")
    fingerprint = json.loads((folder / "fingerprint.json").read_text())
    meta_path = folder / "model.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    state = _torch_load(folder / "weights.pt")
    return _assemble(state, config, fingerprint, meta, source)


def _from_checkpoint(path: Path) -> LoadedModel:
    ckpt = _torch_load(path)
    info = ckpt.get(CHECKPOINT_KEY) if isinstance(ckpt, dict) else None
    if not info:
        raise ModelLoadError(
            f"{path}: checkpoint holds no seg model description (config, fingerprint). Pass a checkpoint written by "
            f"`seg train` (outputs/train/checkpoints/best.ckpt) or its model folder."
        )
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    config = _config(info["config"], path)
    return _assemble(state, config, info["fingerprint"], dict(info.get("meta") or {}), str(path))


def _from_mlflow(uri: str) -> LoadedModel:
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    from seg.train.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as e:  # MLflow raises several types for unknown runs, models and stores
        raise ModelLoadError(
            f"{uri}: cannot download the MLflow model ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            f"Check the URI and MLFLOW_TRACKING_URI."
        ) from None
    folders = sorted({p.parent for p in local.rglob("weights.pt")}, key=lambda p: len(p.parts))
    if not folders:
        raise ModelLoadError(f"{uri}: the MLflow model holds no seg model folder (weights.pt). Log it with `seg train`.")
    return _from_folder(folders[0], uri)


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, or a pickle that needs arbitrary code
        raise ModelLoadError(
            f"{path}: cannot load safely with weights_only=True ({type(e).__name__}: {str(e).splitlines()[0][:160]}). "
            f"Use a file written by `seg train`."
        ) from None


def _config(data: dict[str, Any], where: Path) -> Config:
    data = dict(data or {})
    if isinstance(data.get("model"), dict) and "stem_stride" not in data["model"]:
        # saved before model.stem_stride existed (default now 2): those networks ran level 0 at full resolution
        data["model"] = {**data["model"], "stem_stride": 1}
    return from_dict(Config, data, str(where))


def _assemble(state: dict[str, torch.Tensor], config: Config, fingerprint: dict, meta: dict, source: str) -> LoadedModel:
    from seg.models import build_model

    trained_with = meta.get("seg_version")
    if trained_with and trained_with.split(".")[:2] != seg.__version__.split(".")[:2]:
        raise ModelLoadError(
            f"{source}: trained with seg {trained_with}, this is seg {seg.__version__}. "
            f"Install seg=={trained_with} to use it, or retrain."
        )
    net = build_model(config.model)
    own = net.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected or mismatched:
        first = (mismatched or missing or unexpected)[0]
        raise ModelLoadError(
            f"{source}: weights do not fit the configured network ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(mismatched)} mismatched tensors, e.g. {first}). The config.yaml and weights come from "
            f"different models: use the folder `seg train` wrote, unchanged."
        )
    net.load_state_dict(state)
    net.eval()
    return LoadedModel(net, config, fingerprint, meta, source)
