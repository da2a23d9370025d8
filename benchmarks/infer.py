"""Benchmark batch inference: `seg infer` against MONAI's sliding_window_inference with
monai.networks.nets.AttentionUnet, in one run, on CPU.

1. Speed (voxels/s of whole cases), on the machine printed first:
     seg infer --no-tta     end to end, read to written (preprocessing, resampling back and writing included),
                            one pass per window, at the precision and window batch `auto` resolves to
     seg infer (TTA)        the same with mirroring over the trained axes (8 passes per window in 3D)
     monai / ours           sliding_window_inference(AttentionUnet) and our Predictor without TTA on the same
                            preprocessed arrays: same window (the model's patch size), overlap, Gaussian
                            blending and windows per pass (2); network time only (no I/O), in float32 and in
                            bf16; `*` marks the precision `auto` picks for each network here
   on the first --cases evaluation cases of a preprocessed cache (default: the pipeline's, data/preprocessed).
2. Dice of `seg infer` on those cases against their labels (held out from training when the model was trained
   on that cache's other fold cases): per class, with and without TTA.
3. Peak memory and time of `seg infer --no-tta` on a CT-sized 512x512x400 volume (--large; minutes on 2 cores),
   measured as the child process' max RSS.

Run:  python benchmarks/infer.py --model models/latest [--cache data/preprocessed] [--cases 5] [--large]
      [--precision auto] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def seg_infer(
    model: str, inputs: list[str], out: Path, extra: list[str], labels: str | None = None
) -> tuple[float, dict]:
    """Run `seg infer` on a list of files (through a glob-free folder of symlinks); (seconds, predictions.json)."""
    src = out.parent / f"{out.name}-inputs"
    src.mkdir(parents=True, exist_ok=True)
    for f in inputs:
        link = src / Path(f).name
        if not link.exists():
            link.symlink_to(Path(f).resolve())
    cmd = [
        sys.executable,
        "-m",
        "seg.cli",
        "infer",
        "--model",
        model,
        "--input",
        str(src),
        "--output",
        str(out),
        "--overwrite",
        *extra,
        *(["--labels", labels] if labels else []),
    ]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"seg infer failed: {res.stderr[-2000:]}")
    return seconds, json.loads((out / "predictions.json").read_text())


def monai_net(model):
    from monai.networks.nets import AttentionUnet

    mc = model.config.model
    return AttentionUnet(mc.spatial_dims, mc.in_channels, mc.out_channels, mc.channels, mc.strides).eval()


def auto_precision(net, model) -> str:
    """What `precision: auto` picks for `net` at the model's patch size here (windows fixed at 2, as measured)."""
    from seg.runtime import tune_inference

    return tune_inference(
        net, model.patch_size, model.config.model.in_channels, "auto", 2, config_key=type(net).__name__
    ).precision


def monai_speed(model, images: list[np.ndarray], overlap: float, precision: str) -> float:
    from monai.inferers import sliding_window_inference

    net = monai_net(model)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)
    with torch.inference_mode(), ctx:
        for image in images:  # one untimed pass, as ours gets
            sliding_window_inference(
                torch.from_numpy(image)[None], model.patch_size, 2, net, overlap=overlap, mode="gaussian"
            )
    voxels, start = 0, time.perf_counter()
    with torch.inference_mode(), ctx:
        for image in images:
            x = torch.from_numpy(image)[None]
            sliding_window_inference(x, model.patch_size, 2, net, overlap=overlap, mode="gaussian")
            voxels += int(np.prod(image.shape[1:]))
    return voxels / (time.perf_counter() - start)


def ours_network_speed(model, images: list[np.ndarray], overlap: float, precision: str, tta: bool) -> float:
    from seg.infer.predictor import Predictor

    predictor = Predictor(model, overlap=overlap, tta=tta, precision=precision, sw_batch_size=2)
    for image in images:  # one untimed pass: kernel selection per window layout is not steady-state speed
        predictor.predict(image)
    voxels, start = 0, time.perf_counter()
    for image in images:
        predictor.predict(image)
        voxels += int(np.prod(image.shape[1:]))
    return voxels / (time.perf_counter() - start)


def large_volume(model: str, work: Path, precision: str, shape=(512, 512, 400)) -> dict:
    import nibabel as nib

    rng = np.random.default_rng(0)
    coarse = rng.normal(size=tuple(s // 16 for s in shape)).astype(np.float32)
    from scipy import ndimage

    volume = ndimage.zoom(coarse, 16, order=1) * 100 + 300  # smooth, CT-like range
    path = work / "large" / "ct_512x512x400.nii"
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume.astype(np.float32), np.diag([0.8, 0.8, 1.0, 1.0])), path)
    del volume
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds, _ = seg_infer(model, [str(path)], work / "large-out", ["--no-tta", "--precision", precision])
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "shape": list(shape),
        "seconds": round(seconds, 1),
        "peak_rss_gib": round(peak_kib / 2**20, 2),
        "peak_grew": peak_kib > before,
        "voxels_per_s": round(int(np.prod(shape)) / seconds),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/latest")
    p.add_argument("--cache", default="data/preprocessed")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--cases", type=int, default=5)
    p.add_argument("--overlap", type=float, default=0.5)
    p.add_argument("--precision", default="auto", choices=("auto", "32", "bf16"), help="of the seg infer runs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--large", action="store_true", help="also the 512x512x400 peak-memory run")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import os

    os.environ.setdefault("SEG_CACHE_DIR", tempfile.mkdtemp(prefix="seg-bench-"))  # auto measured afresh
    from seg.infer.held_out import evaluation_cases
    from seg.infer.model_io import load_model

    model = load_model(args.model)
    cases = evaluation_cases(args.cache, args.fold)[: args.cases]
    images = [np.load(Path(args.cache) / "cases" / f"{c.case_id}.npz")["image"] for c in cases]
    label_dir = str(Path(cases[0].label).parent) if cases[0].label else None
    files = [c.images[0] for c in cases]
    common = ["--precision", args.precision, "--overlap", str(args.overlap), "--num-threads", str(args.threads)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        voxels = sum(int(np.prod(nib_shape(f))) for f in files)
        results = {}
        for name, extra in (("seg infer --no-tta", ["--no-tta"]), ("seg infer (TTA)", [])):
            seconds, pred = seg_infer(args.model, files, work / name.replace(" ", "_"), [*common, *extra], label_dir)
            results[name] = {
                "voxels_per_s": pred["summary"]["voxels_per_second"],  # the case loop, first read to last write
                "wall_s": round(seconds, 1),
                "metrics": pred["metrics"],
            }
        picks = {"ours": auto_precision(model.net, model), "monai": auto_precision(monai_net(model), model)}
        for precision in ("32", "bf16"):
            results[f"ours Predictor {precision}{'*' if picks['ours'] == precision else ''} (network only)"] = {
                "voxels_per_s": round(ours_network_speed(model, images, args.overlap, precision, False))
            }
            results[f"monai AttentionUnet {precision}{'*' if picks['monai'] == precision else ''} (network only)"] = {
                "voxels_per_s": round(monai_speed(model, images, args.overlap, precision))
            }
        if args.large:
            results["large"] = large_volume(args.model, work, args.precision)
    from seg.runtime import describe_machine

    print(f"machine: {describe_machine().line()}")
    print(
        f"model {args.model}  patch {list(model.patch_size)}  overlap {args.overlap}  seg infer --precision "
        f"{args.precision} (resolved: {pred['settings']['precision']}, windows {pred['settings']['sw_batch_size']})  "
        f"threads {args.threads}  cases {len(cases)} ({voxels} voxels)"
    )
    print(f"{'':38s} {'voxels/s':>10s}  {'dice per class':s}")
    for name, r in results.items():
        if name == "large":
            continue
        m = r.get("metrics") or {}
        dice = "  ".join(f"{k[5:]}={v:.3f}" for k, v in m.items() if k.startswith("dice_") and v is not None)
        print(f"{name:38s} {r['voxels_per_s']:>10,d}  {dice}")
    at = lambda who: next(r["voxels_per_s"] for k, r in results.items() if k.startswith(who) and "*" in k)  # noqa: E731
    print(f"ours / monai, network only, each at its auto precision: {at('ours Predictor') / at('monai'):.2f}x")
    if "large" in results:
        lg = results["large"]
        print(
            f"512x512x400 volume, seg infer --no-tta: {lg['seconds']} s, peak RSS {lg['peak_rss_gib']} GiB, "
            f"{lg['voxels_per_s']:,d} voxels/s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def nib_shape(path: str) -> tuple[int, ...]:
    from seg.data.io import read_image

    return read_image(path)[0].shape[:3]


if __name__ == "__main__":
    main()
