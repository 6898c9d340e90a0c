"""tests/xrf/conftest.py -- helpers for the XRF self-absorption tests: running the simulator and the correction
tool, reading their HDF5 files, and the error measure of the paper."""
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
BIN = Path(os.environ.get("RELOC_BIN", HERE.parents[1] / "build/asan/bin"))
CONFIGS = {"zrhf": HERE / "zrhf.json", "feni": HERE / "feni.json"}


def run(args, timeout=300, check=True):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{args[0]} failed ({result.returncode}):\n{result.stderr[-4000:]}"
    return result


def simulate(config, out, size=64, alpha=0.0, nu=0.0, extra=()):
    run([BIN / "reloc-sim-xrf", "--config", config, "--size", size, "--alpha", alpha, "--nu", nu, "--out", out,
         *extra])
    return read_maps(out, ["raw", "truth", "truth_fractions", "I0"])


def correct(config, sim_file, out):
    run([BIN / "reloc-xrfcorr", sim_file, "--config", config, "--out", out])
    return read_maps(out, ["raw", "corrected", "fractions", "I0", "row_state"])


def read_maps(path, groups):
    """{group: {element: array}} for groups of per-element maps, plain arrays for the others, attrs in 'attrs'."""
    out = {}
    with h5py.File(path, "r") as f:
        for g in groups:
            item = f[g]
            out[g] = {k: item[k][()] for k in item} if isinstance(item, h5py.Group) else item[()]
        out["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    return out


def perr(corrected, truth):
    """The paper's error measure: mean |corrected - truth| / truth."""
    return float(np.mean(np.abs(corrected - truth) / truth))


def config_with(base, tmp_path, name="cfg.json", **changes):
    """A copy of a configuration with top-level keys or numerics replaced; returns its path."""
    cfg = json.loads(Path(CONFIGS.get(base, base)).read_text())
    for key, value in changes.items():
        if key in ("n_theta", "n_phi", "averaging", "source_voxel", "sweep", "path_factor", "tolerance", "face_escape",
                   "max_iterations"):
            cfg["numerics"][key] = value
        else:
            cfg[key] = value
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture
def xrf_bin():
    return BIN


class XrfServer:
    """reloc-xrfcorr --listen with a PUB stream, and a PUSH socket and a SUB socket to talk to it."""

    def __init__(self, config, out_dir, scans=1):
        import zmq
        from ioc import free_port
        self.zmq = zmq
        self.pull_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.pub_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.log_path = Path(out_dir) / "server.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(BIN / "reloc-xrfcorr"), "--config", str(config), "--listen", self.pull_endpoint, "--pub",
             self.pub_endpoint, "--out-dir", str(out_dir), "--scans", str(scans)],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(self.pub_endpoint)
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 2000)
        self.push.connect(self.pull_endpoint)
        self._wait_connected()

    def _wait_connected(self):
        """PUB drops what it sends before SUB has joined: poke with harmless aborts until a status comes back."""
        for _ in range(100):
            self.send({"type": "abort", "scan": 0})
            if self.sub.poll(100):
                while self.sub.poll(200):
                    self.sub.recv_multipart()
                return
            assert self.proc.poll() is None, self.log_path.read_text()
        raise AssertionError("no status from reloc-xrfcorr on its PUB socket")

    def send(self, header, parts=()):
        head = header if isinstance(header, bytes) else json.dumps(header).encode()
        self.push.send_multipart([head, *[np.ascontiguousarray(p, dtype="<f8").tobytes()
                                          if isinstance(p, np.ndarray) else p for p in parts]])

    def receive(self, timeout_ms=20000):
        """Next published message: (header dict, [float64 arrays])."""
        assert self.sub.poll(timeout_ms), "nothing published in time:\n" + self.log_path.read_text()[-3000:]
        frames = self.sub.recv_multipart()
        return json.loads(frames[0]), [np.frombuffer(f, dtype="<f8") for f in frames[1:]]

    def next_status(self, rows=None, spans=None):
        """Skips row messages up to the next status message, collecting whole-row publications into rows[y] as
        (state, data) and every publication into spans as (y, x0, x1, state, data)."""
        while True:
            header, data = self.receive()
            if header["type"] == "status":
                return header
            if rows is not None and header["x0"] == 0 and header["x1"] == header["width"]:
                rows.setdefault(header["y"], []).append((header["state"], data))
            if spans is not None:
                spans.append((header["y"], header["x0"], header["x1"], header["state"], data))

    def close(self):
        code = self.proc.wait(timeout=60) if self.proc.poll() is None else self.proc.returncode
        self.push.close()
        self.sub.close()
        self.ctx.term()
        self.log.close()
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def xrf_server(tmp_path):
    servers = []

    def start(config, scans=1):
        server = XrfServer(config, tmp_path, scans)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.kill()
