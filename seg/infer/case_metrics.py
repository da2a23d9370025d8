"""Per-case agreement with a reference label map, in the original voxel grid and spacing, as `seg infer --labels`
and `seg crossval` record it: Dice, HD95 (mm) and volumes (mm^3, or pixel area for 2D) per foreground class, and
the means over cases, and the batch's metrics files. Values and conventions are `seg.metrics`'; an undefined value
is None here (JSON null)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seg.infer.records import EXISTS, OK, CaseRecord
from seg.metrics import class_metrics, nanmean

KEYS = ("dice", "hd95", "volume_pred", "volume_ref")


def case_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], class_names: Sequence[str]) -> dict:
    """{class name: {dice, hd95, volume_pred, volume_ref}} for every foreground class. Dice is None when the class
    is in neither map, HD95 when either lacks it."""
    if pred.shape != ref.shape:
        raise ValueError(f"label map of shape {ref.shape} does not match the prediction's {pred.shape}")
    out = {}
    for k, name in enumerate(class_names[1:], start=1):
        m = class_metrics(pred == k, ref == k, spacing)
        out[name] = {key: _defined(m[key]) for key in KEYS}
    return out


def summarize_metrics(per_case: dict[str, dict], class_names: Sequence[str]) -> dict:
    """Means over the cases where each is defined: dice_<class>, hd95_<class>, and dice_mean, the mean of the
    class means (None where no case defines it)."""
    summary: dict[str, float | int | None] = {"cases": len(per_case)}
    means = []
    for name in class_names[1:]:
        for key in ("dice", "hd95"):
            summary[f"{key}_{name}"] = _defined(nanmean([m[name][key] for m in per_case.values() if name in m]))
        means.append(summary[f"dice_{name}"])
    summary["dice_mean"] = _defined(nanmean(means))
    return summary


def metrics_rows(per_case: dict[str, dict]) -> list[dict]:
    return [
        {"case": case, "class": name, **values} for case, m in sorted(per_case.items()) for name, values in m.items()
    ]


def _defined(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def write_metrics(
    out_dir: Path, records: list[CaseRecord], class_names: list[str], metrics_file: str | None
) -> dict | None:
    """metrics.json and metrics.csv in `out_dir` (and the DVC summary `metrics_file`) from the cases' metrics; their
    summary, or None when no case was scored."""
    import csv
    import io

    from seg.files import write_bytes, write_json

    per_case = {r.case: r.metrics for r in records if r.metrics}
    if not per_case:
        return None
    summary = summarize_metrics(per_case, class_names)
    write_json(out_dir / "metrics.json", {"summary": summary, "cases": per_case})
    rows = metrics_rows(per_case)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(out_dir / "metrics.csv", buf.getvalue().encode())
    if metrics_file:
        ok = sum(r.status in (OK, EXISTS) for r in records)
        write_json(metrics_file, {**summary, "cases_ok": ok, "cases_failed": len(records) - ok})
    return summary
