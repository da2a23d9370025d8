"""What every stage command shares: the config with its command-line flags applied, and user errors reported
as one line (`seg <stage>: error: <file>: <problem>. <fix>`) with an exit code, not a traceback."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from seg.config import Config, ConfigError, load_config
from seg.errors import UserError


def config_with_flags(args: argparse.Namespace, section: str) -> tuple[Config, object]:
    """(the whole config, its `section` with the command-line flags given applied). The default params.yaml may
    be absent (defaults then); a config file named explicitly must exist."""
    cfg = load_config(args.config if args.config != "params.yaml" or Path(args.config).is_file() else None)
    part = getattr(cfg, section)
    names = {f.name for f in dataclasses.fields(part)}
    flags = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k in names and v is not None}
    return cfg, dataclasses.replace(part, **flags)


def report_errors(stage: ModuleType, args: argparse.Namespace) -> int:
    """Run a stage module's `main(args)` with MLflow telemetry off. A `UserError` (config, data, cache, model, a
    missing input) is printed as one line and returns the stage's `CODE` (2 for a config error); anything else is
    a bug in seg and keeps its traceback."""
    from seg.tracking import configure

    configure()
    try:
        return int(stage.main(args) or 0)
    except UserError as e:
        print(f"seg {stage.STAGE}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else stage.CODE


def set_value(text: str):
    """A `--set KEY=VALUE` value as YAML reads it, except that numbers YAML 1.1 leaves as strings (`1e-9`, `3e4`)
    are numbers."""
    import yaml

    value = yaml.safe_load(text)
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
        return float(value)
    return value


def parse(add_arguments: Callable[[argparse.ArgumentParser], None], stage: str, argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"seg {stage}")
    add_arguments(parser)
    return parser.parse_args(argv)
