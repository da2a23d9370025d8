"""Find the cases of a dataset folder: the MSD layout and the 2D images/ + masks/ layout.

MSD: `dataset.json` (`training` list of {"image", "label"}, `labels`, `modality`, `tensorImageSize`) or, without
it, `imagesTr/` + `labelsTr/`. A multi-channel case is either one 4D file or nnU-Net style channel files
`<case>_0000.nii.gz`, `<case>_0001.nii.gz`, ... (the label is `<case>.nii.gz`).
2D: `images/<id>.<ext>` + `masks/<id>.<ext>` (matched by name without extension); masks are 0/255 or label-valued.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seg.data.errors import DataError
from seg.data.io import IMAGE_SUFFIXES, image_suffix, strip_suffix

CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class Case:
    """One training case: its channel files in channel order and its label file (None when not found)."""

    case_id: str
    images: tuple[Path, ...]
    label: Path | None


@dataclass(frozen=True)
class Dataset:
    """A dataset folder as found on disk; `labels` and `modality` come from dataset.json when it has them."""

    root: Path
    layout: str  # "msd" or "2d"
    name: str
    cases: tuple[Case, ...]
    labels: dict[str, str] | None  # {"0": "background", "1": ...}; None: not declared, taken from the data
    modality: dict[str, str]  # {"0": "MRI", ...}: one entry per channel
    tensor_image_size: str | None = None  # "2D", "3D" or "4D" as declared in dataset.json
    problems: dict[str, list[str]] = field(default_factory=dict)  # case_id -> problems found while listing
    raw_json: dict[str, Any] | None = None


def detect_layout(root: Path) -> str:
    if (root / "dataset.json").is_file() or (root / "imagesTr").is_dir():
        return "msd"
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "2d"
    raise DataError(
        f"{root}: not a dataset folder: expected dataset.json or imagesTr/ (MSD layout) or images/ + masks/ "
        f"(2D layout). Point data.root (or --root) at such a folder."
    )


def find_dataset(root: str | Path, layout: str = "auto") -> Dataset:
    """List the cases of `root` without reading any image."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found. Set data.root (or --root) to an existing folder.")
    layout = detect_layout(root) if layout == "auto" else layout
    if layout == "msd":
        return _find_msd(root)
    if layout == "2d":
        return _find_2d(root)
    raise DataError(f"{root}: unknown layout {layout!r}. Use auto, msd or 2d.")


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and image_suffix(p) in IMAGE_SUFFIXES
    )


def group_channels(files: list[Path]) -> dict[str, list[Path]]:
    """case id -> channel files; `x_0000`, `x_0001` group into case x, any other file is a case of its own."""
    groups: dict[str, dict[int, Path]] = {}
    for f in files:
        stem = strip_suffix(f)
        m = CHANNEL_FILE.match(stem)
        case, channel = (m["case"], int(m["channel"])) if m else (stem, 0)
        groups.setdefault(case, {})[channel] = f
    return {case: [chans[c] for c in sorted(chans)] for case, chans in groups.items()}


def _channel_problems(case_id: str, files: list[Path]) -> list[str]:
    stems = [strip_suffix(f) for f in files]
    if len(files) > 1 and [CHANNEL_FILE.match(s)["channel"] for s in stems] != [f"{i:04d}" for i in range(len(files))]:
        return [
            f"{files[0].parent}/{case_id}_*: channel files are not numbered 0000..{len(files) - 1:04d} without gaps. "
            f"Rename them or add the missing channel."
        ]
    return []


def _find_label(folder: Path, case_id: str) -> Path | None:
    if not folder.is_dir():
        return None
    for suffix in IMAGE_SUFFIXES:
        p = folder / f"{case_id}{suffix}"
        if p.is_file():
            return p
    return None


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e}). Fix the file or remove it to list imagesTr/ instead.") from None
    if not isinstance(data, dict):
        raise DataError(
            f"{path}: expected a JSON object with 'training', 'labels', 'modality', got {type(data).__name__}."
        )
    return data


def _labels_from(meta: dict[str, Any]) -> dict[str, str] | None:
    """dataset.json labels as {"value": "name"}; also accepts nnU-Net v2's {"name": value}."""
    if not meta.get("labels"):
        return None
    labels = {str(k): str(v) for k, v in meta["labels"].items()}
    if all(not k.lstrip("-").isdigit() for k in labels):
        labels = {str(v): str(k) for k, v in meta["labels"].items()}
    return labels


def _find_msd(root: Path) -> Dataset:
    meta = _load_json(root / "dataset.json") if (root / "dataset.json").is_file() else {}
    problems: dict[str, list[str]] = {}
    cases: list[Case] = []
    if meta.get("training"):
        for entry in meta["training"]:
            image = root / str(entry["image"])
            label = root / str(entry["label"]) if entry.get("label") else None
            case_id = strip_suffix(image)
            if image.is_file():
                files = [image]
            else:  # nnU-Net style: the entry names the case, the files carry _0000, _0001, ...
                files = group_channels(sorted(image.parent.glob(f"{case_id}_[0-9][0-9][0-9][0-9]*"))).get(case_id, [])
                if not files:
                    problems.setdefault(case_id, []).append(
                        f"{image}: image listed in dataset.json not found (nor {case_id}_0000...). "
                        f"Add the file or remove the entry from dataset.json."
                    )
                    files = [image]
            problems.setdefault(case_id, []).extend(_channel_problems(case_id, files))
            if label is not None and not label.is_file():
                problems.setdefault(case_id, []).append(
                    f"{label}: label listed in dataset.json not found. Add the file or remove the entry."
                )
            cases.append(Case(case_id, tuple(files), label))
    else:
        images_dir = root / "imagesTr"
        if not images_dir.is_dir():
            raise DataError(f"{root}: dataset.json has no 'training' list and imagesTr/ is missing. Add either.")
        for case_id, files in sorted(group_channels(_image_files(images_dir)).items()):
            label = _find_label(root / "labelsTr", case_id)
            problems.setdefault(case_id, []).extend(_channel_problems(case_id, files))
            if label is None:
                problems[case_id].append(
                    f"{root / 'labelsTr' / case_id}.*: no label file for image {files[0].name}. "
                    f"Add labelsTr/{case_id}{image_suffix(files[0])} or remove the image."
                )
            cases.append(Case(case_id, tuple(files), label))
    if not cases:
        raise DataError(
            f"{root}: no training cases found (dataset.json 'training' and imagesTr/ are empty). Add cases."
        )
    modality = {
        str(k): str(v) for k, v in (meta.get("modality") or meta.get("channel_names") or {"0": "unknown"}).items()
    }
    labels = _labels_from(meta)
    return Dataset(
        root=root,
        layout="msd",
        name=str(meta.get("name", root.name)),
        cases=tuple(cases),
        labels=labels,
        modality=modality,
        tensor_image_size=meta.get("tensorImageSize"),
        problems={k: v for k, v in problems.items() if v},
        raw_json=meta or None,
    )


def _find_2d(root: Path) -> Dataset:
    cases: list[Case] = []
    problems: dict[str, list[str]] = {}
    for image in _image_files(root / "images"):
        case_id = strip_suffix(image)
        label = _find_label(root / "masks", case_id)
        if label is None:
            problems[case_id] = [
                f"{root / 'masks' / case_id}.*: no mask for image {image.name}. Add the mask or remove the image."
            ]
        cases.append(Case(case_id, (image,), label))
    if not cases:
        raise DataError(f"{root / 'images'}: no images found (extensions {', '.join(IMAGE_SUFFIXES)}). Add images.")
    meta = _load_json(root / "dataset.json") if (root / "dataset.json").is_file() else {}
    labels = _labels_from(meta)
    return Dataset(
        root=root,
        layout="2d",
        name=str(meta.get("name", root.name)),
        cases=tuple(cases),
        labels=labels,
        modality={str(k): str(v) for k, v in (meta.get("modality") or {"0": "microscopy"}).items()},
        tensor_image_size="2D",
        problems=problems,
        raw_json=meta or None,
    )
