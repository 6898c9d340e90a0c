"""bench_motor.py -- motor stages against the simulated controller (bin/reloc-sim-motor), in one run:

  1. command round trip: a put-with-completion of a move to the current position (DMOV 1->0->1: the move
     command, the poll that sees it done, the completion)  vs  one raw "1 POS?" exchange with the controller
     over TCP (the floor any driver pays per command)
  2. status update rate per axis: RBV monitor updates per second while 1 and then 5 axes move at constant
     speed  vs  the driver's fast polling rate while moving (20 Hz: every poll should reach the client)

There is no other motor record implementation on this machine (Debian ships no synApps), so the peer is the
controller link's own limit. Prints ours, the limit and the ratio for each."""
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

TOP = Path(os.environ.get("RELOC_TOP", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(TOP / "tests"))
sys.path.insert(0, str(TOP / "tests" / "motor"))
import ioc as ioc_module  # noqa: E402

os.environ.update({"EPICS_CA_SERVER_PORT": str(ioc_module.free_port()),
                   "EPICS_CA_REPEATER_PORT": str(ioc_module.free_port()),
                   "EPICS_CA_ADDR_LIST": "127.0.0.1", "EPICS_CA_AUTO_ADDR_LIST": "NO"})
import epics  # noqa: E402

from motor_stage import start_stage, stop_stage  # noqa: E402

PREFIX = "BM:"
MOTORS = ["samx", "samy", "samz", "pssx", "pssy"]
FAST_POLL_HZ = 20.0   # src/drivers/motor/controller.c FAST_POLL


def report(what, ours, peer, unit, peer_name):
    print(f"{what:46s} ours {ours:10.2f} {unit:9s} {peer_name} {peer:10.2f}  ratio {ours / peer:.3f}")


def raw_round_trip_ms(port, n=500):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rwb")
        times = []
        for _ in range(n):
            t = time.perf_counter()
            f.write(b"1 POS?\n")
            f.flush()
            f.readline()
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def command_round_trip_ms(n=30):
    val = epics.get_pv(PREFIX + "samx")
    val.wait_for_connection(5)
    here = val.get()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        assert val.put(here, wait=True, timeout=10) == 1
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def update_rate(motors, seconds=1.5):
    """RBV updates per second per axis while the motors run at constant speed."""
    counts = {m: 0 for m in motors}
    lock = threading.Lock()

    def cb(pvname=None, **kw):
        with lock:
            counts[pvname[len(PREFIX):-4]] += 1

    pvs = [epics.PV(PREFIX + m + ".RBV", callback=cb, auto_monitor=True) for m in motors]
    for p in pvs:
        p.wait_for_connection(5)
    # Coarse axes at 2 mm/s (20000 steps/s), piezos at 80 um/s (80 steps/s: several steps per poll, so every
    # poll changes RBV); from one end of the soft range to the other, still cruising when the window closes.
    span = {m: 4.0 if m.startswith("sam") else 90.0 for m in motors}
    for m in motors:
        epics.caput(PREFIX + m + ".VELO", 2.0 if m.startswith("sam") else 80.0, wait=True)
    for m in motors:
        epics.caput(PREFIX + m, -span[m])
    for m in motors:
        epics.get_pv(PREFIX + m).put(-span[m], wait=True, timeout=30)
    for m in motors:
        epics.caput(PREFIX + m, span[m])
    time.sleep(0.4)
    with lock:
        start = dict(counts)
    time.sleep(seconds)
    with lock:
        end = dict(counts)
    for m in motors:
        epics.caput(PREFIX + m + ".STOP", 1)
    for p in pvs:
        p.clear_callbacks()
    time.sleep(0.5)
    return statistics.mean((end[m] - start[m]) / seconds for m in motors)


def main():
    sim, ioc = start_stage(Path(tempfile.mkdtemp(prefix="bench_motor_")), PREFIX, noise=0.0)
    try:
        raw_ms = raw_round_trip_ms(sim.port)
        cmd_ms = command_round_trip_ms()
        report("command round trip (put-wait, no motion)", cmd_ms, raw_ms, "ms", "raw POS? exchange")
        for motors in (MOTORS[:1], MOTORS):
            rate = update_rate(motors)
            report(f"RBV updates/s per axis, {len(motors)} moving", rate, FAST_POLL_HZ, "Hz", "driver fast poll")
    finally:
        stop_stage(sim, ioc)


if __name__ == "__main__":
    main()
