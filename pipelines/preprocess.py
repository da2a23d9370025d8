"""DVC stage `preprocess`: params.yaml's data section -> the preprocessed cache (see seg/data/__init__.py)."""

from __future__ import annotations

import sys

from seg.cli import main

if __name__ == "__main__":  # the guard matters: workers are spawned processes that re-import this file
    sys.exit(main(["preprocess", *sys.argv[1:]]))
