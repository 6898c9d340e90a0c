"""The default IOC (iocBoot/iocreloc/st.cmd on sim/sample_default.json) as an operator starts it: with the
detection defaults, the particles it shows in $(P)det1: and in the web view's "go to" list are the sample's
particles. Checked through pyepics and HTTP at stage positions that put the membrane window's edge, the
fiducial markers and the open membrane in view, against the ground truth that bin/reloc-sim-scope prints for
the same view. The same frames with the edge rejection (MaxSize) turned off show why it is there."""
import csv
import io
import json
import os
import subprocess
import time
import urllib.request

import epics
import numpy as np
import pytest
from scipy.spatial import cKDTree

import ioc as ioc_module
from ioc import wait_for

P = "TDDI:"
SAMPLE = ioc_module.TOP / "sim" / "sample_default.json"
MATCH_PX = 1.5     # a detection within 1.5 px of a particle of the sample is that particle
# Stage positions (mm): open membrane, the window's edge through the middle of the image, the edge with a
# corner marker, markers on the left, the edge near the bottom, and the right-hand markers.
POSITIONS = [(0.0, 0.0), (0.0, 0.3), (0.15, 0.28), (-0.25, -0.25), (-0.1, 0.31), (0.26, 0.02)]


def pv(name):
    channel = epics.PV(P + name, auto_monitor=False)
    assert channel.wait_for_connection(15), f"{P}{name} did not connect"
    return channel


@pytest.fixture(scope="module")
def default_ioc(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("default_ioc")
    env = ioc_module.server_env(int(os.environ["EPICS_CA_SERVER_PORT"]), int(os.environ["EPICS_CA_REPEATER_PORT"]))
    env.update(RELOC_AUTOSAVE_FILE=str(workdir / "reloc.sav"), RELOC_PREFIX=P, RELOC_XRF_OUT_DIR=str(workdir),
               RELOC_TOP=str(ioc_module.TOP))
    boot = ioc_module.TOP / "iocBoot" / "iocreloc"
    ioc = ioc_module.Ioc(f"cd {boot}\n< st.cmd\n", workdir / "ioc", env=env, timeout=60).start()
    wait_for(lambda: all(pv(f"{m}.SEVR").get() == 0 for m in ("samx", "samy", "zoom")), 30,
             "the motors to reach their controller")
    assert pv("cam1:ImageMode").put(0, wait=True)        # Single: one frame per Acquire, at a known position
    yield ioc
    code = ioc.stop()
    ioc.check_sanitizers()
    assert code == 0, ioc.log()[-4000:]


def frame_at(x_mm, y_mm):
    """Moves the stage through its motor records, takes one frame, waits until det1 has processed it, and
    returns the table and the view (size, pixel size, stage position in um) the frame was taken with."""
    assert pv("samx").put(x_mm, wait=True, timeout=60) and pv("samy").put(y_mm, wait=True, timeout=60)
    uid = pv("cam1:UniqueId_RBV")
    before = uid.get()
    assert pv("cam1:Acquire").put(1, wait=True, timeout=30)
    wait_for(lambda: uid.get() > before, 15, "a new frame")
    frame_id = uid.get()
    wait_for(lambda: pv("det1:FrameId_RBV").get() == frame_id, 15, f"det1 to process frame {frame_id}")
    count = pv("det1:Count_RBV").get()
    xy = np.column_stack([np.asarray(pv(f"det1:{c}_RBV").get())[:count] for c in ("X", "Y")]).reshape(-1, 2)
    view = {"width": pv("image1:ArraySize0_RBV").get(), "height": pv("image1:ArraySize1_RBV").get(),
            "pixel": pv("cam1:PixelSize_RBV").get(),
            "stage_x": pv("samx.RBV").get() * 1000 + pv("pssx.RBV").get(),
            "stage_y": pv("samy.RBV").get() * 1000 + pv("pssy.RBV").get()}
    return xy, view


def ground_truth(view, tmp_path):
    """Pixel and stage positions of the sample's particles in this view, as reloc-sim-scope renders it."""
    out = subprocess.run([str(ioc_module.BIN / "reloc-sim-scope"), str(SAMPLE), str(tmp_path / "truth.tif"),
                          "--size", str(view["width"]), str(view["height"]), "--pixel-size", str(view["pixel"]),
                          "--stage", str(view["stage_x"]), str(view["stage_y"])],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    rows = [r for r in csv.DictReader(io.StringIO(out)) if r["removed"] == "0"]
    pixels = np.array([[float(r["x_px"]), float(r["y_px"])] for r in rows])
    stage = np.array([[float(r["stage_x"]), float(r["stage_y"])] for r in rows])
    return pixels, stage


def false_detections(xy, truth_pixels):
    if len(xy) == 0:
        return 0
    distance, _ = cKDTree(truth_pixels).query(xy)
    return int(np.sum(distance > MATCH_PX))


def test_defaults_show_only_real_particles(default_ioc, tmp_path):
    assert pv("det1:MaxSize_RBV").get() > 0, "the edge rejection is on by default"
    found = false = 0
    for x_mm, y_mm in POSITIONS:
        xy, view = frame_at(x_mm, y_mm)
        truth, _ = ground_truth(view, tmp_path)
        wrong = false_detections(xy, truth)
        assert len(xy) - wrong >= 20, f"only {len(xy) - wrong} particles found at {x_mm}, {y_mm} mm"
        assert wrong <= 0.1 * len(xy), f"{wrong} of {len(xy)} detections false at {x_mm}, {y_mm} mm"
        found += len(xy)
        false += wrong
    assert false <= 0.05 * found, f"{false} of {found} detections are not particles of the sample"


def test_without_the_edge_rejection_the_edge_gives_false_particles(default_ioc, tmp_path):
    """The window's edge and the markers are what MaxSize rejects: without it they are most of the table."""
    assert pv("det1:MaxSize").put(0, wait=True)
    try:
        xy, view = frame_at(0.0, 0.3)
        truth, _ = ground_truth(view, tmp_path)
        assert false_detections(xy, truth) > 0.2 * len(xy)
    finally:
        assert pv("det1:MaxSize").put(1.1, wait=True)


def web_particles(stream, accept, timeout=20.0):
    """Reads the web view's state stream (it sends the parts of the state that changed) until the particle
    list satisfies accept(list); returns it, or fails with the last list seen."""
    deadline = time.monotonic() + timeout
    event, latest = None, None
    while time.monotonic() < deadline:
        line = stream.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "state":
            latest = json.loads(line[6:]).get("particles", latest)
            if latest is not None and accept(np.array(latest).reshape(-1, 2)):
                return np.array(latest)
    raise AssertionError(f"the web view's particle list never held only the table's real particles: {latest}")


def test_web_go_to_list_holds_only_real_particles(default_ioc, tmp_path):
    port = pv("web:Port")
    wait_for(lambda: (port.get() or 0) > 0, 10, "web:Port")
    # the web view places the particles by the frames it encodes, which it does while a browser watches
    with urllib.request.urlopen(f"http://127.0.0.1:{port.get()}/events", timeout=10) as stream:
        xy, view = frame_at(0.0, 0.3)
        truth_pixels, truth_stage = ground_truth(view, tmp_path)
        assert len(xy) - false_detections(xy, truth_pixels) >= 20

        def only_real_particles(listed):
            """The whole table, each "go to" target putting a particle of the sample on the beam (to the
            matching tolerance, in um); the list may lag the table by a frame while it updates."""
            if len(listed) != len(xy):
                return False
            distance, _ = cKDTree(truth_stage).query(listed)
            return np.mean(distance <= MATCH_PX * view["pixel"]) >= 0.95

        web_particles(stream, only_real_particles)
