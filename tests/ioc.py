"""tests/ioc.py -- runs bin/relocioc for a test the way an operator would under procServ.

One pytest session uses one CA server port (chosen free at start, see conftest.py), because libca reads
EPICS_CA_SERVER_PORT once per process. Tests therefore run one IOC at a time on that port. Everything is
loopback only: the IOC gets EPICS_CAS_INTF_ADDR_LIST=127.0.0.1 and beacons go to 127.0.0.1 only.

    with Ioc(st_cmd_text, tmp_path) as ioc:       # starts, waits for iocInit
        epics.caget("TEST:ai")
    # on exit: SIGTERM, wait, and fail if a sanitizer reported anything or the exit status was bad.
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


def wait_for(predicate, timeout=15.0, what="condition"):
    """Polls predicate() until it is true; fails with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


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
        "EPICS_CA_ADDR_LIST": "127.0.0.1",
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
