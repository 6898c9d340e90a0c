"""Demo: a simulated two-energy spectro-tomography series (sim/spectrotomo.py: NMC-like particle, 96 x 96 detector,
90 projections, jitter +-6 px, axis 2 px off centre) aligned by reloc-tomoalign; writes tomoalign_summary.png into
argv[1]: shift traces per energy against the ground truth, the residual per projection with outliers marked, and
the middle slice reconstructed (filtered back-projection, scikit-image) before and after alignment."""
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import matplotlib
import numpy as np
from skimage.transform import iradon

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "sim"))
import spectrotomo  # noqa: E402


def main(out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        series, aligned = Path(tmp) / "s.h5", Path(tmp) / "a.h5"
        spectrotomo.simulate(series, size=96, n_angles=90, energies=[8300.0, 8400.0], jitter=6.0, axis_offset=2.0)
        result = subprocess.run([str(TOP / "bin" / "reloc-tomoalign"), str(series), "-o", str(aligned)],
                                capture_output=True, text=True, timeout=1800)
        print(result.stdout, end="")
        with h5py.File(series, "r") as f, h5py.File(aligned, "r") as g:
            angles, energies = f["angles"][()], f["energies"][()]
            truth_x = f["truth/shift_x"][()] + f["truth/axis_offset"][()][:, None]
            truth_y = f["truth/shift_y"][()]
            raw = f["projections"][()]
            found_x, found_y = g["shift_x"][()], g["shift_y"][()]
            residual, outlier = g["residual"][()], g["outlier"][()].astype(bool)
            fixed = g["aligned"][()]
    theta = np.deg2rad(angles)
    basis = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    fig, ax = plt.subplots(2, 3, figsize=(15, 9))
    for e, energy in enumerate(energies):
        # Only differences up to a cos + b sin (x) and a constant (y) are determined; show the truth in the same gauge.
        ok = ~outlier[e]
        gauge = basis @ np.linalg.lstsq(basis[ok], (truth_x[e] - found_x[e])[ok], rcond=None)[0]
        ax[0, 0].plot(angles, truth_x[e] - gauge, "-", lw=1, label=f"{energy:.0f} eV truth")
        ax[0, 0].plot(angles, found_x[e], ".", ms=4, label=f"{energy:.0f} eV found")
        ax[0, 1].plot(angles, truth_y[e] - (truth_y[e] - found_y[e])[ok].mean(), "-", lw=1,
                      label=f"{energy:.0f} eV truth")
        ax[0, 1].plot(angles, found_y[e], ".", ms=4, label=f"{energy:.0f} eV found")
        ax[0, 2].plot(angles, residual[e], ".-", ms=3, lw=0.5, label=f"{energy:.0f} eV")
        ax[0, 2].plot(angles[outlier[e]], residual[e][outlier[e]], "rx", ms=8)
    for a, title, unit in ((ax[0, 0], "horizontal shift (axis offset included)", "shift (px)"),
                           (ax[0, 1], "vertical shift", "shift (px)"),
                           (ax[0, 2], "residual per projection (x: outlier)", "|aligned - reprojection| / |reprojection|")):
        a.set_title(title)
        a.set_xlabel("angle (degrees)")
        a.set_ylabel(unit)
        a.legend(fontsize=7)
    z = raw.shape[2] // 2
    for col, (name, data) in enumerate((("before alignment", raw[0]), ("after alignment", fixed[0]))):
        sl = iradon(data[:, z, :].T, theta=angles, filter_name="ramp", circle=True)
        im = ax[1, col].imshow(sl, cmap="gray")
        ax[1, col].set_title(f"middle slice, {energies[0]:.0f} eV, {name}")
        ax[1, col].set_xlabel("x (px)")
        ax[1, col].set_ylabel("z (px)")
        fig.colorbar(im, ax=ax[1, col], label="attenuation per pixel")
    for e, energy in enumerate(energies):
        ok = ~outlier[e]
        if np.isnan(found_x[e]).all():
            continue
        err_x = truth_x[e] - found_x[e]
        err_x -= basis @ np.linalg.lstsq(basis[ok], err_x[ok], rcond=None)[0]
        ax[1, 2].plot(angles[ok], err_x[ok], ".", ms=4, label=f"{energy:.0f} eV x")
        ax[1, 2].plot(angles[ok], (truth_y[e] - found_y[e] - (truth_y[e] - found_y[e])[ok].mean())[ok], ".", ms=4,
                      label=f"{energy:.0f} eV y")
    ax[1, 2].set_title("residual jitter against the truth")
    ax[1, 2].set_xlabel("angle (degrees)")
    ax[1, 2].set_ylabel("error (px)")
    ax[1, 2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "tomoalign_summary.png", dpi=90)
    print(f"wrote {out_dir / 'tomoalign_summary.png'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo/out")
