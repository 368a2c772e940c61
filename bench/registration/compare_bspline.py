#!/usr/bin/env python3
"""Deformable registration side by side: fusionflow's register.rigid +
register.bspline against elastix's rigid + B-spline, on phantoms with a known
smooth deformation. Prints, per seed, modality and tool: mean TRE over all
landmarks, over the interior ones and the boundary ones (on the skin and
skull surfaces), the smallest Jacobian determinant over the CT grid, the
number of folded voxels, and the wall time; and the perfect rigid-only error
(the least-squares rigid fit to the true landmark positions) the targets are
stated against.

usage: compare_bspline.py WORK_DIR SEED...
WORK_DIR/seed-S holds phantom/truth.json, fusionflow/ (run.json and the TRE
tables), elastix-{t1,pet}/ (outputpoints.txt, jacobian.txt, seconds).
Needs numpy (python3-numpy).
"""
import csv
import json
import pathlib
import re
import sys

import numpy as np

work = pathlib.Path(sys.argv[1])
seeds = sys.argv[2:]


def perfect_rigid(ct, moved):
    a, b = ct - ct.mean(0), moved - moved.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.diag([1, 1, np.sign(np.linalg.det(vt.T @ u.T))])
    rotation = vt.T @ d @ u.T
    return np.linalg.norm((rotation @ a.T).T + moved.mean(0) - moved, axis=1)


def summary(errors, interior):
    return errors.mean(), errors[interior].mean(), errors[~interior].mean()


print("| seed | moving | tool | TRE all (mm) | interior | boundary | min Jacobian det | folded voxels | time (s) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for seed in seeds:
    base = work / f"seed-{seed}"
    truth = json.loads((base / "phantom" / "truth.json").read_text())
    landmarks = truth["landmarks"]
    names = [l["name"] for l in landmarks]
    interior = np.array([l["kind"] == "interior" for l in landmarks])
    ct = np.array([l["ct_lps_mm"] for l in landmarks])
    record = json.loads((base / "fusionflow" / "run.json").read_text())
    nodes = {n["id"]: n for n in record["nodes"]}
    for modality, moving in (("mri", "t1"), ("pet", "pet")):
        true_points = np.array([l[f"{modality}_lps_mm"] for l in landmarks])
        rows = []
        e = perfect_rigid(ct, true_points)
        rows.append(("perfect rigid (least squares on the landmarks)", *summary(e, interior), "", "", ""))
        for stage in ("rigid", "bspline"):
            table = {r["landmark"]: float(r["error_mm"])
                     for r in csv.DictReader(open(base / "fusionflow" / f"tre_{stage}_{modality}.csv"))}
            e = np.array([table[n] for n in names])
            seconds = nodes[f"rigid_{modality}"]["wall_seconds"]
            jac, folded = "", ""
            if stage == "bspline":
                seconds += nodes[f"bspline_{modality}"]["wall_seconds"]
                report = list(csv.DictReader(open(base / "fusionflow" / f"bspline_{modality}_report.csv")))[-1]
                jac, folded = float(report["smallest_jacobian_determinant"]), int(float(report["folded_voxels"]))
            label = "fusionflow register.rigid" if stage == "rigid" else "fusionflow rigid + register.bspline"
            rows.append((label, *summary(e, interior), jac, folded, seconds))
        out = base / f"elastix-{moving}"
        points = []
        for line in (out / "outputpoints.txt").read_text().splitlines():
            points.append([float(v) for v in re.search(r"OutputPoint = \[([^\]]*)\]", line).group(1).split()])
        e = np.linalg.norm(np.array(points) - true_points, axis=1)
        jacobian = json.loads((out / "jacobian.json").read_text())
        rows.append(("elastix rigid + B-spline", *summary(e, interior), jacobian["min"], jacobian["folded"],
                     float((out / "seconds").read_text())))
        for label, tre_all, tre_in, tre_out, jac, folded, seconds in rows:
            fmt = lambda v, f: (f % v) if v != "" else ""
            print(f"| {seed} | {modality.upper()} | {label} | {tre_all:.2f} | {tre_in:.2f} | {tre_out:.2f} | "
                  f"{fmt(jac, '%.3f')} | {folded} | {fmt(seconds, '%.1f')} |")
