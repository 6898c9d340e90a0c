"""pvAccess server limits (RELOC_PVAS_MAX_CLIENTS, RELOC_PVAS_MAX_CHANNELS): a client past the limit is
refused while those already connected keep working, and its place is free again when one leaves; a client silent
past the inactivity timeout (EPICS_PVA_CONN_TMO) is dropped."""
import re
import time

import pytest

import ioc as ioc_module
from ioc import st_cmd
from pva_ioc import pva_env, running
from pvaclient import PvaError, ProtocolError

P = "PVL:"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with limits_ioc(tmp_path_factory.mktemp("pva_limits"), RELOC_PVAS_MAX_CLIENTS="2",
                    RELOC_PVAS_MAX_CHANNELS="3") as s:
        yield s


def limits_ioc(work, **settings):
    (work / "limits.db").write_text("".join(f'record(ao, "{P}ao{i}") {{ field(VAL, "{i}") }}\n' for i in range(5)))
    env, *ports = pva_env(ioc_module.session_env())
    env.update(settings)
    return running(ioc_module.Ioc(st_cmd(f'dbLoadRecords("{work / "limits.db"}")'), work, env=env), *ports)


# How the client says the server refused it (or closed on it).
REFUSAL = (ConnectionError, ProtocolError, PvaError, TimeoutError, OSError)


def refused(connect):
    try:
        connect().close()
    except REFUSAL:
        return True
    return False


def admitted(server):
    """A client, once the server has seen the clients of earlier tests leave: a close reaches it asynchronously,
    and until then their places are taken and a new client is refused, as it should be."""
    clients = []

    def connect():
        try:
            clients.append(server.client(timeout=5.0))
        except REFUSAL:
            return False
        return True

    ioc_module.wait_for(connect, 10, "a free place")
    return clients[0]


def test_a_client_past_the_limit_is_refused_and_the_others_keep_working(server):
    first, second = server.client(), server.client()
    assert first.get(P + "ao1")["value"] == 1.0
    assert refused(lambda: server.client(timeout=5.0)), "a third client was accepted with a limit of 2"
    assert second.get(P + "ao2")["value"] == 2.0 and first.get(P + "ao3")["value"] == 3.0
    second.close()
    ioc_module.wait_for(lambda: not refused(lambda: server.client(timeout=5.0)), 10, "the freed place")
    first.close()


def test_channels_past_the_limit_are_refused_and_the_connection_stays(server):
    with admitted(server) as client:
        for i in range(3):
            assert client.get(P + f"ao{i}")["value"] == float(i)
        with pytest.raises(PvaError):
            client.channel(P + "ao3")
        assert client.get(P + "ao0")["value"] == 0.0
        assert client.destroy_channel(P + "ao0")
        assert client.get(P + "ao4")["value"] == 4.0        # a destroyed channel frees its place


def test_a_silent_client_is_dropped_and_one_that_echoes_stays(tmp_path):
    """As pvxs servers do: a client silent for EPICS_PVA_CONN_TMO x 4/3 (here 1.5 s -> 2 s) is dropped with a log
    line, so a client that vanished without closing its socket does not keep its channels and monitors for
    ever; a client that echoes (upstream clients do every 15 s) keeps its connection."""
    with limits_ioc(tmp_path, EPICS_PVA_CONN_TMO="1.5") as s:
        silent, alive = s.client(), s.client()
        assert silent.get(P + "ao1")["value"] == 1.0
        port = silent.sock.getsockname()[1]
        dropped = re.compile(rf"127\.0\.0\.1:{port} .*disconnected: silent for too long")
        deadline = time.monotonic() + 10.0
        while not dropped.search(s.ioc.log()):
            assert time.monotonic() < deadline, s.ioc.log()[-2000:]
            assert alive.echo(b"still here") == b"still here"
            time.sleep(0.2)
        assert time.monotonic() - (deadline - 10.0) > 1.5      # not before the timeout
        with pytest.raises((ConnectionError, OSError, TimeoutError)):
            silent.get(P + "ao1")
        assert alive.get(P + "ao2")["value"] == 2.0
        alive.close()
