"""The preprocess stage on tiny datasets: cache contents, validation, reruns, and exact inversion for inference."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from seg.config import DataConfig
from seg.data.errors import DataError
from seg.data.io import read_image, write_image
from seg.data.preprocess import preprocess_dataset, preprocess_image
from seg.data.properties import CaseProperties
from seg.data.restore import restore_to_original


def _cfg(root, **kw):
    return DataConfig(root=str(root), num_workers=0, folds=2, **kw)


def _msd(root, n=3, affine=None, modality="MRI", labels=True):
    """n cases of 7x8x9 with a zero border (so cropping has work) and labels 1, 2, on an oblique-free flipped grid."""
    affine = np.array([[0, 0, -1.5, 20], [-0.8, 0, 0, 5], [0, 2.0, 0, -3], [0, 0, 0, 1]]) if affine is None else affine
    rng = np.random.default_rng(0)
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        x = np.zeros((7, 8, 9), np.float32)
        x[1:6, 1:7, 2:8] = rng.normal(100 * (i + 1), 10, (5, 6, 6))
        y = np.zeros((7, 8, 9), np.float32)  # float-stored labels, as some real files are
        y[2:4, 2:5, 3:6], y[4, 2:5, 3:6] = 1, 2
        for sub, a in (("imagesTr", x), ("labelsTr", y)):
            img = nib.Nifti1Image(a, affine)
            img.header.set_qform(affine, 1)
            img.header.set_sform(affine, 2)
            nib.save(img, str(root / sub / f"case_{i}.nii.gz"))
    meta = {
        "modality": {"0": modality},
        "labels": {"0": "background", "1": "a", "2": "b"},
        "tensorImageSize": "3D",
        "training": [
            {"image": f"./imagesTr/case_{i}.nii.gz", "label": f"./labelsTr/case_{i}.nii.gz"} for i in range(n)
        ],
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_cache_files_and_formats(tmp_path):
    root = _msd(tmp_path / "ds")
    result = preprocess_dataset(_cfg(root), tmp_path / "cache", progress=False)
    assert (result.num_cases, result.num_valid, result.num_skipped, result.num_reused) == (3, 3, 0, 0)
    z = np.load(result.cases_dir / "case_0.npz")
    assert z["image"].dtype == np.float32 and z["label"].dtype == np.uint8
    assert z["image"].shape == (1, 6, 5, 6) and z["label"].shape == (1, 6, 5, 6)  # canonical (RAS) and cropped
    assert abs(float(z["image"].mean())) < 1e-5 and set(np.unique(z["label"])) == {0, 1, 2}
    props = CaseProperties.load(result.cases_dir / "case_0.json")
    assert props.canonical_shape == (9, 7, 8) and props.original_spacing == pytest.approx((1.5, 0.8, 2.0))
    fp = json.loads(result.fingerprint.read_text())
    assert fp["spatial_dims"] == 3 and fp["num_channels"] == 1 and fp["label_values"] == [0, 1, 2]
    assert fp["class_names"] == ["background", "a", "b"] and fp["preprocessing"]["target_spacing"] == pytest.approx(
        [1.5, 0.8, 2.0]
    )
    assert fp["preprocessing"]["normalization"] == [{"scheme": "zscore"}] and fp["num_valid"] == 3
    assert fp["median_shape_after_preprocessing"] == [6.0, 5.0, 6.0]
    splits = json.loads(result.splits.read_text())
    assert len(splits) == 2 and sorted(splits[0]["val"] + splits[1]["val"]) == ["case_0", "case_1", "case_2"]
    assert json.loads(result.dataset_json.read_text())["labels"]["1"] == "a"
    report = json.loads(result.report.read_text())
    assert report["skipped"] == [] and report["cases"]["case_0"]["status"] == "preprocessed"


def test_reruns_reuse_cases_and_redo_changed_ones(tmp_path):
    root = _msd(tmp_path / "ds")
    cfg = _cfg(root)
    preprocess_dataset(cfg, tmp_path / "cache", progress=False)
    before = (tmp_path / "cache" / "cases" / "case_1.npz").stat().st_mtime_ns
    again = preprocess_dataset(cfg, tmp_path / "cache", progress=False)
    assert again.num_reused == 3 and (tmp_path / "cache" / "cases" / "case_1.npz").stat().st_mtime_ns == before
    changed = preprocess_dataset(
        DataConfig(**{**cfg.__dict__, "target_spacing": (1.0, 1.0, 1.0)}), tmp_path / "cache", progress=False
    )
    assert changed.num_reused == 0


def test_bad_cases_are_skipped_listed_and_stale_cache_removed(tmp_path):
    root = _msd(tmp_path / "ds", n=4)
    preprocess_dataset(_cfg(root), tmp_path / "cache", progress=False)
    (root / "imagesTr" / "case_3.nii.gz").write_bytes(b"")
    result = preprocess_dataset(_cfg(root), tmp_path / "cache", progress=False)
    assert (result.num_valid, result.num_skipped) == (3, 1)
    report = json.loads(result.report.read_text())
    assert report["skipped"] == ["case_3"] and "case_3.nii.gz: file is empty (0 bytes)" in report["problems"][0]
    assert not (result.cases_dir / "case_3.npz").exists() and not (result.cases_dir / "case_3.json").exists()
    with pytest.raises(DataError, match=r"1 of 4 case\(s\) invalid and data.strict is set; first problem: .*case_3"):
        preprocess_dataset(_cfg(root, strict=True), tmp_path / "cache", progress=False)


def test_no_valid_case_fails_with_the_report(tmp_path):
    root = _msd(tmp_path / "ds", n=2)
    for p in (root / "labelsTr").iterdir():
        p.write_bytes(b"")
    with pytest.raises(DataError, match=r"2 of 2 case\(s\) invalid and no valid case remains; first problem: .*report"):
        preprocess_dataset(_cfg(root), tmp_path / "cache", progress=False)
    assert json.loads((tmp_path / "cache" / "report.json").read_text())["num_valid"] == 0


def test_ct_uses_global_percentile_clip_and_zscore(tmp_path):
    root = _msd(tmp_path / "ds", modality="CT")
    fp = json.loads(preprocess_dataset(_cfg(root), tmp_path / "c", progress=False).fingerprint.read_text())
    (norm,) = fp["preprocessing"]["normalization"]
    assert norm["scheme"] == "ct" and norm["lower"] < norm["upper"] and norm["std"] > 0


@pytest.mark.parametrize("workers", [0, 2])
def test_preprocess_image_matches_the_cache_and_restores_exactly(tmp_path, workers):
    root = _msd(tmp_path / "ds")
    result = preprocess_dataset(
        DataConfig(root=str(root), num_workers=workers, folds=2), tmp_path / "c", progress=False
    )
    image, props = preprocess_image(root / "imagesTr" / "case_2.nii.gz", result.fingerprint)
    z = np.load(result.cases_dir / "case_2.npz")
    np.testing.assert_array_equal(image, z["image"])
    label, geom = read_image(root / "labelsTr" / "case_2.nii.gz")
    restored = restore_to_original(z["label"], props, is_label=True)
    np.testing.assert_array_equal(restored, label)  # spacing unchanged: exact
    out = nib.load(str(write_image(restored, props.geometry, tmp_path / "pred.nii.gz")))
    src = nib.load(str(root / "imagesTr" / "case_2.nii.gz"))
    assert out.shape == src.shape and np.array_equal(out.affine, src.affine)
    assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == (1, 2)
    probs = restore_to_original(np.stack([1 - z["label"][0] / 2, z["label"][0] / 2]), props, False, background=(1, 0))
    assert probs.shape == (*src.shape, 2) and probs.dtype == np.float32 and probs[0, 0, 0, 0] == 1


def test_restore_after_resampling_is_near_exact(synthetic_3d, tmp_path):
    result = preprocess_dataset(_cfg(synthetic_3d, synthetic_cases=6), tmp_path / "c", progress=False)
    agree = []
    for props_path in sorted(result.cases_dir.glob("*.json")):
        props = CaseProperties.load(props_path)
        assert props.resampled_shape != props.cropped_shape or props.original_spacing == props.target_spacing
        label, _ = read_image(props.label_file)
        restored = restore_to_original(np.load(props_path.with_suffix(".npz"))["label"], props, is_label=True)
        assert restored.shape == label.shape
        fg = (label > 0) | (restored > 0)
        agree.append(np.mean(restored[fg] == label[fg]))
    assert min(agree) > 0.9, agree


def test_2d_png_dataset_round_trips_masks(tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (tmp_path / "ds" / sub).mkdir(parents=True)
    for i in range(3):
        rgba = np.zeros((12, 10, 4), np.uint8)
        rgba[2:10, 1:9, :3] = rng.integers(20, 250, (8, 8, 1))
        rgba[..., 3] = 255
        mask = np.zeros((12, 10), np.uint8)
        mask[3:7, 2:6] = 255
        sitk.WriteImage(sitk.GetImageFromArray(rgba, isVector=True), str(tmp_path / "ds" / "images" / f"n{i}.png"))
        sitk.WriteImage(sitk.GetImageFromArray(mask), str(tmp_path / "ds" / "masks" / f"n{i}.png"))
    result = preprocess_dataset(_cfg(tmp_path / "ds"), tmp_path / "c", progress=False)
    fp = json.loads(result.fingerprint.read_text())
    assert fp["spatial_dims"] == 2 and fp["labels"] == {"0": "background", "1": "foreground"}
    z = np.load(result.cases_dir / "n0.npz")
    assert z["image"].shape == (1, 8, 8) and set(np.unique(z["label"])) == {0, 1}
    image, props = preprocess_image(tmp_path / "ds" / "images" / "n0.png", result.fingerprint)
    restored = restore_to_original(z["label"] * 255, props, is_label=True)
    out = write_image(restored, props.geometry, tmp_path / "n0_pred.png")
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(out))),
        sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "ds" / "masks" / "n0.png"))),
    )


def test_preprocess_image_errors_name_the_file(tmp_path):
    root = _msd(tmp_path / "ds")
    fp = preprocess_dataset(_cfg(root), tmp_path / "c", progress=False).fingerprint
    bad = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4), np.float32), np.eye(4)), str(bad))
    with pytest.raises(DataError, match=r"flat\.nii\.gz: is 2D \(shape \(4, 4\)\) but the dataset is 3D"):
        preprocess_image([bad], fp)
    props = CaseProperties.load(tmp_path / "c" / "cases" / "case_0.json")
    with pytest.raises(DataError, match=r"case case_0: array of shape \(1, 2, 2, 2\) does not match the preprocessed"):
        restore_to_original(np.zeros((1, 2, 2, 2)), props, is_label=True)


def test_multichannel_channel_files(tmp_path):
    root = _msd(tmp_path / "ds", n=2)
    for i in range(2):
        src = root / "imagesTr" / f"case_{i}.nii.gz"
        shutil.copy(src, root / "imagesTr" / f"case_{i}_0001.nii.gz")
        src.rename(root / "imagesTr" / f"case_{i}_0000.nii.gz")
    meta = json.loads((root / "dataset.json").read_text())
    meta["modality"] = {"0": "T1", "1": "T2"}
    (root / "dataset.json").write_text(json.dumps(meta))
    result = preprocess_dataset(_cfg(root), tmp_path / "c", progress=False)
    assert result.num_valid == 2 and np.load(result.cases_dir / "case_0.npz")["image"].shape[0] == 2
    image, props = preprocess_image(sorted((root / "imagesTr").glob("case_1_*")), result.fingerprint)
    assert props.case_id == "case_1" and image.shape[0] == 2
