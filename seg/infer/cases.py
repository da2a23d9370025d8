"""Inputs and outputs of batch inference: which files make a case, where its outputs go, which label file
scores it. Cases are plain data, so they shard over processes. A DICOM series is a case whose one image is the
series' first file: `read_image` of it reads (and checks) the whole series."""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seg.data.dicom import DICOM_SUFFIX, Series, group_series
from seg.data.errors import DataError
from seg.data.io import IMAGE_SUFFIXES, NIFTI_SUFFIXES, image_suffix, is_dicom_file, strip_suffix
from seg.data.layout import group_channels
from seg.models.maps import CHANNEL, MapId

FLOAT_FORMATS = (*NIFTI_SUFFIXES, ".nrrd", ".mha")
FLOAT_SUFFIX_FOR_2D_FORMATS = ".nrrd"  # PNG/JPEG/TIFF cannot hold float maps: those go to NRRD, same geometry
# header + raw pairs are written as one file instead; a DICOM series' label map as NIfTI
SELF_CONTAINED = {".mhd": ".mha", ".nhdr": ".nrrd", DICOM_SUFFIX: ".nii.gz"}
LABEL_SUFFIXES = {"dicom-seg": ".seg.dcm", "seg.nrrd": ".seg.nrrd"}  # infer.output_format -> label file suffix
ITKSNAP_LABELS = "itksnap_labels.txt"  # beside NIfTI label maps: ITK-SNAP's label descriptions, one per folder


@dataclass(frozen=True)
class InferCase:
    case_id: str
    images: tuple[str, ...]  # channel files in order
    label: str | None = None  # reference label map, for metrics

    @property
    def suffix(self) -> str:
        return DICOM_SUFFIX if is_dicom_file(self.images[0]) else image_suffix(self.images[0])


@dataclass(frozen=True)
class CaseOutputs:
    labels: Path
    probabilities: Path | None
    gates: dict[str, Path]  # level name -> gates/<case>_<level>
    maps: dict[MapId, Path] = field(default_factory=dict)  # spatial maps -> maps/<case>_<map key>
    channels: tuple[MapId, ...] = ()  # channel weights, all in `channel_file`
    channel_file: Path | None = None  # maps/<case>_channel.json
    label_descriptions: Path | None = None  # ITK-SNAP's label descriptions beside NIfTI label maps
    compression: int | None = None  # zlib level of compressed image files (`seg.data.io.write_image`)

    def all(self) -> list[Path]:
        """Every file the case writes; a rerun skips the case when all exist."""
        optional = [
            self.probabilities,
            *self.gates.values(),
            *self.maps.values(),
            self.channel_file,
            self.label_descriptions,
        ]
        return [self.labels, *(p for p in optional if p is not None)]

    @property
    def map_kinds(self) -> tuple[str, ...]:
        """The map kinds these outputs need from a prediction (gates/ aside)."""
        return tuple(dict.fromkeys(m.kind for m in (*self.maps, *self.channels)))


def find_cases(spec: str, in_channels: int = 1) -> list[InferCase]:
    """A folder, one file or a glob -> cases sorted by id. `x_0000`, `x_0001`, ... group into case `x` (MSD and
    nnU-Net naming) for multi-channel models; for one channel every file is a case, `x_0000` named `x`. DICOM
    files (in a folder and its subfolders) group into series: each series is a case, named by its folder."""
    path = Path(spec)
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if _is_image(p)]
        dicom = [p for p in sorted(path.rglob("*")) if _is_dicom(p)]
        root = path
        where = f"{path}: no image files (extensions {', '.join(IMAGE_SUFFIXES)}) and no DICOM series"
    elif path.is_file():
        files, dicom = ([], [path]) if is_dicom_file(path) else ([path], [])
        root = path.parent
        where = f"{path}: is a DICOM file but no image slice of a series"
    else:
        found = [Path(p) for p in sorted(glob.glob(spec, recursive=True))]
        files, dicom = [p for p in found if _is_image(p)], [p for p in found if _is_dicom(p)]
        root = _fixed_start(spec)  # series folders are named below it
        where = f"{spec}: no such file or folder, and no image file matches it as a glob"
    series = group_series(dicom)
    if not files and not series:
        raise DataError(
            f"{where}. Pass a folder of images or DICOM series, an image file or a glob such as 'scans/*.nii.gz'."
        )
    if in_channels == 1:
        groups = {strip_suffix(f).removesuffix("_0000"): [f] for f in files}
    else:  # a multi-channel file (4D NIfTI) is one case too: preprocessing checks its channel count
        groups = group_channels(files)
    groups.update({_series_id(s, series, root): [s.slices[0].path] for s in series})
    return [InferCase(case_id, tuple(map(str, chans))) for case_id, chans in sorted(groups.items())]


def _fixed_start(pattern: str) -> Path:
    """The folder a glob starts from: 'scans/*/CT*' -> 'scans'."""
    start = Path(re.split(r"[*?\[]", pattern)[0] or ".")
    return start if start.is_dir() else start.parent


def _series_id(series: Series, everything: list[Series], root: Path) -> str:
    """The series' folder below `root` ('patient_ct' for root/patient/ct; root's name for root itself), with the
    series number when its folder holds several series (the Series Instance UID when those numbers repeat)."""
    folder = series.folder.resolve()
    below = folder.relative_to(root.resolve()).parts if folder.is_relative_to(root.resolve()) else ()
    name = "_".join(below) or folder.name
    neighbours = [s for s in everything if s.folder == series.folder]
    if len(neighbours) == 1:
        return name
    numbers = [s.number for s in neighbours]
    unique = series.number is not None and numbers.count(series.number) == 1
    return f"{name}_{series.number}" if unique else f"{name}_{series.uid}"


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
    case: InferCase,
    out_dir: Path,
    probabilities: bool,
    gate_names: list[str],
    map_ids: Sequence[MapId] = (),
    output_format: str = "input",
    compression: int | None = None,
) -> CaseOutputs:
    """`<out>/<case><input ext>` (NIfTI for DICOM; `.seg.dcm` or `.seg.nrrd` as `output_format` asks); float maps
    in `probabilities/`, `gates/` and `maps/` (NIfTI for NIfTI and DICOM inputs), the channel weights of `map_ids`
    in `maps/<case>_channel.json`, and ITK-SNAP's label descriptions beside NIfTI label maps."""
    suffix = SELF_CONTAINED.get(case.suffix, case.suffix)
    float_suffix = suffix if suffix in FLOAT_FORMATS else FLOAT_SUFFIX_FOR_2D_FORMATS
    label_suffix = LABEL_SUFFIXES.get(output_format, suffix)
    channels = tuple(m for m in map_ids if m.kind == CHANNEL)
    return CaseOutputs(
        labels=out_dir / f"{case.case_id}{label_suffix}",
        probabilities=out_dir / "probabilities" / f"{case.case_id}{float_suffix}" if probabilities else None,
        gates={g: out_dir / "gates" / f"{case.case_id}_{g}{float_suffix}" for g in gate_names},
        maps={m: out_dir / "maps" / f"{case.case_id}_{m.key}{float_suffix}" for m in map_ids if m.kind != CHANNEL},
        channels=channels,
        channel_file=out_dir / "maps" / f"{case.case_id}_channel.json" if channels else None,
        label_descriptions=out_dir / ITKSNAP_LABELS if label_suffix in NIFTI_SUFFIXES else None,
        compression=compression,
    )


def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and image_suffix(p) in IMAGE_SUFFIXES


def _is_dicom(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and is_dicom_file(p)
