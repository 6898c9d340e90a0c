#!/usr/bin/env python3
"""bench_framepub.py -- raw frames from a camera IOC to a worker IOC over ZeroMQ (drivers/framepub -> zmq camera
source) at 1024^2 and 2048^2 uint16, next to the floor: pyzmq alone publishing the same bytes to a pyzmq
subscriber on loopback, in one run. The camera IOC replays recorded frames as fast as it can (files source,
AcquirePeriod 0, AcquireTime 0.1 ms), so the way to the worker is what is measured.

Prints, per size: frames/s the camera produced, frames/s the worker received, the worker's end-to-end latency
(exposure in the camera IOC -> its own image PV), the drops (frames the publisher skipped because newer ones
came first, frames sent but lost on the way -- ZeroMQ's high-water marks --, and the gaps the worker counted in
the frame numbers, which cover both), and the pyzmq floor in frames/s with the ratio."""
import os
import sys
import subprocess
import tempfile
import threading
import time
from pathlib import Path

TOP = Path(os.environ.get("RELOC_TOP", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(TOP / "tests"))
import ioc as ioc_module  # noqa: E402

PORT_A, PORT_B = ioc_module.free_port(), ioc_module.free_port()
os.environ.update({"EPICS_CA_SERVER_PORT": str(PORT_A), "EPICS_CA_ADDR_LIST": f"127.0.0.1 127.0.0.1:{PORT_B}",
                   "EPICS_CA_AUTO_ADDR_LIST": "NO", "EPICS_CA_MAX_ARRAY_BYTES": "100000000",
                   "EPICS_CA_REPEATER_PORT": str(ioc_module.free_port())})
import epics  # noqa: E402
import numpy as np  # noqa: E402
import zmq  # noqa: E402

SECONDS = 8.0
BIN = Path(os.environ.get("RELOC_BIN", TOP / "bin")) / "relocioc"


def start(st, workdir, port):
    env = ioc_module.server_env(port, int(os.environ["EPICS_CA_REPEATER_PORT"]))
    env.pop("ASAN_OPTIONS", None)
    return ioc_module.Ioc(st, workdir, env=env, binary=BIN).start()


def pyzmq_floor(size, seconds=3.0):
    """Frames/s pyzmq alone moves from a PUB to a SUB on loopback (header + the same bytes, HWM 4)."""
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 4)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{port}")
    data = np.zeros(size * size, np.uint16).tobytes()
    got = [0]
    stop = threading.Event()

    def receive():
        while not stop.is_set():
            if sub.poll(100):
                sub.recv_multipart()
                got[0] += 1
    t = threading.Thread(target=receive)
    t.start()
    time.sleep(0.3)
    start_t = time.monotonic()
    while time.monotonic() - start_t < seconds:
        pub.send_multipart([b'{"htype":"array-1.0"}', data])
    time.sleep(0.3)
    stop.set()
    t.join()
    pub.close()
    sub.close()
    return got[0] / seconds


def recorded_frames(size, workdir):
    """Two frames of the simulated sample as uncompressed 16-bit TIFFs, rendered once: the camera IOC replays
    them ("files" source, one file read per frame) so that the camera is not what limits the rate (the sim
    source renders a 2048^2 frame in about 0.3 s)."""
    frames = workdir / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    for seed in (1, 2):
        subprocess.run([str(BIN.parent / "reloc-sim-scope"), str(TOP / "sim" / "sample_default.json"),
                        str(frames / f"frame{seed}.tif"), "--size", str(size), str(size), "--seed", str(seed)],
                       check=True, capture_output=True)
    return frames


def run(size, workdir):
    cam = start(f"""epicsEnvSet EPICS_DB_INCLUDE_PATH "{TOP}/db"
cameraConfigure("CAM", "files", "{recorded_frames(size, workdir)}", {size}, {size})
framePublishConfigure("ZMQ1", "CAM", "tcp://127.0.0.1:*", 4)
dbLoadRecords("camera.db", "P=A:,PORT=CAM,NELM={size * size},XSIZE={size},YSIZE={size}")
dbLoadRecords("framepub.db", "P=A:,R=ZMQ1:,PORT=ZMQ1")
iocInit
""", workdir / "camera", PORT_A)
    try:
        endpoint = epics.caget("A:ZMQ1:Endpoint_RBV", as_string=True, timeout=10)
        worker = start(f"""epicsEnvSet EPICS_DB_INCLUDE_PATH "{TOP}/db"
cameraConfigure("WCAM", "zmq", "{endpoint}", {size}, {size})
dbLoadRecords("camera.db", "P=B:,PORT=WCAM,NELM={size * size},XSIZE={size},YSIZE={size}")
iocInit
""", workdir / "worker", PORT_B)
        try:
            epics.caput("B:cam1:Acquire", 1)
            # free-running: the period is the longer of AcquirePeriod and AcquireTime (default 0.05 s: 20 frames/s)
            epics.caput("A:cam1:AcquireTime", 0.0001, wait=True)
            epics.caput("A:cam1:AcquirePeriod", 0, wait=True)
            epics.caput("A:cam1:ImageMode", 2, wait=True)
            time.sleep(1.0)
            sent0, recv0 = epics.caget("A:ZMQ1:ArrayCounter_RBV"), epics.caget("B:cam1:SourceReceived_RBV")
            made0 = epics.caget("A:cam1:ArrayCounter_RBV")
            skipped0, missed0 = epics.caget("A:ZMQ1:DroppedArrays_RBV"), epics.caget("B:cam1:SourceMissed_RBV")
            epics.caput("A:cam1:Acquire", 1)
            time.sleep(1.0)
            t0 = time.monotonic()
            made1, recv1 = epics.caget("A:cam1:ArrayCounter_RBV"), epics.caget("B:cam1:SourceReceived_RBV")
            latencies = []
            while time.monotonic() - t0 < SECONDS:
                latencies.append(epics.caget("B:image1:Latency_RBV"))
                time.sleep(0.25)
            elapsed = time.monotonic() - t0
            made2, recv2 = epics.caget("A:cam1:ArrayCounter_RBV"), epics.caget("B:cam1:SourceReceived_RBV")
            epics.caput("A:cam1:Acquire", 0, wait=True)
            time.sleep(2.5)       # the frames in flight arrive and both IOCs post their counters (once a second)
            skipped = epics.caget("A:ZMQ1:DroppedArrays_RBV") - skipped0
            missed = epics.caget("B:cam1:SourceMissed_RBV") - missed0
            sent = epics.caget("A:ZMQ1:ArrayCounter_RBV") - sent0
            received = epics.caget("B:cam1:SourceReceived_RBV") - recv0
            made = epics.caget("A:cam1:ArrayCounter_RBV") - made0
            return {"made": (made2 - made1) / elapsed, "received": (recv2 - recv1) / elapsed,
                    "latency_ms": 1e3 * float(np.median([x for x in latencies if x is not None])),
                    "skipped": skipped, "lost": sent - received, "missed": missed, "sent": sent,
                    "received_total": received, "made_total": made}
        finally:
            worker.stop()
    finally:
        cam.stop()


def main():
    work = Path(tempfile.mkdtemp(prefix="bench_framepub_"))
    for size in (1024, 2048):
        r = run(size, work / str(size))
        floor = pyzmq_floor(size)
        print(f"{size}^2 uint16: camera {r['made']:6.1f} frames/s, worker received {r['received']:6.1f} frames/s "
              f"(ratio {r['received'] / r['made']:.2f}), latency exposure -> worker image PV {r['latency_ms']:.1f} ms, "
              f"of {r['made_total']} made: {r['skipped']} skipped by the publisher, {r['sent']} sent, {r['lost']} lost on "
              f"the way, {r['received_total']} received (worker counted {r['missed']} missing); "
              f"pyzmq floor {floor:.1f} frames/s, ratio worker/floor {r['received'] / floor:.2f}")


if __name__ == "__main__":
    main()
