"""Gate maps as a person sees them in MLflow's real UI: `seg train` on a tiny cache with validation every epoch
and by wall clock, a real `mlflow server`, the run's Model metrics page in headless Chromium. MLflow 3.17 prints
every run param above the images of an image card and starts its step slider at 0: seg once logged ~120 params
and numbered images by epoch, and a person saw a list of params, or nothing."""

from __future__ import annotations

import json

import pytest
from mlflow_ui import CHROMIUM_ARGS, ModelMetricsPage, RunsChartView, assert_visible, chromium_or_skip
from train_helpers import MlflowServer, run_seg, tiny_project

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "schedule",
    [{"val_every": 1, "max_epochs": 3}, {"val_every_minutes": 0.004, "max_epochs": 40, "max_time_minutes": 0.15}],
    ids=["every-epoch", "by-minutes"],
)
def test_every_gate_level_is_visible_and_the_slider_steps_through_validations(tmp_path, schedule):
    chromium = chromium_or_skip()
    cfg = tiny_project(tmp_path, **schedule)
    res = run_seg("train", "--config", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    from playwright.sync_api import sync_playwright

    with MlflowServer(tmp_path / "mlflow.db") as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = ModelMetricsPage(browser, server, meta["mlflow_run_id"])
        page.screenshot(tmp_path / "model_metrics.png")
        images = page.images("gate_", expect={"gate_level0", "gate_level1"})
        assert set(images) == {"gate_level0", "gate_level1"}, images
        for key, image in images.items():
            assert image["step"] == 0, image  # the slider starts at 0, so the first image is numbered 0
            assert_visible(image)
            assert page.step_forward(key) != image["src"], f"{key}: moving the slider did not change the image"
        browser.close()


def test_two_runs_gate_maps_side_by_side_in_the_chart_view(tmp_path):
    """Two runs' gate maps compared as a person does: the experiment's Chart view has an image-grid card per gate
    level, each showing every visible run's image at one step; enlarged (the card's expand button), the runs' images
    stand side by side, and its slider moves them together."""
    chromium = chromium_or_skip()
    cfg = tiny_project(tmp_path)
    runs = []
    for name, lr in [("lr-0.003", "0.003"), ("lr-0.01", "0.01")]:
        res = run_seg("train", "--config", str(cfg), "--set", f"train.run_name={name}", "--set", f"train.lr={lr}")
        assert res.returncode == 0, res.stderr[-3000:]
        runs.append(json.loads((tmp_path / "model" / "model.json").read_text())["mlflow_run_id"])
    assert len(set(runs)) == 2, runs
    from playwright.sync_api import sync_playwright

    with MlflowServer(tmp_path / "mlflow.db") as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        view = RunsChartView(browser, server)
        for key in ("gate_level0", "gate_level1"):
            images = view.enlarge(key)
            view.screenshot(tmp_path / f"compare_{key}.png")
            assert sorted(i["run"] for i in images) == sorted(runs), images  # one image per run
            for image in images:
                assert image["step"] == 0, image  # both at the slider's first step
                assert_visible(image)
            a, b = sorted(images, key=lambda i: i["left"])
            assert a["src"] != b["src"], "both runs show the same picture"
            assert a["top"] < b["bottom"] and b["top"] < a["bottom"], f"not on one row: {a} {b}"
            assert a["right"] <= b["left"], f"overlapping, not side by side: {a} {b}"
            stepped = view.step_forward(key)
            assert sorted(i["run"] for i in stepped) == sorted(runs) and {i["step"] for i in stepped} == {1}, stepped
            view.close()
        browser.close()
