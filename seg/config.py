"""Typed, frozen configuration, one dataclass per concern, loaded from YAML.

Unknown keys are errors that name the file and suggest the nearest valid key; `__post_init__` checks that
fields fit together. Functions take the section they need (`ModelConfig`, ...), never a dict of everything.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file, the key, and the fix."""


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ModelConfig:
    """The network. Argument names follow MONAI (`spatial_dims, in_channels, out_channels, channels, ...`)."""

    spatial_dims: int = 3
    in_channels: int = 1
    out_channels: int = 3  # classes including background
    channels: tuple[int, ...] = (16, 32, 64, 128)  # depth = len(channels); the coarsest levels hold most weights
    strides: tuple[int, ...] = (2, 2, 2)  # len(channels) - 1; their product per axis is the input multiple
    kernel_size: int = 3
    norm: str = "instance"  # instance suits batch sizes of 2-4; batch norm needs larger batches
    act: str = "leakyrelu"
    dropout: float = 0.0
    residual: bool = False  # residual stages train deeper nets more stably, at ~10% more compute
    gate_levels: str | tuple[int, ...] | None = "all"  # "all", None (plain U-Net, for ablations), or skip indices
    gate_mode: str = "concatenation"  # or concatenation_softmax / concatenation_residual
    gate_heads: int = 1  # > 1: multi-head gating on every gated skip
    sub_sample_factor: int | None = None  # None: each gate works on its gating signal's grid (the stride)
    encoder_attention: str | None | tuple[str | None, ...] = None  # se / cbam / scse, all or per stage
    decoder_attention: str | None | tuple[str | None, ...] = None
    attention_reduction: int = 4
    deep_supervision: int = 2  # extra heads on decoder levels 1..k, weighted by resolution in the loss
    encoder_convs: int = 2
    decoder_convs: int = 2
    decoder_merge: str = "1x1"  # 1x1 projection of [skip, up] before the 3x3s; "3x3" convolves all 2C channels
    first_stage_convs: int | None = 1  # the full-resolution stage dominates cost; one conv there is ~2x cheaper
    pad_input: bool = True  # pad to the stride multiple and crop back; False makes a wrong size an error

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise ConfigError(f"model.spatial_dims must be 2 or 3, got {self.spatial_dims}.")
        if len(self.strides) != len(self.channels) - 1:
            raise ConfigError(
                f"model.strides must have len(channels) - 1 = {len(self.channels) - 1} entries, got "
                f"{len(self.strides)} (channels={list(self.channels)}, strides={list(self.strides)}). "
                f"Add or remove strides so each level below the first has one."
            )
        if not 0 <= self.deep_supervision <= len(self.channels) - 2:
            raise ConfigError(
                f"model.deep_supervision must be in [0, {len(self.channels) - 2}] for {len(self.channels)} levels, "
                f"got {self.deep_supervision}."
            )
        if self.in_channels < 1 or self.out_channels < 1:
            raise ConfigError(
                f"model.in_channels and out_channels must be >= 1, got {self.in_channels} and {self.out_channels}."
            )


# ------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Config:
    """All sections; each stage reads only the one it needs."""

    model: ModelConfig = field(default_factory=ModelConfig)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(value: Any, tp: Any, where: str, source: str) -> Any:
    """Coerce YAML values to the annotated type: lists to tuples, nested sections to dataclasses."""
    origin = typing.get_origin(tp)
    if _is_dataclass_type(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{where}' must be a mapping of keys, got {type(value).__name__} {value!r}.")
        return from_dict(tp, value, source, prefix=f"{where}.")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where, source)
            except (ConfigError, TypeError, ValueError) as e:
                errors.append(str(e))
        raise ConfigError(f"{source}: '{where}' = {value!r} does not fit type {tp}.")
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
    if isinstance(tp, type):
        if tp is int and isinstance(value, bool) or not isinstance(value, tp):
            raise ConfigError(f"{source}: '{where}' must be {tp.__name__}, got {type(value).__name__} {value!r}.")
    return value


def from_dict(cls: type[T], data: dict[str, Any], source: str = "<config>", prefix: str = "") -> T:
    """Build dataclass `cls` from a mapping; unknown keys raise with the nearest valid key."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else f" Valid keys: {', '.join(names)}."
            raise ConfigError(f"{source}: unknown key '{prefix}{key}'.{hint}")
        kwargs[key] = _convert(value, hints[key], f"{prefix}{key}", source)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load a YAML file (sections as in `Config`); keys absent from the file keep their defaults."""
    import yaml

    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found. Pass an existing YAML file (see configs/).")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]}). Fix the syntax.") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top, got {type(data).__name__}.")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(Config, data, source)


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
    """Dotted-key view, e.g. for MLflow params."""
    out: dict[str, Any] = {}
    for k, v in to_dict(cfg).items():
        if isinstance(v, dict):
            out.update(flatten_dict(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def flatten_dict(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten_dict(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
