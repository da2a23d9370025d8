"""Stage `preprocess`: the dataset of `data` (or the embedded synthetic one) -> the preprocessed cache
(fingerprint, folds, cases; see `seg.data.cache`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from seg.config import Config, load_config
from seg.stages.common import parse, report_errors

STAGE = "preprocess"
HELP = "validate, fingerprint and preprocess a dataset into the cache"
CODE = 1  # exit status of a data error


def run(cfg: Config, root: str | None = None, out: str | None = None):
    """Preprocess `root` (default data.root) into `out` (default data.cache_dir); returns a PreprocessResult."""
    from seg.data.preprocess import preprocess_dataset

    data = cfg.data if root is None else dataclasses.replace(cfg.data, root=root)
    return preprocess_dataset(data, out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="params.yaml", help="YAML config; its data section (default: params.yaml)")
    p.add_argument("--root", default=None, help="dataset folder (default: data.root; none: the synthetic dataset)")
    p.add_argument("--out", default=None, help="cache folder (default: data.cache_dir)")


def main(args: argparse.Namespace) -> int:
    import json

    result = run(load_config(args.config), args.root, args.out)
    for problem in json.loads(result.report.read_text())["problems"]:
        print(f"skipped: {problem}", file=sys.stderr)
    print(
        f"{result.num_valid} of {result.num_cases} cases preprocessed into {result.out_dir} "
        f"({result.num_reused} up to date, {result.num_skipped} skipped, {result.seconds:.1f} s)"
    )
    return 0


def command(argv: Sequence[str] | None = None) -> int:
    """`pipelines/preprocess.py` (the DVC stage) and `seg preprocess`: parse, run, report user errors in one line."""
    return report_errors(sys.modules[__name__], parse(add_arguments, STAGE, argv))
