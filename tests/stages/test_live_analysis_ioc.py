"""Live analysis in the IOC, through pyepics, on the simulated camera: the particles detected in the live
frame are the particles of the sample description and keep their IDs while the stage moves by several
particle spacings; the registration PVs report a stage move; bad parameters are refused with a message;
an empty frame gives an empty table; the table is exported to CSV and HDF5; settings survive a restart."""
import csv
import json
import subprocess
import time
from pathlib import Path

import epics
import h5py
import numpy as np
import pytest
import zmq
from scipy.spatial import cKDTree

import ioc as ioc_module
from ioc import pv_under, wait_for

TOP = Path(__file__).resolve().parents[2]
SAMPLE = TOP / "sim" / "sample_default.json"
P = "TLIVE:"
SIZE = 256

def st_cmd(tmp_path, autosave=None):
    lines = [f'autosaveSetFile "{autosave}"', "autosaveSetPeriod 0.2"] if autosave else []
    lines += ioc_module.camera(P, "CAM1", "sim", SAMPLE, SIZE, SIZE, stage=True)
    lines += [
        'cameraPreview("CAM1", "tcp://127.0.0.1:*", 80, 128, 0)',
        'detectionConfigure("DET1", "CAM1", 1000)',
        'registrationConfigure("REG1", "CAM1")',
        f'dbLoadRecords("detection.db", "P={P},R=det1:,PORT=DET1,NMAX=1000")',
        f'dbLoadRecords("registration.db", "P={P},R=reg1:,PORT=REG1")',
    ]
    return ioc_module.st_cmd(ioc_module.soft_stage(tmp_path, P), lines)


pv = pv_under(P)


def start_live_ioc(workdir):
    return ioc_module.Ioc(st_cmd(workdir, autosave=workdir / "live.sav"), workdir / "ioc",
                          env=ioc_module.session_env()).start()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """One IOC for the module (a restarted IOC's channels reconnect slowly); each test sets what it needs."""
    workdir = tmp_path_factory.mktemp("live")
    ioc = start_live_ioc(workdir)
    pv("det1:Diameter").put(7, wait=True)         # at 1 um per pixel the particles are 2-4 px across (the
                                                  # defaults suit the default IOC's 3.45 um pixels)
    pv("det1:MinMass").put(280, wait=True)        # above the noise peaks of the simulated camera
    pv("det1:MaxSize").put(1.6, wait=True)        # the sample has bright particles too: inverted, their halo
                                                  # gives wider spots, which this size limit drops
    pv("cam1:ImageMode").put(0, wait=True)       # Single: one frame per Acquire, at a known stage position
    yield ioc
    code = ioc.stop()
    ioc.check_sanitizers()
    assert code == 0, ioc.log()[-4000:]


def frame_at(x, y, stages=("det1:", "reg1:"), pixel=1.0):
    """Moves the stage, takes one frame and waits until every analysis stage has processed it."""
    pv("pixel").put(pixel, wait=True)
    pv("samx").put(x, wait=True)
    pv("samy").put(y, wait=True)
    uid_pv = pv("cam1:UniqueId_RBV")
    before = uid_pv.get()
    assert pv("cam1:Acquire").put(1, wait=True, timeout=20)
    wait_for(lambda: uid_pv.get() > before, what="the new frame's id")
    uid = uid_pv.get()
    for stage in stages:
        wait_for(lambda: pv(stage + "FrameId_RBV").get() == uid, what=f"{stage} to process frame {uid}")
    return uid


def detections():
    count = pv("det1:Count_RBV").get()
    cols = {c: np.asarray(pv(f"det1:{c}_RBV").get())[:count] for c in ("X", "Y", "Mass", "ID")}
    return count, cols


def truth(stage_x, stage_y, pixel=1.0):
    """Particles of the sample description in frame pixels: beam (the image centre) + (point - stage) / pixel."""
    sample = json.loads(SAMPLE.read_text())
    parts = [f for f in sample["features"] if f["type"] == "particle" and not f.get("removed")]
    beam = (SIZE - 1) / 2
    xy = np.array([[beam + (f["x"] - stage_x) / pixel, beam + (f["y"] - stage_y) / pixel] for f in parts])
    return xy, np.array([f["contrast"] for f in parts]), np.array([f["id"] for f in parts])


def inside(xy, margin):
    return np.all((xy >= margin) & (xy <= SIZE - 1 - margin), axis=1)


def test_particles_match_the_sample_and_keep_their_ids_while_the_stage_moves(live, tmp_path):
    truth_ids_by_detection = {}
    x0, y0, step = -20.0, 10.0, (6.0, 4.0)        # 8 steps: 48 um x 32 um, about three particle spacings
    for k in range(9):
        sx, sy = x0 + k * step[0], y0 + k * step[1]
        frame_at(sx, sy, stages=("det1:",))
        count, found = detections()
        xy, contrast, ids = truth(sx, sy)
        dark = (contrast < -0.3) & inside(xy, 8)
        found_xy = np.column_stack([found["X"], found["Y"]])
        assert count > 20
        # every dark particle is found, at its position
        dist, idx = cKDTree(found_xy).query(xy[dark])
        assert np.mean(dist < 1.0) >= 0.95, f"recall {np.mean(dist < 1.0):.2f} at stage {sx}, {sy}"
        assert np.sqrt(np.mean(dist[dist < 1.0] ** 2)) < 0.3
        # every detection is a particle of the sample (no noise peaks)
        dist_back, which = cKDTree(xy).query(found_xy)
        assert np.mean(dist_back < 1.5) >= 0.97
        # a detection keeps its ID: the same ID always stands for the same sample particle
        for det_id, truth_index, d in zip(found["ID"], which, dist_back):
            if d < 1.0:
                truth_ids_by_detection.setdefault(int(det_id), set()).add(int(ids[truth_index]))
        assert len(set(found["ID"].tolist())) == count, "IDs of one frame must be unique"
    assert all(len(v) == 1 for v in truth_ids_by_detection.values()), "an ID jumped to another particle"
    # particles seen from start to end kept one ID; a linker without the stage prior would have lost them
    per_particle = {}
    for det_id, truth_set in truth_ids_by_detection.items():
        per_particle.setdefault(next(iter(truth_set)), []).append(det_id)
    assert sum(len(v) == 1 for v in per_particle.values()) >= 0.9 * len(per_particle)
    assert pv("det1:Status").get() == 0


def test_export_of_the_table_to_csv_and_hdf5(live, tmp_path):
    uid = frame_at(15.0, -30.0, stages=("det1:",))
    count, found = detections()
    assert count > 20
    out_csv = tmp_path / "table.csv"
    pv("det1:ExportPath").put(str(out_csv), wait=True)
    assert pv("det1:Export").put(1, wait=True, timeout=10)
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == count
    np.testing.assert_allclose([float(r["x"]) for r in rows], found["X"], atol=1e-6)
    np.testing.assert_array_equal([int(r["particle"]) for r in rows], found["ID"])
    assert {int(r["frame"]) for r in rows} == {uid}
    out_h5 = tmp_path / "table.h5"
    pv("det1:ExportPath").put(f"{out_h5}:/live", wait=True)
    assert pv("det1:Export").put(1, wait=True, timeout=10)
    with h5py.File(out_h5, "r") as f:
        np.testing.assert_allclose(f["live/y"][()], found["Y"], atol=1e-9)
        np.testing.assert_allclose(f["live/mass"][()], found["Mass"], rtol=1e-9)
    assert pv("det1:Export.SEVR").get() == 0
    # a directory that does not exist: the put fails, the record alarms and the message says why
    pv("det1:ExportPath").put(str(tmp_path / "missing" / "t.csv"), wait=True)
    pv("det1:Export").put(1, wait=True, timeout=10)
    assert pv("det1:Export.SEVR").get() != 0
    assert "cannot write" in pv("det1:Message").get(as_string=True)


@pytest.mark.parametrize("pixel", [1.0, 0.5])
def test_registration_reports_the_stage_move(live, tmp_path, pixel):
    x0, y0 = 30.0, -12.0
    take = pv("reg1:TakeReference")
    take.put(1, use_complete=True)
    frame_at(x0, y0, stages=("reg1:",), pixel=pixel)
    wait_for(lambda: take.put_complete, what="the reference taken")
    assert pv("reg1:ReferenceWidth_RBV").get() == SIZE
    for dx, dy in [(7.3, -4.6), (-11.8, 2.2)]:
        frame_at(x0 + dx, y0 + dy, stages=("reg1:",), pixel=pixel)
        assert pv("reg1:MatchOk_RBV").get() == 1
        assert pv("reg1:Confidence_RBV").get() > 10
        # the image content moves against the stage: a shift of -d
        assert pv("reg1:ShiftXUm_RBV").get() == pytest.approx(-dx, abs=0.1 * pixel)
        assert pv("reg1:ShiftYUm_RBV").get() == pytest.approx(-dy, abs=0.1 * pixel)
        assert pv("reg1:ShiftX_RBV").get() == pytest.approx(-dx / pixel, abs=0.1)
        assert pv("reg1:Scale_RBV").get() == pytest.approx(1.0)


def render(path, stage_x, stage_y, pixel):
    """The sample as the simulated microscope sees it (a reference image from elsewhere)."""
    subprocess.run([str(ioc_module.BIN / "reloc-sim-scope"), str(SAMPLE), str(path), "--size", str(SIZE), str(SIZE),
                    "--pixel-size", str(pixel), "--stage", str(stage_x), str(stage_y), "--seed", "11"],
                   check=True, capture_output=True)


def test_registration_against_a_reference_file(live, tmp_path):
    reference = tmp_path / "reference.tif"
    x0, y0, dx, dy = -35.0, 40.0, 5.4, 9.1
    render(reference, x0, y0, 1.0)
    pv("reg1:ReferencePath").put(str(reference), wait=True)
    assert pv("reg1:LoadReference").put(1, wait=True, timeout=10)
    assert pv("reg1:LoadReference.SEVR").get() == 0
    for mode in (0, 1):             # translation, then similarity
        pv("reg1:Mode").put(mode, wait=True)
        frame_at(x0 + dx, y0 + dy, stages=("reg1:",))
        assert pv("reg1:MatchOk_RBV").get() == 1, (mode, pv("reg1:ErrorPx_RBV").get(), pv("reg1:Converged_RBV").get(), pv("reg1:Iterations_RBV").get(), pv("reg1:Message").get(as_string=True))
        assert pv("reg1:ErrorPx_RBV").get() <= 0.5
        assert pv("reg1:ShiftXUm_RBV").get() == pytest.approx(-dx, abs=0.1)
        assert pv("reg1:ShiftYUm_RBV").get() == pytest.approx(-dy, abs=0.1)
        assert pv("reg1:Rotation_RBV").get() == pytest.approx(0, abs=0.1)
    # a file that is not there: refused, the reference stays
    pv("reg1:ReferencePath").put(str(tmp_path / "nothing.tif"), wait=True)
    pv("reg1:LoadReference").put(1, wait=True, timeout=10)
    assert pv("reg1:LoadReference.SEVR").get() != 0
    assert "cannot load" in pv("reg1:Message").get(as_string=True)


@pytest.mark.parametrize("reference_pixel", [0.5, 2.0])
def test_reference_file_of_another_pixel_size(live, tmp_path, reference_pixel):
    """An HDF5 reference that states its pixel size: smaller (partial coverage) or larger field than the frame."""
    import tifffile
    x0, y0, dx, dy = 20.0, -25.0, -6.2, 8.4
    render(tmp_path / "ref.tif", x0, y0, reference_pixel)
    with h5py.File(tmp_path / "ref.h5", "w") as f:
        f["image"] = tifffile.imread(tmp_path / "ref.tif")
        f["image"].attrs["pixel_size"] = reference_pixel
    pv("reg1:ReferencePath").put(f"{tmp_path / 'ref.h5'}:/image", wait=True)
    assert pv("reg1:LoadReference").put(1, wait=True, timeout=10)
    assert pv("reg1:ReferencePixelSize_RBV").get() == pytest.approx(reference_pixel)
    frame_at(x0 + dx, y0 + dy, stages=("reg1:",), pixel=1.0)
    assert pv("reg1:MatchOk_RBV").get() == 1, pv("reg1:Message").get(as_string=True)
    assert pv("reg1:ShiftXUm_RBV").get() == pytest.approx(-dx, abs=0.1)
    assert pv("reg1:ShiftYUm_RBV").get() == pytest.approx(-dy, abs=0.1)


BAD_PARAMETERS = [        # record, refused value, accepted value, what the message names
    ("det1:Diameter", 8, 9, "diameter"),
    ("det1:MinMass", -5, 50, "minmass"),
    ("det1:SmoothingSize", 4, 11, "smoothing_size"),
    ("det1:Percentile", 120, 50, "percentile"),
    ("det1:SearchRange", 0, 8, "search range"),
    ("det1:RoiWidth", -1, 0, "ROI"),
    ("reg1:Upsample", 0, 20, "upsample"),
    ("reg1:Iterations", 0, 5, "iterations"),
    ("reg1:Mode", 2, 1, "mode"),
]


def test_bad_parameters_are_refused_with_a_message(live, tmp_path):
    for record, bad, good, words in BAD_PARAMETERS:
        readback = pv(record + "_RBV")
        wait_for(lambda: readback.get() is not None, what="readback")
        before = readback.get()
        pv(record).put(bad, wait=True, timeout=5)
        assert pv(record + ".SEVR").get() == 3 and pv(record + ".STAT").get(as_string=True) == "WRITE", record
        message = pv(record.split(":")[0] + ":Message")
        wait_for(lambda: words.lower() in message.get(as_string=True).lower(),
                 what=lambda: f"{record}: a message naming {words} (now '{message.get(as_string=True)}')")
        assert readback.get() == before
        pv(record).put(good, wait=True, timeout=5)
        wait_for(lambda: readback.get() == good, what=f"{record}: a good value accepted")
        assert pv(record + ".SEVR").get() == 0
        pv(record).put(before, wait=True, timeout=5)        # the other tests share this IOC
    # an export path that names no known format is refused before anything is written
    pv("det1:ExportPath").put(str(tmp_path / "table.txt"), wait=True)
    pv("det1:Export").put(1, wait=True, timeout=5)
    assert pv("det1:Export.SEVR").get() == 3
    wait_for(lambda: ".csv" in pv("det1:Message").get(as_string=True), what="a message naming .csv")


def test_an_empty_frame_gives_an_empty_table(live, tmp_path):
    frame_at(0.0, 0.0, stages=("det1:",))
    assert pv("det1:Count_RBV").get() > 20
    frame_at(5000.0, 5000.0, stages=("det1:",))     # bare substrate, far from every feature
    wait_for(lambda: pv("det1:Count_RBV").get() == 0, what=lambda: f"an empty table (now {detections()})")
    assert pv("det1:X_RBV.NORD").get() == 0             # the table's waveforms are empty too
    assert pv("det1:Status").get() == 0
    assert pv("det1:Status.SEVR").get() == 0


def test_detection_in_an_roi_and_disabled(live):
    frame_at(0.0, 0.0, stages=("det1:",))
    full = detections()[1]
    roi = {"RoiX": 40, "RoiY": 60, "RoiWidth": 120, "RoiHeight": 100}
    for name, value in roi.items():
        pv("det1:" + name).put(value, wait=True)
    try:
        frame_at(0.0, 0.0, stages=("det1:",))
        count, found = detections()
        # positions stay in full-frame pixels; the ROI keeps the features away from its edges
        in_roi = ((full["X"] > 40 + 4) & (full["X"] < 160 - 4) & (full["Y"] > 60 + 4) & (full["Y"] < 160 - 4))
        assert count >= in_roi.sum() > 5
        assert np.all((found["X"] >= 40) & (found["X"] < 160) & (found["Y"] >= 60) & (found["Y"] < 160))
        # an ROI beyond the frame: the stage reports the error, and recovers when the ROI fits again
        pv("det1:RoiX").put(200, wait=True)
        frame_at(0.0, 0.0, stages=("det1:",))
        assert pv("det1:Status").get() == 1 and pv("det1:Status.SEVR").get() == 2
        assert "roi" in pv("det1:Message").get(as_string=True).lower()
    finally:
        for name in roi:
            pv("det1:" + name).put(0, wait=True)
    frame_at(0.0, 0.0, stages=("det1:",))
    assert pv("det1:Status").get() == 0 and pv("det1:Message").get(as_string=True) == "OK"
    # disabled: frames go by unanalysed
    processed = pv("det1:Processed_RBV").get()
    pv("det1:Enable").put(0, wait=True)
    try:
        frame_at(0.0, 0.0, stages=())
        time.sleep(0.3)
        assert pv("det1:Processed_RBV").get() == processed
    finally:
        pv("det1:Enable").put(1, wait=True)


def test_results_reach_the_preview(live):
    endpoint = bytes(pv("Preview1:Endpoint_RBV").get()).split(b"\0")[0].decode()
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    try:
        take = pv("reg1:TakeReference")
        take.put(1, use_complete=True)
        frame_at(10.0, 10.0)
        wait_for(lambda: take.put_complete, what="the reference taken")
        time.sleep(0.3)                                 # the subscription is in place
        analysed = frame_at(12.5, 10.0)                 # results of this frame go with the next previews
        count = pv("det1:Count_RBV").get()
        frame_at(12.5, 10.0)
        deadline = time.monotonic() + 10
        while True:
            assert sub.poll(max(1, int((deadline - time.monotonic()) * 1000))), "no preview with the results"
            meta = json.loads(sub.recv_multipart()[0])
            if meta.get("detection", {}).get("frame") == analysed and meta.get("registration", {}).get("frame") == analysed:
                break
        assert meta["detection"]["count"] == count
        assert meta["registration"]["shift_um"][0] == pytest.approx(-2.5, abs=0.1)
        assert meta["registration"]["match"] is True
    finally:
        sub.close(0)
        context.term()


def test_settings_survive_a_restart(live):
    """Last in the module: restarts the module's IOC."""
    pv("det1:Diameter").put(9, wait=True)
    pv("det1:Percentile").put(55, wait=True)
    pv("reg1:Upsample").put(40, wait=True)
    save = live.workdir.parent / "live.sav"
    wait_for(lambda: save.exists() and 'det1:Percentile.VAL "55' in save.read_text()
             and 'reg1:Upsample.VAL "40"' in save.read_text(), what="the save file")
    assert live.stop() == 0
    epics.ca.clear_cache()          # fresh channels find the new IOC at once
    again = start_live_ioc(live.workdir.parent)
    try:
        # the restored values reached the drivers: the readbacks come from the parameter ports
        wait_for(lambda: pv("det1:Diameter_RBV").get() == 9, what="Diameter restored")
        assert pv("det1:Percentile_RBV").get() == pytest.approx(55)
        assert pv("reg1:Upsample_RBV").get() == 40
    finally:
        assert again.stop() == 0
        again.check_sanitizers()
