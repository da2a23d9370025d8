"""Benchmark the memory that attention maps cost `seg infer`: peak resident set of one CT-sized case with and
without `--maps` (every kind), no TTA, on a windowed-self-attention model (untrained: memory does not depend on
the weights). Target: with maps <= 1.25x without.

Each run is its own child process, which reports its own peak RSS (`ru_maxrss`), so runs never share a peak.
Maps are stitched on their own grids and brought to full size one at a time when written; a full-resolution
float map of 512x512x400 is 420 MB, and this model has some twenty maps.

Run:  python benchmarks/infer_maps_memory.py [--shape 512 512 400] [--patch 64] [--channels 16 32 64 128]
      [--overlap 0.5] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SPACING = (0.8, 0.8, 1.0)  # mm, a typical abdominal CT; also the model's target spacing, so nothing is resampled
TARGET = 1.25


def build_model(work: Path, patch: int, channels: tuple[int, ...]) -> Path:
    """An untrained windowed-self-attention U-Net (two blocks on each of the two coarsest stages, CBAM in the
    decoder, gates) with the fingerprint of a small synthetic dataset preprocessed at the volume's spacing."""
    import torch

    from seg.config import Config, DataConfig, ModelConfig, TrainConfig
    from seg.data.cache import Cache
    from seg.data.preprocess import preprocess_dataset
    from seg.data.synthetic import make_synthetic_dataset
    from seg.model_folder import ModelMeta, save_bundle
    from seg.models import build_model as build_net

    dataset = make_synthetic_dataset(work / "synthetic", spatial_dims=3, n_cases=2, seed=0)
    data = DataConfig(root=str(dataset), cache_dir=str(work / "cache"), num_workers=0, folds=2, target_spacing=SPACING)
    cache = preprocess_dataset(data, progress=False).out_dir
    model = ModelConfig(
        spatial_dims=3,
        channels=channels,
        strides=(2, 2, 2),
        deep_supervision=0,
        self_attention={2: "window", 3: "window"},
        self_attention_depth=2,
        self_attention_heads=4,
        self_attention_window=4,
        decoder_attention="cbam",
    )
    cfg = Config(model=model, data=data, train=TrainConfig(patch_size=(patch,) * 3))
    torch.manual_seed(0)
    net = build_net(model)
    meta = ModelMeta.for_training(cfg, ["background", "head", "body"], [patch] * 3, None)
    return save_bundle(work / "model", net, cfg, Cache(cache).fingerprint, meta)


def write_volume(path: Path, shape: tuple[int, ...]) -> Path:
    """A smooth CT-like volume (Hounsfield-like range) with the benchmark's spacing, uncompressed NIfTI."""
    import nibabel as nib
    from scipy import ndimage

    coarse = np.random.default_rng(0).normal(size=tuple(max(s // 16, 2) for s in shape)).astype(np.float32)
    zoom = [s / c for s, c in zip(shape, coarse.shape, strict=True)]
    volume = ndimage.zoom(coarse, zoom, order=1) * 100 + 300
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume.astype(np.float32), np.diag([*SPACING, 1.0])), path)
    return path


def measure(args: list[str]) -> None:
    """In the child: `seg infer` with `args`, then this process' peak RSS and time as one JSON line."""
    from seg.cli import main as seg_main

    start = time.perf_counter()
    rc = seg_main(["infer", *args])
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"rc": rc, "seconds": round(seconds, 1), "peak_rss_gib": round(peak_kib / 2**20, 3)}))


def run(model: Path, volume: Path, out: Path, threads: int, overlap: float, maps: bool) -> dict:
    """One `seg infer` in a fresh child process; its figures, and the maps it wrote (count, bytes)."""
    flags = ["--model", str(model), "--input", str(volume), "--output", str(out), "--overwrite", "--no-tta"]
    flags += ["--precision", "32", "--sw-batch-size", "1", "--num-threads", str(threads), "--overlap", str(overlap)]
    flags += ["--maps"] if maps else []
    cmd = [sys.executable, __file__, "--measure", *flags]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    if res.returncode != 0 or not lines:
        raise SystemExit(f"seg infer failed: {res.stderr[-2000:]}")
    result = json.loads(lines[-1])
    written = list((out / "maps").glob("*")) if maps else []
    result["maps_files"] = len(written)
    result["maps_gib"] = round(sum(p.stat().st_size for p in written) / 2**30, 2)
    shutil.rmtree(out)  # a full-size run writes gigabytes of maps
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", type=int, nargs=3, default=(512, 512, 400), help="volume size in voxels")
    p.add_argument("--patch", type=int, default=64, help="the model's window, a multiple of 16")
    p.add_argument("--channels", type=int, nargs=4, default=(16, 32, 64, 128), help="per stage; heads: 4")
    p.add_argument("--overlap", type=float, default=0.5, help="sliding-window overlap (fewer windows: quicker)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each run")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    machine = subprocess.run([sys.executable, "-m", "seg.runtime.machine"], capture_output=True, text=True, cwd=REPO)
    print(f"machine: {machine.stdout.strip()}")
    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory(prefix="seg-maps-memory-") as tmp:
        work = Path(tmp)
        model = build_model(work, args.patch, tuple(args.channels))
        volume = write_volume(work / "in" / f"ct_{'x'.join(map(str, shape))}.nii", shape)
        results = {
            name: run(model, volume, work / name, args.threads, args.overlap, maps)
            for name, maps in (("plain", False), ("maps", True))
        }
    ratio = results["maps"]["peak_rss_gib"] / results["plain"]["peak_rss_gib"]
    print(
        f"\nseg infer --no-tta, {'x'.join(map(str, shape))} float32 at {SPACING} mm, window {args.patch}^3, "
        f"overlap {args.overlap}, windowed self-attention model {list(args.channels)}, {args.threads} threads"
    )
    print(f"{'run':<14}{'peak RSS GiB':>14}{'seconds':>10}{'map files':>11}{'maps GiB':>10}")
    for name, label in (("plain", "without maps"), ("maps", "--maps")):
        r = results[name]
        print(f"{label:<14}{r['peak_rss_gib']:>14.2f}{r['seconds']:>10.1f}{r['maps_files']:>11}{r['maps_gib']:>10.2f}")
    print(f"with / without: {ratio:.2f}x (target <= {TARGET}x): {'met' if ratio <= TARGET else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"shape": shape, "patch": args.patch, "ratio": ratio, **results}, indent=1)
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        measure(sys.argv[2:])
    else:
        main()
