"""The `seg` command. The four stage commands are `seg.stages.<stage>` (their arguments, their output); `model`
and `layers` inspect a network. Heavy libraries (torch, monai, lightning, mlflow) are imported inside the
commands so `seg --help` starts fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seg import __version__
from seg.stages import analyze, crossval, evaluate, export, heads, infer, preprocess, prune, pseudo, train
from seg.stages.common import report_errors

STAGES = {m.STAGE: m for m in (preprocess, train, infer, analyze, crossval, evaluate, pseudo, heads, prune, export)}


def _cmd_model_summary(args: argparse.Namespace) -> int:
    from seg.config import load_config
    from seg.models.network_summary import summarize

    config = load_config(args.config)
    print(summarize(config.model, args.size, _training_patch(config)))
    return 0


def _training_patch(config) -> tuple[int, ...] | None:
    """The patch `seg train` takes: train.patch_size, else the preprocessed cache's median shape rounded to the
    network's size multiple; None before `seg preprocess` has written the cache."""
    from pathlib import Path

    if config.train.patch_size:
        return tuple(config.train.patch_size)
    if not (Path(config.data.cache_dir) / "fingerprint.json").is_file():
        return None
    from seg.data.cache import Cache
    from seg.models import build_model
    from seg.train.datamodule import default_patch_size

    median = Cache(config.data.cache_dir).fingerprint.median_shape_after_preprocessing
    multiple = build_model(config.model).size_multiple
    return default_patch_size(median, config.model.spatial_dims, multiple) if median else None


def _cmd_layers(args: argparse.Namespace) -> int:
    from seg.config import ConfigError
    from seg.explain.cam_targets import format_layers, layer_table
    from seg.infer.model_io import load_model

    model = load_model(args.model)
    size = tuple(args.size) if args.size else model.patch_size
    if len(size) != model.config.model.spatial_dims:
        raise ConfigError(f"--size needs {model.config.model.spatial_dims} numbers, got {list(size)}.")
    print(format_layers(layer_table(model.net, size, model.config.model.in_channels), f"{args.model} {tuple(size)}"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seg",
        description="Attention U-Nets for 2D/3D medical image segmentation: preprocess, train, infer, analyze.",
    )
    parser.add_argument("--version", action="version", version=f"seg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "model", help="build the configured network; print its levels, gates, self-attention blocks, maps and cost"
    )
    p.add_argument("--config", default="params.yaml", help="YAML config (default: params.yaml)")
    p.add_argument(
        "--size", type=int, nargs="+", default=None, help="input spatial size to cost (default: 64 per axis)"
    )
    p.set_defaults(func=_cmd_model_summary)

    for name, stage in STAGES.items():
        p = sub.add_parser(name, help=stage.HELP)
        stage.add_arguments(p)
        p.set_defaults(stage=stage)

    p = sub.add_parser("layers", help="list a model's layers usable as CAM targets, with output shapes")
    p.add_argument("model", help="model folder, Lightning .ckpt, or MLflow URI")
    p.add_argument("--size", type=int, nargs="+", default=None, help="input spatial size (default: the patch size)")
    p.set_defaults(func=_cmd_layers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "stage", None):
        return report_errors(args.stage, args)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from seg.errors import UserError

    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"seg {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
