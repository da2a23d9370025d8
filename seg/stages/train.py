"""Stage `train`: the preprocessed cache + the `model` and `train` sections -> the model folder
(`train.model_dir`), metrics/train.json and the MLflow run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seg.config import Config, load_config
from seg.stages.common import parse, report_errors, set_value

STAGE = "train"
HELP = "train on the preprocessed cache, tracked in MLflow; writes the model folder"
CODE = 2  # exit status of a user error


def run(cfg: Config, resume: bool = False):
    """Train; returns a TrainResult (model folder, MLflow run id, metrics, best checkpoint)."""
    from seg.train.run import train

    return train(cfg, resume=resume)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="params.yaml", help="YAML config (default: params.yaml)")
    p.add_argument("--resume", action="store_true", help="continue the last checkpoint, in the same MLflow run")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key, e.g. train.max_epochs=5")


def main(args: argparse.Namespace) -> int:
    overrides = dict(kv.split("=", 1) for kv in args.set or [])
    cfg = load_config(args.config, overrides={k: set_value(v) for k, v in overrides.items()})
    result = run(cfg, resume=args.resume)
    if result.metrics:
        print(f"model: {result.model_dir}  mlflow run: {result.run_id}")
        print("metrics: " + ", ".join(f"{k}={v}" for k, v in result.metrics.items()))
    return 0


def command(argv: Sequence[str] | None = None) -> int:
    """`pipelines/train.py` (the DVC stage) and `seg train`: parse `argv`, run, report user errors in one line."""
    return report_errors(sys.modules[__name__], parse(add_arguments, STAGE, argv))
