"""Jitter alignment by iterative reprojection, 180 projections of 256 x 256 (sim/spectrotomo.py, jitter +-8 px, axis
3 px off centre; BENCH_TOMOALIGN_SIZE overrides the 256): reloc-tomoalign against the same method written with
numpy + scikit-image, in one run, on equal cores.

The peer does per iteration what reloc does: shift the projections back (scipy.ndimage.shift), reconstruct every
slice with iradon_sart (the OS-SART passes' counterpart: `PASSES` SART passes), reproject with radon, and register
each projection to its reprojection with phase_cross_correlation (upsample 100). It is a lean peer: the work is
spread over a multiprocessing pool of as many processes as reloc has threads (slices for iradon_sart/radon,
projections for the shifts and the registrations), and no Python loop runs over pixels. A peer iteration over all
256 slices takes minutes, so its reconstruction and reprojection are timed on SLICES slices (BENCH_TOMOALIGN_SLICES)
and scaled to all of them (the shifts and registrations are timed in full; they register against reprojections
that hold only those slices, which costs the same); the output says so. Its time to convergence is its time per
iteration times reloc's iteration count.

Both are measured on 2 cores (reloc --threads 2, a pool of 2) and on 1 core (reloc --threads 1, the peer in one
process), alternating reloc and peer within the run; wall time and CPU time (reloc: the whole process, file I/O
included; the peer: its workers' and its own) are printed, with the load average before and after: the machine
may be shared. reloc's seconds to convergence are its own log's (alignment only, file I/O excluded). Residual
jitter against the ground truth is printed for reloc."""
import multiprocessing
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation
from skimage.transform import iradon_sart, radon

TOP = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("RELOC_BIN", TOP / "bin"))
sys.path.insert(0, str(TOP / "sim"))
import spectrotomo  # noqa: E402

SIZE = int(os.environ.get("BENCH_TOMOALIGN_SIZE", 256))   # detector side; smaller for a quick look
SLICES = int(os.environ.get("BENCH_TOMOALIGN_SLICES", 8))
ANGLES, PASSES = 180, 3

# radon() warns about every reconstruction that is not exactly zero outside the circle (iradon_sart's are not)
warnings.filterwarnings("ignore", message="Radon transform: image must be zero outside")
# The peer's workers read the series from here (inherited by fork), so only shifts and results cross processes.
PROJ = ANGLES_DEG = None


def peer_shift(args):
    t0 = time.process_time()
    a, x, y = args
    return ndimage.shift(PROJ[a], (-y, -x), order=3), time.process_time() - t0


def peer_slice(sino):
    """iradon_sart passes and radon of one slice's sinogram (detector x angle)."""
    t0 = time.process_time()
    rec = None
    for _ in range(PASSES):
        rec = iradon_sart(sino, theta=ANGLES_DEG, image=rec)
    return radon(rec, ANGLES_DEG, circle=True), time.process_time() - t0


def peer_register(args):
    t0 = time.process_time()
    reference, a = args
    return phase_cross_correlation(reference, PROJ[a], upsample_factor=100)[0], time.process_time() - t0


def peer_iteration(pool, sx, sy):
    """One iteration of the numpy + skimage version on the pool's processes (None: in this process); returns
    (wall seconds, CPU seconds), the reconstruction's part scaled from SLICES slices to all."""
    def timed(fn, items):
        w0, c0 = time.perf_counter(), time.process_time()
        out = list(pool.imap(fn, items) if pool else map(fn, items))
        cpu = time.process_time() - c0 + (sum(c for _, c in out) if pool else 0)
        return [r for r, _ in out], time.perf_counter() - w0, cpu

    shifted, w_shift, c_shift = timed(peer_shift, [(a, sx[a], sy[a]) for a in range(ANGLES)])
    shifted = np.stack(shifted)
    rows = np.linspace(0, SIZE - 1, SLICES).astype(int)
    reproj, w_rec, c_rec = timed(peer_slice, [shifted[:, z, :].T for z in rows])
    frames = np.zeros_like(PROJ)
    for z, r in zip(rows, reproj):
        frames[:, z, :] = r.T
    _, w_reg, c_reg = timed(peer_register, [(frames[a], a) for a in range(ANGLES)])
    scale = SIZE / SLICES
    return w_shift + w_rec * scale + w_reg, c_shift + c_rec * scale + c_reg


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_reloc(series, out, threads):
    """(iterations, seconds to convergence from the log, wall s, CPU s of the process)."""
    c0, w0 = children_cpu(), time.perf_counter()
    result = subprocess.run([str(BIN / "reloc-tomoalign"), str(series), "-o", str(out), "--passes", str(PASSES),
                             "--threads", str(threads)], capture_output=True, text=True, timeout=3600)
    wall, cpu = time.perf_counter() - w0, children_cpu() - c0
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    m = re.search(r"after (\d+) iterations .* in ([0-9.]+) s", result.stdout)
    return int(m.group(1)), float(m.group(2)), wall, cpu


def load():
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main():
    global PROJ, ANGLES_DEG
    print(f"tomoalign, {ANGLES} projections of {SIZE}x{SIZE}, jitter +-8 px, axis +3 px, {PASSES} passes per "
          f"reconstruction; {os.cpu_count()} cores, load average {load()} at the start")
    with tempfile.TemporaryDirectory() as tmp:
        series, out = Path(tmp) / "s.h5", Path(tmp) / "a.h5"
        spectrotomo.simulate(series, size=SIZE, n_angles=ANGLES, energies=[8350.0], jitter=8.0, axis_offset=3.0)
        with h5py.File(series, "r") as f:
            PROJ, ANGLES_DEG = f["projections"][0], f["angles"][()]
            truth_x, truth_y = f["truth/shift_x"][0] + 3.0, f["truth/shift_y"][0]
        com = np.array([ndimage.center_of_mass(np.clip(p, 0, None)) for p in PROJ])
        sx, sy = com[:, 1] - SIZE // 2, com[:, 0] - SIZE // 2
        pool = multiprocessing.get_context("fork").Pool(2)
        runs = {}
        # alternating: reloc, peer, reloc, peer, ... on 2 cores, then on 1
        for cores in (2, 2, 1):
            runs.setdefault(("reloc", cores), []).append(run_reloc(series, out, cores))
            runs.setdefault(("peer", cores), []).append(peer_iteration(pool if cores == 2 else None, sx, sy))
        pool.close()
        pool.join()
        with h5py.File(out, "r") as g:
            dx, dy, ok = truth_x - g["shift_x"][0], truth_y - g["shift_y"][0], g["outlier"][0] == 0
    theta = np.deg2rad(ANGLES_DEG)
    basis = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    dx -= basis @ np.linalg.lstsq(basis[ok], dx[ok], rcond=None)[0]
    dy -= dy[ok].mean()
    print(f"  reloc residual jitter RMS x {np.sqrt((dx[ok] ** 2).mean()):.3f} px, y {np.sqrt((dy[ok] ** 2).mean()):.3f}"
          f" px, {np.count_nonzero(~ok)} flagged (goal <= 0.2 px)")
    print(f"  peer: reconstruction and reprojection timed on {SLICES} slices, scaled to {SIZE}; its iterations to "
          f"convergence taken as reloc's")
    for cores in (2, 1):
        reloc = min(runs[("reloc", cores)], key=lambda r: r[1])
        peer_wall, peer_cpu = min(runs[("peer", cores)])
        iterations, seconds, wall, cpu = reloc
        per_it, cpu_it = seconds / iterations, cpu / iterations
        print(f"  {cores} core(s), best of {len(runs[('reloc', cores)])}: reloc {iterations} iterations to "
              f"convergence in {seconds:.1f} s ({per_it:.2f} s per iteration; whole run {wall:.1f} s wall, "
              f"{cpu:.1f} s CPU)")
        print(f"      numpy + skimage ({'pool of 2 processes' if cores == 2 else 'one process'}): {peer_wall:.1f} s "
              f"per iteration wall, {peer_cpu:.1f} s CPU; to convergence {peer_wall * iterations:.0f} s")
        print(f"      ratio per iteration and to convergence: {peer_wall / per_it:.1f}x wall, "
              f"{peer_cpu / cpu_it:.1f}x CPU (reloc's CPU includes file I/O)   (goal >= 20x)")
    print(f"  load average at the end {load()}")


if __name__ == "__main__":
    main()
