"""Which process of a multi-process (DDP) run this is, known before Lightning's trainer exists: the launcher sets
LOCAL_RANK in every process it starts; a single-process run has none."""

from __future__ import annotations

import os


def local_rank() -> int:
    """This process' rank on this machine (0 when no launcher set one)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_rank_zero() -> bool:
    """The first process on this machine: the one that prints, tunes and writes the run's shared files."""
    return local_rank() == 0
