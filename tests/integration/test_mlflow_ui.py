"""Attention maps as a person sees them in MLflow's real UI: `seg train` on a tiny cache with validation every
epoch and by wall clock, a real `mlflow server`, the run's pages in headless Chromium. MLflow 3.17 prints every run
param above the images of an image card and starts its step slider at 0: seg once logged ~120 params and numbered
images by epoch, and a person saw a list of params, or nothing."""

from __future__ import annotations

import json

import pytest
import yaml
from mlflow_ui import CHROMIUM_ARGS, ModelMetricsPage, RunOverview, RunsChartView, assert_visible, chromium_or_skip
from train_helpers import MlflowServer, run_seg, tiny_project

pytestmark = pytest.mark.slow

GATES = {"gate_level0", "gate_level1"}


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
        images = page.images("gate_", expect=GATES)
        assert set(images) == GATES, images
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
        for key in sorted(GATES):
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


def test_a_card_of_every_map_kind_and_the_attention_distances_are_listed(tmp_path):
    """A network with every kind of map: gates, CBAM on the decoder (spatial map and channel weights), window
    self-attention at level 1 and global self-attention at the bottleneck, two heads each. Its run shows a card per
    map on the Model metrics page and lists each head's attention distance (mm) on its Overview page."""
    chromium = chromium_or_skip()
    cfg = tiny_project(tmp_path, max_epochs=2)
    params = yaml.safe_load(cfg.read_text())
    params["model"].update(
        self_attention={1: "window", 2: "global"},
        self_attention_heads=2,
        self_attention_window=2,
        decoder_attention="cbam",
    )
    cfg.write_text(yaml.safe_dump(params))
    res = run_seg("train", "--config", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    run_id = json.loads((tmp_path / "model" / "model.json").read_text())["mlflow_run_id"]
    cards = GATES | {f"{kind}_dec{i}" for kind in ("spatial", "channel") for i in (0, 1)}
    cards |= {f"self_enc{i}b0_h{h}" for i in (1, 2) for h in (0, 1)}
    distances = {f"attention_distance/enc{i}b0/h{h}" for i in (1, 2) for h in (0, 1)}
    from playwright.sync_api import sync_playwright

    with MlflowServer(tmp_path / "mlflow.db") as server, sync_playwright() as p:
        metrics = server.get("/api/2.0/mlflow/runs/get", run_id=run_id)["run"]["data"]["metrics"]
        logged = {m["key"]: m["value"] for m in metrics if m["key"].startswith("attention_distance/")}
        assert set(logged) == distances and all(v > 0 for v in logged.values()), logged
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = ModelMetricsPage(browser, server, run_id)
        images = {k: v for k, v in page.images("", expect=cards).items() if k in cards}
        page.screenshot(tmp_path / "model_metrics.png")
        assert set(images) == cards, sorted(cards ^ set(images))
        for image in images.values():
            assert image["step"] == 0, image
            assert_visible(image)
        overview = RunOverview(browser, server, run_id)
        listed = overview.metrics("attention_distance/")
        overview.screenshot(tmp_path / "overview.png")
        assert set(listed) == distances, listed
        assert {k: float(v) for k, v in listed.items()} == pytest.approx(logged), listed
        browser.close()
