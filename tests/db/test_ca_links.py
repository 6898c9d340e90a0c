"""Database links to records of another IOC (db_ca.c, through libca), as EPICS links behave: a CP input follows
the other IOC's record with its alarm under MS, an output link writes there, a link whose IOC is gone puts its
record in LINK/INVALID (a CP record at once) and recovers by itself when that IOC is back, and dbcar reports
them. Two IOCs on loopback, pyepics as the client."""
import pytest

import ioc as ioc_module
from ioc import alarm, pv, wait_for

A, B = "LKA:", "LKB:"

REMOTE_DB = f"""
record(ai, "{B}src") {{ field(HIGH, "50") field(HSV, "MINOR") field(PREC, "2") }}
record(ao, "{B}dst") {{ }}
record(stringout, "{B}text") {{ field(VAL, "ready") }}
"""
LOCAL_DB = f"""
record(ai, "{A}follow") {{ field(INP, "{B}src CP MS") }}
record(ai, "{A}nms") {{ field(INP, "{B}src CP") }}
record(ao, "{A}out") {{ field(OUT, "{B}dst") }}
record(stringin, "{A}text") {{ field(INP, "{B}text CP") }}
record(ai, "{A}local") {{ field(INP, "{A}follow") }}
record(ai, "{A}missing") {{ field(INP, "NOSUCH:ioc:pv CP") }}
"""


def start_remote(start_ioc, env, workdir):
    (workdir / "remote.db").write_text(REMOTE_DB)
    return start_ioc(ioc_module.st_cmd(f'dbLoadRecords("{workdir / "remote.db"}")'), env=env)


@pytest.fixture
def two_iocs(start_ioc, second_ioc_env, tmp_path):
    remote = start_remote(start_ioc, second_ioc_env, tmp_path)
    (tmp_path / "local.db").write_text(LOCAL_DB)
    local = start_ioc(ioc_module.st_cmd(f'dbLoadRecords("{tmp_path / "local.db"}")'))
    return local, remote


def test_inputs_follow_and_outputs_write_the_other_ioc(two_iocs):
    for value in (12.5, 61.0, 3.25):
        assert pv(B + "src").put(value, wait=True) == 1
        wait_for(lambda: pv(A + "follow").get() == value, what=f"{A}follow following {value}")
        wait_for(lambda: pv(A + "nms").get() == value, what=f"{A}nms following {value}")
        # MS carries the remote alarm (HIGH MINOR above 50) as LINK with its severity; without MS nothing
        wait_for(lambda: pv(A + "follow").severity == (1 if value > 50 else 0), what="MS severity")
        assert pv(A + "nms").severity == 0
    wait_for(lambda: pv(A + "text").get(as_string=True) == "ready", what="a string through a CP link")
    assert pv(B + "text").put("moved", wait=True) == 1
    wait_for(lambda: pv(A + "text").get(as_string=True) == "moved", what="the string update")
    assert pv(A + "out").put(7.5, wait=True) == 1
    wait_for(lambda: pv(B + "dst").get() == 7.5, what="the output link writing the other IOC")
    # a link to a PV nobody serves: LINK/INVALID, and the IOC started regardless (as EPICS does)
    assert pv(A + "missing.PROC").put(1, wait=True) == 1
    wait_for(lambda: pv(A + "missing").severity == 3, what="LINK/INVALID on a link nobody serves")
    assert pv(A + "missing").status == 14                # LINK


def test_a_lost_ioc_raises_link_alarms_and_the_links_recover(two_iocs, start_ioc, second_ioc_env, tmp_path):
    local, remote = two_iocs
    assert pv(B + "src").put(4.0, wait=True) == 1
    wait_for(lambda: pv(A + "follow").get() == 4.0 and pv(A + "follow").severity == 0, what="connected")
    assert remote.stop() == 0
    # CP: processed on the disconnect, keeping its value
    wait_for(lambda: alarm(A + "follow") == (14, 3), timeout=30, what="LINK/INVALID after the other IOC stopped")
    assert pv(A + "follow").get() == 4.0
    # an output link to the lost IOC fails its put
    pv(A + "out").put(9.0, wait=True)
    wait_for(lambda: alarm(A + "out") == (14, 3), what="the output link's LINK/INVALID")
    # the other IOC back: the links reconnect by themselves and follow again
    again = tmp_path / "again"
    again.mkdir()
    restarted = start_remote(start_ioc, second_ioc_env, again)
    assert pv(B + "src").put(8.0, wait=True) == 1
    wait_for(lambda: pv(A + "follow").get() == 8.0 and pv(A + "follow").severity == 0, timeout=60,
             what="the CP link following again after the other IOC restarted")
    assert pv(A + "out").put(2.0, wait=True) == 1
    wait_for(lambda: pv(B + "dst").get() == 2.0, timeout=30, what="the output link writing again")
    assert restarted.proc.poll() is None


def test_dbcar_reports_the_links(start_ioc, second_ioc_env, tmp_path):
    start_remote(start_ioc, second_ioc_env, tmp_path)
    (tmp_path / "local.db").write_text(LOCAL_DB)
    local = start_ioc(ioc_module.st_cmd(f'dbLoadRecords("{tmp_path / "local.db"}")') + "dbcar * 1\n")
    log = local.wait_for_log(r"Total 5 CA links; \d+ connected, \d+ not connected\.")
    assert "CA links in all records" in log
    assert f"{A}missing.INP --> NOSUCH:ioc:pv" in log
