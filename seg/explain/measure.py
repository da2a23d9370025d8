"""One case, measured: its maps (gates, CAMs, plain CAM), the PCM-refined CAMs, SEAM equivariance errors, and the
scores against its reference label, all on the preprocessed grid."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from seg.explain import keys
from seg.explain.cases import AnalysisCase
from seg.explain.engine import CaseMaps, MapEngine
from seg.explain.equivariance import equivariance
from seg.explain.keys import MapId
from seg.explain.pcm import refine_case_cams
from seg.explain.scores import dice_curve, energy_inside, pearson
from seg.explain.transforms import SpatialTransform


@dataclass
class CaseResult:
    case_id: str
    maps: CaseMaps | None  # features dropped after PCM; all maps dropped once written (`drop_maps`)
    pcm: torch.Tensor | None  # (K - 1, *S) PCM-refined CAMs of the primary layer
    curves_raw: dict[str, np.ndarray] = field(default_factory=dict)  # class -> Dice over THRESHOLDS
    curves_pcm: dict[str, np.ndarray] = field(default_factory=dict)
    equivariance: dict[MapId, dict[str, float]] = field(default_factory=dict)  # map -> {transform: error}
    scores: dict[str, float] = field(default_factory=dict)  # flat, NaN where undefined
    fallback: list[bool] = field(default_factory=list)  # per class: nothing predicted (whole-volume score)
    seconds: float = 0.0

    def drop_maps(self) -> None:
        """Free the volumes once written: a run over many cases then holds only numbers."""
        self.maps, self.pcm = None, None


def measure_case(
    engine: MapEngine,
    case: AnalysisCase,
    class_names: Sequence[str],
    pcm_window: int,
    transforms: Sequence[SpatialTransform] = (),
) -> CaseResult:
    """`class_names`: the foreground classes (ids 1..K-1). Without transforms no equivariance is measured."""
    start = time.perf_counter()
    maps = engine.maps(case.image, features=True)
    primary = engine.layers[0]
    pcm = refine_case_cams(maps.cams[primary], maps.features, pcm_window)
    maps.features = None
    result = CaseResult(case.case_id, maps, pcm, fallback=list(maps.fallback))
    if transforms:
        result.equivariance = equivariance(engine, case.image, maps, transforms, primary, class_names)
    if case.label is not None:
        _score(result, torch.as_tensor(case.label), primary, class_names)
    for i, name in enumerate(class_names):
        for level, gate in maps.gates.items():
            result.scores[keys.cam(name, f"gate_correlation.{level}")] = pearson(maps.cams[primary][i], gate)
        result.scores[keys.cam(name, "fallback")] = float(maps.fallback[i])
    result.seconds = time.perf_counter() - start
    return result


def _score(result: CaseResult, label: torch.Tensor, primary: str, class_names: Sequence[str]) -> None:
    maps, s = result.maps, result.scores
    for i, name in enumerate(class_names):
        mask = label == i + 1
        if not mask.any():
            continue  # the class is absent from this case's reference: nothing to score
        result.curves_raw[name] = dice_curve(maps.cams[primary][i], mask)
        result.curves_pcm[name] = dice_curve(result.pcm[i], mask)
        s[keys.cam(name, "energy_inside_raw")] = energy_inside(maps.cams[primary][i], mask)
        s[keys.cam(name, "energy_inside_pcm")] = energy_inside(result.pcm[i], mask)
        if maps.plain is not None:
            s[keys.cam(name, "energy_inside_plain")] = energy_inside(maps.plain[i], mask)
        s[keys.cam(name, "mask_fraction")] = float(mask.double().mean())
    union = label > 0
    if union.any():
        for level, gate in maps.gates.items():
            s[keys.gate(level, "energy_inside")] = energy_inside(gate, union)
        s[keys.gates("mask_fraction")] = float(union.double().mean())
