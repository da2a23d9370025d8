"""`seg prune MODEL --keep 0.5 --out DIR`: remove the least important attention heads (by the gradient proxy on the
model's held-out cases, 10% of the heads at a time) until the share `--keep` remains, and write a loadable model
folder whose projections hold the kept heads only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seg.config import ConfigError
from seg.errors import ModelDataMismatch
from seg.stages.common import parse, report_errors
from seg.stages.heads import add_case_arguments, held_out

STAGE = "prune"
HELP = "remove the least important attention heads for real; writes a smaller model folder"
CODE = 2  # exit status of a user error


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_case_arguments(p)
    p.add_argument("--keep", type=float, required=True, help="share of the heads to keep, in (0, 1]")
    p.add_argument("--out", required=True, help="folder for the pruned model")


def main(args: argparse.Namespace) -> int:
    from seg.heads.run import prune_model
    from seg.infer.model_io import load_model
    from seg.models.heads import head_layers

    if not 0 < args.keep <= 1:
        raise ConfigError(f"--keep must be a share of the heads in (0, 1], got {args.keep}.")
    model = load_model(args.model)
    if not head_layers(model.net):
        raise ModelDataMismatch(
            f"{args.model}: the network has no multi-head layer (multi-head gates: model.gate_heads > 1; "
            f"self-attention: model.self_attention), so there are no heads to prune."
        )
    cases = held_out(model, args.cache, args.fold, args.max_cases)
    s = prune_model(model, cases, args.keep, args.out)
    print(
        f"heads {s.heads_before} -> {s.heads_after}, parameters {s.parameters_before} -> {s.parameters_after}; "
        f"mean Dice {s.dice_before:.4f} -> {s.dice_after:.4f} on {len(cases)} cases; one forward pass "
        f"{s.ms_masked:.1f} ms masked -> {s.ms_pruned:.1f} ms pruned -> {s.out}"
    )
    return 0


def command(argv: Sequence[str] | None = None) -> int:
    return report_errors(sys.modules[__name__], parse(add_arguments, STAGE, argv))
