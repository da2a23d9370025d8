"""seg and nnU-Net v2 side by side on Task04_Hippocampus: the same split, threads and wall-clock budget, both
scored by `seg evaluate` on the same held-out cases, in one run; and `seg evaluate` checked against nnU-Net's own
`nnUNetv2_evaluate_folder` on both prediction folders (benchmarks/evaluate_vs_nnunet.py: per case Dice to 1e-4).

Split: fold 0 of seg's 5-fold split (seed 0) of the labelled cases; nnU-Net gets the same cases as its fold 0
(splits_final.json written before it trains), so both train on the same 80% and are scored on the same 20%.

  seg      `seg train` with the project defaults for the budget (benchmarks/train_hippocampus.py's recipe: no
           validation, the last weights), then `seg infer` on the held-out originals (no TTA unless --tta)
  nnU-Net  its own tools: nnUNetv2_convert_MSD_dataset, nnUNetv2_plan_and_preprocess -c 3d_fullres (its plan and
           preprocessing), nnUNetv2_train 3d_fullres fold 0 -device cpu, stopped by the clock at the budget (it has
           no time budget of its own); the checkpoint scored is its checkpoint_best.pth (written after every epoch
           whose EMA pseudo-Dice improved; nnU-Net computes that on its fold-0 validation cases, the held-out ones,
           so its checkpoint choice sees them: an advantage for nnU-Net), then nnUNetv2_predict (--disable_tta
           unless --tta). Its preprocessing is not counted in the budget; ours runs before the clock starts too.

Training samples/s: ours from metrics/train.json; nnU-Net's = finished epochs x 250 iterations x its batch size /
training seconds (the iterations of the epoch it was stopped in are not counted); when it finished no epoch, it
wrote no checkpoint and its row says so, with 250 x batch / seconds as an upper bound of its samples/s.

nnU-Net is not a dependency of seg: `make nnunet-env` installs nnunetv2 2.8.1 into its own environment, .venv-nnunet
(torch 2.13.0 CPU first, then `pip install nnunetv2==2.8.1 torch==2.13.0`), the default --nnunet-bin. Not in seg's
environment: nnU-Net's dependency timm pulls PyPI's torchvision, which fails to import beside the CPU torch and breaks
`import monai.networks.nets` with it (nnU-Net's own train and predict paths never import torchvision).

Run:  python benchmarks/vs_nnunet.py [--data ../shared/data/Task04_Hippocampus] [--minutes 10] [--threads 2]
      [--nnunet-bin .venv-nnunet/bin] [--keep DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evaluate_vs_nnunet import agreement, print_agreement  # benchmarks/, first on sys.path when run as a script
from train_hippocampus import DEFAULT_DATA, preprocess, run, train_ours

REPO = Path(__file__).resolve().parents[1]

DATASET_ID = 4
DATASET = "Dataset004_Hippocampus"


def held_out_split(cache: Path, fold: int = 0) -> tuple[list[str], list[str]]:
    from seg.data.cache import Cache

    split = Cache(cache).split(fold)
    return sorted(split.train), sorted(split.val)


def evaluate(pred: Path, labels: Path, out: Path, classes: list[str]) -> dict:
    run(
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
        ]
    )
    return json.loads((out / "evaluation.json").read_text())


def _dice(summary: dict) -> dict:
    out = {name: c["dice"]["mean"] for name, c in summary["per_class"].items()}
    out["mean"] = summary["mean"]["dice"]
    return out


def nnunet_env(root: Path, threads: int) -> dict[str, str]:
    return {
        **os.environ,
        "nnUNet_raw": str(root / "raw"),
        "nnUNet_preprocessed": str(root / "preprocessed"),
        "nnUNet_results": str(root / "results"),
        "nnUNet_n_proc_DA": str(max(threads - 1, 0)),
        "OMP_NUM_THREADS": str(threads),
        "nnUNet_compile": "f",
    }


def nn(bin_dir: Path, tool: str, *args: str, env: dict, timeout: float | None = None, log: Path | None = None):
    cmd = [str(bin_dir / tool), *args]
    if timeout is None:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise SystemExit(f"{tool} failed:\n{res.stdout[-2000:]}{res.stderr[-3000:]}")
        return res.stdout
    with open(log, "w") as f:  # stopped by the clock: a process group, so its data-augmentation workers go too
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return log.read_text()


def train_nnunet(
    data: Path,
    work: Path,
    train_ids: list[str],
    test_ids: list[str],
    minutes: float,
    threads: int,
    bin_dir: Path,
    tta: bool,
) -> tuple[Path, dict]:
    env = nnunet_env(work, threads)
    staging = work / "msd" / data.name  # the converter wants an MSD folder with imagesTs; the files stay in place
    for sub in ("imagesTr", "labelsTr"):
        (staging / sub).mkdir(parents=True, exist_ok=True)
        for f in (data / sub).glob("*.nii.gz"):
            if not f.name.startswith("._"):
                (staging / sub / f.name).symlink_to(f.resolve())
    (staging / "imagesTs").mkdir(exist_ok=True)
    shutil.copy(data / "dataset.json", staging / "dataset.json")
    start = time.perf_counter()
    nn(
        bin_dir,
        "nnUNetv2_convert_MSD_dataset",
        "-i",
        str(staging),
        "-overwrite_id",
        str(DATASET_ID),
        "-np",
        str(threads),
        env=env,
    )
    nn(
        bin_dir,
        "nnUNetv2_plan_and_preprocess",
        "-d",
        str(DATASET_ID),
        "-c",
        "3d_fullres",
        "-np",
        str(threads),
        "--no_pbar",
        env=env,
    )
    prep_s = time.perf_counter() - start
    split = [{"train": train_ids, "val": test_ids}] + [{"train": train_ids, "val": test_ids}] * 4
    (work / "preprocessed" / DATASET / "splits_final.json").write_text(json.dumps(split))
    start = time.perf_counter()
    log = nn(
        bin_dir,
        "nnUNetv2_train",
        str(DATASET_ID),
        "3d_fullres",
        "0",
        "-device",
        "cpu",
        env=env,
        timeout=minutes * 60,
        log=work / "nnunet_train.log",
    )
    train_s = time.perf_counter() - start
    fold = work / "results" / DATASET / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0"
    checkpoint = "checkpoint_best.pth" if (fold / "checkpoint_best.pth").is_file() else "checkpoint_latest.pth"
    epochs = len(re.findall(r"Epoch time:", log))
    plans = json.loads((work / "preprocessed" / DATASET / "nnUNetPlans.json").read_text())
    batch = plans["configurations"]["3d_fullres"]["batch_size"]
    info = {
        "epochs": epochs,
        "checkpoint": checkpoint,
        "train_s": round(train_s, 1),
        "preprocess_s": round(prep_s, 1),
        "batch_size": batch,
        "patch_size": plans["configurations"]["3d_fullres"]["patch_size"],
    }
    if not (fold / checkpoint).is_file():  # not one epoch (250 iterations) done: nothing to score
        print(
            f"nnU-Net finished no epoch (250 iterations of batch {batch}) in {minutes:g} min, so it wrote no "
            f"checkpoint to score (see {work / 'nnunet_train.log'})",
            file=sys.stderr,
        )
        return None, {**info, "checkpoint": None, "samples_per_s": round(250 * batch / train_s, 2)}
    inputs = work / "heldout_images"
    inputs.mkdir(exist_ok=True)
    for case in test_ids:
        src = work / "raw" / DATASET / "imagesTr" / f"{case}_0000.nii.gz"
        (inputs / src.name).symlink_to(src.resolve())
    out = work / "nnunet_pred"
    nn(
        bin_dir,
        "nnUNetv2_predict",
        "-i",
        str(inputs),
        "-o",
        str(out),
        "-d",
        str(DATASET_ID),
        "-c",
        "3d_fullres",
        "-f",
        "0",
        "-chk",
        checkpoint,
        "-device",
        "cpu",
        "-npp",
        "1",
        "-nps",
        "1",
        "--disable_progress_bar",
        *([] if tta else ["--disable_tta"]),
        env=env,
    )
    return out, {**info, "samples_per_s": round(epochs * 250 * batch / train_s, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--nnunet-bin", default=str(REPO / ".venv-nnunet" / "bin"))
    p.add_argument("--tta", action="store_true", help="score both with mirroring TTA")
    p.add_argument("--only", choices=("seg", "nnunet"), default=None)
    p.add_argument("--keep", default=None, help="keep the work folder here")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    data, bin_dir = Path(args.data), Path(args.nnunet_bin)
    if not data.is_dir():
        raise SystemExit(f"{data}: dataset not found. Pass --data /path/to/Task04_Hippocampus.")
    if args.only != "seg" and not (bin_dir / "nnUNetv2_train").is_file():
        raise SystemExit(f"{bin_dir}: no nnUNetv2_train. Run `make nnunet-env` or pass --nnunet-bin.")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        cache = work / "cache"
        if not (cache / "fingerprint.json").is_file():
            preprocess(data, cache)
        train_ids, test_ids = held_out_split(cache)
        labels = work / "heldout_labels"  # the held-out references, read in place through links
        labels.mkdir(exist_ok=True)
        for case in test_ids:
            if not (labels / f"{case}.nii.gz").exists():
                (labels / f"{case}.nii.gz").symlink_to((data / "labelsTr" / f"{case}.nii.gz").resolve())
        names = json.loads((data / "dataset.json").read_text())["labels"]
        classes = [f"{k}={v}" for k, v in sorted(names.items(), key=lambda kv: int(kv[0])) if int(k) > 0]
        results, agree = {}, {}
        if args.only in (None, "seg"):
            ours = train_ours(cache, work / "seg", args.minutes, args.threads, "auto", None, args.tta)
            scored = evaluate(work / "seg" / "pred", labels, work / "seg" / "evaluation", classes)
            results["seg"] = {**ours, "dice": _dice(scored), "cases": scored["cases"]}
        if args.only in (None, "nnunet"):
            pred, info = train_nnunet(
                data, work / "nnunet", train_ids, test_ids, args.minutes, args.threads, bin_dir, args.tta
            )
            if pred is None:  # samples/s is then an upper bound: fewer than 250 iterations were done
                nan = float("nan")
                results["nnU-Net v2 3d_fullres"] = {
                    **info,
                    "dice": {**{c.split("=")[1]: nan for c in classes}, "mean": nan},
                    "cases": 0,
                }
            else:
                scored = evaluate(pred, labels, work / "nnunet" / "evaluation", classes)
                results["nnU-Net v2 3d_fullres"] = {**info, "dice": _dice(scored), "cases": scored["cases"]}
            # the scorer itself: seg evaluate against nnUNetv2_evaluate_folder on every prediction folder made here
            prep = work / "nnunet" / "preprocessed" / DATASET
            folders = {"seg": work / "seg" / "pred", "nnU-Net v2 3d_fullres": pred}
            agree = {
                name: agreement(
                    folder,
                    labels,
                    classes,
                    bin_dir,
                    work / "agreement" / name.split()[0],
                    args.threads,
                    prep / "dataset.json",
                    prep / "nnUNetPlans.json",
                )
                for name, folder in folders.items()
                if folder is not None and folder.is_dir()
            }
    from seg.runtime import describe_machine

    print(f"machine: {describe_machine().line()}")
    print(
        f"{data.name}: {len(train_ids)} training, {len(test_ids)} held-out cases (seg's fold 0 of 5); "
        f"{args.minutes:g} min of training each, {args.threads} threads; scored by seg evaluate"
    )
    classes = [k for k in next(iter(results.values()))["dice"] if k != "mean"]
    print(f"{'':24s} " + " ".join(f"{c[:9]:>9s}" for c in classes) + f" {'mean':>7s} {'samples/s':>10s} {'epochs':>7s}")
    for name, r in results.items():
        d = r["dice"]
        print(
            f"{name:24s} " + " ".join(f"{d[c]:9.4f}" for c in classes) + f" {d['mean']:7.4f} "
            f"{r['samples_per_s']:10.2f} {r['epochs']:7d}"
            + (f"  ({r['checkpoint']})" if r.get("checkpoint") else "")
            + (
                "  (no epoch finished: no checkpoint; samples/s is an upper bound)"
                if "checkpoint" in r and not r["checkpoint"]
                else ""
            )
        )
    for name, res in agree.items():
        print_agreement(name, res)
    if args.json:
        Path(args.json).write_text(json.dumps({**results, "evaluator_agreement": agree}, indent=1))


if __name__ == "__main__":
    main()
