"""Stage `analyze`: a model + cases (by default the evaluation fold; CAM thresholds chosen on training-fold
cases) -> attention maps of every kind, CAMs, SEAM measures, report.html, metrics/analysis.json, and the same in
the model's run."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from seg.config import AnalyzeConfig, Config
from seg.stages.common import config_with_flags, parse, report_errors

STAGE = "analyze"
HELP = "attention maps, class activation maps and SEAM measures; report, metrics, MLflow"
CODE = 2  # exit status of a user error


def run(cfg: Config, acfg: AnalyzeConfig | None = None):
    """Analyse `acfg.cases` (default: the evaluation fold of `cfg.data`) with `acfg.model`; returns
    (AnalysisSummary, number of cases)."""
    from seg.explain.cases import file_cases, pipeline_cases
    from seg.explain.run import analyze
    from seg.infer.model_io import load_model

    acfg = acfg or cfg.analyze
    if acfg.cases:  # an ad-hoc set: its metrics stay in the output folder, not in the pipeline's metrics/
        acfg = dataclasses.replace(acfg, metrics_file=None)
    model = load_model(acfg.model)
    if acfg.cases:
        cases, selection = file_cases(acfg.cases, acfg.labels, model, acfg.max_cases), []
    else:  # the evaluation fold; thresholds are chosen on training-fold cases of the same cache
        cases, selection = pipeline_cases(cfg.data.cache_dir, cfg.data.fold, acfg.max_cases, acfg.threshold_cases)
    return analyze(model, cases, selection, acfg), len(cases)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="params.yaml", help="YAML config; its analyze section gives defaults")
    p.add_argument("--model", help="model folder, Lightning .ckpt, or MLflow URI (default: analyze.model)")
    p.add_argument("--cases", help="folder, file or glob of images (default: the pipeline's evaluation cases)")
    p.add_argument("--labels", help="folder of reference label maps for --cases")
    p.add_argument("--output", help="output folder (default: analyze.output)")
    p.add_argument("--max-cases", dest="max_cases", type=int, help="analyse the first N cases")
    p.add_argument("--cam-method", dest="cam_method", choices=("gradcam", "gradcampp", "hirescam"), help="CAM variant")
    p.add_argument("--cam-layers", dest="cam_layers", nargs="+", help="target layers (see `seg layers MODEL`)")
    p.add_argument(
        "--threshold-cases",
        dest="threshold_cases",
        type=int,
        help="training-fold cases that choose the CAM Dice thresholds",
    )
    p.add_argument("--transforms", nargs="*", help="equivariance families: flip rot90 scale (none: skip)")
    p.add_argument(
        "--mlflow",
        dest="log_mlflow",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log into the model's MLflow run (default on)",
    )


def main(args: argparse.Namespace) -> int:
    summary, n = run(*config_with_flags(args, "analyze"))
    print(f"{n} cases analysed in {summary.seconds:.1f} s -> {summary.report}")
    print(f"thresholds chosen on: {summary.threshold_source}")
    if summary.logged_run:
        print(f"logged into MLflow run {summary.logged_run}")
    return 0


def command(argv: Sequence[str] | None = None) -> int:
    """`pipelines/analyze.py` (the DVC stage) and `seg analyze`: parse, run, report user errors in one line."""
    return report_errors(sys.modules[__name__], parse(add_arguments, STAGE, argv))
