#!/usr/bin/env python3
"""Writes a PNG with the middle axial slice of several NIfTI volumes side by side
(standard library only: gzip, struct, zlib).

usage: slices_png.py OUT.png [--slice K] VOLUME.nii.gz:LOW:HIGH [...]
Each panel maps LOW..HIGH to black..white (e.g. CT -1000:2000 HU)."""
import gzip, struct, sys, zlib


def read_nifti(path):
    data = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    dims = struct.unpack_from("<8h", data, 40)
    datatype = struct.unpack_from("<h", data, 70)[0]
    offset = int(struct.unpack_from("<f", data, 108)[0])
    slope, inter = struct.unpack_from("<2f", data, 112)
    if slope == 0:
        slope = 1.0
    nx, ny, nz = dims[1], dims[2], max(dims[3], 1)
    fmt = {2: "B", 4: "h", 16: "f", 64: "d", 512: "H", 8: "i"}[datatype]
    count = nx * ny * nz
    values = struct.unpack_from("<%d%s" % (count, fmt), data, offset)
    return nx, ny, nz, [v * slope + inter for v in values]


def write_png(path, width, height, rows):
    raw = b"".join(b"\x00" + bytes(row) for row in rows)
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(png)


def main(argv):
    out, rest = argv[0], argv[1:]
    k = None
    if rest and rest[0] == "--slice":
        k, rest = int(rest[1]), rest[2:]
    panels = []
    for spec in rest:
        path, low, high = spec.rsplit(":", 2)
        nx, ny, nz, v = read_nifti(path)
        kk = nz // 2 if k is None else k
        low, high = float(low), float(high)
        # Rows from the top (anterior) so that the head is upright: flip j.
        panel = [[max(0, min(255, int(255 * (v[i + nx * (j + ny * kk)] - low) / (high - low))))
                  for i in range(nx)] for j in reversed(range(ny))]
        panels.append(panel)
    height = max(len(p) for p in panels)
    gap = 4
    rows = []
    for y in range(height):
        row = []
        for p in panels:
            row += (p[y] if y < len(p) else [0] * len(p[0])) + [255] * gap
        rows.append(row[:-gap])
    write_png(out, len(rows[0]), height, rows)


if __name__ == "__main__":
    main(sys.argv[1:])
