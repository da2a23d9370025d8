"""Stage `pseudo` (`seam/dvc.yaml`): a SEAM model (`train.supervision: seam`) -> pseudo masks for the training cases
of the fold, written as a cache (`seam.pseudo_cache`) that the normal segmentation training reads with
`--set data.cache_dir=<seam.pseudo_cache>`; see `seg.seam.pseudo`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seg.config import Config, load_config
from seg.stages.common import parse, report_errors

STAGE = "pseudo"
HELP = "SEAM: pseudo masks of the training cases from a model trained on presence labels"
CODE = 1


def run(cfg: Config, model: str | None = None, out: str | None = None, log=print):
    """Pseudo masks of data.fold's training cases (of data.cache_dir) from `model` (default seam.model) into `out`
    (default seam.pseudo_cache); returns a PseudoResult."""
    from seg.infer.model_io import load_model
    from seg.seam.pseudo import write_pseudo_cache

    bundle = load_model(model or cfg.seam.model)
    return write_pseudo_cache(
        bundle, cfg.data.cache_dir, out or cfg.seam.pseudo_cache, cfg.data.fold, cfg.seam.labels_file, log
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="params.yaml", help="YAML config; data and seam sections (default: params.yaml)")
    p.add_argument("--model", default=None, help="the SEAM model folder (default: seam.model)")
    p.add_argument("--out", default=None, help="the pseudo-mask cache (default: seam.pseudo_cache)")
    p.add_argument(
        "--metrics-file",
        dest="metrics_file",
        default=None,
        help="also write the pseudo masks' mean Dice per class here (JSON, for DVC)",
    )


def main(args: argparse.Namespace) -> int:
    result = run(load_config(args.config), args.model, args.out)
    if args.metrics_file:
        from seg.files import write_json

        write_json(
            args.metrics_file,
            {
                "cases": result.cases,
                "background": result.background,
                **{f"dice_{n}": v for n, v in result.dice.items()},
                "dice_mean": sum(result.dice.values()) / max(len(result.dice), 1),
            },
        )
    dice = ", ".join(f"{n} {v:.3f}" for n, v in result.dice.items())
    scores = ", ".join(f"{n} {v:g}" for n, v in result.background.items())
    print(
        f"{result.cases} pseudo masks (background scores {scores}) -> {result.cache}; Dice against the "
        f"training masks (scoring only): {dice} ({result.seconds:.1f} s)"
    )
    return 0


def command(argv: Sequence[str] | None = None) -> int:
    """`pipelines/pseudo.py` (the DVC stage) and `seg pseudo`: parse, run, report user errors in one line."""
    return report_errors(sys.modules[__name__], parse(add_arguments, STAGE, argv))
