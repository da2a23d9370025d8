"""DVC `infer` stage: `seg infer` on the pipeline's evaluation cases (params.yaml `infer` section)."""

import sys

from seg.stages.infer import command

if __name__ == "__main__":
    sys.exit(command(sys.argv[1:]))
