"""Maps keep the input's geometry: an image with a non-identity, anisotropic, axis-permuted affine goes through
preprocessing, the analysis writes its maps, and they read back with the image's shape and affine, in place."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from cache_fixture import tiny_fingerprint

from seg.config import AnalyzeConfig, Config, ModelConfig
from seg.data.geometry import canonical_affine, canonical_reorientation, spacing_from_affine
from seg.explain.cases import file_cases
from seg.explain.engine import CaseMaps
from seg.explain.measure import CaseResult
from seg.explain.outputs import write_maps
from seg.explain.queries import QueryPointError, point_on_grid
from seg.explain.run import analyze
from seg.model_folder import ModelBundle, ModelMeta
from seg.models import build_model

SHAPE = (14, 9, 12)


def _affine() -> np.ndarray:
    """Voxel axis 0 -> -y (0.8 mm), axis 1 -> z (2.0 mm), axis 2 -> x (1.1 mm), plus a small oblique tilt."""
    a = np.zeros((4, 4))
    a[1, 0], a[2, 1], a[0, 2] = -0.8, 2.0, 1.1
    a[0, 1] = 0.05
    a[:3, 3] = (12.5, -30.0, 7.25)
    a[3, 3] = 1.0
    return a


@pytest.fixture
def project(tmp_path):
    rng = np.random.default_rng(0)
    image = np.zeros(SHAPE, np.float32)
    image[2:12, 1:8, 2:11] = rng.normal(1.0, 0.2, (10, 7, 9))  # zero outside: cropping has work to do
    label = np.zeros(SHAPE, np.uint8)
    label[4:9, 3:6, 4:8] = 1
    label[9:11, 3:6, 4:8] = 2
    image[label > 0] += 2.0
    affine = _affine()
    for folder, array in (("images", image), ("labels", label)):
        (tmp_path / folder).mkdir()
        img = nib.Nifti1Image(array, affine)
        img.header.set_qform(affine, code=1)
        img.header.set_sform(affine, code=1)
        nib.save(img, str(tmp_path / folder / "case_a.nii.gz"))
    r = canonical_reorientation(affine)
    spacing = spacing_from_affine(canonical_affine(affine, r, SHAPE))  # target = original: resampling is identity
    fingerprint = tiny_fingerprint(3, target_spacing=tuple(spacing), crop_nonzero=True)
    cfg = Config(model=ModelConfig(spatial_dims=3, channels=(4, 8), strides=(2,), deep_supervision=0))
    torch.manual_seed(0)
    meta = ModelMeta.for_training(cfg, ["background", "a", "b"], [8, 8, 8], None)
    model = ModelBundle(build_model(cfg.model).eval(), cfg, fingerprint, meta, "tiny")
    return tmp_path, model, image, label, affine


def test_analysis_maps_read_back_with_the_image_shape_and_affine(project):
    tmp, model, image, _, affine = project
    cases = file_cases(str(tmp / "images"), str(tmp / "labels"), model, 4)
    cfg = AnalyzeConfig(
        output=str(tmp / "out"),
        metrics_file=str(tmp / "m.json"),
        log_mlflow=False,
        transforms=("flip",),
        threshold_cases=0,
        pcm_window=3,
    )
    summary = analyze(model, cases, [], cfg, log=lambda line: None)
    maps = sorted((tmp / "out").glob("*/*.nii.gz"))
    names = {p.name for p in maps}
    expected = {
        "case_a_gate_level0.nii.gz",
        "case_a_a_gradcam.nii.gz",
        "case_a_b_gradcam_pcm.nii.gz",
        "case_a_a_cam.nii.gz",
    }
    assert expected <= names
    for path in maps:
        back = nib.load(str(path))
        assert back.shape == SHAPE and back.get_data_dtype() == np.float32, path.name
        assert np.allclose(back.affine, affine, atol=1e-5), path.name
    assert (tmp / "out" / "overlays" / "case_a_a.png").is_file() and summary.report.is_file()
    metrics = json.loads((tmp / "m.json").read_text())
    assert metrics["cases"] == 1 and "cam.a.equivariance.flip" in metrics


def test_a_map_on_the_preprocessed_grid_lands_on_the_original_voxels(project):
    tmp, model, _, label, _ = project
    (case,) = file_cases(str(tmp / "images" / "case_a.nii.gz"), str(tmp / "labels"), model, 1)
    assert case.label is not None and set(np.unique(case.label)) == {0, 1, 2}
    onehot = torch.stack([torch.as_tensor(case.label == k).float() for k in (1, 2)])  # (2, *S_pre)
    maps = CaseMaps(torch.zeros(3, *case.label.shape), {"decoder.0": onehot}, None, None, [False, False])
    write_maps(case, CaseResult("case_a", maps, onehot, fallback=[False, False]), tmp / "placed", ["a", "b"], "gradcam")
    for k, name in ((1, "a"), (2, "b")):
        restored = np.asarray(nib.load(str(tmp / "placed" / "cams" / f"case_a_{name}_gradcam.nii.gz")).dataobj)
        assert np.array_equal(restored > 0.5, label == k), name


def test_a_query_point_of_the_input_image_names_the_same_voxel_on_the_preprocessed_grid(project):
    tmp, model, _, label, _ = project
    (case,) = file_cases(str(tmp / "images" / "case_a.nii.gz"), str(tmp / "labels"), model, 1)
    voxels = np.argwhere(label > 0)  # permuted, flipped, cropped axes: each structure voxel must land on its class
    for point in voxels[:: max(len(voxels) // 40, 1)]:
        on_grid = point_on_grid(tuple(int(p) for p in point), case.props)
        assert case.label[on_grid] == label[tuple(point)], (point, on_grid)
    with pytest.raises(QueryPointError, match=r"\[0, 0, 0\] .* outside the non-zero region"):
        point_on_grid((0, 0, 0), case.props)  # zero there: cropped away
