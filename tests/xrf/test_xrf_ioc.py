"""The XRF correction inside the IOC, as a beamline runs it: a fly scan streams chunks over ZeroMQ (or a
script writes them through PVs), and the corrected and weight-fraction maps, progress and chunk status appear
as PVs; the final maps equal the batch correction; bad chunks are refused with a status, and a scan can be
aborted and a new one started without restarting the IOC."""
import json

import numpy as np
import pytest

import ioc as ioc_module
from ioc import pv_under, wait_for
from conftest import BIN, CONFIGS, correct, run, simulate

P = "TXRF:"
SIZE = 24


def st_cmd(tmp_path):
    out = tmp_path / "scans"
    out.mkdir(exist_ok=True)
    nelm = SIZE * SIZE
    return ioc_module.st_cmd(
        f'xrfCorrectionConfigure("XRF", "{CONFIGS["feni"]}", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", "{out}", '
        f'{nelm})',
        f'dbLoadRecords("xrf.db", "P={P},R=xrf:,PORT=XRF,CHUNK_NELM=4096")',
        f'dbLoadRecords("xrf_element.db", "P={P},R=xrf:,PORT=XRF,N=0,NELM={nelm}")',
        f'dbLoadRecords("xrf_element.db", "P={P},R=xrf:,PORT=XRF,N=1,NELM={nelm}")')


pv = pv_under(P + "xrf:")


def text(name):
    return bytes(pv(name).get()).split(b"\0")[0].decode()


def maps_of(name_prefix):
    return [np.asarray(pv(f"{name_prefix}{c}").get()[: SIZE * SIZE]).reshape(SIZE, SIZE) for c in range(2)]


def test_zmq_fly_scan_gives_the_batch_maps_as_pvs(start_ioc, tmp_path):
    ioc = start_ioc(st_cmd(tmp_path))
    cfg = CONFIGS["feni"]
    simulate(cfg, tmp_path / "sim.h5", size=SIZE, alpha=0.2, nu=5)
    batch = correct(cfg, tmp_path / "sim.h5", tmp_path / "batch.h5")
    wait_for(lambda: pv("Elements_RBV").get() == "Fe Ni", what="the element list")
    wait_for(lambda: text("PullEndpoint_RBV").startswith("tcp://127.0.0.1:"), what=f"the endpoint\n{ioc.log()}")
    endpoint = text("PullEndpoint_RBV")
    run([BIN / "reloc-sim-xrf", "--config", cfg, "--size", SIZE, "--alpha", 0.2, "--nu", 5, "--push", endpoint,
         "--direction", "ascending", "--chunk-lines", 5, "--scan", 7])
    wait_for(lambda: pv("Ended_RBV").get() == 1, what="the scan to end")
    assert pv("Progress_RBV").get() == pytest.approx(100)
    assert pv("ScanId_RBV").get() == 7 and pv("ChunksAccepted_RBV").get() >= 5
    assert pv("ChunksRejected_RBV").get() == 0 and pv("LastStatus_RBV").get() == "ok"
    corrected, fractions = maps_of("Corrected"), maps_of("Fraction")
    for c, symbol in enumerate(["Fe", "Ni"]):
        np.testing.assert_allclose(corrected[c], batch["corrected"][symbol], rtol=1e-9)
        np.testing.assert_allclose(fractions[c], batch["fractions"][symbol], rtol=1e-9)
    assert (tmp_path / "scans" / "xrf_scan_7.h5").exists()


def push(header, parts=()):
    pv("ChunkHeader").put(json.dumps(header), wait=True)
    if parts:
        pv("ChunkData").put(np.concatenate([np.ravel(p) for p in parts]), wait=True)
    pv("ChunkPush").put(1, wait=True)


def test_pv_chunks_bad_chunks_abort_and_a_new_scan(start_ioc, tmp_path):
    start_ioc(st_cmd(tmp_path))
    cfg = CONFIGS["feni"]
    sim = simulate(cfg, tmp_path / "sim.h5", size=SIZE, alpha=0.0, nu=0)
    raw, i0 = sim["raw"], sim["I0"]
    elements = ["Fe", "Ni"]

    def chunk(scan, seq, row, rows):
        header = {"type": "chunk", "scan": scan, "seq": seq, "row": row, "rows": rows, "width": SIZE, "elements": elements}
        return header, [raw[e][row:row + rows] for e in elements] + [i0[row:row + rows]]

    push({"type": "start", "scan": 1, "width": SIZE, "height": SIZE, "direction": "descending", "axis": "y",
          "elements": elements})
    wait_for(lambda: pv("Active_RBV").get() == 1, what="the scan to start")
    push(*chunk(1, 0, SIZE - 4, 4))                       # detector side first: final at once
    wait_for(lambda: pv("RowsFinal_RBV").get() == 4, what="4 final rows")
    accepted = pv("ChunksAccepted_RBV").get()
    header, parts = chunk(1, 2, SIZE - 12, 4)             # seq 1 skipped: out of order
    push(header, parts)
    wait_for(lambda: pv("ChunksRejected_RBV").get() == 1, what="an out-of-order rejection")
    assert pv("LastStatus_RBV").get() != "ok" and pv("LastStatus_RBV.SEVR").get() >= 1
    header, parts = chunk(1, 1, SIZE - 8, 4)
    push(header, [p[:, :-1] for p in parts])              # truncated data
    wait_for(lambda: pv("ChunksRejected_RBV").get() == 2, what="a truncated-chunk rejection")
    assert text("LastError_RBV")
    assert pv("ChunksAccepted_RBV").get() == accepted and pv("RowsFinal_RBV").get() == 4   # nothing corrupted
    pv("Abort").put(1, wait=True)
    wait_for(lambda: pv("Active_RBV").get() == 0, what="the abort")

    push({"type": "start", "scan": 2, "width": SIZE, "height": SIZE, "direction": "descending", "axis": "y",
          "elements": elements})
    for seq, row in enumerate(range(SIZE - 6, -1, -6)):
        push(*chunk(2, seq, row, 6))
    push({"type": "end", "scan": 2})
    wait_for(lambda: pv("Ended_RBV").get() == 1 and pv("ScanId_RBV").get() == 2, what="scan 2 to end")
    batch = correct(cfg, tmp_path / "sim.h5", tmp_path / "batch.h5")
    corrected = maps_of("Corrected")
    for c, symbol in enumerate(elements):
        np.testing.assert_allclose(corrected[c], batch["corrected"][symbol], rtol=1e-9)
