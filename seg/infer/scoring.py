"""Scoring a folder of label maps against reference label maps: per case and class Dice, HD95, normalised surface
Dice at a tolerance and volumes, in each file's own grid and spacing (`seg evaluate`).

Conventions (`seg.metrics`: nnU-Net's `compute_metrics` for Dice, MONAI's for the distances):
- Dice = 2TP / (2TP + FP + FN); NaN when a class is in neither map. A class's mean over cases ignores NaN, the
  mean over classes is the plain mean of the class means (nnU-Net's `foreground_mean`).
- HD95 (mm) is NaN when either map lacks the class; surface Dice is NaN when both lack it and 0 when one does.
  Means ignore NaN; each statistic carries `n`, the cases it is over.
- Classes: the nonzero values found in any prediction or reference (or the `classes` given); a class a case
  lacks in both maps scores NaN there. 0/255 masks (PNG) mean 0/1.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seg.data.errors import DataError
from seg.data.geometry import grid_mismatch, spacing_from_affine
from seg.data.io import strip_suffix
from seg.files import write_json, write_text
from seg.infer.label_maps import Pair, find_pairs, read_label_map
from seg.metrics import class_metrics, nanmean

METRICS = ("dice", "hd95", "surface_dice")  # averaged per class and over classes
COLUMNS = (
    "case",
    "class",
    "value",
    "dice",
    "hd95",
    "surface_dice",
    "volume_pred",
    "volume_ref",
    "tp",
    "fp",
    "fn",
    "prediction",
    "reference",
)


@dataclass(frozen=True)
class CaseScore:
    case_id: str
    prediction: str
    reference: str
    metrics: dict[str, dict]  # class name -> {value, dice, hd95, surface_dice, volume_pred, volume_ref, tp, fp, fn}

    def mean(self) -> dict[str, float]:
        """Per metric, the mean over this case's classes where it is defined (NaN where it is nowhere)."""
        return {m: nanmean([c[m] for c in self.metrics.values()]) for m in METRICS}


@dataclass(frozen=True)
class CaseFailure:
    case_id: str
    prediction: str
    error: str  # one line, naming the file


@dataclass
class Evaluation:
    classes: dict[int, str]  # label value -> name
    tolerance: float  # mm, of the surface Dice
    scores: list[CaseScore] = field(default_factory=list)
    failures: list[CaseFailure] = field(default_factory=list)
    unpaired_labels: list[str] = field(default_factory=list)  # references no prediction claims (not scored)

    def per_class(self) -> dict[str, dict]:
        """{class: {metric: {mean, sd, n}}}: NaN values are left out; sd is the sample sd (NaN below 2 cases)."""
        out = {}
        for name in self.classes.values():
            stats = {}
            for m in (*METRICS, "volume_pred", "volume_ref"):
                stats[m] = _stats([s.metrics[name][m] for s in self.scores])
            out[name] = stats
        return out

    def mean(self) -> dict[str, float]:
        """Per metric, the mean over classes of the class means (nnU-Net's foreground mean: NaN if one is NaN)."""
        per_class = self.per_class()
        return {
            m: float(np.mean([per_class[c][m]["mean"] for c in per_class])) if per_class else math.nan for m in METRICS
        }


def score_pair(
    pair: Pair, tolerance: float, classes: Mapping[int, str] | None = None, binary_255: bool | None = None
) -> CaseScore:
    """One case's metrics for `classes` (default: the values present in either map); a missing reference, an
    unreadable file or different grids raise a one-line DataError naming the file."""
    if pair.reference is None:
        raise DataError(
            f"{pair.prediction}: no reference label map for case {pair.case_id!r} "
            f"(expected {pair.case_id}<ext> in the labels folder). Add it or remove the prediction."
        )
    keep = frozenset(classes or ())
    pred, pred_geometry = read_label_map(pair.prediction, binary_255, keep)
    ref, ref_geometry = read_label_map(pair.reference, binary_255, keep)
    mismatch = grid_mismatch(f"{pair.prediction} (against {pair.reference})", pred_geometry, ref_geometry)
    if mismatch:
        raise DataError(mismatch)
    spacing = spacing_from_affine(ref_geometry.affine_array())
    if classes is None:
        found = sorted((set(np.unique(pred).tolist()) | set(np.unique(ref).tolist())) - {0})
        classes = {v: str(v) for v in found}
    metrics = {}
    for value, name in classes.items():
        metrics[name] = {"value": value, **class_metrics(pred == value, ref == value, spacing, tolerance)}
    return CaseScore(pair.case_id, pair.prediction, pair.reference, metrics)


def evaluate(
    pairs: Sequence[Pair],
    tolerance: float = 1.0,
    classes: Mapping[int, str] | None = None,
    binary_255: bool | None = None,
    on_case: Callable[[CaseScore | CaseFailure], None] | None = None,
) -> Evaluation:
    """Score every pair; a case that cannot be scored becomes a CaseFailure and the batch goes on. Without
    `classes`, every case is reported on the union of the values found (absent in both maps: NaN)."""
    if not math.isfinite(tolerance) or tolerance < 0:
        raise DataError(f"--tolerance must be a finite number of mm >= 0, got {tolerance}.")
    scores: list[CaseScore] = []
    failures: list[CaseFailure] = []
    for pair in pairs:
        try:
            result: CaseScore | CaseFailure = score_pair(pair, tolerance, classes, binary_255)
            scores.append(result)
        except DataError as e:  # one bad file never stops the batch; a bug in seg keeps its traceback
            result = CaseFailure(pair.case_id, pair.prediction, _one_line(e, pair))
            failures.append(result)
        if on_case:
            on_case(result)
    if classes is None:
        found = sorted({m["value"] for s in scores for m in s.metrics.values()})
        classes = {v: str(v) for v in found}
        scores = [_with_classes(s, classes) for s in scores]
    return Evaluation(dict(classes), tolerance, scores, failures)


def evaluate_folder(
    predictions: str,
    labels: str,
    out_dir: str | Path,
    tolerance: float = 1.0,
    classes: Mapping[int, str] | None = None,
    binary_255: bool | None = None,
    all_labels: bool = False,
    on_case: Callable[[CaseScore | CaseFailure], None] | None = None,
) -> tuple[Evaluation, Path]:
    """Pair, score and write (`evaluation.csv`, `evaluation.json` in `out_dir`); returns (the evaluation, the JSON's
    path). all_labels: a reference without a prediction is a failed case too (else it is listed, not scored)."""
    pairs, unpaired = find_pairs(predictions, labels)
    ev = evaluate(pairs, tolerance, classes, binary_255, on_case)
    if all_labels:
        for ref in unpaired:
            failure = CaseFailure(
                strip_suffix(ref),
                "",
                f"{ref}: no prediction for this reference in {predictions}. "
                f"Predict the case or leave out --all-labels.",
            )
            ev.failures.append(failure)
            if on_case:
                on_case(failure)
    else:
        ev.unpaired_labels = unpaired
    _, json_path = write_evaluation(ev, out_dir)
    return ev, json_path


def write_evaluation(ev: Evaluation, out_dir: str | Path) -> tuple[Path, Path]:
    """`evaluation.csv` (a row per case and class) and `evaluation.json` (per case, per class mean/sd/n, the mean
    over classes, failures), each written atomically. JSON has no NaN: undefined values are null."""
    out = Path(out_dir)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for s in ev.scores:
        for name, m in s.metrics.items():
            row = {"case": s.case_id, "class": name, "prediction": s.prediction, "reference": s.reference, **m}
            writer.writerow([_csv_value(row[c]) for c in COLUMNS])
    csv_path = write_text(out / "evaluation.csv", buf.getvalue())
    data = {
        "tolerance_mm": ev.tolerance,
        "classes": {name: value for value, name in ev.classes.items()},
        "cases": len(ev.scores) + len(ev.failures),
        "scored": len(ev.scores),
        "mean": ev.mean(),
        "per_class": ev.per_class(),
        "per_case": [
            {
                "case": s.case_id,
                "prediction": s.prediction,
                "reference": s.reference,
                "mean": s.mean(),
                "metrics": s.metrics,
            }
            for s in ev.scores
        ],
        "failed": [{"case": f.case_id, "prediction": f.prediction, "error": f.error} for f in ev.failures],
        "unpaired_labels": ev.unpaired_labels,
        "conventions": "Dice 2TP/(2TP+FP+FN), NaN when a class is in neither map (nnU-Net); HD95 NaN when either "
        "lacks it; surface Dice NaN when both lack it, 0 when one does; means leave NaN out; "
        "the mean is over classes of the class means",
    }
    json_path = write_json(out / "evaluation.json", _no_nan(data))
    return csv_path, json_path


def _with_classes(score: CaseScore, classes: Mapping[int, str]) -> CaseScore:
    """The case on every class of the batch: a class in neither map scores NaN with zero volumes."""
    by_value = {m["value"]: m for m in score.metrics.values()}
    empty = {
        "tp": 0,
        "fp": 0,
        "fn": 0,
        "dice": math.nan,
        "hd95": math.nan,
        "volume_pred": 0.0,
        "volume_ref": 0.0,
        "surface_dice": math.nan,
    }
    metrics = {name: by_value.get(v, {"value": v, **empty}) for v, name in classes.items()}
    return CaseScore(score.case_id, score.prediction, score.reference, metrics)


def _one_line(e: BaseException, pair: Pair) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, DataError):
        return text  # names the file, the problem and the fix
    return f"{pair.prediction}: {type(e).__name__}: {text[:300]}"


def _stats(values: Sequence[float]) -> dict:
    kept = [float(v) for v in values if not math.isnan(v)]
    return {
        "mean": float(np.mean(kept)) if kept else math.nan,
        "sd": float(np.std(kept, ddof=1)) if len(kept) > 1 else math.nan,
        "n": len(kept),
    }


def _csv_value(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return str(v)


def _no_nan(obj):
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_no_nan(v) for v in obj]
    return obj
