"""reloc-xrfcorr on bad input: clear messages and exit status 1, no output file left half-written."""
import json

import h5py
import numpy as np
import pytest

from conftest import BIN, CONFIGS, config_with, run, simulate


def test_unreadable_inputs(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    result = run([BIN / "reloc-xrfcorr", text, "--config", CONFIGS["feni"]], check=False)
    assert result.returncode == 1 and "cannot open HDF5 file" in result.stderr

    simulate(CONFIGS["zrhf"], tmp_path / "zrhf.h5", size=8)
    result = run([BIN / "reloc-xrfcorr", tmp_path / "zrhf.h5", "--config", CONFIGS["feni"]], check=False)
    assert result.returncode == 1 and "no dataset /raw/Fe" in result.stderr


def test_bad_values_and_integer_maps(tmp_path):
    data = simulate(CONFIGS["feni"], tmp_path / "sim.h5", size=8)
    with h5py.File(tmp_path / "ints.h5", "w") as f:      # detector counts usually come as integers
        for el, m in data["raw"].items():
            f[f"raw/{el}"] = np.round(m).astype(np.uint32)
    run([BIN / "reloc-xrfcorr", tmp_path / "ints.h5", "--config", CONFIGS["feni"], "--out", tmp_path / "o.h5"])
    with h5py.File(tmp_path / "o.h5", "r") as f:
        assert np.all(np.isfinite(f["corrected/Fe"][()])) and np.all(f["I0"][()] == 1)

    with h5py.File(tmp_path / "bad.h5", "w") as f:
        for el, m in data["raw"].items():
            m = m.copy()
            m[2, 3] = -5 if el == "Ni" else m[2, 3]
            f[f"raw/{el}"] = m
    result = run([BIN / "reloc-xrfcorr", tmp_path / "bad.h5", "--config", CONFIGS["feni"], "--out",
                  tmp_path / "bad_out.h5"], check=False)
    assert result.returncode == 1 and "pixel (x=3, y=2)" in result.stderr
    assert not (tmp_path / "bad_out.h5").exists()


def test_duplicated_element_refused_before_any_work(tmp_path):
    """A configuration listing an element twice is refused when it is loaded, with a message naming it, before the
    input is even opened (the input here does not exist)."""
    cfg = json.loads(CONFIGS["feni"].read_text())
    cfg["elements"].append({"symbol": "Fe", "line": "KB"})
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps(cfg))
    result = run([BIN / "reloc-xrfcorr", tmp_path / "missing.h5", "--config", twice], check=False)
    assert result.returncode == 1 and "Fe is listed twice" in result.stderr and "HDF5" not in result.stderr
    matrix = config_with("feni", tmp_path, "matrix.json", matrix=[{"symbol": "Ni", "fraction": 0.1}])
    result = run([BIN / "reloc-sim-xrf", "--config", matrix, "--size", 8, "--out", tmp_path / "s.h5"], check=False)
    assert result.returncode == 1 and "Ni is listed twice" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--alpha", "nan"], "--alpha 'nan'"), (["--alpha", "inf"], "--alpha 'inf'"), (["--nu", "-1"], "--nu '-1'"),
    (["--i0", "0"], "--i0 '0'"), (["--size", "12x"], "--size '12x'"), (["--width", "0"], "--width '0'"),
    (["--width", "100000", "--height", "100000"], "too large to simulate"),
])
def test_simulator_refuses_bad_arguments(tmp_path, args, message):
    result = run([BIN / "reloc-sim-xrf", "--config", CONFIGS["feni"], "--out", tmp_path / "s.h5", *args], check=False)
    assert result.returncode in (1, 2) and message in result.stderr, result.stderr
    assert not (tmp_path / "s.h5").exists()


@pytest.mark.parametrize("threads", ["0", "3", "two", "1.5", ""])
def test_bad_thread_count_is_refused(tmp_path, threads):
    simulate(CONFIGS["feni"], tmp_path / "s.h5", size=8)
    result = run([BIN / "reloc-xrfcorr", tmp_path / "s.h5", "--config", CONFIGS["feni"], "--out", tmp_path / "o.h5",
                  "--threads", threads], check=False)
    assert result.returncode == 2 and "--threads must be 1 or 2" in result.stderr, result.stderr
    assert not (tmp_path / "o.h5").exists()
