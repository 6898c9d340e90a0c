"""tests/conftest.py -- session-wide set-up shared by every pytest test.

The CA ports are chosen here, before any test imports pyepics, because libca reads its environment once.
Clients search only 127.0.0.1: the session's server port, and a second one for tests that run two IOCs side
by side (a worker IOC, another beamline IOC); see tests/ioc.py for the server side."""
import itertools
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ioc as ioc_module  # noqa: E402

CA_PORT = ioc_module.free_port()
SECOND_CA_PORT = ioc_module.free_port()
REPEATER_PORT = ioc_module.free_port()
os.environ.update({
    "EPICS_CA_SERVER_PORT": str(CA_PORT),
    "EPICS_CA_REPEATER_PORT": str(REPEATER_PORT),
    "EPICS_CA_ADDR_LIST": f"127.0.0.1 127.0.0.1:{SECOND_CA_PORT}",
    "EPICS_CA_AUTO_ADDR_LIST": "NO",
    "EPICS_CA_MAX_ARRAY_BYTES": "100000000",
})


@pytest.fixture
def ioc_env():
    """Environment for an IOC started by a test (loopback only, the session's CA ports)."""
    return ioc_module.server_env(CA_PORT, REPEATER_PORT)


@pytest.fixture
def second_ioc_env():
    """Environment for a second IOC beside the first (its own CA server port, which clients also search)."""
    return ioc_module.server_env(SECOND_CA_PORT, REPEATER_PORT)


@pytest.fixture
def refuses_to_start(tmp_path, ioc_env):
    """refuses_to_start(st_cmd_text, **kw) -> log of an IOC that must exit non-zero before iocInit completes."""
    count = itertools.count()

    def run(st_cmd, **kw):
        ioc = ioc_module.Ioc(st_cmd, tmp_path / f"bad{next(count)}", env=kw.pop("env", ioc_env), **kw)
        return ioc.refuse_start()

    return run


@pytest.fixture
def start_ioc(tmp_path, ioc_env):
    """start_ioc(st_cmd_text, **kw) -> running Ioc; stopped and checked for sanitizer reports at teardown."""
    started = []

    def start(st_cmd, **kw):
        ioc = ioc_module.Ioc(st_cmd, tmp_path / f"ioc{len(started)}", env=kw.pop("env", ioc_env), **kw)
        started.append(ioc)
        return ioc.start()

    yield start
    for ioc in started:
        if ioc.proc is not None and ioc.proc.poll() is None:
            code = ioc.stop()
            ioc.check_sanitizers()
            assert code == 0, f"IOC exit status {code}:\n{ioc.log()[-4000:]}"
