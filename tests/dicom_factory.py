"""Write real DICOM files with pydicom from real radiograph pixels (for decode tests)."""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

DIGITAL_XRAY = "1.2.840.10008.5.1.4.1.1.1.1"


def make_dicom(
    stored: np.ndarray,
    bits_stored: int = 12,
    photometric: str = "MONOCHROME2",
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    modality: str = "DX",
    syntax: str = ExplicitVRLittleEndian,
    pixels: bool = True,
    **extra,
) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = DIGITAL_XRAY if modality in ("DX", "CR") else SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "Test^Synthetic"
    ds.PatientID = "TEST-0001"
    ds.ViewPosition = "PA"
    ds.BodyPartExamined = "CHEST"
    ds.PatientAge = "057Y"
    ds.PatientSex = "M"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16 if bits_stored > 8 else 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.143, 0.143]
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0.0
        ds.RescaleType = "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    for key, value in extra.items():
        setattr(ds, key, value)
    dtype = np.uint16 if ds.BitsAllocated == 16 else np.uint8
    if pixels:
        ds.PixelData = stored.astype(dtype).tobytes()
        if syntax != ExplicitVRLittleEndian:
            ds.compress(syntax, stored.astype(dtype))
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


__all__ = ["make_dicom", "JPEG2000Lossless", "JPEGLSLossless", "ExplicitVRLittleEndian"]
