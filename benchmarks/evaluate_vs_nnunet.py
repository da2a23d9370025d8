"""`seg evaluate` against nnU-Net's own `nnUNetv2_evaluate_folder` on the same predictions: per case and class Dice
from both, their largest difference, and whether they agree to 1e-4 (nnunetv2 2.8.1, in its own environment:
`make nnunet-env`).

nnU-Net's evaluator reads the labels and file ending from a dataset.json and its label manager from a plans.json.
Pass nnU-Net's own (`--dataset-json`, `--plans`, as benchmarks/vs_nnunet.py does after planning); otherwise this
script writes a dataset.json with the classes given and an empty plans.json (the evaluator then uses its default
LabelManager, what nnU-Net's planner writes for label maps without regions).

Run:  python benchmarks/evaluate_vs_nnunet.py PRED LABELS [--classes 1=Anterior 2=Posterior]
      [--nnunet-bin .venv-nnunet/bin] [--dataset-json F --plans F] [--threads 2]
PRED and LABELS: folders of .nii.gz label maps named by case id (`seg infer` writes them so).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4
SUFFIX = ".nii.gz"


def seg_dice(pred: Path, labels: Path, out: Path, classes: list[str]) -> dict[tuple[str, int], float]:
    """{(case, class value): Dice} from `seg evaluate`."""
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "seg.cli",
            "evaluate",
            str(pred),
            str(labels),
            "--output",
            str(out),
            "--classes",
            *classes,
        ],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:  # seg evaluate names each failed case in one line: pass those on, not a traceback
        raise SystemExit(f"seg evaluate {pred} {labels} failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    with open(out / "evaluation.csv") as f:
        return {(r["case"], int(r["value"])): float(r["dice"]) for r in csv.DictReader(f)}


def nnunet_dice(
    pred: Path,
    labels: Path,
    out: Path,
    classes: list[str],
    bin_dir: Path,
    threads: int,
    dataset_json: Path | None = None,
    plans: Path | None = None,
) -> dict[tuple[str, int], float]:
    """{(case, class value): Dice} from `nnUNetv2_evaluate_folder LABELS PRED`."""
    out.mkdir(parents=True, exist_ok=True)
    if dataset_json is None:
        names = {"background": 0, **{c.split("=", 1)[1]: int(c.split("=", 1)[0]) for c in classes}}
        dataset_json = out / "dataset.json"
        dataset_json.write_text(json.dumps({"labels": names, "file_ending": SUFFIX, "channel_names": {"0": "image"}}))
    if plans is None:
        plans = out / "plans.json"
        plans.write_text("{}")
    summary = out / "summary.json"
    res = subprocess.run(
        [
            str(bin_dir / "nnUNetv2_evaluate_folder"),
            str(labels),
            str(pred),
            "-djfile",
            str(dataset_json),
            "-pfile",
            str(plans),
            "-o",
            str(summary),
            "-np",
            str(threads),
        ],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise SystemExit(f"nnUNetv2_evaluate_folder failed:\n{res.stdout[-2000:]}{res.stderr[-3000:]}")
    cases = json.loads(summary.read_text())["metric_per_case"]
    return {
        (Path(c["prediction_file"]).name[: -len(SUFFIX)], int(k)): float(m["Dice"])
        for c in cases
        for k, m in c["metrics"].items()
    }


def agreement(
    pred: Path,
    labels: Path,
    classes: list[str],
    bin_dir: Path,
    work: Path,
    threads: int = 2,
    dataset_json: Path | None = None,
    plans: Path | None = None,
) -> dict:
    """Both evaluators on the same folders: per class the mean Dice of each and the largest |difference| over cases
    (NaN, a class in neither map, must be NaN in both)."""
    refs = work / "labels"  # the predicted cases' references, linked: nnU-Net wants a prediction for every one
    refs.mkdir(parents=True, exist_ok=True)
    for f in sorted(pred.glob(f"*{SUFFIX}")):
        if not (labels / f.name).is_file():
            raise SystemExit(f"{f}: no reference {labels / f.name}; LABELS must hold a label map per prediction.")
        (refs / f.name).unlink(missing_ok=True)
        (refs / f.name).symlink_to((labels / f.name).resolve())
    ours = seg_dice(pred, refs, work / "seg", classes)
    theirs = nnunet_dice(pred, refs, work / "nnunet", classes, bin_dir, threads, dataset_json, plans)
    if set(ours) != set(theirs):
        raise SystemExit(
            f"the evaluators scored different cases or classes: only seg {sorted(set(ours) - set(theirs))[:5]}, "
            f"only nnU-Net {sorted(set(theirs) - set(ours))[:5]}"
        )
    out = {}
    for c in classes:
        value = int(c.split("=", 1)[0])
        keys = [k for k in ours if k[1] == value]
        diffs = [0.0 if math.isnan(ours[k]) and math.isnan(theirs[k]) else abs(ours[k] - theirs[k]) for k in keys]
        out[c.split("=", 1)[1]] = {
            "cases": len(keys),
            "seg": _nanmean([ours[k] for k in keys]),
            "nnunet": _nanmean([theirs[k] for k in keys]),
            "max_abs_diff": max(diffs),
        }
    out["agree"] = all(
        not math.isnan(r["max_abs_diff"]) and r["max_abs_diff"] <= TOLERANCE
        for r in out.values()
        if isinstance(r, dict)
    )
    return out


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def print_agreement(title: str, res: dict) -> None:
    print(f"{title}: seg evaluate vs nnUNetv2_evaluate_folder, per case Dice")
    for name, r in res.items():
        if isinstance(r, dict):
            print(
                f"  {name:12s} {r['cases']:4d} cases  mean Dice seg {r['seg']:.6f}  nnU-Net {r['nnunet']:.6f}  "
                f"max |diff| {r['max_abs_diff']:.2e}"
            )
    print(f"  agree to {TOLERANCE:g}: {'yes' if res['agree'] else 'NO'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pred")
    p.add_argument("labels")
    p.add_argument("--classes", nargs="+", default=["1=Anterior", "2=Posterior"])
    p.add_argument("--nnunet-bin", default=str(REPO / ".venv-nnunet" / "bin"))
    p.add_argument("--dataset-json", default=None)
    p.add_argument("--plans", default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    bin_dir = Path(args.nnunet_bin)
    if not (bin_dir / "nnUNetv2_evaluate_folder").is_file():
        raise SystemExit(f"{bin_dir}: no nnUNetv2_evaluate_folder. Run `make nnunet-env` or pass --nnunet-bin.")
    with tempfile.TemporaryDirectory() as tmp:
        res = agreement(
            Path(args.pred),
            Path(args.labels),
            args.classes,
            bin_dir,
            Path(tmp),
            args.threads,
            args.dataset_json and Path(args.dataset_json),
            args.plans and Path(args.plans),
        )
    print_agreement(Path(args.pred).name, res)
    sys.exit(0 if res["agree"] else 1)


if __name__ == "__main__":
    main()
