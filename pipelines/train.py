"""DVC stage `train`: the preprocessed cache + params.yaml's model and train sections -> models/latest, metrics."""

from __future__ import annotations

import sys

from seg.stages.train import command

if __name__ == "__main__":  # DDP re-runs this file in its worker processes
    sys.exit(command(sys.argv[1:]))
