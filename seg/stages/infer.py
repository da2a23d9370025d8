"""Stage `infer`: a model (or an ensemble: several, or a folder of model folders) + images (a folder, file or glob;
by default the pipeline's evaluation cases, the cache's validation fold) -> label maps on the inputs' grids,
predictions.json, metrics."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from seg.config import Config, InferConfig
from seg.config.infer import OUTPUT_FORMATS
from seg.stages.common import config_with_flags, parse, report_errors

STAGE = "infer"
HELP = "segment a folder, file or glob of images or DICOM series; outputs keep the input's geometry"
CODE = 2  # exit status of a user error


def run(cfg: Config, icfg: InferConfig | None = None):
    """Segment `icfg.input` (default: the evaluation fold of `cfg.data`) with `icfg.model` (one source or an
    ensemble's); returns an InferSummary. A pipeline run (no input given) also tags each member's MLflow run with
    the dvc.lock hashes."""
    from seg.infer.cases import attach_labels, find_cases
    from seg.infer.held_out import evaluation_cases
    from seg.infer.model_io import load_models, postprocessing_for
    from seg.infer.run import infer

    icfg = icfg or cfg.infer
    if icfg.input:  # an ad-hoc batch: its metrics stay in the output folder, not in the pipeline's metrics/
        icfg = dataclasses.replace(icfg, metrics_file=None)
    models = load_models(icfg.model, icfg.backend)
    if icfg.input:
        cases = attach_labels(find_cases(icfg.input, models[0].config.model.in_channels), icfg.labels)
    else:  # the pipeline's evaluation cases (the cache's validation fold), scored against their labels
        cases = evaluation_cases(cfg.data.cache_dir, cfg.data.fold)
    summary = infer(models, cases, icfg, postprocessing=postprocessing_for(icfg.model))
    if summary.rank == 0 and not icfg.input:  # a pipeline run: trace the models' runs to the DVC state that made it
        for run_id, uri in dict.fromkeys((m.meta.mlflow_run_id, m.meta.tracking_uri) for m in models):
            _tag_dvc_lock(run_id, uri)
    return summary


def _tag_dvc_lock(run_id: str | None, uri: str | None) -> None:
    from seg.tracking.runs import tag_run_with_dvc_lock

    try:
        tag_run_with_dvc_lock(run_id, uri)
    except Exception as e:  # noqa: BLE001 -- tracking is a convenience here: never fail the predictions for it
        print(f"seg infer: warning: could not tag the MLflow run with dvc.lock hashes ({e})", file=sys.stderr)


def _int_or(word: str, what: str):
    """An argparse type: a whole number, or `word` itself."""

    def parse(text: str) -> int | str:
        if text == word:
            return text
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} or '{word}', got {text!r}") from None

    return parse


_fold = _int_or("all", "a fold number")
_int_or_auto = _int_or("auto", "a number of windows")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="params.yaml", help="YAML config; its infer section gives defaults")
    p.add_argument(
        "--model",
        action="append",
        help="model folder, Lightning .ckpt, or MLflow URI (runs:/<id>/model, "
        "models:/<name>/<version>, models:/<name>@<alias>); repeat it, or pass a folder of model folders "
        "(one per fold), for an ensemble that averages the members' softmax",
    )
    p.add_argument("--input", help="folder, file or glob of images (default: the pipeline's evaluation cases)")
    p.add_argument("--output", help="output folder (default: infer.output)")
    p.add_argument(
        "--fold", type=_fold, help="the evaluation cases of this fold (default: data.fold; all: the test part)"
    )
    p.add_argument(
        "--metrics-file", dest="metrics_file", help="the pipeline's metrics file (default: infer.metrics_file)"
    )
    p.add_argument("--labels", help="folder of reference label maps: per-case Dice, HD95, volumes")
    p.add_argument(
        "--output-format",
        dest="output_format",
        choices=OUTPUT_FORMATS,
        help="label maps as: input (the input's format; NIfTI for DICOM series), dicom-seg (a DICOM Segmentation "
        "referencing the source series) or seg.nrrd (3D Slicer's segmentation file)",
    )
    p.add_argument("--gates", action="store_true", default=None, help="also write gate maps per level")
    p.add_argument(
        "--maps",
        nargs="*",
        metavar="KIND",
        help="also write attention maps of these kinds (gate, spatial, channel, self; none given: every kind) to "
        "maps/ in the input's space, channel weights as maps/<case>_channel.json",
    )
    p.add_argument("--probabilities", action="store_true", default=None, help="also write class probability maps")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None, help="mirroring TTA (default on)")
    p.add_argument("--overlap", type=float, help="sliding-window overlap in [0, 1)")
    p.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        help="torch (default), or onnxruntime for an .onnx from `seg export` (same preprocessing, windows, TTA)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "32", "bf16", "16"),
        help="auto (default: the faster here, timed), float32, bf16 or fp16 (CUDA) autocast",
    )
    p.add_argument(
        "--sw-batch-size",
        dest="sw_batch_size",
        type=_int_or_auto,
        help="windows per forward pass, or auto (default: timed)",
    )
    p.add_argument("--devices", type=int, help="processes/GPUs; with --strategy ddp the cases are sharded")
    p.add_argument("--strategy", help="Lightning strategy, e.g. ddp")
    p.add_argument("--accelerator", help="cpu, gpu or auto")
    p.add_argument("--num-threads", dest="num_threads", type=int, help="torch threads per process")
    p.add_argument("--overwrite", action="store_true", default=None, help="redo cases whose outputs exist")
    p.add_argument(
        "--read-ahead", dest="read_ahead", type=int, help="cases read while the network predicts (0: in turn; auto)"
    )
    p.add_argument(
        "--writer-threads", dest="writer_threads", type=int, help="threads writing finished cases (0: in turn; auto)"
    )
    p.add_argument("--compression-level", dest="compression_level", type=int, help="zlib level 0-9 of .nii.gz")


def main(args: argparse.Namespace) -> int:
    from seg.config.infer import MAP_KINDS

    if args.maps == []:  # `--maps` alone: every kind
        args.maps = list(MAP_KINDS)
    cfg, icfg = config_with_flags(args, "infer")
    if args.fold is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, fold=args.fold))
    summary = run(cfg, icfg)
    if summary.rank != 0:
        return 0
    done = len(summary.records) - len(summary.failed)
    print(
        f"{done} of {len(summary.records)} cases done in {summary.seconds:.1f} s -> {summary.out_dir}"
        + (f"; mean Dice {summary.metrics['dice_mean']:.3f}" if summary.metrics else "")
    )
    return 1 if summary.failed else 0  # each failed case was printed once, as it happened


def command(argv: Sequence[str] | None = None) -> int:
    """`pipelines/infer.py` (the DVC stage) and `seg infer`: parse `argv`, run, report user errors in one line."""
    return report_errors(sys.modules[__name__], parse(add_arguments, STAGE, argv))
