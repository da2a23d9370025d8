"""DVC stage `crossval` (crossval/dvc.yaml): the folds' validation predictions -> metrics/crossval.json and the
postprocessing decided on them (models/folds/postprocessing.json)."""

from __future__ import annotations

import sys

from seg.stages.crossval import command

if __name__ == "__main__":
    sys.exit(command(sys.argv[1:]))
