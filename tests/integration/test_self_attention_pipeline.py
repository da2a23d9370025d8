"""A self-attention network through every command, 2D and 3D: `seg model` lists its blocks, `seg train` trains and
saves it, `seg infer --maps` loads it and writes every map kind in the inputs' geometry, `seg analyze` measures
its heads' attention distance and query maps, `seg evaluate` scores its label maps, `seg layers` lists its
blocks as CAM targets."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from train_helpers import run_seg, synthetic_project

pytestmark = pytest.mark.slow

SELF_ATTENTION = {
    "self_attention": {2: "global", 1: "window"},
    "self_attention_heads": 2,
    "self_attention_window": 2,
    "self_attention_depth": 2,
    "decoder_attention": "cbam",
}


def _project(tmp_path: Path, dims: int) -> Path:
    path = synthetic_project(tmp_path, n_cases=4, spatial_dims=dims, max_epochs=2, gate_images=True)
    cfg = yaml.safe_load(path.read_text())
    cfg["model"].update(SELF_ATTENTION)
    cfg["analyze"] = {
        "model": str(tmp_path / "model"),
        "output": str(tmp_path / "analysis"),
        "max_cases": 1,
        "threshold_cases": 1,
        "metrics_file": str(tmp_path / "metrics" / "analysis.json"),
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def _ok(*args: str) -> str:
    res = run_seg(*args)
    assert res.returncode == 0, f"seg {' '.join(args)}: {res.stderr[-3000:]}"
    return res.stdout


@pytest.mark.parametrize("dims", [2, 3])
def test_a_self_attention_model_goes_through_every_command(tmp_path, dims):
    cfg = _project(tmp_path, dims)
    summary = _ok("model", "--config", str(cfg))
    assert "enc2b1" in summary and "window" in summary and "self_enc1b0_h1" in summary

    _ok("train", "--config", str(cfg))
    images, labels = tmp_path / "synthetic" / "imagesTr", tmp_path / "synthetic" / "labelsTr"
    out = tmp_path / "pred"
    _ok("infer", "--model", str(tmp_path / "model"), "--input", str(images), "--output", str(out), "--maps")
    written = {p.name for p in (out / "maps").iterdir()}
    cases = sorted(p.name.removesuffix(".nii.gz") for p in out.glob("*.nii.gz"))
    assert len(cases) == 4
    for case in cases:
        source = nib.load(str(next(images.glob(f"{case}*"))))
        for key in ("gate_level0", "spatial_dec0", "self_enc1b0_h0", "self_enc2b1_h1"):
            back = nib.load(str(out / "maps" / f"{case}_{key}.nii.gz"))
            assert back.shape == source.shape and np.allclose(back.affine, source.affine, atol=1e-5), key
        distance = np.asarray(nib.load(str(out / "maps" / f"{case}_self_enc2b0_h0.nii.gz")).dataobj)
        assert distance.max() > 1.0  # mm: a global head over a grid of several positions looks beyond its own
        channels = json.loads((out / "maps" / f"{case}_channel.json").read_text())
        assert len(channels["channel_dec0"]) == 8 and f"{case}_channel.json" in written

    _ok("analyze", "--config", str(cfg))
    metrics = json.loads((tmp_path / "metrics" / "analysis.json").read_text())
    distances = {k: v for k, v in _flat(metrics).items() if "attention_distance" in k}
    assert len(distances) == 2 * 2 * 2 and all(v > 0 for v in distances.values())  # blocks x stages x heads
    queries = {q.name for q in (tmp_path / "analysis" / "queries").glob("*.nii.gz")}
    rollouts = {q for q in queries if "_self_enc2_q" in q or "_self_enc1_q" in q}  # stacked blocks: rollout
    assert rollouts and any("_self_enc2b1_h1_q" in q for q in queries)

    scores = tmp_path / "scores"
    _ok("evaluate", str(out), str(labels), "--output", str(scores))
    assert json.loads((scores / "evaluation.json").read_text())["scored"] == 4

    assert "self_attention.2.blocks.0" in _ok("layers", str(tmp_path / "model"))


def _flat(d: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, int | float):
            out[f"{prefix}{k}"] = float(v)
    return out
