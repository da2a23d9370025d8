"""SEAM as a training method, end to end with seg's commands on the embedded synthetic data (2D and 3D), as
seam/dvc.yaml runs them: a SEAM model trained on presence labels (the background score chosen on validation
cases), its CAM images in MLflow, pseudo masks of the training cases, a segmentation network trained on them,
and `seg analyze` on the SEAM model."""

from __future__ import annotations

import json

import pytest
import yaml
from train_helpers import run_seg, synthetic_project

from seg.infer.model_io import load_model

pytestmark = pytest.mark.slow


def _ok(*args: str) -> str:
    res = run_seg(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def _project(tmp_path, spatial_dims: int):
    cfg_path = synthetic_project(
        tmp_path,
        n_cases=12,
        spatial_dims=spatial_dims,
        max_epochs=60,
        steps_per_epoch=20,
        registered_model=None,
        val_every=60,
    )
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["seam"] = {
        "patch_size": [16] * spatial_dims,
        "model": str(tmp_path / "seam"),
        "pseudo_cache": str(tmp_path / "pseudo"),
        "segmenter": str(tmp_path / "segmenter"),
    }
    cfg_path.write_text(yaml.safe_dump(cfg))
    return cfg_path, cfg


def _localises(tmp_path, case_ids) -> None:
    """The SEAM model's CAMs (the case's presence labels given) are where the structures are: the mean score inside
    each class's mask is over twice the mean outside the foreground. CAMs that do not localise (an instance-normalised
    encoder, whose pooled class score stays at the prior) scored 1.3x inside against outside, or less."""
    import numpy as np
    import torch

    from seg.data.cache import Cache
    from seg.seam.presence import presence_of

    net, cache = load_model(tmp_path / "seam").net, Cache(tmp_path / "cache")
    ratios = []
    with torch.no_grad():
        for case_id in case_ids:
            case = cache.case(case_id)
            scores = net.scores(torch.from_numpy(case.image)[None], presence_of(case.label, 3)[None], refine=False)[0]
            label = torch.from_numpy(case.label[0].astype(np.int64))
            for k in (1, 2):
                if (label == k).any():
                    ratios.append(float(scores[k][label == k].mean() / scores[k][label == 0].mean().clamp_min(1e-6)))
    assert np.median(ratios) > 2.0, ratios


@pytest.mark.parametrize("spatial_dims", [3, 2])
def test_presence_labels_to_pseudo_masks_to_a_segmenter(tmp_path, spatial_dims):
    cfg_path, cfg = _project(tmp_path, spatial_dims)
    splits = json.loads((tmp_path / "cache" / "splits.json").read_text())
    out = _ok(
        "train",
        "--config",
        str(cfg_path),
        "--set",
        "train.supervision=seam",
        "--set",
        f"train.model_dir={tmp_path / 'seam'}",
    )
    assert "SEAM maps per class head: background score" in out
    meta = json.loads((tmp_path / "seam" / "model.json").read_text())
    assert meta["mirrored_axes"] == []  # trained without mirroring (seam.orientation_augment), so never mirrored by TTA
    summary = json.loads((tmp_path / "metrics" / "train.json").read_text())
    chosen = summary["seam"]
    assert set(chosen["background"]) == {"head", "body"} and set(chosen["curve"]) == {"head", "body"}
    assert chosen["cases"] == sorted(splits[0]["val"]) or sorted(chosen["cases"]) == sorted(splits[0]["val"])
    assert not set(chosen["cases"]) & set(splits[0]["train"])  # chosen on validation cases only
    assert all(len(v) == spatial_dims and all(abs(s) <= 6 for s in v) for v in chosen["shift"].values())  # max_shift
    assert all(v and set(v) <= {0.5, 1.0, 1.5, 2.0} for v in chosen["scales"].values())  # seam.infer_scales
    bundle = load_model(tmp_path / "seam")  # what seg pseudo / infer apply
    assert bundle.net.shift.tolist() == [chosen["shift"]["head"], chosen["shift"]["body"]]
    assert [
        [s for s, on in zip(bundle.net.seam.infer_scales, row, strict=True) if on]
        for row in bundle.net.scale_mask.tolist()
    ] == [chosen["scales"]["head"], chosen["scales"]["body"]]
    assert "PCM or not" in chosen["chosen_by"]  # seam.refine auto: per class, the refined maps or the classifier's
    assert bundle.net.refine_mask.tolist() == [float(chosen["refine"]["head"]), float(chosen["refine"]["body"])]
    history = (tmp_path / "metrics" / "train_history.csv").read_text()
    assert "val_dice_mean" in history

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs(client.get_experiment_by_name("seg").experiment_id)[0]
    assert {"train/cls", "train/er", "train/ecr", "train/min_pool"} <= set(run.data.metrics)
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any("cam_head" in p for p in images) and any("cam_body" in p for p in images), images

    out = _ok("pseudo", "--config", str(cfg_path), "--metrics-file", str(tmp_path / "pseudo.json"))
    pseudo = json.loads((tmp_path / "pseudo.json").read_text())
    record = json.loads((tmp_path / "pseudo" / "pseudo.json").read_text())
    assert sorted(record["cases"]) == sorted(splits[0]["train"]) and pseudo["background"] == chosen["background"]
    assert [record[k] for k in ("shift", "scales", "refine")] == [chosen[k] for k in ("shift", "scales", "refine")]
    assert 0 < pseudo["dice_mean"] == pytest.approx(sum(record["dice_mean"].values()) / 2, abs=1e-3), pseudo
    _localises(tmp_path, splits[0]["val"])
    import numpy as np

    val_case = splits[0]["val"][0]
    with (
        np.load(tmp_path / "pseudo" / "cases" / f"{val_case}.npz") as z,
        np.load(tmp_path / "cache" / "cases" / f"{val_case}.npz") as ref,
    ):
        assert (z["label"] == ref["label"]).all()  # validation cases keep their masks (scoring only)

    _ok(
        "train",
        "--config",
        str(cfg_path),
        "--set",
        f"data.cache_dir={tmp_path / 'pseudo'}",
        "--set",
        f"train.model_dir={tmp_path / 'segmenter'}",
        "--set",
        f"train.metrics_dir={tmp_path / 'm2'}",
        "--set",
        f"train.output_dir={tmp_path / 'out2'}",
    )
    _ok(
        "infer",
        "--config",
        str(cfg_path),
        "--model",
        str(tmp_path / "segmenter"),
        "--output",
        str(tmp_path / "pred"),
        "--metrics-file",
        str(tmp_path / "infer.json"),
    )
    predicted = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert sorted(predicted["cases"]) == sorted(splits[0]["val"])  # the segmenter, trained on pseudo masks only

    if spatial_dims == 3:  # the analysis of a SEAM model, like any other model
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["analyze"] = {"metrics_file": str(tmp_path / "analysis.json"), "max_cases": 2, "threshold_cases": 2}
        cfg_path.write_text(yaml.safe_dump(cfg))
        _ok("analyze", "--config", str(cfg_path), "--model", str(tmp_path / "seam"), "--output", str(tmp_path / "an"))
        metrics = json.loads((tmp_path / "analysis.json").read_text())
        assert {"cam.head.dice_raw", "cam.body.dice_raw", "cam.head.dice_pcm", "cam.body.energy_inside_plain"} <= set(
            metrics
        ), sorted(metrics)


def test_a_labels_file_gives_presence_per_whole_case(tmp_path):
    """Users with presence labels only: each sample is a whole case labelled by the file; a case missing from the
    file is a one-line error naming the file and the case."""
    cfg_path, cfg = _project(tmp_path, 3)
    splits = json.loads((tmp_path / "cache" / "splits.json").read_text())
    labels = tmp_path / "presence.json"
    entries = {case: ["head", "body"] for case in splits[0]["train"] + splits[0]["val"]}
    labels.write_text(json.dumps({k: v for k, v in entries.items() if k != splits[0]["train"][0]}))
    args = (
        "train",
        "--config",
        str(cfg_path),
        "--set",
        "train.supervision=seam",
        "--set",
        "train.max_epochs=2",
        "--set",
        f"seam.labels_file={labels}",
        "--set",
        f"train.model_dir={tmp_path / 'seam'}",
    )
    res = run_seg(*args)
    assert res.returncode == 2 and f"no entry for training case '{splits[0]['train'][0]}'" in res.stderr
    assert str(labels) in res.stderr and len(res.stderr.strip().splitlines()) == 1
    labels.write_text(json.dumps(entries))
    _ok(*args)
    cfg["seam"]["labels_file"] = str(labels)
    cfg_path.write_text(yaml.safe_dump(cfg))
    _ok("pseudo", "--config", str(cfg_path))
    record = json.loads((tmp_path / "pseudo" / "pseudo.json").read_text())
    assert record["presence_from"] == str(labels)
    assert all(c["presence"] == ["head", "body"] for c in record["cases"].values())
