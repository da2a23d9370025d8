"""Exceptions a user can meet in the data layer; each message is one line: the file, what is wrong, the fix."""

from __future__ import annotations


class DataError(ValueError):
    """A file, folder or dataset that cannot be used as it is."""


class ImageReadError(DataError):
    """An image file that is missing, empty, truncated or in a format neither nibabel nor SimpleITK reads."""
