"""DVC stage `pseudo` (seam/dvc.yaml): the SEAM model -> pseudo masks of the training cases, as a cache
(seam.pseudo_cache) for the segmentation network's training."""

from __future__ import annotations

import sys

from seg.stages.pseudo import command

if __name__ == "__main__":
    sys.exit(command(sys.argv[1:]))
