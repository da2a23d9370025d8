"""Image I/O that keeps geometry exact: NIfTI through nibabel (raw header kept), DICOM series through
`seg.data.dicom` (checked, geometry from the headers), everything else through SimpleITK.

Array convention: `read_image` returns the file's voxels indexed (i, j[, k]) like the affine, so a SimpleITK
array (z, y, x) is transposed to (x, y, z); channels (MSD 4D NIfTI, RGB(A) pixels) are on the last axis.
`write_image(read_image(p)...)` reproduces shape, affine, qform/sform codes and spacing. A DICOM file stands for
its whole series (the files of its folder with its Series Instance UID); its geometry has format "sitk" and suffix
".dcm", and it is written back as another format (NIfTI by default).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np

from seg.data.dicom import DICOM_SUFFIX, is_dicom, read_series
from seg.data.errors import DataError, ImageReadError
from seg.data.geometry import LPS_TO_RAS_MIN_DIMS, Geometry, spacing_from_affine
from seg.files import atomic_path

NIFTI_SUFFIXES = (".nii.gz", ".nii")
MULTI_SUFFIXES = (".nii.gz", ".nrrd.gz", ".mha.gz")  # extensions with two dots
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def image_suffix(path: str | Path) -> str:
    name = Path(path).name.lower()
    for s in MULTI_SUFFIXES:
        if name.endswith(s):
            return s
    return Path(name).suffix


def strip_suffix(path: str | Path) -> str:
    """File name without its image extension: 'case_0000.nii.gz' -> 'case_0000'."""
    name = Path(path).name
    return name[: len(name) - len(image_suffix(name))]


def is_nifti(path: str | Path) -> bool:
    return image_suffix(path) in NIFTI_SUFFIXES


def is_dicom_file(path: str | Path) -> bool:
    """A DICOM file: not named like another image format, and `.dcm` or with the DICOM preamble."""
    return image_suffix(path) not in IMAGE_SUFFIXES and is_dicom(path)


def read_image(path: str | Path, spatial_dims: int | None = None) -> tuple[np.ndarray, Geometry]:
    """Read an image as (array in file voxel order, Geometry); a DICOM file reads its whole series.

    spatial_dims: None reads NIfTI as min(ndim, 3) spatial axes (a 4th axis is channels, as in MSD) and
    SimpleITK images with their own dimension; 2 reads a 3D NIfTI (X, Y, C) as a 2D multi-channel image.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found. Check the path or the dataset's file list.")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty (0 bytes). Re-export or re-copy it, or remove the case.")
    if is_nifti(path):
        return _read_nifti(path, spatial_dims)
    if is_dicom_file(path):
        return _read_dicom_series(path, spatial_dims)
    return _read_sitk(path, spatial_dims)


def _read_nifti(path: Path, spatial_dims: int | None) -> tuple[np.ndarray, Geometry]:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        array = np.asanyarray(img.dataobj)  # loads every byte: a truncated file fails here, not later
    except Exception as e:  # noqa: BLE001 -- nibabel raises many types for corrupt files (EOFError, zlib.error, ImageFileError)
        msg = _nibabel_reason(e)
        raise ImageReadError(
            f"{path}: cannot be read as NIfTI ({msg}); it is truncated or corrupt. Re-export or re-copy it."
        ) from None
    d = spatial_dims or min(array.ndim, 3)
    if not 2 <= d <= 3 or array.ndim not in (d, d + 1):
        raise ImageReadError(
            f"{path}: shape {array.shape} cannot be read as {d}D with an optional channel axis "
            f"(expected {d} or {d + 1} axes). Convert it to one file per channel or check data.spatial_dims."
        )
    full = img.affine
    affine = np.eye(d + 1)
    affine[:d, :d] = full[:d, :d]
    affine[:d, d] = full[:d, 3]
    header = img.header
    geometry = Geometry(
        format="nifti",
        suffix=image_suffix(path),
        shape=tuple(int(s) for s in array.shape),
        spatial_dims=d,
        dtype=str(array.dtype),
        affine=_tuple2(affine),
        spacing=tuple(float(z) for z in header.get_zooms()[:d]),
        nifti_header=base64.b64encode(header.binaryblock).decode("ascii"),
        nifti_version=2 if isinstance(img, nib.Nifti2Image) else 1,
        qform_code=int(header["qform_code"]),
        sform_code=int(header["sform_code"]),
    )
    return array, geometry


def _nibabel_reason(e: BaseException) -> str:
    """nibabel's reason, in words that stand alone: its short-read message names the stream it read from, which
    for a gzipped file is empty ("Expected 940800 bytes, got 235552 bytes from ")."""
    text = str(e).strip()
    short = re.match(r"Expected (\d+) bytes, got (\d+) bytes", text)
    if short:
        return f"only {short[2]} of its {short[1]} bytes of voxel data are there"
    return text.splitlines()[0] if text else type(e).__name__


def _read_sitk(path: Path, spatial_dims: int | None) -> tuple[np.ndarray, Geometry]:
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(img)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        msg = lines[-1] if lines else "unknown error"
        raise ImageReadError(
            f"{path}: cannot be read by SimpleITK ({msg}); it is truncated, corrupt or of an unknown format. "
            f"Re-export it as NIfTI, NRRD, MHA or PNG."
        ) from None
    d = img.GetDimension()
    if spatial_dims is not None and spatial_dims != d:
        raise ImageReadError(f"{path}: is a {d}D image, expected {spatial_dims}D. Check data.spatial_dims.")
    vector = img.GetNumberOfComponentsPerPixel() > 1
    axes = list(range(d))[::-1] + ([d] if vector else [])
    array = np.ascontiguousarray(np.transpose(array, axes))  # (z, y, x[, C]) -> (x, y, z[, C])
    meta = {k: img.GetMetaData(k) for k in img.GetMetaDataKeys()}
    geometry = _itk_geometry(path, array, img.GetOrigin(), img.GetSpacing(), img.GetDirection(), meta)
    return array, geometry


def _read_dicom_series(path: Path, spatial_dims: int | None) -> tuple[np.ndarray, Geometry]:
    if spatial_dims is not None and spatial_dims != 3:
        raise ImageReadError(
            f"{path}: a DICOM series is a 3D image, expected {spatial_dims}D. Check data.spatial_dims."
        )
    array, series = read_series(path)
    return array, _itk_geometry(path, array, series.origin, series.spacing, series.direction, {}, DICOM_SUFFIX)


def _itk_geometry(path: Path, array: np.ndarray, origin, spacing, direction, meta: dict, suffix: str | None = None):
    """Geometry of an ITK image (origin, spacing, direction in LPS) whose voxels `array` holds as (x, y[, z][, C])."""
    d = len(origin)
    origin = np.asarray(origin, dtype=np.float64)
    spacing = np.asarray(spacing, dtype=np.float64)
    direction = np.asarray(direction, dtype=np.float64).reshape(d, d)
    return Geometry(
        format="sitk",
        suffix=suffix or image_suffix(path),
        shape=tuple(int(s) for s in array.shape),
        spatial_dims=d,
        dtype=str(array.dtype),
        affine=_tuple2(_itk_to_affine(origin, spacing, direction)),
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(v) for v in origin),
        direction=tuple(float(v) for v in direction.ravel()),
        itk_meta=meta,
    )


def _itk_to_affine(origin: np.ndarray, spacing: np.ndarray, direction: np.ndarray) -> np.ndarray:
    d = len(origin)
    affine = np.eye(d + 1)
    affine[:d, :d] = direction * spacing[None, :]
    affine[:d, d] = origin
    if d >= LPS_TO_RAS_MIN_DIMS:
        affine[:2] *= -1  # LPS -> RAS
    return affine


def _affine_to_itk(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = affine.shape[0] - 1
    a = affine.copy()
    if d >= LPS_TO_RAS_MIN_DIMS:
        a[:2] *= -1  # RAS -> LPS
    spacing = np.asarray(spacing_from_affine(a))
    return a[:d, d], spacing, a[:d, :d] / spacing[None, :]


def _tuple2(a: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in a)


def write_image(
    array: np.ndarray,
    geometry: Geometry,
    path: str | Path,
    meta: dict[str, str] | None = None,
    compression: int | None = None,
) -> Path:
    """Write `array` (file voxel order, channels last) with `geometry`, atomically (temporary file, then rename).

    The format follows the path's extension; writing the geometry's own format reproduces its header geometry
    exactly, another format is written from the affine. `meta`: the metadata of a SimpleITK format (NRRD, MHA)
    instead of the input's, e.g. 3D Slicer's segment fields. `compression`: the zlib level (0-9) of `.nii.gz`
    and of SimpleITK formats that compress (NRRD, MHA; 0 writes them uncompressed); None: the writers' defaults
    (gzip level 1 for `.nii.gz`, SimpleITK formats uncompressed).
    """
    path = Path(path)
    array = np.asarray(array)
    d = geometry.spatial_dims
    if array.ndim not in (d, d + 1) or array.shape[:d] != geometry.spatial_shape:
        raise DataError(
            f"{path}: array of shape {array.shape} does not fit the geometry's spatial shape "
            f"{geometry.spatial_shape} (+ optional channels last). Restore the array to the original grid first."
        )
    if array.dtype == bool:
        array = array.astype(np.uint8)
    with atomic_path(path) as tmp:
        if is_nifti(path):
            _write_nifti(array, geometry, tmp, compression)
        else:
            _write_sitk(array, geometry, tmp, meta, compression)
    return path


def _write_nifti(array: np.ndarray, geometry: Geometry, path: Path, compression: int | None = None) -> None:
    import nibabel as nib

    if geometry.format == "nifti" and geometry.nifti_header:
        header_cls = nib.Nifti2Header if geometry.nifti_version == 2 else nib.Nifti1Header
        header = header_cls(binaryblock=base64.b64decode(geometry.nifti_header))
        header.set_data_dtype(array.dtype)
        header.set_data_shape(array.shape)
        header.set_slope_inter(None, None)
        image_cls = nib.Nifti2Image if geometry.nifti_version == 2 else nib.Nifti1Image
        img = image_cls(array, None, header=header)  # affine None: qform and sform stay as in the header
    else:
        d = geometry.spatial_dims
        a = geometry.affine_array()
        affine = np.eye(4)
        affine[:d, :d] = a[:d, :d]
        affine[:d, 3] = a[:d, d]
        img = nib.Nifti1Image(array, affine)
        img.header.set_qform(affine, code=1)
        img.header.set_sform(affine, code=1)
    if compression is None or not str(path).endswith(".gz"):
        nib.save(img, str(path))
        return
    import gzip

    with gzip.open(path, "wb", compresslevel=compression) as f:
        img.to_stream(f)


def _write_sitk(
    array: np.ndarray,
    geometry: Geometry,
    path: Path,
    meta: dict[str, str] | None = None,
    compression: int | None = None,
) -> None:
    import SimpleITK as sitk

    d = geometry.spatial_dims
    vector = array.ndim == d + 1
    axes = list(range(d))[::-1] + ([d] if vector else [])
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, axes)), isVector=vector)
    if geometry.format == "sitk":
        origin, spacing, direction = geometry.origin, geometry.spacing, geometry.direction
    else:
        o, s, dr = _affine_to_itk(geometry.affine_array())
        origin, spacing, direction = tuple(o), tuple(s), tuple(dr.ravel())
    for key, value in (geometry.itk_meta if meta is None else meta).items():
        img.SetMetaData(key, value)
    img.SetOrigin(tuple(float(v) for v in origin))
    img.SetSpacing(tuple(float(v) for v in spacing))
    img.SetDirection(tuple(float(v) for v in direction))
    try:
        if compression is None:
            sitk.WriteImage(img, str(path))
        else:
            sitk.WriteImage(img, str(path), compression > 0, compression)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise DataError(
            f"{path}: SimpleITK cannot write a {array.dtype} array in this format ({lines[-1] if lines else e}). "
            f"Cast the array (PNG holds uint8/uint16) or write NIfTI instead."
        ) from None
