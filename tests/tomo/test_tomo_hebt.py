"""reloc-tomo on the 2D Ag-Au core-shell phantom of Yuan et al. (core 80 wt% Au / 20 wt% Ag, shell 20/80, 31
tilts from -75 to 75 degrees, Poisson noise), simulated with scikit-image's radon, not our projector:
EDS-only and HEBT reconstructions quantify core and shell, HEBT with alpha above 0.5 beats EDS-only in the SSIM
structure term, the response ratios and the particle threshold come out right, and bad input is reported."""
import h5py
import numpy as np
import pytest

import tomo_phantom as tp

ITERATIONS = 50
# Composition tolerance (weight fraction, median over the core r < 15 px and the shell 28 < r < 36 px, away from
# the interfaces the reconstruction blurs): 0.05, i.e. 5 wt%.
TOLERANCE = 0.05


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hebt")
    series = tmp / "cs.h5"
    true_r = tp.series(series)
    out = {"series": series, "true_r": true_r, "tmp": tmp}
    for alpha in (0.0, 0.6, 0.8):
        args = [series] + tp.factor_args() + ["--iterations", ITERATIONS, "-o", tmp / f"a{alpha}.h5"]
        if alpha > 0:
            args += ["--haadf", "/haadf", "--alpha", alpha]
        result = tp.run_tomo(args)
        out[alpha] = tp.read(tmp / f"a{alpha}.h5")
        out[alpha]["stderr"] = result.stderr
        out[alpha]["stdout"] = result.stdout
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.6, 0.8])
def test_core_and_shell_compositions_recovered(runs, alpha):
    r = tp.radius()
    wt = runs[alpha]
    for el in tp.ELEMENTS:
        core = np.nanmedian(wt[f"wt/{el}"][r < 15])
        shell = np.nanmedian(wt[f"wt/{el}"][(r > 28) & (r < 36)])
        assert core == pytest.approx(tp.CORE[el], abs=TOLERANCE), (alpha, el, core)
        assert shell == pytest.approx(tp.SHELL[el], abs=TOLERANCE), (alpha, el, shell)
    inside = wt["mask"] == 1
    np.testing.assert_allclose((wt["wt/Au"] + wt["wt/Ag"])[inside], 1.0, atol=1e-5)
    assert np.isnan(wt["wt/Au"][~inside]).all()


def ssim_structure(x, ref):
    """Eq. 19-22 structure term over the whole image, written independently of reloc."""
    L = ref.max() - ref.min()
    c3 = (0.03 * L) ** 2 / 2
    sx, sr = x.std(ddof=1), ref.std(ddof=1)
    cov = ((x - x.mean()) * (ref - ref.mean())).sum() / (x.size - 1)
    return (cov + c3) / (sx * sr + c3)


def test_hebt_above_half_beats_eds_only_in_structure(runs):
    truth = tp.mass_maps()
    for el in tp.ELEMENTS:
        eds = ssim_structure(runs[0.0][f"rec/{el}"], truth[el])
        for alpha in (0.6, 0.8):
            hebt = ssim_structure(runs[alpha][f"rec/{el}"], truth[el])
            assert hebt > eds + 0.02, (el, alpha, hebt, eds)


def test_metrics_written_by_the_tool_match_their_definition(runs):
    truth = tp.mass_maps()
    for alpha in (0.0, 0.8):
        for el in tp.ELEMENTS:
            rec, m = runs[alpha][f"rec/{el}"].astype(float), runs[alpha][f"metrics/{el}"]
            assert m["ssim_structure"] == pytest.approx(ssim_structure(rec, truth[el]), abs=1e-5)
            scale = (rec * truth[el]).sum() / (rec * rec).sum()
            assert m["scale"] == pytest.approx(scale, rel=1e-5)
            assert m["mse_scaled"] == pytest.approx(((scale * rec - truth[el]) ** 2).mean(), rel=1e-4)


def test_response_ratios_fitted_from_the_sinograms(runs):
    hebt = runs[0.8]
    assert hebt["attrs"]["mode"] == "HEBT" and hebt["attrs"]["r_fit_r2"] > 0.95
    for el in tp.ELEMENTS:
        # Poisson noise in the EDS regressors biases least squares slightly low (errors in variables).
        assert hebt[f"r/{el}"] == pytest.approx(runs["true_r"][el], rel=0.1)
    with h5py.File(runs["series"], "r") as f:
        eds = np.stack([f[f"eds/{el}"][()].ravel() for el in tp.ELEMENTS], axis=1).astype(float)
        haadf = f["haadf"][()].ravel().astype(float)
    ref, *_ = np.linalg.lstsq(eds, haadf, rcond=None)
    np.testing.assert_allclose([hebt[f"r/{el}"] for el in tp.ELEMENTS], ref, rtol=1e-6)


def test_esf_threshold_finds_the_particle(runs):
    particle = tp.radius() <= tp.R_PARTICLE
    for alpha in (0.0, 0.8):
        mask = runs[alpha]["mask"] == 1
        iou = (mask & particle).sum() / (mask | particle).sum()
        assert iou > 0.85, (alpha, iou)
        assert runs[alpha]["attrs"]["threshold_method"] == "edge-spread function"


def test_progress_per_slice_and_iteration(runs):
    err = runs[0.6]["stderr"]
    assert f"slice 1/1 iteration {ITERATIONS // 10}/{ITERATIONS} residual" in err
    assert f"slice 1/1 iteration {ITERATIONS}/{ITERATIONS}" in err and "1/1 slices reconstructed" in err
    residuals = [float(line.split("residual ")[1].split()[0]) for line in err.splitlines() if "residual" in line]
    assert residuals[-1] < residuals[0]


def test_series_of_slices_in_parallel_and_given_threshold(runs):
    """A 3-slice tilt series in the (angles, slices, beams) layout: each slice is reconstructed like the single
    one, and a threshold given by hand selects exactly signal > threshold."""
    tmp = runs["tmp"]
    with h5py.File(runs["series"], "r") as f, h5py.File(tmp / "s3.h5", "w") as g:
        g["angles"] = f["angles"][()]
        for el in tp.ELEMENTS:
            g[f"eds/{el}"] = np.stack([f[f"eds/{el}"][()]] * 3, axis=1)
    args = [tmp / "s3.h5", "--element", "Au=/eds/Au", "--element", "Ag=/eds/Ag", "--factor", "Ag=1.6",
            "--iterations", 20, "--threshold", 0.3, "--threads", 2, "-o", tmp / "s3_out.h5"]
    result = tp.run_tomo(args)
    assert "3/3 slices reconstructed" in result.stderr
    one = tp.run_tomo([runs["series"], "--element", "Au=/eds/Au", "--element", "Ag=/eds/Ag", "--factor", "Ag=1.6",
                       "--iterations", 20, "--threshold", 0.3, "-o", tmp / "s1_out.h5"])
    assert one.returncode == 0
    with h5py.File(tmp / "s3_out.h5", "r") as f, h5py.File(tmp / "s1_out.h5", "r") as g:
        vol, single = f["reconstruction/Au"][()], g["reconstruction/Au"][()]
        assert vol.shape == (3, tp.N, tp.N)
        for z in range(3):
            np.testing.assert_array_equal(vol[z], single)
        np.testing.assert_array_equal(f["mask"][()], (f["signal"][()] > 0.3).astype(int))
        assert f.attrs["threshold_method"] == "given"


def test_projector_matches_skimage_radon(tmp_path):
    from skimage.data import shepp_logan_phantom
    from skimage.transform import radon, resize
    n = 127
    ph = resize(shepp_logan_phantom(), (n, n))
    ph[np.hypot(*(np.mgrid[:n, :n] - (n - 1) / 2)) > (n - 1) / 2 - 2] = 0   # inside skimage's circle
    for angles in (tp.ANGLES, np.arange(0.0, 180.0, 3.0)):
        with h5py.File(tmp_path / "ph.h5", "w") as f:
            f["img"] = ph.astype(np.float32)
            f["angles"] = angles
        tp.run_tomo([tmp_path / "ph.h5", "--project", "/img", "-o", tmp_path / "sino.h5"])
        ours = h5py.File(tmp_path / "sino.h5", "r")["sinogram"][()]
        ref = radon(ph, angles, circle=True).T        # skimage: (beams, angles); x right, y up, centre n // 2
        assert ours.shape == ref.shape
        assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < 0.01
        assert np.abs(ours - ref).max() < 0.03 * ref.max()


@pytest.mark.parametrize("args, message", [
    (["--element", "Au=/nope"], "no dataset '/nope'"),
    (["--element", "Au=/eds/Au", "--factor", "Cu=2"], "bad value 'Cu=2' for --factor"),
    (["--element", "Au=/eds/Au", "--haadf", "/haadf", "--alpha", "1.5"], "alpha must lie in [0, 1]"),
    (["--element", "Au=/eds/Au", "--angles", "/truth/Au"], "expected (angles="),
    (["--element", "Au=/eds/Au", "--iterations", "0"], "bad value '0' for --iterations"),
])
def test_bad_input_is_reported(runs, args, message):
    result = tp.run_tomo([runs["series"]] + args + ["-o", runs["tmp"] / "bad.h5"], check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Sanitizer" not in result.stderr


def test_non_finite_sinogram_is_reported(tmp_path):
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f["angles"] = tp.ANGLES
        s = np.ones((len(tp.ANGLES), 21), np.float32)
        s[3, 4] = np.nan
        f["eds/Au"] = s
    result = tp.run_tomo([tmp_path / "nan.h5", "--element", "Au=/eds/Au", "-o", tmp_path / "o.h5"], check=False)
    assert result.returncode == 1 and "non-finite" in result.stderr


def test_shifted_rotation_axis_and_pngs(runs, tmp_path):
    """A series whose rotation axis sits 3 pixels off the detector centre reconstructs like the centred one once
    --centre-offset says so; the PNGs of the maps are written."""
    with h5py.File(runs["series"], "r") as f, h5py.File(tmp_path / "shift.h5", "w") as g:
        g["angles"] = f["angles"][()]
        for el in tp.ELEMENTS:
            s = f[f"eds/{el}"][()]
            g[f"eds/{el}"] = np.pad(s, ((0, 0), (6, 0)))           # 6 beams added on the left: centre moves by 3
    common = ["--element", "Au=/eds/Au", "--element", "Ag=/eds/Ag", "--factor", "Ag=1.6", "--iterations", 20,
              "--threshold", 0.3, "--size", tp.N]
    tp.run_tomo([tmp_path / "shift.h5", "--centre-offset", -3] + common + ["-o", tmp_path / "shift_out.h5"])
    tp.run_tomo([runs["series"]] + common + ["-o", tmp_path / "plain_out.h5", "--png", tmp_path / "pic"])
    with h5py.File(tmp_path / "shift_out.h5", "r") as f, h5py.File(tmp_path / "plain_out.h5", "r") as g:
        a, b = f["reconstruction/Au"][()], g["reconstruction/Au"][()]
        inside = tp.radius() <= tp.R_PARTICLE     # outside, the extra empty beams pin the corners to zero
        assert np.linalg.norm((a - b)[inside]) < 0.02 * np.linalg.norm(b[inside])
    from PIL import Image
    for el in tp.ELEMENTS:
        for kind in ("rec", "wt"):
            assert Image.open(tmp_path / f"pic_{el}_{kind}.png").size == (tp.N, tp.N)


@pytest.mark.parametrize("angles", [np.arange(0.0, 180.0, 3.0), tp.ANGLES], ids=["60-over-180", "31-over-150"])
def test_sirt_converges_like_skimage_sart(tmp_path, angles):
    """Noise-free Shepp-Logan: reloc's SIRT error falls with the iterations, and 200 SIRT iterations come within
    1.35 times the error of 10 passes of scikit-image's iradon_sart (SART updates after every angle, so it needs
    fewer passes than SIRT needs iterations)."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import iradon_sart, radon, resize
    n = 101
    ph = resize(shepp_logan_phantom(), (n, n))
    ph[np.hypot(*(np.mgrid[:n, :n] - (n - 1) / 2)) > (n - 1) / 2 - 1] = 0
    sino = radon(ph, angles, circle=True)
    with h5py.File(tmp_path / "sl.h5", "w") as f:
        f["angles"] = angles
        f["s"] = sino.T.astype(np.float32)
    errors = []
    for iterations in (20, 200):
        tp.run_tomo([tmp_path / "sl.h5", "--element", "X=/s", "--iterations", iterations, "--threshold", 0,
                     "-o", tmp_path / "o.h5"])
        rec = h5py.File(tmp_path / "o.h5", "r")["reconstruction/X"][()]
        errors.append(np.sqrt(((rec - ph) ** 2).mean()))
    sart = None
    for _ in range(10):
        sart = iradon_sart(sino, theta=angles, image=sart)
    sart_error = np.sqrt(((sart - ph) ** 2).mean())
    assert errors[1] < 0.7 * errors[0]
    assert errors[1] < 1.35 * sart_error, (errors, sart_error)


def test_haadf_of_another_shape_is_reported(runs, tmp_path):
    with h5py.File(runs["series"], "r") as f, h5py.File(tmp_path / "odd.h5", "w") as g:
        g["angles"] = f["angles"][()]
        g["eds/Au"] = f["eds/Au"][()]
        g["haadf"] = f["haadf"][()][:, :-2]
    result = tp.run_tomo([tmp_path / "odd.h5", "--element", "Au=/eds/Au", "--haadf", "/haadf", "-o",
                          tmp_path / "o.h5"], check=False)
    assert result.returncode == 1 and "but the first sinogram has" in result.stderr


def shepp_logan(n):
    """scikit-image's Shepp-Logan phantom at n x n, zero outside the circle skimage's radon sees."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize
    ph = resize(shepp_logan_phantom(), (n, n))
    ph[np.hypot(*(np.mgrid[:n, :n] - n // 2)) > n // 2 - 1] = 0
    return ph


def reconstruct(tmp_path, sino, angles, *options):
    """reloc-tomo on one sinogram (skimage layout: beams x angles); returns the slice and the output file."""
    with h5py.File(tmp_path / "sl.h5", "w") as f:
        f["angles"] = angles
        f["s"] = sino.T.astype(np.float32)
    result = tp.run_tomo([tmp_path / "sl.h5", "--element", "X=/s", "--threshold", 0, "-o", tmp_path / "o.h5"]
                         + list(options))
    with h5py.File(tmp_path / "o.h5", "r") as f:
        return f["reconstruction/X"][()], {"passes": f["passes"][()], "residual": f["residual"][()],
                                           "converged": f["converged"][()], "stderr": result.stderr}


def rmse(a, b):
    return float(np.sqrt(((a - b) ** 2).mean()))


def test_even_sizes_reconstruct_as_well_as_odd(tmp_path):
    """The rotation axis sits on pixel n // 2 and bin n_det // 2 for even sizes too (scikit-image's convention):
    a 128 x 128 slice projected by skimage reconstructs with the error of a 127 x 127 one (it was 2.5x worse
    with the axis at (n - 1) / 2), and reloc's projector matches skimage's radon at n = 128."""
    from skimage.transform import radon
    angles = np.arange(0.0, 180.0, 3.0)
    errors = {}
    for n in (127, 128):
        ph = shepp_logan(n)
        sino = radon(ph, angles, circle=True)
        rec, _ = reconstruct(tmp_path, sino, angles, "--iterations", 30)
        errors[n] = rmse(rec, ph)
        with h5py.File(tmp_path / "ph.h5", "w") as f:
            f["img"] = ph.astype(np.float32)
            f["angles"] = angles
        tp.run_tomo([tmp_path / "ph.h5", "--project", "/img", "-o", tmp_path / "sino.h5"])
        ours = h5py.File(tmp_path / "sino.h5", "r")["sinogram"][()]
        assert np.linalg.norm(ours - sino.T) / np.linalg.norm(sino) < 0.01, n
    assert errors[128] < 1.1 * errors[127], errors


def test_ordered_subsets_reach_skimage_sart_error_in_fewer_passes(tmp_path):
    """Noise-free Shepp-Logan, 60 angles: OS-SART with one angle per subset (the update SART makes) beats
    scikit-image's iradon_sart pass for pass (after 3 and after 10 passes), where SIRT needs hundreds of
    iterations; non-negativity holds."""
    from skimage.transform import iradon_sart, radon
    n, angles = 101, np.arange(0.0, 180.0, 3.0)
    ph = shepp_logan(n)
    sino = radon(ph, angles, circle=True)
    sart, sart_errors = None, []
    for _ in range(10):
        sart = iradon_sart(sino, theta=angles, image=sart)
        sart_errors.append(rmse(sart, ph))
    for passes in (3, 10):
        rec, info = reconstruct(tmp_path, sino, angles, "--subsets", len(angles), "--iterations", passes)
        assert rmse(rec, ph) < sart_errors[passes - 1], (passes, rmse(rec, ph), sart_errors)
        assert rec.min() >= 0 and info["passes"][0] == passes
    sirt, _ = reconstruct(tmp_path, sino, angles, "--iterations", 10)
    assert rmse(sirt, ph) > 2 * sart_errors[9]


def test_residual_stopping_rule_ends_near_the_best_pass_on_noisy_data(tmp_path):
    """Poisson-noisy sinogram: more OS-SART passes fit the noise (the error against the phantom rises again after
    a few), so a fixed count is a guess. With --tolerance 0.01 the passes stop once the residual falls by less
    than 1 % per pass, long before the cap of 200, within 20 % of the best error any fixed count gives; the
    passes taken and the final residual are written."""
    from skimage.transform import radon
    n, angles = 101, np.arange(0.0, 180.0, 3.0)
    ph = shepp_logan(n)
    sino = radon(ph, angles, circle=True)
    scale = 2000 / sino.max()
    noisy = np.random.default_rng(0).poisson(sino * scale) / scale
    fixed = [rmse(reconstruct(tmp_path, noisy, angles, "--subsets", 20, "--iterations", k)[0], ph)
             for k in (2, 4, 8, 16, 32)]
    assert fixed[-1] > 1.1 * min(fixed)                      # semi-convergence: the cap alone would be worse
    rec, info = reconstruct(tmp_path, noisy, angles, "--subsets", 20, "--iterations", 200, "--tolerance", 0.01)
    assert 3 <= info["passes"][0] < 60
    assert rmse(rec, ph) < 1.2 * min(fixed), (rmse(rec, ph), fixed)
    assert 0 < info["residual"][0] < 0.05
    assert "done (residual stopped falling)" in info["stderr"] and info["converged"][0] == 1
    # The discrepancy rule, given the counts: stops once the residual reaches the Poisson noise level, which it
    # works out from the data (sqrt(sum b / counts) / |b|), at no more error; the residual is at or below it.
    noise = np.sqrt(np.clip(noisy, 0, None).sum() / scale) / np.linalg.norm(noisy)
    rec, info = reconstruct(tmp_path, noisy, angles, "--subsets", 20, "--iterations", 200, "--counts-per-unit", scale)
    assert 1 <= info["passes"][0] < 60 and info["residual"][0] <= noise < 1.5 * info["residual"][0], (info, noise)
    assert rmse(rec, ph) < 1.2 * min(fixed), (rmse(rec, ph), fixed)
    assert "done (residual at the noise level)" in info["stderr"] and info["converged"][0] == 1
    # A pass limit reached before the rule holds is no convergence, and the run says so.
    _, info = reconstruct(tmp_path, noisy, angles, "--subsets", 20, "--iterations", 2, "--tolerance", 0.001)
    assert info["passes"][0] == 2 and info["converged"][0] == 0
    assert "NOT converged" in info["stderr"] and "1 of 1 slice(s) did not converge" in info["stderr"]
    _, info = reconstruct(tmp_path, noisy, angles, "--subsets", 20, "--iterations", 2)
    assert info["converged"][0] == -1 and "converge" not in info["stderr"]


@pytest.mark.parametrize("args, message", [
    (["--subsets", "0"], "bad value '0' for --subsets"),
    (["--subsets", "1000"], "subsets must lie in 1..number of angles"),
    (["--tolerance", "1.5"], "bad value '1.5' for --tolerance"),
    (["--counts-per-unit", "0"], "bad value '0' for --counts-per-unit"),
])
def test_bad_subset_options_are_reported(runs, args, message):
    result = tp.run_tomo([runs["series"], "--element", "Au=/eds/Au", "-o", runs["tmp"] / "bad.h5"] + args,
                         check=False)
    assert result.returncode != 0 and message in result.stderr
