"""fusionflow Volumes and nibabel images.

fusionflow keeps ITK's convention, LPS world coordinates; nibabel's affines
are RAS. The two differ by flipping x and y: affine_ras = diag(-1, -1, 1, 1) @ affine_lps.
"""

import numpy as np

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def to_nibabel(volume):
    """A nibabel Nifti1Image of the volume: its array is the volume's own memory (no copy)."""
    import nibabel

    image = nibabel.Nifti1Image(volume.array, _LPS_TO_RAS @ volume.affine)
    image.header.set_xyzt_units("mm")
    return image


def from_nibabel(image, **metadata):
    """A fusionflow Volume from a nibabel image (3D, or 2D), with the image's geometry in LPS.

    Keyword arguments set metadata: modality ("CT", "MR", "PT"), units, quantity, ...
    The volume borrows the image's array when it is float32 in Fortran order (nibabel's layout for
    float32 images without scaling); any other array is converted to float32 once.
    """
    affine_lps = _LPS_TO_RAS @ np.asarray(image.affine, dtype=float)
    columns = affine_lps[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0):
        raise ValueError("the image's affine has a zero-length axis")
    direction = columns / spacing
    data = np.asanyarray(image.dataobj, dtype=np.float32)
    if data.ndim not in (2, 3):
        raise ValueError(f"fusionflow.Volume is 2D or 3D; this image has shape {data.shape}")
    return _volume(data, spacing, affine_lps[:3, 3], direction, metadata)


def _volume(data, spacing, origin, direction, metadata):
    from ._core import Volume

    return Volume(data, spacing=tuple(spacing), origin=tuple(origin), direction=direction, **metadata)
