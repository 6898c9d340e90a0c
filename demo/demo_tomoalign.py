"""Demo: a simulated spectro-tomography series (sim/spectrotomo.py: NMC-like particle, 96 x 96 detector, 90
projections, jitter +-6 px, axis 2 px off centre; 8300 and 8400 eV straddle the Ni K-edge, 10375 eV has 25 %
larger pixels, 8500 eV is only noise) aligned and registered across energies by reloc-tomoalign; writes
tomoalign_summary.png into argv[1]: shift traces per energy against the ground truth, the residual per projection
with outliers marked, the middle slice reconstructed (filtered back-projection, scikit-image) before and after
alignment, the residual jitter against the truth, the cross-energy shifts per angle (single matches and the fitted
3D translation), the per-energy quality figures with the failed energy marked, and one registered projection of
the 25 % energy against the reference."""
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


ENERGIES = [8300.0, 8400.0, 10375.0, 8500.0]


def main(out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        series, aligned = Path(tmp) / "s.h5", Path(tmp) / "a.h5"
        spectrotomo.simulate(series, size=96, n_angles=90, energies=ENERGIES, jitter=6.0, axis_offset=2.0,
                             noise_energy=len(ENERGIES) - 1)
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
            registered, ref = g["registered"][()], int(g["reference_energy"][0])
            match_x, match_y = g["energy_match_x"][()], g["energy_match_y"][()]
            model_x, model_y = g["energy_shift_x"][()], g["energy_shift_y"][()]
            quality = {k: g[k][()] for k in ("registration_error_nm", "registration_rms_px", "registration_failed")}
    theta = np.deg2rad(angles)
    basis = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    fig, ax = plt.subplots(3, 3, figsize=(15, 13))
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
    failed = quality["registration_failed"].astype(bool)
    for e, energy in enumerate(energies):
        if e == ref or failed[e]:
            continue
        for comp, (m, fit) in enumerate(((match_x, model_x), (match_y, model_y))):
            line = ax[2, 0].plot(angles, m[e], ".", ms=3, label=f"{energy:.0f} eV {'xy'[comp]} single matches")[0]
            ax[2, 0].plot(angles, fit[e], "-", color=line.get_color(), lw=1.5, label=f"{energy:.0f} eV {'xy'[comp]} fit")
    ax[2, 0].set_title(f"shift onto {energies[ref]:.0f} eV per angle (3D translation fit)")
    ax[2, 0].set_xlabel("angle (degrees)")
    ax[2, 0].set_ylabel("shift (reference px)")
    ax[2, 0].legend(fontsize=6)
    pos = np.arange(len(energies))
    err_nm = np.nan_to_num(quality["registration_error_nm"], nan=0.0)
    bars = ax[2, 1].bar(pos, err_nm, color=["tab:red" if f else "tab:blue" for f in failed])
    for b, f, rms in zip(bars, failed, quality["registration_rms_px"]):
        ax[2, 1].annotate("FAILED" if f else f"scatter {rms:.2f} px", (b.get_x() + b.get_width() / 2, b.get_height()),
                          ha="center", va="bottom", fontsize=7, color="tab:red" if f else "black")
    ax[2, 1].set_xticks(pos, [f"{e:.0f} eV" + (" (ref)" if i == ref else "") for i, e in enumerate(energies)])
    ax[2, 1].set_title("per-energy registration quality")
    ax[2, 1].set_xlabel("energy")
    ax[2, 1].set_ylabel("estimated error of the registration (nm)")
    a = len(angles) // 3
    diff = registered[2, a] / registered[2, a].max() - registered[ref, a] / registered[ref, a].max()
    im = ax[2, 2].imshow(diff, cmap="RdBu_r", vmin=-0.5, vmax=0.5)
    ax[2, 2].set_title(f"{energies[2]:.0f} eV registered minus {energies[ref]:.0f} eV\nangle {angles[a]:.0f} degrees")
    ax[2, 2].set_xlabel("x (reference px)")
    ax[2, 2].set_ylabel("y (reference px)")
    fig.colorbar(im, ax=ax[2, 2], label="difference of absorbance / its maximum")
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
