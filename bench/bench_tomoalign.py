"""Jitter alignment by iterative reprojection, 180 projections of 256 x 256 (sim/spectrotomo.py, jitter +-8 px, axis
3 px off centre; BENCH_TOMOALIGN_SIZE overrides the 256): reloc-tomoalign against the same method written with numpy + scikit-image, in one run.

The peer does per iteration what reloc does: shift the projections back (scipy.ndimage.shift), reconstruct every
slice with iradon_sart (the OS-SART passes' counterpart: `PASSES` SART passes), reproject with radon, and register
each projection to its reprojection with phase_cross_correlation (upsample 100); it starts from the same
centre-of-mass estimate. One peer iteration over all 256 slices takes minutes, so the peer's reconstruction and
reprojection are timed on SLICES slices and scaled to 256 (the registrations are timed in full); the line says so.
reloc's times are its own (the tool's log), whole volume, all cores. Residual jitter against the ground truth is
printed for reloc."""
import os
import re
import subprocess
import sys
import tempfile
import time
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
ANGLES, PASSES, SLICES = 180, 3, 8


def peer_iteration(proj, angles, sx, sy):
    """One iteration of the numpy + skimage version; returns (seconds scaled to all slices, new shifts)."""
    t0 = time.perf_counter()
    shifted = np.stack([ndimage.shift(p, (-y, -x), order=3) for p, x, y in zip(proj, sx, sy)])
    t_shift = time.perf_counter() - t0
    rows = np.linspace(0, SIZE - 1, SLICES).astype(int)
    reproj = np.zeros_like(proj)
    t0 = time.perf_counter()
    for z in rows:
        sino = shifted[:, z, :].T
        rec = None
        for _ in range(PASSES):
            rec = iradon_sart(sino, theta=angles, image=rec)
        reproj[:, z, :] = radon(rec, angles, circle=True).T
    t_slices = (time.perf_counter() - t0) * SIZE / SLICES
    t0 = time.perf_counter()
    new = [phase_cross_correlation(r, p, upsample_factor=100)[0] for r, p in zip(reproj, proj)]
    t_reg = time.perf_counter() - t0
    return t_shift + t_slices + t_reg, -np.array(new)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        series = Path(tmp) / "s.h5"
        spectrotomo.simulate(series, size=SIZE, n_angles=ANGLES, energies=[8350.0], jitter=8.0, axis_offset=3.0)
        t0 = time.perf_counter()
        result = subprocess.run([str(BIN / "reloc-tomoalign"), str(series), "-o", str(Path(tmp) / "a.h5"),
                                 "--passes", str(PASSES)], capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - t0
        assert result.returncode == 0, result.stdout + result.stderr[-2000:]
        m = re.search(r"after (\d+) iterations .* in ([0-9.]+) s", result.stdout)
        iterations, seconds = int(m.group(1)), float(m.group(2))
        with h5py.File(series, "r") as f, h5py.File(Path(tmp) / "a.h5", "r") as g:
            proj, angles = f["projections"][0], f["angles"][()]
            theta = np.deg2rad(angles)
            dx = f["truth/shift_x"][0] + 3.0 - g["shift_x"][0]
            dy = f["truth/shift_y"][0] - g["shift_y"][0]
            ok = g["outlier"][0] == 0
        basis = np.stack([np.cos(theta), np.sin(theta)], axis=1)
        dx -= basis @ np.linalg.lstsq(basis[ok], dx[ok], rcond=None)[0]
        dy -= dy[ok].mean()
    com = np.array([ndimage.center_of_mass(np.clip(p, 0, None)) for p in proj])
    peer_seconds, _ = peer_iteration(proj, angles, com[:, 1] - SIZE // 2, com[:, 0] - SIZE // 2)
    per_iteration = seconds / iterations
    print(f"tomoalign, {ANGLES} projections of {SIZE}x{SIZE}, jitter +-8 px, axis +3 px, {PASSES} passes per "
          f"reconstruction, {os.cpu_count()} cores")
    print(f"  reloc: {iterations} iterations to convergence in {seconds:.1f} s ({per_iteration:.2f} s per iteration, "
          f"whole run {wall:.1f} s); residual jitter RMS x {np.sqrt((dx[ok] ** 2).mean()):.3f} px, "
          f"y {np.sqrt((dy[ok] ** 2).mean()):.3f} px, {np.count_nonzero(~ok)} flagged")
    print(f"  numpy + skimage: {peer_seconds:.1f} s per iteration (reconstruction and reprojection timed on "
          f"{SLICES} slices, scaled to {SIZE})")
    print(f"  to convergence ({iterations} iterations for both; the peer's iteration count taken as reloc's): "
          f"reloc {seconds:.1f} s, numpy + skimage {peer_seconds * iterations:.0f} s")
    print(f"  ratio per iteration: {peer_seconds / per_iteration:.1f}x   (goal >= 20x)")


if __name__ == "__main__":
    main()
