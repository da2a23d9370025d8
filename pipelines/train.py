"""DVC stage `train`: the preprocessed cache + params.yaml's model and train sections -> models/latest, metrics."""

from __future__ import annotations

import sys

from seg.cli import main

if __name__ == "__main__":  # DDP re-runs this file in its worker processes
    sys.exit(main(["train", *sys.argv[1:]]))
