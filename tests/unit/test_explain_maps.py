"""Every attention map of a network through the analysis: each kind reaches the map files, the pictures and the
report; query points' maps are distributions placed where the point is; attention distance is the self maps' mean
in mm of the model's spacing; a query point outside the image is a one-line error."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from cache_fixture import tiny_fingerprint

from seg.config import AnalyzeConfig, Config, ConfigError, ModelConfig
from seg.explain.aggregate import summarize_analysis
from seg.explain.cases import file_cases
from seg.explain.engine import MapEngine
from seg.explain.measure import CaseResult, attention_distances
from seg.explain.queries import QueryPointError, point_on_grid
from seg.explain.report_content import distance_table
from seg.explain.run import analyze
from seg.model_folder import ModelBundle, ModelMeta
from seg.models import build_model
from seg.models.maps import SELF, MapId

SHAPES = {2: (26, 21), 3: (18, 14, 13)}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model(dims: int, spacing: float = 1.0, patch: int = 16) -> ModelBundle:
    """Gates, CBAM (spatial and channel maps) and stacked self-attention (window then global), weights random."""
    cfg = ModelConfig(
        spatial_dims=dims,
        channels=(4, 8, 8),
        strides=(2, 2),
        deep_supervision=0,
        stem_stride=1,
        decoder_attention="cbam",
        self_attention={1: "window", 2: "global"},
        self_attention_heads=2,
        self_attention_window=3,
        self_attention_depth=2,
    )
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
    config = Config(model=cfg)
    names = ("background", "a", "b")
    meta = ModelMeta.for_training(config, list(names), [patch] * dims, None)
    fingerprint = tiny_fingerprint(dims, class_names=names, target_spacing=(spacing,) * dims)
    return ModelBundle(net, config, fingerprint, meta, "tiny")


def image_folder(tmp_path, dims: int):
    rng = np.random.default_rng(0)
    image = rng.normal(0.0, 1.0, SHAPES[dims]).astype(np.float32)
    image[(slice(3, 9),) * dims] += 3.0
    folder = tmp_path / "images"
    folder.mkdir()
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(folder / "case_a.nii.gz"))
    return folder


@pytest.mark.parametrize("dims", [2, 3])
def test_every_map_kind_reaches_the_files_the_pictures_and_the_report(tmp_path, dims):
    model = tiny_model(dims)
    cases = file_cases(str(image_folder(tmp_path, dims)), None, model, 1)
    point = (15, 12, 10)[:dims]
    cfg = AnalyzeConfig(
        output=str(tmp_path / "out"),
        metrics_file=str(tmp_path / "m.json"),
        log_mlflow=False,
        transforms=("flip",),
        threshold_cases=0,
        query_points=(point,),
    )
    summary = analyze(model, cases, [], cfg, log=lambda line: None)
    out = tmp_path / "out"
    files = {p.parent.name: set() for p in out.glob("*/*")}
    for p in out.glob("*/*"):
        files[p.parent.name].add(p.name)
    assert {"case_a_gate_level0.nii.gz", "case_a_gate_level1.nii.gz"} <= files["gates"]
    assert {"case_a_spatial_dec0.nii.gz", "case_a_spatial_dec1.nii.gz"} <= files["spatial"]
    assert {f"case_a_self_enc{s}b{b}_h{h}.nii.gz" for s in (1, 2) for b in (0, 1) for h in (0, 1)} == files["self"]
    user = 2  # after the centroids of classes a and b
    assert {"case_a_self_enc2b1_h1_q2.nii.gz", "case_a_self_enc1_q2.nii.gz"} <= files["queries"]
    channels = json.loads((out / "channels" / "case_a.json").read_text())
    assert sorted(channels) == ["channel_dec0", "channel_dec1"] and len(channels["channel_dec1"]) == 8
    for name in files["self"] | files["queries"]:
        back = nib.load(str(out / ("self" if name in files["self"] else "queries") / name))
        assert back.shape == SHAPES[dims] and np.isfinite(np.asarray(back.dataobj)).all()
    pictures = {"case_a_gates", "case_a_spatial", "case_a_self", f"case_a_query{user}", "case_a_channels"}
    assert {f"{p}.png" for p in pictures | {"attention_distance"}} <= files["overlays"]
    report = summary.report.read_text()
    for p in pictures:
        assert f'alt="{p}' in report, p
    assert "Attention distance (mm) per self-attention block and head" in report
    assert "spatial_dec1" in report and "equivariance" in report.lower()
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {"spatial.dec1.equivariance.flip", "attention_distance.enc2b1.h1", "attention_distance.enc1b0.h0"} <= set(
        metrics
    )


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("whole_case", [True, False])
def test_query_maps_are_distributions_on_the_case_grid_centred_on_their_point(dims, whole_case):
    model = tiny_model(dims)
    engine = MapEngine(model, ["decoder.0"], whole_case_voxels=10**6 if whole_case else 100)
    image = torch.randn(1, *SHAPES[dims])
    point = (15, 12, 11)[:dims]  # a patch-sized window around it does not start at the origin
    maps = engine.maps(image, queries=[point])
    assert maps.query_points[2] == point
    ours = {m: v for m, v in maps.queries.items() if m.query == 2}
    assert len(ours) == 2 * 2 * 2 + 2  # stages 1 and 2, two blocks of two heads, a rollout each
    for v in ours.values():
        assert v.shape == SHAPES[dims] and (v >= 0).all()
        torch.testing.assert_close(v.sum(), torch.tensor(1.0), atol=1e-5, rtol=0)
    starts = [0 if whole_case else min(max(p - 8, 0), max(n - 16, 0)) for p, n in zip(point, SHAPES[dims], strict=True)]
    for stage, factor in ((1, 2), (2, 4)):
        # (A + I) / 2 over two blocks keeps at least a quarter on the stage's cell that holds the point (cells
        # counted from the start of the window, the patch centred on the point)
        cell = tuple(
            slice(s + (p - s) // factor * factor, s + (p - s) // factor * factor + factor)
            for p, s in zip(point, starts, strict=True)
        )
        assert ours[MapId(SELF, f"enc{stage}", None, 2)][cell].sum() >= 0.25 - 1e-5
        window_keys = ours[MapId(SELF, f"enc{stage}b0", 0, 2)] > 0
        assert window_keys[cell].all()  # the point's own cell is among its keys


@pytest.mark.parametrize("dims", [2, 3])
def test_attention_distance_table_is_the_mean_of_the_self_maps_in_the_models_mm(dims):
    images = [torch.randn(1, *SHAPES[dims]) for _ in range(2)]
    per_spacing = {}
    for spacing in (1.0, 2.5):
        engine = MapEngine(tiny_model(dims, spacing), ["decoder.0"])
        per_spacing[spacing] = [engine.maps(x) for x in images]
    cases = per_spacing[1.0]
    results = [
        CaseResult(f"c{i}", m, None, scores=attention_distances(m), map_ids=list(m.spatial))
        for i, m in enumerate(cases)
    ]
    metrics = summarize_analysis(results, [], {"raw": {}, "pcm": {}}, [], [])
    sites, by_head = distance_table(metrics, results[0].map_ids)
    assert sites == ["enc1b0", "enc1b1", "enc2b0", "enc2b1"] and list(by_head) == ["h0", "h1"]
    for k, site in enumerate(sites):
        for h in (0, 1):
            expected = np.mean([float(m.spatial[MapId(SELF, site, h)].double().mean()) for m in cases])
            assert by_head[f"h{h}"][k] == pytest.approx(expected)
    for m, value in cases[0].spatial.items():
        if m.kind == SELF:  # the weights do not depend on the spacing: distances scale with it
            torch.testing.assert_close(per_spacing[2.5][0].spatial[m], 2.5 * value, rtol=1e-4, atol=1e-4)


def test_a_query_point_outside_the_image_is_a_one_line_error_naming_it(tmp_path):
    model = tiny_model(3)
    cases = file_cases(str(image_folder(tmp_path, 3)), None, model, 1)
    cfg = AnalyzeConfig(output=str(tmp_path / "out"), metrics_file=None, log_mlflow=False, query_points=((2, 40, 3),))
    with pytest.raises(QueryPointError, match=r"analyze.query_points: \[2, 40, 3\] for .*case_a.nii.gz lies outside"):
        analyze(model, cases, [], cfg, log=lambda line: None)
    with pytest.raises(ConfigError, match=r"analyze.query_points \[\[1, -2, 0\]\]"):
        AnalyzeConfig(query_points=((1, -2, 0),))
    with pytest.raises(QueryPointError, match=r"^analyze.query_points: \[0, 0\] for [^\n]*$"):
        point_on_grid((0, 0), cases[0].props)  # a 2D point for a volume
