"""Stage `evaluate`: a folder, file or glob of predicted label maps + a folder of reference label maps -> per case
and class Dice, HD95, normalised surface Dice and volumes in evaluation.csv and evaluation.json. Not a DVC stage:
it scores predictions made anywhere (by `seg infer`, nnU-Net, another tool)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from seg.stages.common import parse, report_errors

STAGE = "evaluate"
HELP = "score predicted label maps against reference ones: Dice, HD95, surface Dice, volumes (CSV, JSON)"
CODE = 2  # exit status of a user error (no predictions, no labels folder, bad --classes)


def run(
    predictions: str,
    labels: str,
    output: str | None = None,
    tolerance: float = 1.0,
    classes: Sequence[str] | None = None,
    binary_255: bool | None = None,
    all_labels: bool = False,
    on_case=None,
):
    """Score `predictions` against `labels`, write `<output>/evaluation.{csv,json}` (default output: the predictions
    folder, or the folder of the first prediction); returns (Evaluation, path of evaluation.json)."""
    from seg.infer.label_maps import parse_classes
    from seg.infer.scoring import evaluate_folder

    out = Path(output) if output else _default_output(predictions)
    return evaluate_folder(predictions, labels, out, tolerance, parse_classes(classes), binary_255, all_labels, on_case)


def _default_output(predictions: str) -> Path:
    path = Path(predictions)
    if path.is_dir():
        return path
    if path.is_file():
        return path.parent
    from seg.infer.cases import find_cases

    return Path(find_cases(predictions, 1)[0].images[0]).parent  # a glob: raises the one-line error on no match


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "predictions",
        metavar="PRED",
        help="folder, file or glob of predicted label maps (NIfTI or anything SimpleITK reads)",
    )
    p.add_argument("labels", metavar="LABELS", help="folder of reference label maps, <case><ext>")
    p.add_argument("--output", help="folder for evaluation.csv and evaluation.json (default: the predictions' folder)")
    p.add_argument(
        "--tolerance", type=float, default=1.0, metavar="MM", help="surface Dice tolerance in mm (default 1)"
    )
    p.add_argument(
        "--classes",
        nargs="+",
        metavar="CLASS",
        help="classes to score: values (1 2), VALUE=NAME (1=liver 2=tumour) or names for 1, 2, ... "
        "(default: every nonzero value found)",
    )
    p.add_argument(
        "--binary-255",
        dest="binary_255",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="255 means class 1 in every map (default: in maps whose only values are 0 and 255)",
    )
    p.add_argument(
        "--all-labels",
        dest="all_labels",
        action="store_true",
        help="a reference without a prediction is a failed case (default: listed, not scored)",
    )


def main(args: argparse.Namespace) -> int:
    ev, json_path = run(
        args.predictions,
        args.labels,
        args.output,
        args.tolerance,
        args.classes,
        args.binary_255,
        args.all_labels,
        on_case=lambda r: _print_case(r, args.tolerance),
    )
    if ev.unpaired_labels:
        n = len(ev.unpaired_labels)
        shown = ", ".join(Path(p).name for p in ev.unpaired_labels[:3]) + (", ..." if n > 3 else "")
        print(
            f"seg evaluate: warning: {n} reference label map{'s have' if n > 1 else ' has'} no prediction, not "
            f"scored ({shown}); --all-labels makes them failures",
            file=sys.stderr,
        )
    mean = ev.mean()
    total = len(ev.scores) + len(ev.failures)
    print(
        f"{len(ev.scores)} of {total} cases scored -> {json_path.parent}; mean over classes: "
        f"Dice {_num(mean['dice'], 4)}, HD95 {_num(mean['hd95'], 2)} mm, "
        f"surface Dice at {args.tolerance:g} mm {_num(mean['surface_dice'], 4)}"
    )
    return 1 if ev.failures else 0  # each failed case was printed once, as it happened


def _print_case(result, tolerance: float) -> None:
    from seg.infer.scoring import CaseFailure

    if isinstance(result, CaseFailure):
        print(f"seg evaluate: error: {result.error}", file=sys.stderr)
        return
    m = result.metrics
    print(
        f"{result.case_id}: Dice {_row(m, 'dice', 4)} | HD95 {_row(m, 'hd95', 2)} mm | "
        f"surface Dice at {tolerance:g} mm {_row(m, 'surface_dice', 4)}"
    )


def _row(metrics: dict, key: str, digits: int) -> str:
    return " ".join(f"{name}={_num(v[key], digits)}" for name, v in metrics.items())


def _num(value: float, digits: int) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def command(argv: Sequence[str] | None = None) -> int:
    """`seg evaluate`: parse `argv`, run, report user errors in one line."""
    return report_errors(sys.modules[__name__], parse(add_arguments, STAGE, argv))
