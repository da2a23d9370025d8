"""DVC stage `preprocess`: params.yaml's data section -> the preprocessed cache (see seg/data/__init__.py)."""

from __future__ import annotations

import sys

from seg.stages.preprocess import command

if __name__ == "__main__":  # the guard matters: workers are spawned processes that re-import this file
    sys.exit(command(sys.argv[1:]))
