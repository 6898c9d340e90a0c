"""XANES white-line fit of 1000 x 1000 pixels x 40 energies, order 2 over a 20-point window: reloc-xanes against a
lean numpy implementation of the same method, in one run, alternating, best of 5 each, with the ratio, in wall time
and in CPU time (all threads of each: the work, whatever else the shared machine runs), with the load average.

The peer (numpy_fit) is what a careful numpy user writes: the window's pseudo-inverse (numpy.linalg.pinv) times the
(20, N) block of spectra in one BLAS product, the vertex and R^2 by array arithmetic (RSS from the normal equations,
no fitted-curve array), and the mean absorption over all energies as reloc also gives. reloc's kernel time is the one
the tool logs (the fit, mask, mean absorption, edge jump and summed spectrum, all cores); the tool also logs the HDF5
read of the stack and the write of the maps, reported beside it (the goal: I/O not slower than the fit).
The two results must agree to the float32 rounding of reloc's maps (numpy.polyfit's answer, which the tests
check against). The physical floor is printed beside them: one read of the whole stack (every sample added once, by
bench/read_floor.c built here, on huge pages), on one core and on all: the kernel reads every sample once too."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "xanes"))
import xanes_synth as xs  # noqa: E402

SIDE = 1000
ENERGY = np.linspace(8330.0, 8369.0, 40)
WINDOW = (8339.0, 8358.0)                     # 20 energies
RUNS = 5


def numpy_fit(energy, stack):
    sel = (energy >= WINDOW[0]) & (energy <= WINDOW[1])
    e = energy[sel]
    centre = e.mean()
    scale = max(e.max() - centre, centre - e.min())
    t = (e - centre) / scale
    v = np.vander(t, 3, increasing=True)
    pinv = np.linalg.pinv(v)
    y = stack[sel].reshape(sel.sum(), -1).astype(np.float64)
    c = pinv @ y
    vertex = -c[1] / (2 * c[2])
    ok = (c[2] < 0) & (vertex > t.min()) & (vertex < t.max())
    peak = np.where(ok, centre + scale * vertex, np.nan)
    yy = np.einsum("ij,ij->j", y, y)
    mean = y.mean(axis=0)
    rss = yy - np.einsum("ij,ij->j", c, v.T @ y)
    r2 = 1 - rss / (yy - len(e) * mean ** 2)
    mean_absorption = stack.mean(axis=0)
    return peak, r2, mean_absorption


def read_floor(tmp, count):
    """Best CPU and wall seconds of one read of count float32 samples, on one thread and on all cores."""
    exe = Path(tmp) / "read_floor"
    subprocess.run(["gcc", "-O3", "-march=native", "-pthread", "-o", str(exe),
                    str(Path(__file__).resolve().parent / "read_floor.c")], check=True)
    floors = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        out = subprocess.run([str(exe), str(count), "10", str(threads)], capture_output=True, text=True, check=True)
        floors[threads] = json.loads(out.stdout)
    return floors


def main():
    rng = np.random.default_rng(1)
    peaks = 8348.5 + rng.uniform(-1, 1, (SIDE, SIDE))
    stack = xs.edge_spectrum(ENERGY[:, None, None], peaks, rng.uniform(0.5, 2, (SIDE, SIDE)))
    stack = (stack + rng.normal(0, 0.01, stack.shape)).astype(np.float32)
    logged = {"kernel": [], "kernel_cpu": [], "read": [], "write": [], "wall": []}
    peer, peer_cpu = [], []
    with tempfile.TemporaryDirectory() as tmp:
        xs.write_stack(Path(tmp) / "s.h5", ENERGY, stack)
        for _ in range(RUNS):
            t0 = time.perf_counter()
            result = xs.run_xanes([Path(tmp) / "s.h5", "--window", f"{WINDOW[0]}:{WINDOW[1]}",
                                   "-o", Path(tmp) / "o.h5"])
            logged["wall"].append(time.perf_counter() - t0)
            fitted = re.search(r"fitted \d+ voxels in ([0-9.]+) s \(CPU ([0-9.]+) s", result.stderr)
            logged["kernel"].append(float(fitted.group(1)))
            logged["kernel_cpu"].append(float(fitted.group(2)))
            logged["read"].append(float(re.search(r"\d+ x \d+ x \d+ voxels in ([0-9.]+) s", result.stderr).group(1)))
            logged["write"].append(float(re.search(r"wrote the maps in ([0-9.]+) s", result.stderr).group(1)))
            t0, c0 = time.perf_counter(), time.process_time()
            peer_peak, _, _ = numpy_fit(ENERGY, stack)
            peer.append(time.perf_counter() - t0)
            peer_cpu.append(time.process_time() - c0)
        ours_peak = xs.read_result(Path(tmp) / "o.h5")["peak_energy"].ravel()
        floors = read_floor(tmp, stack.size)
    # The maps are float32 (9.8e-4 eV apart at 8.3 keV): reloc's value must be numpy's rounded to float32, within
    # one float32 step where the double results straddle a rounding boundary.
    agree = np.nanmax(np.abs(ours_peak - peer_peak.ravel()))
    step = np.spacing(np.float32(ENERGY.max()))
    assert np.array_equal(np.isnan(ours_peak), np.isnan(peer_peak.ravel()))
    assert np.nanmax(np.abs(ours_peak - peer_peak.ravel().astype(np.float32))) <= step, agree
    best = {k: min(v) for k, v in logged.items()}
    print(f"xanes white-line fit, {SIDE}x{SIDE} pixels x {len(ENERGY)} energies, order 2 over 20 energies, "
          f"{os.cpu_count()} cores, best of {RUNS}, alternating; load average {os.getloadavg()[0]:.1f}")
    print(f"  max |reloc - numpy| = {agree:.1e} eV (reloc's maps are float32; their step here is {step:.1e} eV)")
    print(f"  reloc kernel (all cores)          : {best['kernel']:7.3f} s wall, {best['kernel_cpu']:.3f} s CPU")
    print(f"  reloc HDF5 read / maps write      : {best['read']:7.3f} s / {best['write']:.3f} s")
    print(f"  reloc-xanes whole run (with PNGs) : {best['wall']:7.3f} s")
    print(f"  numpy pseudo-inverse (lean)       : {min(peer):7.3f} s wall, {min(peer_cpu):.3f} s CPU")
    print(f"  ratio numpy / reloc kernel        : {min(peer) / best['kernel']:7.1f}x wall, "
          f"{min(peer_cpu) / best['kernel_cpu']:.1f}x CPU   (goal >= 5x, <= 0.1 s)")
    for threads, f in floors.items():
        print(f"  floor: one read of the stack, {threads} thread(s): {f['wall_ms'] / 1e3:7.3f} s wall, "
              f"{f['cpu_ms'] / 1e3:.3f} s CPU ({f['gb_s']:.1f} GB/s)")
    all_cores = floors[max(floors)]
    print(f"  reloc kernel / floor              : {best['kernel'] / (all_cores['wall_ms'] / 1e3):7.1f}x wall, "
          f"{best['kernel_cpu'] / (all_cores['cpu_ms'] / 1e3):.1f}x CPU")
    print(f"  I/O (read + write) / kernel       : {(best['read'] + best['write']) / best['kernel']:7.1f}x   "
          f"(goal <= 1)")


if __name__ == "__main__":
    main()
