"""Every attention map a network computes, under one typed name, through one API.

Kinds (`MapId.kind`):
    gate     additive gate coefficients on skip `level{i}`, (B, 1, *grid) in [0, 1]; a multi-head gate also
             gives each head's map (`head` set) beside the heads' mean (`head` None)
    spatial  CBAM's or scSE's spatial map at encoder stage `enc{i}` or decoder stage `dec{i}`, (B, 1, *grid)
    channel  SE's, CBAM's or scSE's channel weights at a stage, a vector per case, (B, C)
    self     self-attention at encoder stage i, block j (`enc{i}b{j}`), per head: how far each query looks, the
             attention-weighted mean distance to its keys in mm, (B, 1, *grid); with query points asked for,
             also the attention over keys of query `query` (B, 1, *key grid), and where blocks stack, the
             attention rollout over the stage's blocks (site `enc{i}`, `head` None)

`net.outputs(x, maps=MapRequest(...))` (or `maps=True` for every kind) runs the forward with a `MapRecorder` that
every attention module writes to; without a request nothing is recorded and self-attention runs on PyTorch's
fused kernel. Each map is recorded with its grid's down-sampling relative to the input (`factor`), so a consumer
resamples it to any grid without knowing where in the U it came from.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

GATE, SPATIAL, CHANNEL, SELF = "gate", "spatial", "channel", "self"
MAP_KINDS = (GATE, SPATIAL, CHANNEL, SELF)


@dataclass(frozen=True, order=True)
class MapId:
    """A map's stable name: its kind, where in the U (`level{i}`, `enc{i}`, `dec{i}`, `enc{i}b{j}`), and for
    multi-head modules the head (None: the heads' mean); `query` numbers the query point of a self-attention map
    over keys."""

    kind: str
    site: str
    head: int | None = None
    query: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in MAP_KINDS:
            raise ValueError(f"map kind {self.kind!r}: expected one of {', '.join(MAP_KINDS)}")

    @property
    def key(self) -> str:
        """`gate_level0`, `spatial_dec1`, `channel_enc2`, `self_enc3b0_h1`, `self_enc3b0_h1_q0`: file names,
        MLflow keys and report labels."""
        parts = [self.kind, self.site]
        if self.head is not None:
            parts.append(f"h{self.head}")
        if self.query is not None:
            parts.append(f"q{self.query}")
        return "_".join(parts)

    @property
    def is_vector(self) -> bool:
        return self.kind == CHANNEL

    @classmethod
    def parse(cls, key: str) -> MapId:
        """The inverse of `key`."""
        kind, site, *rest = key.split("_")
        head = next((int(p[1:]) for p in rest if p.startswith("h")), None)
        query = next((int(p[1:]) for p in rest if p.startswith("q")), None)
        return cls(kind, site, head, query)


@dataclass(frozen=True)
class MapRequest:
    """What to record in a forward pass.

    kinds: the map kinds wanted. spacing: the input grid's voxel spacing in mm, per spatial axis (None: 1 per axis,
    distances in voxels). queries: points of the input grid (voxel indices) whose self-attention over keys is
    wanted, per head (and rolled out where blocks stack)."""

    kinds: tuple[str, ...] = MAP_KINDS
    spacing: tuple[float, ...] | None = None
    queries: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in MAP_KINDS]
        if bad:
            raise ValueError(f"map kinds {bad}: expected some of {', '.join(MAP_KINDS)}")

    @classmethod
    def of(cls, maps: bool | MapRequest | Sequence[str] | None) -> MapRequest | None:
        """`True`: every kind; a sequence: those kinds; a request as it is; False or None: nothing."""
        if maps is None or maps is False:
            return None
        if maps is True:
            return cls()
        if isinstance(maps, MapRequest):
            return maps
        return cls(kinds=tuple(maps))

    def spacing_of(self, factor: Sequence[int]) -> tuple[float, ...]:
        """The spacing (mm) of a grid down-sampled by `factor` per axis."""
        base = self.spacing or (1.0,) * len(factor)
        return tuple(float(s) * f for s, f in zip(base, factor, strict=True))


@dataclass
class RecordedMap:
    value: torch.Tensor  # (B, 1, *grid) or (B, C) for channel weights
    factor: tuple[int, ...]  # the grid's down-sampling relative to the input, per axis (() for vectors)


@dataclass
class MapRecorder:
    """Collects the maps of one forward pass; attention modules call `put`."""

    request: MapRequest
    maps: dict[MapId, RecordedMap] = field(default_factory=dict)

    def wants(self, kind: str) -> bool:
        return kind in self.request.kinds

    def put(self, map_id: MapId, value: torch.Tensor, factor: Sequence[int] = ()) -> None:
        if self.wants(map_id.kind):
            self.maps[map_id] = RecordedMap(value, tuple(factor))


class MapSource(nn.Module):
    """An attention module that reports its maps: `site` (where in the U) and `factor` (its grid's down-sampling)
    are set by the network that places it; `recorder` is set only during a forward pass that asks for maps."""

    site: str = ""
    factor: tuple[int, ...] = ()
    recorder: MapRecorder | None = None

    def place(self, site: str, factor: Sequence[int]) -> None:
        self.site, self.factor = site, tuple(int(f) for f in factor)

    def produces(self) -> list[MapId]:
        """The maps a forward pass with every kind asked for records (query maps aside)."""
        return []

    def report(self, kind: str, value: torch.Tensor, head: int | None = None, factor: Sequence[int] | None = None):
        """Record `value` when a recorder asks for `kind`; cheap to call when none does."""
        if self.recorder is not None and self.recorder.wants(kind):
            shape_factor = () if kind == CHANNEL else (self.factor if factor is None else factor)
            self.recorder.put(MapId(kind, self.site, head), value, shape_factor)


@contextmanager
def recording(net: nn.Module, request: MapRequest | None) -> Iterator[MapRecorder | None]:
    """Give every `MapSource` of `net` a recorder for the duration of one forward pass (none without a request)."""
    if request is None:
        yield None
        return
    recorder = MapRecorder(request)
    sources = [m for m in net.modules() if isinstance(m, MapSource)]
    for m in sources:
        m.recorder = recorder
    try:
        yield recorder
    finally:
        for m in sources:
            m.recorder = None


def crop_to_input(recorder: MapRecorder, size: Sequence[int]) -> dict[MapId, torch.Tensor]:
    """The recorded maps cropped to the part of their grid that covers an input of spatial `size` (the network
    pads at the far end), in float32 for spatial maps."""
    out = {}
    for map_id, rec in sorted(recorder.maps.items(), key=lambda kv: kv[0].key):
        if not rec.factor:
            out[map_id] = rec.value
            continue
        crop = [math.ceil(s / f) for s, f in zip(size, rec.factor, strict=True)]
        out[map_id] = rec.value[(slice(None), slice(None), *(slice(0, c) for c in crop))]
    return out


def map_factors(recorder: MapRecorder) -> dict[MapId, tuple[int, ...]]:
    return {k: v.factor for k, v in recorder.maps.items()}
