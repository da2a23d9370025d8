"""Our sliding windows (`seg.models.stitch`): MONAI's result to the last bit, for 2D, 3D, slice-by-slice, images
smaller than the window and outputs on coarser grids; and rows handed on as they become final, each once, in order,
while the band of rows held stays the size of a window."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference

from seg.models.predict import sliding_window
from seg.models.stitch import gaussian_weight, stream_windows, window_starts


def _net(dims: int, seed: int = 0):
    torch.manual_seed(seed)
    conv = (torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d)(2, 3, 3, padding=1)
    pool = F.avg_pool2d if dims == 2 else F.avg_pool3d

    def fn(x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = conv(x)
        # MONAI stitches outputs in key order and needs the full-size one first (it resamples its weights in place)
        return {"probabilities": torch.softmax(y, 1), "s_map": pool(torch.sigmoid(y[:, :1]), 2)}

    return fn


@pytest.mark.parametrize(
    ("shape", "roi", "batch"),
    [
        ((40, 70, 33), (32, 48, 32), 2),
        ((20, 50, 64), (32, 48, 32), 3),  # smaller than the window on axis 0: padded, cropped back
        ((17, 9, 100), (16, 16, 32), 1),
        ((70, 45), (32, 32), 4),
    ],
)
@torch.no_grad()
def test_equals_monai_to_the_last_bit(shape, roi, batch):
    fn = _net(len(shape))
    image = torch.randn(1, 2, *shape)
    ours = sliding_window(fn, image, roi, len(shape), 0.5, batch)
    monai = sliding_window_inference(image, roi, batch, fn, overlap=0.5, mode="gaussian")
    assert ours.keys() == monai.keys()
    for key in ours:
        assert ours[key].shape == monai[key].shape
        assert torch.equal(ours[key], monai[key]), key


@torch.no_grad()
def test_slice_by_slice_equals_monai_per_slice():
    fn = _net(2)
    image = torch.randn(1, 2, 30, 40, 19)
    ours = sliding_window(fn, image, (16, 16), 2, 0.5, 2, slice_axis=1)  # slices along the second spatial axis
    assert ours["probabilities"].shape == (1, 3, 30, 40, 19) and ours["s_map"].shape == (1, 1, 15, 40, 9)
    for s in (0, 7, 39):
        plane = sliding_window_inference(image[:, :, :, s], (16, 16), 2, fn, overlap=0.5, mode="gaussian")
        assert torch.equal(ours["probabilities"][:, :, :, s], plane["probabilities"])
        assert torch.equal(ours["s_map"][:, :, :, s], plane["s_map"])


def test_window_starts_cover_the_image_and_end_at_its_edge():
    starts = window_starts((70, 40), (32, 40), 0.5)
    assert sorted({s[0] for s in starts}) == [0, 16, 32, 38] and {s[1] for s in starts} == {0}
    assert starts == sorted(starts)  # first axis outermost: the order rows become final in


@torch.no_grad()
def test_rows_come_once_in_order_while_the_band_stays_a_window_deep():
    fn = _net(3)
    calls, rows_seen, held = [0], [], []

    def counted(x):
        calls[0] += 1
        return fn(x)

    def emit(key, shape, start, rows):
        if key == "probabilities":
            rows_seen.append((start, rows.shape[2], calls[0]))

    image = torch.randn(1, 2, 96, 20, 20)
    stream_windows(counted, image, (16, 16, 16), 0.5, 2, emit)
    starts = [s for s, _, _ in rows_seen]
    assert starts == sorted(starts) and starts[0] == 0
    assert sum(n for _, n, _ in rows_seen) == 96  # every row exactly once
    assert all(a + n == b for (a, n, _), (b, _, _) in itertools.pairwise(rows_seen))
    assert rows_seen[0][2] < calls[0] / 2  # the first rows leave long before the last window
    held.extend(n for _, n, _ in rows_seen)
    assert max(held) <= 16  # a window's depth at most: the full output is never held


@torch.no_grad()
def test_a_sink_that_keeps_only_the_argmax_matches_the_full_output():
    fn = _net(3, seed=3)
    image = torch.randn(1, 2, 40, 24, 28)
    full = sliding_window(fn, image, (16, 16, 16), 3, 0.5, 2)
    labels = torch.empty(40, 24, 28, dtype=torch.uint8)

    def sink(key, shape, axis, start, rows):
        if key == "probabilities":
            assert shape == (40, 24, 28) and axis == 0
            labels[start : start + rows.shape[1]] = rows.argmax(0).to(torch.uint8)

    assert sliding_window(fn, image, (16, 16, 16), 3, 0.5, 2, sink=sink) is None
    assert torch.equal(labels, full["probabilities"][0].argmax(0).to(torch.uint8))


@pytest.mark.parametrize("roi", [(32, 48, 32), (17, 5), (1, 64, 9)])
def test_window_weights_are_monais_to_the_bit(roi):
    from monai.data.utils import compute_importance_map

    expected = compute_importance_map(roi, mode="gaussian", sigma_scale=0.125, device="cpu", dtype=torch.float32)
    assert torch.equal(gaussian_weight(roi, torch.device("cpu")), expected)
