"""Exceptions a user can meet in the data layer; each message is one line: the file, what is wrong, the fix."""

from __future__ import annotations

from seg.errors import UserError


class DataError(UserError, ValueError):
    """A file, folder or dataset that cannot be used as it is."""


class EmptyImageError(DataError):
    """An image whose voxels are all zero, at inference: nothing to segment. `geometry` is the file's, so the
    caller can write an all-background label map on its grid."""

    def __init__(self, message: str, geometry):
        super().__init__(message)
        self.geometry = geometry


class ImageReadError(DataError):
    """An image file that is missing, empty, truncated or in a format neither nibabel nor SimpleITK reads."""
