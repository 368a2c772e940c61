#!/usr/bin/env python3
"""Prints fusionflow's and elastix's registration accuracy (mean TRE over the
phantom's landmarks) and time side by side. Standard library only.

usage: compare.py WORK_DIR
WORK_DIR holds phantom/truth.json, fusionflow-*/run.json (fusionflow run
records) and elastix-{t1,pet}/TransformParameters.0.txt with elastix-*.seconds.
"""
import json
import math
import pathlib
import re
import sys

work = pathlib.Path(sys.argv[1])
truth = json.loads((work / "phantom" / "truth.json").read_text())
landmarks = [l["ct_lps_mm"] for l in truth["landmarks"]]


def apply(matrix, center, translation, p):
    return [sum(matrix[r][c] * (p[c] - center[c]) for c in range(3)) + center[r] + translation[r] for r in range(3)]


def euler_matrix(rx, ry, rz):
    # itk::Euler3DTransform with ComputeZYX off: R = Rz * Rx * Ry
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    Rx = [[1, 0, 0], [0, cx, -sx], [0, sx, cx]]
    Ry = [[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]
    Rz = [[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]
    mul = lambda a, b: [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]
    return mul(Rz, mul(Rx, Ry))


def true_map(modality):
    t = truth["transforms"][modality]
    return lambda p: apply(t["matrix"], t["center_lps_mm"], t["translation_mm"], p)


def mean_tre(estimated, true):
    return sum(math.dist(estimated(p), true(p)) for p in landmarks) / len(landmarks)


def elastix_map(path):
    text = path.read_text()
    params = [float(v) for v in re.search(r"\(TransformParameters ([^)]*)\)", text).group(1).split()]
    center = [float(v) for v in re.search(r"\(CenterOfRotationPoint ([^)]*)\)", text).group(1).split()]
    if re.search(r'\(ComputeZYX "true"\)', text):
        raise SystemExit("ComputeZYX true is not handled")
    matrix = euler_matrix(*params[:3])
    return lambda p: apply(matrix, center, params[3:6], p)


rows = []
for variant in sorted(work.glob("fusionflow-*")):
    record = json.loads((variant / "run.json").read_text())
    nodes = {n["id"]: n for n in record["nodes"]}
    table = [l.split(",") for l in (variant / "fusionflow_tre.csv").read_text().splitlines()]
    header, body = table[0], table[1:]
    means = [r for r in body if r[header.index("landmark")] == "mean"]
    for modality, node, row in (("MRI", "register_mri", means[0]), ("PET", "register_pet", means[1])):
        rows.append((f"fusionflow {variant.name[len('fusionflow-'):]}", modality,
                     float(row[header.index("error_mm")]), nodes[node]["wall_seconds"]))
    both = [nodes["register_mri"], nodes["register_pet"]]
    rows.append((f"fusionflow {variant.name[len('fusionflow-'):]}", "both (in parallel, one run)", float("nan"),
                 max(n["end_seconds"] for n in both) - min(n["start_seconds"] for n in both)))

elastix_total = 0.0
for moving, modality, truth_key in (("t1", "MRI", "mri"), ("pet", "PET", "pet")):
    seconds = float((work / f"elastix-{moving}.seconds").read_text())
    elastix_total += seconds
    rows.append(("elastix 5.0.1", modality,
                 mean_tre(elastix_map(work / f"elastix-{moving}" / "TransformParameters.0.txt"), true_map(truth_key)),
                 seconds))
rows.append(("elastix 5.0.1", "both (one after the other)", float("nan"), elastix_total))

print(f"{'method':<28} {'pair':<28} {'mean TRE (mm)':>14} {'time (s)':>9}")
for method, pair, tre, seconds in rows:
    tre_text = "" if math.isnan(tre) else f"{tre:.2f}"
    print(f"{method:<28} {pair + ' -> CT' if 'both' not in pair else pair:<28} {tre_text:>14} {seconds:>9.1f}")
