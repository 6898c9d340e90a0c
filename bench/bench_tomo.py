"""Tomographic reconstruction to equal error: reloc-tomo's OS-SART against scikit-image's iradon_sart, in one run.

The same sinogram (Shepp-Logan, skimage's radon, noise-free and with Poisson noise) goes to both. iradon_sart runs
pass after pass (each call is one SART pass, updating after every angle); its error against the phantom after
PASSES passes is the target, its time (one slice, one core; CPU time if less than wall time, as on a loaded
machine) the reference. reloc runs OS-SART with one angle per
subset (the update SART makes) for 1, 2, ... passes until its error is at or below the target; its time is the
reconstruction's own, logged by the tool (file I/O excluded; on one thread it is CPU time too):
- one slice on one thread, against iradon_sart on one slice;
- per slice of a SERIES-slice series on one thread (slices go through the projector in batches: tomo.h), against
  iradon_sart per slice on one core;
- per slice of the series on 2 threads, against iradon_sart per slice on 2 cores taken as half its one-core time
  (perfect scaling over slices: the most a pool of 2 could give it).
A line "stopping rule" runs the same OS-SART with the residual stopping rules instead of a pass count chosen with
the phantom, at most 40 passes, and says whether that reaches the target: --tolerance TOL (stop after a pass that
lowers the exact data residual by less than TOL of the previous one) and, for the Poisson data, whose counts per
unit are known, --counts-per-unit (stop once the residual reaches the noise level: the discrepancy rule). One
setting for all cases: relaxation RELAX, tolerance TOL (the previous bench's tolerance, not tuned per case); the
residual is exact after every pass (one more projection per pass, timed), so the rule can stop after pass 2, and
the discrepancy rule after pass 1. A last line shows SIRT (one subset), which needs
far more passes for the same error (small case only). Load average before and after is printed: the machine may
be shared."""
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
SERIES = 32
TOL, RELAX = 0.3, 1.0               # the stopping rule's line: tolerance and relaxation


def phantom(n):
    ph = resize(shepp_logan_phantom(), (n, n))
    ph[np.hypot(*(np.mgrid[:n, :n] - n // 2)) > n // 2 - 1] = 0
    return ph


def reloc(path, passes, subsets, threads, slices, tolerance=0.0, relaxation=1.0, counts=0.0):
    """(seconds, passes the slices took at most, first slice) of reloc-tomo on the sinogram file."""
    out = Path(path).with_suffix(".out.h5")
    result = subprocess.run([str(BIN / "reloc-tomo"), str(path), "--element", "X=/sino", "--iterations", str(passes),
                             "--subsets", str(subsets), "--threads", str(threads), "--threshold", "0",
                             "--tolerance", str(tolerance), "--relaxation", str(relaxation), "-o", str(out)]
                            + (["--counts-per-unit", str(counts)] if counts else []),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    seconds = float(re.search(r"iterations in ([0-9.]+) s", result.stderr).group(1))
    with h5py.File(out, "r") as f:
        rec = f["reconstruction/X"][()]
        taken = int(np.max(f["passes"][()]))
    return seconds, taken, rec[0] if slices > 1 else rec


def rmse(a, b):
    return float(np.sqrt(((a - b) ** 2).mean()))


def write(path, sino, angles, slices):
    with h5py.File(path, "w") as f:
        f["angles"] = angles
        f["sino"] = (np.stack([sino.T] * slices, axis=1) if slices > 1 else sino.T).astype(np.float32)


def timings(tmp, passes, subsets, *rule):
    """Seconds for one slice on one thread and per slice of the series on 1 and 2 threads (best of a few), and the
    passes the single slice took; rule: tolerance, relaxation, counts per unit."""
    one, many = Path(tmp) / "one.h5", Path(tmp) / "many.h5"
    runs = [reloc(one, passes, subsets, 1, 1, *rule) for _ in range(3)]
    return (min(r[0] for r in runs),
            min(reloc(many, passes, subsets, 1, SERIES, *rule)[0] for _ in range(2)) / SERIES,
            min(reloc(many, passes, subsets, 2, SERIES, *rule)[0] for _ in range(2)) / SERIES), runs[0][1]


def ratios(best, times):
    single, series1, series2 = times
    return (f"one slice 1 thread {single:.3f} s ({best / single:.1f}x); per slice of {SERIES}: 1 thread "
            f"{series1:.4f} s ({best / series1:.1f}x), 2 threads {series2:.4f} s ({best / 2 / series2:.1f}x against "
            f"iradon_sart on 2 cores)")


def to_target(tmp, sino, angles, ph, target, subsets, limit):
    """Fewest reloc passes reaching the target error, and their timings."""
    one, many = Path(tmp) / "one.h5", Path(tmp) / "many.h5"
    write(one, sino, angles, 1)
    write(many, sino, angles, SERIES)
    passes, error = 0, np.inf
    while error > target and passes < limit:
        passes = passes + 1 if passes < 10 else passes * 2
        error = rmse(reloc(one, passes, subsets, 1, 1)[2], ph)
    if error > target:
        return passes, error, None
    return passes, error, timings(tmp, passes, subsets)[0]


def case(n, n_angles, noisy, with_sirt=False):
    ph = phantom(n)
    angles = np.linspace(0.0, 180.0, n_angles, endpoint=False)
    sino = radon(ph, angles, circle=True)
    scale = 0.0                             # counts per unit of the sinogram: 0 when there are no counts
    if noisy:
        scale = 2000 / sino.max()
        sino = np.random.default_rng(0).poisson(sino * scale) / scale
    best = cpu = np.inf
    for _ in range(2):
        rec, t0, c0 = None, time.perf_counter(), time.process_time()
        for _ in range(PASSES):
            rec = iradon_sart(sino, theta=angles, image=rec)
        best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    target = rmse(rec, ph)
    best = min(best, cpu)   # the ratios' reference: its CPU time when the machine's load stretched the wall time
    print(f"{n} x {n}, {n_angles} angles, {'Poisson noise' if noisy else 'noise-free'}: target = iradon_sart's "
          f"error after {PASSES} passes, RMSE {target:.4f}, {best:.3f} s per slice on one core ({cpu:.3f} s CPU)")
    with tempfile.TemporaryDirectory() as tmp:
        for label, subsets, limit in (("OS-SART", n_angles, 40),) + ((("SIRT", 1, 640),) if with_sirt else ()):
            passes, error, times = to_target(tmp, sino, angles, ph, target, subsets, limit)
            if times is None:
                print(f"  reloc {label:8s}: not reached in {passes} passes (RMSE {error:.4f})")
                continue
            print(f"  reloc {label:8s}: {passes:3d} passes, RMSE {error:.4f}: {ratios(best, times)}")
            if label != "OS-SART":
                continue
            error = rmse(reloc(Path(tmp) / "one.h5", 40, subsets, 1, 1, TOL, RELAX, scale)[2], ph)
            times, taken = timings(tmp, 40, subsets, TOL, RELAX, scale)
            counts = f" --counts-per-unit {scale:.4g}" if scale else ""
            print(f"  reloc stopping rule (--tolerance {TOL} --relaxation {RELAX}{counts}, <= 40 passes): stopped "
                  f"after {taken} passes, RMSE "
                  f"{error:.4f} ({'reaches' if error <= target else 'misses'} the target): {ratios(best, times)}")


def main():
    print(f"load average {'/'.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    case(101, 31, False, with_sirt=True)
    case(256, 180, False)
    case(256, 180, True)
    print(f"load average at the end {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
