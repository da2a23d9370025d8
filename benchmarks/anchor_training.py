"""Train one of MONAI's anchors (UNETR, SwinUNETR, AttentionUnet; `attention_variants.py`) on a preprocessed cache
for a wall-clock budget and score it on the fold's held-out cases: `attention_ablation.py` runs it in a process of
its own, so that process' peak memory is the anchor's.

Training: seg's `PatchDataset` over the fold's training cases (the patch, foreground oversampling and augmentation
`seg train` uses, train.augment's defaults), batch 4, two loader workers, DiceCE, AdamW lr 1e-4 with weight decay
1e-5, bf16 autocast where `seg.runtime.tune_training` (`precision: auto`) picks bf16-mixed. Scoring: MONAI's
sliding window over each held-out case (window = the patch, overlap 0.5, Gaussian weights), softmax averaged over
every mirroring of the axes training mirrored, Dice per class of the argmax in the preprocessed grid.

Run:  python benchmarks/anchor_training.py NAME CACHE OUT.json [--minutes 10] [--patch 32 64 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from attention_variants import ANCHORS, build_anchor  # benchmarks/ is first on sys.path
from measure import autocast

LIGHTNING_TO_DTYPE = {"32": "float32", "bf16-mixed": "bfloat16"}


def mirrored_softmax(net, image: torch.Tensor, patch, axes, precision: str) -> torch.Tensor:
    """Softmax (1, K, *spatial) averaged over every subset of `axes` mirrored, each by MONAI's sliding window."""
    from monai.inferers import sliding_window_inference

    total = None
    subsets = [s for r in range(len(axes) + 1) for s in itertools.combinations(axes, r)]
    for subset in subsets:
        dims = [2 + a for a in subset]
        x = image.flip(dims) if dims else image
        with autocast(precision):
            logits = sliding_window_inference(x, patch, 1, net, overlap=0.5, mode="gaussian")
        prob = torch.as_tensor(logits).float().softmax(1)
        prob = prob.flip(dims) if dims else prob
        total = prob if total is None else total + prob
    return total / len(subsets)


def train_and_score(name: str, cache_dir: Path, minutes: float, patch, threads: int, fold: int, batch=4) -> dict:
    from monai.losses import DiceCELoss
    from torch.utils.data import DataLoader

    from seg.config import TrainConfig
    from seg.data.cache import Cache
    from seg.metrics import dice_per_class, nanmean
    from seg.runtime import tune_training
    from seg.train.datamodule import PatchDataset

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    os.environ.setdefault("SEG_CACHE_DIR", tempfile.mkdtemp(prefix="seg-anchor-"))
    cache = Cache(cache_dir)
    split, names = cache.split(fold), cache.fingerprint.class_names
    dims, classes = len(patch), len(names)
    cfg = TrainConfig(patch_size=tuple(patch), batch_size=batch)
    net = build_anchor(name, dims, classes, patch)
    picked = tune_training(net, patch, 1, batch, channels_last=False, config_key=name).precision  # "32" or "bf16-mixed"
    precision = LIGHTNING_TO_DTYPE[picked]
    train = PatchDataset([cache.case(i) for i in split.train], patch, 10**8, cfg, None)
    loader = iter(DataLoader(train, batch_size=batch, num_workers=2, drop_last=True))
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=1e-5)
    net.train()
    samples, start = 0, time.perf_counter()
    while time.perf_counter() - start < minutes * 60:
        item = next(loader)
        opt.zero_grad(set_to_none=True)
        with autocast(precision):
            loss = loss_fn(net(item["image"]).float(), item["label"])
        loss.backward()
        opt.step()
        samples += batch
    train_s = time.perf_counter() - start
    net.eval()
    axes = cfg.augment.mirrored_axes(dims)
    dices = []
    with torch.inference_mode():
        for case in map(cache.case, split.val):
            prob = mirrored_softmax(net, torch.from_numpy(case.image)[None], patch, axes, precision)
            dices.append(dice_per_class(prob.argmax(1)[0], torch.from_numpy(case.label[0]), classes).numpy())
    per_class = [nanmean(d) for d in np.stack(dices).T]  # a case lacking a class in both maps is left out
    return {
        "dice": {**{n.lower(): d for n, d in zip(names[1:], per_class, strict=True)}, "mean": nanmean(per_class)},
        "samples_per_s": round(samples / train_s, 2),
        "train_s": round(train_s, 1),
        "cases": len(dices),
        "precision": picked,
        "params": sum(p.numel() for p in net.parameters() if p.requires_grad),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=ANCHORS)
    p.add_argument("cache")
    p.add_argument("out")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--patch", type=int, nargs="+", default=[32, 64, 32])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fold", type=int, default=0)
    args = p.parse_args()
    result = train_and_score(args.name, Path(args.cache), args.minutes, args.patch, args.threads, args.fold)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
