"""reloc-register finds translations to 1/20 pixel, rotation to 0.1 degree and scale to 0.2 % on scenes moved by
known amounts, agrees with scikit-image's phase_cross_correlation on the same inputs, reports stage units, handles
partial coverage and different pixel sizes, and flags unrelated images instead of reporting them as matches."""
import json

import numpy as np
import pytest

from registration_scenes import (SKIMAGE_EQUIVALENT, crop, fourier_shift, noisy, register, sem_scene, similarity,
                                 skimage_shift, texture, write_tiff)

N = 256
MARGIN = 32
SHIFTS = [(0.25, -0.5), (3.37, -7.81), (-12.3, 20.62), (0.0, 0.0), (17.5, 6.04)]


def scene_pair(kind, tx, ty, seed, noise):
    big = texture(N, seed, margin=MARGIN) if kind == "texture" else sem_scene(N, seed, margin=MARGIN)
    ref = noisy(crop(big, N, MARGIN), noise, seed + 1)
    moving = noisy(crop(fourier_shift(big, tx, ty), N, MARGIN), noise, seed + 2)
    return ref, moving


@pytest.mark.parametrize("kind,noise", [("texture", 0.02), ("sem", 0.01)])
def test_translation_within_a_twentieth_pixel_and_agrees_with_skimage(tmp_path, kind, noise):
    for i, (tx, ty) in enumerate(SHIFTS):
        ref, moving = scene_pair(kind, tx, ty, 10 + i, noise)
        paths = write_tiff(tmp_path / "ref.tif", ref), write_tiff(tmp_path / "mov.tif", moving)
        r = register(*paths, "--upsample", 100)
        assert r["confident"], r
        assert abs(r["shift_x"] - tx) <= 0.05 and abs(r["shift_y"] - ty) <= 0.05, (tx, ty, r)
        # Configured as plain phase correlation, reloc computes what scikit-image computes on the same input.
        plain = register(*paths, "--upsample", 100, *SKIMAGE_EQUIVALENT)
        sk_x, sk_y = skimage_shift(ref, moving)
        assert abs(plain["shift_x"] - sk_x) <= 0.015 and abs(plain["shift_y"] - sk_y) <= 0.015, (plain, sk_x, sk_y)


def test_integer_sem_frames_and_stage_units(tmp_path):
    ref, moving = scene_pair("sem", 4.2, -1.7, 3, 0.005)
    r = register(write_tiff(tmp_path / "ref.tif", ref * 4000, np.uint16),
                 write_tiff(tmp_path / "mov.tif", moving * 4000, np.uint16), "--pixel-size", 0.25)
    assert abs(r["shift_x"] - 4.2) <= 0.05 and abs(r["shift_y"] + 1.7) <= 0.05
    assert r["shift_x_um"] == pytest.approx(0.25 * r["shift_x"])
    assert r["shift_y_um"] == pytest.approx(0.25 * r["shift_y"])
    # The pixel size stored in the TIFF is used when none is given.
    r = register(write_tiff(tmp_path / "ref2.tif", ref, pixel_size_um=0.5),
                 write_tiff(tmp_path / "mov2.tif", moving, pixel_size_um=0.5))
    assert r["shift_x_um"] == pytest.approx(0.5 * r["shift_x"], rel=1e-4)


def test_unrelated_images_and_noise_are_flagged(tmp_path):
    cases = [(texture(N, 1), texture(N, 2)), (sem_scene(N, 3), sem_scene(N, 4)),
             (noisy(np.zeros((N, N)), 1, 5), noisy(np.zeros((N, N)), 1, 6)),
             (texture(N, 7), noisy(np.zeros((N, N)), 1, 8))]
    for a, b in cases:
        r = register(write_tiff(tmp_path / "a.tif", a), write_tiff(tmp_path / "b.tif", b))
        assert not r["confident"], r
        assert r["psr"] < r["min_psr"] or r["correlation"] < r["min_correlation"]
    # while the same scenes registered against themselves moved are confident
    r = register(write_tiff(tmp_path / "a.tif", cases[1][0]),
                 write_tiff(tmp_path / "b.tif", fourier_shift(cases[1][0], 2.5, 1)))
    assert r["confident"] and r["correlation"] > 0.9


@pytest.mark.parametrize("kind,angle,scale,tx,ty", [("texture", 12.0, 1.0, 2.3, -1.6),
                                                     ("texture", -35.5, 1.12, -4.0, 3.5),
                                                     ("texture", 100.0, 0.85, 1.5, 0.5),
                                                     ("sem", 23.0, 1.15, 14.2, -9.6),
                                                     ("sem", -170.0, 0.93, -6.5, 3.3)])
def test_similarity_rotation_and_scale(tmp_path, kind, angle, scale, tx, ty):
    n, margin = 384, 96
    big = texture(n, 21, sigma=2.5, margin=margin) if kind == "texture" else sem_scene(n, 22, margin=margin)
    noise = 0.01 if kind == "texture" else 0.02
    ref = noisy(crop(big, n, margin), noise, 1)
    moving = noisy(crop(similarity(big, angle, scale, tx, ty), n, margin), noise, 2)
    r = register(write_tiff(tmp_path / "ref.tif", ref), write_tiff(tmp_path / "mov.tif", moving), "--similarity",
                 "--iterations", 4)
    assert r["confident"], r
    assert abs(r["angle_deg"] - angle) <= 0.1, r
    assert abs(r["scale"] / scale - 1) <= 0.002, r
    assert abs(r["shift_x"] - tx) <= 0.1 and abs(r["shift_y"] - ty) <= 0.1, r


def test_scale_beyond_two_through_known_pixel_sizes(tmp_path):
    """An SEM image at 0.1 um pixels against a camera frame at 0.4 um pixels (4x coarser): the fine image is
    first area-averaged to the coarse pixel size, then registered."""
    n, k, tx, ty = 512, 4, 10.0, -6.0
    big = sem_scene(n, 31, margin=32)
    ref = crop(big, n, 32)
    moved = crop(fourier_shift(big, tx, ty), n, 32)
    moving = moved.reshape(n // k, k, n // k, k).mean(axis=(1, 3))   # exact area averaging to 0.4 um
    r = register(write_tiff(tmp_path / "sem.tif", ref, pixel_size_um=0.1),
                 write_tiff(tmp_path / "cam.tif", moving, pixel_size_um=0.4))
    assert r["confident"], r
    assert r["scale"] == pytest.approx(1 / k, rel=0.002)
    # Ground truth in the images' own pixels: camera pixel q covers SEM pixels [kq, kq + k), so a SEM point p
    # moved by t is at (p + t + 1/2) / k - 1/2 in camera pixels.
    c = (n - 1) / 2
    for axis, t in (("x", tx), ("y", ty)):
        expected = (c + t + 0.5) / k - 0.5 - ((c - r[f"center_{axis}"]) / k + r[f"center_{axis}"])
        assert abs(r[f"shift_{axis}"] - expected) <= 0.05, (axis, r)
    # The same pair without pixel sizes is out of range (scale 4) and must not be reported as a match.
    r = register(write_tiff(tmp_path / "sem0.tif", ref), write_tiff(tmp_path / "cam0.tif", moving))
    assert not r["confident"]


def test_moving_image_covering_part_of_the_reference(tmp_path):
    big = sem_scene(N, 41, margin=MARGIN)
    ref = crop(big, N, MARGIN)
    moved = crop(fourier_shift(big, 3.3, -2.2), N, MARGIN)
    x0, y0, w, h = 70, 40, 128, 96
    part = moved[y0:y0 + h, x0:x0 + w]
    r = register(write_tiff(tmp_path / "ref.tif", ref), write_tiff(tmp_path / "part.tif", part))
    assert r["confident"]
    assert abs(r["shift_x"] - (3.3 - x0)) <= 0.05 and abs(r["shift_y"] - (-2.2 - y0)) <= 0.05
    # the same region chosen by an ROI keeps the full image's coordinates
    mov_path = write_tiff(tmp_path / "mov.tif", moved)
    r = register(tmp_path / "ref.tif", mov_path, "--roi-moving", f"{x0},{y0},{w},{h}")
    assert abs(r["shift_x"] - 3.3) <= 0.05 and abs(r["shift_y"] + 2.2) <= 0.05
    # and an ROI of the reference works the same way
    r = register(tmp_path / "ref.tif", mov_path, "--roi-ref", f"{x0},{y0},{w},{h}")
    assert abs(r["shift_x"] - 3.3) <= 0.05 and abs(r["shift_y"] + 2.2) <= 0.05


def test_options_wisdom_and_timing(tmp_path):
    ref, moving = scene_pair("texture", 1.5, 2.25, 51, 0.01)
    a, b = write_tiff(tmp_path / "a.tif", ref), write_tiff(tmp_path / "b.tif", moving)
    wisdom = tmp_path / "fftw.wisdom"
    r1 = register(a, b, "--wisdom", wisdom, "--effort", "measure", "--threads", 2, "--repeat", 3)
    assert wisdom.stat().st_size > 0
    assert r1["timing"]["repeat"] == 3 and r1["timing"]["seconds_per_registration"] > 0
    r2 = register(a, b, "--wisdom", wisdom, "--effort", "measure")
    assert (r2["shift_x"], r2["shift_y"]) == pytest.approx((1.5, 2.25), abs=0.05)
    # a corrupt wisdom file is said in the log, plans are measured anew and the file rewritten: nothing fails
    wisdom.write_text("(fftw-3.3.10 fftwf_wisdom #x0 truncated")
    run = register(a, b, "--wisdom", wisdom, "--effort", "measure", check=False)
    assert run.returncode == 0 and "corrupt" in run.stderr, run.stderr
    r3 = json.loads(run.stdout)
    assert (r3["shift_x"], r3["shift_y"]) == (r2["shift_x"], r2["shift_y"])
    assert wisdom.read_text().startswith("(fftw") and "truncated" not in wisdom.read_text()
    for extra in (["--window", "tukey"], ["--whitening", "0.5"], ["--band-low", "0.01", "--band-high", "0.2"],
                  ["--upsample", "20"], ["--band-high", "0"]):
        r = register(a, b, *extra)
        assert abs(r["shift_x"] - 1.5) <= 0.06 and abs(r["shift_y"] - 2.25) <= 0.06, (extra, r)
    r = register(a, b, "--upsample", 1)
    assert (r["shift_x"], r["shift_y"]) in [(1, 2), (2, 2)]


def test_timing_says_how_much_of_a_registration_was_fft(tmp_path):
    """The bench compares the FFT part of a registration with the two-transform floor: it is a part of the live
    loop's CPU time, not zero, and only given where all the transforms are counted (not for similarity)."""
    ref, moving = scene_pair("texture", 9.5, -4.25, 52, 0.01)
    a, b = write_tiff(tmp_path / "a.tif", ref), write_tiff(tmp_path / "b.tif", moving)
    t = register(a, b, "--threads", 1, "--repeat", 4)["timing"]
    assert 0 < t["cpu_seconds_in_fft_per_registration"] <= t["cpu_seconds_per_registration"], t
    assert "cpu_seconds_in_fft_per_registration" not in register(a, b, "--similarity", "--repeat", 1)["timing"]


def test_bad_input_is_reported(tmp_path):
    good = write_tiff(tmp_path / "a.tif", texture(64, 1))
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all")
    r = register(good, tmp_path / "junk.tif", check=False)
    assert r.returncode == 1 and "reloc-register:" in r.stderr
    r = register(good, tmp_path / "missing.tif", check=False)
    assert r.returncode == 1 and r.stderr
    r = register(good, good, "--upsample", "0", check=False)
    assert r.returncode == 2 and "upsample" in r.stderr
    r = register(good, good, "--frobnicate", "3", check=False)
    assert r.returncode == 2 and "unknown" in r.stderr
    r = register(good, good, "--roi-moving", "60,60,30,30", check=False)
    assert r.returncode == 1 and "outside" in r.stderr
    r = register(good, "--similarity", check=False)     # one image only
    assert r.returncode == 2 and "usage" in r.stderr


def test_similarity_with_a_moving_image_covering_part_of_the_reference(tmp_path):
    n, margin, angle, scale, tx, ty = 384, 96, -14.0, 1.08, 5.5, -3.25
    big = sem_scene(n, 61, margin=margin)
    ref = crop(big, n, margin)
    moved = crop(similarity(big, angle, scale, tx, ty), n, margin)
    x0, y0, side = 70, 100, 256
    part = noisy(moved[y0:y0 + side, x0:x0 + side], 0.02, 3)
    r = register(write_tiff(tmp_path / "ref.tif", ref), write_tiff(tmp_path / "part.tif", part), "--similarity",
                 "--iterations", 4)
    assert r["confident"], r
    assert abs(r["angle_deg"] - angle) <= 0.1 and abs(r["scale"] / scale - 1) <= 0.002, r
    # part(q) = moved(q + origin), so the same transform about the same centre with t - origin
    assert (r["center_x"], r["center_y"]) == ((n - 1) / 2, (n - 1) / 2)
    assert abs(r["shift_x"] - (tx - x0)) <= 0.1 and abs(r["shift_y"] - (ty - y0)) <= 0.1, r
