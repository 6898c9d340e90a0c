"""Relocalization on two IOCs, as on a beamline with the analysis on another host: camera IOC A (simulated motors
and camera on the sample, frames published over ZeroMQ, the stage map with `stagemapWorker`) takes every view from
worker IOC B (a `zmq` camera source on A's frames, the features stage), frame-synchronised: only views of frames
exposed after a move, at the stage position of the move, with the detection settings A had when the run started
(written to B with completion; a refused write fails the start). A view B serves of another frame size than A's
camera makes refuses the start with the reason. B killed during a run -> the run fails naming
the worker's channel, A's link record to B goes LINK/INVALID and Reloc:Start is refused naming every channel away;
B restarted -> views resume and relocalization works again. Two IOCs on loopback."""
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
    return st_cmd(scene, A, views=f'stagemapWorker "MAP" "{W}feat1:" "CAM"',
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


def start_refused(*words):
    """Reloc:Start's put-callback fails (refused at once, or the run fails at its first view) with all words in
    Map:Message."""
    assert put_status(A + "Reloc:Start", 1, timeout=60) == ECA_PUTFAIL, text(A + "Map:Message_RBV")
    message = text(A + "Map:Message_RBV")
    assert all(word in message for word in words), message


@pytest.fixture
def two_iocs(start_ioc, second_ioc_env, tmp_path):
    scene = make_scene(tmp_path)
    run = make_reference(scene, MOUNT)
    run = dict(run, pixels=run["pixels"][KEEP], stages=run["stages"][KEEP])
    camera = start_ioc(camera_ioc(scene, tmp_path))
    endpoint = text(A + "ZMQ1:Endpoint_RBV")
    worker = start_worker(start_ioc, second_ioc_env, endpoint)
    # the worker's settings by default are the stage map's (one definition: detection.h VIEW_DEFAULT_*)
    assert pv(W + "feat1:Diameter_RBV").get() == pv(A + "Reloc:LiveDiameter_RBV").get() == 15
    assert pv(W + "feat1:MassFactor_RBV").get() == pv(A + "Reloc:MassFactor_RBV").get() == 10
    prepare_run(run, A)
    return camera, worker, run, endpoint


def test_relocalization_takes_its_views_from_a_worker_ioc(two_iocs, start_ioc, second_ioc_env):
    camera, worker, run, endpoint = two_iocs
    camera.wait_for_log(rf"relocalization takes its views from the worker {W}feat1:")
    # Reloc:LiveDiameter changed once the run is under way: the run keeps its starting 17 for every view
    epics.caput(A + "Reloc:Start", 1)
    wait_for(lambda: any(word in text(A + "Reloc:State_RBV") for word in ("looking for the sample", "particle")),
             what="the first run under way")
    assert put_status(A + "Reloc:LiveDiameter", 19) == ECA_NORMAL
    wait_for(lambda: epics.caget(A + "Move:Busy_RBV") == 0, 120, what="the first run to end")
    status, found, _ = results(A, len(KEEP))
    report = f"{text(A + 'Reloc:State_RBV')}: {status} {found}"
    assert RESULT[epics.caget(A + "Reloc:Result_RBV")] == "Done", report
    assert score(run, status, found) == dict(found=2, removed_not_found=True, wrong=0,
                                             max_error=pytest.approx(0.25, abs=0.25)), report
    # the worker detected (A computes no views itself), with A's settings, on A's frames at A's stage position
    assert pv(W + "feat1:Diameter_RBV").get() == 17
    assert pv(W + "feat1:Processed_RBV").get() > 0
    assert pv(W + "feat1:View_RBV").get()[6] == 17                   # VIEW_DIAMETER

    def view_where_the_stage_stands():
        """VIEW_STAGE_X, Y of the worker's newest view against A's stage now, once the frames in flight reach the
        worker: a run's view fits within one live pixel of the stage, so its last one (and the worker's newest when
        the run ends) may be of a frame stamped before A's readback settled on the last sub-pixel correction."""
        view = pv(W + "feat1:View_RBV").get()
        stage = pv(A + "samx_um").get(), pv(A + "samy_um").get()
        return abs(view[2] - stage[0]) <= 0.01 and abs(view[3] - stage[1]) <= 0.01, (view[2:4], stage)
    wait_for(lambda: view_where_the_stage_stands()[0], 30,
             what=lambda: "the worker's view at A's stage position (view, stage): %s" % (view_where_the_stage_stands()[1],))
    assert put_status(A + "Reloc:LiveDiameter", 17) == ECA_NORMAL

    # the worker refuses the settings (its Diameter disabled): the start fails naming the channel
    assert put_status(W + "feat1:Diameter.DISP", 1) == ECA_NORMAL
    start_refused("relocalization's worker refused its settings", f"{W}feat1:Diameter")
    assert put_status(W + "feat1:Diameter.DISP", 0) == ECA_NORMAL

    # the worker binning A's frames: its views are of frames of another size than A's camera makes, refused with
    # the reason (malformed views: tests/unit/test_view_parse.c, the same check)
    for binning, width in ((2, 256), (1, 512)):
        assert put_status(W + "cam1:BinX", binning) == ECA_NORMAL and put_status(W + "cam1:BinY", binning) == ECA_NORMAL
        wait_for(lambda: list(pv(W + "feat1:View_RBV").get(use_monitor=False)[4:6]) == [width, width],
                 what=f"views of {width}x{width} frames")
        if binning == 2:
            start_refused(f"{W}feat1:View_RBV: a view of a 256x256 frame, but CAM makes 512x512 frames")
    first = pv(W + "feat1:View_RBV").get(use_monitor=False)[0]
    wait_for(lambda: pv(W + "feat1:View_RBV").get(use_monitor=False)[0] > first, what="a second view unbinned")

    # the worker killed during a run: the run fails with the reason
    assert put_status(A + "Move:Enable", 1) == ECA_NORMAL
    epics.caput(A + "Reloc:Start", 1)
    wait_for(lambda: any(word in text(A + "Reloc:State_RBV") for word in ("looking for the sample", "particle")),
             what=lambda: "the second run under way: " + text(A + "Reloc:State_RBV") + " / " +
             text(A + "Map:Message_RBV"))
    worker.stop(sig=signal.SIGKILL)
    wait_for(lambda: epics.caget(A + "Move:Busy_RBV") == 0, 30, what="the run to end")
    assert RESULT[epics.caget(A + "Reloc:Result_RBV")] == "Failed"
    assert f"relocalization's worker: {W}feat1:View_RBV: not connected" in text(A + "Reloc:State_RBV")

    # away: A's link record in LINK/INVALID, Reloc:Start refused with the reason
    wait_for(lambda: alarm(A + "w:Count") == (14, 3), what="LINK/INVALID on A's link to the worker")
    start_refused(*(f"{W}feat1:{name}: not connected" for name in ("View_RBV", "Diameter", "MassFactor")))

    # back: the views resume and relocalization works again
    start_worker(start_ioc, second_ioc_env, endpoint)
    wait_for(lambda: alarm(A + "w:Count") == (0, 0), 60, what="A's link to the worker without alarm again")
    status, found = run_to_end(run)
    assert score(run, status, found)["found"] == 2, text(A + "Reloc:State_RBV")
