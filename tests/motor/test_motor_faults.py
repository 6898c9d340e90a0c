"""Fault injection on the motor controller: killed mid-move, garbage replies, slow replies, a stalled axis.
Each time the IOC must stay up, show the alarm on the motor (COMM/INVALID, or STATE/MAJOR for a stall), finish
the put of a move in flight instead of leaving it hanging, reconnect by itself, and make the next move work."""
import socket
import time

import epics
import pytest

from ca_status import ECA_NORMAL, ECA_PUTFAIL, put_status, start_put
from ioc import wait_for
from motor_stage import AXIS, MRES

P = "MF:"
COMM, STATE = 9, 7
INVALID, MAJOR = 3, 2


def get(name):
    p = epics.get_pv(P + name)
    assert p.wait_for_connection(5.0), f"{P}{name} did not connect"
    value = p.get(timeout=5.0, use_monitor=False)
    assert value is not None, f"no value for {P}{name}"
    return value


def put_wait(name, value, timeout=30.0):
    assert epics.get_pv(P + name).put(value, wait=True, timeout=timeout) == 1, f"put {name}={value} timed out"


def alarm(motor):
    return get(f"{motor}.STAT"), get(f"{motor}.SEVR")


def recovers_and_moves(sim, motor, target):
    """After a fault: the alarm clears by itself and a move lands where asked (on the controller's count)."""
    wait_for(lambda: alarm(motor) == (0, 0), 15, f"{motor} alarm to clear")
    put_wait(motor, target)
    assert sim.steps(AXIS[motor]) * MRES[motor] == pytest.approx(target, abs=get(f"{motor}.RDBD"))
    assert alarm(motor) == (0, 0)


@pytest.fixture(autouse=True)
def clear_faults(stage):
    sim, _ = stage
    yield
    if sim.proc.poll() is not None:
        sim.start()
    sim.ask("FAULT CLEAR")


def test_controller_killed_mid_move(stage):
    sim, ioc = stage
    assert put_status(P + "samx", 0.0) == ECA_NORMAL
    move = start_put(P + "samx", 8.0)
    wait_for(lambda: get("samx.MOVN") == 1, 5)
    sim.kill()
    wait_for(lambda: alarm("samx") == (COMM, INVALID), 5)
    assert move.wait(5) == ECA_PUTFAIL, "the put of the interrupted move must complete, reporting the failure"
    assert get("samx.DMOV") == 1
    assert get("samy.VAL") is not None            # the IOC keeps serving
    ioc.wait_for_log(r"samx: motion aborted")
    sim.start()                                   # a new controller on the same port, at 0
    recovers_and_moves(sim, "samx", 0.5)


def test_garbage_replies(stage):
    sim, ioc = stage
    seen = []
    sevr = epics.PV(P + "samy.SEVR", callback=lambda value=None, **kw: seen.append(value), auto_monitor=True)
    assert sevr.wait_for_connection(5)
    sim.ask("FAULT GARBAGE 24")                   # a few failed polls of every axis, even on a loaded machine
    wait_for(lambda: INVALID in seen, 5, "an alarm while replies are garbage")
    ioc.wait_for_log(r"does not match")
    sevr.clear_callbacks()
    recovers_and_moves(sim, "samy", -0.3)


def test_slow_replies(stage):
    sim, ioc = stage
    sim.ask("FAULT DELAY 800")                    # ReplyTimeout is 500 ms
    wait_for(lambda: alarm("samz") == (COMM, INVALID), 5)
    start = time.monotonic()
    put_wait("samz", 0.2)                         # a move asked meanwhile ends (with the alarm), it does not hang
    assert time.monotonic() - start < 10
    assert get("samz.DMOV") == 1
    ioc.wait_for_log(r"no reply within 500 ms")
    sim.ask("FAULT CLEAR", timeout=3)
    recovers_and_moves(sim, "samz", 0.4)


def test_stalled_axis(stage):
    sim, _ = stage
    put_wait("pssy", 0.0)
    sim.ask(f"{AXIS['pssy']} STALL 1")
    put_wait("pssy", 10.0)                        # the controller gives up after 1 s
    assert alarm("pssy") == (STATE, MAJOR)
    assert int(get("pssy.MSTA")) & (1 << 9)       # MSTA PROBLEM
    assert abs(sim.steps(AXIS["pssy"])) <= 2
    sim.ask("FAULT CLEAR")
    put_wait("pssy", 10.0)
    assert sim.steps(AXIS["pssy"]) * MRES["pssy"] == pytest.approx(10.0, abs=0.003)
    assert alarm("pssy") == (0, 0)


def test_dropped_connection(stage):
    sim, ioc = stage
    with socket.create_connection(("127.0.0.1", sim.port)) as s:
        s.sendall(b"FAULT DROP 700\n")         # closes every connection and refuses new ones for 0.7 s
        s.recv(16)
    wait_for(lambda: alarm("samx") == (COMM, INVALID), 5)
    recovers_and_moves(sim, "samx", -0.2)
