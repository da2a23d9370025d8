"""`seg evaluate`: known Dice, HD95 and surface Dice values (surface Dice against MONAI's), nnU-Net's conventions
for empty classes, one-line errors naming the file while the other cases are scored, CSV and JSON, 2D PNG pairs."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from seg.cli import main
from seg.data.errors import DataError
from seg.infer.evaluate import parse_classes
from seg.infer.metrics import case_metrics, class_metrics, surface_dice

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


def _similar_blobs(rng: np.random.Generator, shape) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, reference): smooth random blobs, the prediction's boundary moved by finer noise."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(rng.random(shape), 2)
    return smooth + 0.3 * (ndimage.gaussian_filter(rng.random(shape), 1) - 0.5) > 0.51, smooth > 0.51


# --- metrics ------------------------------------------------------------------------------------------------------

def test_dice_is_nnunets_formula_and_nan_when_both_are_empty():
    ref = _box()  # 6*6*4 = 144 voxels
    pred = np.roll(ref, 1, axis=0)  # one slab of 6*4 = 24 voxels moves out: TP 120, FP 24, FN 24
    m = class_metrics(pred == 1, ref == 1, SPACING, empty_dice=math.nan)
    assert (m["tp"], m["fp"], m["fn"]) == (120, 24, 24)
    assert m["dice"] == 2 * 120 / (2 * 120 + 24 + 24)
    assert m["volume_ref"] == pytest.approx(144 * 0.5 * 1.0 * 3.0)
    empty = np.zeros_like(ref, bool)
    assert math.isnan(class_metrics(empty, empty, SPACING, empty_dice=math.nan)["dice"])
    one_sided = class_metrics(empty, ref == 1, SPACING, tolerance=1.0, empty_dice=math.nan)
    assert one_sided["dice"] == 0.0 and one_sided["hd95"] is None and one_sided["surface_dice"] == 0.0


def test_case_metrics_keeps_its_conventions():
    """The infer stage's metrics are unchanged: Dice 1 for a class in neither map, HD95 None, the same keys."""
    ref = _box()
    out = case_metrics(ref, ref, SPACING, ["background", "a", "b"])
    assert out["b"] == {"dice": 1.0, "hd95": None, "volume_pred": 0.0, "volume_ref": 0.0}
    assert out["a"]["dice"] == 1.0 and out["a"]["hd95"] == 0.0


@pytest.mark.parametrize("axis,expected", [(0, 0.5), (1, 1.0), (2, 3.0)])
def test_hd95_uses_the_spacing(axis, expected):
    """A box moved one voxel along an axis: a face (36 or more of its surface voxels, >5%) is one voxel step away."""
    ref = _box()
    pred = np.roll(ref, 1, axis=axis)
    assert class_metrics(pred == 1, ref == 1, SPACING)["hd95"] == pytest.approx(expected)


def test_hd95_of_two_voxels_is_their_distance_in_mm():
    ref, pred = np.zeros((6, 6, 8), bool), np.zeros((6, 6, 8), bool)
    ref[2, 2, 1], pred[4, 2, 4] = True, True
    assert class_metrics(pred, ref, SPACING)["hd95"] == pytest.approx(math.hypot(2 * 0.5, 3 * 3.0))


def _monai_surface_dice(pred: np.ndarray, ref: np.ndarray, spacing, tolerance: float) -> float:
    from monai.metrics import compute_surface_dice

    one_hot = lambda m: torch.from_numpy(np.stack([~m, m]))[None].float()  # noqa: E731  (1, 2, *spatial)
    with warnings.catch_warnings():  # MONAI warns of empty masks and of its own deprecated argument
        warnings.simplefilter("ignore")
        return float(compute_surface_dice(one_hot(pred), one_hot(ref), [tolerance], spacing=list(spacing))[0, 0])


@pytest.mark.parametrize("spatial_dims", (2, 3))
def test_surface_dice_agrees_with_monai(spatial_dims):
    rng = np.random.default_rng(spatial_dims)
    shape, spacing = ((40, 32), (0.7, 1.3)) if spatial_dims == 2 else ((24, 20, 10), (0.8, 1.1, 2.7))
    for trial in range(3):
        pred, ref = _similar_blobs(rng, shape)
        pred[0] |= trial == 2  # a mask on the array's border: border voxels are surface voxels in both
        for tolerance in (0.5, 1.0, 2.05, 4.0):
            ours = surface_dice(pred, ref, spacing, tolerance)
            assert ours == pytest.approx(_monai_surface_dice(pred, ref, spacing, tolerance), abs=1e-6)
            assert 0.0 <= ours <= 1.0


def test_surface_dice_known_values_and_empty_conventions():
    ref = _box()
    assert surface_dice(ref == 1, ref == 1, SPACING, 0.0) == 1.0
    moved = np.roll(ref, 1, axis=2) == 1  # top and bottom faces 3 mm from the other surface, the sides 0 mm
    assert surface_dice(moved, ref == 1, SPACING, 3.0) == 1.0
    below = surface_dice(moved, ref == 1, SPACING, 2.9)
    assert below < 1.0 and below == pytest.approx(_monai_surface_dice(moved, ref == 1, SPACING, 2.9))
    empty = np.zeros_like(moved)
    assert math.isnan(surface_dice(empty, empty, SPACING, 1.0))
    assert math.isnan(_monai_surface_dice(empty, empty, SPACING, 1.0))
    assert surface_dice(empty, moved, SPACING, 1.0) == 0.0 == _monai_surface_dice(empty, moved, SPACING, 1.0)
    with pytest.raises(ValueError, match="tolerance must be a finite number of mm >= 0, got -1"):
        surface_dice(moved, moved, SPACING, -1.0)


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
    assert _errors(err) == [f"seg evaluate: error: {labels / 'shifted.nii.gz'}: no prediction for this reference in "
                            f"{pred / 'case*.nii.gz'}. Predict the case or leave out --all-labels."]


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
        f"A label map holds integer class ids."]


def test_user_errors_are_one_line_with_exit_2(tmp_path, capsys):
    (tmp_path / "labels").mkdir()
    assert main(["evaluate", str(tmp_path / "nothing*.nii.gz"), str(tmp_path / "labels")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no image file matches it as a glob" in err[0]
    assert main(["evaluate", str(tmp_path), str(tmp_path / "missing")]) == 2
    assert "labels folder not found" in capsys.readouterr().err


@pytest.mark.parametrize("items,expected", [
    (["1", "3"], {1: "1", 3: "3"}),
    (["2=tumour", "1=liver"], {1: "liver", 2: "tumour"}),
    (["liver", "tumour"], {1: "liver", 2: "tumour"}),
])
def test_parse_classes(items, expected):
    assert parse_classes(items) == expected


def test_parse_classes_errors():
    with pytest.raises(DataError, match=r"label values must be 1 or more \(0 is background\), got \[0, 1\]"):
        parse_classes(["0", "1"])
    with pytest.raises(DataError, match="'x=liver' is not VALUE=NAME with an integer value"):
        parse_classes(["x=liver"])
