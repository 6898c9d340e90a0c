"""tests/stagemap/reloc_scene.py -- the relocalization scene shared by test_relocalization.py and
demo/demo_relocalization.py. The sample (sim/sample_default.json, 21 well-separated particles chosen in it, the
last of which has since come off) sits on the stage under the simulated camera. A remount -- offset (um),
rotation (deg, any), scale error of the reference's pixel size and a mirror -- is what the IOC does not know:
the SEM-like reference is rendered so that the prior the operator gives (pixel size, reference pixel at
Ref:RefStage, no rotation, no flip unless told) is off by exactly that remount, i.e. true = remount(prior).
One IOC session can therefore run many remounts: each is a new reference file, particle list and prior.
Ground truth (where each particle is on the stage) comes from the sample description."""
import csv
import itertools
import io
import json
import subprocess
from dataclasses import dataclass

import epics
import numpy as np

import ioc as ioc_module
from ioc import wait_for

TOP = ioc_module.TOP
BIN = ioc_module.BIN
REF_PIXEL = 0.5                        # the SEM pixel size the operator believes (um)
REF_SIZE = 1400
LIVE_PIXEL = 0.25
LIVE_SIZE = 512
STATUS = {0: "pending", 1: "found", 2: "ambiguous", 3: "not found", 4: "aborted", 5: "not converged"}
RESULT = {0: "Running", 1: "Done", 2: "No match", 3: "Aborted", 4: "Failed", 5: "Out of focus"}


@dataclass(frozen=True)
class Remount:
    """How the sample lies against the prior: the reference pixel Ref:RefPixel moved by (x, y) um, the sample
    turned by rotation degrees about it, the reference's pixel size off by scale, and mirrored (flip: the
    reference shows it flipped in x)."""
    x: float
    y: float
    rotation: float
    scale: float = 1.0
    flip: bool = False

    def __str__(self):
        return (f"({self.x:.0f}, {self.y:.0f}) um, {self.rotation:g} deg, scale {self.scale:g}"
                + (", mirrored" if self.flip else ""))


MOUNT = Remount(230.0, -170.0, 3.0)


def random_remounts(count, seed, max_offset=300.0):
    """Remounts with rotation uniform over the circle, offset up to max_offset um, scale 0.9..1.1."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        r, a = max_offset * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        out.append(Remount(round(r * np.cos(a), 1), round(r * np.sin(a), 1), round(rng.uniform(-180, 180), 2),
                           round(rng.uniform(0.9, 1.1), 3)))
    return out


def make_scene(tmp, defocus_um=None):
    """Writes the sample under the camera (the chosen particle 21 removed) into tmp; returns the scene.
    defocus_um: the camera sees the sample blurred to this point-spread sigma (the sample height changed)."""
    sample = json.loads((TOP / "sim" / "sample_default.json").read_text())
    particles = [f for f in sample["features"] if f["type"] == "particle"]
    xy = np.array([[f["x"], f["y"]] for f in particles])
    # an operator picks particles that stand clear of their neighbours and show good contrast, well inside the
    # reference (a disc, so that they stay in it at any rotation)
    rng = np.random.default_rng(11)
    eligible = []
    for i, f in enumerate(particles):
        d = np.hypot(*(xy - xy[i]).T)
        d[i] = np.inf
        if d.min() > 8 and abs(f["contrast"]) > 0.35 and f["size"] > 0.7 and np.hypot(f["x"], f["y"]) < 270:
            eligible.append(i)
    chosen = list(rng.choice(eligible, size=21, replace=False))
    ids = [particles[i]["id"] for i in chosen]
    nominal = tmp / "sample.json"
    nominal.write_text(json.dumps(sample))
    particles[chosen[-1]]["removed"] = 1
    if defocus_um is not None:
        sample["psf_sigma"] = defocus_um
    on_stage = tmp / "sample_on_stage.json"
    on_stage.write_text(json.dumps(sample))
    stages = np.array([[particles[i]["x"], particles[i]["y"]] for i in chosen])
    return dict(nominal=nominal, sample=on_stage, ids=ids, stages=stages, tmp=tmp)


def foreign_sample(tmp):
    """Another sample: as many particles, placed anew, no markers; nothing on it matches the scene's sample."""
    sample = json.loads((TOP / "sim" / "sample_default.json").read_text())
    rng = np.random.default_rng(2027)
    particles = [f for f in sample["features"] if f["type"] == "particle"]
    for f in particles:
        f["x"], f["y"] = (round(float(v), 3) for v in rng.uniform(-240, 240, 2))
    sample["features"] = particles
    path = tmp / "foreign_sample.json"
    path.write_text(json.dumps(sample))
    return path


def make_reference(scene, remount, name="sem", sample=None):
    """Renders the reference for a remount (from the scene's sample, or another sample description); returns
    the run: reference path, the chosen particles' reference pixels, their true stage positions, the remount."""
    ref = scene["tmp"] / f"{name}.tif"
    # reference pixel c shows stage point R(rotation) F (scale * pixel size) (p - c) + view centre; the prior
    # puts c at -offset with no rotation, no flip and the nominal pixel size: true = remount(prior)
    args = [str(BIN / "reloc-sim-scope"), str(sample or scene["nominal"]), str(ref), "--size", str(REF_SIZE),
            str(REF_SIZE), "--pixel-size", str(REF_PIXEL * remount.scale), "--rotation", str(remount.rotation),
            "--seed", "7"] + (["--flip-x"] if remount.flip else [])
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    truth = {int(r["id"]): r for r in csv.DictReader(io.StringIO(out))}
    inside = [i for i in sorted(truth) if all(50 < float(truth[i][k]) < REF_SIZE - 50 for k in ("x_px", "y_px"))]
    ids = scene["ids"] if sample is None else inside[:21]
    pixels = np.array([[float(truth[i]["x_px"]), float(truth[i]["y_px"])] for i in ids])
    return dict(ref=ref, pixels=pixels, stages=scene["stages"], remount=remount)


def stage_st_cmd(prefix, body):
    """An st.cmd with the simulated sample stage motors, body (drivers, records), then iocInit."""
    return ioc_module.st_cmd(ioc_module.sample_stage(prefix), body)


def map_sync(prefix, _count=itertools.count(1)):
    """Waits until every stage-map readback reflects the writes made so far (Map:Sync is processed after them)."""
    n = next(_count)
    epics.caput(prefix + "Map:Sync", n, wait=True, timeout=10)
    wait_for(lambda: epics.caget(prefix + "Map:Sync_RBV", timeout=5) == n, 15, "the stage-map readbacks to settle")


def st_cmd(scene, prefix, views='stagemapCamera "MAP" "CAM"', extra=""):
    """The IOC of the scene: simulated motors, the camera on the sample, the stage map with relocalization taking
    its views as `views` says (this IOC's camera; stagemapWorker: a worker IOC), then the extra st.cmd lines."""
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
{views}
dbLoadRecords "stagemap.db" "P={prefix},PORT=MAP"
{extra}""")


def worker_st_cmd(endpoint, prefix):
    """A worker IOC on the frames the scene's camera publishes at endpoint: relocalization's views (features
    stage feat1:) of every frame."""
    return ioc_module.st_cmd(ioc_module.camera(prefix, "WCAM", "zmq", endpoint, LIVE_SIZE, LIVE_SIZE),
                             'featuresConfigure("FEAT1", "WCAM")',
                             f'dbLoadRecords("features.db", "P={prefix},R=feat1:,PORT=FEAT1")')


def prepare_run(run, prefix, prior_flip=False):
    """The operator's settings: the prior (nominal pixel size, reference centre at -offset, no rotation, the
    flip only when told), the live camera geometry, the reference and the chosen particles; moves enabled and
    the camera acquiring."""
    def put(name, value):
        assert epics.caput(prefix + name, value, wait=True, timeout=30) == 1, name

    centre = (REF_SIZE - 1) / 2
    remount = run["remount"]
    for k, v in dict(PixelSizeX=REF_PIXEL, PixelSizeY=REF_PIXEL, RefPixelX=centre, RefPixelY=centre,
                     RefStageX=-remount.x, RefStageY=-remount.y, Rotation=0, FlipX=int(prior_flip), FlipY=0).items():
        put("Ref:" + k, v)
    for k, v in dict(PixelSizeX=LIVE_PIXEL, PixelSizeY=LIVE_PIXEL, BeamX=(LIVE_SIZE - 1) / 2,
                     BeamY=(LIVE_SIZE - 1) / 2, Rotation=0).items():
        put("Live:" + k, v)
    put("Reloc:RefPath", str(run["ref"]))
    put("Reloc:LiveDiameter", 17)               # 4.25 um: the largest particles (2.9 um across) fit the mask
    put("Particles", run["pixels"].ravel())
    put("Move:Enable", 1)
    epics.caput(prefix + "cam1:Acquire", 1)     # continuous: a put-callback would wait for the end


def results(prefix, n):
    """Per particle: status, stage position (um) and residual of the last run."""
    def get(name):
        value = epics.caget(prefix + name, timeout=5)
        assert value is not None, name
        return np.asarray(value)[:n]

    return get("Reloc:Status_RBV"), np.column_stack([get("Reloc:StageX_RBV"), get("Reloc:StageY_RBV")]), \
        get("Reloc:Residual_RBV")


def score(run, status, found):
    """found / not found / wrong counts against the truth: a "found" more than 0.5 um from the truth is wrong."""
    errors = np.hypot(*(found - run["stages"]).T)
    ok = (status[:-1] == 1) & (errors[:-1] <= 0.5)
    wrong = int(np.sum((status == 1) & ~(errors <= 0.5)))
    return dict(found=int(ok.sum()), removed_not_found=bool(status[-1] == 3), wrong=wrong,
                max_error=float(errors[status == 1].max()) if np.any(status == 1) else float("nan"))
