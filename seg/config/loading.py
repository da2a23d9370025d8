"""The whole configuration (`Config`, one field per section), how a YAML file becomes one, and plain views of it.

Unknown keys are errors that name the file and suggest the nearest valid key; YAML values are coerced to the
annotated types (lists to tuples, nested mappings to sections) before each section checks itself.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from seg.config.analyze import AnalyzeConfig
from seg.config.checks import ConfigError, did_you_mean
from seg.config.crossval import CrossvalConfig
from seg.config.data import DataConfig
from seg.config.fields import section
from seg.config.infer import InferConfig
from seg.config.model import ModelConfig
from seg.config.seam import SeamConfig
from seg.config.train import TrainConfig

T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    """All sections; each stage reads only the one it needs."""

    model: ModelConfig = section(ModelConfig)
    data: DataConfig = section(DataConfig)
    train: TrainConfig = section(TrainConfig)
    infer: InferConfig = section(InferConfig)
    analyze: AnalyzeConfig = section(AnalyzeConfig)
    crossval: CrossvalConfig = section(CrossvalConfig)
    seam: SeamConfig = section(SeamConfig)

    def __post_init__(self) -> None:
        """The checks that read two sections at once (each section has checked its own fields)."""
        self.train.augment.mirrored_axes(self.model.spatial_dims)  # an axis the patches lack fails at load time
        if self.seam.cam_level is not None and self.seam.cam_level >= len(self.model.channels):
            raise ConfigError(
                f"seam.cam_level {self.seam.cam_level} is not an encoder level of model.channels "
                f"{list(self.model.channels)}; pick 1..{len(self.model.channels) - 1}."
            )
        if self.seam.patch_size is not None and len(self.seam.patch_size) != self.model.spatial_dims:
            raise ConfigError(
                f"seam.patch_size {list(self.seam.patch_size)} needs {self.model.spatial_dims} entries "
                f"for a {self.model.spatial_dims}D model."
            )
        if self.seam.shift is not None and len(self.seam.shift) != self.model.spatial_dims:
            raise ConfigError(
                f"seam.shift {list(self.seam.shift)} needs one number of voxels per axis "
                f"({self.model.spatial_dims} for a {self.model.spatial_dims}D model), or null to choose "
                f"it on validation cases."
            )
        bad = [k for k in self.crossval.folds if k >= self.data.folds]
        if bad:
            raise ConfigError(
                f"crossval.folds {bad} do not exist with data.folds={self.data.folds}; pick from "
                f"0..{self.data.folds - 1}."
            )


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert_union(value: Any, tp: Any, where: str, source: str) -> Any:
    """The first member of a union (`X | None`, ...) that `value` converts to."""
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(value, arg, where, source)
        except (ConfigError, TypeError, ValueError):
            continue
    raise ConfigError(f"{source}: '{where}' = {value!r} does not fit type {tp}.")


def _convert(value: Any, tp: Any, where: str, source: str) -> Any:
    """Coerce YAML values to the annotated type: lists to tuples, nested sections to dataclasses."""
    origin = typing.get_origin(tp)
    if _is_dataclass_type(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{where}' must be a mapping of keys, got {type(value).__name__} {value!r}.")
        return from_dict(tp, value, source, prefix=f"{where}.")
    if origin in (typing.Union, types.UnionType):
        return _convert_union(value, tp, where, source)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: '{where}' must be a list, got {value!r}.")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_convert(v, item, f"{where}[{i}]", source) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{where}' must be a mapping, got {value!r}.")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{source}: '{where}' must be null, got {value!r}.")
        return None
    if isinstance(tp, type) and ((tp is int and isinstance(value, bool)) or not isinstance(value, tp)):
        raise ConfigError(f"{source}: '{where}' must be {tp.__name__}, got {type(value).__name__} {value!r}.")
    return value


def from_dict(cls: type[T], data: dict[str, Any], source: str = "<config>", prefix: str = "") -> T:
    """Build dataclass `cls` from a mapping; unknown keys raise with the nearest valid key."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            hint = did_you_mean(key, names, cutoff=0.5, prefix=prefix) or f" Valid keys: {', '.join(names)}."
            raise ConfigError(f"{source}: unknown key '{prefix}{key}'.{hint}")
        kwargs[key] = _convert(value, hints[key], f"{prefix}{key}", source)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: config file not found. Pass an existing YAML file (see configs/).")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]}). Fix the syntax.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top, got {type(data).__name__}.")
    return data


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load a YAML file (sections as in `Config`); keys absent from the file keep their defaults."""
    data = _read_yaml(Path(path)) if path is not None else {}
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(Config, data, str(path) if path is not None else "<defaults>")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, YAML/JSON-ready dict of a config (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of a config or of a plain mapping such as parsed YAML, e.g. for MLflow params:
    {"train": {"augment": {"flip_prob": 0.5}}} -> {"train.augment.flip_prob": 0.5}. A config's tuples become lists
    (as in `to_dict`); a mapping's values are kept as they are."""
    tree = cfg if isinstance(cfg, dict) else to_dict(cfg)
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
