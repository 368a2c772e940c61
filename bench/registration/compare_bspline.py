#!/usr/bin/env python3
"""Deformable registration side by side: fusionflow's register.rigid +
register.bspline against elastix's rigid + B-spline, on phantoms with a known
smooth deformation. Prints, per seed, modality and tool: mean TRE over all
landmarks, over the interior ones and the boundary ones (on the skin and
skull surfaces), the RMS error of the displacement over the head (CT voxels
with a tissue label, every 2nd voxel per axis) against the phantom's true
field, the smallest Jacobian determinant over the CT grid, the number of
folded voxels, and the wall time; and the perfect rigid-only error (the
least-squares rigid fit to the true landmark positions) the targets are
stated against.

usage: compare_bspline.py WORK_DIR SEED...
WORK_DIR/seed-S holds phantom/truth.json, fusionflow/ (run.json and the TRE
tables), elastix-{t1,pet}/ (outputpoints.txt, jacobian.txt, seconds).
Needs numpy and nibabel (python3-numpy, python3-nibabel).
"""
import csv
import json
import pathlib
import re
import sys

import gzip

import nibabel
import numpy as np

work = pathlib.Path(sys.argv[1])
seeds = sys.argv[2:]


def perfect_rigid(ct, moved):
    a, b = ct - ct.mean(0), moved - moved.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.diag([1, 1, np.sign(np.linalg.det(vt.T @ u.T))])
    rotation = vt.T @ d @ u.T
    return np.linalg.norm((rotation @ a.T).T + moved.mean(0) - moved, axis=1)


def read_nrrd_vectors(path):
    """The (3, x, y, z) float vectors of an ITK-written displacement field NRRD (gzip or raw)."""
    data = path.read_bytes()
    header, _, body = data.partition(b"\n\n")
    fields = dict(line.split(": ", 1) for line in header.decode().splitlines()[1:] if ": " in line)
    sizes = [int(v) for v in fields["sizes"].split()]
    if fields["type"] != "float" or fields.get("endian", "little") != "little" or sizes[0] != 3:
        raise SystemExit(f"{path}: not a little-endian float vector field")
    raw = gzip.decompress(body) if fields["encoding"] == "gzip" else body
    return np.frombuffer(raw, dtype="<f4").reshape(sizes[::-1]).transpose(3, 2, 1, 0)


def rms_error(estimated, true, head):
    """RMS of |estimated - true| over the head voxels; fields as (3, x, y, z)."""
    difference = (estimated - true)[:, ::2, ::2, ::2]
    squared = (difference ** 2).sum(axis=0)[head[::2, ::2, ::2]]
    return float(np.sqrt(squared.mean()))


def summary(errors, interior):
    return errors.mean(), errors[interior].mean(), errors[~interior].mean()


print("| seed | moving | tool | TRE all (mm) | interior | boundary | RMS displacement error (mm) | min Jacobian det "
      "| folded voxels | time (s) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for seed in seeds:
    base = work / f"seed-{seed}"
    truth = json.loads((base / "phantom" / "truth.json").read_text())
    landmarks = truth["landmarks"]
    names = [l["name"] for l in landmarks]
    interior = np.array([l["kind"] == "interior" for l in landmarks])
    ct = np.array([l["ct_lps_mm"] for l in landmarks])
    record = json.loads((base / "fusionflow" / "run.json").read_text())
    nodes = {n["id"]: n for n in record["nodes"]}
    head = np.asarray(nibabel.load(base / "phantom" / "labels.nii.gz").dataobj) > 0
    for modality, moving in (("mri", "t1"), ("pet", "pet")):
        true_points = np.array([l[f"{modality}_lps_mm"] for l in landmarks])
        true_field = read_nrrd_vectors(base / "phantom" / f"{modality}_displacement.nrrd")
        rows = []
        e = perfect_rigid(ct, true_points)
        rows.append(("perfect rigid (least squares on the landmarks)", *summary(e, interior), "", "", "", ""))
        for stage in ("rigid", "bspline"):
            table = {r["landmark"]: float(r["error_mm"])
                     for r in csv.DictReader(open(base / "fusionflow" / f"tre_{stage}_{modality}.csv"))}
            e = np.array([table[n] for n in names])
            seconds = nodes[f"rigid_{modality}"]["wall_seconds"]
            jac, folded, rms = "", "", ""
            if stage == "bspline":
                rms = rms_error(read_nrrd_vectors(base / "fusionflow" / f"bspline_{modality}_displacement.nrrd"),
                                true_field, head)
                seconds += nodes[f"bspline_{modality}"]["wall_seconds"]
                report = list(csv.DictReader(open(base / "fusionflow" / f"bspline_{modality}_report.csv")))[-1]
                jac, folded = float(report["smallest_jacobian_determinant"]), int(float(report["folded_voxels"]))
            label = "fusionflow register.rigid" if stage == "rigid" else "fusionflow rigid + register.bspline"
            rows.append((label, *summary(e, interior), rms, jac, folded, seconds))
        out = base / f"elastix-{moving}"
        points = []
        for line in (out / "outputpoints.txt").read_text().splitlines():
            points.append([float(v) for v in re.search(r"OutputPoint = \[([^\]]*)\]", line).group(1).split()])
        e = np.linalg.norm(np.array(points) - true_points, axis=1)
        jacobian = json.loads((out / "jacobian.json").read_text())
        # elastix (ITK 5.0) writes the field's vectors in LPS, as they are in memory.
        elastix_field = np.asarray(nibabel.load(out / "jacobian" / "deformationField.nii.gz").dataobj)
        elastix_field = np.moveaxis(elastix_field.reshape(elastix_field.shape[:3] + (3,)), 3, 0)
        rows.append(("elastix rigid + B-spline", *summary(e, interior), rms_error(elastix_field, true_field, head),
                     jacobian["min"], jacobian["folded"], float((out / "seconds").read_text())))
        for label, tre_all, tre_in, tre_out, rms, jac, folded, seconds in rows:
            fmt = lambda v, f: (f % v) if v != "" else ""
            print(f"| {seed} | {modality.upper()} | {label} | {tre_all:.2f} | {tre_in:.2f} | {tre_out:.2f} | "
                  f"{fmt(rms, '%.2f')} | {fmt(jac, '%.3f')} | {folded} | {fmt(seconds, '%.1f')} |")
