"""Label maps as `seg evaluate` reads them: predictions paired with references by case id, the `--classes`
option, and one label map read as integer class ids (0/255 masks as 0/1), each problem a one-line DataError that
names the file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg.data.errors import DataError
from seg.data.io import IMAGE_SUFFIXES, image_suffix, read_image, strip_suffix


@dataclass(frozen=True)
class Pair:
    case_id: str
    prediction: str
    reference: str | None  # None: no reference label map with this case id


def find_pairs(predictions: str, labels: str) -> tuple[list[Pair], list[str]]:
    """(a pair per prediction file of a folder, file or glob, matched by case id to `<labels>/<case><ext>`;
    reference files no prediction matches). A prediction `x_0000` also matches a reference `x`."""
    from seg.infer.cases import find_cases

    folder = Path(labels)
    if not folder.is_dir():
        raise DataError(f"{folder}: labels folder not found. Pass the folder holding the reference label maps.")
    refs: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and image_suffix(p) in IMAGE_SUFFIXES:
            refs.setdefault(strip_suffix(p), p)
    pairs, used = [], set()
    for case in find_cases(predictions, 1):
        file = case.images[0]
        key = next((k for k in (strip_suffix(file), case.case_id) if k in refs), None)
        used.add(key)
        pairs.append(Pair(case.case_id, file, str(refs[key]) if key else None))
    return pairs, [str(p) for k, p in refs.items() if k not in used]


def parse_classes(items: Sequence[str] | None) -> dict[int, str] | None:
    """`--classes`: label values (`1 2`), `value=name` pairs (`1=liver 2=tumour`), or names given to the values
    1, 2, ... in order (`liver tumour`). None: every nonzero value found."""
    if not items:
        return None
    out: dict[int, str] = {}
    for i, item in enumerate(items, start=1):
        value, sep, name = item.partition("=")
        if sep or value.lstrip("-").isdigit():
            try:
                v = int(value)
            except ValueError:
                raise DataError(
                    f"--classes: {item!r} is not VALUE=NAME with an integer value. "
                    f"Give values (1 2), VALUE=NAME pairs (1=liver) or names (liver tumour)."
                ) from None
            out[v] = name or value
        else:
            out[i] = item
    if 0 in out or min(out) < 0:
        raise DataError(f"--classes: label values must be 1 or more (0 is background), got {sorted(out)}.")
    if len(set(out.values())) != len(out):
        raise DataError(f"--classes: names must differ, got {list(out.values())}.")
    return dict(sorted(out.items()))


def read_label_map(path: str | Path, binary_255: bool | None = None, keep: frozenset[int] = frozenset()) -> tuple:
    """(integer label map in file voxel order, Geometry). A channel axis (RGB masks) keeps channel 0.
    binary_255: None maps a map whose only values are 0 and 255 to 0/1 unless 255 is in `keep`; True maps 255
    to 1 in every map; False never."""
    array, geometry = read_image(path)
    array = np.asarray(array)
    if array.ndim == geometry.spatial_dims + 1:
        array = array[..., 0]
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise DataError(f"{path}: holds NaN/Inf values. A label map holds integer class ids.")
        if not np.array_equal(array, np.round(array)):
            raise DataError(
                f"{path}: holds non-integer values (e.g. {array[array != np.round(array)].flat[0]:.4g}); "
                f"is it a probability map? A label map holds integer class ids."
            )
    elif array.dtype.kind not in "iub":
        raise DataError(f"{path}: voxels of type {array.dtype} are not class ids. Pass integer label maps.")
    array = array.astype(np.int64)
    values = np.unique(array)
    if values[0] < 0:
        raise DataError(
            f"{path}: holds negative values (down to {values[0]}). Label values are 0 (background) "
            f"or class ids 1, 2, ..."
        )
    only_0_255 = set(values.tolist()) <= {0, 255}
    if binary_255 or (binary_255 is None and only_0_255 and 255 in values and 255 not in keep):
        array = np.where(array == 255, 1, array)
    return array, geometry
