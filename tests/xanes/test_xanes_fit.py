"""reloc-xanes finds each pixel's white-line energy as the maximum of a polynomial fitted over a window, exactly
as numpy.polyfit does on the same samples; recovers known energies on synthetic stacks (parabolic and Gaussian
white lines, noise, varying thickness); flags pixels without a maximum instead of inventing an energy; masks,
bins, and compares the histogram centroid with the peak of the summed spectrum."""
import h5py
import numpy as np
import pytest
from PIL import Image

import xanes_synth as xs

ENERGY = np.arange(8320.0, 8370.1, 1.0)      # 51 energies, 1 eV apart, across the Ni K edge


def parabolic_stack(rng, shape, peaks, thickness, lo=8343.0, hi=8353.0):
    """Spectra that are exact parabolas inside [lo, hi] (vertex at the given peak) on an edge background."""
    e = ENERGY[:, None, None]
    inside = (e >= lo) & (e <= hi)
    para = thickness * (1.6 - 0.01 * (e - peaks) ** 2)
    return np.where(inside, para, xs.edge_spectrum(e, peaks, thickness))


def test_parabolic_white_lines_recovered_exactly(tmp_path):
    rng = np.random.default_rng(11)
    peaks = 8348.0 + rng.uniform(-2.0, 2.0, (24, 31))
    thickness = rng.uniform(0.2, 3.0, peaks.shape)
    xs.write_stack(tmp_path / "s.h5", ENERGY, parabolic_stack(rng, peaks.shape, peaks, thickness))
    xs.run_xanes([tmp_path / "s.h5", "--window", "8343:8353", "-o", tmp_path / "o.h5"])
    out = xs.read_result(tmp_path / "o.h5")
    assert (out["status"] == 0).all()
    # float32 samples limit the exactness: 2 meV is far below any chemical shift of interest.
    np.testing.assert_allclose(out["peak_energy"], peaks, atol=2e-3)
    assert out["r2"].min() > 0.99999


def test_per_pixel_fit_matches_numpy_polyfit_for_orders_2_to_4(tmp_path):
    rng = np.random.default_rng(12)
    peaks = 8348.0 + rng.uniform(-1.5, 1.5, (20, 25))
    thickness = rng.uniform(0.3, 2.0, peaks.shape)
    stack = xs.edge_spectrum(ENERGY[:, None, None], peaks, thickness)
    stack = (stack + rng.normal(0, 0.01, stack.shape)).astype(np.float32)
    xs.write_stack(tmp_path / "s.h5", ENERGY, stack)
    spectra = stack.reshape(len(ENERGY), -1).T
    for order in (2, 3, 4):
        xs.run_xanes([tmp_path / "s.h5", "--order", order, "--window", "8341:8355", "-o", tmp_path / "o.h5"])
        out = xs.read_result(tmp_path / "o.h5")
        ref_peaks, ref_r2 = xs.polyfit_peaks(ENERGY, spectra, 8341, 8355, order)
        ours = out["peak_energy"].ravel()
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref_peaks))
        np.testing.assert_allclose(ours, ref_peaks, atol=1e-4, equal_nan=True)   # maps are stored as float32
        np.testing.assert_allclose(out["r2"].ravel(), ref_r2, atol=1e-5)
        m = np.count_nonzero((ENERGY >= 8341) & (ENERGY <= 8355))
        np.testing.assert_allclose(out["adj_r2"].ravel(), 1 - (1 - ref_r2) * (m - 1) / (m - order - 1), atol=1e-5)


def test_gaussian_white_lines_with_noise_and_thickness(tmp_path):
    """Non-parabolic lines (Gaussian on an erf edge), 1 % noise of the edge step, thickness 0.3..3. Tolerance:
    order 2 over +-5 eV around the line: |error| < 0.35 eV for 99 % of pixels; order 4 over +-6 eV: < 0.2 eV."""
    rng = np.random.default_rng(13)
    peaks = 8348.0 + rng.uniform(-1.5, 1.5, (30, 30))
    thickness = rng.uniform(0.3, 3.0, peaks.shape)
    stack = xs.edge_spectrum(ENERGY[:, None, None], peaks, thickness)
    stack += rng.normal(0, 0.01, stack.shape)
    xs.write_stack(tmp_path / "s.h5", ENERGY, stack)
    truth = np.array([xs.true_maximum(8335, 8360, peak_energy=p) for p in peaks.ravel()]).reshape(peaks.shape)
    for order, window, tol in ((2, "8343:8353", 0.35), (4, "8342:8354", 0.2)):
        xs.run_xanes([tmp_path / "s.h5", "--order", order, "--window", window, "-o", tmp_path / "o.h5"])
        out = xs.read_result(tmp_path / "o.h5")
        assert (out["status"] == 0).all()
        err = np.abs(out["peak_energy"] - truth)
        assert np.quantile(err, 0.99) < tol, (order, np.quantile(err, 0.99))


def test_pixels_without_a_maximum_are_flagged_not_invented(tmp_path):
    rng = np.random.default_rng(14)
    peaks = np.full((10, 12), 8348.0)
    stack = xs.edge_spectrum(ENERGY[:, None, None], peaks, 1.0)
    # Left third: a bare edge (no white line, rising through the window); right third: line far above the window.
    stack[:, :, :4] = xs.edge_spectrum(ENERGY[:, None, None], 8348.0, 1.0, amplitude=0.0, edge_offset=0.0)
    stack[:, :, 8:] = xs.edge_spectrum(ENERGY[:, None, None], 8362.0, 1.0)
    stack += rng.normal(0, 0.002, stack.shape)
    xs.write_stack(tmp_path / "s.h5", ENERGY, stack)
    xs.run_xanes([tmp_path / "s.h5", "--window", "8343:8353", "-o", tmp_path / "o.h5"])
    out = xs.read_result(tmp_path / "o.h5")
    assert (out["status"][:, :4] == 2).all() and np.isnan(out["peak_energy"][:, :4]).all()
    assert (out["status"][:, 8:] == 2).all() and np.isnan(out["peak_energy"][:, 8:]).all()
    assert (out["status"][:, 4:8] == 0).all()
    assert out["summary"]["n_no_peak"] == 80 and out["summary"]["n_fitted"] == 40
    assert out["hist_counts"].sum() == 40


def test_centroid_agrees_with_summed_spectrum_peak_under_c6_c7(tmp_path):
    """Our reading of the paper's conditions for the histogram centroid to equal the summed-spectrum peak:
    C6 -- every voxel's white line is the same shape, shifted, and the spread of shifts (+-1 eV) is well inside
    the fit window (+-5 eV), so the polynomial describes each spectrum and the sum; C7 -- the voxel weights
    (thickness) are statistically independent of the white-line energy. Then the two agree within 0.1 eV. When C7
    is broken (thick voxels reduced, thin ones oxidized), the summed peak is pulled toward the thick voxels and
    the same comparison fails, which is why the test can fail."""
    rng = np.random.default_rng(15)
    shape = (60, 60)
    peaks = 8348.0 + rng.uniform(-1.0, 1.0, shape)
    thickness = rng.uniform(0.3, 3.0, shape)
    stack = xs.edge_spectrum(ENERGY[:, None, None], peaks, thickness) + rng.normal(0, 0.01, (len(ENERGY),) + shape)
    xs.write_stack(tmp_path / "s.h5", ENERGY, stack)
    xs.run_xanes([tmp_path / "s.h5", "--edge", "Ni", "-o", tmp_path / "o.h5"])
    s = xs.read_result(tmp_path / "o.h5")["summary"]
    assert abs(s["centroid"] - s["summed_peak_energy"]) < 0.1
    assert s["centroid"] == pytest.approx(np.mean(peaks), abs=0.1)

    correlated = np.sort(thickness.ravel())[np.argsort(np.argsort(-peaks.ravel()))].reshape(shape)
    stack = xs.edge_spectrum(ENERGY[:, None, None], peaks, correlated) + rng.normal(0, 0.01, stack.shape)
    xs.write_stack(tmp_path / "c.h5", ENERGY, stack)
    xs.run_xanes([tmp_path / "c.h5", "--edge", "Ni", "-o", tmp_path / "c_out.h5"])
    s = xs.read_result(tmp_path / "c_out.h5")["summary"]
    assert abs(s["centroid"] - s["summed_peak_energy"]) > 0.1


def test_histogram_and_summed_spectrum_match_numpy(tmp_path):
    rng = np.random.default_rng(16)
    peaks = 8348.0 + rng.normal(0, 0.8, (40, 40))
    stack = xs.edge_spectrum(ENERGY[:, None, None], peaks, 1.0) + rng.normal(0, 0.01, (len(ENERGY), 40, 40))
    xs.write_stack(tmp_path / "s.h5", ENERGY, stack)
    xs.run_xanes([tmp_path / "s.h5", "--window", "8343:8353", "--bins", 40, "-o", tmp_path / "o.h5"])
    out = xs.read_result(tmp_path / "o.h5")
    ok = out["peak_energy"][out["status"] == 0].astype(float)
    np.testing.assert_allclose(out["hist_edges"], np.linspace(8343, 8353, 41))
    counts, _ = np.histogram(ok, bins=out["hist_edges"])
    np.testing.assert_array_equal(out["hist_counts"], counts)
    assert out["summary"]["centroid"] == pytest.approx(ok.mean(), abs=1e-4)
    assert out["summary"]["std"] == pytest.approx(ok.std(), abs=1e-4)
    np.testing.assert_allclose(out["summed"], stack.astype(np.float32).sum(axis=(1, 2)), rtol=1e-5)
    ref, _ = xs.polyfit_peaks(ENERGY, out["summed"][None, :], 8343, 8353, 2)
    assert out["summary"]["summed_peak_energy"] == pytest.approx(ref[0], abs=1e-6)
    for png in ("o_map.png", "o_hist.png"):
        assert Image.open(tmp_path / png).size[0] > 0


def test_edge_jump_and_mean_masks(tmp_path):
    rng = np.random.default_rng(17)
    thickness = np.ones((20, 20))
    thickness[:, :8] = 0.0                    # empty background: no edge
    stack = xs.edge_spectrum(ENERGY[:, None, None], 8348.0, thickness) + rng.normal(0, 0.01, (len(ENERGY), 20, 20))
    xs.write_stack(tmp_path / "s.h5", ENERGY, stack)
    xs.run_xanes([tmp_path / "s.h5", "--edge", "Ni", "--mask", "edge-jump", "--threshold", 0.3,
                  "-o", tmp_path / "o.h5"])
    out = xs.read_result(tmp_path / "o.h5")
    e = ENERGY
    jump = stack[e >= 8332.8 + 5].mean(axis=0) - stack[e <= 8332.8 - 5].mean(axis=0)
    np.testing.assert_allclose(out["edge_jump"], jump, atol=1e-5)
    np.testing.assert_array_equal(out["mask"], (jump > 0.3).astype(int))
    assert np.isnan(out["peak_energy"][:, :8]).all() and (out["status"][:, :8] == 1).all()
    assert np.abs(out["peak_energy"][:, 8:] - 8348.0).max() < 0.3
    xs.run_xanes([tmp_path / "s.h5", "--mask", "mean", "--threshold", 0.5, "-o", tmp_path / "m.h5"])
    out = xs.read_result(tmp_path / "m.h5")
    np.testing.assert_array_equal(out["mask"], (stack.mean(axis=0) > 0.5).astype(int))


def test_volume_with_super_voxel_binning(tmp_path):
    rng = np.random.default_rng(18)
    shape = (10, 12, 11)                       # z, y, x: blocks of 5x5x5 cut by the edges in y and x
    peaks = 8348.0 + rng.uniform(-1, 1, shape)
    vol = xs.edge_spectrum(ENERGY[:, None, None, None], peaks, 1.0) + rng.normal(0, 0.05, (len(ENERGY),) + shape)
    xs.write_stack(tmp_path / "v.h5", ENERGY, vol)
    xs.run_xanes([tmp_path / "v.h5", "--bin", "5x5x5", "--window", "8343:8353", "-o", tmp_path / "o.h5"])
    out = xs.read_result(tmp_path / "o.h5")
    assert out["peak_energy"].shape == (2, 3, 3)
    v32 = vol.astype(np.float32)
    blocks = np.array([[[v32[:, z:z + 5, y:y + 5, x:x + 5].mean(axis=(1, 2, 3)) for x in range(0, 11, 5)]
                        for y in range(0, 12, 5)] for z in range(0, 10, 5)])
    ref, _ = xs.polyfit_peaks(ENERGY, blocks.reshape(-1, len(ENERGY)), 8343, 8353, 2)
    np.testing.assert_allclose(out["peak_energy"].ravel(), ref, atol=1e-3)


def test_file_list_form_matches_hdf5_stack(tmp_path):
    rng = np.random.default_rng(19)
    peaks = 8348.0 + rng.uniform(-1, 1, (16, 20))
    stack = (xs.edge_spectrum(ENERGY[:, None, None], peaks, 1.0) + rng.normal(0, 0.01, (len(ENERGY), 16, 20)))
    stack = stack.astype(np.float32)
    xs.write_stack(tmp_path / "s.h5", ENERGY, stack)
    lines = ["# energy path"]
    for k, e in enumerate(ENERGY):
        if k % 2:
            Image.fromarray(stack[k], mode="F").save(tmp_path / f"img{k}.tif")
            lines.append(f"{e} img{k}.tif")
        else:
            with h5py.File(tmp_path / f"img{k}.h5", "w") as f:
                f["im"] = stack[k]
            lines.append(f"{e} img{k}.h5:/im")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    xs.run_xanes([tmp_path / "s.h5", "--window", "8343:8353", "-o", tmp_path / "a.h5"])
    xs.run_xanes([tmp_path / "list.txt", "--window", "8343:8353", "-o", tmp_path / "b.h5"])
    a, b = xs.read_result(tmp_path / "a.h5"), xs.read_result(tmp_path / "b.h5")
    np.testing.assert_array_equal(a["peak_energy"], b["peak_energy"])


def test_energy_in_kev(tmp_path):
    stack = xs.edge_spectrum(ENERGY[:, None, None], np.full((4, 4), 8348.5), 1.0)
    xs.write_stack(tmp_path / "s.h5", ENERGY / 1000.0, stack, units="keV")
    xs.run_xanes([tmp_path / "s.h5", "-o", tmp_path / "o.h5"])
    out = xs.read_result(tmp_path / "o.h5")
    assert np.abs(out["peak_energy"] - xs.true_maximum(8340, 8360, peak_energy=8348.5)).max() < 0.3


@pytest.mark.parametrize("args, message", [
    (["--order", "5"], "order"),
    (["--window", "8343:8345"], "needs at least"),
    (["--energy", "/nope"], "no dataset"),
    (["--edge", "Xx"], "unknown element"),
    (["--mask", "edge-jump", "--threshold", "0.1", "--edge-energy", "8100"], "edge-jump mask needs energies"),
])
def test_bad_input_is_reported(tmp_path, args, message):
    xs.write_stack(tmp_path / "s.h5", ENERGY, xs.edge_spectrum(ENERGY[:, None, None], np.full((3, 3), 8348.), 1.))
    result = xs.run_xanes([tmp_path / "s.h5", "-o", tmp_path / "o.h5"] + args, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Sanitizer" not in result.stderr


def test_mismatched_energy_axis_is_reported(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["data"] = np.ones((10, 4, 4), np.float32)
        f["energy"] = np.arange(9.0)
    result = xs.run_xanes([tmp_path / "s.h5"], check=False)
    assert result.returncode == 1 and "9 values but the stack has 10 energies" in result.stderr


def test_non_finite_samples_flagged_and_empty_mask_reported(tmp_path):
    """A NaN inside the fit window makes the pixel bad data; a NaN (or an infinity) outside the window does not
    touch the fit: the pixel is fitted exactly as without it, and its mean absorption and edge jump use its finite
    samples."""
    clean = xs.edge_spectrum(ENERGY[:, None, None], np.full((5, 6), 8348.0), 1.0)
    stack = clean.copy()
    inside, outside = int(np.flatnonzero(ENERGY == 8348.0)[0]), int(np.flatnonzero(ENERGY == 8327.0)[0])
    stack[inside, 2, 3] = np.nan
    stack[outside, 1, 1] = np.nan
    stack[outside + 30, 4, 5] = np.inf
    xs.write_stack(tmp_path / "s.h5", ENERGY, stack)
    xs.write_stack(tmp_path / "c.h5", ENERGY, clean)
    for mask in ([], ["--mask", "mean", "--threshold", 0.5], ["--edge", "Ni", "--mask", "edge-jump", "--threshold",
                                                              0.5]):
        xs.run_xanes([tmp_path / "s.h5", "--window", "8343:8353", "-o", tmp_path / "o.h5"] + mask)
        xs.run_xanes([tmp_path / "c.h5", "--window", "8343:8353", "-o", tmp_path / "ref.h5"] + mask)
        out, ref = xs.read_result(tmp_path / "o.h5"), xs.read_result(tmp_path / "ref.h5")
        assert out["status"][2, 3] == 3 and out["mask"][2, 3] == 0 and np.isnan(out["peak_energy"][2, 3])
        assert (np.delete(out["status"].ravel(), 2 * 6 + 3) == 0).all(), mask
        assert out["peak_energy"][1, 1] == ref["peak_energy"][1, 1] and out["r2"][1, 1] == ref["r2"][1, 1]
        assert out["peak_energy"][4, 5] == ref["peak_energy"][4, 5]
        finite = np.isfinite(stack[:, 1, 1])
        assert out["mean_absorption"][1, 1] == pytest.approx(stack[finite, 1, 1].astype(np.float32).mean(), 1e-6)
    result = xs.run_xanes([tmp_path / "s.h5", "--mask", "mean", "--threshold", 100, "-o", tmp_path / "m.h5"],
                          check=False)
    assert result.returncode == 1 and "no voxel passes the mask" in result.stderr


@pytest.mark.parametrize("energy, data, message", [
    (np.zeros(0), np.zeros((0, 4, 4), np.float32), "holds no images (0 energies)"),
    (np.full(40, 8350.0), np.ones((40, 4, 4), np.float32), "holds 40 energies but only 1 distinct"),
    (np.tile(ENERGY[:10], (2, 1)), np.ones((10, 4, 4), np.float32), "has rank 2; expected one energy per image"),
    (ENERGY, np.full((len(ENERGY), 4, 4), 1e300), "holds values beyond the float32 range"),
], ids=["no-energies", "all-equal", "2d-energy", "beyond-float32"])
def test_degenerate_stacks_are_named_for_what_they_are(tmp_path, energy, data, message):
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["data"] = data
        f["energy"] = energy
    result = xs.run_xanes([tmp_path / "s.h5", "-o", tmp_path / "o.h5"], check=False)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert "Sanitizer" not in result.stderr and "no voxel passes" not in result.stderr


def test_stack_without_energy_axis_is_reported(tmp_path):
    with h5py.File(tmp_path / "img.h5", "w") as f:
        f["data"] = np.ones((8, 8), np.float32)
        f["energy"] = np.arange(8.0)
    result = xs.run_xanes([tmp_path / "img.h5"], check=False)
    assert result.returncode == 1 and "expected (energy, y, x) or (energy, z, y, x)" in result.stderr


def test_mapped_and_copied_stacks_give_the_same_maps(tmp_path):
    """A contiguous float32 stack is mapped from the file, any other stored form (chunked and compressed here) is
    read into memory: both give the same maps, bit for bit, with NaN samples, a stack not a multiple of the voxel
    block, and a file that starts with a user block. A contiguous stack at a file offset that is not a multiple of 4
    (a 1-byte dataset written before it) would give misaligned floats if mapped: it is read instead."""
    rng = np.random.default_rng(5)
    peaks = 8348.0 + rng.uniform(-2.0, 2.0, (13, 29))
    stack = xs.edge_spectrum(ENERGY[:, None, None], peaks, rng.uniform(0.5, 2.0, peaks.shape))
    stack = (stack + rng.normal(0, 0.01, stack.shape)).astype(np.float32)
    stack[25, 3, 4] = np.nan                      # 8345 eV, inside the window
    xs.write_stack(tmp_path / "mapped.h5", ENERGY, stack)
    with h5py.File(tmp_path / "copied.h5", "w") as f:
        f.create_dataset("data", data=stack, chunks=(len(ENERGY), 4, 8), compression="gzip")
        f["energy"] = ENERGY
    with h5py.File(tmp_path / "userblock.h5", "w", userblock_size=512) as f:   # dataset offsets past a user block
        f["data"] = stack
        f["energy"] = ENERGY
    with h5py.File(tmp_path / "unaligned.h5", "w") as f:
        f["flag"] = np.uint8(1)
        f["data"] = stack
        f["energy"] = ENERGY
        assert f["data"].id.get_offset() % 4 != 0
    outs = {}
    for name, how in (("mapped", "mapped from the file"), ("copied", "copied"), ("userblock", "mapped from the file"),
                      ("unaligned", "copied")):
        result = xs.run_xanes([tmp_path / f"{name}.h5", "--window", "8343:8353", "-o", tmp_path / f"{name}_o.h5"])
        assert how in result.stderr, result.stderr
        assert "runtime error" not in result.stderr and "Sanitizer" not in result.stderr, result.stderr
        outs[name] = xs.read_result(tmp_path / f"{name}_o.h5")
    assert "not aligned for float" in xs.run_xanes([tmp_path / "unaligned.h5", "-o", tmp_path / "u.h5"]).stderr
    assert outs["mapped"]["status"][3, 4] == 3 and (np.delete(outs["mapped"]["status"].ravel(), 3 * 29 + 4) == 0).all()
    for key in ("peak_energy", "r2", "rmse", "mean_absorption", "status"):
        for name in ("mapped", "userblock", "unaligned"):
            np.testing.assert_array_equal(outs[name][key], outs["copied"][key], err_msg=f"{name} {key}")


def test_truncated_stack_is_reported_not_crashed_on(tmp_path):
    """A file cut short (its superblock's end-of-file address rewritten to match, as a corrupt copy may have, so
    that HDF5 opens it) whose stack runs past the end: mapping it would fault on the missing pages (SIGBUS); it is
    refused, and the read reports the file as broken."""
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f["energy"] = ENERGY
        f["data"] = xs.edge_spectrum(ENERGY[:, None, None], np.full((20, 20), 8348.0), 1.0).astype(np.float32)
        end = f["data"].id.get_offset() + f["data"].id.get_storage_size()
    assert path.stat().st_size == end     # the stack ends the file: cutting it off cuts the stack only
    size = end - 8192
    with open(path, "r+b") as f:
        assert f.read(9)[8] == 0          # superblock version 0: end-of-file address at byte 40
        f.seek(40)
        f.write(size.to_bytes(8, "little"))
        f.truncate(size)
    result = xs.run_xanes([path, "-o", tmp_path / "o.h5"], check=False)
    assert result.returncode == 1, result.stderr
    assert "s.h5:/data runs past the end of the file" in result.stderr.splitlines()[-1]
    assert "Sanitizer" not in result.stderr
