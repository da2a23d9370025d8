"""What `seg heads` writes, in its output folder:

heads.csv        one row per head (layer, head) and per gate level (head "all"): the Dice drop when masked
                 (for gates: removed, and blocked), the gradient proxy raw and normalised, both ranks
heads.json       the same, the Spearman correlations, the pruning steps and the hardening curve
heads.png        heat maps layer x head: Dice drop and proxy;  gates.png, pruning.png, hardening.png
heads.html       the report: tables, pictures and what each number means
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from seg.explain.outputs import png_bytes, write_png
from seg.explain.report import Figure, Table, write_report
from seg.files import finite, write_json, write_text
from seg.heads.hardening import HardeningPoint
from seg.heads.importance import Importance
from seg.heads.plots import render_gates, render_hardening, render_heat_maps, render_pruning
from seg.heads.pruning import PruningStep

COLUMNS = ("layer", "head", "dice_drop", "dice_drop_blocked", "proxy", "proxy_normalised", "rank_drop", "rank_proxy")

DEFINITIONS = {
    "Mean Dice": "On the held-out cases in the preprocessed space, as validation during training: sliding windows at "
    "the training patch, argmax, per class the mean over cases, then the mean over foreground classes.",
    "Dice drop": "Mean Dice of the whole model minus the mean Dice with one head's output set to 0 (Michel et al. "
    "2019's masking); for a gate level, with its coefficients set to 1 (the gate removed: the skip passes "
    "unweighted through its output transform) and set to 0 (the skip blocked).",
    "Gradient proxy": "E |dL/d xi| over windows that tile the held-out cases, xi = 1 a variable multiplying each "
    "head's output (for gate levels: moving the coefficients towards 1), L the training loss (Dice + cross-entropy); "
    "heads are ranked and pruned by it as it is; `proxy_normalised` is Michel et al.'s, divided by the L2 norm over "
    "the layer's heads (gate levels: over the levels), which hides that whole layers matter more than others.",
    "Rank": "1 = the most important by that measure, over all heads (gate levels ranked among themselves).",
    "Spearman": "Rank correlation of the Dice drops and the proxies (and the per-layer normalised proxies), NaN below "
    "3 heads.",
    "Pruning": "Starting from every head, the 10% of all heads with the lowest proxy (re-estimated on the "
    "masked model) are masked per step; every layer keeps at least one head.",
    "Hardening": "Every gate's coefficients thresholded to 0 or 1 at inference. Positions set to 0 need no output "
    "convolution of the gate (2 C^2 FLOPs each); a dense kernel computes them anyway, so nothing is saved in "
    "time unless that convolution runs on the kept positions only.",
}


def rows(result: Importance) -> list[dict]:
    drop_rank = _ranks([h.dice_drop for h in result.heads])
    proxy_rank = _ranks([h.proxy for h in result.heads])
    out = [
        dict(
            layer=h.layer,
            head=h.head,
            dice_drop=h.dice_drop,
            dice_drop_blocked=None,
            proxy=h.proxy,
            proxy_normalised=h.proxy_normalised,
            rank_drop=r1,
            rank_proxy=r2,
        )
        for h, r1, r2 in zip(result.heads, drop_rank, proxy_rank, strict=True)
    ]
    gate_drop, gate_proxy = _ranks([g.drop_passed for g in result.gates]), _ranks([g.proxy for g in result.gates])
    out += [
        dict(
            layer=g.layer,
            head="all",
            dice_drop=g.drop_passed,
            dice_drop_blocked=g.drop_blocked,
            proxy=g.proxy,
            proxy_normalised=g.proxy_normalised,
            rank_drop=r1,
            rank_proxy=r2,
        )
        for g, r1, r2 in zip(result.gates, gate_drop, gate_proxy, strict=True)
    ]
    return out


def _ranks(values: Sequence[float]) -> list[int]:
    return [int(r) for r in rankdata([-v for v in values], method="min")] if values else []


def summary(result: Importance, steps: Sequence[PruningStep], curve: Sequence[HardeningPoint], facts: Mapping) -> dict:
    return {
        **facts,
        "dice": result.dice,
        "spearman": {
            "heads": result.spearman_heads,
            "heads_per_layer": result.spearman_heads_per_layer,
            "gates": result.spearman_gates,
        },
        "heads": [dataclasses.asdict(h) for h in result.heads],
        "gates": [dataclasses.asdict(g) for g in result.gates],
        "pruning": [dataclasses.asdict(s) for s in steps],
        "hardening": [dataclasses.asdict(p) for p in curve],
    }


def metrics(result: Importance) -> dict[str, float]:
    """Flat metrics for MLflow (`heads/<layer>/h<h>/dice_drop`, ...)."""
    out = {
        "dice": result.dice,
        "spearman_heads": result.spearman_heads,
        "spearman_heads_per_layer": result.spearman_heads_per_layer,
        "spearman_gates": result.spearman_gates,
    }
    for h in result.heads:
        out[f"{h.layer}/h{h.head}/dice_drop"] = h.dice_drop
        out[f"{h.layer}/h{h.head}/proxy"] = h.proxy
    for g in result.gates:
        out[f"{g.layer}/dice_drop"] = g.drop_passed
        out[f"{g.layer}/dice_drop_blocked"] = g.drop_blocked
    return {k: v for k, v in out.items() if v == v}  # NaN correlations (too few heads) are left out


def write_outputs(
    out: Path, result: Importance, steps: Sequence[PruningStep], curve: Sequence[HardeningPoint], facts: Mapping
) -> dict[str, np.ndarray]:
    """Write every file; returns the pictures by name (for MLflow)."""
    out.mkdir(parents=True, exist_ok=True)
    table = rows(result)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS)
    writer.writeheader()
    writer.writerows(table)
    write_text(out / "heads.csv", buffer.getvalue())
    write_json(out / "heads.json", finite(summary(result, steps, curve, facts)))
    pictures = {
        name: rgb
        for name, rgb in (
            ("heads", render_heat_maps(result)),
            ("gates", render_gates(result)),
            ("pruning", render_pruning(steps)),
            ("hardening", render_hardening(curve)),
        )
        if rgb is not None
    }
    for name, rgb in pictures.items():
        write_png(rgb, out / f"{name}.png")
    _report(out / "heads.html", result, table, steps, curve, facts, pictures)
    return pictures


def _report(path, result, table, steps, curve, facts, pictures) -> None:
    tables = [
        Table(
            f"Importance (mean Dice {result.dice:.4f}; Spearman heads {result.spearman_heads:.3f}, per-layer "
            f"normalised {result.spearman_heads_per_layer:.3f}, gates {result.spearman_gates:.3f})",
            COLUMNS,
            [[r[c] for c in COLUMNS] for r in table],
        )
    ]
    if steps:
        tables.append(
            Table(
                "Pruning", ("heads kept", "share", "mean Dice"), [[s.heads_kept, s.share_kept, s.dice] for s in steps]
            )
        )
    if curve:
        tables.append(
            Table(
                "Hardening the gates",
                ("threshold", "mean Dice", "positions at 0", "skippable FLOPs per window", "share of the network's"),
                [
                    [
                        "as trained" if p.threshold is None else p.threshold,
                        p.dice,
                        p.zero_share,
                        p.flops_skippable,
                        p.flops_share,
                    ]
                    for p in curve
                ],
            )
        )
    figures = [Figure(name, png_bytes(rgb)) for name, rgb in pictures.items()]
    write_report(
        path,
        "Which attention matters",
        {k: str(v) for k, v in facts.items()},
        tables,
        [("Pictures", figures)],
        DEFINITIONS,
    )
