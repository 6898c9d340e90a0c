"""The camera as areaDetector users drive it, through pyepics: the simulated microscope follows the stage,
frames from an external ZeroMQ publisher appear (malformed ones are counted and refused), the JPEG preview
reaches a ZeroMQ subscriber with its header, and an HDF5 capture holds every frame with its time stamp and
stage position."""
import json
import time

import h5py
import numpy as np
import pytest
import zmq

import ioc as ioc_module
from ioc import pv_under, wait_for
from camera_images import measured_shift
from ca_status import ECA_NORMAL, ECA_PUTFAIL, put_status

SAMPLE = ioc_module.TOP / "sim" / "sample_default.json"
P = "TCAM:"

def st_cmd(tmp_path, source, arg, width=256, height=256, preview=None):
    lines = ioc_module.camera(P, "CAM1", source, arg, width, height, stage=True)
    if preview:
        lines.append(f'cameraPreview("CAM1", "{preview}", 80, 128, 0)')
    return ioc_module.st_cmd(ioc_module.soft_stage(tmp_path, P), lines)


pv = pv_under(P)


def grab(counter_before):
    """The next frame published after counter_before: (unique id, image)."""
    uid = pv("image1:UniqueId_RBV")
    wait_for(lambda: (uid.get() or 0) > counter_before, what="a new frame")
    data = pv("image1:ArrayData").get()
    w, h = pv("image1:ArraySize0_RBV").get(), pv("image1:ArraySize1_RBV").get()
    return uid.get(), np.asarray(data[: w * h], dtype=np.float64).reshape(h, w)


def single_frame_at(x, y):
    pv("samx").put(x, wait=True)
    pv("samy").put(y, wait=True)
    before = pv("image1:UniqueId_RBV").get() or 0
    assert pv("cam1:Acquire").put(1, wait=True, timeout=20)    # Single mode: returns when the frame is done
    return grab(before)[1]


@pytest.mark.parametrize("pixel_size", [1.0, 0.5])
def test_stage_move_moves_the_simulated_image(start_ioc, tmp_path, pixel_size):
    start_ioc(st_cmd(tmp_path, "sim", SAMPLE))
    pv("cam1:ImageMode").put(0, wait=True)       # Single
    pv("pixel").put(pixel_size, wait=True)
    first = single_frame_at(-40.0, 25.0)
    dx, dy = 9.3, -6.7
    second = single_frame_at(-40.0 + dx, 25.0 + dy)
    assert pv("cam1:StageX_RBV").get() == pytest.approx(-40.0 + dx)
    expected = np.array([-dy, -dx]) / pixel_size        # (rows, cols): the image moves against the stage
    np.testing.assert_allclose(measured_shift(first, second, expected), expected, atol=0.2)


def test_continuous_acquisition_counts_and_rates(start_ioc, tmp_path):
    start_ioc(st_cmd(tmp_path, "sim", SAMPLE, 128, 128))
    pv("cam1:AcquirePeriod").put(0.02, wait=True)
    pv("cam1:ImageMode").put(2, wait=True)
    pv("cam1:Acquire").put(1)
    counter = pv("cam1:ArrayCounter_RBV")
    wait_for(lambda: (counter.get() or 0) >= 30, what="30 frames")
    assert pv("cam1:DetectorState_RBV").get(as_string=True) == "Acquire"
    wait_for(lambda: (pv("cam1:ArrayRate_RBV").get() or 0) > 5, what="a frame rate")
    pv("cam1:Acquire").put(0, wait=True)
    wait_for(lambda: pv("cam1:DetectorState_RBV").get(as_string=True) == "Idle", what="Idle")
    stopped_at = counter.get()
    time.sleep(0.5)
    assert counter.get() == stopped_at
    assert pv("cam1:MaxSizeX_RBV").get() == 128


def test_bad_settings_are_refused_and_leave_the_old_value(start_ioc, tmp_path):
    start_ioc(st_cmd(tmp_path, "sim", SAMPLE, 128, 128))
    mode = pv("cam1:ImageMode_RBV")
    wait_for(lambda: mode.get() == 2, what="ImageMode readback")
    assert put_status(P + "cam1:BinX", 99) == ECA_PUTFAIL          # caput -c reports the refusal
    assert pv("cam1:BinX.SEVR").get() == 3 and pv("cam1:BinX.STAT").get(as_string=True) == "WRITE"
    assert pv("cam1:BinX_RBV").get() == 1
    assert put_status(P + "cam1:BinX", 2) == ECA_NORMAL
    wait_for(lambda: pv("cam1:BinX_RBV").get() == 2, what="a good value accepted")
    assert pv("cam1:BinX.SEVR").get() == 0


def test_zmq_source_takes_good_frames_and_counts_bad_ones(start_ioc, tmp_path):
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    try:
        start_ioc(st_cmd(tmp_path, "zmq", f"tcp://127.0.0.1:{port}", 64, 32))
        pv("cam1:ImageMode").put(2, wait=True)
        pv("cam1:Acquire").put(1)
        frame = (np.arange(48 * 20, dtype=np.uint16) * 7).reshape(20, 48)
        good = [json.dumps({"htype": "array-1.0", "type": "uint16", "shape": [20, 48], "frame": 1}).encode(),
                frame.tobytes()]
        bad = [
            [b"not json", frame.tobytes()],
            [json.dumps({"type": "uint16", "shape": [20, 48]}).encode(), frame.tobytes()[:-2]],   # truncated
            [json.dumps({"type": "uint16", "shape": [2000, 48]}).encode(), frame.tobytes()],       # too large
            [json.dumps({"type": "complex", "shape": [20, 48]}).encode(), frame.tobytes()],
            [json.dumps({"type": "uint16", "shape": [20, 48]}).encode()],                           # one part
        ]
        uid = pv("image1:UniqueId_RBV")
        received = pv("cam1:SourceReceived_RBV")
        rejected = pv("cam1:SourceRejected_RBV")
        deadline = time.monotonic() + 20
        while (received.get() or 0) < 3 and time.monotonic() < deadline:   # PUB drops until subscribed
            pub.send_multipart(good)
            for parts in bad:
                pub.send_multipart(parts)
            time.sleep(0.1)
        wait_for(lambda: (rejected.get() or 0) >= 5, what="rejections counted")
        assert (received.get() or 0) >= 3
        wait_for(lambda: (uid.get() or 0) >= 1, what="a frame in the image PV")
        data = pv("image1:ArrayData").get()
        assert (pv("image1:ArraySize0_RBV").get(), pv("image1:ArraySize1_RBV").get()) == (48, 20)
        np.testing.assert_array_equal(np.asarray(data[: 48 * 20]).reshape(20, 48), frame)
        assert (rejected.get() or 0) >= 5
        assert pv("cam1:DetectorState_RBV").get(as_string=True) == "Acquire"    # bad input did not stop it
    finally:
        pub.close(0)
        context.term()


def test_preview_subscriber_gets_jpeg_with_header(start_ioc, tmp_path):
    ioc = start_ioc(st_cmd(tmp_path, "sim", SAMPLE, 256, 256, preview="tcp://127.0.0.1:*"))
    def endpoint():
        return bytes(pv("Preview1:Endpoint_RBV").get()).split(b"\0")[0].decode()
    wait_for(lambda: endpoint().startswith("tcp://127.0.0.1:"), what=f"the preview endpoint\n{ioc.log()}")
    endpoint = endpoint()
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    try:
        pv("samx").put(12.5, wait=True)
        pv("cam1:ImageMode").put(2, wait=True)
        pv("cam1:Acquire").put(1)
        assert sub.poll(10000), "no preview within 10 s"
        header, jpeg = sub.recv_multipart()
        meta = json.loads(header)
        assert meta["encoding"] == "jpeg" and meta["binning"] == 2
        assert meta["shape"] == [128, 128] and meta["source_shape"] == [256, 256]
        assert meta["stage"]["x"] == pytest.approx(12.5)
        assert meta["pixel_size"] == pytest.approx(2.0)
        assert meta["frame"] >= 1 and meta["timeStamp"] > 1.7e9
        from PIL import Image
        import io
        img = Image.open(io.BytesIO(jpeg))
        assert img.format == "JPEG" and img.size == (128, 128)
    finally:
        sub.close(0)
        context.term()


def test_hdf5_capture_of_100_frames(start_ioc, tmp_path):
    start_ioc(st_cmd(tmp_path, "sim", SAMPLE, 64, 48))
    out = tmp_path / "capture"
    out.mkdir()
    pv("HDF1:FilePath").put(str(out), wait=True)
    pv("HDF1:FileName").put("scan", wait=True)
    pv("HDF1:FileNumber").put(3, wait=True)
    pv("HDF1:NumCapture").put(100, wait=True)
    pv("samx").put(5.0, wait=True)
    pv("cam1:AcquirePeriod").put(0.01, wait=True)
    pv("cam1:ImageMode").put(2, wait=True)
    pv("HDF1:Capture").put(1)
    pv("cam1:Acquire").put(1)
    captured = pv("HDF1:NumCaptured_RBV")
    wait_for(lambda: (captured.get() or 0) >= 100 and pv("HDF1:Capture_RBV").get() == 0, timeout=60,
             what="100 frames captured")
    pv("cam1:Acquire").put(0, wait=True)
    path = out / "scan_0003.h5"
    assert bytes(pv("HDF1:FullFileName_RBV").get()).split(b"\0")[0].decode() == str(path)
    assert pv("HDF1:WriteStatus").get() == 0
    assert pv("HDF1:FileNumber_RBV").get() == 4          # auto-increment after a good capture
    with h5py.File(path, "r") as f:
        data = f["/entry/data/data"]
        assert data.shape == (100, 48, 64) and data.dtype == np.uint16
        stamps = f["/entry/data/timestamp"][:]
        assert np.all(np.diff(stamps) > 0) and abs(stamps[-1] - time.time()) < 60
        assert np.all(f["/entry/instrument/stage/x"][:] == 5.0)
        ids = f["/entry/data/uniqueId"][:]
        assert np.all(np.diff(ids) >= 1)
        assert data[50].std() > 0


def test_capture_to_unwritable_path_is_an_error_not_a_crash(start_ioc, tmp_path):
    ioc = start_ioc(st_cmd(tmp_path, "sim", SAMPLE, 64, 48))
    pv("HDF1:FilePath").put("/nonexistent/dir", wait=True)
    assert put_status(P + "HDF1:Capture", 1) == ECA_PUTFAIL
    assert pv("HDF1:Capture.SEVR").get() == 3
    wait_for(lambda: pv("HDF1:WriteStatus").get() == 1, what="WriteStatus error")
    message = bytes(pv("HDF1:WriteMessage").get()).split(b"\0")[0].decode()
    assert "/nonexistent/dir" in message
    assert "cannot create" in ioc.log()
    assert pv("cam1:MaxSizeX_RBV").get() == 64        # the IOC still serves


def test_stage_position_adds_coarse_and_piezo_in_their_units(start_ioc, tmp_path):
    extra = tmp_path / "extra.db"
    extra.write_text('record(ao, "$(P)coarse") { field(EGU, "mm") field(PREC, "4") }\n'
                     'record(ao, "$(P)piezo") { field(EGU, "um") field(PREC, "3") }\n')
    st = st_cmd(tmp_path, "sim", SAMPLE, 64, 64).replace(
        f'cameraStage("CAM1", "{P}samx", "{P}samy", "", "{P}pixel")',
        f'cameraStage("CAM1", "{P}coarse+{P}piezo", "{P}samy", "", "{P}pixel")').replace(
        "iocInit", f'dbLoadRecords("{extra}", "P={P}")\niocInit')
    start_ioc(st)
    pv("coarse").put(1.25, wait=True)          # mm
    pv("piezo").put(-3.5, wait=True)           # um
    pv("cam1:ImageMode").put(0, wait=True)
    assert pv("cam1:Acquire").put(1, wait=True, timeout=20)
    wait_for(lambda: pv("cam1:StageX_RBV").get() == pytest.approx(1250.0 - 3.5), what="the summed position")


def test_stage_position_from_another_ioc(start_ioc, second_ioc_env, tmp_path):
    """cameraStage naming PVs no record here has: read from the other IOC (with its EGU); unknown while it is away."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "stage.db").write_text('record(ao, "TCAMB:coarse") { field(EGU, "mm") field(PREC, "4") }\n')
    remote = start_ioc(ioc_module.st_cmd(f'dbLoadRecords("{other / "stage.db"}")'), env=second_ioc_env)
    st = st_cmd(tmp_path, "sim", SAMPLE, 64, 64).replace(
        f'cameraStage("CAM1", "{P}samx", "{P}samy", "", "{P}pixel")',
        f'cameraStage("CAM1", "TCAMB:coarse+{P}samx", "{P}samy", "", "{P}pixel")')
    ioc = start_ioc(st)
    ioc.wait_for_log(r"CAM1: TCAMB:coarse is no record of this IOC: read through Channel Access")
    assert ioc_module.pv("TCAMB:coarse").put(1.25, wait=True) == 1       # mm on the other IOC
    pv("samx").put(-3.5, wait=True)                                       # um here
    pv("cam1:AcquirePeriod").put(0.05, wait=True)
    pv("cam1:Acquire").put(1)                                             # continuous
    wait_for(lambda: pv("cam1:StageX_RBV").get() == pytest.approx(1250.0 - 3.5), what="the summed position")
    remote.stop()
    wait_for(lambda: np.isnan(pv("cam1:StageX_RBV").get()), what="the position unknown while the other IOC is away")
    pv("cam1:Acquire").put(0, wait=True)


def test_a_slow_consumer_drops_frames_without_slowing_acquisition_or_others(start_ioc, tmp_path):
    start_ioc(st_cmd(tmp_path, "sim", SAMPLE, 128, 128, preview="tcp://127.0.0.1:*"))
    pv("cam1:AcquirePeriod").put(0.05, wait=True)
    pv("image1:MinCallbackTime").put(0.5, wait=True)       # the image PV takes at most 2 frames a second
    pv("cam1:Acquire").put(1)
    time.sleep(4.0)
    produced = pv("cam1:ArrayRate_RBV").get()
    image_rate, preview_rate = pv("image1:ArrayRate_RBV").get(), pv("Preview1:ArrayRate_RBV").get()
    dropped = pv("image1:DroppedArrays_RBV").get()
    pv("cam1:Acquire").put(0, wait=True)
    assert produced > 12                                    # 20 Hz asked for; the slow consumer held nothing back
    assert image_rate < 3 and dropped > 20                  # the slow one drops, and says so
    assert preview_rate > 0.7 * produced                    # the other consumers keep up
    assert pv("Preview1:DroppedArrays_RBV").get() < dropped / 4


def test_files_source_replays_recorded_frames_and_skips_unreadable_ones(start_ioc, tmp_path):
    from PIL import Image
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    frames = [np.full((24, 40), 1000 * (k + 1), dtype=np.uint16) for k in range(3)]
    for k, f in enumerate(frames):
        f[k, k] = 7                                       # a marker: which frame is which
        Image.fromarray(f).save(recorded / f"frame_{k}.tif")
    (recorded / "frame_1a.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")   # sorted between 1 and 2
    start_ioc(st_cmd(tmp_path, "files", recorded, 64, 32))
    pv("cam1:AcquirePeriod").put(0.05, wait=True)
    pv("cam1:ImageMode").put(2, wait=True)
    seen = []
    uid = pv("image1:UniqueId_RBV")
    pv("cam1:Acquire").put(1)
    last = 0
    deadline = time.monotonic() + 20
    while len(seen) < 6 and time.monotonic() < deadline:
        now = uid.get() or 0
        if now > last:
            last = now
            data = np.asarray(pv("image1:ArrayData").get()[: 24 * 40]).reshape(24, 40)
            seen.append(int(data[0, 39]) // 1000)         # 1, 2 or 3: the frame's level
        time.sleep(0.01)
    pv("cam1:Acquire").put(0, wait=True)
    assert len(seen) >= 6 and set(seen) == {1, 2, 3}       # replayed in a loop
    wait_for(lambda: pv("cam1:SourceRejected_RBV").get() >= 1, what="the broken file counted")   # and skipped
    message = bytes(pv("cam1:SourceError_RBV").get()).split(b"\0")[0].decode()
    assert "frame_1a.png" in message
    assert (pv("image1:ArraySize0_RBV").get(), pv("image1:ArraySize1_RBV").get()) == (40, 24)


def test_files_source_replays_an_hdf5_stack(start_ioc, tmp_path):
    import h5py
    stack = np.stack([np.full((16, 20), 500 * (k + 1), dtype=np.uint16) for k in range(4)])
    with h5py.File(tmp_path / "rec.h5", "w") as f:
        f["entry/data"] = stack
    start_ioc(st_cmd(tmp_path, "files", f"{tmp_path / 'rec.h5'}:/entry/data", 32, 32))
    pv("cam1:AcquirePeriod").put(0.05, wait=True)
    pv("cam1:ImageMode").put(1, wait=True)                 # Multiple
    pv("cam1:NumImages").put(4, wait=True)
    assert pv("cam1:Acquire").put(1, wait=True, timeout=30)
    wait_for(lambda: pv("image1:UniqueId_RBV").get() == pv("cam1:UniqueId_RBV").get(), what="the last frame")
    data = np.asarray(pv("image1:ArrayData").get()[: 16 * 20])
    assert np.all(data == 2000)                            # the 4th frame of the stack ends the acquisition
    assert pv("cam1:NumImagesCounter_RBV").get() == 4
