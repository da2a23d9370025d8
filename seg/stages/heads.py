"""`seg heads MODEL`: which attention matters on the model's held-out cases: every head's and gate level's Dice drop
when masked and gradient proxy, the pruning curve and the hardening curve (heads.csv, heads.json, pictures,
heads.html), logged into the model's MLflow run. Not a DVC stage: it reads a trained model and the cache."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seg.errors import ModelDataMismatch
from seg.stages.common import parse, report_errors

STAGE = "heads"
HELP = "importance of every attention head and gate (masking, gradient proxy), pruning and hardening curves"
CODE = 2  # exit status of a user error


def held_out(model, cache: str | None, fold, max_cases: int | None):
    """The held-out cases of `cache` (default: the model's data.cache_dir) for `fold` (default: its data.fold)."""
    from seg.heads.scoring import held_out_cases

    data = model.config.data
    return held_out_cases(cache or data.cache_dir, data.fold if fold is None else fold, max_cases)


def parse_fold(text: str):
    return text if text == "all" else int(text)


def add_case_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model folder, Lightning .ckpt, or MLflow URI")
    p.add_argument("--cache", help="preprocessed cache with the held-out cases (default: the model's data.cache_dir)")
    p.add_argument("--fold", type=parse_fold, help="the fold whose validation cases score (default: the model's)")
    p.add_argument("--max-cases", dest="max_cases", type=int, help="score on the first N held-out cases")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_case_arguments(p)
    p.add_argument("--out", default="outputs/heads", help="output folder (default: outputs/heads)")
    p.add_argument("--no-pruning", dest="pruning", action="store_false", help="skip the pruning curve")
    p.add_argument("--no-hardening", dest="hardening", action="store_false", help="skip the hardening curve")
    p.add_argument(
        "--mlflow",
        dest="log_mlflow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log into the model's MLflow run (default on)",
    )


def main(args: argparse.Namespace) -> int:
    from seg.heads.run import analyse_heads
    from seg.infer.model_io import load_model
    from seg.models.heads import gate_levels, head_layers

    model = load_model(args.model)
    if not head_layers(model.net) and not gate_levels(model.net):
        raise ModelDataMismatch(
            f"{args.model}: the network has no attention gate and no multi-head layer, so there is nothing to rank "
            f"(see `seg model`). Use a model with gates (model.gate_levels) or self-attention."
        )
    cases = held_out(model, args.cache, args.fold, args.max_cases)
    s = analyse_heads(model, cases, args.out, args.pruning, args.hardening, args.log_mlflow)
    print(
        f"{s.heads} heads and {s.gates} gate levels on {len(cases)} cases (mean Dice {s.dice:.4f}), "
        f"Spearman(masking, proxy) over heads {s.spearman_heads:.3f}, {s.seconds:.0f} s -> {s.out}/heads.html"
    )
    if s.logged_run:
        print(f"logged into MLflow run {s.logged_run}")
    return 0


def command(argv: Sequence[str] | None = None) -> int:
    return report_errors(sys.modules[__name__], parse(add_arguments, STAGE, argv))
