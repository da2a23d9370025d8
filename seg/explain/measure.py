"""One case, measured: its maps (the network's attention maps, CAMs, plain CAM), the PCM-refined CAMs, SEAM
equivariance errors, each self-attention head's attention distance, and the scores against its reference label,
all on the preprocessed grid."""

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
from seg.explain.queries import Point
from seg.explain.scores import dice_curve, energy_inside, pearson
from seg.explain.transforms import SpatialTransform
from seg.models import maps as network_maps

MEASURED_KINDS = (network_maps.GATE, network_maps.SPATIAL)  # maps in [0, 1]: energy inside, equivariance


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
    map_ids: list[network_maps.MapId] = field(default_factory=list)  # the network's maps (query maps aside)
    query_points: dict[int, Point] = field(default_factory=dict)  # query number -> voxel of the case grid

    def drop_maps(self) -> None:
        """Free the volumes once written: a run over many cases then holds only numbers."""
        self.maps, self.pcm = None, None


def measure_case(
    engine: MapEngine,
    case: AnalysisCase,
    class_names: Sequence[str],
    pcm_window: int,
    transforms: Sequence[SpatialTransform] = (),
    queries: Sequence[Point] | None = None,
) -> CaseResult:
    """`class_names`: the foreground classes (ids 1..K-1). Without transforms no equivariance is measured.
    `queries`: voxels of the case grid whose self-attention is wanted beside the predicted classes' centroids
    (None: no query maps)."""
    start = time.perf_counter()
    maps = engine.maps(case.image, features=True, queries=queries)
    primary = engine.layers[0]
    pcm = refine_case_cams(maps.cams[primary], maps.features, pcm_window)
    maps.features = None
    ids = [*maps.spatial, *maps.channels]
    result = CaseResult(case.case_id, maps, pcm, fallback=list(maps.fallback), map_ids=ids)
    result.query_points = dict(maps.query_points)
    result.scores.update(attention_distances(maps))
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
        for map_id, value in maps.spatial.items():
            if map_id.kind in MEASURED_KINDS:
                s[keys.network_map(map_id, "energy_inside")] = energy_inside(value, union)
        s[keys.gates("mask_fraction")] = float(union.double().mean())


def attention_distances(maps: CaseMaps) -> dict[str, float]:
    """{attention_distance.<site>.h<head>: mm}: each self-attention head's distance map, mean over the case grid
    (every query weighted by the voxels it covers)."""
    return {
        keys.attention_distance(m.site, m.head): float(v.double().mean())
        for m, v in maps.spatial.items()
        if m.kind == network_maps.SELF and m.head is not None
    }
