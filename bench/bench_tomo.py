"""Tomographic reconstruction to equal error: reloc-tomo's OS-SART against scikit-image's iradon_sart, in one run.

The same sinogram (Shepp-Logan, skimage's radon, noise-free and with Poisson noise) goes to both. iradon_sart runs
pass after pass (each call is one SART pass, updating after every angle); its error against the phantom after
PASSES passes is the target. reloc runs OS-SART with one angle per subset (the update SART makes) for 1, 2, ...
passes until its error is at or below the target; its time is the reconstruction's own, logged by the tool (file
I/O excluded), on one slice with one thread (like skimage) and per slice of an 8-slice series on all cores. The
ratios are skimage's time to the target over reloc's. A third line shows SIRT (one subset), which needs far more
iterations for the same error (small case only)."""
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from skimage.data import shepp_logan_phantom
from skimage.transform import iradon_sart, radon, resize

BIN = Path(os.environ.get("RELOC_BIN", Path(__file__).resolve().parents[1] / "bin"))
PASSES = 3                          # skimage's passes that set the target error
SERIES = 8


def phantom(n):
    ph = resize(shepp_logan_phantom(), (n, n))
    ph[np.hypot(*(np.mgrid[:n, :n] - n // 2)) > n // 2 - 1] = 0
    return ph


def reloc(path, passes, subsets, threads, slices):
    """(seconds, first slice) of reloc-tomo on the sinogram file."""
    out = Path(path).with_suffix(".out.h5")
    result = subprocess.run([str(BIN / "reloc-tomo"), str(path), "--element", "X=/sino", "--iterations", str(passes),
                             "--subsets", str(subsets), "--threads", str(threads), "--threshold", "0", "-o", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    seconds = float(re.search(r"iterations in ([0-9.]+) s", result.stderr).group(1))
    with h5py.File(out, "r") as f:
        rec = f["reconstruction/X"][()]
    return seconds, rec[0] if slices > 1 else rec


def rmse(a, b):
    return float(np.sqrt(((a - b) ** 2).mean()))


def to_target(tmp, sino, angles, ph, target, subsets, limit):
    """Fewest reloc passes reaching the target error; their time on one slice and per slice of a series."""
    one, many = Path(tmp) / "one.h5", Path(tmp) / "many.h5"
    with h5py.File(one, "w") as f:
        f["angles"] = angles
        f["sino"] = sino.T.astype(np.float32)
    with h5py.File(many, "w") as f:
        f["angles"] = angles
        f["sino"] = np.stack([sino.T] * SERIES, axis=1).astype(np.float32)
    passes, error = 0, np.inf
    while error > target and passes < limit:
        passes = passes + 1 if passes < 10 else passes * 2
        _, rec = reloc(one, passes, subsets, 1, 1)
        error = rmse(rec, ph)
    if error > target:
        return passes, error, np.nan, np.nan
    single = min(reloc(one, passes, subsets, 1, 1)[0] for _ in range(3))
    series = min(reloc(many, passes, subsets, 0, SERIES)[0] for _ in range(2)) / SERIES
    return passes, error, single, series


def case(n, n_angles, noisy, with_sirt=False):
    ph = phantom(n)
    angles = np.linspace(0.0, 180.0, n_angles, endpoint=False)
    sino = radon(ph, angles, circle=True)
    if noisy:
        scale = 2000 / sino.max()
        sino = np.random.default_rng(0).poisson(sino * scale) / scale
    best = np.inf
    for _ in range(2):
        rec, t0 = None, time.perf_counter()
        for _ in range(PASSES):
            rec = iradon_sart(sino, theta=angles, image=rec)
        best = min(best, time.perf_counter() - t0)
    target = rmse(rec, ph)
    print(f"{n} x {n}, {n_angles} angles, {'Poisson noise' if noisy else 'noise-free'}: target = iradon_sart's "
          f"error after {PASSES} passes, RMSE {target:.4f}, {best:.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        for label, subsets, limit in (("OS-SART", n_angles, 40),) + ((("SIRT", 1, 640),) if with_sirt else ()):
            passes, error, single, series = to_target(tmp, sino, angles, ph, target, subsets, limit)
            if np.isnan(single):
                print(f"  reloc {label:8s}: not reached in {passes} passes (RMSE {error:.4f})")
                continue
            print(f"  reloc {label:8s}: {passes:3d} passes, RMSE {error:.4f}: {single:.3f} s one slice 1 thread, "
                  f"{series:.3f} s per slice of {SERIES} on all cores; ratio skimage / reloc {best / single:.1f}x "
                  f"(one slice), {best / series:.1f}x (series)")


def main():
    case(101, 31, False, with_sirt=True)
    case(256, 180, False)
    case(256, 180, True)


if __name__ == "__main__":
    main()
