"""ONNX export parity and speed: `seg infer` with the torch backend against `seg infer --backend onnxruntime` on
the same model (exported here with `seg export`), the same cases, windows, TTA and threads, in one run, on CPU.

1. Parity, per case and overall: max |probability difference| (the probability maps `--probabilities` writes, in
   the input's space) and whether the label maps are identical voxel for voxel. Targets: <= 1e-4, identical.
2. Speed: voxels/s of each backend end to end (read, preprocess, windows with TTA, restore, write: the figure
   predictions.json reports), and the batch's seconds. Torch runs at float32 by default (--torch-precision), the
   precision of the export, so both compute the same thing; both at --threads and --sw-batch-size.
3. The Dice of each backend against the labels (the held-out cases have them), which parity makes equal.

Cases: the evaluation cases of the config's cache, by default the test part (`--fold all`) of Task04
(hippocampus) when --config points at a Task04 cache, as benchmarks/train_hippocampus.py trains it.

Run:  python benchmarks/onnx_parity.py --model MODEL_FOLDER --config PARAMS.yaml [--fold all] [--threads 2]
      [--sw-batch-size 2] [--torch-precision 32] [--no-tta] [--work DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BACKENDS = ("torch", "onnxruntime")


def seg(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "seg.cli", *args], check=True)


def export(model: str, out: Path) -> Path:
    seg("export", model, "--format", "onnx", "--out", str(out))
    return out


def infer(backend: str, model: str, args, out: Path) -> dict:
    """`seg infer` of the evaluation cases with `backend`; its predictions.json."""
    precision = args.torch_precision if backend == "torch" else "32"
    seg(
        "infer",
        *("--config", args.config, "--model", model, "--output", str(out), "--fold", args.fold),
        *("--backend", backend, "--precision", precision, "--sw-batch-size", str(args.sw_batch_size)),
        *("--num-threads", str(args.threads), "--probabilities", "--overwrite"),
        *([] if args.tta else ["--no-tta"]),
    )
    return json.loads((out / "predictions.json").read_text())


def outputs_of(record: dict, root: Path) -> tuple[Path, Path]:
    """(label map, probability map) of a case record, relative to the backend's output folder."""
    rel = [Path(p).relative_to(root) for p in record["outputs"]]
    probabilities = next(p for p in rel if p.parts[0] == "probabilities")
    labels = next(p for p in rel if len(p.parts) == 1 and not p.name.endswith((".txt", ".json")))
    return labels, probabilities


def compare(case: str, torch_record: dict, roots: dict[str, Path]) -> dict:
    from seg.data.io import read_image

    labels, probabilities = outputs_of(torch_record, roots["torch"])
    la, lb = (read_image(str(roots[b] / labels))[0] for b in BACKENDS)
    pa, pb = (read_image(str(roots[b] / probabilities))[0].astype(np.float64) for b in BACKENDS)
    return {
        "case": case,
        "max_probability_difference": float(np.abs(pa - pb).max()),
        "labels_identical": bool(la.shape == lb.shape and np.array_equal(la, lb)),
        "voxels_differing": int((la != lb).sum()) if la.shape == lb.shape else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model folder (or .ckpt, MLflow URI) that `seg export` takes")
    p.add_argument("--config", required=True, help="params whose data.cache_dir is the cache the model was trained on")
    p.add_argument("--fold", default="all", help="evaluation cases: a fold's validation cases, or all: the test part")
    p.add_argument("--threads", type=int, default=2, help="threads of both backends (torch, ORT intra-op)")
    p.add_argument("--sw-batch-size", type=int, default=2, help="windows per forward pass, both backends")
    p.add_argument("--torch-precision", default="32", choices=("32", "bf16", "auto"), help="torch's precision")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True, help="mirroring TTA (both)")
    p.add_argument("--work", help="folder for the export and predictions (default: a temporary one)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()

    from seg.runtime import describe_machine

    work = Path(args.work or tempfile.mkdtemp(prefix="onnx-parity-"))
    print(f"machine: {describe_machine().line()}; {args.threads} threads", flush=True)
    onnx_file = export(args.model, work / "model.onnx")
    roots = {b: work / b for b in BACKENDS}
    runs = {b: infer(b, args.model if b == "torch" else str(onnx_file), args, roots[b]) for b in BACKENDS}
    cases = [compare(c, r, roots) for c, r in sorted(runs["torch"]["cases"].items()) if r["status"] == "ok"]
    results = {
        "machine": describe_machine().line(),
        "threads": args.threads,
        "cases": cases,
        "max_probability_difference": max((c["max_probability_difference"] for c in cases), default=None),
        "labels_identical": all(c["labels_identical"] for c in cases),
        "backends": {
            b: {
                "voxels_per_second": r["summary"]["voxels_per_second"],
                "seconds": r["summary"]["seconds"],
                "precision": r["settings"]["precision"],
                "dice_mean": (r["metrics"] or {}).get("dice_mean"),
            }
            for b, r in runs.items()
        },
    }
    print(f"\n{len(cases)} cases, fold {args.fold}, TTA {'on' if args.tta else 'off'}, {args.threads} threads")
    print(f"max |probability difference| {results['max_probability_difference']:.2e} (target <= 1e-4)")
    print(f"label maps identical: {results['labels_identical']}")
    print(f"\n{'backend':12s} {'precision':>9s} {'voxels/s':>12s} {'seconds':>9s} {'Dice mean':>10s}")
    for b, r in results["backends"].items():
        dice = f"{r['dice_mean']:.4f}" if r["dice_mean"] is not None else "n/a"
        print(f"{b:12s} {r['precision']:>9s} {r['voxels_per_second'] or 0:>12,d} {r['seconds']:>9.1f} {dice:>10s}")
    speed = [results["backends"][b]["voxels_per_second"] for b in BACKENDS]
    if all(speed):
        print(f"onnxruntime / torch: {speed[1] / speed[0]:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
