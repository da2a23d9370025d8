"""Geometry-exact I/O: round trips through read_image/write_image and the canonical orientation."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from seg.data.errors import DataError, ImageReadError
from seg.data.geometry import canonical_affine, canonical_reorientation, from_canonical, to_canonical
from seg.data.io import read_image, strip_suffix, write_image

ORIENTATIONS = [(p, f) for p in itertools.permutations(range(3)) for f in itertools.product((1, -1), repeat=3)]


def _nifti(path, array, affine, qcode=1, scode=1):
    img = nib.Nifti1Image(array, affine)
    img.header.set_qform(affine, code=qcode)
    img.header.set_sform(affine, code=scode)
    nib.save(img, str(path))
    return path


def _orientation_affine(perm, flips, spacing=(0.8, 1.0, 2.5)):
    a = np.zeros((4, 4))
    for i, (p, f) in enumerate(zip(perm, flips, strict=True)):
        a[p, i] = f * spacing[i]  # file axis i runs along world axis p
    a[:3, 3] = (10.0, -20.0, 5.0)
    a[3, 3] = 1
    return a


def _assert_same_nifti(a, b):
    ia, ib = nib.load(str(a)), nib.load(str(b))
    assert ia.shape == ib.shape
    np.testing.assert_allclose(ia.affine, ib.affine, atol=1e-5)
    assert int(ia.header["qform_code"]) == int(ib.header["qform_code"])
    assert int(ia.header["sform_code"]) == int(ib.header["sform_code"])
    np.testing.assert_allclose(ia.header.get_zooms(), ib.header.get_zooms(), atol=1e-5)
    np.testing.assert_allclose(ia.header.get_qform(), ib.header.get_qform(), atol=1e-5)


@pytest.mark.parametrize(("perm", "flips"), ORIENTATIONS)
def test_all_48_orientations_round_trip_and_canonicalise(tmp_path, perm, flips):
    affine = _orientation_affine(perm, flips)
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    src = _nifti(tmp_path / "in.nii.gz", data, affine, qcode=2, scode=1)
    x, geom = read_image(src)
    r = canonical_reorientation(geom.affine_array())
    canon = to_canonical(x, r)
    ca = canonical_affine(geom.affine_array(), r, geom.spatial_shape)
    assert np.all(np.diag(ca)[:3] > 0) and np.allclose(ca[:3, :3], np.diag(np.diag(ca)[:3]))  # RAS, axis-aligned
    # the world position of every voxel is unchanged by reorientation
    idx = np.array([1, 2, 3])
    file_idx = np.argwhere(x == canon[tuple(idx)])[0]
    np.testing.assert_allclose(ca[:3, :3] @ idx + ca[:3, 3], affine[:3, :3] @ file_idx + affine[:3, 3], atol=1e-9)
    back = from_canonical(canon, r)
    np.testing.assert_array_equal(back, data)
    out = write_image(back, geom, tmp_path / "out.nii.gz")
    _assert_same_nifti(src, out)
    np.testing.assert_array_equal(np.asarray(nib.load(str(out)).dataobj), data)


def test_oblique_anisotropic_affine_round_trips(tmp_path):
    theta = 0.3
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.7, 1.3, 3.1])
    affine[:3, 3] = (-50.2, 12.7, 3.3)
    src = _nifti(tmp_path / "oblique.nii", np.random.default_rng(0).random((5, 6, 7)).astype(np.float32), affine)
    x, geom = read_image(src)
    assert geom.spacing == pytest.approx((0.7, 1.3, 3.1), abs=1e-5)
    _assert_same_nifti(src, write_image(x, geom, tmp_path / "out.nii"))


def test_multichannel_4d_nifti_keeps_channels_last(tmp_path):
    data = np.random.default_rng(0).random((4, 5, 6, 3)).astype(np.float32)
    src = _nifti(tmp_path / "brats.nii.gz", data, np.diag([1.0, 1.0, 1.5, 1.0]))
    x, geom = read_image(src)
    assert (x.shape, geom.spatial_dims, geom.channels) == (data.shape, 3, 3)
    out = write_image(x, geom, tmp_path / "out.nii.gz")
    _assert_same_nifti(src, out)
    label = write_image(np.ones((4, 5, 6), np.uint8), geom, tmp_path / "label.nii.gz")  # 3D label, 4D geometry
    assert nib.load(str(label)).shape == (4, 5, 6)
    np.testing.assert_allclose(nib.load(str(label)).affine, nib.load(str(src)).affine)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_sitk_3d_round_trip_keeps_origin_spacing_direction(tmp_path, suffix):
    img = sitk.GetImageFromArray(np.random.default_rng(0).random((6, 5, 4)).astype(np.float32))  # (z, y, x)
    img.SetSpacing((0.5, 0.9, 2.0))
    img.SetOrigin((1.0, -2.0, 3.0))
    img.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    src = tmp_path / f"in{suffix}"
    sitk.WriteImage(img, str(src))
    x, geom = read_image(src)
    assert x.shape == (4, 5, 6)  # (x, y, z)
    out = sitk.ReadImage(str(write_image(x, geom, tmp_path / f"out{suffix}")))
    assert out.GetSize() == img.GetSize()
    np.testing.assert_allclose(out.GetSpacing(), img.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(out.GetOrigin(), img.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(out.GetDirection(), img.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(img))
    # RAS: ITK's LPS x and y are negated, so the NIfTI written from this geometry has the same world positions
    nii = nib.load(str(write_image(x, geom, tmp_path / "as.nii.gz")))
    lps = np.array(img.TransformIndexToPhysicalPoint((1, 2, 3)))
    np.testing.assert_allclose(nii.affine[:3, :3] @ [1, 2, 3] + nii.affine[:3, 3], lps * [-1, -1, 1], atol=1e-5)


def test_rgba_png_2d_round_trip(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 255, (7, 9, 4), dtype=np.uint8)  # (y, x, C)
    src = tmp_path / "cells.png"
    sitk.WriteImage(sitk.GetImageFromArray(rgba, isVector=True), str(src))
    x, geom = read_image(src)
    assert (x.shape, geom.spatial_dims, geom.channels) == ((9, 7, 4), 2, 4)
    np.testing.assert_array_equal(x, rgba.transpose(1, 0, 2))
    assert canonical_reorientation(geom.affine_array()).is_identity  # a PNG is only transposed
    mask = write_image((x[..., 0] > 100).astype(np.uint8), geom, tmp_path / "mask.png")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(mask))), (rgba[..., 0] > 100))


def test_2d_nifti_round_trip(tmp_path):
    src = _nifti(tmp_path / "slice.nii.gz", np.arange(20, dtype=np.float32).reshape(4, 5), np.diag([-0.5, 0.7, 1, 1]))
    x, geom = read_image(src)
    assert geom.spatial_dims == 2 and x.shape == (4, 5)
    r = canonical_reorientation(geom.affine_array())
    assert r.flips == (0,)
    _assert_same_nifti(src, write_image(from_canonical(to_canonical(x, r), r), geom, tmp_path / "o.nii.gz"))


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    src = _nifti(tmp_path / "a.nii.gz", np.zeros((3, 3, 3), np.float32), np.eye(4))
    x, geom = read_image(src)
    write_image(x + 1, geom, tmp_path / "sub" / "b.nii.gz")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["b.nii.gz"]


def test_read_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(ImageReadError, match=r"missing\.nii\.gz: file not found"):
        read_image(tmp_path / "missing.nii.gz")
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.nii\.gz: file is empty \(0 bytes\)\. Re-export"):
        read_image(tmp_path / "empty.nii.gz")
    good = _nifti(tmp_path / "good.nii.gz", np.random.default_rng(0).random((20, 20, 20)).astype(np.float32), np.eye(4))
    (tmp_path / "cut.nii.gz").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageReadError, match=r"cut\.nii\.gz: cannot be read as NIfTI .*truncated or corrupt"):
        read_image(tmp_path / "cut.nii.gz")
    (tmp_path / "junk.nrrd").write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match=r"junk\.nrrd: cannot be read by SimpleITK"):
        read_image(tmp_path / "junk.nrrd")


def test_a_short_uncompressed_nifti_says_how_much_is_there_in_words_that_stand_alone(tmp_path):
    """nibabel's own message for a short read names an empty stream ("... bytes from )"); ours names the file."""
    good = _nifti(tmp_path / "good.nii", np.zeros((30, 20, 10), np.float32), np.eye(4))
    (tmp_path / "short.nii").write_bytes(good.read_bytes()[:4000])
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "short.nii")
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'short.nii'}: cannot be read as NIfTI (only 3648 of its 24000 bytes")
    assert "from )" not in text and len(text.splitlines()) == 1


def test_write_rejects_an_array_off_the_grid(tmp_path):
    x, geom = read_image(_nifti(tmp_path / "a.nii.gz", np.zeros((3, 4, 5), np.float32), np.eye(4)))
    with pytest.raises(DataError, match=r"out\.nii\.gz: array of shape \(4, 4, 5\) does not fit .*\(3, 4, 5\)"):
        write_image(np.zeros((4, 4, 5)), geom, tmp_path / "out.nii.gz")


def test_strip_suffix():
    assert strip_suffix("a/case_0000.nii.gz") == "case_0000"
    assert strip_suffix("x.y.png") == "x.y"
