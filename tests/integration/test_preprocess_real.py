"""The preprocess stage on the real development datasets, read in place from ../shared/data."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from seg.config import DataConfig
from seg.data.io import read_image, write_image
from seg.data.preprocess import preprocess_dataset, preprocess_image
from seg.data.properties import CaseProperties
from seg.data.restore import restore_to_original

pytestmark = pytest.mark.slow


def test_hippocampus_all_cases(shared_data, tmp_path):
    root = shared_data / "Task04_Hippocampus"
    result = preprocess_dataset(DataConfig(root=str(root), num_workers=2), tmp_path / "cache", progress=False)
    assert (result.num_cases, result.num_valid, result.num_skipped) == (208, 208, 0)
    fp = json.loads(result.fingerprint.read_text())
    assert fp["spatial_dims"] == 3 and fp["num_channels"] == 1 and fp["modality"] == {"0": "MRI"}
    assert fp["label_values"] == [0, 1, 2] and fp["class_names"] == ["background", "Anterior", "Posterior"]
    assert fp["spacings"]["median"] == [1.0, 1.0, 1.0] and fp["preprocessing"]["target_spacing"] == [1.0, 1.0, 1.0]
    assert fp["shapes"]["min"] == [31, 40, 24] and fp["shapes"]["max"] == [43, 59, 47]
    assert fp["preprocessing"]["normalization"] == [{"scheme": "zscore"}] and fp["intensity"][0]["max"] > 1e6
    splits = json.loads(result.splits.read_text())
    assert len(splits) == 5 and sorted(v for s in splits for v in s["val"]) == sorted(fp["cases"])
    assert len(list(result.cases_dir.glob("*.npz"))) == 208
    for case_id in ("hippocampus_003", "hippocampus_243", "hippocampus_001"):  # the first two store float labels
        z = np.load(result.cases_dir / f"{case_id}.npz")
        assert z["image"].dtype == np.float32 and np.isfinite(z["image"]).all()
        assert z["label"].dtype == np.uint8 and set(np.unique(z["label"])) == {0, 1, 2}
        image, props = preprocess_image(root / "imagesTr" / f"{case_id}.nii.gz", result.fingerprint)
        np.testing.assert_array_equal(image, z["image"])
        label, _ = read_image(root / "labelsTr" / f"{case_id}.nii.gz")
        restored = restore_to_original(z["label"], props, is_label=True)
        np.testing.assert_array_equal(restored, label)
        out = nib.load(str(write_image(restored, props.geometry, tmp_path / f"{case_id}.nii.gz")))
        src = nib.load(str(root / "imagesTr" / f"{case_id}.nii.gz"))
        assert out.shape == src.shape and np.allclose(out.affine, src.affine, atol=1e-5)
        assert (
            out.header["qform_code"] == src.header["qform_code"]
            and out.header["sform_code"] == src.header["sform_code"]
        )
    again = preprocess_dataset(DataConfig(root=str(root), num_workers=2), tmp_path / "cache", progress=False)
    assert again.num_reused == 208


def test_dsb2018_nuclei_all_images(shared_data, tmp_path):
    root = shared_data / "DSB2018_nuclei"
    result = preprocess_dataset(DataConfig(root=str(root), num_workers=2), tmp_path / "cache", progress=False)
    assert (result.num_cases, result.num_valid, result.num_skipped) == (200, 200, 0)
    fp = json.loads(result.fingerprint.read_text())
    assert fp["spatial_dims"] == 2 and fp["num_channels"] == 1 and fp["layout"] == "2d"
    assert fp["label_values"] == [0, 1] and fp["labels"] == {"0": "background", "1": "foreground"}
    assert fp["shapes"]["min"] == [256, 256] and fp["preprocessing"]["binary_255"] is True
    case_id = sorted(fp["cases"])[0]
    z = np.load(result.cases_dir / f"{case_id}.npz")
    assert z["image"].ndim == 3 and z["label"].shape == (1, *z["image"].shape[1:])
    image, props = preprocess_image(root / "images" / f"{case_id}.png", result.fingerprint)
    np.testing.assert_array_equal(image, z["image"])
    restored = restore_to_original(z["label"] * 255, props, is_label=True)
    out = write_image(restored, props.geometry, tmp_path / f"{case_id}.png")
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(out))),
        sitk.GetArrayFromImage(sitk.ReadImage(str(root / "masks" / f"{case_id}.png"))),
    )
    props_json = CaseProperties.load(result.cases_dir / f"{case_id}.json")
    assert props_json.geometry.shape == (256, 256, 4)  # RGBA on disk, grey in the cache
