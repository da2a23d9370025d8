"""Inputs and outputs of batch inference: which files make a case, where its outputs go, which label file
scores it. Cases are plain data, so they shard over processes."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seg.data.errors import DataError
from seg.data.io import IMAGE_SUFFIXES, NIFTI_SUFFIXES, image_suffix, strip_suffix
from seg.data.layout import group_channels
from seg.models.maps import CHANNEL, MapId

FLOAT_FORMATS = (*NIFTI_SUFFIXES, ".nrrd", ".mha")
FLOAT_SUFFIX_FOR_2D_FORMATS = ".nrrd"  # PNG/JPEG/TIFF cannot hold float maps: those go to NRRD, same geometry
SELF_CONTAINED = {".mhd": ".mha", ".nhdr": ".nrrd"}  # header + raw pairs are written as one file instead


@dataclass(frozen=True)
class InferCase:
    case_id: str
    images: tuple[str, ...]  # channel files in order
    label: str | None = None  # reference label map, for metrics

    @property
    def suffix(self) -> str:
        return image_suffix(self.images[0])


@dataclass(frozen=True)
class CaseOutputs:
    labels: Path
    probabilities: Path | None
    gates: dict[str, Path]  # level name -> gates/<case>_<level>
    maps: dict[MapId, Path] = field(default_factory=dict)  # spatial maps -> maps/<case>_<map key>
    channels: tuple[MapId, ...] = ()  # channel weights, all in `channel_file`
    channel_file: Path | None = None  # maps/<case>_channel.json

    def all(self) -> list[Path]:
        """Every file the case writes; a rerun skips the case when all exist."""
        optional = [self.probabilities, *self.gates.values(), *self.maps.values(), self.channel_file]
        return [self.labels, *(p for p in optional if p is not None)]

    @property
    def map_kinds(self) -> tuple[str, ...]:
        """The map kinds these outputs need from a prediction (gates/ aside)."""
        return tuple(dict.fromkeys(m.kind for m in (*self.maps, *self.channels)))


def find_cases(spec: str, in_channels: int = 1) -> list[InferCase]:
    """A folder, one file or a glob -> cases sorted by id. `x_0000`, `x_0001`, ... group into case `x` (MSD and
    nnU-Net naming) for multi-channel models; for one channel every file is a case, `x_0000` named `x`."""
    path = Path(spec)
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if _is_image(p)]
        where = f"{path}: no image files (extensions {', '.join(IMAGE_SUFFIXES)})"
    elif path.is_file():
        files = [path]
        where = ""
    else:
        files = [Path(p) for p in sorted(glob.glob(spec, recursive=True)) if _is_image(Path(p))]
        where = f"{spec}: no such file or folder, and no image file matches it as a glob"
    if not files:
        raise DataError(f"{where}. Pass a folder of images, an image file or a glob such as 'scans/*.nii.gz'.")
    if in_channels == 1:
        groups = {strip_suffix(f).removesuffix("_0000"): [f] for f in files}
    else:  # a multi-channel file (4D NIfTI) is one case too: preprocessing checks its channel count
        groups = group_channels(files)
    return [InferCase(case_id, tuple(map(str, chans))) for case_id, chans in sorted(groups.items())]


def attach_labels(cases: list[InferCase], labels: str | None) -> list[InferCase]:
    """Give each case its label file `<labels>/<case_id>.<ext>` when there is one."""
    if not labels:
        return cases
    folder = Path(labels)
    if not folder.is_dir():
        raise DataError(f"{folder}: labels folder not found. Pass the folder holding <case>.nii.gz label maps.")
    found = {strip_suffix(p): p for p in folder.iterdir() if _is_image(p)}
    return [InferCase(c.case_id, c.images, str(found[c.case_id]) if c.case_id in found else None) for c in cases]


def outputs_for(
    case: InferCase, out_dir: Path, probabilities: bool, gate_names: list[str], map_ids: Sequence[MapId] = ()
) -> CaseOutputs:
    """`<out>/<case><input ext>`; float maps in `probabilities/`, `gates/` and `maps/` (NIfTI for NIfTI inputs),
    and the channel weights of `map_ids` in `maps/<case>_channel.json`."""
    suffix = SELF_CONTAINED.get(case.suffix, case.suffix)
    float_suffix = suffix if suffix in FLOAT_FORMATS else FLOAT_SUFFIX_FOR_2D_FORMATS
    channels = tuple(m for m in map_ids if m.kind == CHANNEL)
    return CaseOutputs(
        labels=out_dir / f"{case.case_id}{suffix}",
        probabilities=out_dir / "probabilities" / f"{case.case_id}{float_suffix}" if probabilities else None,
        gates={g: out_dir / "gates" / f"{case.case_id}_{g}{float_suffix}" for g in gate_names},
        maps={m: out_dir / "maps" / f"{case.case_id}_{m.key}{float_suffix}" for m in map_ids if m.kind != CHANNEL},
        channels=channels,
        channel_file=out_dir / "maps" / f"{case.case_id}_channel.json" if channels else None,
    )


def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and image_suffix(p) in IMAGE_SUFFIXES
