"""reloc-tomoalign registers the aligned series of every energy to a reference energy: across the Ni K-edge (grain
contrast changes), across a 25 % magnification change, and with a given pixel size that is off (the fitted
magnification is used and reported); judged against the ground truth of sim/spectrotomo.py. The edge-map matching
(default) is measured against plain phase correlation of the projections (--match intensity) on the same series."""
import subprocess
import sys

import h5py
import numpy as np
import pytest

import tomo_phantom as tp

sys.path.insert(0, str(tp.TOP / "sim"))
import spectrotomo  # noqa: E402

# 8300 / 8400 eV straddle the Ni K-edge (8333 eV); 10375 eV has 25 % larger pixels than 8300 eV; the pixel size of
# the last energy is written 5 % off in the file.
ENERGIES = [8300.0, 8400.0, 10375.0, 8350.0]
PIXEL_OFF = 1.05


def run_align(args):
    return subprocess.run([str(tp.BIN / "reloc-tomoalign")] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=900)


def registration_errors(series, out):
    """Per energy: (per-angle RMS, RMS of its 3D-translation part) of where the object's centre lies in /registered
    against where it lies in the reference energy's, in reference px, from the simulator's truth. The per-angle
    figure also holds the residual jitter of both series; the 3D-translation part is what the registration sets."""
    with h5py.File(series, "r") as f, h5py.File(out, "r") as g:
        theta = np.deg2rad(f["angles"][()])
        truth_x = f["truth/shift_x"][()] + f["truth/axis_offset"][()][:, None]
        truth_y = f["truth/shift_y"][()]
        sx, sy = g["shift_x"][()], g["shift_y"][()]
        ex, ey, m = g["energy_shift_x"][()], g["energy_shift_y"][()], g["magnification"][()]
        ref = int(g["reference_energy"][0])
    basis = np.stack([np.ones_like(theta), np.cos(theta), np.sin(theta)], axis=1)
    errors = []
    for e in range(len(m)):
        dx = (truth_x[e] - sx[e]) / m[e] - ex[e] - (truth_x[ref] - sx[ref])
        dy = (truth_y[e] - sy[e]) / m[e] - ey[e] - (truth_y[ref] - sy[ref])
        fx = basis @ np.linalg.lstsq(basis, dx, rcond=None)[0]
        errors.append((np.sqrt((dx ** 2 + dy ** 2).mean()), np.sqrt((fx ** 2).mean() + dy.mean() ** 2)))
    return errors


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    path = tmp_path_factory.mktemp("energies") / "s.h5"
    spectrotomo.simulate(path, size=64, n_angles=48, energies=ENERGIES, jitter=4.0, axis_offset=2.0, seed=11)
    with h5py.File(path, "r+") as f:
        truth_pixel = f["pixel_size"][()]
        f["pixel_size"][-1] = truth_pixel[-1] * PIXEL_OFF
    return path, truth_pixel


@pytest.mark.parametrize("match", ["edges", "intensity"])
def test_energies_registered_within_0_3_px_across_the_edge_and_magnification(tmp_path, series, match):
    path, truth_pixel = series
    result = run_align([path, "-o", tmp_path / "a.h5", "--match", match])
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "failed energies: none" in result.stdout
    errors = registration_errors(path, tmp_path / "a.h5")
    for e, (per_angle, translation) in enumerate(errors):
        print(f"{match}: energy {ENERGIES[e]:.0f} eV: per-angle {per_angle:.3f} px, 3D translation {translation:.3f} px")
    # Across the Ni K-edge (energy 1) and the 25 % magnification change (energy 2), and with the fitted magnification.
    for e in (1, 2, 3):
        assert errors[e][1] <= 0.3 and errors[e][0] <= 0.3, (e, errors[e])
    with h5py.File(tmp_path / "a.h5", "r") as g:
        truth_m = truth_pixel[0] / truth_pixel
        m, off = g["magnification"][()], g["pixel_size_off"][()]
        np.testing.assert_array_equal(off, [0, 0, 0, 1])
        assert np.abs(m / truth_m - 1).max() < 0.006, (m, truth_m)
        assert g["registration_failed"][()].sum() == 0
        assert (g["registration_error_nm"][1:] > 0).all() and (g["registration_error_px"][1:] < 0.2).all()
        # The registered series of energy 2 lies on the reference grid: the particle covers the same area with the
        # same centroid as in energy 0's (per projection, the pixels above 30 % of its maximum).
        reg = g["registered"][()]
    for frame0, frame2 in zip(reg[0], reg[2]):
        mask0, mask2 = frame0 > 0.3 * frame0.max(), frame2 > 0.3 * frame2.max()
        assert abs(mask2.sum() / mask0.sum() - 1) < 0.05
        c0, c2 = np.argwhere(mask0).mean(axis=0), np.argwhere(mask2).mean(axis=0)
        assert np.abs(c0 - c2).max() < 0.5, (c0, c2)
    assert "GIVEN PIXEL SIZE OFF" in result.stdout.splitlines()[-3]


def test_a_noise_energy_is_listed_as_failed_and_not_registered(tmp_path):
    spectrotomo.simulate(tmp_path / "s.h5", size=48, n_angles=36, energies=[8300.0, 8400.0, 8500.0], jitter=3.0,
                         axis_offset=1.0, seed=12, noise_energy=1)
    result = run_align([tmp_path / "s.h5", "-o", tmp_path / "a.h5"])
    assert result.returncode == 3, result.stdout + result.stderr[-2000:]
    assert "failed energies: 1\n" in result.stdout
    with h5py.File(tmp_path / "a.h5", "r") as g:
        np.testing.assert_array_equal(g["registration_failed"][()], [0, 1, 0])
        assert np.isnan(g["registered"][1]).all() and np.isfinite(g["registered"][2]).all()
        assert np.isnan(g["energy_shift_x"][1]).all()
    assert registration_errors(tmp_path / "s.h5", tmp_path / "a.h5")[2][1] <= 0.3


@pytest.mark.parametrize("args, status, message", [
    (["--match", "mutual"], 2, "bad value 'mutual' for --match"),
    (["--reference", "3"], 1, "--reference 3: "),
], ids=["match", "reference"])
def test_bad_registration_options_are_refused(tmp_path, args, status, message):
    spectrotomo.simulate(tmp_path / "s.h5", size=16, n_angles=12, energies=[8300.0, 8400.0], jitter=1.0, seed=13)
    result = run_align([tmp_path / "s.h5", "-o", tmp_path / "a.h5"] + args)
    assert result.returncode == status and message in result.stderr, result.stderr
    assert not (tmp_path / "a.h5").exists()
