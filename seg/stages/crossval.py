"""Stage `crossval` (the last stage of `crossval/dvc.yaml`): every listed fold's validation predictions (each case
is in exactly one fold's validation part) -> per class mean and sd of Dice and HD95 over all of them, and the
postprocessing decided on them (largest connected component, kept only where it raises mean Dice), written
beside the fold models, where `seg infer --model <crossval.models>` (their ensemble) applies it."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seg.config import Config, load_config
from seg.stages.common import parse, report_errors

STAGE = "crossval"
HELP = "gather the folds' validation predictions: Dice and HD95 per class, and the postprocessing they support"
CODE = 2  # exit status of a user error


@dataclass(frozen=True)
class CrossvalSummary:
    metrics_file: Path
    postprocessing_file: Path
    cases: int
    metrics: dict


def run(cfg: Config) -> CrossvalSummary:
    import numpy as np

    from seg.data.cache import CacheError, Fingerprint
    from seg.data.io import read_image
    from seg.files import read_json, write_json
    from seg.infer.postprocess import FILE, decide

    cv = cfg.crossval
    if not cv.folds:
        raise CacheError("crossval.folds is empty: list the folds to gather in params.yaml (e.g. [0, 1, 2, 3, 4]).")
    models, predictions = Path(cv.models), Path(cv.predictions)
    pairs, spacings, names, ids = [], [], None, []
    for k in cv.folds:
        record = predictions / f"fold_{k}" / "predictions.json"
        if not record.is_file():
            raise CacheError(f"{record}: not found. Run fold {k}'s prediction first (dvc repro crossval/dvc.yaml).")
        done = read_json(record)
        names = names or done["model"]["class_names"]
        fingerprint = Fingerprint.from_dict(read_json(models / f"fold_{k}" / "fingerprint.json"))
        for case_id, case in sorted(done["cases"].items()):
            if case["status"] == "failed" or not case.get("label"):
                raise CacheError(
                    f"{record}: case {case_id} has no prediction or no label ({case.get('error')}); "
                    f"rerun fold {k}'s prediction."
                )
            pred, geometry = read_image(case["outputs"][0])
            ref, _ = read_image(case["label"])
            ref = (ref > 0) if fingerprint.preprocessing.binary_255 else np.rint(ref)
            pairs.append((pred.astype(np.int64), ref.astype(np.int64)))
            spacings.append(geometry.spacing)
            ids.append(case_id)
    classes = list(range(1, len(names)))
    plan = decide(pairs, classes)
    write_json(models / FILE, plan.to_dict())
    before = _per_class(pairs, spacings, names, None)
    after = _per_class(pairs, spacings, names, plan)
    metrics = {
        "folds": list(cv.folds),
        "cases": len(pairs),
        "postprocessing": plan.describe(),
        "classes": after,
        "without_postprocessing": before,
        "dice_mean": _mean([after[n]["dice_mean"] for n in names[1:]]),
        "dice_mean_without_postprocessing": _mean([before[n]["dice_mean"] for n in names[1:]]),
    }
    write_json(cv.metrics_file, metrics)
    return CrossvalSummary(Path(cv.metrics_file), models / FILE, len(pairs), metrics)


def _per_class(pairs, spacings, names: Sequence[str], plan) -> dict:
    """Per class, mean and sd of Dice and HD95 over the cases where each is defined (`seg.metrics`: a case whose
    prediction and reference both lack the class has no Dice); `cases`: all cases scored."""
    import numpy as np

    from seg.infer.case_metrics import case_metrics

    per = {n: {"dice": [], "hd95": []} for n in names[1:]}
    for (pred, ref), spacing in zip(pairs, spacings, strict=True):
        scores = case_metrics(plan.apply(pred) if plan else pred, ref, spacing, names)
        for n in names[1:]:
            for key in ("dice", "hd95"):
                if scores[n][key] is not None:
                    per[n][key].append(scores[n][key])
    out = {}
    for n, v in per.items():
        out[n] = {
            "dice_mean": _mean(v["dice"]),
            "dice_sd": float(np.std(v["dice"])) if v["dice"] else None,
            "hd95_mean": _mean(v["hd95"]),
            "hd95_sd": float(np.std(v["hd95"])) if v["hd95"] else None,
            "cases": len(pairs),
        }
    return out


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(sum(values) / len(values)) if values else None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="params.yaml", help="YAML config; its crossval section (default: params.yaml)")


def main(args: argparse.Namespace) -> int:
    summary = run(load_config(args.config))
    m = summary.metrics
    print(
        f"{summary.cases} cross-validation cases over folds {m['folds']}: mean Dice "
        f"{m['dice_mean_without_postprocessing']:.4f} -> {m['dice_mean']:.4f} with {m['postprocessing']}"
    )
    for name, c in m["classes"].items():
        hd = f", HD95 {c['hd95_mean']:.2f} +- {c['hd95_sd']:.2f} mm" if c["hd95_mean"] is not None else ""
        print(f"  {name}: Dice {c['dice_mean']:.4f} +- {c['dice_sd']:.4f}{hd}")
    print(f"-> {summary.metrics_file}, {summary.postprocessing_file}")
    return 0


def command(argv: Sequence[str] | None = None) -> int:
    """`pipelines/crossval.py` (the DVC stage) and `seg crossval`: parse, run, report user errors in one line."""
    return report_errors(sys.modules[__name__], parse(add_arguments, STAGE, argv))
