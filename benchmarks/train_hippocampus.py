"""Train our Attention U-Net and monai.networks.nets.AttentionUnet for the same wall-clock budget on
Task04_Hippocampus, in one run, and score both on the same held-out 20%.

Split: the preprocessed cache's fold 0 of a 5-fold split (seed 0): a fixed 80/20 split of the 260 -> 208
labelled cases (166 train / 42 held out); `--fold 1..4` scores another fold, to see how much a figure owes to
the split. Neither model sees the held-out cases while training (no validation
runs during training; the last weights are scored).

  ours    `seg train` with the project defaults (params.yaml model and train sections unless --config), the
          budget as train.max_time_minutes, then `seg infer --labels` on the held-out originals (Dice in the
          original voxel grid; --no-tta unless --tta)
  monai   AttentionUnet(3, 1, 3, (16, 32, 64, 128), (2, 2, 2)), DiceCELoss, AdamW lr 1e-3, whole cropped volumes
          padded to a multiple of 8, batch 2, random flips: the plain MONAI recipe; scored on the same
          held-out cases (preprocessed grid: spacing is 1 mm, identical to the original up to the crop)

Prints per-class Dice (anterior, posterior, mean) on the held-out cases and training samples/s for both.
With `--only ours`, `--data` may be any dataset `seg preprocess` reads (another MSD task, a 2D images/ + masks/
folder with a 2D `--config`); the MONAI recipe is written for Task04_Hippocampus.

The machine (CPU, capability, bf16 support) is printed with the figures. `--precision` defaults to auto (what
`seg train` resolves here, printed); `--compare-precisions` trains ours once per precision (32, bf16-mixed, auto)
for the same budget and prints their samples/s side by side, marking what auto picked. `--validate` keeps the
config's validation schedule (params.yaml: `val_every: auto`, i.e. the project's defaults as `dvc repro` runs
them; the saved model is then the best validation checkpoint, chosen on the held-out fold as the pipeline does).

Run:  python benchmarks/train_hippocampus.py [--data ../shared/data/Task04_Hippocampus] [--minutes 10]
      [--threads 2] [--precision auto] [--compare-precisions] [--validate] [--only ours|monai] [--fold 0]
      [--keep DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "Task04_Hippocampus"


def run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{res.stderr[-3000:]}")
    return res.stdout


def preprocess(data: Path, cache: Path) -> None:
    run([sys.executable, "-m", "seg.cli", "preprocess", "--root", str(data), "--out", str(cache)])


def train_ours(
    cache: Path,
    work: Path,
    minutes: float,
    threads: int,
    precision: str,
    config: str | None,
    tta: bool,
    fold: int = 0,
    validate: bool = False,
) -> dict:
    import yaml

    cfg = yaml.safe_load(Path(config or REPO / "params.yaml").read_text())
    cfg.setdefault("data", {}).update({"cache_dir": str(cache), "fold": fold, "folds": 5})
    no_validation = {} if validate else {"val_every": 100000, "val_every_minutes": None}
    cfg.setdefault("train", {}).update(
        {
            "max_time_minutes": minutes,
            **no_validation,
            "num_threads": threads,
            "precision": precision,
            "model_dir": str(work / "model"),
            "output_dir": str(work / "out"),
            "metrics_dir": str(work / "metrics"),
            "tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
            "gate_images": False,
        }
    )
    cfg["infer"] = {**cfg.get("infer", {}), "metrics_file": str(work / "metrics" / "infer.json")}
    params = work / "params.yaml"
    work.mkdir(parents=True, exist_ok=True)
    params.write_text(yaml.safe_dump(cfg))
    start = time.perf_counter()
    run([sys.executable, "-m", "seg.cli", "train", "--config", str(params)])
    train_s = time.perf_counter() - start
    summary = json.loads((work / "metrics" / "train.json").read_text())
    dice, cases = held_out_dice(params, work / "model", work / "pred", threads, tta)
    return {
        "dice": dice,
        "epochs": summary["epochs"],
        "samples_per_s": summary.get("samples_per_s", 0.0),
        "train_s": round(train_s, 1),
        "cases": cases,
        "precision": summary["runtime"]["precision"],
        "validation": summary["runtime"]["validation"],
    }


def held_out_dice(params: Path, model: Path, out: Path, threads: int, tta: bool) -> tuple[dict[str, float], int]:
    """`seg infer` of `model` on the held-out cases of the config's cache and fold; (Dice per class and mean, cases)."""
    run(
        [
            sys.executable,
            "-m",
            "seg.cli",
            "infer",
            "--config",
            str(params),
            "--model",
            str(model),
            "--output",
            str(out),
            "--num-threads",
            str(threads),
            *([] if tta else ["--no-tta"]),
        ]
    )
    metrics = json.loads((out / "metrics.json").read_text())["summary"]
    return {k[5:].lower(): v for k, v in metrics.items() if k.startswith("dice_")}, metrics["cases"]


def _pad_to(x: np.ndarray, multiple: int = 8) -> np.ndarray:
    pad = [(0, 0)] + [(0, (-s) % multiple) for s in x.shape[1:]]
    return np.pad(x, pad)


def train_monai(cache: Path, minutes: float, threads: int, fold: int = 0, seed: int = 0) -> dict:
    from monai.losses import DiceCELoss
    from monai.networks.nets import AttentionUnet

    from seg.metrics import dice_per_class, nanmean

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    splits = json.loads((cache / "splits.json").read_text())[fold]
    load = lambda cid: np.load(cache / "cases" / f"{cid}.npz")  # noqa: E731
    train = [(load(c)["image"], load(c)["label"]) for c in splits["train"]]
    test = [(load(c)["image"], load(c)["label"]) for c in splits["val"]]
    net = AttentionUnet(3, 1, 3, (16, 32, 64, 128), (2, 2, 2))
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-5)
    rng = np.random.default_rng(seed)
    # one shape for the batch: every volume padded to the largest cropped shape, rounded to 8
    shape = [int(np.ceil(max(im.shape[1 + a] for im, _ in train) / 8) * 8) for a in range(3)]

    def padded(x: np.ndarray) -> np.ndarray:
        return np.pad(x, [(0, 0)] + [(0, t - s) for s, t in zip(x.shape[1:], shape, strict=True)])

    samples, start = 0, time.perf_counter()
    net.train()
    while time.perf_counter() - start < minutes * 60:
        idx = rng.choice(len(train), 2, replace=False)
        xs, ys = [], []
        for i in idx:
            x, y = padded(train[i][0]), padded(train[i][1])
            for axis in (1, 2, 3):
                if rng.random() < 0.5:
                    x, y = np.flip(x, axis), np.flip(y, axis)
            xs.append(x.copy())
            ys.append(y.copy())
        x, y = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)).long()
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        samples += 2
    train_s = time.perf_counter() - start
    net.eval()
    dices = []
    with torch.inference_mode():
        for image, label in test:
            x = torch.from_numpy(_pad_to(image))[None]
            logits = net(x)[(..., *(slice(0, s) for s in image.shape[1:]))]
            dices.append(dice_per_class(logits.argmax(1)[0], torch.from_numpy(label)[0], 3).numpy())
    d = [nanmean(per_class) for per_class in np.stack(dices).T]  # a case lacking a class in both maps: left out
    return {
        "dice": {"anterior": d[0], "posterior": d[1], "mean": nanmean(d)},
        "samples_per_s": round(samples / train_s, 2),
        "train_s": round(train_s, 1),
        "cases": len(test),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="auto", choices=("auto", "32", "bf16-mixed"))
    p.add_argument("--compare-precisions", action="store_true", help="train ours at 32, bf16-mixed and auto")
    p.add_argument("--validate", action="store_true", help="keep the config's validation schedule (the defaults)")
    p.add_argument("--config", default=None, help="our config (default: params.yaml)")
    p.add_argument("--tta", action="store_true", help="score ours with mirroring TTA")
    p.add_argument("--only", choices=("ours", "monai"), default=None)
    p.add_argument("--fold", type=int, default=0, choices=range(5), help="which of the 5 folds is held out")
    p.add_argument("--cache", default=None, help="reuse a preprocessed cache of the dataset")
    p.add_argument("--keep", default=None, help="keep the work folder (cache, our model, predictions) here")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if not Path(args.data).is_dir():
        raise SystemExit(f"{args.data}: dataset not found. Pass --data /path/to/Task04_Hippocampus.")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        cache = Path(args.cache) if args.cache else work / "cache"
        if not (cache / "fingerprint.json").is_file():
            preprocess(Path(args.data), cache)
        results = {}
        precisions = ("32", "bf16-mixed", "auto") if args.compare_precisions else (args.precision,)
        if args.only in (None, "ours"):
            for precision in precisions:
                name = f"ours {precision}" if args.compare_precisions else "ours"
                results[name] = train_ours(
                    cache,
                    work / name.replace(" ", "_"),
                    args.minutes,
                    args.threads,
                    precision,
                    args.config,
                    args.tta,
                    args.fold,
                    args.validate,
                )
        if args.only in (None, "monai"):
            results["monai AttentionUnet"] = train_monai(cache, args.minutes, args.threads, args.fold)
    from seg.runtime import describe_machine

    print(f"machine: {describe_machine().line()}")
    print(f"{Path(args.data).name}, fold {args.fold} of 5 (80/20), {args.minutes:g} min each, {args.threads} threads")
    classes = [k for k in next(iter(results.values()))["dice"] if k != "mean"]  # the dataset's foreground classes
    print(
        f"{'':22s} "
        + " ".join(f"{c[:9]:>9s}" for c in classes)
        + f" {'mean':>7s} {'samples/s':>10s} {'train s':>8s} {'cases':>6s}"
    )
    for name, r in results.items():
        d = r["dice"]
        print(
            f"{name:22s} "
            + " ".join(f"{d.get(c, float('nan')):9.3f}" for c in classes)
            + f" {d['mean']:7.3f} {r['samples_per_s']:10.2f} {r['train_s']:8.1f} {r['cases']:6d}"
            + (f"  precision {r['precision']}; {r['validation']}" if "precision" in r else "")
        )
    if args.compare_precisions and args.only in (None, "ours"):
        fastest = max(results["ours 32"]["samples_per_s"], results["ours bf16-mixed"]["samples_per_s"])
        auto = results["ours auto"]
        print(
            f"auto picked {auto['precision']}: {auto['samples_per_s'] / fastest:.3f}x the faster of 32 and bf16-mixed"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
