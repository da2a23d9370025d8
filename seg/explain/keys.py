"""The names of the analysis metrics (metrics/analysis.json, MLflow `analysis/...`), built here only:
`cam.<class>.<measure>` for class activation maps, `gate.<level>.<measure>` for gate maps, `gate.<measure>` for
what all gate levels share. Readers build the same names from the class names and gate levels they know;
nothing parses a key back."""

from __future__ import annotations

from dataclasses import dataclass

CAM, GATE = "cam", "gate"


@dataclass(frozen=True)
class MapId:
    """Which map a measure is of: a CAM of a class, or a gate level's map."""

    kind: str  # CAM or GATE
    name: str  # class name or gate level

    def key(self, measure: str) -> str:
        return f"{self.kind}.{self.name}.{measure}"

    def __str__(self) -> str:  # in analysis.json: "cam/<class>", "gate/<level>"
        return f"{self.kind}/{self.name}"


def cam(name: str, measure: str) -> str:
    return MapId(CAM, name).key(measure)


def gate(level: str, measure: str) -> str:
    return MapId(GATE, level).key(measure)


def gates(measure: str) -> str:
    """A measure of the gate maps as a whole (e.g. the foreground fraction they are scored against)."""
    return f"{GATE}.{measure}"
