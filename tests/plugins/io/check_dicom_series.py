"""Independent readers' view of a DICOM series written by io.write_dicom.

Usage: check_dicom_series.py SERIES_DIR REFERENCE_NIFTI [DCM2NIIX_NIFTI]

pydicom reads every instance (and decodes its pixels); nibabel compares the
NIfTI that dcm2niix made of the series with the reference NIfTI that
io.write made of the same volume: dcm2niix may store the voxel axes in
another order or direction, so the voxel-index map between the two is found
from their affines and must be a signed permutation. Prints "key value"
lines for the C++ test to check.
"""
import sys
from pathlib import Path

import numpy as np
import nibabel
import pydicom


def main():
    series, reference = Path(sys.argv[1]), Path(sys.argv[2])
    files = sorted(series.glob("*.dcm"))
    decoded = 0
    patient = set()
    for file in files:
        ds = pydicom.dcmread(file)
        pixels = ds.pixel_array
        expected = (ds.Rows, ds.Columns) if ds.SamplesPerPixel == 1 else (ds.Rows, ds.Columns, 3)
        if pixels.shape == expected:
            decoded += 1
        patient.add((str(ds.PatientName), str(ds.PatientID), str(ds.PatientBirthDate)))
    print("instances", len(files))
    print("pydicom_decoded", decoded)
    print("patient_modules", len(patient))
    name, pid, birth = sorted(patient)[0]
    print("patient_name", name or "-")
    print("patient_id", pid or "-")
    print("patient_birth_date", birth or "-")
    if len(sys.argv) < 4:
        return
    ref = nibabel.load(str(reference))
    other = nibabel.load(sys.argv[3])
    a_ref, a_other = ref.affine, other.affine
    # Voxel index in `other` of each voxel index of the reference.
    index_map = np.linalg.inv(a_other) @ a_ref
    rounded = np.round(index_map)
    linear = rounded[:3, :3]
    is_permutation = bool(
        np.all(np.abs(linear).sum(axis=0) == 1) and np.all(np.abs(linear).sum(axis=1) == 1))
    print("signed_permutation", int(is_permutation))
    # How far the two affines are from an exact relabelling of the voxels, in mm.
    print("geometry_error_mm", float(np.abs(a_other @ rounded - a_ref).max()))
    data_ref = np.asarray(ref.get_fdata(), dtype=np.float64)
    data_other = np.asarray(other.get_fdata(), dtype=np.float64)  # with dcm2niix's scaling
    if data_other.ndim > 3:
        data_other = data_other[..., 0]
    if data_ref.ndim < 3:
        data_ref = data_ref[..., np.newaxis]
    if data_other.ndim < 3:
        data_other = data_other[..., np.newaxis]
    i, j, k = np.indices(data_ref.shape)
    points = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
    mapped = (rounded @ points).astype(int)
    inside = np.all((mapped[:3] >= 0) & (mapped[:3] < np.array(data_other.shape)[:, None]), axis=0)
    print("mapped_inside", int(inside.all()))
    if inside.all():
        values = data_other[mapped[0], mapped[1], mapped[2]]
        print("value_error", float(np.abs(values - data_ref.ravel()).max()))


if __name__ == "__main__":
    main()
