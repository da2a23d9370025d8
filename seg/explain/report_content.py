"""What the analysis report says: facts about the run, the tables of measurements, the definitions of every
number, and the pictures per case (see `seg.explain.report` for the HTML)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from seg.config import AnalyzeConfig
from seg.explain import keys
from seg.explain.aggregate import best_dice
from seg.explain.measure import MEASURED_KINDS, CaseResult
from seg.explain.outputs import FOLDERS, query_name
from seg.explain.report import Figure, Table, write_report
from seg.explain.transforms import FAMILIES, SpatialTransform
from seg.model_folder import ModelBundle
from seg.models.maps import GATE, SELF, MapId

DISTANCE_PICTURE = "attention_distance"

DEFINITIONS = {
    "Grid": "All numbers are measured on the preprocessed grid (the network's input: canonical orientation, cropped, "
    "resampled to the target spacing), where the reference labels of the cache live; the map files are "
    "restored to each original image's grid and geometry.",
    "CAM score": "Segmentation Grad-CAM: the score of class k is the sum of its logit over the voxels predicted as k "
    "in the case; when nothing is predicted as k, the whole volume's sum (counted as 'fallback cases').",
    "Target layers": "On the input of the 1x1 head (decoder.0, or full_res with a strided stem), Grad-CAM equals the "
    "plain CAM up to a positive factor: the gradient of a linear head is its weight. Deeper layers "
    "(decoder.1, encoder.3, see `seg layers MODEL`) show what the coarser features contribute.",
    "Equivariance error": "For a transform T with inverse T^-1: d(T^-1 map(T x), map(x)), d(a, b) = ||a - b||_1 / "
    "(||a||_1 + ||b||_1), 0 = perfectly equivariant, 1 = disjoint. CAMs are divided by their "
    "maximum first; gate maps are compared as they are. Flips and rot90 have exact inverses; "
    "rescaling is inverted by resampling back (exact only up to interpolation). Per family: "
    "mean over axes, planes or scales, then over cases.",
    "PCM": "SEAM's Pixel Correlation Module: each voxel's CAM becomes the affinity-weighted mean of the CAM in a local "
    "window, affinity = ReLU(cosine similarity) of the network's last decoder features (the head's input).",
    "Dice at the chosen threshold": "Each map is min-max normalised per case and class, thresholded at t in "
    "0.05..0.95, and compared with the reference; t maximises the mean Dice on the "
    "selection cases, and the Dice shown is the mean over the scored cases.",
    "Energy inside mask": "Share of the map's mass inside the reference: sum(map * mask) / sum(map); compare with the "
    "mask fraction (the share of voxels inside the mask: what a uniform map scores). Gate maps "
    "use the union of the foreground classes.",
    "Gate/CAM correlation": "Pearson correlation over all voxels of the preprocessed grid between a gate level's map "
    "and a class's CAM (primary layer), mean over cases.",
    "Attention maps": "Every map the network computes, by kind: gate (additive gates on the skips, in [0, 1]), "
    "spatial (CBAM's or scSE's spatial maps, in [0, 1]), self (self-attention: per head, how far each query "
    "position looks, in mm), channel (SE, CBAM or scSE channel weights, mean over windows). Each is recorded in "
    "the CAM pass and resampled from its own grid to the case's.",
    "Attention distance": "Per self-attention head: sum over keys of attention weight x distance (mm, the model's "
    "target spacing) from the query, the mean over the case's query positions, then over cases.",
    "Query maps": "Per query point (the centroid of each predicted class, then analyze.query_points), each head's "
    "attention weights over the keys, from one forward pass over a patch-sized window centred on the point (the "
    "whole case when it fits one); each key's weight is spread over the voxels it covers, so a map sums to 1 "
    "over the case grid. Stacked blocks add their rollout: the product of (A + I) / 2 over the stage's blocks.",
}


def report_for(
    path: Path,
    model: ModelBundle,
    cfg: AnalyzeConfig,
    layers: Sequence[str],
    results: Sequence[CaseResult],
    scored: Sequence[CaseResult],
    metrics: Mapping[str, float],
    thresholds: Mapping[str, Mapping[str, float]],
    threshold_source: str,
    transforms: Sequence[SpatialTransform],
    names: Sequence[str],
    pictures: Mapping[str, bytes],
) -> Path:
    m = metrics.get
    facts = {
        "model": model.source,
        "MLflow run": str(model.meta.mlflow_run_id),
        "cases": ", ".join(r.case_id for r in results),
        "scored cases": ", ".join(r.case_id for r in scored) or "none (no labels)",
        "thresholds chosen on": threshold_source,
        "CAM method": f"{cfg.cam_method} on {', '.join(layers)} (metrics: {layers[0]})",
        "transforms": ", ".join(t.name for t in transforms) or "none",
        "PCM window": f"{cfg.pcm_window} voxels per axis",
    }
    per_class = Table(
        "CAMs per class",
        [
            "class",
            "Dice raw",
            "t raw",
            "Dice PCM",
            "t PCM",
            "best Dice raw (scored, optimistic)",
            "energy raw",
            "energy PCM",
            "energy plain CAM",
            "mask fraction",
            "fallback cases",
        ],
        [
            [
                n,
                m(keys.cam(n, "dice_raw")),
                thresholds["raw"].get(n),
                m(keys.cam(n, "dice_pcm")),
                thresholds["pcm"].get(n),
                (best_dice(scored, n, "raw") or (None, None))[1],
                m(keys.cam(n, "energy_inside_raw")),
                m(keys.cam(n, "energy_inside_pcm")),
                m(keys.cam(n, "energy_inside_plain")),
                m(keys.cam(n, "mask_fraction")),
                int(m(keys.cam(n, "fallback_cases")) or 0),
            ]
            for n in names
        ],
    )
    families = [f for f in FAMILIES if any(t.family == f for t in transforms)]
    map_ids = sorted({i for r in results for i in r.map_ids})
    measured = [i for i in map_ids if i.kind in MEASURED_KINDS]
    levels = [i.site for i in measured if i.kind == GATE and i.head is None]
    rows = [[f"CAM {n}", *(m(keys.cam(n, f"equivariance.{f}")) for f in families)] for n in names]
    rows += [[i.key, *(m(keys.network_map(i, f"equivariance.{f}")) for f in families)] for i in measured]
    equivariance = Table("Equivariance error per transform family (0 = equivariant)", ["map", *families], rows)
    gates = Table(
        "Gate and spatial attention maps",
        ["map", "energy inside foreground", "foreground fraction"],
        [[i.key, m(keys.network_map(i, "energy_inside")), m(keys.gates("mask_fraction"))] for i in measured],
    )
    correlation = Table(
        "Gate/CAM Pearson correlation (preprocessed grid)",
        ["class", *levels],
        [[n, *(m(keys.cam(n, f"gate_correlation.{lv}")) for lv in levels)] for n in names],
    )
    sites, by_head = distance_table(metrics, map_ids)
    distance = Table(
        "Attention distance (mm) per self-attention block and head", ["block", *by_head], _transpose(sites, by_head)
    )
    figures = []
    if "dice_curves" in pictures:
        curve = Figure("mean over the scored cases; dotted: the chosen thresholds", pictures["dice_curves"])
        figures.append(("Dice over thresholds", [curve]))
    if DISTANCE_PICTURE in pictures:
        figures.append(
            ("Attention distance by depth", [Figure("mean over queries and cases", pictures[DISTANCE_PICTURE])])
        )
    for r in results:
        picture_keys = [f"{r.case_id}_{folder}" for folder in FOLDERS.values()]
        picture_keys += [f"{r.case_id}_query{j}" for j in r.query_points]
        picture_keys += [f"{r.case_id}_channels", *(f"{r.case_id}_{n}" for n in names)]
        figs = [Figure(_caption(key, r, names), pictures[key]) for key in picture_keys if key in pictures]
        figures.append((f"Case {r.case_id} ({r.seconds:.1f} s)", figs))
    notes = [
        f"{n}: nothing predicted in {int(m(keys.cam(n, 'fallback_cases')) or 0)} case(s); their CAMs use the "
        f"whole-volume score."
        for n in names
        if m(keys.cam(n, "fallback_cases"))
    ]
    return write_report(
        path,
        f"Analysis of {Path(model.source).name}",
        facts,
        [per_class, equivariance, gates, correlation, *([distance] if sites else [])],
        figures,
        DEFINITIONS,
        notes,
    )


def distance_table(metrics: Mapping[str, float], map_ids: Sequence[MapId]) -> tuple[list[str], dict[str, list]]:
    """(self-attention sites shallow to deep, {"h<i>": distance in mm per site, None where the site has no head i})."""
    own = [i for i in map_ids if i.kind == SELF and i.head is not None and i.query is None]
    sites = sorted({i.site for i in own}, key=lambda site: (len(site), site))
    heads = sorted({i.head for i in own})
    return sites, {f"h{h}": [metrics.get(keys.attention_distance(s, h)) for s in sites] for h in heads}


def _transpose(sites: Sequence[str], by_head: Mapping[str, Sequence]) -> list[list]:
    return [[site, *(values[k] for values in by_head.values())] for k, site in enumerate(sites)]


def _caption(key: str, result: CaseResult, names: Sequence[str]) -> str:
    for j, point in result.query_points.items():
        if key == f"{result.case_id}_query{j}":
            return f"{key}: attention from the {query_name(j, names)}, voxel {list(point)} of the preprocessed grid"
    return key
