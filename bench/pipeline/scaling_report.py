"""The scaling benchmark's table and plot from its run records.

scaling_report.py WORK "machine and load" "NX NY NZ" ... writes WORK/scaling.md
(wall seconds and peak memory per node group and size, elastix's rigid
registration beside register.rigid) and WORK/scaling.png, and prints the table.
"""
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

work = pathlib.Path(sys.argv[1])
machine = sys.argv[2]
sizes = [tuple(int(v) for v in size.split()) for size in sys.argv[3:]]
names = [f"{nx}x{ny}x{nz}" for nx, ny, nz in sizes]

# Rows: the nodes of pet_ct_mri_fusion.json, grouped as a reader thinks of them.
groups = [
    ("load CT, MRI, PET", ["ct", "mri", "pet"]),
    ("register MRI -> CT", ["mri_to_ct"]),
    ("register PET -> CT", ["pet_to_ct"]),
    ("write aligned MRI, PET", ["write_mri", "write_pet"]),
    ("normalise, encode, fuse, decode",
     ["ct_norm", "mri_norm", "pet_norm", "ct_latent", "mri_latent", "pet_latent", "fuse", "fused"]),
    ("write fused (NIfTI, DICOM)", ["write_fused", "write_fused_dicom"]),
    ("render fused, PET over CT (3D)", ["render_fused", "render_pet_ct"]),
    ("overlay, fusion figure, registration checks, histogram",
     ["overlay", "fusion_figure", "mri_registration_check", "pet_registration_check", "histogram"]),
    ("metrics", ["metrics"]),
    ("report volumes", ["report_volumes"]),
]

records = {name: json.loads((work / "runs" / f"{name}.json").read_text()) for name in names}
elastix = {
    name: {moving: float((work / "runs" / f"{name}-elastix-{moving}.seconds").read_text())
           for moving in ("t1", "pet")}
    for name in names
}


def node_walls(record):
    return {node["id"]: node["wall_seconds"] for node in record["nodes"]}


def input_mebibytes(name):
    """The inputs as the pipeline holds them: float32 CT, MRI and PET volumes."""
    truth = json.loads((work / f"phantom-{name}" / "truth.json").read_text())
    voxels = 0
    for modality in ("ct", "mri", "pet"):
        count = 1
        for extent in truth["grids"][modality]["size"]:
            count *= extent
        voxels += count
    return 4 * voxels / 2**20


def megavoxels(size):
    return size[0] * size[1] * size[2] / 1e6


lines = [
    f"Machine: {machine}. The default pipeline, 2 threads, one run per size; "
    "node groups sum their nodes' wall times (nodes of a group may run side by side, "
    "so a group can exceed its share of the total).",
    "",
    "| | " + " | ".join(f"{name} ({megavoxels(size):.1f} M voxels)" for name, size in zip(names, sizes)) + " |",
    "| --- |" + " --- |" * len(names),
]
for label, ids in groups:
    cells = []
    for name in names:
        walls = node_walls(records[name])
        cells.append(f"{sum(walls.get(i, 0.0) for i in ids):.1f}")
    lines.append(f"| {label}, s | " + " | ".join(cells) + " |")
for moving, label in (("t1", "MRI"), ("pet", "PET")):
    lines.append(f"| elastix rigid {label} -> CT (reference), s | " +
                 " | ".join(f"{elastix[name][moving]:.1f}" for name in names) + " |")
lines.append("| **total wall, s** | " + " | ".join(f"**{records[n]['wall_seconds']:.1f}**" for n in names) + " |")
lines.append("| peak memory, MiB (x the input volumes) | " +
             " | ".join(f"{records[n]['peak_memory_bytes'] / 2**20:.0f} "
                        f"({records[n]['peak_memory_bytes'] / 2**20 / input_mebibytes(n):.1f}x)" for n in names) + " |")
table = "\n".join(lines) + "\n"
(work / "scaling.md").write_text(table)
print(table)

figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
x = [megavoxels(size) for size in sizes]
time_axis.plot(x, [records[n]["wall_seconds"] for n in names], "o-", color="black", label="total (wall)")
for label, ids in groups:
    values = [sum(node_walls(records[n]).get(i, 0.0) for i in ids) for n in names]
    if max(values) >= 2.0:
        time_axis.plot(x, values, ".-", label=label, linewidth=1)
time_axis.plot(x, [elastix[n]["t1"] for n in names], "x--", color="black", label="elastix rigid MRI -> CT (reference)")
time_axis.axhline(30, color="red", linestyle=":", linewidth=1, label="30 s (target at 512x512x300)")
time_axis.set_xlabel("CT / MRI grid, million voxels")
time_axis.set_ylabel("seconds (wall, 2 threads)")
time_axis.set_title("Time")
time_axis.legend(fontsize=7)
memory_axis.plot(x, [records[n]["peak_memory_bytes"] / 2**20 for n in names], "o-", color="black",
                 label="peak memory")
inputs = [input_mebibytes(name) for name in names]
memory_axis.plot(x, [4 * v for v in inputs], ":", color="red", label="4x the input volumes (target)")
memory_axis.set_xlabel("CT / MRI grid, million voxels")
memory_axis.set_ylabel("MiB")
memory_axis.set_title("Peak memory")
memory_axis.legend(fontsize=7)
figure.suptitle(f"Default pipeline scaling ({machine.split(';')[0]})", fontsize=9)
figure.tight_layout()
figure.savefig(work / "scaling.png")
