"""The `seg` command. Subcommands parse arguments and call one library function; heavy libraries (torch,
monai, lightning, mlflow) are imported inside the commands so `seg --help` starts fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from seg import __version__

Command = Callable[[argparse.Namespace], int]


def _cmd_model_summary(args: argparse.Namespace) -> int:
    from seg.config import load_config
    from seg.models.summary import summarize

    cfg = load_config(args.config).model
    print(summarize(cfg, args.size))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from seg.config import load_config
    from seg.train.run import train

    overrides = dict(kv.split("=", 1) for kv in args.set or [])
    cfg = load_config(args.config, overrides={k: _yaml_value(v) for k, v in overrides.items()})
    try:
        result = train(cfg, resume=args.resume)
    except (ValueError, FileNotFoundError, KeyError) as e:  # missing cache, model/data mismatch: one line, no trace
        print(f"seg train: error: {e}", file=sys.stderr)
        return 2
    if result.metrics:
        print(f"model: {result.model_dir}  mlflow run: {result.run_id}")
        print("metrics: " + ", ".join(f"{k}={v}" for k, v in result.metrics.items()))
    return 0


def _yaml_value(text: str):
    import yaml

    return yaml.safe_load(text)


def _cmd_preprocess(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from seg.config import load_config
    from seg.data.errors import DataError
    from seg.data.preprocess import preprocess_dataset

    cfg = load_config(args.config).data
    if args.root is not None:
        cfg = dataclasses.replace(cfg, root=args.root)
    try:
        result = preprocess_dataset(cfg, args.out)
    except DataError as e:
        print(f"seg preprocess: error: {e}", file=sys.stderr)
        return 1
    for problem in json.loads(result.report.read_text())["problems"]:
        print(f"skipped: {problem}", file=sys.stderr)
    print(
        f"{result.num_valid} of {result.num_cases} cases preprocessed into {result.out_dir} "
        f"({result.num_reused} up to date, {result.num_skipped} skipped, {result.seconds:.1f} s)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seg",
        description="Attention U-Nets for 2D/3D medical image segmentation: preprocess, train, infer, analyze.",
    )
    parser.add_argument("--version", action="version", version=f"seg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("model", help="build the configured network and print its levels, gates and cost")
    p.add_argument("--config", default="params.yaml", help="YAML config (default: params.yaml)")
    p.add_argument("--size", type=int, nargs="+", default=None, help="input spatial size to cost (default: 64 per axis)")
    p.set_defaults(func=_cmd_model_summary)

    p = sub.add_parser("preprocess", help="validate, fingerprint and preprocess a dataset into the cache")
    p.add_argument("--config", default="params.yaml", help="YAML config; its data section (default: params.yaml)")
    p.add_argument("--root", default=None, help="dataset folder (default: data.root; none: the synthetic dataset)")
    p.add_argument("--out", default=None, help="cache folder (default: data.cache_dir)")
    p.set_defaults(func=_cmd_preprocess)

    p = sub.add_parser("train", help="train on the preprocessed cache, tracked in MLflow; writes the model folder")
    p.add_argument("--config", default="params.yaml", help="YAML config (default: params.yaml)")
    p.add_argument("--resume", action="store_true", help="continue the last checkpoint, in the same MLflow run")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key, e.g. train.max_epochs=5")
    p.set_defaults(func=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from seg.config import ConfigError

    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"seg {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
