"""`seg heads` and `seg prune` as library calls: load the held-out cases, measure, write, log."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from seg.heads.hardening import hardening_curve
from seg.heads.importance import importance
from seg.heads.outputs import metrics, write_outputs
from seg.heads.pruning import forward_ms, prune_by_proxy
from seg.heads.scoring import Scorer, ScoringCase
from seg.model_folder import ModelBundle, config_hash, save_bundle
from seg.models.heads import head_layers, keep_only, masked, prune

OUTPUT_FILES = ("heads.csv", "heads.json", "heads.html", "heads.png", "gates.png", "pruning.png", "hardening.png")


@dataclass
class HeadsSummary:
    out: Path
    dice: float
    heads: int
    gates: int
    spearman_heads: float
    logged_run: str | None
    seconds: float


def analyse_heads(
    model: ModelBundle,
    cases: list[ScoringCase],
    out: str | Path,
    pruning: bool = True,
    hardening: bool = True,
    log_mlflow: bool = True,
    log: Callable[[str], None] = print,
) -> HeadsSummary:
    """Importance of every head and gate level, the pruning curve and the hardening curve on `cases`; files in
    `out`, the same in the model's MLflow run."""
    start = time.perf_counter()
    net, scorer = model.net.float().eval(), Scorer.for_model(model, cases)
    result = importance(net, scorer, log)
    steps = prune_by_proxy(net, scorer, log=log) if pruning and head_layers(net) else []
    curve = hardening_curve(net, scorer, log=log) if hardening else []
    facts = {"model": model.source, "cases": len(cases), "case ids": ", ".join(c.case_id for c in cases)}
    out = Path(out)
    pictures = write_outputs(out, result, steps, curve, facts)
    run = None
    if log_mlflow:
        from seg.tracking.analysis import log_into_run

        files = [(out / name, "heads") for name in OUTPUT_FILES]
        run = log_into_run(
            model.meta.mlflow_run_id, model.meta.tracking_uri, files, pictures, metrics(result), "heads", "heads"
        )
    seconds = time.perf_counter() - start
    return HeadsSummary(out, result.dice, len(result.heads), len(result.gates), result.spearman_heads, run, seconds)


@dataclass
class PruneSummary:
    out: Path
    heads_before: int
    heads_after: int
    dice_before: float
    dice_after: float
    ms_masked: float  # one forward pass at the training patch, the trained network with the heads masked
    ms_pruned: float  # the same, heads removed
    parameters_before: int
    parameters_after: int


def prune_model(
    model: ModelBundle, cases: list[ScoringCase], keep: float, out: str | Path, log: Callable[[str], None] = print
) -> PruneSummary:
    """Mask heads by the gradient proxy, 10% at a time, until `keep` (a share of all heads) remain; then remove
    them for real and write the smaller model to `out` (a model folder, with `pruning.json`)."""
    net, scorer = model.net.float().eval(), Scorer.for_model(model, cases)
    steps = prune_by_proxy(net, scorer, keep, log)
    kept = steps[-1].kept
    pruned = prune(net, kept).eval()
    _check_same_output(net, pruned, kept, next(scorer.windows(net.spatial_dims))[0])
    dice_after = scorer.dice(pruned)
    shape = (1, model.config.model.in_channels, *model.patch_size[-net.spatial_dims :])
    with masked(net, keep_only(net, kept)):
        ms_masked = forward_ms(net, shape)
    ms_pruned = forward_ms(pruned, shape)
    summary = PruneSummary(
        Path(out),
        steps[0].heads_kept,
        steps[-1].heads_kept,
        steps[0].dice,
        dice_after,
        ms_masked,
        ms_pruned,
        sum(p.numel() for p in net.parameters()),
        sum(p.numel() for p in pruned.parameters()),
    )
    config = dataclasses.replace(model.config, model=pruned.config)
    meta = dataclasses.replace(
        model.meta, config_hash=config_hash(config), mlflow_model_uri=None, registered_model=None
    )
    record = {
        "pruned_from": model.source,
        "heads_kept": kept,
        "cases": [c.case_id for c in cases],
        "steps": [dataclasses.asdict(s) for s in steps],
        **{k: v for k, v in dataclasses.asdict(summary).items() if k != "out"},
    }
    save_bundle(out, pruned, config, model.fingerprint, meta, extra={"pruning.json": record})
    return summary


def _check_same_output(net, pruned, kept, x: torch.Tensor) -> None:
    """The pruned network must compute what the masked one does on a window `x`; a difference is a bug in pruning."""
    with torch.no_grad(), masked(net, keep_only(net, kept)):
        expected = net(x)
        got = pruned(x)
    if not torch.allclose(expected, got, atol=1e-4, rtol=1e-4):
        raise AssertionError(f"pruned network differs from the masked one by {float((expected - got).abs().max())}")
