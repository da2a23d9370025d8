"""DVC `infer` stage: `seg infer` on the pipeline's evaluation cases (params.yaml `infer` section)."""

import sys

from seg.cli import main

if __name__ == "__main__":
    sys.exit(main(["infer", *sys.argv[1:]]))
