"""tests/pva/pva_ioc.py -- IOCs whose pvAccess server listens on free loopback ports, for the PVA tests.

Each IOC gets its own PVA TCP and UDP ports (EPICS_PVAS_SERVER_PORT / EPICS_PVAS_BROADCAST_PORT), bound to
127.0.0.1 with beacons to 127.0.0.1 only; the test client (pvaclient.py) is pointed at them explicitly, so no
client environment is needed. CA stays on the session's ports (tests/conftest.py) for the comparisons."""
import contextlib
import socket

import ioc as ioc_module
from ioc import wait_for
from pvaclient import Client


class PvaIoc:
    """A started Ioc and its PVA ports; client(**kw) opens a validated connection to it; beacons is a UDP socket
    bound before the IOC started, where its beacons arrive."""

    def __init__(self, ioc, tcp_port, udp_port, beacons):
        self.ioc, self.tcp_port, self.udp_port, self.beacons = ioc, tcp_port, udp_port, beacons

    def client(self, **kw):
        return Client(self.tcp_port, **kw)


def pva_env(env):
    """(env with the PVA server on free loopback ports, tcp port, udp port, the socket its beacons go to)."""
    tcp, udp = ioc_module.free_port(), ioc_module.free_port()
    beacons = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    beacons.bind(("127.0.0.1", 0))
    return dict(env, EPICS_PVAS_SERVER_PORT=str(tcp), EPICS_PVAS_BROADCAST_PORT=str(udp),
                EPICS_PVAS_INTF_ADDR_LIST="127.0.0.1",
                EPICS_PVAS_BEACON_ADDR_LIST=f"127.0.0.1:{beacons.getsockname()[1]}",
                EPICS_PVAS_AUTO_BEACON_ADDR_LIST="NO", EPICS_PVA_ADDR_LIST="127.0.0.1",
                EPICS_PVA_AUTO_ADDR_LIST="NO"), tcp, udp, beacons


def accepts(port):
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1.0):
        return True
    return False


@contextlib.contextmanager
def running(ioc, tcp, udp, beacons):
    """Starts ioc, waits until its PVA server accepts connections, yields a PvaIoc; stops it and checks its exit
    status and sanitizer reports."""
    try:
        ioc.start()
        wait_for(lambda: accepts(tcp), 10, f"the PVA server on port {tcp}")
        yield PvaIoc(ioc, tcp, udp, beacons)
    finally:
        beacons.close()
        code = ioc.stop()
    ioc.check_sanitizers()
    assert code == 0, f"IOC exit status {code}:\n{ioc.log()[-4000:]}"


def records_ioc(st_cmd, workdir):
    """running() for an IOC with the given st.cmd text and the session's CA ports."""
    env, *ports = pva_env(ioc_module.session_env())
    return running(ioc_module.Ioc(st_cmd, workdir, env=env), *ports)


def default_pva_ioc(prefix, workdir, after=()):
    """running() for the default IOC (iocBoot/iocreloc/st.cmd) under prefix, then the shell lines after."""
    env, *ports = pva_env(ioc_module.session_env())
    return running(ioc_module.default_ioc(prefix, workdir, env=env, after=after), *ports)
