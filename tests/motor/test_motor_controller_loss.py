"""Losing the motor controller (#15 finding 7). Killed mid-move: MOVN 0, DMOV 1, COMM/INVALID, the put-callback
of the move fails. Back (a fresh controller at 0 on the same port): VAL/DVAL follow the readback, never a silent
VAL != RBV. A simulator started by the IOC itself (simMotorStart) is reaped when it dies (no <defunct>), the log
says how to restart it, and `simMotorStart PORT` typed at the IOC's shell brings it back."""
import os
import pty
import re
import signal

import epics
import pytest

import ioc as ioc_module
from ca_status import ECA_NORMAL, ECA_PUTFAIL, put_status, start_put
from ioc import wait_for
from motor_stage import AXIS, MRES

P = "ML:"
COMM, INVALID = 9, 3


def get(name, prefix=P):
    p = epics.get_pv(prefix + name)
    assert p.wait_for_connection(5.0), f"{prefix}{name} did not connect"
    value = p.get(timeout=5.0, use_monitor=False)
    assert value is not None, f"no value for {prefix}{name}"
    return value


def alarm(name, prefix=P):
    return get(f"{name}.STAT", prefix), get(f"{name}.SEVR", prefix)


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


def process_state(pid):
    """The state letter of a process (Z for <defunct>), or None when it no longer exists."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_sim_motor_start_child_is_reaped_and_restarts(tmp_path):
    """The default st.cmd's way: simMotorStart starts the simulator as the IOC's child."""
    prefix = "MS:"
    st_cmd = f"""
epicsEnvSet STREAM_PROTOCOL_PATH "{ioc_module.TOP / 'protocols'}"
epicsEnvSet EPICS_DB_INCLUDE_PATH "{ioc_module.TOP / 'db'}"
simMotorStart 0 6
motorControllerCreate "MC1" "127.0.0.1:$(MOTOR_SIM_PORT)" "simmotor.proto" 6
dbLoadTemplate "sample_stage.substitutions" "P={prefix},PORT=MC1"
iocInit
"""
    env = ioc_module.server_env(int(os.environ["EPICS_CA_SERVER_PORT"]), int(os.environ["EPICS_CA_REPEATER_PORT"]))
    master, slave = pty.openpty()                    # a terminal: the IOC runs its interactive shell on it
    ioc = ioc_module.Ioc(st_cmd, tmp_path, env=env, stdin=slave)
    try:
        ioc.start()
        found = re.search(r"simulator pid (\d+) listening on 127\.0\.0\.1:(\d+)",
                          ioc.wait_for_log(r"simulator pid \d+ listening"))
        pid, port = int(found.group(1)), int(found.group(2))
        ioc.wait_for_log(r"MC1 axis 1: communication restored", timeout=10)
        assert put_status(prefix + "samy", 0.0) == ECA_NORMAL
        move = start_put(prefix + "samy", 6.0)
        wait_for(lambda: get("samy.MOVN", prefix) == 1, 5, "samy moving")
        os.kill(pid, signal.SIGKILL)
        assert move.wait(10) == ECA_PUTFAIL
        wait_for(lambda: alarm("samy", prefix) == (COMM, INVALID), 5, "COMM/INVALID on samy")
        assert get("samy.MOVN", prefix) == 0 and get("samy.DMOV", prefix) == 1
        ioc.wait_for_log(rf"simulator pid {pid} on 127\.0\.0\.1:{port} killed by signal 9 .*simMotorStart {port}")
        wait_for(lambda: process_state(pid) is None, 5, f"simulator {pid} reaped (state {process_state(pid)})")

        os.write(master, f"simMotorStart {port} 6\n".encode())
        ioc.wait_for_log(rf"simulator pid (?!{pid}\b)\d+ listening on 127\.0\.0\.1:{port}")
        wait_for(lambda: alarm("samy", prefix) == (0, 0), 15, "samy alarm cleared")
        wait_for(lambda: abs(get("samy.VAL", prefix) - get("samy.RBV", prefix)) <= 0.0003, 5, "VAL = RBV")
        assert get("samy.RBV", prefix) == pytest.approx(0.0, abs=0.0003)   # the new simulator starts at 0
        assert put_status(prefix + "samy", 0.25) == ECA_NORMAL
        assert get("samy.RBV", prefix) == pytest.approx(0.25, abs=0.0003)
    finally:
        code = ioc.stop()
        os.close(master)
        os.close(slave)
    ioc.check_sanitizers()
    assert code == 0, ioc.log()[-3000:]
