"""Automated relocalization with the simulators, as at the beamline: the sample was imaged in the SEM (the
reference), then remounted on the stage -- an offset of hundreds of micrometres, any rotation, a pixel-size error
of the SEM of up to 10 %, possibly mirrored -- none of which the IOC is told. Starting from particles chosen in the
reference (and one that has since come off the sample), the IOC finds the sample (searching the stage when the
first view shows nothing usable), reports the mount it found, visits every particle and must bring each under the
beam within 0.5 um of its true position (ground truth from the sample description), report the removed one as not
found, and never report a wrong particle as found. A reference of another sample must stop the run before any
particle is reported. One IOC session runs every remount (each is a new reference, particle list and prior)."""
import time

import epics
import numpy as np
import pytest

import ioc as ioc_module
from ca_status import ECA_NORMAL, put_status
from ioc import wait_for
from reloc_scene import (MOUNT, RESULT, STATUS, Remount, foreign_sample, make_reference, make_scene, prepare_run,
                         results, score, st_cmd)

P = "RL:"


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("reloc"))


@pytest.fixture(scope="module")
def ioc(scene):
    env = ioc_module.session_env()
    with ioc_module.Ioc(st_cmd(scene, P), scene["tmp"] / "ioc", env=env) as running:
        assert epics.caget(P + "samx.HLM", timeout=5) == 9.5
        yield running


def put(name, value, timeout=30):
    assert epics.caput(P + name, value, wait=True, timeout=timeout) == 1, name


def get(name, **kw):
    value = epics.caget(P + name, timeout=5, **kw)
    assert value is not None, name
    return value


def relocate(run, keep=None, prior_flip=False):
    """Runs relocalization of the run's particles (or those listed in keep) to its end; returns the run as
    relocated and the report of each particle."""
    if keep is not None:
        run = dict(run, pixels=run["pixels"][keep], stages=run["stages"][keep])
    prepare_run(run, P, prior_flip)
    epics.caput(P + "Reloc:Start", 1, wait=True, timeout=300)     # completes when the run is over
    n = len(run["pixels"])
    status, found, residual = results(P, n)
    errors = np.hypot(*(found - run["stages"]).T)
    report = f"remount {run['remount']}: {get('Reloc:State_RBV', as_string=True)}\n" + "\n".join(
        f"{i}: {STATUS.get(s, s)} error {e:.3f} um residual {r:.3f}"
        for i, (s, e, r) in enumerate(zip(status, errors, residual)))
    print(report)
    return run, status, found, residual, report


def assert_relocated(run, status, found, residual, report, flip_reported):
    """Every present particle found within 0.5 um, the removed one (last) not found, the mount as remounted."""
    remount = run["remount"]
    assert RESULT[get("Reloc:Result_RBV")] == "Done", report
    assert score(run, status, found) == dict(found=len(status) - 1, removed_not_found=True, wrong=0,
                                             max_error=pytest.approx(0.25, abs=0.25)), report
    assert np.all(residual[:-1] <= 0.5), report
    turned = (get("Reloc:Rotation_RBV") - remount.rotation + 180) % 360 - 180
    assert abs(turned) < 0.2, report
    assert get("Reloc:MountScale_RBV") == pytest.approx(remount.scale, abs=0.003), report
    assert get("Reloc:MountX_RBV") == pytest.approx(remount.x, abs=1.0), report
    assert get("Reloc:MountY_RBV") == pytest.approx(remount.y, abs=1.0), report
    assert get("Reloc:MountFlip_RBV") == int(flip_reported), report
    assert get("Reloc:MountRMS_RBV") < 0.3, report
    assert get("Reloc:Elapsed_RBV") > 0


def test_particles_are_brought_under_the_beam_and_the_removed_one_is_not_found(ioc, scene):
    run, status, found, residual, report = relocate(make_reference(scene, MOUNT))
    assert_relocated(run, status, found, residual, report, flip_reported=False)
    table = get("Reloc:Table_RBV", as_string=True)
    assert get("Reloc:Found_RBV") == 20 and get("Reloc:Progress_RBV") == 100.0
    assert table.count("found") == 21 and table.count("not found") == 1
    # each found particle gets its scan: a 4 um square (2 um particle + 1 um margin) in 0.5 um steps
    for k, v in dict(Engine="sardana", ParticleSize=2.0, Margin=1.0, StepX=0.5, StepY=0.5, Dwell=0.2,
                     Relative=0, Clear=1, AppendRelocated=1).items():
        put("Macro:" + k, v)
    export = scene["tmp"] / "relocated_macros.txt"
    put("Macro:ExportPath", str(export))
    put("Macro:Export", 1)
    expected = "".join(f"mesh samx {(x - 2) / 1000:.4f} {(x + 2) / 1000:.4f} 8 samy {(y - 2) / 1000:.4f} "
                       f"{(y + 2) / 1000:.4f} 8 0.2\n" for x, y in found[:20])
    assert export.read_text() == expected
    # every particle visited once (nearest first), and the last one visited left the stage near where it should
    # have been
    visits = [int(row.split(",")[-1]) for row in table.splitlines()[1:]]
    assert sorted(visits) == list(range(1, 22))
    last_visited = visits.index(21)
    last = get("samx.RBV") * 1000, get("samy.RBV") * 1000
    assert np.hypot(last[0] - run["stages"][last_visited][0], last[1] - run["stages"][last_visited][1]) < 3.0


# rotations over the whole circle (every 30 deg) and small odd ones, offsets out to 300 um (the search starts
# where the prior puts the particles, so the first views may show bare membrane), scales 0.9 and 1.1; three
# particles and the removed one each, to keep the suite short (the demo sweeps 20 random remounts of all 21)
SWEEP = [Remount(300 * np.cos(np.radians(a + 15)), 300 * np.sin(np.radians(a + 15)) * (k % 3) / 2, a,
                 (0.9, 1.0, 1.1)[k % 3]) for k, a in enumerate(range(0, 360, 30))]
SWEEP += [Remount(-140, 95, -11), Remount(230, -170, 7.3, 0.95), Remount(12, -250, 173.9)]


@pytest.mark.parametrize("remount", SWEEP, ids=str)
def test_any_rotation_offset_and_scale(ioc, scene, remount):
    assert_relocated(*relocate(make_reference(scene, remount), keep=[0, 7, 14, 20]), flip_reported=False)


def test_the_stage_is_searched_when_the_first_view_shows_nothing(ioc, scene):
    """The prior puts the particles 300 um further out than they are: its first view shows bare membrane, and
    the spiral of views walks back onto the sample."""
    keep = [5, 12, 19, 20]
    centre = scene["stages"][keep].mean(axis=0)
    away = -300 * centre / np.hypot(*centre)
    remount = Remount(float(away[0]), float(away[1]), -23.5, 1.02)
    assert_relocated(*relocate(make_reference(scene, remount), keep=keep), flip_reported=False)
    assert get("Reloc:View_RBV") > 1 and get("Reloc:Views_RBV") > get("Reloc:View_RBV")


def test_a_mirrored_mount_is_detected_and_a_known_flip_is_used(ioc, scene):
    mirrored = Remount(-120, 210, 131.0, 1.07, flip=True)
    run = make_reference(scene, mirrored)
    assert_relocated(*relocate(run, keep=[1, 8, 15, 20]), flip_reported=True)
    assert_relocated(*relocate(run, keep=[2, 9, 16, 20], prior_flip=True), flip_reported=False)
    put("Reloc:DetectFlip", 0)             # told there is no mirror: the mirrored mount is not forced to fit
    put("Reloc:SearchRadius", 150)
    try:
        run2, status, found, residual, report = relocate(run, keep=[3, 10, 20])
        assert RESULT[get("Reloc:Result_RBV")] == "No match", report
        assert list(status) == [0, 0, 0], report
    finally:
        put("Reloc:DetectFlip", 1)
        put("Reloc:SearchRadius", 400)


def test_a_sample_without_the_chosen_particles_is_not_found(ioc, scene):
    """A reference of another sample: the run searches, then stops before any particle is reported."""
    put("Reloc:SearchRadius", 150)
    try:
        run = make_reference(scene, Remount(40, -60, 40), name="foreign", sample=foreign_sample(scene["tmp"]))
        run, status, found, residual, report = relocate(run)
        assert RESULT[get("Reloc:Result_RBV")] == "No match", report
        assert "no trustworthy match" in get("Reloc:State_RBV", as_string=True)
        assert list(status) == [0] * len(status) and get("Reloc:Found_RBV") == 0, report
        assert get("Reloc:Views_RBV") > 1 and get("Reloc:View_RBV") == get("Reloc:Views_RBV")
        assert get("Map:Status_RBV") == 1
    finally:
        put("Reloc:SearchRadius", 400)


def test_pause_holds_resume_continues_abort_stops_the_motors(ioc, scene):
    prepare_run(make_reference(scene, MOUNT), P)
    put("samx", 0.0)
    put("samy", 0.0)
    epics.caput(P + "Reloc:Start", 1, wait=False)
    wait_for(lambda: get("Reloc:Progress_RBV") > 0, 60)     # a particle visited (nearest first: any index)
    put("Reloc:Pause", 1)                            # the step under way finishes, then the run holds
    wait_for(lambda: get("Reloc:State_RBV", as_string=True) == "paused", 20)
    held, current = get("Reloc:Progress_RBV"), get("Reloc:Current_RBV")
    time.sleep(1.0)
    assert get("Reloc:Progress_RBV") == held and get("Reloc:Current_RBV") == current
    assert get("samx.DMOV") == 1 and get("Move:Busy_RBV") == 1
    put("Reloc:Pause", 0)
    wait_for(lambda: get("Reloc:Progress_RBV") > held, 20)
    put("Reloc:Abort", 1)
    wait_for(lambda: get("Move:Busy_RBV") == 0, 10)
    status = np.asarray(get("Reloc:Status_RBV"))[:21]
    assert 4 in status and get("samx.DMOV") == 1 and get("samy.DMOV") == 1
    assert "aborted" in get("Reloc:State_RBV", as_string=True)
    assert RESULT[get("Reloc:Result_RBV")] == "Aborted"


def test_a_run_that_cannot_start_says_why(ioc, scene, tmp_path):
    put("Reloc:RefPath", str(tmp_path / "missing.tif"))
    epics.caput(P + "Reloc:Start", 1, wait=True, timeout=30)
    wait_for(lambda: "missing.tif" in get("Reloc:State_RBV", as_string=True), 10,
             what=lambda: f"the state naming missing.tif (now {get('Reloc:State_RBV', as_string=True)!r})")
    wait_for(lambda: get("Move:Busy_RBV") == 0 and get("Map:Status_RBV") == 1, 10)
    assert RESULT[get("Reloc:Result_RBV")] == "Failed"
    put("Reloc:RefPath", str(scene["tmp"] / "sem.tif"))
    put("Move:Enable", 0)
    epics.caput(P + "Reloc:Start", 1, wait=True, timeout=30)
    wait_for(lambda: "disabled" in get("Map:Message_RBV", as_string=True), 5)
    put("Move:Enable", 1)
    epics.caput(P + "Reloc:LiveDiameter", 16, wait=True)
    wait_for(lambda: "odd" in get("Map:Message_RBV", as_string=True), 5)
    for name, bad in [("Reloc:SearchRadius", -1), ("Reloc:MaxScaleError", 50), ("Reloc:CaptureRadius", 0)]:
        before = get(name + "_RBV")
        epics.caput(P + name, bad, wait=True)
        wait_for(lambda: name in get("Map:Message_RBV", as_string=True), 5, what=name)
        assert get(name + "_RBV") == before or (np.isnan(before) and np.isnan(get(name + "_RBV")))
    # a NaN never reaches the stage map: the put fails, the record shows WRITE/INVALID, the setting is kept
    before = get("Reloc:MatchTolerance_RBV")
    assert put_status(P + "Reloc:MatchTolerance", float("nan")) != ECA_NORMAL
    wait_for(lambda: epics.caget(P + "Reloc:MatchTolerance.SEVR") == 3, 5, what="MatchTolerance in WRITE/INVALID")
    assert get("Reloc:MatchTolerance_RBV") == before
