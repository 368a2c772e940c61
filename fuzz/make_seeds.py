#!/usr/bin/python3
"""Writes the fuzzers' seed corpora into fuzz/seeds/<target>/.

The seeds are small valid (and a few nearly valid) inputs that start each
fuzzer inside its reader's interesting paths. They are made here, from the
project's own pipelines and from images written with numpy, nibabel and
pydicom (Debian's python3-numpy, python3-nibabel, python3-pydicom), so no
third-party data is committed. Run it again after changing it; the output is
deterministic.
"""
import gzip
import io
import pathlib
import shutil
import struct
import zlib

import nibabel
import numpy
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"


def target(name):
    folder = SEEDS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def small_volume(shape=(5, 4, 3), dtype=numpy.int16):
    values = numpy.arange(numpy.prod(shape)).reshape(shape, order="F") * 7 - 20
    return values.astype(dtype)


def pipelines():
    folder = target("pipeline_loader")
    for name in ["core_two_branches.json", "io_roundtrip.json", "pet_ct_overlay.json", "fusion_laplacian.json"]:
        shutil.copy(ROOT / "examples" / "pipelines" / name, folder / name)
    shutil.copy(ROOT / "tests" / "data" / "pipelines" / "five_errors.json", folder / "five_errors.json")
    (folder / "empty_nodes.json").write_text('{"format_version": 1, "nodes": []}\n')


def variables():
    folder = target("variables")
    seeds = {
        "plain": "${out}/stats.csv\nout=/tmp/x\n",
        "chain": "${a}\na=${b}/1\nb=${c}/2\nc=/tmp\n",
        "escape": "$${literal}/${out}\nout=/tmp\n",
        "override": "${out}/${name}.csv\nout=/tmp\nname=s\n!name=t\n",
        "pipeline_dir": "${pipeline_dir}/${missing}\n",
    }
    for name, text in seeds.items():
        (folder / name).write_text(text)


def nifti():
    folder = target("nifti")
    affine = numpy.array([[-2.0, 0, 0, 10], [0, 2.5, 0, -20], [0, 0, 3.0, 5], [0, 0, 0, 1]])
    image = nibabel.Nifti1Image(small_volume(), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=2)
    image.to_filename(str(folder / "int16.nii"))
    float_image = nibabel.Nifti1Image(small_volume(dtype=numpy.float32) / 3, affine)
    data = float_image.to_bytes()
    (folder / "float32.nii").write_bytes(data)
    (folder / "float32.nii.gz").write_bytes(gzip.compress(data, mtime=0))
    two = nibabel.Nifti2Image(small_volume(dtype=numpy.uint8), affine)
    (folder / "uint8_nifti2.nii").write_bytes(two.to_bytes())


def nrrd():
    folder = target("nrrd")
    values = small_volume().astype("<i2")
    header = (
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 5 4 3\n"
        "space directions: (2,0,0) (0,2.5,0) (0,0,3)\nspace origin: (10,-20,5)\nendian: little\n"
    )
    (folder / "raw.nrrd").write_bytes((header + "encoding: raw\n\n").encode() + values.tobytes(order="F"))
    (folder / "gzip.nrrd").write_bytes(
        (header + "encoding: gzip\n\n").encode() + gzip.compress(values.tobytes(order="F"), mtime=0)
    )
    (folder / "ascii.nrrd").write_bytes(
        (header + "encoding: ascii\n\n").encode() + " ".join(str(v) for v in values.flatten(order="F")).encode()
    )


def metaimage():
    folder = target("metaimage")
    values = small_volume().astype("<i2").tobytes(order="F")
    header = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        "TransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 10 -20 5\nElementSpacing = 2 2.5 3\n"
        "DimSize = 5 4 3\nElementType = MET_SHORT\n"
    )
    (folder / "raw.mha").write_bytes((header + "ElementDataFile = LOCAL\n").encode() + values)
    compressed = zlib.compress(values)
    (folder / "compressed.mha").write_bytes(
        (
            header.replace("BinaryData = True\n", "BinaryData = True\nCompressedData = True\n")
            + f"CompressedDataSize = {len(compressed)}\nElementDataFile = LOCAL\n"
        ).encode()
        + compressed
    )


def png_bytes(width, height, bit_depth, colour_type, rows, palette=None, trns=None):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
    if palette is not None:
        out += chunk(b"PLTE", palette)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    raw = b"".join(b"\x00" + row for row in rows)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png():
    folder = target("png")
    width, height = 6, 4
    grey8 = [bytes((x * 40 + y * 5) % 256 for x in range(width)) for y in range(height)]
    (folder / "grey8.png").write_bytes(png_bytes(width, height, 8, 0, grey8))
    grey16 = [b"".join(struct.pack(">H", x * 9000 + y) for x in range(width)) for y in range(height)]
    (folder / "grey16.png").write_bytes(png_bytes(width, height, 16, 0, grey16))
    rgb = [bytes(v for x in range(width) for v in ((x * 40) % 256, y * 60, 200)) for y in range(height)]
    (folder / "rgb8.png").write_bytes(png_bytes(width, height, 8, 2, rgb))
    grey_palette = b"".join(bytes((v, v, v)) for v in range(0, 256, 16))
    indices = [bytes((x + y) % 16 for x in range(width)) for y in range(height)]
    (folder / "palette_grey.png").write_bytes(png_bytes(width, height, 8, 3, indices, palette=grey_palette))
    rgba = [bytes(v for x in range(width) for v in (x * 40, y * 60, 10, 255)) for y in range(height)]
    (folder / "rgba8.png").write_bytes(png_bytes(width, height, 8, 6, rgba))
    bits = [bytes([0b10110010]) for _ in range(height)]
    (folder / "grey1.png").write_bytes(png_bytes(8, height, 1, 0, bits))


def dicom():
    folder = target("dicom")
    for name, syntax, explicit in [("ct_explicit.dcm", ExplicitVRLittleEndian, True),
                                   ("ct_implicit.dcm", ImplicitVRLittleEndian, False)]:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.10.1178.1.1"
        meta.TransferSyntaxUID = syntax
        meta.ImplementationClassUID = "1.2.826.0.1.3680043.10.1178.9"
        dataset = FileDataset(name, {}, file_meta=meta, preamble=b"\0" * 128)
        dataset.is_little_endian = True
        dataset.is_implicit_VR = not explicit
        dataset.SOPClassUID = meta.MediaStorageSOPClassUID
        dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        dataset.StudyInstanceUID = "1.2.826.0.1.3680043.10.1178.2"
        dataset.SeriesInstanceUID = "1.2.826.0.1.3680043.10.1178.3"
        dataset.FrameOfReferenceUID = "1.2.826.0.1.3680043.10.1178.4"
        dataset.Modality = "CT"
        dataset.PatientName = "Fuzz^Seed"
        dataset.PatientID = "SEED-1"
        dataset.ImagePositionPatient = [-10.0, -20.0, 30.0]
        dataset.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        dataset.PixelSpacing = [0.5, 0.75]
        dataset.SliceThickness = 2.0
        dataset.Rows, dataset.Columns = 4, 6
        dataset.SamplesPerPixel = 1
        dataset.PhotometricInterpretation = "MONOCHROME2"
        dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 12, 11
        dataset.PixelRepresentation = 1
        dataset.RescaleIntercept = -1024
        dataset.RescaleSlope = 1
        dataset.PixelData = (numpy.arange(24, dtype="<i2") * 50).tobytes()
        buffer = io.BytesIO()
        dataset.save_as(buffer, write_like_original=False)
        (folder / name).write_bytes(buffer.getvalue())


if __name__ == "__main__":
    pipelines()
    variables()
    nifti()
    nrrd()
    metaimage()
    png()
    dicom()
    for folder in sorted(SEEDS.iterdir()):
        files = sorted(folder.iterdir())
        print(f"{folder.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")
