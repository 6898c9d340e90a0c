"""tests/motor/motor_stage.py -- helpers of the motor tests: the simulator as a restartable child process that
tests can also talk to directly (its own answers, e.g. "1 POS?", are the ground truth the IOC's readbacks are
checked against) and the st.cmd of an IOC serving the real motor templates."""
import socket
import subprocess


import ioc as ioc_module

TOP = ioc_module.TOP
BIN = ioc_module.BIN
MRES = {"samx": 0.0001, "samy": 0.0001, "samz": 0.0001, "pssx": 0.001, "pssy": 0.001, "zoom": 0.001}
AXIS = {"samx": 1, "samy": 2, "samz": 3, "pssx": 4, "pssy": 5, "zoom": 6}


class Simulator:
    """reloc-sim-motor on a fixed loopback port; restartable on the same port."""

    def __init__(self, port, noise=0.3):
        self.port = port
        self.noise = noise
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([str(BIN / "reloc-sim-motor"), "--port", str(self.port), "--axes", "6",
                                      "--noise", str(self.noise)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert "listening on port" in line, f"simulator did not start: {line!r}"
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)

    def ask(self, line, timeout=2.0):
        """One command on a connection of our own; returns the reply line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall((line + "\n").encode())
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.decode().strip()

    def steps(self, axis):
        """The controller's own position of an axis, in steps."""
        return int(self.ask(f"{axis} POS?").split()[-1])

    def status(self, axis):
        return int(self.ask(f"{axis} STATUS?").split()[-1], 16)


def st_cmd(port, prefix, after_init=""):
    return ioc_module.st_cmd(
        ioc_module.sample_stage(prefix, f"127.0.0.1:{port}"),
        f'dbLoadRecords "motor.db" "P={prefix},M=zoom,PORT=MC1,ADDR=6,EGU=mm,MRES=0.001,VELO=20,HVEL=5,DHLM=60,'
        'DLLM=-1,RDBD=0.003"',
        f'dbLoadRecords "camera_stage.db" "P={prefix},ZOOM=zoom"',
        f'dbLoadRecords "motor_util.db" "P={prefix}"') + after_init + "\n"


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_stage(tmp_dir, prefix, noise=0.3, after_init=""):
    """A simulator and an IOC on it serving PVs named prefix + ... (waits until every axis has been polled);
    after_init: st.cmd lines run after iocInit.
    Each test module uses its own prefix: a channel left from an IOC stopped earlier in the session must not
    wait out libca's search back-off."""
    sim = Simulator(free_tcp_port(), noise).start()
    ioc = ioc_module.Ioc(st_cmd(sim.port, prefix, after_init), tmp_dir, env=ioc_module.session_env())
    ioc.start()
    ioc.wait_for_log(r"MC1 axis 6: communication restored", timeout=10)
    return sim, ioc


def stop_stage(sim, ioc):
    code = ioc.stop()
    sim.stop()
    ioc.check_sanitizers()
    assert code == 0, f"IOC exit status {code}:\n{ioc.log()[-4000:]}"


COMM, INVALID = 9, 3   # alarm status COMM, severity INVALID


def read(name):
    """A PV read from the IOC (not from a monitor)."""
    value = ioc_module.pv(name).get(timeout=5.0)
    assert value is not None, f"no value for {name}"
    return value


def alarm_of(record):
    """(STAT, SEVR) of a record."""
    return read(f"{record}.STAT"), read(f"{record}.SEVR")
