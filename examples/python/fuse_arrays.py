"""Fuse three NumPy volumes (CT, MRI, PET) through the default pipeline's fusion nodes.

Run from the source tree after the README's build:

    PYTHONPATH=build/python python3 examples/python/fuse_arrays.py [--out fused.nii.gz]

The arrays here are made with NumPy (a head-like ellipsoid with a skull, grey and white matter,
and a hot lesion); in a notebook they would come from nibabel, MONAI or a model. The pipeline
borrows them (float32 in Fortran order, as nibabel's arrays: Volume(array, copy=False)) and reads
their memory in place, and the fused volume comes back as a NumPy view of the pipeline's own
result: no copy in either direction.
"""

import argparse
import json
import pathlib

import numpy as np

import fusionflow as ff

DEFAULT_PIPELINE = pathlib.Path(__file__).resolve().parents[1] / "pipelines" / "pet_ct_mri_fusion.json"
# The default pipeline's fusion part: normalisation, encoding into the shared latent space,
# fusion there, and decoding (docs/fusion.md). Registration is not needed: the arrays share a grid.
FUSION_NODES = ["ct_norm", "mri_norm", "pet_norm", "ct_latent", "mri_latent", "pet_latent", "fuse", "fused"]
SOURCES = {"ct_norm": "ct.volume", "mri_norm": "mri.volume", "pet_norm": "pet.volume"}


def head_arrays(shape=(96, 96, 64), spacing=(2.0, 2.0, 3.0)):
    """CT (HU), T1-like MRI (a.u.) and PET (Bq/mL) of a simple head, indexed [i, j, k]."""
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    radius = np.sqrt((x / 80) ** 2 + (y / 95) ** 2 + (z / 85) ** 2)
    brain = radius < 0.85
    skull = (radius >= 0.85) & (radius < 0.95)
    scalp = (radius >= 0.95) & (radius < 1.0)
    white = brain & (np.abs(np.sin(x / 9) * np.cos(y / 11)) > 0.45)
    lesion = ((x - 25) ** 2 + (y + 15) ** 2 + (z - 10) ** 2) < 12 ** 2
    ct = np.where(skull, 1200.0, np.where(brain | scalp, 35.0, -1000.0))
    mri = np.where(white, 900.0, np.where(brain, 600.0, np.where(scalp, 400.0, 0.0)))
    pet = np.where(lesion, 30000.0, np.where(brain, 6000.0, np.where(scalp, 1500.0, 0.0)))
    rng = np.random.default_rng(0)
    return {name: np.asfortranarray(array + rng.normal(0, noise, shape), dtype=np.float32)
            for name, array, noise in (("ct", ct, 8.0), ("mri", mri, 15.0), ("pet", pet, 400.0))}, spacing


def fusion_pipeline():
    """The default pipeline's fusion nodes, with their parameters, fed by three Python inputs."""
    document = json.loads(DEFAULT_PIPELINE.read_text())
    nodes = {node["id"]: node for node in document["nodes"]}
    pipeline = ff.Pipeline("fusion of NumPy arrays")
    for source in ("ct", "mri", "pet"):
        pipeline.add_node(source, "python.input_volume")
    for node_id in FUSION_NODES:
        node = nodes[node_id]
        pipeline.add_node(node_id, node["type"], **node.get("params", {}))
        for port, producers in node.get("inputs", {}).items():
            for producer in producers if isinstance(producers, list) else [producers]:
                pipeline.connect(SOURCES.get(node_id, producer), f"{node_id}.{port}")
    return pipeline


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the fused volume (NIfTI, through nibabel)")
    parser.add_argument("--threads", type=int, default=0)
    arguments = parser.parse_args()

    arrays, spacing = head_arrays()
    modalities = {"ct": ("CT", "HU"), "mri": ("MR", "a.u."), "pet": ("PT", "Bq/mL")}
    volumes = {}
    for name, array in arrays.items():
        modality, units = modalities[name]
        # copy=False: refuse rather than copy if the array's layout needed a conversion.
        volumes[name] = ff.Volume(array, copy=False, spacing=spacing, origin=(-95.0, -95.0, -94.5),
                                  modality=modality, units=units)
    borrowed = all(volumes[name].borrowed and volumes[name].data_pointer == array.__array_interface__["data"][0]
                   for name, array in arrays.items())

    result = fusion_pipeline().run(inputs=volumes, outputs=["fused.volume"], threads=arguments.threads,
                                   progress=None)
    fused = result.outputs["fused.volume"]
    array = fused.array
    returned_as_view = array.__array_interface__["data"][0] == fused.data_pointer
    print(f"fused {fused.shape} volume, spacing {fused.spacing} mm, modality {fused.modality}")
    print(f"values {array.min():.3f} .. {array.max():.3f}, mean {array.mean():.3f}")
    print(f"the pipeline read the NumPy arrays in place (no copy): {borrowed}")
    print(f"the fused array is a view of the pipeline's result (no copy): {returned_as_view}")
    print(f"fused in {result.wall_seconds:.2f} s on {result.threads} threads")
    if arguments.out:
        ff.to_nibabel(fused).to_filename(arguments.out)
        print(f"written to {arguments.out}")
    return 0 if borrowed and returned_as_view else 1


if __name__ == "__main__":
    raise SystemExit(main())
