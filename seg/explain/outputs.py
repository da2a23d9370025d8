"""Files of one analysed case: float maps in the original image's geometry (`restore_to_original` +
`write_image`, so shape, affine and header match the source image exactly) and PNG overlays on the
preprocessed grid.

    <out>/gates/<case>_<level><ext>              gate coefficients in [0, 1]
    <out>/cams/<case>_<class>_<method><ext>      CAM of the primary layer (other layers: ..._<method>_<layer>)
    <out>/cams/<case>_<class>_<method>_pcm<ext>  its PCM refinement
    <out>/cams/<case>_<class>_cam<ext>           plain CAM of the 1x1 head
    <out>/overlays/<case>_gates.png, <case>_<class>.png, dice_curves.png
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
from seg.explain.scores import min_max
from seg.files import write_bytes
from seg.pictures import render_maps

KINDS = ("gates", "cams", "overlays")


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

    for level, gate in maps.gates.items():
        put(gate, out_dir / "gates" / f"{case.case_id}_{level}{ext}")
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
    """{"<case>_gates" | "<case>_<class>": RGB}: gate levels in rows; per class the CAM of each layer, its PCM
    refinement and plain CAM in rows (each min-max normalised). Slices cut through the reference structure (the
    predicted one when there is no reference)."""
    maps, pcm = _maps(result), result.pcm
    image = case.image[0]
    labels = case.label if case.label is not None else maps.probabilities.argmax(0).numpy()
    source = "reference" if case.label is not None else "predicted"
    pictures = {}
    if maps.gates:
        rows = [(f"gate {level}", g.numpy()) for level, g in maps.gates.items()]
        title = f"{case.case_id}: gate maps ({source} contour)"
        pictures[f"{case.case_id}_gates"] = render_maps(image, rows, labels > 0, title)
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
