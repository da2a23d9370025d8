"""Files of one analysed case: float maps in the original image's geometry (`restore_to_original` +
`write_image`, so shape, affine and header match the source image exactly) and PNG overlays on the
preprocessed grid.

    <out>/gates/<case>_gate_<level><ext>         gate coefficients in [0, 1] (a head's: gate_<level>_h<i>)
    <out>/spatial/<case>_spatial_<site><ext>     CBAM's or scSE's spatial maps in [0, 1]
    <out>/self/<case>_self_<site>_h<i><ext>      self-attention distance per query position, mm
    <out>/queries/<case>_self_<site>_h<i>_q<j><ext>  head i's attention from query point j (sum 1 over the grid
                                                 before restoring); <case>_self_enc<s>_q<j>: the stage's rollout
    <out>/channels/<case>.json                   channel weights per site ({map name: [weight per channel]})
    <out>/cams/<case>_<class>_<method><ext>      CAM of the primary layer (other layers: ..._<method>_<layer>)
    <out>/cams/<case>_<class>_<method>_pcm<ext>  its PCM refinement
    <out>/cams/<case>_<class>_cam<ext>           plain CAM of the 1x1 head
    <out>/overlays/<case>_gates.png, <case>_spatial.png, <case>_self.png, <case>_query<j>.png,
                   <case>_channels.png, <case>_<class>.png, dice_curves.png, attention_distance.png
    <out>/report.html, <out>/analysis.json      (seg.explain.run)
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from seg.data.io import write_image
from seg.data.restore import restore_to_original
from seg.explain.cases import AnalysisCase
from seg.explain.measure import CaseResult
from seg.explain.plots import render_channels
from seg.explain.scores import min_max
from seg.files import write_bytes, write_json
from seg.models.maps import GATE, SELF, SPATIAL, MapId
from seg.pictures import render_maps

FOLDERS = {GATE: "gates", SPATIAL: "spatial", SELF: "self"}  # the network's maps on the case grid, by kind
QUERIES, CHANNELS = "queries", "channels"
KINDS = (*FOLDERS.values(), QUERIES, CHANNELS, "cams", "overlays")


def write_maps(
    case: AnalysisCase, result: CaseResult, out_dir: Path, class_names: Sequence[str], method: str
) -> list[Path]:
    """NIfTI (or the input's float format) maps of `case` in its original geometry; none without properties."""
    if case.props is None:
        return []
    props, maps, pcm, ext, written = case.props, _maps(result), result.pcm, case.float_suffix, []

    def put(array: torch.Tensor, path: Path) -> None:
        restored = restore_to_original(array[None].float().numpy(), props, is_label=False)  # (*original spatial)
        written.append(write_image(restored.astype(np.float32), props.geometry, path))

    for map_id, value in maps.spatial.items():
        put(value, out_dir / FOLDERS[map_id.kind] / f"{case.case_id}_{map_id.key}{ext}")
    for map_id, value in maps.queries.items():
        put(value, out_dir / QUERIES / f"{case.case_id}_{map_id.key}{ext}")
    if maps.channels:
        weights = {m.key: [round(float(w), 6) for w in v] for m, v in maps.channels.items()}
        written.append(write_json(out_dir / CHANNELS / f"{case.case_id}.json", weights))
    layers = list(maps.cams)
    for i, name in enumerate(class_names):
        for j, layer in enumerate(layers):
            suffix = "" if j == 0 else f"_{layer}"
            put(maps.cams[layer][i], out_dir / "cams" / f"{case.case_id}_{name}_{method}{suffix}{ext}")
        put(pcm[i], out_dir / "cams" / f"{case.case_id}_{name}_{method}_pcm{ext}")
        if maps.plain is not None:
            put(maps.plain[i], out_dir / "cams" / f"{case.case_id}_{name}_cam{ext}")
    return written


def case_pictures(
    case: AnalysisCase, result: CaseResult, class_names: Sequence[str], method: str
) -> dict[str, np.ndarray]:
    """{"<case>_<kind folder>" | "<case>_query<j>" | "<case>_channels" | "<case>_<class>": RGB}, a card per map
    kind with its maps in rows: gate and spatial maps as they are, self-attention distances over their maximum,
    each query point's maps (per head, rollouts) over their own maximum, channel weights as bars; per class the
    CAM of each layer, its PCM refinement and plain CAM (each min-max normalised). Slices cut through the reference
    structure (the predicted one when there is no reference), or through the query point."""
    maps, pcm = _maps(result), result.pcm
    image = case.image[0]
    labels = case.label if case.label is not None else maps.probabilities.argmax(0).numpy()
    source = "reference" if case.label is not None else "predicted"
    pictures = {}
    for kind, folder in FOLDERS.items():
        of_kind = {m: v for m, v in maps.spatial.items() if m.kind == kind}
        if of_kind:
            rows, note = _rows(of_kind)
            title = f"{case.case_id}: {kind} maps{note} ({source} contour)"
            pictures[f"{case.case_id}_{folder}"] = render_maps(image, rows, labels > 0, title)
    for j, point in maps.query_points.items():
        of_point = {m: v for m, v in maps.queries.items() if m.query == j}
        marker = np.zeros(image.shape, dtype=bool)
        marker[point] = True
        rows = [(_label(m), (v / v.max().clamp_min(1e-12)).numpy()) for m, v in of_point.items()]
        title = f"{case.case_id}: attention from {query_name(j, class_names)} at {list(point)} (each over its max)"
        pictures[f"{case.case_id}_query{j}"] = render_maps(image, rows, marker, title)
    if maps.channels:
        rows = [(m.key, v.numpy()) for m, v in maps.channels.items()]
        pictures[f"{case.case_id}_channels"] = render_channels(rows, f"{case.case_id}: channel weights")
    for i, name in enumerate(class_names):
        rows = [(f"{method} {layer}", min_max(cams[i]).numpy()) for layer, cams in maps.cams.items()]
        rows.append((f"{method} + PCM", min_max(pcm[i]).numpy()))
        if maps.plain is not None:
            rows.append(("CAM (1x1 head)", min_max(maps.plain[i]).numpy()))
        note = " (nothing predicted: whole-volume score)" if result.fallback[i] else ""
        pictures[f"{case.case_id}_{name}"] = render_maps(
            image, rows, labels == i + 1, f"{case.case_id}: class {name}{note} ({source} contour)"
        )
    return pictures


def query_name(j: int, class_names: Sequence[str]) -> str:
    """Query j: the centroid of foreground class j (classes 1..K-1 in order), after them the user's points."""
    return f"centroid of {class_names[j]}" if j < len(class_names) else f"query point {j - len(class_names)}"


def _label(m: MapId) -> str:
    if m.head is not None:
        return f"{m.kind} {m.site} h{m.head}"
    return f"rollout {m.site}" if m.kind == SELF else f"{m.kind} {m.site}"


def _rows(of_kind: dict[MapId, torch.Tensor]) -> tuple[list[tuple[str, np.ndarray]], str]:
    """Rows of one kind's card: maps in [0, 1] as they are, distances (mm) over the kind's maximum."""
    if next(iter(of_kind)).kind != SELF:
        return [(_label(m), v.numpy()) for m, v in of_kind.items()], ""
    top = max(float(v.max()) for v in of_kind.values()) or 1.0
    rows = [(f"{_label(m)}: mean {float(v.mean()):.1f} mm", (v / top).numpy()) for m, v in of_kind.items()]
    return rows, f", distance / {top:.1f} mm"


def _maps(result: CaseResult):
    if result.maps is None or result.pcm is None:
        raise ValueError(f"case {result.case_id}: its maps were dropped before being written; write them first.")
    return result.maps


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def write_png(rgb: np.ndarray, path: Path) -> bytes:
    """Write atomically; returns the PNG bytes (for embedding in the report)."""
    data = png_bytes(rgb)
    write_bytes(path, data)
    return data
