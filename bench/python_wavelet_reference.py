#!/usr/bin/python3
"""3D wavelet fusion of two 256^3 float32 volumes with NumPy and PyWavelets.

The reference fusionflow's Laplacian-pyramid fusion is compared with
(bench/run_fusion_comparison.sh): pywt.wavedecn of both volumes (db2, 4
levels, PyWavelets' default 'symmetric' border), max-abs selection of every
detail coefficient, mean of the approximations, pywt.waverecn. Timed from
the two input arrays to the fused array, like fusion_bench's
BM_LaplacianFusion256. Prints one JSON object.

Debian packages: python3-numpy python3-pywt (run with /usr/bin/python3).
"""
import argparse
import json
import resource
import statistics
import time

import numpy as np
import pywt


def make_inputs(n):
    """Deterministic content like fusion_bench's: a ball with stripes plus noise."""
    rng = np.random.default_rng(1)
    c = np.arange(n, dtype=np.float32) / n - 0.5
    inside = (c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2) < 0.16
    volumes = []
    for seed in (1, 2):
        stripes = ((np.arange(n) // (8 + seed)) % 2).astype(np.float32)[None, None, :]
        structure = np.where(inside, 0.4 + 0.3 * stripes, 0.05).astype(np.float32)
        volumes.append(structure + 0.05 * rng.random((n, n, n), dtype=np.float32))
    return volumes


def fuse(a, b, wavelet, levels):
    ca = pywt.wavedecn(a, wavelet, level=levels)
    cb = pywt.wavedecn(b, wavelet, level=levels)
    fused = [(ca[0] + cb[0]) * 0.5]
    for da, db in zip(ca[1:], cb[1:]):
        fused.append({key: np.where(np.abs(da[key]) >= np.abs(db[key]), da[key], db[key]) for key in da})
    return pywt.waverecn(fused, wavelet)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--wavelet", default="db2")
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    a, b = make_inputs(args.size)
    # Sanity: the transform pair reconstructs (so the timing is of a working fusion).
    check = pywt.waverecn(pywt.wavedecn(a, args.wavelet, level=args.levels), args.wavelet)
    reconstruction_error = float(np.max(np.abs(check[: args.size, : args.size, : args.size] - a)))
    del check

    seconds = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        fused = fuse(a, b, args.wavelet, args.levels)
        seconds.append(time.perf_counter() - start)
        del fused
    inputs_mib = (a.nbytes + b.nbytes) / 2**20
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    print(json.dumps({
        "implementation": f"numpy {np.__version__} + pywavelets {pywt.__version__}",
        "wavelet": args.wavelet,
        "levels": args.levels,
        "size": args.size,
        "seconds": seconds,
        "seconds_median": statistics.median(seconds),
        "seconds_min": min(seconds),
        "inputs_mib": inputs_mib,
        "peak_rss_mib": peak_mib,
        "peak_over_inputs": peak_mib / inputs_mib,
        "reconstruction_max_error": reconstruction_error,
    }))


if __name__ == "__main__":
    main()
