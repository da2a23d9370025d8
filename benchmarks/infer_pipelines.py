"""Batch inference pipelines side by side on CPU, same cases, one run: voxels/s read to written and peak memory.

Rows (each pipeline its own child process, torch threads = --threads; voxels are the input files' in every row).
Columns: voxels/s and wall s of the timed part; process s: the whole child (start-up, model load, tuning).
  seg infer --no-tta     `python -m seg.cli infer --no-tta --overwrite --num-threads T`: predictions.json's
                         summary.voxels_per_second (the case loop, first read to last write; without it voxels /
                         summary.seconds); per-stage sums printed when the cases carry `timings`
  seg network only       our Predictor, no TTA, 2 windows per pass, at the precision `auto` resolves, on the arrays
                         seg.data.preprocess.preprocess_image makes of the same files: network time only (one
                         untimed pass first), as benchmarks/infer.py's ours_network_speed
  MONAI                  LoadImage(image_only) -> EnsureChannelFirst -> the model's normalisation (z-score:
                         NormalizeIntensity(nonzero=False); CT: clip and z-score with the fingerprint's numbers) ->
                         sliding_window_inference(AttentionUnet built as benchmarks/infer.py's monai_net, untrained)
                         at the seg model's patch size, overlap 0.5, 2 windows, gaussian, float32 -> argmax ->
                         SaveImage (.nii.gz, MONAI's default folder per case); timed first read to last write, model
                         build excluded. No reorientation, cropping or resampling (seg does those)
  nnU-Net v2             nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False, CPU,
                         perform_everything_on_device=False) in --nnunet-python's environment, fold 0 of
                         --nnunet-model; only predict_from_files (3 preprocessing and 3 export processes, as
                         nnUNetv2_predict's defaults) is timed. Its checkpoint_final/best/latest.pth, the first that
                         exists, in nnUNetTrainer's network (that of its nnUNetTrainer_Xepochs variants too; the
                         predictor's own loading finds the trainer by importing every trainer module, timm and
                         torchvision with them, which fail beside the CPU torch); with none (a short training run
                         finishes no epoch) untrained, marked so in the row: speed does not depend on the weights
Peak RSS: the largest single process (ru_maxrss from wait4, which covers the child and its waited-for workers),
and "tree": the sum over the child's process tree, sampled every 0.1 s (what multi-process pipelines really hold).
Ratios: row voxels/s over seg network only; seg infer over the row (seg e2e / MONAI e2e on MONAI's row).

Inputs: the first --cases files of <data>/imagesTs (the test part; imagesTr when the folder has none), read in
place through symlinks. --large adds a synthetic CT-like volume (--large-shape, 0.8x0.8x1 mm) through seg infer
without and with --gates (target: peak RSS <= 3 GiB), MONAI, and nnU-Net with --nnunet-large (slow).

Run:  python benchmarks/infer_pipelines.py --model models/latest [--data ../shared/data/Task04_Hippocampus]
      [--cases 20] [--threads 2] [--nnunet-model RESULTS/Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres]
      [--nnunet-python .venv-nnunet/bin/python] [--large [--large-shape 512 512 400] [--nnunet-large]]
      [--work DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_best.pth", "checkpoint_latest.pth")

NNUNET = r"""
import json, os, sys, time, torch
a = json.loads(sys.argv[1]); torch.set_num_threads(a["threads"])
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
p = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False, device=torch.device("cpu"),
                    perform_everything_on_device=False, allow_tqdm=False)
dj = load_json(os.path.join(a["model"], "dataset.json"))
pm = PlansManager(load_json(os.path.join(a["model"], "plans.json")))
cm = pm.get_configuration("3d_fullres")
net = nnUNetTrainer.build_network_architecture(
    pm, cm, determine_num_input_channels(pm, cm, dj), pm.get_label_manager(dj).num_segmentation_heads, False)
ckpt = a["checkpoint"] and torch.load(os.path.join(a["model"], "fold_0", a["checkpoint"]), weights_only=False)
weights = ckpt["network_weights"] if ckpt else net.state_dict()
p.manual_initialization(net.eval(), pm, cm, [weights], dj, "nnUNetTrainer", None)
start = time.perf_counter()
p.predict_from_files(a["input"], a["output"], num_processes_preprocessing=3, num_processes_segmentation_export=3)
print("RESULT " + json.dumps({"seconds": time.perf_counter() - start}))
"""


def measure(cmd: list[str], env: dict, log: Path) -> dict:
    """Run `cmd`: wall seconds, peak RSS of its largest process (wait4) and the sampled peak of its tree's sum."""
    import psutil

    with open(log, "w") as f:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        tree = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:
                root = psutil.Process(proc.pid)
                tree = max(tree, sum(p.memory_info().rss for p in (root, *root.children(recursive=True))))
            except psutil.Error:
                pass
            time.sleep(0.1)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{text[-3000:]}")
    result = next((json.loads(ln[7:]) for ln in text.splitlines()[::-1] if ln.startswith("RESULT ")), {})
    peak, tree = usage.ru_maxrss / 2**20, max(tree / 2**30, usage.ru_maxrss / 2**20)
    return {"process_s": round(wall, 2), "peak_rss_gib": round(peak, 3), "tree_rss_gib": round(tree, 3), **result}


def link_inputs(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / f.name).symlink_to(f.resolve())
    return folder


def seg_e2e(args, src: Path, out: Path, voxels: int, env: dict, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "seg.cli", "infer", "--model", args.model, "--input", str(src), "--output"]
    cmd += [str(out), "--no-tta", "--overwrite", "--num-threads", str(args.threads), *extra]
    row = measure(cmd, env, out.parent / f"{out.name}.log")
    pred = json.loads((out / "predictions.json").read_text())
    s, stages = pred["summary"], {}
    for case in pred["cases"].values():
        for k, v in (case.get("timings") or {}).items():
            stages[k] = round(stages.get(k, 0.0) + v, 2)
    vps = s.get("voxels_per_second") or voxels / s["seconds"]
    return {**row, "voxels_per_s": round(vps), "wall_s": round(voxels / vps, 2), "stages_s": stages or None}


def worker(kind: str, a: dict) -> None:
    """In the child: seg network only, or MONAI's pipeline; prints RESULT {seconds, ...}."""
    import torch

    from seg.infer.model_io import load_model

    torch.set_num_threads(a["threads"])
    model = load_model(a["model"])
    if kind == "seg-network":
        from infer import auto_precision, ours_network_speed

        from seg.data.preprocess import preprocess_image

        images = [preprocess_image([f], model.fingerprint)[0] for f in a["files"]]
        precision = auto_precision(model.net, model)
        vps = ours_network_speed(model, images, 0.5, precision, False)
        seconds = sum(int(np.prod(i.shape[1:])) for i in images) / vps
        print("RESULT " + json.dumps({"seconds": seconds, "precision": precision}))
        return
    from infer import monai_net
    from monai.inferers import sliding_window_inference
    from monai.transforms import EnsureChannelFirst, LoadImage, NormalizeIntensity, SaveImage

    net, norm = monai_net(model), model.fingerprint.preprocessing.normalization[0]
    if norm["scheme"] == "ct":
        lo, hi, mean, std = (norm[k] for k in ("lower", "upper", "mean", "std"))
        normalize = lambda x: (x.clamp(lo, hi) - mean) / max(std, 1e-8)  # noqa: E731
    else:
        normalize = NormalizeIntensity(nonzero=False) if norm["scheme"] == "zscore" else (lambda x: x)
    load, first = LoadImage(image_only=True), EnsureChannelFirst()
    save = SaveImage(output_dir=a["output"], output_postfix="seg", output_dtype=np.uint8, print_log=False)
    start = time.perf_counter()
    with torch.inference_mode():
        for f in a["files"]:
            x = normalize(first(load(f)).float())
            logits = sliding_window_inference(x[None], model.patch_size, 2, net, overlap=0.5, mode="gaussian")
            save(logits.argmax(1, keepdim=True)[0], meta_data=x.meta)
    print("RESULT " + json.dumps({"seconds": time.perf_counter() - start}))


def child(args, kind: str, files: list[Path], out: Path, voxels: int, env: dict) -> dict:
    a = {"model": args.model, "threads": args.threads, "files": [str(f) for f in files], "output": str(out)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--worker-args", json.dumps(a)]
    row = measure(cmd, env, out.parent / f"{out.name}.log")
    return {**row, "voxels_per_s": round(voxels / row["seconds"]), "wall_s": round(row["seconds"], 2)}


def nnunet(args, files: list[Path], work: Path, voxels: int, env: dict) -> dict | None:
    folder = Path(args.nnunet_model or "")
    if not args.nnunet_model or not (folder / "plans.json").is_file():
        print(f"nnU-Net skipped: no model folder with plans.json ({args.nnunet_model})", file=sys.stderr)
        return None
    if not Path(args.nnunet_python).is_file():
        print(f"nnU-Net skipped: {args.nnunet_python} missing (make nnunet-env)", file=sys.stderr)
        return None
    ckpt = next((c for c in CHECKPOINTS if (folder / "fold_0" / c).is_file()), None)
    out = work / "out"  # explicit lists: any file ending, no _0000 names needed
    a = {"model": str(folder), "checkpoint": ckpt, "threads": args.threads, "input": [[str(f)] for f in files]}
    a["output"] = [str(out / f.name.split(".nii")[0]) for f in files]
    dirs = {k: work / k for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    [d.mkdir(parents=True, exist_ok=True) for d in dirs.values()]
    env = {**env, **{k: str(v) for k, v in dirs.items()}, "nnUNet_compile": "f"}
    row = measure([args.nnunet_python, "-c", NNUNET, json.dumps(a)], env, work / "log")
    if missing := [f.name for f in files if not (out / f"{f.name.split('.nii')[0]}.nii.gz").is_file()]:
        raise SystemExit(f"nnU-Net wrote no prediction for {missing} (see {work / 'log'})")
    row = {**row, "voxels_per_s": round(voxels / row["seconds"]), "wall_s": round(row["seconds"], 2)}
    return {**row, "checkpoint": ckpt or "untrained (no checkpoint in fold_0)"}


def make_volume(path: Path, shape: tuple[int, ...]) -> Path:
    """benchmarks/infer.py's large_volume: smooth noise zoomed from 1/16 scale, CT-like range, 0.8x0.8x1 mm."""
    import nibabel as nib
    from scipy import ndimage

    coarse = np.random.default_rng(0).normal(size=tuple(max(s // 16, 2) for s in shape)).astype(np.float32)
    volume = ndimage.zoom(coarse, [s / c for s, c in zip(shape, coarse.shape, strict=True)], order=1) * 100 + 300
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume.astype(np.float32), np.diag([0.8, 0.8, 1.0, 1.0])), path)
    return path


def run_set(args, tag: str, files: list[Path], work: Path, env: dict, large: bool) -> dict[str, dict]:
    import nibabel as nib

    voxels = sum(int(np.prod(nib.load(f).shape[:3])) for f in files)
    src, rows = link_inputs(files, work / "inputs"), {}
    rows[f"seg infer --no-tta{tag}"] = seg_e2e(args, src, work / "seg", voxels, env, [])
    if large:
        rows[f"seg infer --no-tta --gates{tag}"] = seg_e2e(args, src, work / "seg-gates", voxels, env, ["--gates"])
    else:
        rows[f"seg network only{tag}"] = child(args, "seg-network", files, work / "seg-network", voxels, env)
    rows[f"MONAI{tag}"] = child(args, "monai", files, work / "monai", voxels, env)
    row = nnunet(args, files, work / "nnunet", voxels, env) if not large or args.nnunet_large else None
    if row is not None:
        rows[f"nnU-Net v2{tag}"] = row
    for r in rows.values():
        r["voxels"] = voxels
    return rows


def report(rows: dict[str, dict]) -> None:
    head = f"{'pipeline':42s} {'voxels/s':>11s} {'wall s':>8s} {'process s':>9s} {'peak GiB':>8s} {'tree GiB':>8s}"
    print(f"{head} {'/ seg net':>9s} {'seg e2e /':>9s}")
    for name, r in rows.items():
        tag = name[name.index(" (") :] if " (" in name else ""
        net, e2e = rows.get(f"seg network only{tag}"), rows[f"seg infer --no-tta{tag}"]
        ratio = f"{r['voxels_per_s'] / net['voxels_per_s']:9.2f}" if net else f"{'-':>9s}"
        print(
            f"{name:42s} {r['voxels_per_s']:>11,d} {r['wall_s']:8.2f} {r['process_s']:9.1f} {r['peak_rss_gib']:8.2f} "
            f"{r['tree_rss_gib']:8.2f} {ratio} {e2e['voxels_per_s'] / r['voxels_per_s']:9.2f}"
        )
    for name, r in rows.items():
        if r.get("stages_s"):
            print(f"{name}: stage sums (s) " + ", ".join(f"{k} {v}" for k, v in r["stages_s"].items()))
        if r.get("precision"):
            print(f"{name}: precision {r['precision']} (auto)")
        if r.get("checkpoint"):
            print(f"{name}: nnUNetPredictor.predict_from_files, checkpoint {r['checkpoint']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/latest")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "Task04_Hippocampus"))
    p.add_argument("--cases", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--nnunet-model", default=None, help="nnUNet_results/DatasetXXX/nnUNetTrainer__nnUNetPlans__3d_fullres"
    )
    p.add_argument("--nnunet-python", default=str(REPO / ".venv-nnunet" / "bin" / "python"))
    p.add_argument("--large", action="store_true", help="also the large synthetic volume")
    p.add_argument("--large-shape", type=int, nargs=3, default=[512, 512, 400])
    p.add_argument("--nnunet-large", action="store_true", help="nnU-Net on the large volume too (slow)")
    p.add_argument("--work", default=None, help="keep inputs, outputs and logs here (default: a temporary folder)")
    p.add_argument("--json", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-args", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, json.loads(args.worker_args))
    from seg.runtime import describe_machine

    print(f"machine: {describe_machine().line()}", flush=True)
    data = Path(args.data)
    part = data / "imagesTs" if (data / "imagesTs").is_dir() else data / "imagesTr"
    files = sorted(f for f in part.glob("*.nii.gz") if not f.name.startswith("._"))[: args.cases]
    if not files:
        raise SystemExit(f"{part}: no .nii.gz images. Pass --data /path/to/Task04_Hippocampus.")
    with tempfile.TemporaryDirectory(prefix="infer-pipelines-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))),
            "OMP_NUM_THREADS": str(args.threads),
            "SEG_CACHE_DIR": str(work / "seg-cache"),  # `auto` measured afresh, once for the run
        }
        print(f"model {args.model}, {len(files)} cases of {part}, threads {args.threads}", flush=True)
        rows = run_set(args, "", files, work / "cases", env, False)
        if args.large:
            shape = tuple(args.large_shape)
            volume = make_volume(work / "large" / f"ct_{'x'.join(map(str, shape))}.nii", shape)
            rows |= run_set(args, f" ({'x'.join(map(str, shape))})", [volume], work / "large-run", env, True)
    report(rows)
    monai = {k: r for k, r in rows.items() if k.startswith("MONAI")}
    for k, r in monai.items():
        e2e = rows["seg infer --no-tta" + k[5:]]
        print(f"seg e2e / MONAI e2e{k[5:]}: {e2e['voxels_per_s'] / r['voxels_per_s']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": describe_machine().line(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
