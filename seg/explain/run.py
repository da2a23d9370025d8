"""`seg analyze`: the network's attention maps (every kind, query points' self-attention, attention distance),
class activation maps and SEAM measurements for a set of cases, written as maps in the original geometry, PNG
overlays, a self-contained HTML report, metrics for DVC, and logged into the model's MLflow run. Thresholds of the
CAM Dice are chosen on selection cases (the training fold), never on scored cases."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seg.case_progress import CaseProgress
from seg.config import AnalyzeConfig
from seg.explain.aggregate import choose_thresholds, mean_curves, summarize_analysis
from seg.explain.cam_targets import resolve_layers
from seg.explain.cases import AnalysisCase
from seg.explain.engine import MapEngine
from seg.explain.measure import CaseResult, measure_case
from seg.explain.outputs import KINDS, case_pictures, write_maps, write_png
from seg.explain.plots import render_distance_by_depth
from seg.explain.queries import point_on_grid
from seg.explain.report_content import DISTANCE_PICTURE, distance_table, report_for
from seg.explain.scores import THRESHOLDS
from seg.explain.transforms import SpatialTransform, spatial_transforms
from seg.files import finite, write_json
from seg.model_folder import ModelBundle
from seg.pictures import render_curves
from seg.runtime import describe_machine, tune_inference
from seg.runtime.tune_cache import model_key
from seg.tracking.analysis import log_analysis

REPORT_FILE = "report.html"  # <output>/report.html: self-contained, opens offline
DETAILS_FILE = "analysis.json"  # <output>/analysis.json: settings, thresholds, per-case numbers


@dataclass
class AnalysisSummary:
    out_dir: Path
    metrics: dict[str, float]  # as in the metrics file: flat keys, finite numbers
    report: Path
    threshold_source: str
    logged_run: str | None
    seconds: float


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name) or "class"


def analyze(
    model: ModelBundle,
    cases: Sequence[AnalysisCase],
    selection: Sequence[AnalysisCase],
    cfg: AnalyzeConfig,
    log: Callable[[str], None] | None = None,
) -> AnalysisSummary:
    """Analyse `cases` (maps, overlays, scores); `selection`: labelled cases that choose the Dice thresholds
    (empty: the first half of the labelled `cases` choose and the second half is scored)."""
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.num_threads)
    try:
        return _analyze(model, cases, selection, cfg, log)
    finally:
        torch.set_num_threads(before)


def _analyze(model, cases, selection, cfg: AnalyzeConfig, log: Callable[[str], None] | None) -> AnalysisSummary:
    start = time.perf_counter()
    selected = [c for c in selection if c.label is not None]
    progress = CaseProgress(len(selected) + len(cases), "seg analyze")
    case_done = log or progress.done  # a line per measured case: count and ETA (a bar on a terminal)
    queries = {c.case_id: [point_on_grid(p, c.props) for p in cfg.query_points] if c.props else [] for c in cases}
    engine = _map_engine(model, cfg, log or (lambda line: print(line, flush=True)))
    out = _clear_output(cfg.output)
    names = [safe_name(n) for n in model.class_names[1:]]
    chosen_on = _measure_selection(engine, selected, names, cfg, case_done)
    measured = _measure_and_write(engine, cases, names, cfg, model.slice_axis, out, case_done, queries)
    progress.close()

    labelled = [r for r, c in zip(measured.results, cases, strict=True) if c.label is not None]
    chosen_on, scored, source = _split(chosen_on, labelled)
    fixed = {kind: dict.fromkeys(names, 0.5) for kind in ("raw", "pcm")}
    thresholds = choose_thresholds(chosen_on, names) if chosen_on else fixed
    metrics = summarize_analysis(measured.results, scored, thresholds, measured.transforms, names)
    metrics["selection_cases"] = float(len(chosen_on))
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    _picture_curves(scored, names, thresholds, out, measured)
    _picture_distances(metrics, out, measured)

    report = report_for(
        out / REPORT_FILE,
        model,
        cfg,
        engine.layers,
        measured.results,
        scored,
        metrics,
        thresholds,
        source,
        measured.transforms,
        names,
        measured.pictures,
    )
    write_json(out / DETAILS_FILE, finite(_details(model, cfg, engine, measured, source, thresholds, metrics, names)))
    if cfg.metrics_file:
        write_json(cfg.metrics_file, metrics)
    logged = (
        log_analysis(model.meta.mlflow_run_id, model.meta.tracking_uri, out, measured.rgbs, metrics)
        if cfg.log_mlflow
        else None
    )
    return AnalysisSummary(out, metrics, report, source, logged, time.perf_counter() - start)


@dataclass
class _Measured:
    """The analysed cases' results (maps dropped) and the pictures written for them."""

    results: list[CaseResult] = field(default_factory=list)
    pictures: dict[str, bytes] = field(default_factory=dict)  # PNG bytes, for the report
    rgbs: dict[str, np.ndarray] = field(default_factory=dict)  # the same pictures, for MLflow's image viewer
    transforms: list[SpatialTransform] = field(default_factory=list)  # of the last case (the same for every case)


def _map_engine(model: ModelBundle, cfg: AnalyzeConfig, log: Callable[[str], None]) -> MapEngine:
    """The CAM layers resolved before anything is removed (a typo costs nothing), the prediction pass tuned."""
    layers = resolve_layers(model.net, cfg.cam_layers)
    settings = tune_inference(
        model.net,
        model.patch_size,
        model.config.model.in_channels,
        cfg.precision,
        1,
        config_key=model_key(model.config.model),
    )
    log(f"prediction pass: {settings.describe()}; CAM passes float32; num_threads {torch.get_num_threads()}")
    return MapEngine(model, layers, cfg.cam_method, cfg.overlap, cfg.whole_case_voxels, precision=settings.precision)


def _clear_output(output: str) -> Path:
    out = Path(output)
    for kind in KINDS:  # only the folders this stage owns
        shutil.rmtree(out / kind, ignore_errors=True)
    return out


def _measure_selection(
    engine: MapEngine,
    selected: Sequence[AnalysisCase],
    names: list[str],
    cfg: AnalyzeConfig,
    case_done: Callable[[str], None],
) -> list[CaseResult]:
    """The cases that choose the thresholds: measured only, nothing written."""
    chosen_on = []
    for case in selected:
        chosen_on.append(measure_case(engine, case, names, cfg.pcm_window))
        chosen_on[-1].drop_maps()
        case_done(f"{case.case_id}  {chosen_on[-1].seconds:.1f} s  (chooses thresholds)")
    return chosen_on


def _measure_and_write(
    engine: MapEngine,
    cases: Sequence[AnalysisCase],
    names: list[str],
    cfg: AnalyzeConfig,
    slice_axis: int | None,
    out: Path,
    case_done: Callable[[str], None],
    queries: dict[str, list[tuple[int, ...]]],
) -> _Measured:
    """The analysed cases: measured, their maps and overlays written, their maps dropped once written; `queries`:
    per case, the user's query points on its preprocessed grid."""
    measured = _Measured()
    for case in cases:
        measured.transforms = spatial_transforms(case.image.shape[1:], cfg.transforms, cfg.scales, slice_axis)
        result = measure_case(engine, case, names, cfg.pcm_window, measured.transforms, queries[case.case_id])
        write_maps(case, result, out, names, cfg.cam_method)
        for key, rgb in case_pictures(case, result, names, cfg.cam_method).items():
            measured.pictures[key] = write_png(rgb, out / "overlays" / f"{key}.png")
            measured.rgbs[key] = rgb
        result.drop_maps()
        measured.results.append(result)
        fallback = [n for n, f in zip(names, result.fallback, strict=True) if f]
        note = f"  nothing predicted: {', '.join(fallback)}" if fallback else ""
        case_done(f"{case.case_id}  {result.seconds:.1f} s{note}")
    return measured


def _picture_curves(
    scored: list[CaseResult], names: list[str], thresholds: dict, out: Path, measured: _Measured
) -> None:
    """The scored cases' mean Dice over thresholds, with the chosen thresholds marked (none without scored cases)."""
    curves = mean_curves(scored, names)
    if curves:
        chosen = {f"{n} {k}": t for k, by_class in thresholds.items() for n, t in by_class.items()}
        measured.rgbs["dice_curves"] = render_curves(
            THRESHOLDS, curves, chosen, "Dice of thresholded maps (scored cases)"
        )
        measured.pictures["dice_curves"] = write_png(measured.rgbs["dice_curves"], out / "overlays" / "dice_curves.png")


def _picture_distances(metrics: dict, out: Path, measured: _Measured) -> None:
    """Attention distance by depth, a line per head (none without self-attention)."""
    sites, by_head = distance_table(metrics, sorted({i for r in measured.results for i in r.map_ids}))
    if sites:
        rgb = measured.rgbs[DISTANCE_PICTURE] = render_distance_by_depth(sites, by_head)
        measured.pictures[DISTANCE_PICTURE] = write_png(rgb, out / "overlays" / f"{DISTANCE_PICTURE}.png")


def _details(
    model: ModelBundle,
    cfg: AnalyzeConfig,
    engine: MapEngine,
    measured: _Measured,
    source: str,
    thresholds: dict,
    metrics: dict,
    names: list[str],
) -> dict:
    """analysis.json: the model, the settings, where the thresholds come from, the metrics and per-case numbers."""
    return {
        "model": {"source": model.source, "mlflow_run_id": model.meta.mlflow_run_id},
        "settings": {
            "cam_method": cfg.cam_method,
            "cam_layers": engine.layers,
            "pcm_window": cfg.pcm_window,
            "transforms": [t.name for t in measured.transforms],
            "query_points": [list(p) for p in cfg.query_points],
            "grid": "preprocessed",
            "precision": engine.precision,
            "machine": describe_machine().line(),
        },
        "threshold_source": source,
        "thresholds": thresholds,
        "metrics": metrics,
        "cases": {
            r.case_id: {
                "seconds": round(r.seconds, 2),
                "fallback": dict(zip(names, r.fallback, strict=True)),
                "equivariance": {str(k): v for k, v in r.equivariance.items()},
                "scores": r.scores,
                "query_points": {str(j): list(p) for j, p in r.query_points.items()},
            }
            for r in measured.results
        },
    }


def _split(selected: list[CaseResult], labelled: list[CaseResult]) -> tuple[list, list, str]:
    """(cases choosing thresholds, cases scored, where thresholds come from): never the same cases."""
    if selected:
        ids = ", ".join(r.case_id for r in selected)
        return selected, labelled, f"training fold of the cache: {len(selected)} case(s) ({ids})"
    if len(labelled) >= 2:
        half = len(labelled) // 2
        ids = ", ".join(r.case_id for r in labelled[:half])
        return labelled[:half], labelled[half:], f"first half of the analysed cases ({ids}); the rest are scored"
    return [], labelled, "fixed 0.5: fewer than 2 labelled cases and no selection cases, so none is left to choose on"
