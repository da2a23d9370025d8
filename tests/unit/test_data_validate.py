"""Every kind of bad case is reported in one line naming the file, the problem and the fix."""

from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from seg.data.validate import Expectations, read_case

EXP = Expectations(spatial_dims=3, num_channels=1, label_values=frozenset({0, 1, 2}))


def _save(path, array, affine=None):
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


@pytest.fixture
def image(tmp_path):
    x = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32) + 0.1
    return _save(tmp_path / "img.nii.gz", x)


def _label(tmp_path, values=(1, 2), shape=(6, 7, 8), affine=None, dtype=np.uint8):
    y = np.zeros(shape, dtype)
    y[1:3, 1:3, 1:3] = values[0]
    y[3:5, 3:5, 3:5] = values[1]
    return _save(tmp_path / "lab.nii.gz", y, affine)


def test_a_good_case_loads_channel_first_in_canonical_orientation(tmp_path, image):
    case = read_case([image], _label(tmp_path, dtype=np.float32), EXP)  # float-stored labels are cast
    assert not case.problems
    assert case.image.shape == (1, 6, 7, 8) and case.image.dtype == np.float32
    assert case.label.shape == (1, 6, 7, 8) and case.label.dtype == np.uint8 and set(np.unique(case.label)) == {0, 1, 2}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"shape": (6, 7, 9)},
            r"lab\.nii\.gz: label shape \(6, 7, 9\) differs from image shape \(6, 7, 8\)\. Resample",
        ),
        (
            {"affine": np.diag([1, 1, 2, 1.0])},
            r"lab\.nii\.gz: label affine differs from the image's by up to 1 mm\. Copy",
        ),
        ({"values": (1, 5)}, r"lab\.nii\.gz: label values \[5\] are not in dataset.json labels \[0, 1, 2\]\. Fix"),
        ({"values": (0, 0)}, r"lab\.nii\.gz: label has no foreground voxels\. Remove the case.*allow_empty_labels"),
        ({"values": (1, 1.5), "dtype": np.float32}, r"lab\.nii\.gz: label holds non-integer values \(e\.g\. 1\.5\)"),
    ],
)
def test_label_problems(tmp_path, image, kwargs, match):
    case = read_case([image], _label(tmp_path, **kwargs), EXP)
    assert case.image is None and len(case.problems) == 1
    assert re.search(match, case.problems[0]), case.problems[0]


def test_empty_label_allowed_when_configured(tmp_path, image):
    exp = Expectations(3, 1, frozenset({0, 1, 2}), allow_empty_labels=True)
    assert not read_case([image], _label(tmp_path, values=(0, 0)), exp).problems


def test_nan_inf_zero_byte_truncated_wrong_dims_and_channels(tmp_path, image):
    x = np.ones((6, 7, 8), np.float32)
    x[0, 0, 0], x[1, 1, 1] = np.nan, np.inf
    lab = _label(tmp_path)
    problems = read_case([_save(tmp_path / "nan.nii.gz", x)], lab, EXP).problems
    assert problems == [
        f"{tmp_path}/nan.nii.gz: 2 NaN/Inf voxel(s). Replace them (e.g. with the background value) and re-export."
    ]
    (tmp_path / "zero.nii.gz").write_bytes(b"")
    assert "zero.nii.gz: file is empty (0 bytes)" in read_case([tmp_path / "zero.nii.gz"], lab, EXP).problems[0]
    (tmp_path / "cut.nii.gz").write_bytes(image.read_bytes()[:200])
    assert "cut.nii.gz: cannot be read as NIfTI" in read_case([tmp_path / "cut.nii.gz"], lab, EXP).problems[0]
    flat = _save(tmp_path / "flat.nii.gz", np.ones((6, 7), np.float32))
    assert "flat.nii.gz: is 2D (shape (6, 7)) but the dataset is 3D" in read_case([flat], lab, EXP).problems[0]
    two = _save(tmp_path / "two.nii.gz", np.ones((6, 7, 8, 2), np.float32))
    assert "two.nii.gz: has 2 channel(s) but the dataset declares 1" in read_case([two], lab, EXP).problems[0]
    zeros = _save(tmp_path / "zeros.nii.gz", np.zeros((6, 7, 8), np.float32))
    assert "zeros.nii.gz: image is all zero" in read_case([zeros], lab, EXP).problems[0]
    assert "has no label file" in read_case([image], None, EXP).problems[0]


def test_channel_files_must_share_the_grid(tmp_path, image):
    other = _save(tmp_path / "ch1.nii.gz", np.ones((6, 7, 8), np.float32), np.diag([2, 1, 1, 1.0]))
    exp = Expectations(3, 2, frozenset({0, 1, 2}))
    assert (
        "ch1.nii.gz: grid (shape (6, 7, 8)) differs from channel 0 img.nii.gz"
        in read_case([image, other], _label(tmp_path), exp).problems[0]
    )


@pytest.mark.parametrize(("color", "channels"), [("grey", 1), ("first", 1), ("rgb", 3)])
def test_rgba_png_and_0_255_masks(tmp_path, color, channels):
    rgba = np.zeros((8, 9, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 3] = 200, 100, 255
    sitk.WriteImage(sitk.GetImageFromArray(rgba, isVector=True), str(tmp_path / "i.png"))
    mask = np.zeros((8, 9), np.uint8)
    mask[2:5, 3:6] = 255
    sitk.WriteImage(sitk.GetImageFromArray(mask), str(tmp_path / "m.png"))
    case = read_case([tmp_path / "i.png"], tmp_path / "m.png", Expectations(2, channels, None, color), binary_255=True)
    assert not case.problems and case.image.shape == (channels, 9, 8)
    expected = {"grey": 0.299 * 200 + 0.587 * 100, "first": 200.0, "rgb": 200.0}[color]
    assert case.image[0, 0, 0] == pytest.approx(expected, rel=1e-5)
    assert set(np.unique(case.label)) == {0, 1} and case.label.sum() == 9
