"""tests/stagemap/reloc_scene.py -- the relocalization scene shared by test_relocalization.py and
demo/demo_relocalization.py: an SEM-like reference of the sample as described (nominal mount), the same sample
remounted with an offset and rotation unknown to the IOC, 20 well-separated particles chosen in the reference plus
one that has since come off, the st.cmd of an IOC with the simulated motors and camera, and the PV settings of a
run (prior geometry = nominal mount)."""
import csv
import itertools
import io
import json
import subprocess

import epics
import numpy as np

import ioc as ioc_module
from ioc import wait_for

TOP = ioc_module.TOP
BIN = ioc_module.BIN
MOUNT = (230.0, -170.0, 3.0)          # um, um, degrees: unknown to the IOC
REF_PIXEL = 0.5                        # SEM pixel size (um)
REF_SIZE = 1400
LIVE_PIXEL = 0.25
LIVE_SIZE = 512
STATUS = {0: "pending", 1: "found", 2: "ambiguous", 3: "not found", 4: "aborted", 5: "not converged"}


def true_stage(x, y):
    a = np.radians(MOUNT[2])
    return np.array([np.cos(a) * x - np.sin(a) * y + MOUNT[0], np.sin(a) * x + np.cos(a) * y + MOUNT[1]])


def make_scene(tmp):
    """Writes the reference image and the remounted sample into tmp; returns the scene as a dict."""
    sample = json.loads((TOP / "sim" / "sample_default.json").read_text())
    ref_tif = tmp / "sem.tif"
    out = subprocess.run([str(BIN / "reloc-sim-scope"), str(TOP / "sim" / "sample_default.json"), str(ref_tif),
                          "--size", str(REF_SIZE), str(REF_SIZE), "--pixel-size", str(REF_PIXEL), "--seed", "7"],
                         capture_output=True, text=True, check=True).stdout
    truth = {int(r["id"]): r for r in csv.DictReader(io.StringIO(out))}
    particles = [f for f in sample["features"] if f["type"] == "particle"]
    xy = np.array([[f["x"], f["y"]] for f in particles])
    # an operator picks particles that stand clear of their neighbours and show good contrast
    rng = np.random.default_rng(11)
    eligible = []
    for i, f in enumerate(particles):
        d = np.hypot(*(xy - xy[i]).T)
        d[i] = np.inf
        if d.min() > 8 and abs(f["contrast"]) > 0.35 and f["size"] > 0.7 and max(abs(f["x"]), abs(f["y"])) < 280:
            eligible.append(i)
    chosen = list(rng.choice(eligible, size=21, replace=False))
    particles[chosen[-1]]["removed"] = 1
    sample["mount"] = {"x": MOUNT[0], "y": MOUNT[1], "rotation_deg": MOUNT[2]}
    remounted = tmp / "remounted.json"
    remounted.write_text(json.dumps(sample))
    pixels = np.array([[float(truth[particles[i]["id"]]["x_px"]), float(truth[particles[i]["id"]]["y_px"])]
                       for i in chosen])
    stages = np.array([true_stage(particles[i]["x"], particles[i]["y"]) for i in chosen])
    return dict(ref=ref_tif, sample=remounted, pixels=pixels, stages=stages, tmp=tmp)


def stage_st_cmd(prefix, body):
    """An st.cmd with the simulated sample stage motors, body (drivers, records), then iocInit."""
    return ioc_module.st_cmd(ioc_module.sample_stage(prefix), body)


def map_sync(prefix, _count=itertools.count(1)):
    """Waits until every stage-map readback reflects the writes made so far (Map:Sync is processed after them)."""
    n = next(_count)
    epics.caput(prefix + "Map:Sync", n, wait=True, timeout=10)
    wait_for(lambda: epics.caget(prefix + "Map:Sync_RBV", timeout=5) == n, 15, "the stage-map readbacks to settle")


def st_cmd(scene, prefix):
    (scene["tmp"] / "stage_um.db").write_text(f"""
record(calc, "{prefix}samx_um") {{ field(INPA, "{prefix}samx.RBV CP") field(CALC, "A*1000") }}
record(calc, "{prefix}samy_um") {{ field(INPA, "{prefix}samy.RBV CP") field(CALC, "A*1000") }}
record(ao, "{prefix}live_pixel_size") {{ field(VAL, "{LIVE_PIXEL}") field(PINI, "YES") }}
""")
    return stage_st_cmd(prefix, f"""cameraConfigure "CAM" "sim" "{scene['sample']}" {LIVE_SIZE} {LIVE_SIZE}
cameraStage "CAM" "{prefix}samx_um" "{prefix}samy_um" "" "{prefix}live_pixel_size"
dbLoadRecords "camera.db" "P={prefix},PORT=CAM,NELM={LIVE_SIZE * LIVE_SIZE},XSIZE={LIVE_SIZE},YSIZE={LIVE_SIZE}"
dbLoadRecords "{scene['tmp'] / 'stage_um.db'}" ""
stagemapConfigure "MAP" "{prefix}samx" "{prefix}samy" "{TOP / 'protocols' / 'scan_engines.json'}"
stagemapCamera "MAP" "CAM"
dbLoadRecords "stagemap.db" "P={prefix},PORT=MAP\"""")


def prepare_run(scene, prefix):
    """The operator's settings: the nominal mount as prior, the live camera geometry, the reference and the
    chosen particles; moves enabled and the camera acquiring."""
    def put(name, value):
        assert epics.caput(prefix + name, value, wait=True, timeout=30) == 1, name

    centre = (REF_SIZE - 1) / 2
    for k, v in dict(PixelSizeX=REF_PIXEL, PixelSizeY=REF_PIXEL, RefPixelX=centre, RefPixelY=centre, RefStageX=0,
                     RefStageY=0, Rotation=0, FlipX=0, FlipY=0).items():
        put("Ref:" + k, v)
    for k, v in dict(PixelSizeX=LIVE_PIXEL, PixelSizeY=LIVE_PIXEL, BeamX=(LIVE_SIZE - 1) / 2,
                     BeamY=(LIVE_SIZE - 1) / 2, Rotation=0).items():
        put("Live:" + k, v)
    put("Reloc:RefPath", str(scene["ref"]))
    put("Reloc:LiveDiameter", 17)               # 4.25 um: the largest particles (2.9 um across) fit the mask
    put("Particles", scene["pixels"].ravel())
    put("Move:Enable", 1)
    epics.caput(prefix + "cam1:Acquire", 1)     # continuous: a put-callback would wait for the end
