"""A simulator started by the IOC itself (simMotorStart, as the default st.cmd does) and killed mid-move (#15
finding 7): the move's put-callback fails, MOVN 0 / DMOV 1 / COMM alarm, the child is reaped (no <defunct>), the
log says how to restart it, and `simMotorStart PORT` typed at the IOC's shell brings it back: the motors
reconnect, VAL follows the fresh controller's readback, and moves work again."""
import os
import pty
import re
import signal

import pytest

import ioc as ioc_module
from ca_status import ECA_NORMAL, ECA_PUTFAIL, put_status, start_put
from ioc import wait_for
from motor_stage import COMM, INVALID, alarm_of, read

P = "MS:"


def process_state(pid):
    """The state letter of a process (Z for <defunct>), or None when it no longer exists."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_sim_motor_start_child_is_reaped_and_restarts(tmp_path):
    """The default st.cmd's way: simMotorStart starts the simulator as the IOC's child."""
    st_cmd = ioc_module.st_cmd(ioc_module.sample_stage(P))   # simMotorStart 0 6, as the default st.cmd
    master, slave = pty.openpty()                    # a terminal: the IOC runs its interactive shell on it
    ioc = ioc_module.Ioc(st_cmd, tmp_path, env=ioc_module.session_env(), stdin=slave)
    try:
        ioc.start()
        found = re.search(r"simulator pid (\d+) listening on 127\.0\.0\.1:(\d+)",
                          ioc.wait_for_log(r"simulator pid \d+ listening"))
        pid, port = int(found.group(1)), int(found.group(2))
        ioc.wait_for_log(r"MC1 axis 1: communication restored", timeout=10)
        assert put_status(P + "samy", 0.0) == ECA_NORMAL
        move = start_put(P + "samy", 6.0)
        wait_for(lambda: read(P + "samy.MOVN") == 1, 5, "samy moving")
        os.kill(pid, signal.SIGKILL)
        assert move.wait(10) == ECA_PUTFAIL
        wait_for(lambda: alarm_of(P + "samy") == (COMM, INVALID), 5, "COMM/INVALID on samy")
        assert read(P + "samy.MOVN") == 0 and read(P + "samy.DMOV") == 1
        ioc.wait_for_log(rf"simulator pid {pid} on 127\.0\.0\.1:{port} killed by signal 9 .*simMotorStart {port}")
        wait_for(lambda: process_state(pid) is None, 5, f"simulator {pid} reaped (state {process_state(pid)})")

        os.write(master, f"simMotorStart {port} 6\n".encode())
        ioc.wait_for_log(rf"simulator pid (?!{pid}\b)\d+ listening on 127\.0\.0\.1:{port}")
        wait_for(lambda: alarm_of(P + "samy") == (0, 0), 15, "samy alarm cleared")
        wait_for(lambda: abs(read(P + "samy.VAL") - read(P + "samy.RBV")) <= 0.0003, 5, "VAL = RBV")
        assert read(P + "samy.RBV") == pytest.approx(0.0, abs=0.0003)   # the new simulator starts at 0
        assert put_status(P + "samy", 0.25) == ECA_NORMAL
        assert read(P + "samy.RBV") == pytest.approx(0.25, abs=0.0003)
    finally:
        code = ioc.stop()
        os.close(master)
        os.close(slave)
    ioc.check_sanitizers()
    assert code == 0, ioc.log()[-3000:]
