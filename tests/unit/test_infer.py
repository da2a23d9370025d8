"""`seg infer` on a tiny untrained model: geometry-exact outputs, bad files, reruns, safe loading, metrics, and
ensembles of two different tiny models."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from infer_fixture import tiny_model_folder

from seg.cli import main
from seg.infer.case_metrics import case_metrics
from seg.infer.cases import find_cases
from seg.infer.model_io import load_model, load_models
from seg.infer.predictor import EnsemblePredictor, Predictor, make_predictor, mirror_axes
from seg.metrics import dice
from seg.model_folder import ModelMeta, checkpoint_record
from seg.models.errors import ModelLoadError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, synthetic_3d) -> Path:
    return tiny_model_folder(tmp_path_factory.mktemp("infer"), synthetic_3d)


@pytest.fixture(scope="module")
def folds_dir(tmp_path_factory, synthetic_3d) -> Path:
    """folds/fold_0 and folds/fold_1: two different members (seeds 0 and 1, windows 16 and 24) of one cache."""
    root = tmp_path_factory.mktemp("ensemble")
    tiny_model_folder(root, synthetic_3d, seed=0, name="folds/fold_0")
    tiny_model_folder(root, synthetic_3d, seed=1, name="folds/fold_1", patch=24)
    return root / "folds"


def _oblique_copy(src: Path, dst: Path) -> Path:
    """The case with a rotated, anisotropic, shifted affine and axes permuted: a hard geometry."""
    img = nib.load(src)
    data = np.asarray(img.dataobj).transpose(2, 0, 1)
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.array([[0, 0.9 * c, -1.3 * s, 10], [0, 0.9 * s, 1.3 * c, -20], [2.1, 0, 0, 5], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), dst)
    return dst


def test_outputs_keep_the_input_geometry_and_header(model_dir, synthetic_3d, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    src = sorted((synthetic_3d / "imagesTr").iterdir())[0]
    _oblique_copy(src, inputs / "oblique_0000.nii.gz")
    (inputs / "plain.nii.gz").write_bytes(src.read_bytes())
    out = tmp_path / "out"
    rc = main(
        [
            "infer",
            "--model",
            str(model_dir),
            "--input",
            str(inputs),
            "--output",
            str(out),
            "--no-tta",
            "--probabilities",
            "--gates",
            "--precision",
            "32",
        ]
    )
    assert rc == 0
    for name, case in (("oblique_0000.nii.gz", "oblique"), ("plain.nii.gz", "plain")):
        ref = nib.load(inputs / name)
        seg_img = nib.load(out / f"{case}.nii.gz")
        assert seg_img.shape == ref.shape and np.array_equal(seg_img.affine, ref.affine)
        assert seg_img.header.get_qform(coded=True)[1] == ref.header.get_qform(coded=True)[1]
        assert set(np.unique(np.asarray(seg_img.dataobj))) <= {0, 1, 2}
        probs = nib.load(out / "probabilities" / f"{case}.nii.gz")
        assert probs.shape == (*ref.shape, 3) and np.allclose(np.asarray(probs.dataobj).sum(-1), 1, atol=1e-4)
        for level in ("level0", "level1"):
            gate = np.asarray(nib.load(out / "gates" / f"{case}_{level}.nii.gz").dataobj)
            assert gate.shape == ref.shape and gate.min() >= 0 and gate.max() <= 1
    pred = json.loads((out / "predictions.json").read_text())
    assert pred["summary"]["ok"] == 2 and pred["model"]["config_hash"] and pred["settings"]["tta"] is False
    assert pred["settings"]["tta_mirror_axes"] == []


def test_bad_files_fail_one_line_each_and_the_batch_goes_on(model_dir, synthetic_3d, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = sorted((synthetic_3d / "imagesTr").iterdir())[1]
    (inputs / "good.nii.gz").write_bytes(good.read_bytes())
    (inputs / "truncated.nii.gz").write_bytes(good.read_bytes()[:400])
    (inputs / "empty.nii.gz").write_bytes(b"")
    nan = np.asarray(nib.load(good).dataobj).astype(np.float32)
    nan[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), inputs / "nan.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((20, 20), np.float32), np.eye(4)), inputs / "flat2d.nii.gz")
    out = tmp_path / "out"
    rc = main(["infer", "--model", str(model_dir), "--input", str(inputs), "--output", str(out), "--no-tta"])
    assert rc == 1
    err = capsys.readouterr().err
    failed_lines = [line for line in err.splitlines() if line.startswith("failed:")]
    for name in ("truncated", "empty", "nan", "flat2d"):
        assert sum(f"{name}.nii.gz" in line for line in failed_lines) == 1, (name, err)  # once each, not twice
    assert "litlogger" not in err and "LeafSpec" not in err
    assert (out / "good.nii.gz").is_file()
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["good.nii.gz"]  # nothing half-written
    assert not list(out.rglob(".tmp-*"))
    pred = json.loads((out / "predictions.json").read_text())
    assert pred["summary"] == {**pred["summary"], "ok": 1, "failed": 4} and len(pred["failures"]) == 4


def test_an_all_zero_scan_gets_an_all_background_label_map_and_a_warning(model_dir, tmp_path, capsys):
    """A batch of clinical scans gets an output per input: a blank scan is not a failure (training skips it)."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    affine = np.diag([1.5, 1.0, 2.0, 1.0])
    affine[:3, 3] = (-10.0, 4.0, 7.0)
    nib.save(nib.Nifti1Image(np.zeros((13, 11, 9), np.float32), affine), inputs / "blank.nii.gz")
    args = ["infer", "--model", str(model_dir), "--input", str(inputs), "--output", str(out), "--no-tta"]
    assert main([*args, "--probabilities", "--gates"]) == 0
    err = capsys.readouterr().err
    assert (
        sum("blank.nii.gz: image is all zero" in line and line.startswith("warning:") for line in err.splitlines()) == 1
    )
    label = nib.load(out / "blank.nii.gz")
    assert label.shape == (13, 11, 9) and np.allclose(label.affine, affine) and not np.asarray(label.dataobj).any()
    probs = np.asarray(nib.load(out / "probabilities" / "blank.nii.gz").dataobj)
    assert not np.asarray(nib.load(out / "gates" / "blank_level0.nii.gz").dataobj).any()
    assert probs.shape == (13, 11, 9, 3) and (probs[..., 0] == 1).all() and (probs[..., 1:] == 0).all()
    pred = json.loads((out / "predictions.json").read_text())
    assert pred["summary"]["ok"] == 1 and pred["summary"]["failed"] == 0
    assert pred["cases"]["blank"]["warning"].endswith("Wrote an all-background label map; check the scan.")
    assert pred["warnings"] == [pred["cases"]["blank"]["warning"]]


def test_rerun_skips_finished_cases_unless_overwrite(model_dir, synthetic_3d, tmp_path):
    src = sorted((synthetic_3d / "imagesTr").iterdir())[2]
    out = tmp_path / "out"
    args = ["infer", "--model", str(model_dir), "--input", str(src), "--output", str(out), "--no-tta"]
    assert main(args) == 0
    first = (out / src.name).stat().st_mtime_ns
    assert main(args) == 0
    assert json.loads((out / "predictions.json").read_text())["summary"]["exists"] == 1
    assert (out / src.name).stat().st_mtime_ns == first
    assert main([*args, "--overwrite"]) == 0
    assert json.loads((out / "predictions.json").read_text())["summary"]["ok"] == 1
    assert src.read_bytes() == (synthetic_3d / "imagesTr" / src.name).read_bytes()  # inputs never written


def test_labels_give_dice_hd95_and_volumes(model_dir, synthetic_3d, tmp_path):
    out = tmp_path / "out"
    pattern = str(synthetic_3d / "imagesTr" / "synth3d_00[01].nii.gz")
    rc = main(
        [
            "infer",
            "--model",
            str(model_dir),
            "--input",
            pattern,
            "--output",
            str(out),
            "--labels",
            str(synthetic_3d / "labelsTr"),
            "--no-tta",
        ]
    )
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["cases"]) == {"synth3d_000", "synth3d_001"}
    for case in ("synth3d_000", "synth3d_001"):  # the written label map against the reference file, in its grid
        pred = np.asarray(nib.load(out / f"{case}.nii.gz").dataobj)
        ref_file = nib.load(synthetic_3d / "labelsTr" / f"{case}.nii.gz")
        ref, voxel = np.rint(np.asarray(ref_file.dataobj)), float(np.prod(ref_file.header.get_zooms()[:3]))
        for k, name in ((1, "head"), (2, "body")):
            recorded = metrics["cases"][case][name]
            assert recorded["dice"] == pytest.approx(dice(pred == k, ref == k))
            assert recorded["volume_ref"] == pytest.approx((ref == k).sum() * voxel) and recorded["volume_ref"] > 0
            assert recorded["volume_pred"] == pytest.approx((pred == k).sum() * voxel)
    assert (out / "metrics.csv").read_text().startswith("case,class,dice,hd95,volume_pred,volume_ref")


def test_case_metrics_known_values():
    ref = np.zeros((10, 10, 10), np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    pred = np.zeros_like(ref)
    pred[3:7, 2:6, 2:6] = 1  # shifted by one voxel along x
    m = case_metrics(pred, ref, (2.0, 1.0, 1.0), ["bg", "a", "b"])
    assert m["a"]["dice"] == pytest.approx(2 * 48 / 128)
    assert m["a"]["hd95"] == pytest.approx(2.0)  # one voxel of 2 mm
    assert m["a"]["volume_ref"] == 64 * 2.0
    assert m["b"] == {"dice": None, "hd95": None, "volume_pred": 0.0, "volume_ref": 0.0}


def test_checkpoint_loads_and_matches_the_folder(model_dir, tmp_path):
    folder = load_model(model_dir)
    state = {f"net.{k}": v for k, v in folder.net.state_dict().items()}
    import yaml

    info = checkpoint_record(folder.config, folder.fingerprint, folder.meta)  # what the training module stores
    assert info["config"] == yaml.safe_load((model_dir / "config.yaml").read_text())
    torch.save({"state_dict": state, "seg": info, "epoch": 3}, tmp_path / "best.ckpt")
    ckpt = load_model(tmp_path / "best.ckpt")
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(folder.net(x), ckpt.net(x))


def test_model_saved_before_stem_stride_existed_loads_as_full_resolution(model_dir, tmp_path):
    """Model folders written before `model.stem_stride` (default now 2) ran level 0 at full resolution."""
    import yaml

    from seg.model_folder import save_bundle
    from seg.models import build_model

    folder = load_model(model_dir)
    old_cfg = dataclasses.replace(folder.config, model=dataclasses.replace(folder.config.model, stem_stride=1))
    torch.manual_seed(1)
    net = build_model(old_cfg.model)
    save_bundle(tmp_path / "old", net, old_cfg, folder.fingerprint, folder.meta)
    saved = yaml.safe_load((tmp_path / "old" / "config.yaml").read_text())
    del saved["model"]["stem_stride"]  # as written by the earlier version
    (tmp_path / "old" / "config.yaml").write_text(yaml.safe_dump(saved))
    old = load_model(tmp_path / "old")  # with the new default (2) its weights would not fit
    assert old.config.model.stem_stride == 1 and old.net.full_res is None
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(old.net(x), net.eval()(x))


def test_unsafe_or_foreign_models_are_refused(model_dir, tmp_path):
    import argparse

    torch.save({"state_dict": {}, "seg": argparse.Namespace(code="any pickled object")}, tmp_path / "evil.ckpt")
    with pytest.raises(ModelLoadError, match="weights_only=True"):
        load_model(tmp_path / "evil.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(ModelLoadError, match="no seg model description"):
        load_model(tmp_path / "plain.ckpt")
    with pytest.raises(ModelLoadError, match="missing weights.pt"):
        load_model(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    for name in ("weights.pt", "config.yaml", "fingerprint.json"):
        (other / name).write_bytes((model_dir / name).read_bytes())
    (other / "model.json").write_text(json.dumps({"seg_version": "9.0.0"}))
    with pytest.raises(ModelLoadError, match="trained with seg 9.0.0"):
        load_model(other)
    (other / "model.json").write_text("{}")
    (other / "config.yaml").write_text(
        (model_dir / "config.yaml").read_text().replace("in_channels: 1", "in_channels: 2")
    )
    with pytest.raises(ModelLoadError, match="do not fit the configured network"):
        load_model(other)


def test_tta_mirrors_every_axis_subset_and_probabilities_sum_to_one(model_dir):
    assert len(mirror_axes(3, True)) == 8 and len(mirror_axes(2, True)) == 4 and mirror_axes(3, False) == [()]
    model = load_model(model_dir)
    image = np.random.default_rng(0).normal(size=(1, 21, 18, 17)).astype(np.float32)
    pred = Predictor(model, overlap=0.25, tta=True, precision="32").predict(image, gates=True)
    assert pred.probabilities.shape == (3, 21, 18, 17)
    assert torch.allclose(pred.probabilities.sum(0), torch.ones(21, 18, 17), atol=1e-5)
    assert set(pred.gates) == {"level0", "level1"} and pred.gates["level1"].shape == (1, 21, 18, 17)


def test_tta_mirrors_only_the_axes_the_model_was_trained_mirrored_on(model_dir):
    """A model trained without mirroring along an axis has never seen its classes swapped along it (Hippocampus:
    anterior in front of posterior): mirroring it there at test time dropped held-out Dice from 0.890 to 0.390."""
    assert mirror_axes(3, True, (0,)) == [(), (2,)] and mirror_axes(3, True, ()) == [()]
    model = load_model(model_dir)
    for augment, flips in (({"flip_axes": (2,)}, [(), (4,)]), ({"flip_prob": 0.0}, [()]), ({}, mirror_axes(3, True))):
        train = dataclasses.replace(
            model.config.train, augment=dataclasses.replace(model.config.train.augment, **augment)
        )
        config = dataclasses.replace(model.config, train=train)
        meta = ModelMeta.for_training(config, model.class_names, model.patch_size, None)  # as `seg train` records it
        assert Predictor(dataclasses.replace(model, config=config, meta=meta), tta=True).flips == flips


def test_find_cases_groups_channels_and_reports_nothing_found(tmp_path):
    for name in ("a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz", "b_0001.nii.gz", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    cases = find_cases(str(tmp_path), in_channels=2)
    assert [(c.case_id, len(c.images)) for c in cases] == [("a", 2), ("b", 2)]
    assert [c.case_id for c in find_cases(str(tmp_path / "a_0000.nii.gz"))] == ["a"]
    with pytest.raises(Exception, match="no image file matches"):
        find_cases(str(tmp_path / "*.nrrd"))


def test_ensemble_probabilities_are_the_mean_of_the_members_after_their_own_tta(folds_dir, synthetic_3d):
    from seg.data.preprocess import preprocess_image

    a, b = load_models(str(folds_dir))  # a folder of model folders: all of them, in name order
    assert (a.source, b.source) == (str(folds_dir / "fold_0"), str(folds_dir / "fold_1"))
    image, _ = preprocess_image([min((synthetic_3d / "imagesTr").iterdir())], a.fingerprint)
    members = [Predictor(m, overlap=0.25, tta=True, precision="32", sw_batch_size=2) for m in (a, b)]
    assert [m.roi_size for m in members] == [(16,) * 3, (24,) * 3]  # each member slides its own window
    alone = [m.predict(image, gates=True) for m in members]
    assert not torch.allclose(alone[0].probabilities, alone[1].probabilities, atol=1e-3)
    ensemble = EnsemblePredictor(members)
    assert (
        ensemble.model is a and ensemble.settings is members[0].settings and ensemble.gate_names == ["level0", "level1"]
    )
    pred = ensemble.predict(image, gates=True)
    mean = (alone[0].probabilities + alone[1].probabilities) / 2
    assert pred.probabilities.shape == (3, *image.shape[1:])
    assert torch.allclose(pred.probabilities, mean, atol=1e-6, rtol=0)
    for level in ("level0", "level1"):
        assert torch.allclose(pred.gates[level], (alone[0].gates[level] + alone[1].gates[level]) / 2, atol=1e-6, rtol=0)
    assert type(make_predictor([a], tta=False, precision="32", sw_batch_size=2)) is Predictor  # one model: as before


def test_infer_with_two_models_or_their_folder_writes_the_input_geometry_and_lists_the_members(
    folds_dir, synthetic_3d, tmp_path
):
    inputs = tmp_path / "in"
    inputs.mkdir()
    src = min((synthetic_3d / "imagesTr").iterdir())
    _oblique_copy(src, inputs / "oblique_0000.nii.gz")
    members = [str(folds_dir / "fold_0"), str(folds_dir / "fold_1")]
    flags = ["--input", str(inputs), "--no-tta", "--probabilities", "--gates", "--precision", "32"]
    assert main(["infer", "--model", members[0], "--model", members[1], "--output", str(tmp_path / "two"), *flags]) == 0
    assert main(["infer", "--model", str(folds_dir), "--output", str(tmp_path / "folder"), *flags]) == 0
    ref = nib.load(inputs / "oblique_0000.nii.gz")
    for out in (tmp_path / "two", tmp_path / "folder"):
        seg_img = nib.load(out / "oblique.nii.gz")
        assert seg_img.shape == ref.shape and np.array_equal(seg_img.affine, ref.affine)
        probs = np.asarray(nib.load(out / "probabilities" / "oblique.nii.gz").dataobj)
        assert probs.shape == (*ref.shape, 3) and np.allclose(probs.sum(-1), 1, atol=1e-4)
        assert nib.load(out / "gates" / "oblique_level1.nii.gz").shape == ref.shape
        assert not list(out.rglob(".tmp-*"))
        pred = json.loads((out / "predictions.json").read_text())
        assert pred["summary"]["ok"] == 1 and pred["model"]["source"] == members[0]  # first member's keys kept
        listed = pred["model"]["members"]
        assert [m["source"] for m in listed] == members and all(m["config_hash"] for m in listed)
        assert [m["patch_size"] for m in listed] == [[16] * 3, [24] * 3] and "mlflow_run_id" in listed[1]
    for name in ("oblique.nii.gz", "probabilities/oblique.nii.gz"):
        two, folder = (np.asarray(nib.load(tmp_path / d / name).dataobj) for d in ("two", "folder"))
        assert np.array_equal(two, folder)


def test_a_member_that_cannot_be_averaged_fails_in_one_line_naming_it(folds_dir, tmp_path, capsys):
    from seg.model_folder import save_bundle
    from seg.models import build_model

    a = load_model(folds_dir / "fold_0")
    two = dataclasses.replace(a.config, model=dataclasses.replace(a.config.model, out_channels=2))
    meta2 = ModelMeta.for_training(two, ["background", "head"], a.patch_size, None)
    save_bundle(tmp_path / "two_classes", build_model(two.model), two, a.fingerprint, meta2)
    plan = dataclasses.replace(a.fingerprint.preprocessing, target_spacing=(2.0, 2.0, 2.0))
    save_bundle(tmp_path / "coarser", a.net, a.config, dataclasses.replace(a.fingerprint, preprocessing=plan), a.meta)
    first = str(folds_dir / "fold_0")
    with pytest.raises(
        ModelLoadError, match=r"two_classes: cannot join an ensemble with .*fold_0: out_channels 2, not 3"
    ):
        load_models([first, str(tmp_path / "two_classes")])
    with pytest.raises(
        ModelLoadError, match=r"coarser: cannot join .*: preprocessing.target_spacing \(2.0, 2.0, 2.0\), not"
    ):
        load_models([first, str(tmp_path / "coarser")])
    rc = main(
        [
            "infer",
            "--model",
            first,
            "--model",
            str(tmp_path / "coarser"),
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith(f"seg infer: error: {tmp_path / 'coarser'}: cannot join")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ModelLoadError, match=r"holds 2 model folders \(an ensemble.*fold_0"):
        load_model(folds_dir)  # one-model readers (seg analyze, seg layers) say how to pick one


def test_infer_model_takes_one_source_or_a_list(tmp_path):
    from seg.config import ConfigError, load_config

    path = tmp_path / "p.yaml"
    path.write_text("infer:\n  model: [models/fold_0, models/fold_1]\n")
    assert load_config(path).infer.model == ("models/fold_0", "models/fold_1")
    path.write_text("infer:\n  model: models/latest\n")
    assert load_config(path).infer.model == "models/latest"
    path.write_text("infer:\n  model: []\n")
    with pytest.raises(ConfigError, match=r"infer.model must be a model source or a non-empty list"):
        load_config(path)
