"""tests/detection/test_locate.py -- reloc-locate against ground truth of synthetic frames and against the
independent scipy implementation in locate_ref.py: same particles, same positions and characterization; plus
linking across frames, export to HDF5, bad parameters and empty frames."""
import io
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import locate_ref  # noqa: E402
import synth  # noqa: E402

BIN = Path(os.environ.get("RELOC_BIN", Path(__file__).resolve().parents[2] / "build/asan/bin"))


def run_locate(image_path, *args, check=True):
    result = subprocess.run([str(BIN / "reloc-locate"), str(image_path), *map(str, args)],
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def read_table(text):
    lines = text.strip().splitlines()
    names = lines[0].split(",")
    rows = np.array([[float(v) for v in line.split(",")] for line in lines[1:]]).reshape(-1, len(names))
    return {n: rows[:, i] for i, n in enumerate(names)}


def locate_file(path, *args):
    return read_table(run_locate(path, *args).stdout)


def assert_equal_to_reference(ours, ref):
    """Same particles, positions to 1e-6 px, other columns to 1e-7 relative."""
    assert len(ours["x"]) == len(ref["x"]), (len(ours["x"]), len(ref["x"]))
    pairs, extra, missed = synth.match(ours["y"], ours["x"], ref["y"], ref["x"], 0.5)
    assert extra == 0 and missed == 0
    i = np.array([p[0] for p in pairs], int)
    j = np.array([p[1] for p in pairs], int)
    np.testing.assert_allclose(ours["y"][i], ref["y"][j], atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours["x"][i], ref["x"][j], atol=1e-6, rtol=0)
    for col in ("mass", "size", "ecc", "signal", "raw_mass", "ep"):
        np.testing.assert_allclose(ours[col][i], ref[col][j], rtol=1e-7, atol=1e-9, err_msg=col)


def truth_scores(ours, ys, xs, tolerance=1.5):
    pairs, extra, missed = synth.match(ours["y"], ours["x"], ys, xs, tolerance)
    i = np.array([p[0] for p in pairs], int)
    j = np.array([p[1] for p in pairs], int)
    recall = len(pairs) / len(ys)
    precision = len(pairs) / max(len(ours["x"]), 1)
    rms = np.sqrt(np.mean((ours["y"][i] - ys[j]) ** 2 + (ours["x"][i] - xs[j]) ** 2)) if pairs else np.inf
    return recall, precision, rms, i, j


CASES = {
    "uint16": dict(dtype=np.uint16, scale=1.0),
    "uint8": dict(dtype=np.uint8, scale=0.25),
    "float32": dict(dtype=np.float32, scale=1 / 1000.0),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_bright_particles_with_gradient_match_truth_and_reference(tmp_path, kind):
    rng = np.random.default_rng(11)
    image, ys, xs, masses, sigmas = synth.frame(rng, gradient=(0.15, -0.1), **CASES[kind])
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, image)
    minmass = 1500 * CASES[kind]["scale"]
    ours = locate_file(path, "--diameter", 11, "--minmass", minmass)
    assert_equal_to_reference(ours, locate_ref.locate(image, 11, minmass=minmass))

    recall, precision, rms, i, j = truth_scores(ours, ys, xs)
    assert recall >= 0.99 and precision >= 0.99, (recall, precision)
    assert rms <= 0.05, rms
    # raw_mass minus the local background is the rendered mass inside the mask (95-100 % of it for these
    # sigmas); size (radius of gyration of the band pass) grows with the rendered sigma.
    background = (200 + 0.15 * ys[j] - 0.1 * xs[j]) * CASES[kind]["scale"]
    npx = locate_ref.circular_mask(5)[0].size
    ratio = (ours["raw_mass"][i] - npx * background) / (masses[j] * CASES[kind]["scale"])
    assert np.median(ratio) == pytest.approx(0.97, abs=0.03)
    assert np.all(np.abs(ratio - np.median(ratio)) < 0.1)
    assert np.corrcoef(ours["size"][i], sigmas[j])[0, 1] > 0.9
    assert np.all((ours["size"][i] > 0.8 * sigmas[j]) & (ours["size"][i] < 1.5 * sigmas[j]))
    assert np.all(ours["ecc"][i] < 0.15)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_the_table_does_not_depend_on_the_number_of_threads(tmp_path, kind):
    """A frame is split over worker threads: one, two or five of them give the same table, to the bit."""
    rng = np.random.default_rng(21)
    image, _, _, _, _ = synth.frame(rng, shape=(301, 517), count=150, gradient=(0.15, -0.1), **CASES[kind])
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, image)
    tables = [run_locate(path, "--diameter", 9, "--threads", n).stdout for n in (1, 2, 5)]
    assert tables[0].count("\n") > 100 and tables[1] == tables[0] and tables[2] == tables[0]


def test_dark_particles_with_invert(tmp_path):
    rng = np.random.default_rng(12)
    image, ys, xs, _, _ = synth.frame(rng, background=3000, dark=True, gradient=(0.3, 0.2))
    path = tmp_path / "dark.tif"
    tifffile.imwrite(path, image)
    ours = locate_file(path, "--diameter", 11, "--minmass", 1500, "--invert")
    assert_equal_to_reference(ours, locate_ref.locate(image, 11, minmass=1500, invert=True))
    recall, precision, rms, _, _ = truth_scores(ours, ys, xs)
    assert recall >= 0.99 and precision >= 0.99 and rms <= 0.05, (recall, precision, rms)
    # Without invert the dark particles are not what is found.
    bright = locate_file(path, "--diameter", 11, "--minmass", 1500)
    assert truth_scores(bright, ys, xs)[0] < 0.5


def test_touching_pairs_are_both_found(tmp_path):
    rng = np.random.default_rng(13)
    centres_y, centres_x = synth.random_positions(rng, (512, 512), 60, 30, 20)
    angle = rng.uniform(0, np.pi, size=centres_y.size)
    gap = 8.5   # spots of sigma 1.3 px: their visible discs (radius ~4 px) touch
    ys = np.concatenate([centres_y + gap / 2 * np.sin(angle), centres_y - gap / 2 * np.sin(angle)])
    xs = np.concatenate([centres_x + gap / 2 * np.cos(angle), centres_x - gap / 2 * np.cos(angle)])
    masses = rng.uniform(4000, 8000, ys.size)
    image = synth.render((512, 512), ys, xs, masses, np.full(ys.size, 1.3), background=150)
    image = np.clip(np.round(image + rng.normal(0, 3, image.shape)), 0, 65535).astype(np.uint16)
    path = tmp_path / "pairs.tif"
    tifffile.imwrite(path, image)
    args = dict(separation=7, minmass=500)
    ours = locate_file(path, "--diameter", 7, "--separation", 7, "--minmass", 500)
    assert_equal_to_reference(ours, locate_ref.locate(image, 7, **args))
    recall, precision, rms, _, _ = truth_scores(ours, ys, xs)
    assert recall >= 0.99 and precision >= 0.99, (recall, precision)
    assert rms <= 0.05, rms


@pytest.mark.parametrize("options,ref_args", [
    (["--noise-size", 1.5, "--smoothing-size", 15, "--percentile", 50], dict(noise_size=1.5, smoothing_size=15, percentile=50)),
    (["--topn", 25], dict(topn=25)),
    (["--maxsize", 2.6, "--separation", 15.5], dict(maxsize=2.6, separation=15.5)),
    (["--threshold", 20, "--max-iterations", 1], dict(threshold=20, max_iterations=1)),
    (["--no-preprocess"], dict(preprocess=False)),
])
def test_parameters_mean_what_trackpy_means(tmp_path, options, ref_args):
    rng = np.random.default_rng(14)
    image, _, _, _, _ = synth.frame(rng, shape=(300, 400), count=60, background=50)
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, image)
    ours = locate_file(path, "--diameter", 9, "--minmass", 500, *options)
    assert_equal_to_reference(ours, locate_ref.locate(image, 9, minmass=500, **ref_args))
    assert len(ours["x"]) > 0


@pytest.mark.parametrize("options,ref_args", [([], {}), (["--invert"], dict(invert=True)),
                                              (["--no-preprocess"], dict(preprocess=False))])
def test_float_frames_are_quantised_to_8_bits_like_trackpy(tmp_path, options, ref_args):
    rng = np.random.default_rng(20)
    dark = bool(ref_args.get("invert"))
    image, ys, xs, _, _ = synth.frame(rng, shape=(300, 300), count=40, background=400 if dark else 50, dark=dark,
                                      dtype=np.float32, scale=1 / 1000.0)
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, image)
    ours = locate_file(path, "--minmass", 0.5, *options)
    assert_equal_to_reference(ours, locate_ref.locate(image, 11, minmass=0.5, **ref_args))
    if ref_args.get("preprocess", True):
        assert truth_scores(ours, ys, xs)[0] >= 0.95


def test_without_characterize_positions_and_mass_stay_the_same(tmp_path):
    rng = np.random.default_rng(23)
    image, _, _, _, _ = synth.frame(rng, shape=(256, 256), count=30)
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, image)
    full = locate_file(path, "--minmass", 1500)
    bare = locate_file(path, "--minmass", 1500, "--no-characterize")
    for col in ("y", "x", "mass"):
        np.testing.assert_array_equal(bare[col], full[col])
    for col in ("size", "ecc", "signal", "raw_mass", "ep"):
        assert np.all(np.isnan(bare[col]))


def test_large_particles_match_reference_and_truth(tmp_path):
    rng = np.random.default_rng(21)
    image, ys, xs, _, _ = synth.frame(rng, shape=(400, 400), count=30, spacing=60, border=30, sigma=(4.0, 5.0),
                                      mass=(40000, 80000))
    path = tmp_path / "large.tif"
    tifffile.imwrite(path, image)
    ours = locate_file(path, "--diameter", 25, "--minmass", 5000)
    assert_equal_to_reference(ours, locate_ref.locate(image, 25, minmass=5000))
    recall, precision, rms, _, _ = truth_scores(ours, ys, xs)
    assert recall == 1 and precision == 1 and rms <= 0.05, (recall, precision, rms)


def test_roi_locates_inside_it_in_frame_coordinates(tmp_path):
    rng = np.random.default_rng(15)
    image, ys, xs, _, _ = synth.frame(rng)
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, image)
    x0, y0, w, h = 100, 60, 250, 300
    ours = locate_file(path, "--minmass", 1500, "--roi", f"{x0},{y0},{w},{h}")
    ref = locate_ref.locate(image[y0:y0 + h, x0:x0 + w], 11, minmass=1500)
    ref["y"] = ref["y"] + y0
    ref["x"] = ref["x"] + x0
    assert_equal_to_reference(ours, ref)
    assert np.all((ours["x"] >= x0) & (ours["x"] < x0 + w) & (ours["y"] >= y0) & (ours["y"] < y0 + h))
    bad = run_locate(path, "--roi", "400,400,200,200", check=False)
    assert bad.returncode == 2 and "ROI" in bad.stderr


def test_empty_and_flat_frames_give_an_empty_table(tmp_path):
    for name, image in [("zeros", np.zeros((64, 80), np.uint16)), ("flat", np.full((64, 80), 1234, np.uint16)),
                        ("float", np.full((64, 80), 0.5, np.float32)), ("pixel", np.array([[7]], np.uint16)),
                        ("smaller_than_a_particle", np.random.default_rng(0).integers(0, 999, (5, 9)).astype(np.uint16))]:
        path = tmp_path / f"{name}.tif"
        tifffile.imwrite(path, image)
        result = run_locate(path)
        assert result.stdout.strip() == "y,x,mass,size,ecc,signal,raw_mass,ep", result.stdout


@pytest.mark.parametrize("args,message", [
    (["--diameter", 10], "diameter must be an odd integer"),
    (["--diameter", 301], "diameter must be <= 251"),
    (["--minmass", -5], "minmass must be >= 0"),
    (["--separation", 0], "separation"),
    (["--smoothing-size", 4], "smoothing_size must be an odd integer"),
    (["--noise-size", 20], "larger than noise_size"),
    (["--percentile", 120], "percentile"),
    (["--max-iterations", 0], "max_iterations"),
    (["--threads", -1], "threads must be >= 0"),
    (["--diameter", "eleven"], "bad value"),
])
def test_bad_parameters_are_refused_with_a_message(tmp_path, args, message):
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, np.zeros((32, 32), np.uint16))
    result = run_locate(path, *args, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_unreadable_image_is_an_error(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"not a tiff at all")
    result = run_locate(path, check=False)
    assert result.returncode == 1 and "reloc-locate:" in result.stderr


def test_hdf5_export_holds_the_same_table(tmp_path):
    rng = np.random.default_rng(16)
    image, _, _, _, _ = synth.frame(rng, shape=(256, 256), count=30)
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, image)
    out = tmp_path / "features.h5"
    csv_path = tmp_path / "features.csv"
    assert run_locate(path, "--minmass", 1500, "--hdf5", f"{out}:/scan/features", "--csv", csv_path).stdout == ""
    csv = read_table(csv_path.read_text())
    assert len(csv["x"]) > 20
    with h5py.File(out, "r") as f:
        group = f["/scan/features"]
        for col in locate_ref.COLUMNS:
            np.testing.assert_allclose(group[col][:], csv[col], rtol=1e-9)
        assert group.attrs["diameter"] == 11 and group.attrs["minmass"] == 1500
        assert np.all(group["particle"][:] == -1)
    # A second table goes into the same file next to the first; a file that is not HDF5 is not overwritten.
    run_locate(path, "--minmass", 1500, "--topn", 5, "--hdf5", f"{out}:/other")
    with h5py.File(out, "r") as f:
        assert len(f["/other/x"]) == 5 and len(f["/scan/features/x"]) == len(csv["x"])
    notes = tmp_path / "notes.txt"
    notes.write_text("beamtime notes")
    result = run_locate(path, "--hdf5", notes, check=False)
    assert result.returncode == 1 and "not a writable HDF5 file" in result.stderr
    assert notes.read_text() == "beamtime notes"


def moving_stack(rng, frames, step, blink=0.0, count=40, shape=(400, 400), spacing=22):
    """Frames of particles whose content moves by step[k] between frames; each particle is absent from a
    frame with probability blink. Returns the stack and per-frame truth (ids, ys, xs)."""
    ys0, xs0 = synth.random_positions(rng, (shape[0] * 3, shape[1] * 3), count * 9, spacing, 0)
    masses = rng.uniform(5000, 9000, ys0.size)
    origin = np.array([shape[0], shape[1]], float)
    stack, truth = [], []
    offset = np.zeros(2)
    for k in range(frames):
        if k:
            offset += step[k]
        ys, xs = ys0 + offset[0] - origin[0], xs0 + offset[1] - origin[1]
        visible = (ys > 12) & (ys < shape[0] - 13) & (xs > 12) & (xs < shape[1] - 13) & (rng.random(ys.size) >= blink)
        image = synth.render(shape, ys[visible], xs[visible], masses[visible], np.full(visible.sum(), 1.8), 100)
        stack.append(np.clip(np.round(image + rng.normal(0, 3, shape)), 0, 65535).astype(np.uint16))
        truth.append((np.nonzero(visible)[0], ys[visible], xs[visible]))
    return np.array(stack), truth


def link_stack(tmp_path, stack, *args):
    path = tmp_path / "stack.h5"
    with h5py.File(path, "w") as f:
        f["data"] = stack
    return locate_file(f"{path}:/data", "--minmass", 1500, "--link", *args)


def identity_errors(table, truth):
    """Number of found particles whose ID maps to a different true particle than the ID's first sighting."""
    owner, errors, matched = {}, 0, 0
    for k, (ids, ys, xs) in enumerate(truth):
        rows = table["frame"] == k
        pairs, _, _ = synth.match(table["y"][rows], table["x"][rows], ys, xs, 1.5)
        particle = table["particle"][rows]
        for i, j in pairs:
            matched += 1
            pid = particle[i]
            if owner.setdefault(pid, ids[j]) != ids[j]:
                errors += 1
    return errors, matched


def test_ids_survive_stage_moves_of_several_spacings_with_a_displacement_prior(tmp_path):
    rng = np.random.default_rng(17)
    steps = [np.zeros(2)] + [np.array([rng.uniform(-60, 60), rng.uniform(-60, 60)]) for _ in range(7)]
    stack, truth = moving_stack(rng, 8, steps)
    shifts = tmp_path / "shifts.csv"
    # A prior good to ~1 px, as registration or motor readback give it.
    shifts.write_text("".join(f"{s[0] + rng.normal(0, 0.7):.3f},{s[1] + rng.normal(0, 0.7):.3f}\n" for s in steps))
    table = link_stack(tmp_path, stack, "--search-range", 6, "--shifts", shifts)
    errors, matched = identity_errors(table, truth)
    assert matched > 0.95 * sum(len(t[0]) for t in truth)
    assert errors == 0
    # The same motion without the prior: moves of ~3 spacings cannot be linked...
    table = link_stack(tmp_path, stack, "--search-range", 6)
    assert len(np.unique(table["particle"])) > 3 * len(truth[0][0])
    # ...unless the linker searches for the common displacement itself.
    table = link_stack(tmp_path, stack, "--search-range", 6, "--drift-range", 100)
    errors, matched = identity_errors(table, truth)
    assert matched > 0.95 * sum(len(t[0]) for t in truth)
    assert errors == 0


def test_blinking_particles_keep_their_id_with_memory(tmp_path):
    rng = np.random.default_rng(18)
    steps = [np.array([1.5, -1.0])] * 10
    stack, truth = moving_stack(rng, 10, steps, blink=0.15)
    shifts = tmp_path / "shifts.csv"
    shifts.write_text("1.5,-1.0\n" * 10)
    table = link_stack(tmp_path, stack, "--search-range", 5, "--memory", 3, "--shifts", shifts)
    errors, _ = identity_errors(table, truth)
    assert errors == 0
    seen = set().union(*[set(t[0]) for t in truth])
    # Every true particle ends up with one ID (blinks of up to 3 frames bridged).
    assert len(np.unique(table["particle"])) <= len(seen) + 2
    no_memory = link_stack(tmp_path, stack, "--search-range", 5, "--memory", 0, "--shifts", shifts)
    assert len(np.unique(no_memory["particle"])) > len(seen) + 10


def test_ring_locator_finds_bright_field_particles(tmp_path):
    rng = np.random.default_rng(19)
    ys, xs = synth.random_positions(rng, (256, 320), 25, 30, 20)
    image = synth.render_rings((256, 320), ys, xs, ring_radius=6.5)
    image = np.clip(np.round(image + rng.normal(0, 2, image.shape)), 0, 65535).astype(np.uint16)
    path = tmp_path / "rings.tif"
    tifffile.imwrite(path, image)
    table = locate_file(path, "--ring", "--diameter", 15, "--minmass", 500)
    pairs, extra, missed = synth.match(table["y"], table["x"], ys, xs, 1.5)
    assert missed == 0 and extra == 0, (missed, extra)
    i = np.array([p[0] for p in pairs], int)
    j = np.array([p[1] for p in pairs], int)
    error = np.hypot(table["y"][i] - ys[j], table["x"][i] - xs[j])
    assert np.sqrt(np.mean(error ** 2)) < 0.2 and error.max() < 0.5, error
    assert np.all(np.abs(table["r"][i] - 6.5) < 0.6), table["r"]
    # A flat frame has no rings, and the table keeps its r column.
    tifffile.imwrite(path, np.full((64, 64), 100, np.uint16))
    assert run_locate(path, "--ring").stdout.strip() == "y,x,r,mass,size,ecc,signal,raw_mass,ep"


def test_ep_predicts_the_position_scatter_over_noise_realizations(tmp_path):
    """ep is the position uncertainty: over repeated noise it matches the scatter of each particle's position
    (within the approximations of the Savin-Doyle estimate) and grows with the noise. The band-pass threshold
    is set at the noise level, as on noisy data: with the default of 1 count nearly every pixel of a noisy band
    pass is non-zero, no background is left to measure the noise on, and ep is NaN (in trackpy too)."""
    rng = np.random.default_rng(22)
    ys, xs = synth.random_positions(rng, (200, 200), 20, 30, 20)
    clean = synth.render((200, 200), ys, xs, rng.uniform(3000, 8000, ys.size), np.full(ys.size, 1.8), 200)
    medians = []
    for noise in (8, 16):
        stack = np.array([np.clip(np.round(clean + rng.normal(0, noise, clean.shape)), 0, 65535)
                          for _ in range(16)]).astype(np.uint16)
        path = tmp_path / f"noise{noise}.h5"
        with h5py.File(path, "w") as f:
            f["data"] = stack
        table = locate_file(f"{path}:/data", "--minmass", 800, "--threshold", noise)
        positions = np.full((16, ys.size, 2), np.nan)
        ep = np.full((16, ys.size), np.nan)
        for k in range(16):
            rows = table["frame"] == k
            for i, j in synth.match(table["y"][rows], table["x"][rows], ys, xs, 1.5)[0]:
                positions[k, j] = table["y"][rows][i], table["x"][rows][i]
                ep[k, j] = table["ep"][rows][i]
        assert not np.isnan(positions).any()
        scatter = np.sqrt(np.mean(np.var(positions, axis=0), axis=1))
        ratio = np.median(ep / scatter[None, :])
        assert 0.7 < ratio < 1.6, ratio
        medians.append(np.median(ep))
    assert medians[1] / medians[0] == pytest.approx(2.0, rel=0.25)
