"""Load a trained model from wherever it is: a model folder, a Lightning checkpoint written by `seg train`, or an
MLflow model URI; or an ensemble of them (several sources, or a folder of model folders such as one per fold).
Weights load with `weights_only=True`, so no pickled code runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import seg.seam  # noqa: F401  registers SEAM's network, so SEAM model folders load here
from seg.files import read_json
from seg.infer.postprocess import FILE, Postprocessing
from seg.model_folder import WEIGHTS, ModelBundle, ModelLoadError, load_bundle, load_checkpoint


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
        members = member_folders(path)
        if members:
            raise ModelLoadError(
                f"{path}: holds {len(members)} model folders (an ensemble, which `seg infer` averages); pass one of "
                f"them here, e.g. {members[0]}."
            )
        return load_bundle(path, text)
    if path.is_file() and path.suffix == ".ckpt":
        return load_checkpoint(path)
    if path.is_file() and path.suffix == ".onnx":
        raise ModelLoadError(
            f"{path}: an exported ONNX model, which ONNX Runtime runs: pass --backend onnxruntime "
            f"(infer.backend: onnxruntime), or the model folder it was exported from."
        )
    if path.is_file():
        raise ModelLoadError(
            f"{path}: not a model. Pass a model folder (from `seg train`), a Lightning .ckpt or an MLflow model URI."
        )
    raise ModelLoadError(f"{path}: no such model folder or checkpoint. Train one first (`dvc repro train`).")


def member_folders(path: Path) -> list[Path]:
    """The model folders directly inside `path` (models/fold_0, models/fold_1, ...: each holding weights.pt; one
    missing its other files fails when loaded, never silently drops out), sorted; [] when `path` is itself a model
    folder or holds none."""
    if (path / WEIGHTS).is_file():
        return []
    return [
        p
        for p in sorted(path.iterdir())  # not .tmp-* folders that `seg train` is still writing
        if p.is_dir() and not p.name.startswith(".") and (p / WEIGHTS).is_file()
    ]


def load_models(sources: str | Path | Sequence[str | Path], backend: str = "torch") -> list[ModelBundle]:
    """Every member of an ensemble, in order: each source as `load_model` takes it, a folder of model folders
    expanding to all of them; with `backend` onnxruntime, exported .onnx files (`seg export`). The members must
    agree on what makes averaging their probabilities valid."""
    sources = [sources] if isinstance(sources, str | Path) else list(sources)
    load = load_onnx_model if backend == "onnxruntime" else _torch_members
    models = [m for source in sources for m in load(source)]
    for member in models[1:]:
        check_compatible(models[0], member)
    return models


def _torch_members(source: str | Path) -> list[ModelBundle]:
    """One model, or each model folder of a folder of them."""
    path = Path(str(source))
    folders = member_folders(path) if not is_mlflow_uri(str(source)) and path.is_dir() else []
    return [load_bundle(f, str(f)) for f in folders] if folders else [load_model(source)]


def load_onnx_model(source: str | Path) -> list[ModelBundle]:
    """An exported .onnx file (one member); any other model source is told how to export it."""
    from seg.infer.onnx_runtime import SUFFIX, load_onnx

    if Path(str(source)).suffix != SUFFIX:
        raise ModelLoadError(
            f"{source}: the onnxruntime backend runs exported .onnx models; export this one first: "
            f"seg export {source} --format onnx --out model.onnx, then pass --model model.onnx."
        )
    return [load_onnx(source)]


def postprocessing_for(sources: str | Path | Sequence[str | Path]) -> Postprocessing | None:
    """The postprocessing decided for these models: `postprocessing.json` in the (one) local folder given, as the
    cross-validation stage writes it beside the fold models it was decided on."""
    sources = [sources] if isinstance(sources, str | Path) else list(sources)
    found = [Path(str(s)) / FILE for s in sources if not is_mlflow_uri(str(s)) and (Path(str(s)) / FILE).is_file()]
    if len(sources) != 1 or not found:
        return None
    return Postprocessing.from_dict(read_json(found[0]))


def check_compatible(first: ModelBundle, member: ModelBundle) -> None:
    """One line naming `member` and what differs from `first`, where averaging their softmax would be wrong:
    classes, input channels, spatial dims, or the preprocessing that makes their inputs the same array."""
    a, b = first.config.model, member.config.model
    differences = [
        (what, x, y)
        for what, x, y in (
            ("out_channels", a.out_channels, b.out_channels),
            ("class names", first.class_names, member.class_names),
            ("in_channels", a.in_channels, b.in_channels),
            ("spatial_dims", a.spatial_dims, b.spatial_dims),
        )
        if x != y
    ]
    plan, other = first.fingerprint.preprocessing, member.fingerprint.preprocessing
    if not differences and plan != other:
        differences = [
            (f"preprocessing.{f.name}", getattr(plan, f.name), getattr(other, f.name))
            for f in dataclasses.fields(plan)
            if getattr(plan, f.name) != getattr(other, f.name)
        ]
    if differences:
        got = "; ".join(f"{what} {theirs!r}, not {mine!r}" for what, mine, theirs in differences)
        raise ModelLoadError(
            f"{member.source}: cannot join an ensemble with {first.source}: {got}. Ensemble members need the same "
            f"classes, input channels, spatial dims and preprocessing (train them on one preprocessed cache, e.g. one "
            f"per fold)."
        )
