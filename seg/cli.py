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


def _int_or_auto(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of windows or 'auto', got {text!r}") from None


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


def _cmd_infer(args: argparse.Namespace) -> int:
    import dataclasses

    from seg.data.errors import DataError
    from seg.infer.cases import attach_labels, find_cases
    from seg.infer.evaluation import evaluation_cases
    from seg.infer.model_io import ModelLoadError, load_model
    from seg.infer.run import infer
    from seg.train.cache import CacheError

    cfg, icfg = _config_with_flags(args, "infer")
    if icfg.input:  # an ad-hoc batch: its metrics stay in the output folder, not in the pipeline's metrics/
        icfg = dataclasses.replace(icfg, metrics_file=None)
    try:
        model = load_model(icfg.model)
        if icfg.input:
            cases = attach_labels(find_cases(icfg.input, model.config.model.in_channels), icfg.labels)
        else:  # the pipeline's evaluation cases (the cache's validation fold), scored against their labels
            cases = evaluation_cases(cfg.data.cache_dir, cfg.data.fold)
    except (ModelLoadError, DataError, CacheError) as e:
        print(f"seg infer: error: {e}", file=sys.stderr)
        return 2
    summary = infer(model, cases, icfg)
    if summary.rank != 0:
        return 0
    if not icfg.input:  # a pipeline run: trace the model's MLflow run to the DVC state that made it
        _tag_dvc_lock(model.meta)
    done = len(summary.records) - len(summary.failed)
    print(f"{done} of {len(summary.records)} cases done in {summary.seconds:.1f} s -> {summary.out_dir}"
          + (f"; mean Dice {summary.metrics['dice_mean']:.3f}" if summary.metrics else ""))
    return 1 if summary.failed else 0  # each failed case was printed once, as it happened


def _tag_dvc_lock(meta: dict) -> None:
    from seg.train.tracking import tag_run_with_dvc_lock

    try:
        tag_run_with_dvc_lock(meta.get("mlflow_run_id"), meta.get("tracking_uri"))
    except Exception as e:  # tracking is a convenience here: never fail the predictions for it
        print(f"seg infer: warning: could not tag the MLflow run with dvc.lock hashes ({e})", file=sys.stderr)


def _config_with_flags(args: argparse.Namespace, section: str):
    """(the whole config, its `section` with the command-line flags given applied). The default params.yaml may
    be absent (defaults then); a config file named explicitly must exist."""
    import dataclasses
    from pathlib import Path

    from seg.config import load_config

    cfg = load_config(args.config if args.config != "params.yaml" or Path(args.config).is_file() else None)
    part = getattr(cfg, section)
    names = {f.name for f in dataclasses.fields(part)}
    flags = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k in names and v is not None}
    return cfg, dataclasses.replace(part, **flags)


def _cmd_analyze(args: argparse.Namespace) -> int:
    import dataclasses

    from seg.data.errors import DataError
    from seg.explain.cases import file_cases, pipeline_cases
    from seg.explain.run import analyze
    from seg.infer.model_io import ModelLoadError, load_model
    from seg.train.cache import CacheError

    cfg, acfg = _config_with_flags(args, "analyze")
    if acfg.cases:  # an ad-hoc set: its metrics stay in the output folder, not in the pipeline's metrics/
        acfg = dataclasses.replace(acfg, metrics_file=None)
    try:
        model = load_model(acfg.model)
        if acfg.cases:
            cases, selection = file_cases(acfg.cases, acfg.labels, model, acfg.max_cases), []
        else:  # the evaluation fold; thresholds are chosen on training-fold cases of the same cache
            cases, selection = pipeline_cases(cfg.data.cache_dir, cfg.data.fold, acfg.max_cases, acfg.threshold_cases)
        summary = analyze(model, cases, selection, acfg)
    except (ModelLoadError, DataError, CacheError, ValueError) as e:
        print(f"seg analyze: error: {e}", file=sys.stderr)
        return 2
    print(f"{len(cases)} cases analysed in {summary.seconds:.1f} s -> {summary.report}")
    print(f"thresholds chosen on: {summary.threshold_source}")
    if summary.logged_run:
        print(f"logged into MLflow run {summary.logged_run}")
    return 0


def _cmd_layers(args: argparse.Namespace) -> int:
    from seg.explain.layers import format_layers, layer_table
    from seg.infer.model_io import ModelLoadError, load_model

    try:
        model = load_model(args.model)
        size = tuple(args.size) if args.size else model.patch_size
    except ModelLoadError as e:
        print(f"seg layers: error: {e}", file=sys.stderr)
        return 2
    if len(size) != model.config.model.spatial_dims:
        dims = model.config.model.spatial_dims
        print(f"seg layers: error: --size needs {dims} numbers, got {list(size)}.", file=sys.stderr)
        return 2
    print(format_layers(layer_table(model.net, size, model.config.model.in_channels), f"{args.model} {tuple(size)}"))
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

    p = sub.add_parser("infer", help="segment a folder, file or glob of images; outputs keep the input's geometry")
    p.add_argument("--config", default="params.yaml", help="YAML config; its infer section gives defaults")
    p.add_argument("--model", help="model folder, Lightning .ckpt, or MLflow URI (runs:/<id>/model, models:/<name>/<v>)")
    p.add_argument("--input", help="folder, file or glob of images (default: the pipeline's evaluation cases)")
    p.add_argument("--output", help="output folder (default: infer.output)")
    p.add_argument("--labels", help="folder of reference label maps: per-case Dice, HD95, volumes")
    p.add_argument("--gates", action="store_true", default=None, help="also write gate maps per level")
    p.add_argument("--probabilities", action="store_true", default=None, help="also write class probability maps")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None, help="mirroring TTA (default on)")
    p.add_argument("--overlap", type=float, help="sliding-window overlap in [0, 1)")
    p.add_argument("--precision", choices=("auto", "32", "bf16", "16"),
                   help="auto (default: the faster here, timed), float32, bf16 or fp16 (CUDA) autocast")
    p.add_argument("--sw-batch-size", dest="sw_batch_size", type=_int_or_auto,
                   help="windows per forward pass, or auto (default: timed)")
    p.add_argument("--devices", type=int, help="processes/GPUs; with --strategy ddp the cases are sharded")
    p.add_argument("--strategy", help="Lightning strategy, e.g. ddp")
    p.add_argument("--accelerator", help="cpu, gpu or auto")
    p.add_argument("--num-threads", dest="num_threads", type=int, help="torch threads per process")
    p.add_argument("--overwrite", action="store_true", default=None, help="redo cases whose outputs exist")
    p.set_defaults(func=_cmd_infer)

    p = sub.add_parser("analyze", help="gate maps, class activation maps and SEAM measures; report, metrics, MLflow")
    p.add_argument("--config", default="params.yaml", help="YAML config; its analyze section gives defaults")
    p.add_argument("--model", help="model folder, Lightning .ckpt, or MLflow URI (default: analyze.model)")
    p.add_argument("--cases", help="folder, file or glob of images (default: the pipeline's evaluation cases)")
    p.add_argument("--labels", help="folder of reference label maps for --cases")
    p.add_argument("--output", help="output folder (default: analyze.output)")
    p.add_argument("--max-cases", dest="max_cases", type=int, help="analyse the first N cases")
    p.add_argument("--cam-method", dest="cam_method", choices=("gradcam", "gradcampp", "hirescam"), help="CAM variant")
    p.add_argument("--cam-layers", dest="cam_layers", nargs="+", help="target layers (see `seg layers MODEL`)")
    p.add_argument("--threshold-cases", dest="threshold_cases", type=int,
                   help="training-fold cases that choose the CAM Dice thresholds")
    p.add_argument("--transforms", nargs="*", help="equivariance families: flip rot90 scale (none: skip)")
    p.add_argument("--mlflow", dest="log_mlflow", action=argparse.BooleanOptionalAction, default=None,
                   help="log into the model's MLflow run (default on)")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("layers", help="list a model's layers usable as CAM targets, with output shapes")
    p.add_argument("model", help="model folder, Lightning .ckpt, or MLflow URI")
    p.add_argument("--size", type=int, nargs="+", default=None, help="input spatial size (default: the patch size)")
    p.set_defaults(func=_cmd_layers)
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
