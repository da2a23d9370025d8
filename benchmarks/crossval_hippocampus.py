"""nnU-Net's workflow with seg's own commands on Task04_Hippocampus: a test part no fold sees, 5 fold models trained
for the same wall-clock budget each, their cross-validation predictions gathered (`seg crossval`: Dice/HD95 and the
largest-component postprocessing decided on them), and the test part predicted by the 5-fold ensemble with that
postprocessing. Prints the machine, per-class Dice on the test part for the ensemble (and, with --singles, for each
fold model alone, without postprocessing), and the cross-validation figures, in one run.

Split: `data.test_fraction` 0.2 (seed 0) of the labelled cases is the test part; the other 80% is split into 5 folds.
Each fold model trains on 4 folds for --minutes (the project defaults, no validation while training, the last
weights: validation would only choose a checkpoint) and predicts its own fold (mirroring TTA as `seg infer` does by
default; --no-tta turns it off everywhere). The commands are those of crossval/dvc.yaml, run directly.

Run:  python benchmarks/crossval_hippocampus.py [--data ../shared/data/Task04_Hippocampus] [--minutes 10]
      [--folds 0 1 2 3 4] [--threads 2] [--singles] [--no-tta] [--keep DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from train_hippocampus import DEFAULT_DATA, run  # benchmarks/, first on sys.path when this file runs as a script

REPO = Path(__file__).resolve().parents[1]


def seg(*args: str) -> str:
    return run([sys.executable, "-m", "seg.cli", *map(str, args)])


def write_params(work: Path, data: Path, minutes: float, threads: int, folds: list[int], tta: bool) -> Path:
    import yaml

    cfg = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg["data"].update(
        {"root": str(data), "cache_dir": str(work / "cache"), "folds": 5, "seed": 0, "test_fraction": 0.2}
    )
    cfg["train"].update(
        {
            "max_time_minutes": minutes,
            "val_every": 100000,
            "num_threads": threads,
            "registered_model": None,
            "gate_images": False,
            "tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
        }
    )
    cfg["infer"].update({"tta": tta, "num_threads": threads})
    cfg["crossval"] = {
        "folds": folds,
        "models": str(work / "models"),
        "predictions": str(work / "crossval"),
        "metrics_file": str(work / "metrics" / "crossval.json"),
    }
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(cfg))
    return params


def test_dice(work: Path, model: Path, name: str) -> dict:
    """Predict the test part with `model` (a fold folder, or the folder of folds: their ensemble)."""
    out = work / "test" / name
    seg(
        "infer",
        "--config",
        work / "params.yaml",
        "--model",
        model,
        "--fold",
        "all",
        "--output",
        out,
        "--metrics-file",
        work / "metrics" / f"test_{name}.json",
    )
    summary = json.loads((out / "metrics.json").read_text())["summary"]
    return {"dice": {k[5:].lower(): v for k, v in summary.items() if k.startswith("dice_")}, "cases": summary["cases"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--minutes", type=float, default=10.0, help="training budget of each fold model")
    p.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4], choices=range(5))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--singles", action="store_true", help="also score each fold model alone on the test part")
    p.add_argument("--no-tta", dest="tta", action="store_false", help="no mirroring TTA (default: on, as seg infer)")
    p.add_argument("--keep", default=None, help="keep the work folder here (rerunning reuses finished folds)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    data = Path(args.data)
    if not data.is_dir():
        raise SystemExit(f"{data}: dataset not found. Pass --data /path/to/Task04_Hippocampus.")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        params = write_params(work, data, args.minutes, args.threads, args.folds, args.tta)
        if not (work / "cache" / "fingerprint.json").is_file():
            seg("preprocess", "--config", params)
        folds, start = {}, time.perf_counter()
        for k in args.folds:
            model = work / "models" / f"fold_{k}"
            if not (model / "weights.pt").is_file():
                seg(
                    "train",
                    "--config",
                    params,
                    "--set",
                    f"data.fold={k}",
                    "--set",
                    f"train.model_dir={model}",
                    "--set",
                    f"train.output_dir={work / 'train' / f'fold_{k}'}",
                    "--set",
                    f"train.metrics_dir={work / 'metrics' / f'fold_{k}'}",
                )
            train = json.loads((work / "metrics" / f"fold_{k}" / "train.json").read_text())
            seg(
                "infer",
                "--config",
                params,
                "--model",
                model,
                "--fold",
                k,
                "--output",
                work / "crossval" / f"fold_{k}",
                "--metrics-file",
                work / "metrics" / f"fold_{k}" / "infer.json",
            )
            folds[k] = {"epochs": train["epochs"], "samples_per_s": train.get("samples_per_s", 0.0)}
            print(
                f"fold {k}: {train['epochs']} epochs, {folds[k]['samples_per_s']:.2f} samples/s "
                f"({time.perf_counter() - start:.0f} s so far)",
                flush=True,
            )
        print(seg("crossval", "--config", params), flush=True)
        crossval = json.loads((work / "metrics" / "crossval.json").read_text())
        results = {"ensemble": test_dice(work, work / "models", "ensemble")}
        if args.singles:
            for k in args.folds:
                results[f"fold {k} alone"] = test_dice(work, work / "models" / f"fold_{k}", f"fold_{k}")
        if args.json:
            Path(args.json).write_text(json.dumps({"folds": folds, "crossval": crossval, "test": results}, indent=1))
    from seg.runtime import describe_machine

    print(f"machine: {describe_machine().line()}")
    print(
        f"{data.name}: {results['ensemble']['cases']} test cases (data.test_fraction 0.2), folds {args.folds} of 5, "
        f"{args.minutes:g} min of training each, {args.threads} threads, TTA {'on' if args.tta else 'off'}"
    )
    print(
        f"cross-validation ({crossval['cases']} cases): mean Dice {crossval['dice_mean_without_postprocessing']:.4f}"
        f" -> {crossval['dice_mean']:.4f} with {crossval['postprocessing']}"
    )
    classes = [k for k in results["ensemble"]["dice"] if k != "mean"]
    print(f"{'test part':26s} " + " ".join(f"{c[:9]:>9s}" for c in classes) + f" {'mean':>7s}")
    for name, r in results.items():
        d = r["dice"]
        label = f"{len(args.folds)}-fold ensemble + postproc" if name == "ensemble" else name
        print(f"{label:26s} " + " ".join(f"{d[c]:9.4f}" for c in classes) + f" {d['mean']:7.4f}")


if __name__ == "__main__":
    main()
