"""Lightning's banner lines (GPU/TPU available, the litlogger tip, 'Time limit reached') and known-harmless
warnings would bury the lines seg prints for people to read: the status lines, the per-case lines, the errors."""

from __future__ import annotations

import logging
import warnings

HARMLESS = (".*LeafSpec.*", ".*predict returned None.*", ".*always_return_as_numpy.*")


def quiet_lightning() -> None:
    """Lightning's info lines off (its warnings stay) and the known-harmless warnings filtered; idempotent."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    for message in HARMLESS:
        warnings.filterwarnings("ignore", message=message)
