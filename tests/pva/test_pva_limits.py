"""pvAccess server limits (RELOC_PVAS_MAX_CLIENTS, RELOC_PVAS_MAX_CHANNELS): a client past the limit is
refused while those already connected keep working, and its place is free again when one leaves."""
import pytest

import ioc as ioc_module
from ioc import st_cmd
from pva_ioc import pva_env, running
from pvaclient import PvaError, ProtocolError

P = "PVL:"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("pva_limits")
    (work / "limits.db").write_text("".join(f'record(ao, "{P}ao{i}") {{ field(VAL, "{i}") }}\n' for i in range(5)))
    env, *ports = pva_env(ioc_module.session_env())
    env.update(RELOC_PVAS_MAX_CLIENTS="2", RELOC_PVAS_MAX_CHANNELS="3")
    with running(ioc_module.Ioc(st_cmd(f'dbLoadRecords("{work / "limits.db"}")'), work, env=env), *ports) as s:
        yield s


def refused(connect):
    try:
        connect().close()
    except (ConnectionError, ProtocolError, PvaError, TimeoutError, OSError):
        return True
    return False


def test_a_client_past_the_limit_is_refused_and_the_others_keep_working(server):
    first, second = server.client(), server.client()
    assert first.get(P + "ao1")["value"] == 1.0
    assert refused(lambda: server.client(timeout=5.0)), "a third client was accepted with a limit of 2"
    assert second.get(P + "ao2")["value"] == 2.0 and first.get(P + "ao3")["value"] == 3.0
    second.close()
    ioc_module.wait_for(lambda: not refused(lambda: server.client(timeout=5.0)), 10, "the freed place")
    first.close()


def test_channels_past_the_limit_are_refused_and_the_connection_stays(server):
    with server.client() as client:
        for i in range(3):
            assert client.get(P + f"ao{i}")["value"] == float(i)
        with pytest.raises(PvaError):
            client.channel(P + "ao3")
        assert client.get(P + "ao0")["value"] == 0.0
        assert client.destroy_channel(P + "ao0")
        assert client.get(P + "ao4")["value"] == 4.0        # a destroyed channel frees its place
