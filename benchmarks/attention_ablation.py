"""Attention ablation: seg's attention variants and MONAI's UNETR and SwinUNETR, each trained for the same CPU budget
at the same patch, scored on the same held-out cases, in one table per dataset.

Rows (`attention_variants.py` defines them): default, cbam_decoder, sa_bottleneck, sa_window, nonlocal,
self_attention (configs/self_attention.yaml), unetr, swin_unetr. `--only NAME ...` runs some of them.

Task04_Hippocampus (3D), as `train_hippocampus.py` runs it: the preprocessed cache's fold 0 of 5 (seed 0) is held
out (42 of 208 cases); nothing validates during training and the last weights are scored.
  seg rows   `seg train` with params.yaml and the variant's model keys, train.patch_size --patch (default 32x64x32,
             a size SwinUNETR takes; the default patch would be 32x48x32), `--minutes` of training; then `seg infer
             --labels` on the held-out cases with mirroring TTA (Dice in the original voxel grid)
  anchors    the same cache, patches, foreground oversampling and augmentation (seg's `PatchDataset`), batch 4,
             DiceCE, AdamW lr 1e-4 (weight decay 1e-5, the UNETR and SwinUNETR papers' optimiser), bf16 autocast
             where `precision: auto` picks it, `--minutes` of training; then MONAI's sliding window (the patch,
             overlap 0.5, Gaussian weights) with the same mirroring TTA (the axes training mirrored), Dice in the
             preprocessed grid (Task04: 1 mm, the original grid up to the crop; DSB2018: the original grid)
DSB2018 nuclei (2D, --data-2d): the same with configs/unet2d.yaml's network (five levels, scSE on the decoder) as
the default, `--minutes-2d` per row (0: no 2D section), patch --patch-2d (default 256x256, the images' size).

Columns: held-out Dice per class and their mean (TTA), training samples/s, trainable parameters, peak memory (the
largest resident set of the row's processes, training and scoring, MiB), the precision auto picked. The machine
is printed with the tables; every row runs in its own process, one after another.

Run:  python benchmarks/attention_ablation.py [--minutes 10] [--minutes-2d 3] [--only NAME ...] [--threads 2]
      [--data ../shared/data/Task04_Hippocampus] [--data-2d ../shared/data/DSB2018_nuclei] [--keep DIR]
      [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

import yaml
from attention_variants import SEG_VARIANTS, variant_model  # benchmarks/ is first on sys.path
from measure import in_fresh_process
from train_hippocampus import preprocess, run, train_ours

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
ROWS = (*SEG_VARIANTS, "unetr", "swin_unetr")


def variant_params(name: str, work: Path, patch: list[int], model_2d: bool, keys=variant_model) -> Path:
    """params.yaml with the variant's model keys (`keys(name, levels)`; on configs/unet2d.yaml's network for 2D)
    and the patch."""
    cfg = yaml.safe_load((REPO / "params.yaml").read_text())
    if model_2d:
        cfg["model"].update(yaml.safe_load((REPO / "configs" / "unet2d.yaml").read_text())["model"])
    cfg["model"].update(keys(name, len(cfg["model"]["channels"])))
    cfg["train"]["patch_size"] = patch
    work.mkdir(parents=True, exist_ok=True)
    path = work / "variant.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def seg_row(name: str, cache: Path, work: Path, minutes: float, patch: list[int], threads: int, fold: int) -> dict:
    from seg.config import load_config
    from seg.models import build_model

    params = variant_params(name, work, patch, model_2d=len(patch) == 2)
    result = train_ours(cache, work, minutes, threads, "auto", str(params), tta=True, fold=fold)
    net = build_model(load_config(params).model)
    return {**result, "params": sum(p.numel() for p in net.parameters() if p.requires_grad)}


def anchor_row(name: str, cache: Path, work: Path, minutes: float, patch: list[int], threads: int, fold: int) -> dict:
    """The anchor trains and scores in a process of its own (`anchor_training.py`), as seg's rows do (`seg train`)."""
    out = work / "anchor.json"
    work.mkdir(parents=True, exist_ok=True)
    run(
        [
            sys.executable,
            str(Path(__file__).resolve().parent / "anchor_training.py"),
            name,
            str(cache),
            str(out),
            "--minutes",
            str(minutes),
            "--patch",
            *map(str, patch),
            "--threads",
            str(threads),
            "--fold",
            str(fold),
        ]
    )
    return json.loads(out.read_text())


def measured_row(name: str, *row_args) -> dict:
    """One row in this (fresh) process: its figures and the peak resident set of the processes it ran."""
    result = (seg_row if name in SEG_VARIANTS else anchor_row)(name, *row_args)
    return {**result, "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def section(title: str, data: Path, minutes: float, patch: list[int], args, work: Path) -> dict[str, dict]:
    cache = work / "cache"
    if not (cache / "fingerprint.json").is_file():
        preprocess(data, cache)
    results = {}
    for name in args.only or ROWS:
        print(f"  {title}: {name} ({minutes:g} min)", flush=True)
        results[name] = in_fresh_process(measured_row, name, cache, work / name, minutes, patch, args.threads, 0)
    return results


def print_table(title: str, results: dict[str, dict], minutes: float, patch: list[int]) -> None:
    classes = [k for k in next(iter(results.values()))["dice"] if k != "mean"]
    print(f"\n{title}, fold 0 of 5 held out, {minutes:g} min each, patch {'x'.join(map(str, patch))}, TTA")
    print(
        f"{'':15s} "
        + " ".join(f"{c[:9]:>9s}" for c in classes)
        + f" {'mean':>7s} {'samples/s':>10s} {'params':>11s} {'peak MiB':>9s} {'cases':>6s}  precision"
    )
    for name, r in results.items():
        d = r["dice"]
        print(
            f"{name:15s} "
            + " ".join(f"{d.get(c, float('nan')):9.3f}" for c in classes)
            + f" {d['mean']:7.3f} {r['samples_per_s']:10.2f} {r['params']:>11,} {r['peak_mib']:9.0f} "
            f"{r['cases']:6d}  {r['precision']}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED / "Task04_Hippocampus"))
    p.add_argument("--data-2d", default=str(SHARED / "DSB2018_nuclei"))
    p.add_argument("--minutes", type=float, default=10.0, help="training minutes per 3D row (0: no 3D section)")
    p.add_argument("--minutes-2d", type=float, default=3.0, help="training minutes per 2D row (0: no 2D section)")
    p.add_argument("--patch", type=int, nargs=3, default=[32, 64, 32])
    p.add_argument("--patch-2d", type=int, nargs=2, default=[256, 256])
    p.add_argument("--only", nargs="+", choices=ROWS, default=None, help="run these rows only")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep", default=None, help="keep the work folder (caches, models, predictions) here")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    sections = [
        ("Task04_Hippocampus 3D", Path(args.data), args.minutes, args.patch, "3d"),
        ("DSB2018 nuclei 2D", Path(args.data_2d), args.minutes_2d, args.patch_2d, "2d"),
    ]
    for _, data, minutes, _, _ in sections:
        if minutes > 0 and not data.is_dir():
            raise SystemExit(f"{data}: dataset not found. Pass --data / --data-2d, or 0 minutes to skip it.")
    from seg.runtime import describe_machine

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        for title, data, minutes, patch, key in sections:
            if minutes > 0:
                results[key] = section(title, data, minutes, patch, args, work / key)
    print(f"\nmachine: {describe_machine().line()}; {args.threads} threads")
    for title, _, minutes, patch, key in sections:
        if key in results:
            print_table(title, results[key], minutes, patch)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
