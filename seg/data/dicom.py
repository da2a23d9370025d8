"""DICOM series in: which files form a series (one Series Instance UID in one folder), the checks a series must pass
before its volume can be trusted, and the volume with its geometry taken from the headers.

SimpleITK's series reader does not refuse a bad series: with a missing slice it warns on stderr and returns one
averaged spacing, with slices of mixed orientation one direction. So the headers are checked first (pydicom), and
the geometry comes from them: origin = ImagePositionPatient of the first slice in stacking order, spacing =
(PixelSpacing column, PixelSpacing row, the slice step), direction = (row cosine, column cosine, their cross
product). Only the voxels come from SimpleITK (GDCM decodes every common transfer syntax and applies the rescale).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg.data.errors import ImageReadError

DICOM_SUFFIX = ".dcm"
POSITION_TOLERANCE_MM = 0.01  # slice positions may deviate this much from an even stack (decimal strings round)
ORIENTATION_TOLERANCE = 1e-4  # direction cosines that differ less than this are one orientation
NON_IMAGE_MODALITIES = frozenset({"SEG", "RTSTRUCT", "RTPLAN", "SR", "PR", "KO", "REG"})  # no voxels to segment
HEADER_TAGS = [
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "Modality",
    "Rows",
    "Columns",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SpacingBetweenSlices",
    "SliceThickness",
    "NumberOfFrames",
]


@dataclass(frozen=True)
class SliceHeader:
    """What the checks need from one file's header."""

    path: Path
    series_uid: str
    series_number: int | None
    description: str
    rows: int
    columns: int
    frames: int
    position: tuple[float, ...] | None  # ImagePositionPatient (LPS, mm)
    orientation: tuple[float, ...] | None  # ImageOrientationPatient: row cosine, column cosine
    pixel_spacing: tuple[float, ...] | None  # (between rows, between columns), mm
    thickness: float | None  # SpacingBetweenSlices, else SliceThickness: the step of a one-slice series


@dataclass(frozen=True)
class Series:
    """The files of one series in one folder, in file-name order."""

    folder: Path
    uid: str
    number: int | None
    description: str
    slices: tuple[SliceHeader, ...]

    def name(self) -> str:
        """'<folder>: DICOM series 5 "CHEST" (1.2.3...)', the start of every message about the series."""
        number = f" {self.number}" if self.number is not None else ""
        description = f' "{self.description}"' if self.description else ""
        return f"{self.folder}: DICOM series{number}{description} ({self.uid})"


@dataclass(frozen=True)
class SeriesGeometry:
    """A checked series: its files in stacking order and the volume's ITK geometry (LPS)."""

    files: tuple[Path, ...]
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]  # 3x3 row-major; columns: row cosine, column cosine, slice normal


def is_dicom(path: str | Path) -> bool:
    """A `.dcm` file, or any file with the DICOM preamble ('DICM' at byte 128)."""
    path = Path(path)
    if path.suffix.lower() == DICOM_SUFFIX:
        return True
    try:
        with path.open("rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def read_header(path: Path) -> SliceHeader | None:
    """The header of an image slice of a series; None for a file that is not one (DICOMDIR, SEG, SR, unreadable)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=HEADER_TAGS)
    except Exception:  # noqa: BLE001 -- pydicom raises many types for files that are not DICOM; they are not slices
        return None
    if "SeriesInstanceUID" not in ds or "Rows" not in ds or ds.get("Modality") in NON_IMAGE_MODALITIES:
        return None
    return SliceHeader(
        path=path,
        series_uid=str(ds.SeriesInstanceUID),
        series_number=int(ds.SeriesNumber) if ds.get("SeriesNumber") is not None else None,
        description=str(ds.get("SeriesDescription") or "").strip(),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        frames=int(ds.get("NumberOfFrames") or 1),
        position=_floats(ds.get("ImagePositionPatient")),
        orientation=_floats(ds.get("ImageOrientationPatient")),
        pixel_spacing=_floats(ds.get("PixelSpacing")),
        thickness=_first_float(ds.get("SpacingBetweenSlices"), ds.get("SliceThickness")),
    )


def _floats(value) -> tuple[float, ...] | None:
    return tuple(float(v) for v in value) if value else None


def _first_float(*values) -> float | None:
    return next((float(v) for v in values if v not in (None, "") and float(v) > 0), None)


def group_series(files: Iterable[Path]) -> list[Series]:
    """Image slices grouped into series by (folder, Series Instance UID); files that are not slices are left out."""
    groups: dict[tuple[Path, str], list[SliceHeader]] = {}
    for path in sorted(files):
        header = read_header(path)
        if header is not None:
            groups.setdefault((path.parent, header.series_uid), []).append(header)
    return [
        Series(folder, uid, slices[0].series_number, slices[0].description, tuple(slices))
        for (folder, uid), slices in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
    ]


def series_of(path: str | Path) -> Series:
    """The series that `path` (one of its files) belongs to, with every file of it in the same folder."""
    path = Path(path)
    header = read_header(path)
    if header is None:
        raise ImageReadError(
            f"{path}: is not a DICOM image slice (no Series Instance UID or rows, or a SEG/SR/DICOMDIR object). "
            f"Pass the folder of a CT, MR or PET series."
        )
    candidates = [p for p in path.parent.iterdir() if p.is_file() and not p.name.startswith(".") and is_dicom(p)]
    return next(s for s in group_series(candidates) if s.uid == header.series_uid)


def check_series(series: Series) -> SeriesGeometry:
    """The series' stacking order and geometry, or an ImageReadError (one line: the series, what is wrong, the fix)
    when it is not one evenly spaced stack of same-sized slices of one orientation."""
    slices = series.slices

    def fail(problem: str, fix: str) -> ImageReadError:
        return ImageReadError(f"{series.name()}: {problem}. {fix}.")

    multi = next((s for s in slices if s.frames > 1), None)
    if multi is not None:
        raise fail(
            f"{multi.path.name} is a multi-frame (enhanced) object of {multi.frames} frames",
            "Export the series as classic single-frame slices, or convert it to NIfTI",
        )
    flat = next((s for s in slices if not (s.position and s.orientation and s.pixel_spacing)), None)
    if flat is not None:
        raise fail(
            f"{flat.path.name} has no ImagePositionPatient, ImageOrientationPatient or PixelSpacing, so it is no "
            f"slice of a volume (a radiograph or a secondary capture?)",
            "Pass cross-sectional series only (CT, MR, PET)",
        )
    sizes = sorted({(s.columns, s.rows) for s in slices})
    if len(sizes) > 1:
        shown = ", ".join(f"{c}x{r}" for c, r in sizes)
        raise fail(f"slices of {len(sizes)} sizes ({shown} columns x rows)", "Export one size per series")
    orientations = _distinct([s.orientation for s in slices], ORIENTATION_TOLERANCE)
    if len(orientations) > 1:
        raise fail(
            f"slices of {len(orientations)} orientations (a localizer, or several stacks in one series)",
            "Export each orientation as its own series, or pass the folder of one stack",
        )
    spacings = _distinct([s.pixel_spacing for s in slices], 1e-6)
    if len(spacings) > 1:
        raise fail(f"slices with {len(spacings)} pixel spacings", "Export one pixel spacing per series")
    return _stack(series, fail)


def _distinct(vectors: list, tolerance: float) -> list[np.ndarray]:
    found: list[np.ndarray] = []
    for v in map(np.asarray, vectors):
        if not any(np.max(np.abs(v - f)) <= tolerance for f in found):
            found.append(v)
    return found


def _stack(series: Series, fail) -> SeriesGeometry:
    """Sort along the slice normal and check that the positions step evenly along it, with no gap or duplicate."""
    first = series.slices[0]
    row, column = np.asarray(first.orientation[:3]), np.asarray(first.orientation[3:])
    normal = np.cross(row, column)
    positions = np.asarray([s.position for s in series.slices])
    order = np.argsort(positions @ normal, kind="stable")
    positions = positions[order]
    files = tuple(series.slices[i].path for i in order)
    steps = np.diff(positions, axis=0)  # (n - 1, 3)
    along = steps @ normal
    if len(files) == 1:
        step = first.thickness or 1.0
    else:
        step = float((positions[-1] - positions[0]) @ normal / (len(files) - 1))
        _check_steps(files, steps, along, normal, fail)
    dy, dx = first.pixel_spacing  # PixelSpacing: between rows (along the column cosine), then between columns
    direction = np.stack([row, column, normal], axis=1)
    return SeriesGeometry(
        files=files,
        origin=tuple(float(v) for v in positions[0]),
        spacing=(float(dx), float(dy), float(step)),
        direction=tuple(float(v) for v in direction.ravel()),
    )


def _check_steps(files: tuple[Path, ...], steps: np.ndarray, along: np.ndarray, normal: np.ndarray, fail) -> None:
    duplicate = np.flatnonzero(along < POSITION_TOLERANCE_MM)
    if duplicate.size:
        i = int(duplicate[0])
        raise fail(
            f"{files[i].name} and {files[i + 1].name} lie at the same position",
            "Remove the duplicate slices (or the second acquisition) from the folder",
        )
    sideways = np.linalg.norm(steps - along[:, None] * normal[None, :], axis=1)
    if sideways.max() > POSITION_TOLERANCE_MM:
        raise fail(
            f"slices are not stacked along their normal (shifted by up to {sideways.max():.3g} mm: a tilted gantry?)",
            "Resample the series to an orthogonal grid (e.g. in 3D Slicer) and pass it as NIfTI",
        )
    typical = float(np.median(along))
    off = np.flatnonzero(np.abs(along - typical) > POSITION_TOLERANCE_MM)
    if off.size:
        i = int(off[0])
        missing = round(along[i] / typical) - 1
        what = f" ({missing} slice(s) missing?)" if missing >= 1 else ""
        raise fail(
            f"slices are not evenly spaced: {along[i]:.4g} mm between {files[i].name} and {files[i + 1].name}, "
            f"{typical:.4g} mm elsewhere{what}",
            "Export the complete series, or resample it to even spacing and pass it as NIfTI",
        )


def read_series(path: str | Path) -> tuple[np.ndarray, SeriesGeometry]:
    """The checked series that `path` belongs to: voxels (columns, rows, slices) in stacking order, and geometry."""
    import SimpleITK as sitk

    geometry = check_series(series_of(path))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in geometry.files])
    try:
        image = reader.Execute()
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise ImageReadError(
            f"{Path(path).parent}: the DICOM series' voxels cannot be decoded ({lines[-1] if lines else e}). "
            f"Re-export it uncompressed."
        ) from None
    array = np.ascontiguousarray(np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0)))  # (z, y, x) -> (x, y, z)
    return array, geometry
