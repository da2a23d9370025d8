"""The model bundle: a trained network with everything needed to apply it exactly as it was trained, saved and
loaded here only. `seg train` writes it; `seg infer` and `seg analyze` read it.

    <folder>/weights.pt        state dict (loads with `weights_only=True`: no pickled code runs)
    <folder>/config.yaml       the whole resolved seg config
    <folder>/fingerprint.json  the dataset fingerprint (seg.data.cache.Fingerprint): how to preprocess new images
    <folder>/model.json        ModelMeta

A Lightning checkpoint written by `seg train` holds the same record under `CHECKPOINT_KEY`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

import seg
from seg.config import Config, from_dict, to_dict
from seg.data.cache import CacheError, Fingerprint
from seg.files import atomic_folder, finite, read_json, stable_hash, write_json
from seg.models.errors import ModelLoadError

WEIGHTS, CONFIG, FINGERPRINT, META = "weights.pt", "config.yaml", "fingerprint.json", "model.json"
REQUIRED = (WEIGHTS, CONFIG, FINGERPRINT)
CHECKPOINT_KEY = "seg"  # where the training module stores config, fingerprint and meta in a Lightning checkpoint


def config_hash(config: Config) -> str:
    return stable_hash(to_dict(config))


@dataclass(frozen=True)
class ModelMeta:
    """`model.json`: what a model needs besides its weights and config to be applied as it was trained."""

    seg_version: str
    class_names: tuple[str, ...]
    patch_size: tuple[int, ...]  # the training patch: the sliding window at inference
    mirrored_axes: tuple[int, ...]  # spatial axes trained mirrored: the only ones test-time augmentation mirrors
    slice_axis: int | None  # axis along which a 2D network predicts 3D volumes (None: same dims)
    config_hash: str
    precision: str | None = None  # what training resolved (`train.precision: auto`)
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    mlflow_model_uri: str | None = None
    registered_model: str | None = None  # "models:/<name>/<version>" when the train stage registered it
    runtime: Mapping[str, Any] = field(default_factory=dict)  # machine and speed settings of the training run
    metrics: Mapping[str, Any] = field(default_factory=dict)  # the training summary (metrics/train.json)

    @classmethod
    def for_training(cls, config: Config, class_names, patch_size, slice_axis, **extra) -> ModelMeta:
        return cls(
            seg_version=seg.__version__,
            class_names=tuple(class_names),
            patch_size=tuple(int(p) for p in patch_size),
            mirrored_axes=config.train.augment.mirrored_axes(config.model.spatial_dims),
            slice_axis=slice_axis,
            config_hash=config_hash(config),
            **extra,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], config: Config, source: str) -> ModelMeta:
        """Also reads model.json files of earlier seg versions, which lacked mirrored axes and the config hash."""
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        k = config.model.out_channels
        names_given = d.get("class_names") or ()
        d["class_names"] = tuple(names_given) if len(names_given) == k else ("background", *map(str, range(1, k)))
        size = d.get("patch_size") or config.train.patch_size
        if not size:
            raise ModelLoadError(f"{source}: the model records no patch size. Retrain with this seg version.")
        d["patch_size"] = tuple(int(s) for s in size)
        mirrored = d.get("mirrored_axes")
        d["mirrored_axes"] = (
            tuple(mirrored) if mirrored is not None else config.train.augment.mirrored_axes(config.model.spatial_dims)
        )
        d.setdefault("slice_axis", None)
        d.setdefault("config_hash", config_hash(config))
        d.setdefault("seg_version", "")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("class_names", "patch_size", "mirrored_axes"):
            d[key] = list(d[key])
        return d


@dataclass
class ModelBundle:
    net: nn.Module  # in eval mode, on the CPU
    config: Config
    fingerprint: Fingerprint
    meta: ModelMeta
    source: str  # where it was loaded from, for messages

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.class_names)

    @property
    def patch_size(self) -> tuple[int, ...]:
        return self.meta.patch_size

    @property
    def slice_axis(self) -> int | None:
        return self.meta.slice_axis

    @property
    def mirrored_axes(self) -> tuple[int, ...]:
        return self.meta.mirrored_axes

    @property
    def config_hash(self) -> str:
        return self.meta.config_hash


def save_bundle(
    folder: str | Path,
    net: nn.Module,
    config: Config,
    fingerprint: Fingerprint,
    meta: ModelMeta,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the folder atomically: a killed run never leaves a half-written model, and a previous one is
    replaced only once the new one is complete. `extra`: more JSON files (name -> content), e.g. how the model was
    pruned."""
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, tmp / WEIGHTS)
        (tmp / CONFIG).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        write_json(tmp / FINGERPRINT, fingerprint.to_dict())
        write_json(tmp / META, meta.to_dict())
        for name, content in (extra or {}).items():
            write_json(tmp / name, finite(content))
    return folder


def update_meta(folder: str | Path, meta: ModelMeta) -> None:
    """Rewrite model.json (atomically), e.g. once the model is logged to MLflow and its URI is known."""
    write_json(Path(folder) / META, meta.to_dict())


def checkpoint_record(config: Config, fingerprint: Fingerprint, meta: ModelMeta) -> dict[str, Any]:
    """What the training module stores in its Lightning checkpoints under `CHECKPOINT_KEY` (plain data)."""
    return {"config": to_dict(config), "fingerprint": fingerprint.to_dict(), "meta": meta.to_dict()}


def load_bundle(folder: str | Path, source: str | None = None) -> ModelBundle:
    folder = Path(folder)
    source = source or str(folder)
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise ModelLoadError(
            f"{folder}: not a seg model folder (missing {', '.join(missing)}). Pass the folder `seg train` wrote "
            f"(train.model_dir, default models/latest)."
        )
    config = _config(yaml.safe_load((folder / CONFIG).read_text()), folder / CONFIG)
    fingerprint = _fingerprint(read_json(folder / FINGERPRINT), folder / FINGERPRINT)
    meta = read_json(folder / META) if (folder / META).is_file() else {}
    return _assemble(_torch_load(folder / WEIGHTS), config, fingerprint, meta, source)


def load_checkpoint(path: str | Path) -> ModelBundle:
    path = Path(path)
    ckpt = _torch_load(path)
    info = ckpt.get(CHECKPOINT_KEY) if isinstance(ckpt, dict) else None
    if not info:
        raise ModelLoadError(
            f"{path}: checkpoint holds no seg model description (config, fingerprint). Pass a checkpoint written by "
            f"`seg train` (outputs/train/checkpoints/best.ckpt) or its model folder."
        )
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    config = _config(info["config"], path)
    fingerprint = _fingerprint(info["fingerprint"], path)
    return _assemble(state, config, fingerprint, dict(info.get("meta") or {}), str(path))


def read_record(info: Mapping[str, Any], source: str) -> tuple[Config, Fingerprint, ModelMeta]:
    """The config, fingerprint and meta of `checkpoint_record`'s plain data, wherever it was stored (a Lightning
    checkpoint, an exported ONNX file's metadata), checked like a model folder's."""
    config = _config(info["config"], Path(source))
    fingerprint = _fingerprint(info["fingerprint"], Path(source))
    meta = dict(info.get("meta") or {})
    _check_version(meta, source)
    return config, fingerprint, ModelMeta.from_dict(meta, config, source)


def _check_version(meta: Mapping[str, Any], source: str) -> None:
    trained_with = meta.get("seg_version")
    if trained_with and trained_with.split(".")[:2] != seg.__version__.split(".")[:2]:
        raise ModelLoadError(
            f"{source}: trained with seg {trained_with}, this is seg {seg.__version__}. "
            f"Install seg=={trained_with} to use it, or retrain."
        )


def _fingerprint(data: Mapping[str, Any], where: Path) -> Fingerprint:
    try:
        return Fingerprint.from_dict(data, str(where))
    except CacheError as e:
        raise ModelLoadError(f"{e} The model folder is incomplete: use the folder `seg train` wrote.") from None


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- truncated file, or a pickle that needs arbitrary code
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


def _assemble(
    state: dict[str, torch.Tensor], config: Config, fingerprint: Fingerprint, meta: dict, source: str
) -> ModelBundle:
    from seg.models.build import build_for

    _check_version(meta, source)
    net = build_for(config)
    if hasattr(net, "upgrade_state"):
        state = net.upgrade_state(state)
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
    return ModelBundle(net, config, fingerprint, ModelMeta.from_dict(meta, config, source), source)
