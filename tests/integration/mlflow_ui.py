"""MLflow's own web UI in headless Chromium (Playwright for Python, Debian's chromium): what a person sees of a
run's images on its Model metrics page, its metrics on its Overview page, and runs side by side in the Chart
view."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Every image a run logged with log_image, as laid out: its key and step (from the artifact path) and run, whether
# it loaded, its size and place, whether it lies inside its chart card (or `box`, a selector: the enlarged card's
# dialog) and whether it is what the browser shows at its centre.
IMAGES_JS = """(box) => [...document.querySelectorAll('img')].filter(i => i.src.includes('get-artifact?path=images'))
  .map(i => {
    const path = decodeURIComponent(new URL(i.src).searchParams.get('path')).slice('images/'.length);
    const r = i.getBoundingClientRect();
    const fit = getComputedStyle(i).objectFit;
    const scale = (fit === 'contain' || fit === 'scale-down') && i.naturalWidth > 0
      ? Math.min(r.width / i.naturalWidth, r.height / i.naturalHeight) : null;
    const w = scale ? i.naturalWidth * scale : r.width, h = scale ? i.naturalHeight * scale : r.height;
    const x0 = r.left + (r.width - w) / 2, y0 = r.top + (r.height - h) / 2;
    const card = i.closest(box || '[data-testid="experiment-view-compare-runs-card"]');
    const c = card ? card.getBoundingClientRect() : null;
    const inside = c !== null && y0 >= c.top && y0 + h <= c.bottom && x0 >= c.left && x0 + w <= c.right;
    const at = (fx, fy) => document.elementFromPoint(x0 + fx * w, y0 + fy * h) === i;
    return {key: path.split('+step+')[0].replaceAll('~', '/'), step: parseInt(path.split('+step+')[1]), src: i.src,
            run: new URL(i.src).searchParams.get('run_uuid'), inBox: card !== null,
            left: x0, right: x0 + w, top: y0, bottom: y0 + h,
            naturalWidth: i.naturalWidth, height: h, inside: inside, onTop: at(0.5, 0.5),
            inViewport: y0 >= 250 && y0 + h <= window.innerHeight - 100,  // clear of the sticky bars
            edgesOnTop: at(0.5, 0.04) && at(0.5, 0.96) && at(0.04, 0.5) && at(0.96, 0.5)};
  })"""
# Marks the images of one key (`data-map-key`), so a locator can find the card that holds them.
MARK_KEY_JS = """(key) => { for (const i of document.querySelectorAll('img')) {
    if (!i.src.includes('get-artifact?path=images')) continue;
    const path = decodeURIComponent(new URL(i.src).searchParams.get('path')).slice('images/'.length);
    if (path.split('+step+')[0].replaceAll('~', '/') === key) i.setAttribute('data-map-key', key);
  } }"""

# Each image as drawn (object-fit: the picture inside the img box), so a picture clipped by the card or covered
# by its slider fails even where the img box itself is inside the card.


# One step down the page's scrolling container (MLflow scrolls an inner element, not the window), or back to the top;
# false when it could not move.
SCROLL_JS = """(top) => {
  const boxes = [...document.querySelectorAll('*')].filter(e => e.scrollHeight > e.clientHeight + 10
    && ['auto', 'scroll'].includes(getComputedStyle(e).overflowY));
  const box = boxes.sort((a, b) => b.scrollHeight - a.scrollHeight)[0] || document.scrollingElement;
  const before = box.scrollTop;
  box.scrollTop = top ? 0 : box.scrollTop + 600;
  return box.scrollTop !== before;
}"""


def chromium_or_skip() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium here: .ci/run installs Debian's chromium for the MLflow UI checks")
    pytest.importorskip("playwright", reason="playwright (the dev extra) drives Chromium for the MLflow UI checks")
    return path


class ModelMetricsPage:
    """The Model metrics tab of one run, in a browser tall enough for a row of chart cards."""

    def __init__(self, browser, server, run_id: str):
        run = server.get("/api/2.0/mlflow/runs/get", run_id=run_id)["run"]
        self.page = browser.new_page(viewport={"width": 1400, "height": 1400})
        url = f"{server.url}/#/experiments/{run['info']['experiment_id']}/runs/{run_id}/model-metrics"
        self.page.goto(url)
        self.page.wait_for_selector('[data-testid="experiment-view-compare-runs-card"]', timeout=60_000)
        self.page.wait_for_timeout(2000)  # let the first cards lay out and load

    def images(self, prefix: str = "", expect: set[str] = frozenset(), timeout_s: float = 90) -> dict[str, dict]:
        """Key -> its image as a person sees it when scrolled to, for keys starting with `prefix`: the page is
        scrolled a card's height at a time (cards load when they come into view), and each image is measured while
        it lies wholly in the viewport. Until every key of `expect` is found (or `timeout_s`), the page is scrolled
        again from the top: a loaded machine renders and loads cards slowly."""
        found: dict[str, dict] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            self.page.evaluate(SCROLL_JS, True)  # from the top
            self.page.wait_for_timeout(600)
            for _ in range(80):
                for image in self.page.evaluate(IMAGES_JS):
                    if image["key"].startswith(prefix) and image["inViewport"] and image["key"] not in found:
                        found[image["key"]] = image
                if not self.page.evaluate(SCROLL_JS, False):
                    break
                self.page.wait_for_timeout(600)
            if expect <= set(found) or time.monotonic() > deadline:
                return found
            self.page.wait_for_timeout(1000)

    def step_forward(self, key: str) -> str:
        """Move the slider of `key`'s card one step on (keyboard, as a person would); the image source it shows."""
        self.page.evaluate(MARK_KEY_JS, key)  # the key as IMAGES_JS reads it, whatever the URL's escaping
        card = self.page.locator('[data-testid="experiment-view-compare-runs-card"]').filter(
            has=self.page.locator(f'img[data-map-key="{key}"]')
        )
        card.scroll_into_view_if_needed()
        card.locator("[role=slider]").first.focus()
        self.page.keyboard.press("ArrowRight")
        self.page.wait_for_timeout(1500)
        return next(i["src"] for i in self.page.evaluate(IMAGES_JS) if i["key"] == key)

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path), full_page=True)


class RunOverview:
    """The Overview tab of one run: its Metrics table lists every metric's key and last value, one row each."""

    def __init__(self, browser, server, run_id: str):
        run = server.get("/api/2.0/mlflow/runs/get", run_id=run_id)["run"]
        self.page = browser.new_page(viewport={"width": 1400, "height": 1400})
        self.page.goto(f"{server.url}/#/experiments/{run['info']['experiment_id']}/runs/{run_id}")
        self.page.get_by_text("Metrics (", exact=False).first.wait_for(timeout=60_000)

    def metrics(self, prefix: str) -> dict[str, str]:
        """Key -> value as the table shows it, for the rows whose key starts with `prefix` and that a person sees
        when scrolled to (the page is long: the config tags come first)."""
        anchor = f'a:text-matches("^{prefix}")'
        self.page.locator(anchor).first.wait_for(timeout=60_000)  # the table fills in after the page
        shown = {}
        for row in self.page.locator('[role="row"]').filter(has=self.page.locator(anchor)).all():
            row.scroll_into_view_if_needed(timeout=10_000)
            cells = row.locator('[role="cell"]')
            if row.is_visible() and cells.count() >= 2:
                shown[cells.nth(0).inner_text().strip()] = cells.nth(1).inner_text().strip()
        return shown

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path))


class RunsChartView:
    """An experiment's runs in MLflow's Chart view, reached as a person does from MLflow's home page: the
    "Model training" switch, Experiments, the experiment, the Chart view button (above the runs list). Each image key
    has an image-grid card there showing every visible run's image at one step (MLflow shows at most 10 runs)."""

    CARD = '[data-testid="experiment-view-compare-runs-card"]'
    DIALOG = '[role="dialog"] [role="document"]'  # an enlarged card: MLflow's modal

    def __init__(self, browser, server, experiment: str = "seg"):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1400})
        self.page.goto(f"{server.url}/")
        self.page.get_by_role("button", name="Model training", exact=True).click(timeout=60_000)
        self.page.get_by_role("link", name="Experiments", exact=True).first.click()
        self.page.get_by_role("link", name=experiment, exact=True).first.click(timeout=60_000)
        chart_view = self.page.locator('label:has(input[name="runs-view-mode"][value="CHART"])')  # "Chart view"
        chart_view.click(timeout=60_000)
        self.page.wait_for_selector(self.CARD, timeout=60_000)
        self.page.wait_for_timeout(1500)  # let the first cards lay out

    def card(self, key: str, timeout_s: float = 90):
        """`key`'s card, scrolled into view (cards render only as they come into view): the page is scrolled a
        card's height at a time from the top until it is there, and again from the top (a loaded machine renders
        slowly) until `timeout_s`."""
        card = self.page.locator(self.CARD).filter(has=self.page.get_by_role("heading", name=key, exact=True))
        deadline = time.monotonic() + timeout_s
        self.page.evaluate(SCROLL_JS, True)
        while not card.count():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {key} card in the Chart view")
            if not self.page.evaluate(SCROLL_JS, False):  # at the bottom: let it render, then from the top again
                self.page.wait_for_timeout(1000)
                if card.count():
                    break
                self.page.evaluate(SCROLL_JS, True)
            self.page.wait_for_timeout(800)
        return card

    def enlarge(self, key: str, timeout_s: float = 90) -> list[dict]:
        """Open `key`'s card full-screen (its expand button, left of the card's menu); its images as a person sees
        them there, one per run, once every one has loaded. MLflow re-renders the cards while the page settles (a
        card found a moment ago can be detached): the card is looked up and clicked again until it holds."""
        from playwright.sync_api import Error

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                card = self.card(key, max(deadline - time.monotonic(), 1))
                card.scroll_into_view_if_needed(timeout=10_000)
                card.locator('button[data-component-id="fullscreen_button_chartcard"]').click(timeout=10_000)
                self.page.wait_for_selector(self.DIALOG, timeout=30_000)
                return self._dialog_images(key)
            except Error:
                if time.monotonic() > deadline:
                    raise
                self.page.wait_for_timeout(1000)

    def step_forward(self, key: str) -> list[dict]:
        """Move the enlarged card's slider one step on (keyboard, as a person would); its images then."""
        self.page.locator(self.DIALOG).locator("[role=slider]").first.focus()
        self.page.keyboard.press("ArrowRight")
        self.page.wait_for_timeout(1500)
        return self._dialog_images(key)

    def close(self) -> None:
        """Close the enlarged card (its dialog's Close button)."""
        self.page.locator(self.DIALOG).get_by_role("button", name="Close").first.click()
        self.page.wait_for_selector(self.DIALOG, state="detached", timeout=30_000)

    def _dialog_images(self, key: str) -> list[dict]:
        self.page.wait_for_function(
            """(dialog) => { const imgs = [...document.querySelectorAll(dialog + ' img')]
                 .filter(i => i.src.includes('get-artifact?path=images'));
               return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
            arg=self.DIALOG,
            timeout=30_000,
        )
        self.page.wait_for_timeout(800)  # the dialog's opening animation
        return [i for i in self.page.evaluate(IMAGES_JS, self.DIALOG) if i["key"] == key and i["inBox"]]

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path))


def assert_visible(image: dict) -> None:
    """What a person sees: loaded, drawn at least 64 px tall, inside its card, nothing over its centre or edges."""
    assert image["naturalWidth"] > 0, image
    assert image["height"] >= 64, image
    assert image["inside"], image
    assert image["onTop"] and image["edgesOnTop"], image
