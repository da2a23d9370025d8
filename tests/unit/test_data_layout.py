"""Finding cases (MSD with and without dataset.json, channel files, 2D layout) and k-fold splits."""

from __future__ import annotations

import json

import pytest

from seg.data.errors import DataError
from seg.data.layout import find_dataset
from seg.data.splits import load_splits, make_splits, save_splits


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_msd_without_dataset_json_groups_channel_files(tmp_path):
    for case in ("a", "b"):
        for c in range(2):
            _touch(tmp_path / "imagesTr" / f"{case}_{c:04d}.nii.gz")
        _touch(tmp_path / "labelsTr" / f"{case}.nii.gz")
    _touch(tmp_path / "imagesTr" / "._a_0000.nii.gz")  # macOS resource fork files are ignored
    ds = find_dataset(tmp_path)
    assert ds.layout == "msd" and [c.case_id for c in ds.cases] == ["a", "b"]
    assert [p.name for p in ds.cases[0].images] == ["a_0000.nii.gz", "a_0001.nii.gz"]
    assert ds.cases[0].label.name == "a.nii.gz" and ds.labels is None and not ds.problems


def test_msd_dataset_json_reports_missing_files(tmp_path):
    _touch(tmp_path / "imagesTr" / "x.nii.gz")
    meta = {
        "labels": {"0": "background", "1": "organ"},
        "modality": {"0": "CT"},
        "tensorImageSize": "3D",
        "training": [
            {"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"},
            {"image": "./imagesTr/y.nii.gz", "label": "./labelsTr/y.nii.gz"},
        ],
    }
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    ds = find_dataset(tmp_path)
    assert ds.labels == {"0": "background", "1": "organ"} and ds.modality == {"0": "CT"}
    assert ds.problems["x"] == [
        f"{tmp_path}/labelsTr/x.nii.gz: label listed in dataset.json not found. Add the file or remove the entry."
    ]
    assert "y.nii.gz: image listed in dataset.json not found" in ds.problems["y"][0]


def test_2d_layout_matches_masks_by_name(tmp_path):
    _touch(tmp_path / "images" / "c1.png")
    _touch(tmp_path / "images" / "c2.png")
    _touch(tmp_path / "masks" / "c1.png")
    ds = find_dataset(tmp_path)
    assert ds.layout == "2d" and ds.tensor_image_size == "2D"
    assert ds.cases[0].label.name == "c1.png" and ds.cases[1].label is None
    assert "no mask for image c2.png" in ds.problems["c2"][0]


def test_unknown_folder_and_missing_root_fail_with_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"not a dataset folder: expected dataset.json or imagesTr/ .* Point data.root"):
        find_dataset(tmp_path)
    with pytest.raises(DataError, match=r"nowhere: dataset folder not found\. Set data.root"):
        find_dataset(tmp_path / "nowhere")
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DataError, match=r"dataset.json: not valid JSON"):
        find_dataset(tmp_path)


def test_splits_are_deterministic_disjoint_and_cover_all_cases(tmp_path):
    ids = [f"c{i}" for i in range(11)]
    splits = make_splits(ids, 5, seed=3)
    assert splits == make_splits(list(reversed(ids)), 5, seed=3)  # order of discovery does not matter
    assert splits != make_splits(ids, 5, seed=4)
    vals = [v for s in splits for v in s["val"]]
    assert sorted(vals) == sorted(ids) and len(vals) == len(set(vals))
    assert all(not set(s["train"]) & set(s["val"]) and len(s["train"]) + len(s["val"]) == 11 for s in splits)
    assert {len(s["val"]) for s in splits} == {2, 3}
    assert load_splits(save_splits(splits, tmp_path / "splits.json")) == splits


def test_a_test_part_lies_in_no_fold_and_the_folds_cover_the_rest():
    ids = [f"c{i:02d}" for i in range(20)]
    splits = make_splits(ids, 4, seed=1, test_fraction=0.2)
    test = splits[0]["test"]
    assert len(test) == 4 and all(s["test"] == test for s in splits)
    assert splits == make_splits(list(reversed(ids)), 4, seed=1, test_fraction=0.2)
    for s in splits:
        assert not set(test) & (set(s["train"]) | set(s["val"])) and len(s["train"]) + len(s["val"]) == 16
    assert sorted(v for s in splits for v in s["val"]) == sorted(set(ids) - set(test))
    assert [s["val"] for s in make_splits(ids, 4, seed=1)] != [s["val"] for s in splits]
    with pytest.raises(DataError, match=r"3 valid cases outside the test part cannot fill 4 folds.*test_fraction"):
        make_splits(ids[:5], 4, 0, test_fraction=0.4)


def test_too_few_cases_for_the_folds():
    with pytest.raises(DataError, match=r"3 valid cases cannot fill 5 folds\. Lower data.folds to at most 3"):
        make_splits(["a", "b", "c"], 5, 0)


def test_load_splits_missing(tmp_path):
    with pytest.raises(DataError, match=r"splits.json: splits file not found\. Run `seg preprocess`"):
        load_splits(tmp_path / "splits.json")
