"""Edge columns of the planar correction against an independent exact model: a uniform sample filling the map
(vacuum beyond it), whose exit rays are straight lines from the top edge of each pixel to where they leave the map
through the top or a side, rendered here in numpy with the exact clipped path length of every ray. The correction
must recover the unattenuated counts at the edges as well as inside."""
import json

import h5py
import numpy as np
import pytest

from conftest import BIN, CONFIGS, config_with, correct, perr, run

W, H = 64, 64
COMPOSITION = {"Zr": 0.55, "Hf": 0.45}
I0 = 1e6


def clipped_path_rows(slope, width, height):
    """(H, W): rows of Y crossed by the ray X = x + (Y - y) slope from Y = y + 0.5 until it leaves the map
    [-0.5, width - 0.5] x (.., height - 0.5]."""
    y, x = np.mgrid[0:height, 0:width].astype(float)
    end = np.full_like(x, height - 0.5)
    if slope < 0:
        end = np.minimum(end, y + (x + 0.5) / -slope)
    elif slope > 0:
        end = np.minimum(end, y + (width - 0.5 - x) / slope)
    return np.maximum(0.0, end - (y + 0.5))


def exact_uniform_counts(params, width, height):
    """Detected counts of a uniform sample, from the prepared coefficients reloc reports (xraylib CS_Total, cone)."""
    symbols = [e["symbol"] for e in params["elements"]]
    w = np.array([COMPOSITION[s] for s in symbols])
    density = 1.0 / np.sum(w / np.array([e["density"] for e in params["elements"]]))
    mu = np.array(params["derived"]["mu_mass_cm2_g"])[: len(symbols)]       # (absorber, energy)
    per_pixel = density * (w @ mu) * params["pixel_um"] * 1e-4                # optical depth per pixel length
    slopes = np.array(params["derived"]["theta_slope"])
    weights = np.array(params["derived"]["path_weight"])                      # (theta, phi)
    voxels = params["depth_voxels"]
    a = per_pixel[0] * params["thickness_um"] / voxels / params["pixel_um"]
    beam = np.mean(np.exp(-a * np.arange(voxels)))
    counts = {}
    for c, symbol in enumerate(symbols):
        exit_factor = np.zeros((height, width))
        for t, slope in enumerate(slopes):
            rows = clipped_path_rows(slope, width, height)
            for weight in weights[t]:
                exit_factor += np.exp(-per_pixel[1 + c] * weight * rows)
        exit_factor /= weights.size
        counts[symbol] = I0 * params["elements"][c]["sensitivity"] * w[c] * beam * exit_factor
    return counts


@pytest.mark.parametrize("detector", [None, {"half_angle_x_deg": 14, "half_angle_z_deg": 10, "tilt_xy_deg": 50}])
def test_edge_columns_match_exact_straight_rays(tmp_path, detector):
    cfg = CONFIGS["zrhf"] if detector is None else config_with("zrhf", tmp_path, "tilted.json", detector=detector)
    params = json.loads(run([BIN / "reloc-xrfcorr", "--config", cfg, "--coefficients"]).stdout)
    detected = exact_uniform_counts(params, W, H)
    with h5py.File(tmp_path / "uniform.h5", "w") as f:
        for symbol, m in detected.items():
            f[f"raw/{symbol}"] = m
        f["I0"] = np.full((H, W), I0)
    res = correct(cfg, tmp_path / "uniform.h5", tmp_path / "corrected.h5")
    for symbol, fraction in COMPOSITION.items():
        truth = np.full((H, W), I0 * fraction)
        raw = res["raw"][symbol]
        assert perr(raw[:, 0], truth[:, 0]) > 0.05 or symbol == "Hf", "the phantom must absorb"
        corrected = res["corrected"][symbol]
        for name, columns in {"left edge": corrected[:, :1], "right edge": corrected[:, -1:],
                              "two columns each side": np.hstack([corrected[:, :2], corrected[:, -2:]]),
                              "whole map": corrected}.items():
            error = perr(columns, truth[:, : columns.shape[1]])
            assert error <= 0.005, f"{symbol} {name}: PErr {error:.4f}"
        np.testing.assert_allclose(res["fractions"][symbol], fraction, atol=1e-6)
