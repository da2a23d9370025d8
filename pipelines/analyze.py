"""DVC stage `analyze`: models/latest + the evaluation fold of the cache -> outputs/analysis (maps, overlays,
report.html), metrics/analysis.json, and the same logged into the model's MLflow run."""

from __future__ import annotations

import sys

from seg.stages.analyze import command

if __name__ == "__main__":
    sys.exit(command(sys.argv[1:]))
