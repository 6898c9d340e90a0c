"""Output links with completion to another IOC ("Async Soft Channel" through db_ca.c's ca_put_callback): a record
of IOC A writing a motor of IOC B stays active until B's motor has arrived, so a put-callback on A's record
completes only then; B refusing the put (soft limit, DISP, access rights) or B going away fails A's put-callback
with A's record in LINK/INVALID and a log line naming the reason; B back, the link completes moves again. B runs
the simulated sample stage (sample_stage.substitutions on the motor simulator). Two IOCs on loopback."""
import pytest

import ioc as ioc_module
from ca_status import ECA_NORMAL, ECA_PUTFAIL, put_status, start_put
from ioc import READ_ONLY_ACF, alarm, pv, start_motor_ioc, wait_for

A, B = "PCA:", "PCB:"
C, D = "PCC:", "PCD:"           # the second test's IOCs: names no earlier test left in the client's cache


def local_db(a, b):
    return f"""
record(ao, "{a}samx") {{ field(DTYP, "Async Soft Channel") field(OUT, "{b}samx") field(PREC, "4") }}
record(ao, "{a}plain") {{ field(OUT, "{b}samy") }}
record(ao, "{a}here") {{ field(DTYP, "Async Soft Channel") field(OUT, "{a}kept PP") }}
record(ao, "{a}kept") {{ }}
"""


def start_local(start_ioc, workdir):
    (workdir / "local.db").write_text(local_db(A, B))
    local = start_ioc(ioc_module.st_cmd(f'dbLoadRecords("{workdir / "local.db"}")'))
    wait_for(lambda: put_status(A + "plain", 0.0, timeout=5) == ECA_NORMAL, what="A's link to B connected")
    return local


def test_a_put_through_the_link_completes_when_the_remote_motor_arrives(start_ioc, second_ioc_env, tmp_path):
    remote = start_motor_ioc(start_ioc, second_ioc_env, tmp_path / "b", B)
    local = start_local(start_ioc, tmp_path)
    # completion: the put-callback on A's record reports only once B's motor is done, at its target
    put = start_put(A + "samx", 2.0)
    wait_for(lambda: pv(B + "samx.DMOV").get(use_monitor=False) == 0, what="B's motor moving")
    assert pv(A + "samx.PACT").get(use_monitor=False) == 1, "A's record must stay active during the remote move"
    assert put.wait(30) == ECA_NORMAL
    assert pv(B + "samx.DMOV").get(use_monitor=False) == 1
    assert abs(pv(B + "samx.RBV").get(use_monitor=False) - 2.0) < 0.001
    assert alarm(A + "samx") == (0, 0)
    # a link within this IOC completes at once
    assert put_status(A + "here", 4.5) == ECA_NORMAL and pv(A + "kept").get(use_monitor=False) == 4.5

    # B's soft limit (HLM 9.5) refuses the target: A's put fails, B's motor stays
    assert put_status(A + "samx", 50.0) == ECA_PUTFAIL
    assert alarm(A + "samx") == (14, 3)                             # LINK/INVALID
    local.wait_for_log(rf"{A}samx.OUT -> {B}samx: put failed")
    assert abs(pv(B + "samx.RBV").get(use_monitor=False) - 2.0) < 0.001

    # B's DISP refuses the put
    assert pv(B + "samx.DISP").put(1, wait=True) == 1
    assert put_status(A + "samx", 1.0) == ECA_PUTFAIL
    assert pv(B + "samx.DISP").put(0, wait=True) == 1
    assert put_status(A + "samx", 1.0) == ECA_NORMAL and alarm(A + "samx") == (0, 0)

    # B gone in the middle of a move: A's put fails at the disconnect, not at some timeout
    put = start_put(A + "samx", -6.0)
    wait_for(lambda: pv(B + "samx.DMOV").get(use_monitor=False) == 0, what="B's motor moving")
    remote.stop()
    assert put.wait(20) == ECA_PUTFAIL
    assert alarm(A + "samx") == (14, 3)
    local.wait_for_log(rf"{A}samx.OUT -> {B}samx: put failed: (Virtual circuit disconnect|disconnected before it completed)")
    assert put_status(A + "samx", 0.5, timeout=5) == ECA_PUTFAIL      # refused at once while B is away
    local.wait_for_log(rf"{A}samx.OUT -> {B}samx: put refused: not connected")

    # B back: the link reconnects by itself and completes moves again
    start_motor_ioc(start_ioc, second_ioc_env, tmp_path / "b2", B)
    wait_for(lambda: put_status(A + "samx", 0.5, timeout=10) == ECA_NORMAL, timeout=60,
             what="a completed put through the link after B restarted")
    assert abs(pv(B + "samx.RBV").get(use_monitor=False) - 0.5) < 0.001
    assert alarm(A + "samx") == (0, 0)


def test_the_remote_access_rights_refuse_the_put(start_ioc, second_ioc_env, tmp_path):
    start_motor_ioc(start_ioc, second_ioc_env, tmp_path / "b", D, acf=READ_ONLY_ACF)
    (tmp_path / "local.db").write_text(local_db(C, D))
    local = start_ioc(ioc_module.st_cmd(f'dbLoadRecords("{tmp_path / "local.db"}")'))
    wait_for(lambda: pv(D + "samx").get() is not None, what="B serving")
    # connected but not writable: the put fails with a log line saying why, and nothing moves
    wait_for(lambda: put_status(C + "samx", 1.0, timeout=5) == ECA_PUTFAIL and
             "put refused: no write access" in local.log(), what="A's put refused by B's access rights")
    assert alarm(C + "samx") == (14, 3)
    assert pv(D + "samx.RBV").get(use_monitor=False) == pytest.approx(0.0, abs=0.001)


def test_async_soft_channel_is_for_output_records(refuses_to_start, tmp_path):
    (tmp_path / "bad.db").write_text('record(ai, "PCE:in") { field(DTYP, "Async Soft Channel") field(INP, "X:y") }\n')
    log = refuses_to_start(ioc_module.st_cmd(f'dbLoadRecords("{tmp_path / "bad.db"}")'))
    assert "PCE:in: Async Soft Channel is for output records (OUT)" in log
