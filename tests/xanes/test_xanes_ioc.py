"""Live XANES in the IOC: while an energy scan runs, each camera frame taken at a new energy joins the stack,
and the white-line map, histogram and summary PVs update; the final map equals the offline tool's result on
the same images (bin/reloc-xanes), and a bad setting is refused."""
import json
import time

import numpy as np
import pytest
import zmq

import ioc as ioc_module
from ioc import pv_under, wait_for
import xanes_synth as xs

P = "TXAN:"
W, H = 20, 12
ENERGY = np.arange(8335.0, 8361.0, 1.0)
SCALE = 1e-4


def st_cmd(endpoint):
    return ioc_module.st_cmd(ioc_module.camera(P, "CAM1", "zmq", endpoint, W, H),
                             f'xanesLiveConfigure("XANES", "CAM1", "{P}energy", {W * H})',
                             f'dbLoadRecords("xanes.db", "P={P},R=xanes:,PORT=XANES,NELM={W * H}")')


pv = pv_under(P)


def test_energy_scan_builds_the_white_line_map_live(start_ioc, tmp_path):
    energy_db = tmp_path / "energy.db"
    energy_db.write_text('record(ao, "$(P)energy") { field(PREC, "2") field(EGU, "eV") }\n')
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    try:
        st = st_cmd(f"tcp://127.0.0.1:{port}").replace("iocInit", f'dbLoadRecords("{energy_db}", "P={P}")\niocInit')
        start_ioc(st)
        rng = np.random.default_rng(4)
        peaks = 8348.0 + rng.uniform(-1.5, 1.5, (H, W))
        mu = xs.edge_spectrum(ENERGY[:, None, None], peaks, rng.uniform(0.5, 1.5, (H, W)))
        frames = np.round(mu / SCALE).astype(np.uint16)
        pv("xanes:Scale").put(-1.0, wait=True)                    # refused: the scale must be positive
        assert pv("xanes:Scale.SEVR").get() == 3
        for name, value in (("xanes:Order", 2), ("xanes:Scale", SCALE), ("xanes:WindowLo", 8341),
                            ("xanes:WindowHi", 8355)):
            pv(name).put(value, wait=True)
            assert pv(name + ".SEVR").get() == 0, name
        pv("cam1:ImageMode").put(2, wait=True)
        pv("cam1:Acquire").put(1)
        pv("xanes:Collect").put(1, wait=True)
        count = pv("xanes:Count_RBV")
        wait_for(lambda: count.get() == 0, what="an empty stack")
        header = json.dumps({"htype": "array-1.0", "type": "uint16", "shape": [H, W], "frame": 0}).encode()
        for k, energy in enumerate(ENERGY):
            pv("energy").put(energy, wait=True)
            deadline = time.monotonic() + 10
            while count.get() < k + 1 and time.monotonic() < deadline:   # PUB drops until subscribed
                pub.send_multipart([header, frames[k].tobytes()])
                time.sleep(0.05)
            assert count.get() == k + 1, f"frame at {energy} eV was not added"
            if k == 12:       # results appear while the scan is still running
                wait_for(lambda: pv("xanes:NOk_RBV").get() + pv("xanes:NNoPeak_RBV").get() > 0,
                         what="results while the scan runs")
        wait_for(lambda: pv("xanes:LastEnergy_RBV").get() == ENERGY[-1], what="the last energy")
        live = np.asarray(pv("xanes:PeakMap").get()[: W * H]).reshape(H, W)

        xs.write_stack(tmp_path / "stack.h5", ENERGY, frames.astype(np.float64) * SCALE)
        xs.run_xanes([tmp_path / "stack.h5", "--window", "8341:8355", "-o", tmp_path / "out.h5"])
        offline = xs.read_result(tmp_path / "out.h5")
        np.testing.assert_allclose(live, offline["peak_energy"], atol=2e-3, equal_nan=True)
        assert pv("xanes:Centroid_RBV").get() == pytest.approx(offline["summary"]["centroid"], abs=2e-3)
        assert np.abs(live - peaks).max() < 0.5
        assert pv("xanes:NOk_RBV").get() == W * H
        assert abs(pv("xanes:SummedPeak_RBV").get() - pv("xanes:Centroid_RBV").get()) < 0.5
        assert sum(pv("xanes:Histogram").get()) == W * H
    finally:
        pub.close(0)
        context.term()
