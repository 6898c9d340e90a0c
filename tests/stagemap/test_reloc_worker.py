"""Relocalization on two IOCs, as on a beamline with the analysis on another host: camera IOC A (simulated motors
and camera on the sample, frames published over ZeroMQ, the stage map with `stagemapWorker`) takes every view from
worker IOC B (a `zmq` camera source on A's frames, the features stage), frame-synchronised: only views of frames
exposed after a move, at the stage position of the move, with A's detection settings. B killed during a run -> the
run fails naming the worker's channel, A's link record to B goes LINK/INVALID and Reloc:Start is refused with the
reason; B restarted -> views resume and relocalization works again. Two IOCs on loopback."""
import signal

import epics
import pytest

from ca_status import ECA_NORMAL, ECA_PUTFAIL, put_status
from ioc import alarm, pv, wait_for
from reloc_scene import MOUNT, RESULT, make_reference, make_scene, prepare_run, results, score, st_cmd, worker_st_cmd

A, W = "RWA:", "RWB:"
KEEP = [0, 1, 20]                      # two particles and the removed one: the run stays short


def camera_ioc(scene, workdir):
    """A's st.cmd: the scene's IOC publishing its frames, its views from W, and a record linked to W."""
    (workdir / "worker_links.db").write_text(
        f'record(longin, "{A}w:Count") {{ field(INP, "{W}feat1:Count_RBV CP MS") }}\n')
    return st_cmd(scene, A, views=f'stagemapWorker "MAP" "{W}feat1:"',
                  extra=f'framePublishConfigure("ZMQ1", "CAM", "tcp://127.0.0.1:*", 2)\n'
                        f'dbLoadRecords("framepub.db", "P={A},R=ZMQ1:,PORT=ZMQ1")\n'
                        f'dbLoadRecords("{workdir / "worker_links.db"}")')


def start_worker(start_ioc, env, endpoint):
    worker = start_ioc(worker_st_cmd(endpoint, W), env=env)
    pv(W + "cam1:Acquire").put(1)
    wait_for(lambda: pv(W + "cam1:DetectorState_RBV").get() == 1, what="the worker acquiring")
    return worker


def text(name):
    return epics.caget(name, as_string=True, timeout=5)


def run_to_end(run):
    assert put_status(A + "Reloc:Start", 1, timeout=120) == ECA_NORMAL, text(A + "Reloc:State_RBV")
    status, found, _ = results(A, len(KEEP))
    return status, found


@pytest.fixture
def two_iocs(start_ioc, second_ioc_env, tmp_path):
    scene = make_scene(tmp_path)
    run = make_reference(scene, MOUNT)
    run = dict(run, pixels=run["pixels"][KEEP], stages=run["stages"][KEEP])
    camera = start_ioc(camera_ioc(scene, tmp_path))
    endpoint = text(A + "ZMQ1:Endpoint_RBV")
    worker = start_worker(start_ioc, second_ioc_env, endpoint)
    prepare_run(run, A)
    return camera, worker, run, endpoint


def test_relocalization_takes_its_views_from_a_worker_ioc(two_iocs, start_ioc, second_ioc_env):
    camera, worker, run, endpoint = two_iocs
    camera.wait_for_log(rf"relocalization takes its views from the worker {W}feat1:")
    status, found = run_to_end(run)
    report = f"{text(A + 'Reloc:State_RBV')}: {status} {found}"
    assert RESULT[epics.caget(A + "Reloc:Result_RBV")] == "Done", report
    assert score(run, status, found) == dict(found=2, removed_not_found=True, wrong=0,
                                             max_error=pytest.approx(0.25, abs=0.25)), report
    # the worker detected (A computes no views itself), with A's settings, on A's frames at A's stage position
    assert pv(W + "feat1:Diameter_RBV").get() == 17
    assert pv(W + "feat1:Processed_RBV").get() > 0
    view = pv(W + "feat1:View_RBV").get()
    assert view[6] == 17                                               # VIEW_DIAMETER
    assert view[2] == pytest.approx(pv(A + "samx_um").get(), abs=0.01)  # VIEW_STAGE_X, Y: where A's stage stands
    assert view[3] == pytest.approx(pv(A + "samy_um").get(), abs=0.01)

    # the worker killed during a run: the run fails with the reason
    assert put_status(A + "Move:Enable", 1) == ECA_NORMAL
    epics.caput(A + "Reloc:Start", 1)
    wait_for(lambda: any(word in text(A + "Reloc:State_RBV") for word in ("looking for the sample", "particle")),
             what="the second run under way")
    worker.stop(sig=signal.SIGKILL)
    wait_for(lambda: epics.caget(A + "Move:Busy_RBV") == 0, 30, what="the run to end")
    assert RESULT[epics.caget(A + "Reloc:Result_RBV")] == "Failed"
    assert f"relocalization's worker: {W}feat1:View_RBV: not connected" in text(A + "Reloc:State_RBV")

    # away: A's link record in LINK/INVALID, Reloc:Start refused with the reason
    wait_for(lambda: alarm(A + "w:Count") == (14, 3), what="LINK/INVALID on A's link to the worker")
    assert put_status(A + "Reloc:Start", 1) == ECA_PUTFAIL
    assert f"{W}feat1:View_RBV: not connected" in text(A + "Map:Message_RBV")

    # back: the views resume and relocalization works again
    start_worker(start_ioc, second_ioc_env, endpoint)
    wait_for(lambda: alarm(A + "w:Count") == (0, 0), 60, what="A's link to the worker without alarm again")
    status, found = run_to_end(run)
    assert score(run, status, found)["found"] == 2, text(A + "Reloc:State_RBV")
