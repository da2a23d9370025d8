"""`seg evaluate` (seg/infer/scoring.py) and the infer stage's per-case metrics: nnU-Net's conventions for empty
classes, one-line errors naming the file while the other cases are scored, CSV and JSON, 2D PNG pairs. The metrics
themselves: tests/unit/test_metrics.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from seg.cli import main
from seg.data.errors import DataError
from seg.infer.case_metrics import case_metrics
from seg.infer.label_maps import parse_classes

SPACING = (0.5, 1.0, 3.0)  # anisotropic: a voxel step along axis 2 is 6x one along axis 0


def _save(array: np.ndarray, path: Path, spacing=SPACING, origin=(0.0, 0.0, 0.0)) -> Path:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array.astype(np.uint8), affine), path)
    return path


def _box(shape=(12, 10, 8), lo=(2, 2, 2), size=(6, 6, 4), value=1, out=None) -> np.ndarray:
    a = np.zeros(shape, np.uint8) if out is None else out
    a[tuple(slice(s, s + n) for s, n in zip(lo, size, strict=True))] = value
    return a


# --- the infer stage's record ---------------------------------------------------------------------------------


def test_case_metrics_records_undefined_values_as_none():
    """The infer stage's per-case record: Dice None for a class in neither map (seg.metrics' NaN; JSON null, left
    out of the means), HD95 None where either lacks it, the same keys."""
    ref = _box()
    out = case_metrics(ref, ref, SPACING, ["background", "a", "b"])
    assert out["b"] == {"dice": None, "hd95": None, "volume_pred": 0.0, "volume_ref": 0.0}
    assert out["a"]["dice"] == 1.0 and out["a"]["hd95"] == 0.0
    assert case_metrics(ref * 0, ref, SPACING, ["background", "a"])["a"]["dice"] == 0.0


# --- the command --------------------------------------------------------------------------------------------------


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    """Three good cases, a prediction without a reference, and one on a shifted grid."""
    pred, labels = tmp_path / "pred", tmp_path / "labels"
    for i in range(3):
        ref = _box(value=1)
        _box(lo=(9, 2, 2), size=(2, 2, 2), value=2, out=ref)  # class 2 beside class 1
        p = np.roll(ref, i, axis=0)
        if i == 2:
            p[p == 2] = 0  # class 2 missed
        _save(ref, labels / f"case{i}.nii.gz")
        _save(p, pred / f"case{i}.nii.gz")
    _save(_box(), pred / "orphan.nii.gz")
    _save(_box(), labels / "shifted.nii.gz")
    _save(_box(), pred / "shifted.nii.gz", origin=(0.0, 0.0, 2.0))
    return pred, labels


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("seg evaluate: error:")]


def test_bad_cases_fail_one_line_each_naming_the_file_while_the_others_are_scored(folders, tmp_path, capsys):
    pred, labels = folders
    out = tmp_path / "out"
    rc = main(["evaluate", str(pred), str(labels), "--output", str(out), "--tolerance", "1"])
    captured = capsys.readouterr()
    assert rc == 1
    errors = _errors(captured.err)
    assert len(errors) == 2 and len(captured.err.strip().splitlines()) == 2, captured.err
    assert f"{pred / 'orphan.nii.gz'}: no reference label map for case 'orphan'" in errors[0]
    assert f"{pred / 'shifted.nii.gz'} (against {labels / 'shifted.nii.gz'}): label affine differs" in errors[1]
    assert "3 of 5 cases scored" in captured.out
    assert [line.split(":")[0] for line in captured.out.splitlines()[:3]] == ["case0", "case1", "case2"]

    rows = list(csv.DictReader((out / "evaluation.csv").open()))
    assert [(r["case"], r["class"]) for r in rows] == [(f"case{i}", c) for i in range(3) for c in ("1", "2")]
    by = {(r["case"], r["class"]): r for r in rows}
    assert float(by["case1", "1"]["dice"]) == pytest.approx(2 * 120 / (2 * 120 + 48))
    assert float(by["case1", "1"]["hd95"]) == pytest.approx(0.5)
    assert by["case2", "2"]["dice"] == "0.0" and by["case2", "2"]["hd95"] == "nan"

    data = json.loads((out / "evaluation.json").read_text())
    assert data["cases"] == 5 and data["scored"] == 3 and data["tolerance_mm"] == 1.0
    assert [f["case"] for f in data["failed"]] == ["orphan", "shifted"]
    dice_1 = [1.0, 2 * 120 / 288, 2 * 96 / 288]
    assert data["per_class"]["1"]["dice"]["mean"] == pytest.approx(np.mean(dice_1))
    assert data["per_class"]["1"]["dice"]["sd"] == pytest.approx(np.std(dice_1, ddof=1))
    assert data["per_class"]["2"]["hd95"]["n"] == 2  # undefined where class 2 was missed: left out
    means = [data["per_class"][c]["dice"]["mean"] for c in ("1", "2")]
    assert data["mean"]["dice"] == pytest.approx(np.mean(means))
    assert data["per_case"][2]["metrics"]["2"]["hd95"] is None  # JSON has no NaN: null


def test_exit_0_when_every_case_is_scored_and_unpaired_references(folders, tmp_path, capsys):
    pred, labels = folders
    (pred / "orphan.nii.gz").unlink()
    (pred / "shifted.nii.gz").unlink()
    assert main(["evaluate", str(pred), str(labels), "--output", str(tmp_path / "a")]) == 0
    assert "1 reference label map has no prediction, not scored (shifted.nii.gz)" in capsys.readouterr().err
    rc = main(["evaluate", str(pred / "case*.nii.gz"), str(labels), "--output", str(tmp_path / "b"), "--all-labels"])
    assert rc == 1
    err = capsys.readouterr().err
    assert _errors(err) == [
        f"seg evaluate: error: {labels / 'shifted.nii.gz'}: no prediction for this reference in "
        f"{pred / 'case*.nii.gz'}. Predict the case or leave out --all-labels."
    ]


def test_class_names_and_a_class_absent_from_both_maps(tmp_path, capsys):
    """nnU-Net's convention: Dice NaN where a class is in neither map; the class mean leaves it out."""
    pred, labels = tmp_path / "pred", tmp_path / "labels"
    both = _box(value=1)
    _box(lo=(9, 2, 2), size=(2, 2, 2), value=2, out=both)
    _save(both, labels / "a.nii.gz")
    _save(both, pred / "a.nii.gz")
    _save(_box(), labels / "b.nii.gz")  # no class 2 anywhere
    _save(np.roll(_box(), 1, axis=1), pred / "b.nii.gz")
    rc = main(["evaluate", str(pred), str(labels), "--classes", "1=liver", "2=tumour"])
    assert rc == 0, capsys.readouterr().err
    data = json.loads((pred / "evaluation.json").read_text())  # the default output: the predictions' folder
    assert data["classes"] == {"liver": 1, "tumour": 2}
    assert data["per_case"][1]["metrics"]["tumour"]["dice"] is None
    assert data["per_class"]["tumour"]["dice"] == {"mean": 1.0, "sd": None, "n": 1}
    assert data["per_class"]["liver"]["dice"]["mean"] == pytest.approx((1.0 + 2 * 120 / 288) / 2)
    rows = list(csv.DictReader((pred / "evaluation.csv").open()))
    assert [r["dice"] for r in rows if r["class"] == "tumour"] == ["1.0", "nan"]


def test_a_png_pair_with_a_0_255_reference(tmp_path, capsys):
    """A 2D mask stored as 0/255 means 0/1, as seg preprocess reads it; seg infer writes 0/1 predictions."""
    pred, labels = tmp_path / "pred", tmp_path / "labels"
    pred.mkdir(), labels.mkdir()
    ref = np.zeros((20, 16), np.uint8)
    ref[4:12, 3:9] = 255  # 48 pixels
    p = np.zeros_like(ref)
    p[6:14, 3:9] = 1  # 48 pixels, 36 shared
    sitk.WriteImage(sitk.GetImageFromArray(ref), str(labels / "img1.png"))
    sitk.WriteImage(sitk.GetImageFromArray(p), str(pred / "img1.png"))
    assert main(["evaluate", str(pred), str(labels), "--output", str(tmp_path / "out")]) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "evaluation.csv").open()))
    assert [(r["class"], float(r["dice"])) for r in rows] == [("1", 2 * 36 / 96)]
    assert float(rows[0]["hd95"]) == pytest.approx(2.0) and float(rows[0]["volume_ref"]) == 48.0
    main(["evaluate", str(pred), str(labels), "--output", str(tmp_path / "raw"), "--no-binary-255"])
    raw = list(csv.DictReader((tmp_path / "raw" / "evaluation.csv").open()))
    assert [(r["class"], r["dice"]) for r in raw] == [("1", "0.0"), ("255", "0.0")]
    capsys.readouterr()


def test_a_probability_map_fails_naming_the_file(tmp_path, capsys):
    pred, labels = tmp_path / "pred", tmp_path / "labels"
    _save(_box(), labels / "a.nii.gz")
    pred.mkdir()
    nib.save(nib.Nifti1Image(np.full((12, 10, 8), 0.3, np.float32), np.diag([*SPACING, 1.0])), pred / "a.nii.gz")
    assert main(["evaluate", str(pred), str(labels), "--output", str(tmp_path / "out")]) == 1
    assert _errors(capsys.readouterr().err) == [
        f"seg evaluate: error: {pred / 'a.nii.gz'}: holds non-integer values (e.g. 0.3); is it a probability map? "
        f"A label map holds integer class ids."
    ]


def test_user_errors_are_one_line_with_exit_2(tmp_path, capsys):
    (tmp_path / "labels").mkdir()
    assert main(["evaluate", str(tmp_path / "nothing*.nii.gz"), str(tmp_path / "labels")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no image file matches it as a glob" in err[0]
    assert main(["evaluate", str(tmp_path), str(tmp_path / "missing")]) == 2
    assert "labels folder not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "items,expected",
    [
        (["1", "3"], {1: "1", 3: "3"}),
        (["2=tumour", "1=liver"], {1: "liver", 2: "tumour"}),
        (["liver", "tumour"], {1: "liver", 2: "tumour"}),
    ],
)
def test_parse_classes(items, expected):
    assert parse_classes(items) == expected


def test_parse_classes_errors():
    with pytest.raises(DataError, match=r"label values must be 1 or more \(0 is background\), got \[0, 1\]"):
        parse_classes(["0", "1"])
    with pytest.raises(DataError, match="'x=liver' is not VALUE=NAME with an integer value"):
        parse_classes(["x=liver"])
