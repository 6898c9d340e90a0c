"""Raw frames over ZeroMQ for analysis on another host (drivers/framepub): the header areaDetector's
NDPluginZMQ clients read, the same pixels as the image PV, a worker IOC whose camera source is "zmq" receiving
them with the stage position, and a subscriber that stops reading losing frames alone while the camera and the
worker go on. Real clients: pyepics for the IOCs, pyzmq for a subscriber."""
import json

import numpy as np
import pytest
import zmq

import ioc as ioc_module
from ioc import pv, wait_for

A, B = "FPA:", "FPB:"
W, H = 160, 120


def publisher_st_cmd(workdir, hwm=4, width=W, height=H):
    return ioc_module.st_cmd(
        ioc_module.soft_stage(workdir, A),
        ioc_module.camera(A, "CAM", "sim", ioc_module.TOP / "sim" / "sample_default.json", width, height, stage=True),
        f'framePublishConfigure("ZMQ1", "CAM", "tcp://127.0.0.1:*", {hwm})',
        f'dbLoadRecords("framepub.db", "P={A},R=ZMQ1:,PORT=ZMQ1")')


def worker_st_cmd(endpoint, width=W, height=H):
    return ioc_module.st_cmd(ioc_module.camera(B, "WCAM", "zmq", endpoint, width, height))


def text(name):
    return pv(name).get(as_string=True)


def subscriber(endpoint, hwm=1000, kernel_buffer=None):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, hwm)
    if kernel_buffer:
        sock.setsockopt(zmq.RCVBUF, kernel_buffer)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    return sock


def test_frames_reach_a_subscriber_and_a_worker_ioc(start_ioc, second_ioc_env, tmp_path):
    start_ioc(publisher_st_cmd(tmp_path))
    endpoint = text(A + "ZMQ1:Endpoint_RBV")
    assert endpoint.startswith("tcp://127.0.0.1:") and not endpoint.endswith("*"), endpoint
    start_ioc(worker_st_cmd(endpoint), env=second_ioc_env)
    sub = subscriber(endpoint)
    pv(A + "samx").put(123.5, wait=True)
    pv(A + "samy").put(-42.25, wait=True)
    pv(B + "cam1:Acquire").put(1)                      # the worker listens (continuous)
    wait_for(lambda: pv(B + "cam1:DetectorState_RBV").get() == 1, what="the worker acquiring")
    # one frame from the publisher, so that every copy of it can be compared
    pv(A + "cam1:ImageMode").put(0, wait=True)         # Single
    wait_for(lambda: sub.poll(0) == 0, what="an idle socket")
    pv(A + "cam1:Acquire").put(1, wait=True)
    assert sub.poll(10000), "no frame published"
    header_bytes, data = sub.recv_multipart()
    assert header_bytes.startswith(b"{") and len(header_bytes) < 1024
    header = json.loads(header_bytes)
    assert list(header) == ["htype", "type", "shape", "frame", "timeStamp", "encoding", "ndattr"]
    assert header["htype"] == "array-1.0" and header["type"] == "uint16" and header["encoding"] == ""
    assert header["shape"] == [H, W]
    assert header["frame"] == pv(A + "cam1:UniqueId_RBV").get()
    assert header["ndattr"]["stage_x"] == pytest.approx(123.5) and header["ndattr"]["stage_y"] == pytest.approx(-42.25)
    pixels = np.frombuffer(data, np.uint16)
    assert pixels.size == W * H and pixels.std() > 0
    wait_for(lambda: pv(A + "image1:UniqueId_RBV").get() == header["frame"], what="the image PV on that frame")
    assert np.array_equal(pv(A + "image1:ArrayData").get(count=W * H).astype(np.uint16), pixels)
    # the worker IOC got the same frame, with the stage position of the exposure
    wait_for(lambda: pv(B + "cam1:SourceReceived_RBV").get() >= 1, what="the worker receiving the frame")
    wait_for(lambda: pv(B + "image1:UniqueId_RBV").get() >= 1, what="the worker's image PV")
    assert np.array_equal(pv(B + "image1:ArrayData").get(count=W * H).astype(np.uint16), pixels)
    assert pv(B + "cam1:StageX_RBV").get() == pytest.approx(123.5)
    assert pv(B + "cam1:StageY_RBV").get() == pytest.approx(-42.25)
    assert pv(A + "ZMQ1:ArrayCounter_RBV").get() >= 1
    sub.close()


def test_a_subscriber_that_stops_reading_loses_frames_alone(start_ioc, second_ioc_env, tmp_path):
    # frames of 600 kB: 60 of them are far more than the socket buffers of the way hold
    start_ioc(publisher_st_cmd(tmp_path, hwm=2, width=640, height=480))
    endpoint = text(A + "ZMQ1:Endpoint_RBV")
    start_ioc(worker_st_cmd(endpoint, 640, 480), env=second_ioc_env)
    stalled = subscriber(endpoint, hwm=1, kernel_buffer=65536)    # connected, never read
    pv(B + "cam1:Acquire").put(1)
    wait_for(lambda: pv(B + "cam1:DetectorState_RBV").get() == 1, what="the worker acquiring")
    pv(A + "cam1:AcquirePeriod").put(0.02, wait=True)
    pv(A + "cam1:ImageMode").put(2, wait=True)           # Continuous
    pv(A + "cam1:Acquire").put(1)
    # 60 frames published: the worker, which keeps up, receives nearly all of them, while the camera went on
    wait_for(lambda: pv(A + "ZMQ1:ArrayCounter_RBV").get() >= 60, timeout=60, what="60 frames published")
    wait_for(lambda: pv(B + "cam1:SourceReceived_RBV").get() >= 40, timeout=30, what="the worker keeping up")
    pv(A + "cam1:Acquire").put(0, wait=True)
    # the stalled subscriber holds only what its queues (high-water marks, socket buffers) took of the frames
    received = 0
    while stalled.poll(200):
        stalled.recv_multipart()
        received += 1
    sent = pv(A + "ZMQ1:ArrayCounter_RBV").get()
    assert received < sent / 2, (received, sent)
    assert pv(A + "cam1:ArrayCounter_RBV").get() >= sent
    stalled.close()


def test_bad_configuration_is_refused_before_init(refuses_to_start, tmp_path):
    base = [ioc_module.soft_stage(tmp_path, A),
            ioc_module.camera(A, "CAM", "sim", ioc_module.TOP / "sim" / "sample_default.json", W, H)]
    for line, message in (('framePublishConfigure("ZMQ1", "NOCAM", "tcp://127.0.0.1:*", 4)', "no camera port"),
                          ('framePublishConfigure("ZMQ1", "CAM", "127.0.0.1:5", 4)', "not a ZeroMQ endpoint"),
                          ('framePublishConfigure("ZMQ1", "CAM", "tcp://127.0.0.1:*", 0)', "HIGH_WATER_MARK")):
        log = refuses_to_start(ioc_module.st_cmd(*base, line))
        assert message in log, log
