"""Command `export`: a trained model -> one ONNX file that `seg infer --backend onnxruntime --model FILE` runs
alone (config, fingerprint and meta in its metadata); dynamic batch and spatial axes, attention maps as optional
outputs. Not a DVC stage: a deployment step run by hand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seg.config.infer import MAP_KINDS
from seg.stages.common import parse, report_errors

STAGE = "export"
HELP = "export a trained model to ONNX (for `seg infer --backend onnxruntime` and deployment)"
CODE = 2  # exit status of a user error
FORMATS = ("onnx",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model folder, Lightning .ckpt, or MLflow URI")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="the export format (default: onnx)")
    p.add_argument("--out", required=True, help="the file to write, e.g. model.onnx")
    p.add_argument(
        "--maps",
        nargs="*",
        metavar="KIND",
        choices=MAP_KINDS,
        help="also output the attention maps of these kinds (gate, spatial, channel, self; none given: every kind), "
        "one graph output per map, named by its key (gate_level0, ...)",
    )
    p.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip running the export with ONNX Runtime against torch (onnx.checker always runs)",
    )


def main(args: argparse.Namespace) -> int:
    from seg.infer.model_io import load_model
    from seg.infer.onnx_export import export_onnx
    from seg.infer.onnx_runtime import onnxruntime_module

    maps = list(MAP_KINDS) if args.maps == [] else list(args.maps or ())
    if args.check:
        onnxruntime_module(args.model)  # a missing runtime fails now, not after the export
    report = export_onnx(load_model(args.model), args.out, maps, check=args.check)
    checked = ", ".join(f"{shape}: {diff:.1e}" for shape, diff in report.checked.items())
    print(
        f"{report.path}: outputs {', '.join(report.outputs)}"
        + (f"; max |onnxruntime - torch| {checked}" if checked else "")
    )
    return 0


def command(argv: Sequence[str] | None = None) -> int:
    return report_errors(sys.modules[__name__], parse(add_arguments, STAGE, argv))
