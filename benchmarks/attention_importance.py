"""Which attention matters, on real data in one run: soft against hard gates, softmax against top-k self-attention,
the importance of every head and gate of a 4-head gate model and a self-attention model, Dice against heads kept,
and what pruning half of the heads costs.

Rows, each one change to params.yaml's model (on configs/unet2d.yaml's network for 2D), trained for the same budget
at the same patch and scored on the same held-out cases as `attention_ablation.py` does (Task04: fold 0 of 5 held
out, 42 cases, `seg infer` with mirroring TTA, Dice in the original grid; DSB2018: the same with the 2D network):
  soft_gates     the default: soft additive gates on every skip
  hard_gates     model.gate_coefficients hard: 0 or 1 forward, straight-through gradient
  gumbel_gates   model.gate_coefficients gumbel: hard, decided on Gumbel-sigmoid samples while training
  gates_4head    model.gate_heads 4
  sa_softmax     global self-attention (4 heads) at the bottleneck, windowed (4 heads) one level above
  sa_topk        the same, each query keeping its --top-k highest-scoring keys
Then, per row, `seg heads` on the held-out cases (preprocessed grid, no TTA): every head's and gate level's Dice
drop when masked and gradient proxy, their Spearman correlation, the pruning curve (Dice against heads kept), the
hardening curve of soft gates; and for rows with heads, `seg prune --keep 0.5` and the pruned model's held-out
Dice with TTA, beside its forward time against the masked model's.

Run:  python benchmarks/attention_importance.py [--minutes 10] [--minutes-2d 3] [--only ROW ...] [--threads 2]
      [--top-k 8] [--keep DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from attention_ablation import SHARED, variant_params  # benchmarks/ is first on sys.path
from measure import in_fresh_process
from train_hippocampus import held_out_dice, preprocess, run, train_ours

ROWS = ("soft_gates", "hard_gates", "gumbel_gates", "gates_4head", "sa_softmax", "sa_topk")
WITH_HEADS = ("gates_4head", "sa_softmax", "sa_topk")
TOP_K = {"k": 8}


def row_model(name: str, levels: int) -> dict:
    bottleneck = levels - 1
    self_attention = {"self_attention": {bottleneck: "global", bottleneck - 1: "window"}}
    return {
        "soft_gates": {},
        "hard_gates": {"gate_coefficients": "hard"},
        "gumbel_gates": {"gate_coefficients": "gumbel"},
        "gates_4head": {"gate_heads": 4},
        "sa_softmax": self_attention,
        "sa_topk": {**self_attention, "self_attention_top_k": TOP_K["k"]},
    }[name]


def seg_cli(*args: str) -> str:
    return run([sys.executable, "-m", "seg.cli", *args])


def measured_row(name: str, cache: Path, work: Path, minutes: float, patch: list[int], threads: int) -> dict:
    params = variant_params(name, work, patch, model_2d=len(patch) == 2, keys=row_model)
    result = train_ours(cache, work, minutes, threads, "auto", str(params), tta=True, fold=0)
    model = work / "model"
    seg_cli("heads", str(model), "--out", str(work / "heads"), "--no-mlflow")
    result["heads"] = json.loads((work / "heads" / "heads.json").read_text())
    if name in WITH_HEADS:
        printed = seg_cli("prune", str(model), "--keep", "0.5", "--out", str(work / "pruned"))
        pruning = json.loads((work / "pruned" / "pruning.json").read_text())
        dice, _ = held_out_dice(work / "params.yaml", work / "pruned", work / "pred_pruned", threads, tta=True)
        result["pruned"] = {**{k: v for k, v in pruning.items() if k != "steps"}, "dice_tta": dice, "line": printed}
    return result


def section(title: str, data: Path, minutes: float, patch: list[int], args, work: Path) -> dict[str, dict]:
    cache = work / "cache"
    if not (cache / "fingerprint.json").is_file():
        preprocess(data, cache)
    results = {}
    for name in args.only or ROWS:
        print(f"  {title}: {name} ({minutes:g} min)", flush=True)
        results[name] = in_fresh_process(measured_row, name, cache, work / name, minutes, patch, args.threads)
    return results


def print_section(title: str, results: dict[str, dict], minutes: float, patch: list[int]) -> None:
    classes = [k for k in next(iter(results.values()))["dice"] if k != "mean"]
    print(f"\n{title}, fold 0 held out, {minutes:g} min each, patch {'x'.join(map(str, patch))}, TTA")
    print(f"{'':13s} " + " ".join(f"{c[:9]:>9s}" for c in classes) + f" {'mean':>7s} {'samples/s':>10s}  pruned 50%")
    for name, r in results.items():
        d, pruned = r["dice"], r.get("pruned")
        tail = ""
        if pruned:
            tail = (
                f"  {pruned['heads_before']}->{pruned['heads_after']} heads: {pruned['dice_tta']['mean']:.3f} "
                f"({pruned['dice_tta']['mean'] - d['mean']:+.3f}); forward {pruned['ms_masked']:.1f} -> "
                f"{pruned['ms_pruned']:.1f} ms"
            )
        print(
            f"{name:13s} " + " ".join(f"{d.get(c, float('nan')):9.3f}" for c in classes) + f" {d['mean']:7.3f} "
            f"{r['samples_per_s']:10.2f}{tail}"
        )
    for name, r in results.items():
        print_importance(name, r["heads"])


def print_importance(name: str, h: dict) -> None:
    print(
        f"\n  {name}: held-out mean Dice {h['dice']:.4f} (preprocessed grid, no TTA); "
        f"Spearman(masking, proxy): heads {h['spearman']['heads']}, gates {h['spearman']['gates']}"
    )
    for row in h["heads"]:
        print(f"    {row['layer']:13s} h{row['head']}  drop {row['dice_drop']:+.4f}  proxy {row['proxy']:.3g}")
    for g in h["gates"]:
        print(
            f"    {g['layer']:13s} all drop removed {g['drop_passed']:+.4f}, blocked {g['drop_blocked']:+.4f}, "
            f"proxy {g['proxy']:.3g}"
        )
    if len(h["pruning"]) > 1:
        print("    heads kept -> Dice: " + ", ".join(f"{s['share_kept']:.0%} {s['dice']:.4f}" for s in h["pruning"]))
    if h["hardening"]:
        print(
            "    hardened at t -> Dice (share 0, skippable FLOPs share): "
            + ", ".join(
                f"{'soft' if p['threshold'] is None else p['threshold']} {p['dice']:.4f} ({p['zero_share']:.0%}, "
                f"{p['flops_share']:.1%})"
                for p in h["hardening"]
            )
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
    p.add_argument("--top-k", dest="top_k", type=int, default=8, help="keys each query keeps in sa_topk")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep", default=None, help="keep the work folder (caches, models, outputs) here")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    TOP_K["k"] = args.top_k
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
                if args.json:
                    Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"\nmachine: {describe_machine().line()}; {args.threads} threads")
    for title, _, minutes, patch, key in sections:
        if key in results:
            print_section(title, results[key], minutes, patch)


if __name__ == "__main__":
    main()
