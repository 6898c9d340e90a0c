"""Losing the motor controller (#15 finding 7). Killed mid-move: MOVN 0, DMOV 1, COMM/INVALID, the put-callback
of the move fails. Back (a fresh controller at 0 on the same port): VAL/DVAL follow the readback, never a silent
VAL != RBV. (test_motor_sim_restart.py: the same with the simulator the IOC started itself.)"""
import pytest

from ca_status import ECA_NORMAL, ECA_PUTFAIL, put_status, start_put
from ioc import wait_for
from motor_stage import AXIS, COMM, INVALID, MRES, alarm_of, read

P = "ML:"


def get(name):
    return read(P + name)


def alarm(record):
    return alarm_of(P + record)


def test_killed_mid_move_then_back_resynchronises(stage):
    sim, ioc = stage
    assert put_status(P + "samx", 0.0) == ECA_NORMAL
    move = start_put(P + "samx", 5.0)
    wait_for(lambda: get("samx.MOVN") == 1, 5, "samx moving")
    sim.kill()
    wait_for(lambda: alarm("samx") == (COMM, INVALID), 5, "COMM/INVALID on samx")
    assert move.wait(5) == ECA_PUTFAIL
    assert get("samx.MOVN") == 0, "a lost controller moves nothing the record knows of"
    assert get("samx.DMOV") == 1
    assert int(get("samx.MSTA")) & (1 << 12)         # MSTA COMM_ERR
    ioc.wait_for_log(r"samx: motion aborted: connection to the controller lost")

    sim.start()                                       # a fresh controller on the same port, every axis at 0
    wait_for(lambda: alarm("samx") == (0, 0), 15, "samx alarm cleared")
    wait_for(lambda: abs(get("samx.VAL") - get("samx.RBV")) <= get("samx.RDBD"), 5, "VAL following RBV")
    assert get("samx.RBV") == pytest.approx(sim.steps(AXIS["samx"]) * MRES["samx"], abs=0.0003)
    assert get("samx.DVAL") == pytest.approx(get("samx.DRBV"), abs=0.0003)
    assert get("samx.DMOV") == 1 and get("samx.MOVN") == 0
    ioc.wait_for_log(r"samx: controller \(re\)connected at .*: VAL .* set to the readback")
    assert put_status(P + "samx", 0.4) == ECA_NORMAL  # and the next move works
    assert sim.steps(AXIS["samx"]) * MRES["samx"] == pytest.approx(0.4, abs=0.0003)
    assert "output converter" not in ioc.log()
