"""Automated relocalization with the simulators, as at the beamline: the sample was imaged in the SEM (the
reference, rendered from the sample description with the nominal mount), then remounted on the stage with an
unknown offset of hundreds of micrometres and a rotation of a few degrees. Starting from 20 particles chosen in
the reference image (and one more that has since come off the sample), the IOC matches the live camera frame to
the reference, visits every particle, and must bring each under the beam within 0.5 um of its true position
(ground truth from the sample description) and report the removed one as not found."""
import time

import epics
import numpy as np
import pytest

import ioc as ioc_module
from ioc import wait_for
from reloc_scene import MOUNT, STATUS, make_scene, prepare_run, st_cmd

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


def test_particles_are_brought_under_the_beam_and_the_removed_one_is_not_found(ioc, scene):
    prepare_run(scene, P)
    put("Reloc:Start", 1, timeout=240)          # completes when the run is over
    status = np.asarray(get("Reloc:Status_RBV"))[:21]
    final = np.column_stack([np.asarray(get("Reloc:StageX_RBV"))[:21], np.asarray(get("Reloc:StageY_RBV"))[:21]])
    residual = np.asarray(get("Reloc:Residual_RBV"))[:21]
    table = get("Reloc:Table_RBV", as_string=True)
    errors = np.hypot(*(final - scene["stages"]).T)
    report = "\n".join(f"{i}: {STATUS.get(s, s)} error {e:.3f} um residual {r:.3f}"
                       for i, (s, e, r) in enumerate(zip(status, errors, residual)))
    print(report)
    assert list(status[:20]) == [1] * 20, report + "\n" + table
    assert np.all(errors[:20] <= 0.5), report
    assert np.all(residual[:20] <= 0.5), report
    assert status[20] == 3, report
    assert get("Reloc:Found_RBV") == 20 and get("Reloc:Progress_RBV") == 100.0
    assert get("Reloc:Rotation_RBV") == pytest.approx(MOUNT[2], abs=0.1)
    assert table.count("found") == 21 and table.count("not found") == 1
    # each found particle gets its scan: a 4 um square (2 um particle + 1 um margin) in 0.5 um steps
    for k, v in dict(Engine="sardana", ParticleSize=2.0, Margin=1.0, StepX=0.5, StepY=0.5, Dwell=0.2,
                     Relative=0, Clear=1, AppendRelocated=1).items():
        put("Macro:" + k, v)
    export = scene["tmp"] / "relocated_macros.txt"
    put("Macro:ExportPath", str(export))
    put("Macro:Export", 1)
    expected = "".join(f"mesh samx {(x - 2) / 1000:.4f} {(x + 2) / 1000:.4f} 8 samy {(y - 2) / 1000:.4f} "
                       f"{(y + 2) / 1000:.4f} 8 0.2\n" for x, y in final[:20])
    assert export.read_text() == expected
    # the last particle visited (the removed one) left the stage near where it should have been
    last = get("samx.RBV") * 1000, get("samy.RBV") * 1000
    assert np.hypot(last[0] - scene["stages"][20][0], last[1] - scene["stages"][20][1]) < 3.0


def test_pause_holds_resume_continues_abort_stops_the_motors(ioc, scene):
    put("samx", 0.0)
    put("samy", 0.0)
    epics.caput(P + "Reloc:Start", 1, wait=False)
    wait_for(lambda: get("Reloc:Current_RBV") >= 1, 30)
    put("Reloc:Pause", 1)                            # the step under way finishes, then the run holds
    wait_for(lambda: get("Reloc:State_RBV", as_string=True) == "paused", 20)
    held = get("Reloc:Current_RBV")
    time.sleep(1.0)
    assert get("Reloc:Current_RBV") == held and get("samx.DMOV") == 1 and get("Move:Busy_RBV") == 1
    put("Reloc:Pause", 0)
    wait_for(lambda: get("Reloc:Current_RBV") > held, 20)
    put("Reloc:Abort", 1)
    wait_for(lambda: get("Move:Busy_RBV") == 0, 10)
    status = np.asarray(get("Reloc:Status_RBV"))[:21]
    assert 4 in status and get("samx.DMOV") == 1 and get("samy.DMOV") == 1
    assert "aborted" in get("Reloc:State_RBV", as_string=True)


def test_a_run_that_cannot_start_says_why(ioc, scene, tmp_path):
    put("Reloc:RefPath", str(tmp_path / "missing.tif"))
    epics.caput(P + "Reloc:Start", 1, wait=True, timeout=30)
    wait_for(lambda: "missing.tif" in get("Reloc:State_RBV", as_string=True), 10)
    wait_for(lambda: get("Move:Busy_RBV") == 0 and get("Map:Status_RBV") == 1, 10)
    put("Reloc:RefPath", str(scene["ref"]))
    put("Move:Enable", 0)
    epics.caput(P + "Reloc:Start", 1, wait=True, timeout=30)
    wait_for(lambda: "disabled" in get("Map:Message_RBV", as_string=True), 5)
    put("Move:Enable", 1)
    epics.caput(P + "Reloc:LiveDiameter", 16, wait=True)
    wait_for(lambda: "odd" in get("Map:Message_RBV", as_string=True), 5)
