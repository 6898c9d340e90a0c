"""tests/ioc.py -- runs bin/relocioc for a test the way an operator would under procServ.

One pytest session uses one CA server port (chosen free at start, see conftest.py), because libca reads
EPICS_CA_SERVER_PORT once per process. Tests therefore run one IOC at a time on that port. Everything is
loopback only: the IOC gets EPICS_CAS_INTF_ADDR_LIST=127.0.0.1 and beacons go to 127.0.0.1 only.

    with Ioc(st_cmd(f'dbLoadRecords "{db}"'), tmp_path) as ioc:    # starts, waits for iocInit
        wait_for(lambda: pv("TEST:ai").get() == 1.5, what="TEST:ai")
    # on exit: SIGTERM, wait, and fail if a sanitizer reported anything or the exit status was bad.

The helpers every test uses: pv() (a connected channel), wait_for() (raises on timeout), the st.cmd builders
(st_cmd, sample_stage, soft_stage, camera, default_st_cmd/default_env) and session_env().
"""
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

TOP = Path(os.environ.get("RELOC_TOP", Path(__file__).resolve().parents[1]))
BIN = Path(os.environ.get("RELOC_BIN", TOP / "bin"))
BOOT = TOP / "iocBoot" / "iocreloc"
SANITIZER_PATTERN = re.compile(r"ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer")


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 (CA uses the same number for both)."""
    for _ in range(50):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            udp.close()
            tcp.close()
    raise RuntimeError("no free port pair found")


def wait_for(predicate, timeout=30.0, what="condition", step=0.02):
    """Polls predicate() until it is true; raises AssertionError naming `what` (text, or a function giving it at
    the time of the failure) after timeout seconds: there is no return value to forget to assert."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")
        flush_ca_requests()
        time.sleep(step)


def flush_ca_requests():
    """Sends what libca holds queued, as a client's event loop does (epics.poll). A monitor that pyepics subscribes
    from its connection callback stays in libca's queue otherwise: libca refuses ca_pend_event inside a callback
    (ECA_EVDISALLOW), so nothing flushes it until the client's thread next calls into CA. Only on the main thread,
    whose context pyepics made: on another thread libca would make that thread a new, empty context to flush."""
    import sys
    import threading
    epics = sys.modules.get("epics")
    if epics is not None and epics.ca.libca is not None and threading.current_thread() is threading.main_thread():
        epics.ca.flush_io()


def pv(name, timeout=15.0):
    """A connected pyepics channel without a monitor (every get() reads the IOC); fails if it does not connect."""
    import epics  # imported here: conftest.py sets the CA environment before libca reads it
    channel = epics.PV(name, auto_monitor=False)
    assert channel.wait_for_connection(timeout), f"{name} did not connect"
    return channel


def alarm(name):
    """(STAT, SEVR) of a channel, from a DBR_CTRL get."""
    p = pv(name)
    p.get_ctrlvars()
    return p.status, p.severity


def pv_under(prefix):
    """pv() for the records under one prefix: pv = pv_under("CAM:"); pv("cam1:Acquire")."""
    return lambda name: pv(prefix + name)


# ---- st.cmd builders: each returns st.cmd lines; st_cmd() puts the search paths before them and iocInit after

def st_cmd(*lines):
    """An st.cmd with the repository's db/ and protocols/ on the search paths, lines (strings or lists of
    strings) in order, then iocInit."""
    flat = []
    for line in lines:
        flat += line if isinstance(line, list) else [line]
    return "\n".join([f'epicsEnvSet STREAM_PROTOCOL_PATH "{TOP / "protocols"}"',
                      f'epicsEnvSet EPICS_DB_INCLUDE_PATH "{TOP / "db"}"', *flat, "iocInit"]) + "\n"


def sample_stage(prefix, controller=None):
    """The sample stage motor records (sample_stage.substitutions) on controller MC1 at controller
    ("host:port"); without one, on the simulator the IOC starts itself (simMotorStart)."""
    lines = [] if controller else ["simMotorStart 0 6"]
    lines += [f'motorControllerCreate "MC1" "{controller or "127.0.0.1:$(MOTOR_SIM_PORT)"}" "simmotor.proto" 6',
              f'dbLoadTemplate "sample_stage.substitutions" "P={prefix},PORT=MC1"']
    return lines


READ_ONLY_ACF = """
ASG(DEFAULT) {
    RULE(1, READ)
}
"""


def start_motor_ioc(start_ioc, env, workdir, prefix, acf=None):
    """A motor IOC (the simulated sample stage under prefix) started by the start_ioc fixture with env, in
    workdir; acf: the text of its access security file."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lines = []
    if acf:
        (workdir / "b.acf").write_text(acf)
        lines.append(f'asSetFilename("{workdir / "b.acf"}")')
    return start_ioc(st_cmd(lines, sample_stage(prefix)), env=env)


def soft_stage(workdir, prefix):
    """Soft records standing in for the stage the camera follows: prefix samx, samy (um) and pixel (um/px)."""
    db = Path(workdir) / "soft_stage.db"
    db.write_text('record(ao, "$(P)samx") { field(PREC, "3") field(EGU, "um") }\n'
                  'record(ao, "$(P)samy") { field(PREC, "3") field(EGU, "um") }\n'
                  'record(ao, "$(P)pixel") { field(PREC, "4") field(EGU, "um") field(VAL, "1.0") }\n')
    return [f'dbLoadRecords("{db}", "P={prefix}")']


def camera(prefix, port, source, arg, width, height, stage=False):
    """Camera port `port` on a frame source and its records (camera.db); with stage, following soft_stage()."""
    lines = [f'cameraConfigure("{port}", "{source}", "{arg}", {width}, {height})']
    if stage:
        lines.append(f'cameraStage("{port}", "{prefix}samx", "{prefix}samy", "", "{prefix}pixel")')
    lines.append(f'dbLoadRecords("camera.db", "P={prefix},PORT={port},NELM={width * height},XSIZE={width},'
                 f'YSIZE={height}")')
    return lines


def camera_bench_ioc(size, workdir, env, *consumers, prefix="B:"):
    """For benchmarks: a started IOC with the simulated camera (size x size, uint16) as port CAM1 under prefix,
    then the st.cmd lines consumers (what takes its frames: preview, NTNDArray, ...). acquire_fast() starts it."""
    st = st_cmd(camera(prefix, "CAM1", "sim", TOP / "sim" / "sample_default.json", size, size), *consumers)
    return Ioc(st, workdir, env=env, binary=BIN / "relocioc").start()


def acquire_fast(prefix="B:", exposure=0.005):
    """Continuous acquisition as fast as the camera goes (no period): the camera_bench_ioc()'s frames."""
    import epics
    assert epics.caput(prefix + "cam1:AcquirePeriod", 0, wait=True, timeout=10)
    assert epics.caput(prefix + "cam1:AcquireTime", exposure, wait=True, timeout=10)
    assert epics.caput(prefix + "cam1:Acquire", 1, wait=True, timeout=10)


def default_st_cmd(*after):
    """The default IOC's st.cmd (iocBoot/iocreloc) unchanged, then the shell lines after."""
    return "\n".join([f"cd {BOOT}", "< st.cmd", *after]) + "\n"


def default_env(ioc_env, workdir, prefix=None, **settings):
    """The environment of the default IOC under test: its own autosave file in workdir, its PV prefix (None:
    st.cmd's default) and further RELOC_* settings."""
    env = dict(ioc_env, RELOC_AUTOSAVE_FILE=str(Path(workdir) / "reloc.sav"), **settings)
    if prefix is None:
        env.pop("RELOC_PREFIX", None)
    else:
        env["RELOC_PREFIX"] = prefix
    return env


def server_env(ca_port, repeater_port):
    """Environment of an IOC under test: loopback interface, loopback beacons, the session's ports."""
    env = dict(os.environ)
    env.update({
        "EPICS_CA_SERVER_PORT": str(ca_port),
        "EPICS_CAS_SERVER_PORT": str(ca_port),
        "EPICS_CA_REPEATER_PORT": str(repeater_port),
        "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_BEACON_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
        # the pvAccess server beside CA: loopback too (its ports stay the defaults unless a test picks free ones)
        "EPICS_PVAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1",
        "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
        # the IOC's own links to other IOCs search where the session's clients do (loopback only)
        "EPICS_CA_ADDR_LIST": os.environ.get("EPICS_CA_ADDR_LIST", "127.0.0.1"),
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        # the default st.cmd's fixed ZeroMQ ports, moved to free ones so that runs can coexist
        "RELOC_PREVIEW_ENDPOINT": "tcp://127.0.0.1:*",
        "RELOC_XRF_PULL": "tcp://127.0.0.1:*",
        "RELOC_XRF_PUB": "tcp://127.0.0.1:*",
        "RELOC_WEB_ADDRESS": "127.0.0.1:0",
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:halt_on_error=1",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    })
    return env


def standalone_client_ports():
    """For a script outside pytest (a benchmark): picks free CA server and repeater ports and sets the CA client
    environment to search only 127.0.0.1 on them. Call before importing epics; returns server_env() for an IOC
    serving there."""
    ca_port, repeater_port = free_port(), free_port()
    os.environ.update({"EPICS_CA_SERVER_PORT": str(ca_port), "EPICS_CA_ADDR_LIST": "127.0.0.1",
                       "EPICS_CA_AUTO_ADDR_LIST": "NO", "EPICS_CA_MAX_ARRAY_BYTES": "100000000",
                       "EPICS_CA_REPEATER_PORT": str(repeater_port)})
    return server_env(ca_port, repeater_port)


def session_env():
    """server_env() with this pytest session's CA ports (conftest.py chose them and put them in os.environ)."""
    return server_env(int(os.environ["EPICS_CA_SERVER_PORT"]), int(os.environ["EPICS_CA_REPEATER_PORT"]))


def default_ioc(prefix, workdir, env=None, after=(), **kw):
    """The default IOC as st.cmd starts it (simulators, stage map, web view on a free port) under its own PV prefix,
    with its autosave file and XRF output in workdir, then the shell lines after; env defaults to this pytest
    session's. An Ioc to start (or use as a context manager)."""
    env = default_env(env or session_env(), workdir, prefix, RELOC_TOP=str(TOP),
                      RELOC_XRF_OUT_DIR=str(workdir / "xrf"))
    return Ioc(default_st_cmd(*after), workdir / "ioc", env=env, **kw)


class Ioc:
    """A running relocioc. st_cmd is the text of its startup script, written into workdir."""

    def __init__(self, st_cmd, workdir, env=None, binary=None, ready_pattern=r"iocInit.*(done|complete)",
                 timeout=20.0, stdin=subprocess.DEVNULL):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.st_cmd = self.workdir / "st.cmd"
        self.st_cmd.write_text(st_cmd)
        self.log_path = self.workdir / "ioc.log"
        self.binary = Path(binary) if binary else BIN / "relocioc"
        self.env = dict(env) if env else dict(os.environ)
        self.ready_pattern = re.compile(ready_pattern)
        self.timeout = timeout
        self.stdin = stdin             # e.g. a pty's slave end: the IOC then runs its interactive shell
        self.proc = None

    def start(self, expect_ready=True):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(self.binary), str(self.st_cmd)], cwd=self.workdir, env=self.env,
                                     stdin=self.stdin, stdout=self._log, stderr=subprocess.STDOUT)
        if expect_ready:
            self.wait_for_log(self.ready_pattern, self.timeout)
        return self

    def refuse_start(self, timeout=20.0):
        """Starts an IOC whose start-up must fail: returns its log once it has exited non-zero without completing
        iocInit (and without a sanitizer report)."""
        self.start(expect_ready=False)
        code = self.wait_exit(timeout)
        self._log.close()
        self.check_sanitizers()
        log = self.log()
        assert code != 0, f"IOC with a broken start-up exited 0:\n{log}"
        assert not self.ready_pattern.search(log), log
        return log

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern, timeout=10.0):
        """Waits until the log matches pattern; fails early if the IOC exits."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if regex.search(text):
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"IOC exited with {self.proc.returncode} before '{regex.pattern}':\n{text}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for '{regex.pattern}' in IOC log:\n{self.log()}")

    def wait_exit(self, timeout=10.0):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"IOC did not exit within {timeout} s:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signals the IOC, waits for it, and returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.wait_exit(timeout)
        self._log.close()
        return code

    def check_sanitizers(self):
        text = self.log()
        match = SANITIZER_PATTERN.search(text)
        assert match is None, f"sanitizer report in IOC log:\n{text[max(0, match.start() - 2000):]}"

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        code = self.stop()
        if exc_type is None:
            self.check_sanitizers()
            assert code == 0, f"IOC exit status {code}:\n{self.log()[-4000:]}"
