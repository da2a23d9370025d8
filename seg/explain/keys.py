"""The names of the analysis metrics (metrics/analysis.json, MLflow `analysis/...`), built here only:
`cam.<class>.<measure>` for class activation maps, `gate.<level>.<measure>` and `spatial.<site>.<measure>` for the
network's attention maps (a head's map: `gate.level0_h1.<measure>`), `gate.<measure>` for what all gate levels
share, and `attention_distance.<site>.h<head>` for self-attention (mm). Readers build the same names from the class
names and map names they know; nothing parses a key back."""

from __future__ import annotations

from dataclasses import dataclass

from seg.models import maps

CAM, GATE, SPATIAL = "cam", maps.GATE, maps.SPATIAL


@dataclass(frozen=True)
class MapId:
    """Which map a measure is of: a CAM of a class, or one of the network's gate or spatial maps."""

    kind: str  # CAM, GATE or SPATIAL
    name: str  # class name, or the map's name without its kind (`level0`, `level0_h1`, `dec1`)

    def key(self, measure: str) -> str:
        return f"{self.kind}.{self.name}.{measure}"

    def __str__(self) -> str:  # in analysis.json: "cam/<class>", "gate/<level>", "spatial/<site>"
        return f"{self.kind}/{self.name}"

    @classmethod
    def of(cls, map_id: maps.MapId) -> MapId:
        """The measured name of a network's map: `gate_level0_h1` -> gate / level0_h1."""
        return cls(map_id.kind, map_id.key.removeprefix(f"{map_id.kind}_"))


def cam(name: str, measure: str) -> str:
    return MapId(CAM, name).key(measure)


def gate(level: str, measure: str) -> str:
    return MapId(GATE, level).key(measure)


def network_map(map_id: maps.MapId, measure: str) -> str:
    """A measure of one of the network's maps: `gate.level0.energy_inside`, `spatial.dec1.equivariance.flip`."""
    return MapId.of(map_id).key(measure)


def gates(measure: str) -> str:
    """A measure of the gate maps as a whole (e.g. the foreground fraction they are scored against)."""
    return f"{GATE}.{measure}"


def attention_distance(site: str, head: int | None) -> str:
    """Self-attention at `site` (`enc3b0`), head `head`: how far its queries look, in mm, mean over the case's
    queries and over cases."""
    return f"attention_distance.{site}.h{head}"
