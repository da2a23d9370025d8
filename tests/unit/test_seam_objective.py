"""SEAM as a training objective (`seg.seam.objective`): what it trains with."""

from __future__ import annotations

from seg.config import AugmentConfig, SeamConfig


def test_seam_trains_without_mirroring_or_rot90_unless_asked():
    """Presence survives mirroring and rot90, but where a structure lies is a class's cue in canonical volumes: SEAM's
    patches keep their orientation by default; the other augmentations stay as train.augment has them."""
    augment = AugmentConfig(flip_prob=0.5, rot90_prob=0.5, affine_prob=0.3, noise_prob=0.2)
    kept = SeamConfig().training_augment(augment)
    assert (kept.flip_prob, kept.rot90_prob) == (0.0, 0.0) and kept.mirrored_axes(3) == ()
    assert (kept.affine_prob, kept.noise_prob, kept.scale_range) == (0.3, 0.2, augment.scale_range)
    assert SeamConfig(orientation_augment=True).training_augment(augment) == augment
