"""The real, downsized DICOM series that the pydicom wheel ships (no download): where they are, and copies to edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom.data

DICOM_TESTS = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests"
CT5N = "98892001/CT5N"  # 5 axial CT slices, 0.488 x 0.488 x 2.5 mm, evenly spaced: the good series
CT2 = "77654033/CT2"  # 4 axial slices with a 202.5 mm gap
MR2 = "98892003/MR2"  # 7 files, 3 series: two localizers of 3 orientations and one single slice
MR700 = "98892003/MR700"  # 7 slices, each at a different angle
CR1 = "77654033/CR1"  # one radiograph: no patient position


def series_folder(name: str) -> Path:
    folder = DICOM_TESTS / name
    assert folder.is_dir(), f"{folder}: the pydicom wheel no longer ships this series"
    return folder


def copy_series(name: str, dst: Path) -> Path:
    """A writable copy of a bundled series folder at `dst`."""
    shutil.copytree(series_folder(name), dst)
    return dst
