"""The "aravis" camera source on Aravis' simulated GigE Vision camera (arv-fake-gv-camera-0.8 on a loopback address
of its own, opened by that address): frames at the camera's rate into the ring (detection runs on them), every
areaDetector setting that maps to a GenICam feature reads back what the camera took (checked against arv-tool's
reading of the camera), settings the camera lacks are refused at the put, software triggering, and a camera
killed -> alarm and log line, restarted -> frames again by themselves. Without root (the camera needs its own
loopback address) they skip; test_aravis_fake.py runs everywhere."""
import time

import numpy as np
import pytest

import ioc as ioc_module
from ca_status import ECA_NORMAL, ECA_PUTFAIL, put_status
from fake_gv_camera import FakeGvCamera, skip_reason
from ioc import pv_under, wait_for

P = "TARV:"
W, H = 256, 192           # the ring's maximum frame; the camera's sensor is larger (2048^2)
pv = pv_under(P)


def st_cmd(camera_id, prefix=P):
    """An aravis camera (and a detection stage on its frames) under prefix."""
    lines = ioc_module.camera(prefix, "CAM1", "aravis", camera_id, W, H)
    lines += ['detectionConfigure("DET1", "CAM1", 100)',
              f'dbLoadRecords("detection.db", "P={prefix},R=det1:,PORT=DET1,NMAX=100")']
    return ioc_module.st_cmd(lines)


def counter():
    return pv("cam1:ArrayCounter_RBV").get() or 0


def frames_in(seconds):
    start = counter()
    time.sleep(seconds)
    return counter() - start


@pytest.fixture(scope="module")
def gv(tmp_path_factory):
    """The fake GigE camera and an IOC on it, for the module (tests run in file order and set what they need)."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    camera = FakeGvCamera().start()
    ioc = ioc_module.Ioc(st_cmd(camera.address), tmp_path_factory.mktemp("aravis") / "ioc",
                         env=ioc_module.session_env()).start()
    try:
        wait_for(lambda: pv("cam1:SourceConnected_RBV").get() == 1, what=lambda: f"the camera to connect\n{ioc.log()}")
        yield camera, ioc
        code = ioc.stop()
        ioc.check_sanitizers()
        assert code == 0, ioc.log()[-4000:]
    finally:
        ioc.stop()
        camera.close()


def test_frames_at_the_camera_rate_reach_detection(gv):
    camera, ioc = gv
    assert pv("cam1:AcquirePeriod").put(0.04, wait=True)      # 25 frames/s
    assert pv("cam1:ImageMode").put(2, wait=True)
    pv("cam1:Acquire").put(1)
    wait_for(lambda: counter() >= 10, what="frames from the camera")
    rate = 1 / pv("cam1:AcquirePeriod_RBV").get()    # the camera's AcquisitionFrameRate
    assert rate == pytest.approx(25)
    wait_for(lambda: abs((pv("cam1:ArrayRate_RBV").get() or 0) - rate) < 0.15 * rate,
             what=lambda: f"ArrayRate {pv('cam1:ArrayRate_RBV').get()} near the camera's {rate}")
    # nothing lost beyond what a loaded machine's loopback may drop now and then (lost frames are counted, not hidden)
    assert pv("cam1:SourceMissed_RBV").get() <= counter() // 50
    assert pv("cam1:DetectorState_RBV").get(as_string=True) == "Acquire"
    # the camera's frame, as large as the ROI asks, in the image PV (the fake camera draws a ramp: not flat)
    wait_for(lambda: pv("image1:ArraySize0_RBV").get() == W and pv("image1:ArraySize1_RBV").get() == H,
             what="a frame of the ROI's size")
    image = np.asarray(pv("image1:ArrayData").get()[: W * H])
    assert image.std() > 0
    # detection takes the same ring's frames
    uid = pv("cam1:UniqueId_RBV")
    wait_for(lambda: (pv("det1:FrameId_RBV").get() or 0) > 0 and pv("det1:Processed_RBV").get() >= 3,
             what="detection processing camera frames")
    assert 0 < pv("det1:FrameId_RBV").get() <= uid.get()
    assert pv("det1:Status").get() == 0, pv("det1:Message").get(as_string=True)


# (setpoint, value, readback from the camera through arv-tool: feature names -> the value the RBV must show)
SETTINGS = [
    ("Gain", 2.6, ("GainRaw",), lambda c: float(c["GainRaw"])),          # an integer gain: 2.6 is taken as 2
    ("AcquireTime", 0.0123, ("ExposureTimeAbs",), lambda c: float(c["ExposureTimeAbs"]) * 1e-6),
    ("AcquirePeriod", 0.025, ("AcquisitionFrameRate",), lambda c: 1 / float(c["AcquisitionFrameRate"])),
    ("BinX", 2, ("BinningHorizontal",), lambda c: int(c["BinningHorizontal"])),
    ("BinY", 2, ("BinningVertical",), lambda c: int(c["BinningVertical"])),
    ("MinX", 21, ("OffsetX", "BinningHorizontal"), lambda c: int(c["OffsetX"]) * int(c["BinningHorizontal"])),
    ("MinY", 8, ("OffsetY", "BinningVertical"), lambda c: int(c["OffsetY"]) * int(c["BinningVertical"])),
    ("SizeX", 201, ("Width", "BinningHorizontal"), lambda c: int(c["Width"]) * int(c["BinningHorizontal"])),
    ("SizeY", 120, ("Height", "BinningVertical"), lambda c: int(c["Height"]) * int(c["BinningVertical"])),
    ("PixelFormat", 0, ("PixelFormat",), lambda c: ["Mono8", "Mono12", "Mono16"].index(c["PixelFormat"])),
    ("ImageMode", 1, ("AcquisitionMode",), lambda c: ["SingleFrame", "MultiFrame", "Continuous"].index(c["AcquisitionMode"])),
    ("TriggerMode", 1, ("TriggerMode",), lambda c: ["Off", "On"].index(c["TriggerMode"])),
    ("TriggerSource", 0, ("TriggerSource",), lambda c: ["Software", "Line0"].index(c["TriggerSource"])),
]


def test_every_mapped_setting_reads_back_what_the_camera_took(gv):
    camera, ioc = gv
    pv("cam1:Acquire").put(0, wait=True)
    for name, value, _, _ in SETTINGS:
        assert put_status(P + "cam1:" + name, value) == ECA_NORMAL, name
    features = sorted({f for _, _, names, _ in SETTINGS for f in names})
    reading = camera.control(*features)           # one arv-tool call: each takes ~5 s while the IOC has control
    assert reading, f"arv-tool could not read {features}"
    for name, value, _, from_camera in SETTINGS:
        expected = from_camera(reading)
        rbv = pv(f"cam1:{name}_RBV")
        wait_for(lambda: rbv.get() == pytest.approx(expected, rel=1e-3), what=lambda: f"{name}_RBV {rbv.get()} "
                 f"to show the camera's {expected}")
    assert pv("cam1:Gain_RBV").get() == 2           # the camera's value, not the 2.6 written
    assert pv("cam1:SizeX_RBV").get() == 200        # 201 unbinned pixels: 100 binned ones
    # frames have the binned ROI's size and come as Mono8 from the camera, uint16 in the ring
    pv("cam1:TriggerMode").put(0, wait=True)
    pv("cam1:ImageMode").put(2, wait=True)
    pv("cam1:Acquire").put(1)
    wait_for(lambda: pv("image1:ArraySize0_RBV").get() == 100 and pv("image1:ArraySize1_RBV").get() == 60,
             what=lambda: f"a 100x60 frame, not {pv('image1:ArraySize0_RBV').get()}x{pv('image1:ArraySize1_RBV').get()}")
    image = np.asarray(pv("image1:ArrayData").get()[: 100 * 60])
    assert image.max() <= 255 and image.std() > 0
    pv("cam1:Acquire").put(0, wait=True)
    for name, value in (("BinX", 1), ("BinY", 1), ("MinX", 0), ("MinY", 0), ("SizeX", W), ("SizeY", H),
                        ("PixelFormat", 2)):
        pv("cam1:" + name).put(value, wait=True)
        rbv = pv(f"cam1:{name}_RBV")          # the camera's readback arrives after the put's completion
        wait_for(lambda: rbv.get() == value, what=lambda: f"{name}_RBV {rbv.get()} back to {value}")


def test_settings_the_camera_lacks_are_refused_at_the_put(gv):
    camera, ioc = gv
    for name, bad, why in (("PixelFormat", 1, "Mono12: the fake camera offers Mono8 and Mono16"),
                           ("Gain", 11, "beyond GainRaw's 0..10"),
                           ("BinX", 17, "beyond BinningHorizontal's 1..16"),
                           ("AcquirePeriod", 0.0001, "10 kHz, beyond AcquisitionFrameRate's 1000")):
        before = pv(f"cam1:{name}_RBV").get()
        assert put_status(P + "cam1:" + name, bad) == ECA_PUTFAIL, why
        assert pv(f"cam1:{name}.SEVR").get() == 3, why
        assert pv(f"cam1:{name}_RBV").get() == before, why
    ioc.wait_for_log(r"TARV:cam1:PixelFormat: write to CAM1/PixelFormat refused: .*not offered")


def test_software_trigger_gives_one_frame_per_trigger(gv):
    camera, ioc = gv
    assert put_status(P + "cam1:SoftwareTrigger", 1) == ECA_PUTFAIL    # not while TriggerMode is Off
    pv("cam1:TriggerSource").put(0, wait=True)
    pv("cam1:TriggerMode").put(1, wait=True)
    pv("cam1:ImageMode").put(2, wait=True)
    pv("cam1:Acquire").put(1)
    wait_for(lambda: pv("cam1:DetectorState_RBV").get(as_string=True) == "Acquire", what="acquiring")
    assert frames_in(0.5) == 0                       # the camera waits for triggers
    missed, first = pv("cam1:SourceMissed_RBV"), counter()
    for _ in range(3):
        # one frame per trigger: delivered, or lost on the way and counted as lost (GigE Vision over UDP; CI once
        # waited 30 s here for a frame that never came, with nothing to say why)
        before = counter() + missed.get()
        assert put_status(P + "cam1:SoftwareTrigger", 1) == ECA_NORMAL
        wait_for(lambda: counter() + missed.get() == before + 1,
                 what=lambda: f"the triggered frame (frames {counter()}, lost {missed.get()}, "
                              f"underruns {pv('cam1:SourceUnderruns_RBV').get()})\n{ioc.log()[-3000:]}")
    assert counter() > first, "every triggered frame was lost"
    pv("cam1:TriggerMode").put(0, wait=True)
    wait_for(lambda: frames_in(0.3) > 0, what="free-running frames again")


def test_camera_killed_alarms_then_comes_back_by_itself(gv):
    camera, ioc = gv
    pv("cam1:TriggerMode").put(0, wait=True)     # free-running, whatever the tests before left
    pv("cam1:AcquirePeriod").put(0.02, wait=True)
    pv("cam1:ImageMode").put(2, wait=True)
    pv("cam1:PixelFormat").put(0, wait=True)
    pv("cam1:Acquire").put(1)
    wait_for(lambda: frames_in(0.2) > 0, what="frames")
    camera.stop()
    state = pv("cam1:DetectorState_RBV")
    wait_for(lambda: state.get(as_string=True) == "Disconnected", timeout=20, what="DetectorState Disconnected")
    assert pv("cam1:DetectorState_RBV.SEVR").get() == 3
    assert pv("cam1:SourceConnected_RBV").get() == 0 and pv("cam1:SourceConnected_RBV.SEVR").get() == 3
    assert "Disconnected" in pv("cam1:StatusMessage_RBV").get(as_string=True)
    ioc.wait_for_log(r"CAM1: camera lost: .*reconnecting")
    assert pv("cam1:Acquire_RBV").get() == 1         # still requested: it resumes once the camera is back
    # back with lost packets (2 % dropped by the camera): frames again, lost ones counted, settings re-applied
    camera.lost = 20
    camera.start()
    wait_for(lambda: pv("cam1:SourceConnected_RBV").get() == 1, timeout=20, what="the camera reconnected")
    wait_for(lambda: frames_in(0.3) > 0, what="frames after the reconnect")
    assert pv("cam1:SourceReconnects_RBV").get() == 1
    assert pv("cam1:DetectorState_RBV").get(as_string=True) == "Acquire"
    assert pv("cam1:DetectorState_RBV.SEVR").get() == 0
    assert pv("cam1:PixelFormat_RBV").get(as_string=True) == "Mono8"     # read from the restarted camera
    wait_for(lambda: pv("cam1:SourceMissed_RBV").get() > 0, what="lost frames counted")
    pv("cam1:Acquire").put(0, wait=True)


def test_a_camera_absent_at_start_is_an_alarm_until_it_appears(start_ioc, second_ioc_env):
    """An IOC started before its camera (beside the module's IOC, on the second CA port)."""
    camera = FakeGvCamera()          # its address, nobody answering on it yet
    try:
        ioc = start_ioc(st_cmd(camera.address, "TARV2:"), env=second_ioc_env)
        late = pv_under("TARV2:")
        wait_for(lambda: late("cam1:DetectorState_RBV").get(as_string=True) == "Disconnected",
                 what=lambda: f"Disconnected without a camera\n{ioc.log()}")
        assert late("cam1:SourceConnected_RBV.SEVR").get() == 3
        ioc.wait_for_log(r"CAM1: cannot connect \(1 attempts\)")
        late("cam1:Acquire").put(1)
        camera.start()
        wait_for(lambda: late("cam1:SourceConnected_RBV").get() == 1, timeout=20, what="the late camera connected")
        wait_for(lambda: (late("cam1:ArrayCounter_RBV").get() or 0) >= 3, what="frames from the late camera")
        assert late("cam1:DetectorState_RBV").get(as_string=True) == "Acquire"
        assert late("cam1:SourceReconnects_RBV").get() == 0       # a first connection, not a reconnection
        assert ioc.stop() == 0, ioc.log()[-4000:]      # while the camera still answers: it is let go at once
        ioc.check_sanitizers()
    finally:
        camera.close()
