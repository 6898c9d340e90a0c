"""Fiducial fits as an operator makes them: the transform from 2, 3 or N pairs matches an independent
least-squares fit (scikit-image's Umeyama similarity, numpy's lstsq), residuals and RMS are right, outliers among 5+
pairs are rejected, and pixel -> stage -> pixel round trips are exact."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from skimage.transform import estimate_transform

BIN = Path(os.environ.get("RELOC_BIN", Path(__file__).resolve().parents[2] / "bin"))


def fit(tmp_path, src, dst, *options):
    path = tmp_path / "pairs.csv"
    rows = ["src_x,src_y,dst_x,dst_y"] + [",".join(f"{v:.12g}" for v in (*s, *d)) for s, d in zip(src, dst)]
    path.write_text("\n".join(rows) + "\n")
    result = subprocess.run([str(BIN / "reloc-fit"), str(path), *options], capture_output=True, text=True, timeout=60)
    return result


def ok(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def matrix(out):
    m = np.eye(3)
    m[:2, :2] = out["matrix"]
    m[:2, 2] = out["translation"]
    return m


def similarity(scale, angle_deg, tx, ty):
    a = np.radians(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty], [0, 0, 1]])


def apply(m, pts):
    return pts @ m[:2, :2].T + m[:2, 2]


def test_two_pairs_give_the_exact_similarity(tmp_path):
    truth = similarity(0.25, 3.0, 412.5, -180.0)           # SEM pixels -> stage um
    src = np.array([[100.0, 200.0], [1800.0, 1500.0]])
    out = ok(fit(tmp_path, src, apply(truth, src)))
    np.testing.assert_allclose(matrix(out), truth, atol=1e-9)
    assert out["rotation_deg"] == pytest.approx(3.0) and out["scale_x"] == pytest.approx(0.25)
    assert out["rms"] < 1e-9


@pytest.mark.parametrize("kind", ["similarity", "affine"])
def test_noisy_fit_agrees_with_scikit_image(tmp_path, kind):
    rng = np.random.default_rng(1)
    truth = similarity(0.5, -7.0, 150.0, 90.0)
    if kind == "affine":
        truth[:2, :2] = truth[:2, :2] @ np.array([[1.02, 0.03], [0.0, 0.97]])
    src = rng.uniform(0, 2048, size=(12, 2))
    dst = apply(truth, src) + rng.normal(0, 0.2, size=(12, 2))
    out = ok(fit(tmp_path, src, dst, f"--{kind}"))
    if kind == "similarity":        # Umeyama's least-squares similarity
        reference = estimate_transform(kind, src, dst).params
    else:                           # ordinary least squares (skimage's affine is a total-least-squares DLT)
        design = np.hstack([src, np.ones((len(src), 1))])
        solution, *_ = np.linalg.lstsq(design, dst, rcond=None)
        reference = np.vstack([solution.T, [0, 0, 1]])
    np.testing.assert_allclose(matrix(out), reference, rtol=1e-7, atol=1e-7)
    residuals = np.hypot(*(apply(reference, src) - dst).T)
    np.testing.assert_allclose(out["residuals"], residuals, rtol=1e-6, atol=1e-9)
    assert out["rms"] == pytest.approx(np.sqrt(np.mean(residuals ** 2)), rel=1e-6)


def test_outliers_among_many_pairs_are_rejected(tmp_path):
    rng = np.random.default_rng(2)
    truth = similarity(0.1, 12.0, -300.0, 40.0)
    src = rng.uniform(0, 1000, size=(9, 2))
    dst = apply(truth, src) + rng.normal(0, 0.05, size=(9, 2))
    dst[[2, 6]] += [[25.0, -10.0], [-8.0, 30.0]]                  # two mis-clicked fiducials
    plain = ok(fit(tmp_path, src, dst))
    robust = ok(fit(tmp_path, src, dst, "--robust"))
    assert robust["outliers"] == [2, 6] and robust["inliers"] == 7
    assert robust["rms"] < 0.2 < plain["rms"]
    np.testing.assert_allclose(matrix(robust), truth, atol=0.01 * np.abs(truth).max())
    assert robust["residuals"][2] > 20 and robust["residuals"][6] > 20   # reported, not hidden


def test_round_trip_pixel_stage_pixel(tmp_path):
    rng = np.random.default_rng(3)
    truth = similarity(0.37, 33.0, 10.0, -20.0)
    truth[:2, :2] = truth[:2, :2] @ np.diag([1.0, -1.0])            # a mirrored image (flipped y)
    src = rng.uniform(0, 500, size=(6, 2))
    out = ok(fit(tmp_path, src, apply(truth, src), "--affine"))
    m = matrix(out)
    assert out["mirrored"] is True
    pixels = rng.uniform(0, 500, size=(50, 2))
    back = apply(np.linalg.inv(m), apply(m, pixels))
    np.testing.assert_allclose(back, pixels, atol=1e-9)


@pytest.mark.parametrize("pairs, options, words", [
    ([[0, 0, 1, 1]], [], "at least 2"),
    ([[0, 0, 1, 1], [1, 1, 2, 2]], ["--affine"], "at least 3"),
    ([[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2]], ["--affine"], "collinear"),
    ([[5, 5, 0, 0], [5, 5, 1, 1]], [], "coincident"),
])
def test_degenerate_input_is_refused(tmp_path, pairs, options, words):
    pairs = np.array(pairs, dtype=float)
    result = fit(tmp_path, pairs[:, :2], pairs[:, 2:], *options)
    assert result.returncode == 1 and words in result.stderr, result.stderr
