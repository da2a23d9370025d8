"""Resampling, normalisation, the synthetic dataset, DataConfig checks and the `seg preprocess` command."""

from __future__ import annotations

import json
import time

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from seg.cli import main
from seg.config import ConfigError, DataConfig, load_config
from seg.data.normalize import ct_parameters, normalize_channel, scheme_for_modality
from seg.data.resample import resample, resampled_affine, target_shape
from seg.data.synthetic import make_synthetic_dataset


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_resample_shapes_and_label_values(spatial_dims):
    shape = (10, 12, 8)[:spatial_dims]
    label = np.random.default_rng(0).integers(0, 3, (1, *shape)).astype(np.uint8)
    new = target_shape(shape, (1.0,) * spatial_dims, (0.5,) * spatial_dims)
    assert new == tuple(2 * n for n in shape)
    up = resample(label, new, order=0)
    assert up.shape == (1, *new) and up.dtype == np.uint8 and set(np.unique(up)) <= {0, 1, 2}
    np.testing.assert_array_equal(resample(up, shape, order=0), label)  # 2x up then down with nearest: identity
    assert resample(label, shape, 0) is label


def test_resampled_affine_keeps_the_field_of_view():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    out = resampled_affine(affine, (4, 4, 4), (8, 8, 8))
    assert np.allclose(np.diag(out)[:3], 1.0)
    # the outer cell edges coincide: input edge at -0.5 voxel * 2 mm = -1 mm, output edge at -0.5 * 1 mm + origin
    assert np.allclose(out[:3, 3] - 0.5 * np.diag(out)[:3], -1.0)


def test_normalisation_schemes():
    x = np.array([0.0, 10.0, 20.0, 1000.0], np.float32)
    z, used = normalize_channel(x, {"scheme": "zscore"})
    assert abs(z.mean()) < 1e-6 and used["mean"] == pytest.approx(257.5)
    ct = ct_parameters(np.linspace(-1000, 1000, 2001), (5.0, 95.0))
    assert ct["lower"] == pytest.approx(-900) and ct["upper"] == pytest.approx(900)
    y, _ = normalize_channel(np.array([-3000.0, 3000.0]), ct)
    assert y[0] == pytest.approx((-900 - ct["mean"]) / ct["std"])
    assert scheme_for_modality("ct", "auto") == "ct" and scheme_for_modality("MRI", "auto") == "zscore"
    assert scheme_for_modality("CT", "none") == "none"
    with pytest.raises(ValueError, match="unknown normalisation scheme 'x'"):
        normalize_channel(x, {"scheme": "x"})


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_synthetic_dataset_is_deterministic_learnable_and_varied(tmp_path, spatial_dims):
    start = time.perf_counter()
    a = make_synthetic_dataset(tmp_path / "a", spatial_dims, n_cases=4, seed=1)
    assert time.perf_counter() - start < 10
    b = make_synthetic_dataset(tmp_path / "b", spatial_dims, n_cases=4, seed=1)
    meta = json.loads((a / "dataset.json").read_text())
    assert meta["labels"] == {"0": "background", "1": "head", "2": "body"} and len(meta["training"]) == 4
    spacings = set()
    for entry in meta["training"]:
        img, lab = nib.load(str(a / entry["image"])), nib.load(str(a / entry["label"]))
        x, y = img.get_fdata(), np.asarray(lab.dataobj)
        assert x.ndim == spatial_dims and all(28 <= n <= 56 for n in x.shape)
        np.testing.assert_array_equal(x, nib.load(str(b / entry["image"])).get_fdata())
        assert set(np.unique(y)) == {0, 1, 2}
        touching = ndimage.binary_dilation(y == 1) & (y == 2)
        assert touching.any()  # adjacent structures
        tissue = x[(y == 0) & (x > 0)]
        assert x[y == 1].mean() > tissue.mean() + tissue.std() and x[y == 2].mean() > tissue.mean()  # visible
        spacings.add(tuple(np.round(img.header.get_zooms(), 3)))
    assert len(spacings) == 4
    stamp = (a / "dataset.json").stat().st_mtime_ns
    make_synthetic_dataset(tmp_path / "a", spatial_dims, n_cases=4, seed=1)
    assert (a / "dataset.json").stat().st_mtime_ns == stamp  # reused, not regenerated


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layout": "msdd"}, r"data.layout must be one of auto, msd, 2d, got 'msdd'\. Did you mean 'msd'\?"),
        ({"normalization": "zscor"}, r"Did you mean 'zscore'"),
        ({"spatial_dims": 4}, r"data.spatial_dims must be 2, 3 or null"),
        ({"target_spacing": (1.0, -1.0)}, r"data.target_spacing must be positive"),
        ({"spatial_dims": 3, "target_spacing": (1.0, 1.0)}, r"has 2 entries but data.spatial_dims is 3"),
        ({"folds": 1}, r"data.folds must be >= 2"),
        ({"fold": 5}, r"data.fold must be in \[0, 4\] for 5 folds, got 5"),
        ({"num_workers": -1}, r"data.num_workers must be >= 0"),
        ({"ct_percentiles": (99.0, 1.0)}, r"0 <= low < high <= 100"),
        ({"image_order": 7}, r"data.image_order must be a spline order in \[0, 5\]"),
        ({"synthetic_cases": 3}, r"data.synthetic_cases \(3\) must be >= data.folds \(5\)"),
    ],
)
def test_data_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DataConfig(**kwargs)


def test_data_section_loads_from_yaml(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("data:\n  root: /x\n  target_spacing: [1, 1, 2]\n  folds: 3\n")
    cfg = load_config(path).data
    assert cfg.root == "/x" and cfg.target_spacing == (1.0, 1.0, 2.0) and cfg.folds == 3
    path.write_text("data:\n  num_worker: 1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'data.num_worker'\. Did you mean 'data.num_workers'\?"):
        load_config(path)


def test_cli_preprocess_runs_and_reports_errors(tmp_path, synthetic_2d, capsys):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("data:\n  num_workers: 0\n  folds: 2\n")
    assert main(["preprocess", "--config", str(cfg), "--root", str(synthetic_2d), "--out", str(tmp_path / "c")]) == 0
    assert "6 of 6 cases preprocessed into" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "c" / "splits.json").read_text())) == 2
    assert main(["preprocess", "--config", str(cfg), "--root", str(tmp_path / "none"), "--out", str(tmp_path)]) == 1
    assert "seg preprocess: error: " in capsys.readouterr().err
