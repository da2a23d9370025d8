"""The `preprocess` stage: validate and fingerprint a dataset, then write the preprocessed cache.

Two passes over the cases, each in worker processes: (1) read, validate and measure every case (cached per case
in `analysis/`), (2) preprocess the valid ones with the plan fixed by the fingerprint (cached in `cases/`, skipped
on reruns when inputs and plan are unchanged). `preprocess_image` applies the same plan to a new image.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from seg.config import DataConfig
from seg.data.cache import Cache, Fingerprint, PreprocessingPlan
from seg.data.errors import DataError, EmptyImageError
from seg.data.fingerprint import (
    FINGERPRINT_VERSION,
    analyze_case,
    build_fingerprint,
    declared_spatial_dims,
    expectations_for,
    file_signature,
    uses_binary_255,
)
from seg.data.io import read_image, strip_suffix
from seg.data.layout import CHANNEL_FILE, Case, Dataset, find_dataset
from seg.data.parallel import map_cases
from seg.data.properties import CaseProperties
from seg.data.splits import make_splits
from seg.data.steps import apply_steps
from seg.data.validate import CaseData, Expectations, read_case
from seg.files import read_json, stable_hash, write_json, write_npz


@dataclass(frozen=True)
class PreprocessResult:
    """Where the cache is and what happened; every path is inside `out_dir`."""

    out_dir: Path
    cases_dir: Path
    fingerprint: Path
    splits: Path
    report: Path
    dataset_json: Path
    num_cases: int  # found in the dataset
    num_valid: int  # preprocessed (or already up to date)
    num_skipped: int  # invalid, listed with their problems in report.json
    num_reused: int  # up to date from an earlier run
    seconds: float


def _case_id_of(path: Path) -> str:
    stem = strip_suffix(path)
    m = CHANNEL_FILE.match(stem)
    return m["case"] if m else stem


def preprocess_image(
    image_paths: str | Path | Sequence[str | Path],
    fingerprint: Fingerprint | PreprocessingPlan | str | Path,
    timings: dict[str, float] | None = None,
) -> tuple[np.ndarray, CaseProperties]:
    """Preprocess a new image (its channel files, in order) exactly as the training cases were.

    fingerprint: the dataset's Fingerprint, its plan or the path of `fingerprint.json`. Returns (C, *spatial)
    float32 and the properties that `restore_to_original` needs. Raises DataError (one line: file, problem, fix)
    for an unusable image, and EmptyImageError (a DataError that carries the file's geometry) for an all-zero one.
    `timings`: receives the seconds spent reading ("read") and preprocessing ("preprocess").
    """
    if isinstance(fingerprint, str | Path):
        fingerprint = Fingerprint.from_dict(read_json(fingerprint), str(fingerprint))
    plan = fingerprint.preprocessing if isinstance(fingerprint, Fingerprint) else fingerprint
    paths = [Path(image_paths)] if isinstance(image_paths, str | Path) else [Path(p) for p in image_paths]
    exp = Expectations(plan.spatial_dims, plan.num_channels, None, plan.color, True, allow_empty_image=True)
    start = time.perf_counter()
    data = read_case(paths, None, exp, need_label=False)
    read = time.perf_counter()
    if data.problems:
        more = f" (+{len(data.problems) - 1} more problem(s))" if len(data.problems) > 1 else ""
        raise DataError(data.problems[0] + more)
    if data.empty:
        raise EmptyImageError(f"{paths[0]}: image is all zero; nothing to segment.", data.geometry)
    image, _, props = apply_steps(  # the read image is handed over, so it goes once it is normalised
        _take_image(data), None, data.geometry, data.reorientation, plan, _case_id_of(paths[0]), [str(p) for p in paths]
    )
    if timings is not None:
        timings["read"] = round(read - start, 4)
        timings["preprocess"] = round(time.perf_counter() - read, 4)
    return image, props


def _take_image(data: CaseData) -> np.ndarray:
    image, data.image = data.image, None
    return image


# ---------------------------------------------------------------------------------------------- workers


def _analyze_worker(args: tuple[Case, Expectations, bool, list[str], str]) -> tuple[dict[str, Any], np.ndarray]:
    case, exp, binary_255, problems, cache = args
    key = stable_hash(
        [FINGERPRINT_VERSION, file_signature([*case.images, case.label]), asdict(exp), binary_255, problems]
    )
    path = Path(cache) / f"{case.case_id}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("key") == key:
                    return meta["summary"], z["samples"]
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache entry: recompute it
    summary, samples = analyze_case(case, exp, binary_255, problems)
    write_npz(path, samples=samples, meta=np.array(json.dumps({"key": key, "summary": summary})))
    return summary, samples


def _preprocess_worker(args: tuple[Case, Expectations, bool, PreprocessingPlan, str]) -> dict[str, Any]:
    case, exp, binary_255, plan, out = args
    cache = Cache(out)
    signature = file_signature([*case.images, case.label])
    key = stable_hash([FINGERPRINT_VERSION, signature, plan.to_dict(), asdict(exp), binary_255])
    if cache.cached_key(case.case_id) == key:
        shape = cache.properties(case.case_id).resampled_shape
        return {"case_id": case.case_id, "status": "reused", "shape": [len(plan.normalization), *shape]}
    data = read_case(case.images, case.label, exp, binary_255)
    if data.problems:  # the files changed since the analysis pass
        return {"case_id": case.case_id, "status": "skipped", "problems": data.problems}
    image, label, props = apply_steps(
        data.image,
        data.label,
        data.geometry,
        data.reorientation,
        plan,
        case.case_id,
        [str(p) for p in case.images],
        str(case.label) if case.label else None,
    )
    cache.write_case(image, label, replace(props, cache_key=key))
    return {"case_id": case.case_id, "status": "preprocessed", "shape": list(image.shape)}


# ---------------------------------------------------------------------------------------------- the stage


def _resolve_root(cfg: DataConfig) -> Path:
    if cfg.root is not None:
        return Path(cfg.root)
    from seg.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(cfg.synthetic_dir, cfg.spatial_dims or 3, cfg.synthetic_cases, cfg.seed)


def preprocess_dataset(cfg: DataConfig, out_dir: str | Path | None = None, progress: bool = True) -> PreprocessResult:
    """Validate, fingerprint and preprocess the dataset of `cfg` into `out_dir` (default `cfg.cache_dir`).

    With `cfg.root` None, the embedded synthetic dataset is generated in `cfg.synthetic_dir` first.
    Invalid cases are skipped and listed in report.json; raises DataError when none is valid, or on any invalid
    case when `cfg.strict`.
    """
    start = time.perf_counter()
    out = Path(out_dir if out_dir is not None else cfg.cache_dir)
    report_path = out / "report.json"
    dataset = find_dataset(_resolve_root(cfg), cfg.layout)
    exp = expectations_for(dataset, cfg, _spatial_dims(dataset, cfg))
    binary_255 = uses_binary_255(dataset)
    analyses, samples = _analyze_cases(dataset, exp, binary_255, out / "analysis", cfg.num_workers, progress)
    report = _analysis_report(dataset, analyses)
    _stop_unless_usable(dataset, analyses, report, report_path, cfg.strict)
    cache = Cache(out)
    fingerprint = build_fingerprint(dataset, cfg, exp, analyses, samples)
    cache.write_fingerprint(fingerprint)
    valid_cases = [c for c, a in zip(dataset.cases, analyses, strict=True) if not a["problems"]]
    jobs = [(c, exp, binary_255, fingerprint.preprocessing, str(out)) for c in valid_cases]
    done = map_cases(_preprocess_worker, jobs, cfg.num_workers, "preprocess", progress)
    valid_ids = _record_preprocessing(report, done)
    if not valid_ids:
        write_json(report_path, report)
        raise DataError(f"{dataset.root}: every case failed preprocessing; problems are listed in {report_path}.")
    cache.remove_cases_except(set(valid_ids))
    shapes = np.array([d["shape"][1:] for d in done if d["status"] != "skipped"])
    median = tuple(float(v) for v in np.median(shapes, axis=0))
    fingerprint = replace(fingerprint, median_shape_after_preprocessing=median)
    cache.write_fingerprint(fingerprint)
    splits_path = cache.write_splits(make_splits(valid_ids, cfg.folds, cfg.seed, cfg.test_fraction))
    dataset_json = _write_dataset_json(out, dataset, fingerprint, len(valid_ids))
    write_json(report_path, report)
    return PreprocessResult(
        out_dir=out,
        cases_dir=out / "cases",
        fingerprint=out / "fingerprint.json",
        splits=splits_path,
        report=report_path,
        dataset_json=dataset_json,
        num_cases=len(analyses),
        num_valid=len(valid_ids),
        num_skipped=len(report["skipped"]),
        num_reused=sum(d["status"] == "reused" for d in done),
        seconds=time.perf_counter() - start,
    )


def _spatial_dims(dataset: Dataset, cfg: DataConfig) -> int | None:
    """As declared (config or dataset.json); else the first readable case decides, and the others must agree."""
    spatial_dims = declared_spatial_dims(dataset, cfg)
    if spatial_dims is not None:
        return spatial_dims
    for case in dataset.cases:
        try:
            return read_image(case.images[0])[1].spatial_dims
        except DataError:
            continue
    return None


def _analyze_cases(
    dataset: Dataset, exp: Expectations, binary_255: bool, cache_dir: Path, num_workers: int, progress: bool
) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Read, validate and measure every case (in worker processes): its summary and foreground samples."""
    jobs = [(c, exp, binary_255, dataset.problems.get(c.case_id, []), str(cache_dir)) for c in dataset.cases]
    results = map_cases(_analyze_worker, jobs, num_workers, "fingerprint", progress)
    return [r[0] for r in results], [r[1] for r in results]


def _analysis_report(dataset: Dataset, analyses: list[dict[str, Any]]) -> dict[str, Any]:
    """report.json after the analysis pass: every case ok or skipped, with its problems."""
    invalid = [a for a in analyses if a["problems"]]
    return {
        "dataset": dataset.name,
        "root": str(dataset.root),
        "num_cases": len(analyses),
        "num_valid": len(analyses) - len(invalid),
        "skipped": [a["case_id"] for a in invalid],
        "problems": [p for a in invalid for p in a["problems"]],
        "cases": {
            a["case_id"]: {"status": "skipped" if a["problems"] else "ok", "problems": a["problems"]} for a in analyses
        },
    }


def _stop_unless_usable(
    dataset: Dataset, analyses: list[dict[str, Any]], report: dict[str, Any], report_path: Path, strict: bool
) -> None:
    """Write the report and raise when no case is valid, or any is not and `data.strict` is set."""
    invalid = [a for a in analyses if a["problems"]]
    if len(invalid) == len(analyses) or (strict and invalid):
        write_json(report_path, report)
        why = "no valid case remains" if len(invalid) == len(analyses) else "data.strict is set"
        raise DataError(
            f"{dataset.root}: {len(invalid)} of {len(analyses)} case(s) invalid and {why}; first problem: "
            f"{invalid[0]['problems'][0]} (all listed in {report_path})."
        )


def _record_preprocessing(report: dict[str, Any], done: list[dict[str, Any]]) -> list[str]:
    """Add the preprocessing pass to the report (a case whose files changed since the analysis is skipped now);
    the ids of the cases in the cache, sorted."""
    for d in done:
        report["cases"][d["case_id"]].update({k: v for k, v in d.items() if k != "case_id"})
        if d["status"] == "skipped":
            report["skipped"].append(d["case_id"])
            report["problems"].extend(d["problems"])
    valid_ids = sorted(d["case_id"] for d in done if d["status"] != "skipped")
    report["num_valid"] = len(valid_ids)
    return valid_ids


def _write_dataset_json(out: Path, dataset: Dataset, fingerprint: Fingerprint, num_training: int) -> Path:
    """The cache's dataset.json: the source dataset's description, with the labels and cases the cache holds."""
    return write_json(
        out / "dataset.json",
        {
            "name": dataset.name,
            "root": str(dataset.root),
            "layout": dataset.layout,
            "labels": dict(fingerprint.labels),
            "modality": dataset.modality,
            "tensorImageSize": dataset.tensor_image_size,
            "numTraining": num_training,
            "source": dataset.raw_json,
        },
    )
