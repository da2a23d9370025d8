"""DICOM series in: exact geometry from the headers, each series a case, and one-line refusals of series whose
volume SimpleITK would get wrong (gap, mixed orientations, sizes, duplicates, tilt), on pydicom's real series."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_fixture import CR1, CT2, CT5N, MR2, MR700, copy_series, series_folder

from seg.data.errors import DataError, ImageReadError
from seg.data.io import is_dicom_file, read_image
from seg.infer.cases import find_cases

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _slices(folder):
    return [pydicom.dcmread(p) for p in sorted(folder.iterdir())]


def _anisotropic_ct(tmp_path):
    """CT5N with rows 0.8 mm apart and columns 0.5 mm: a swapped PixelSpacing shows."""
    folder = copy_series(CT5N, tmp_path / "ct")
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.PixelSpacing = [0.8, 0.5]
        ds.save_as(path)
    return folder


def _sagittal_slice(tmp_path):
    """The single sagittal slice of MR2 (row cosine +y, column cosine -z), alone in its folder."""
    folder = tmp_path / "sagittal"
    folder.mkdir()
    (folder / "15970").write_bytes((series_folder(MR2) / "15970").read_bytes())
    return folder


@pytest.mark.parametrize("make", [lambda tmp: series_folder(CT5N), _anisotropic_ct, _sagittal_slice])
def test_a_series_reads_with_the_geometry_of_its_headers(make, tmp_path):
    folder = make(tmp_path)
    slices = _slices(folder)
    array, geometry = read_image(sorted(folder.iterdir())[0])
    first = slices[0]
    row, column = np.array(first.ImageOrientationPatient[:3], float), np.array(first.ImageOrientationPatient[3:], float)
    normal = np.cross(row, column)
    bottom = min(slices, key=lambda ds: np.dot(np.array(ds.ImagePositionPatient, float), normal))
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    step = float(first.SliceThickness) if len(slices) == 1 else 2.5  # CT5N: 2.5 mm between positions
    assert array.shape == (first.Columns, first.Rows, len(slices)) and geometry.suffix == ".dcm"
    assert geometry.spacing == (column_spacing, row_spacing, step)
    assert geometry.origin == tuple(float(v) for v in bottom.ImagePositionPatient)
    assert geometry.direction == tuple(np.stack([row, column, normal], axis=1).ravel())
    affine = geometry.affine_array()
    for ds in slices:  # every slice: voxel (0, 0, k) lies at its position, and holds its pixels (rescaled)
        lps = np.array(ds.ImagePositionPatient, float)
        k = int(
            np.argmin([np.linalg.norm(affine @ [0, 0, z, 1] - [*(LPS_TO_RAS @ lps), 1]) for z in range(len(slices))])
        )
        np.testing.assert_allclose(affine @ [0, 0, k, 1], [*(LPS_TO_RAS @ lps), 1], atol=1e-5)
        np.testing.assert_allclose(
            (affine @ [1, 0, k, 1] - affine @ [0, 0, k, 1])[:3], LPS_TO_RAS @ row * column_spacing
        )
        np.testing.assert_allclose(
            (affine @ [0, 1, k, 1] - affine @ [0, 0, k, 1])[:3], LPS_TO_RAS @ column * row_spacing
        )
        pixels = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        np.testing.assert_array_equal(array[:, :, k], pixels.T)  # pixel_array is (rows, columns)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (
            CT2,
            "slices are not evenly spaced: 202.5 mm between 17106 and 17136, 1.25 mm elsewhere (161 slice(s) missing?)",
        ),
        (MR700, "slices of 7 orientations"),
        (CR1, "6154 has no ImagePositionPatient"),
    ],
)
def test_a_series_that_is_not_one_even_stack_is_refused_in_one_line_naming_it(name, problem):
    folder = series_folder(name)
    with pytest.raises(ImageReadError) as info:
        read_image(sorted(folder.iterdir())[0])
    message = str(info.value)
    assert message.startswith(f"{folder}: DICOM series ") and problem in message and "\n" not in message
    assert message.rstrip(".").split(". ")[-1][0].isupper()  # a fix follows the problem


def test_slices_of_another_size_a_duplicate_and_a_tilt_are_refused(tmp_path):
    sizes = copy_series(CT5N, tmp_path / "sizes")
    ds = pydicom.dcmread(sizes / "2392")
    ds.Rows, ds.Columns, ds.PixelData = 8, 8, ds.pixel_array[:8, :8].tobytes()
    ds.save_as(sizes / "2392")
    with pytest.raises(ImageReadError, match=r"slices of 2 sizes \(8x8, 16x16 columns x rows\)"):
        read_image(sizes / "2062")

    duplicate = copy_series(CT5N, tmp_path / "duplicate")
    (duplicate / "2062b").write_bytes((duplicate / "2062").read_bytes())
    with pytest.raises(ImageReadError, match="2062 and 2062b lie at the same position"):
        read_image(duplicate / "2062")

    tilted = copy_series(CT5N, tmp_path / "tilted")
    for i, path in enumerate(sorted(tilted.iterdir())):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [
            ds.ImagePositionPatient[0],
            float(ds.ImagePositionPatient[1]) + 0.5 * i,
            ds.ImagePositionPatient[2],
        ]
        ds.save_as(path)
    with pytest.raises(ImageReadError, match="not stacked along their normal"):
        read_image(tilted / "2062")


def test_each_series_is_a_case_and_several_in_one_folder_are_separate_cases(tmp_path):
    root = tmp_path / "scans"
    copy_series(CT5N, root / "patient1" / "ct")
    copy_series(MR2, root / "patient2" / "mr")
    cases = find_cases(str(root))
    uids = sorted({str(pydicom.dcmread(p).SeriesInstanceUID) for p in (root / "patient2" / "mr").iterdir()})
    assert [c.case_id for c in cases] == ["patient1_ct", *(f"patient2_mr_{uid}" for uid in uids)]  # numbers repeat
    assert all(c.suffix == ".dcm" and len(c.images) == 1 for c in cases)
    assert find_cases(str(root / "patient1" / "ct" / "2693"))[0].case_id == "ct"  # one file: its series
    assert find_cases(str(root / "patient1"))[0].case_id == "ct"


def test_nifti_is_not_taken_for_dicom_and_a_folder_without_images_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    assert not is_dicom_file(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="no image files .* and no DICOM series"):
        find_cases(str(tmp_path))
