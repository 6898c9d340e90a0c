"""The stage map of IOC A moving the motors of IOC B (a motor IOC: the simulated sample stage) through Channel
Access (drivers/motion binds a motor that is no record of A to channels of B's motor record fields): Move:Go
completes when B's motors have arrived; B's soft limits, DISP and access rights refuse moves with a message in
Map:Message_RBV and a failed put-callback; B gone -> A's links to it in LINK/INVALID, moves and relocalization
refused with the reason; B back -> moves work again. Two IOCs on loopback."""
import epics
import pytest

import ioc as ioc_module
from ca_status import ECA_NORMAL, ECA_PUTFAIL, put_status
from ioc import READ_ONLY_ACF, alarm, pv, start_motor_ioc, wait_for
from reloc_scene import map_sync

ENGINES = ioc_module.TOP / "protocols" / "scan_engines.json"


def start_map_ioc(start_ioc, workdir, a, b):
    """IOC A: the stage map on B's samx/samy with a small simulated camera for relocalization, and a record
    following B's samx readback (the operator's view)."""
    (workdir / "follow.db").write_text(f'record(ai, "{a}samx_rbv") {{ field(INP, "{b}samx.RBV CP MS") }}\n')
    return start_ioc(ioc_module.st_cmd(
        f'cameraConfigure("CAM", "sim", "{ioc_module.TOP / "sim" / "sample_default.json"}", 64, 64)',
        f'stagemapConfigure "MAP" "{b}samx" "{b}samy" "{ENGINES}"',
        'stagemapCamera "MAP" "CAM"',
        f'dbLoadRecords "stagemap.db" "P={a},PORT=MAP"',
        f'dbLoadRecords("{workdir / "follow.db"}")'))


def text(name):
    return epics.caget(name, as_string=True, timeout=5)


def go_to(a, x_um, y_um):
    """Move:Go to (x, y) um on the reference layer (the identity before any geometry is set): the put status."""
    for name, value in (("Move:Enable", 1), ("Move:Layer", 0), ("Move:PixelX", x_um), ("Move:PixelY", y_um)):
        assert epics.caput(a + name, value, wait=True, timeout=10) == 1
    map_sync(a)
    status = put_status(a + "Move:Go", 1)
    map_sync(a)
    return status


def test_the_stage_map_moves_the_motors_of_another_ioc(start_ioc, second_ioc_env, tmp_path):
    a, b = "RMA:", "RMB:"
    remote = start_motor_ioc(start_ioc, second_ioc_env, tmp_path / "b", b)
    local = start_map_ioc(start_ioc, tmp_path, a, b)
    local.wait_for_log(rf"{b}samx is no record of this IOC: moved through Channel Access")
    wait_for(lambda: go_to(a, 0.0, 0.0) == ECA_NORMAL, what="a move once A's channels to B connected")

    # completion: Move:Go's put-callback returns when B's motors are done, at the target
    assert go_to(a, 1500.0, -800.0) == ECA_NORMAL
    assert pv(b + "samx.DMOV").get(use_monitor=False) == 1 and pv(b + "samy.DMOV").get(use_monitor=False) == 1
    assert pv(b + "samx.RBV").get(use_monitor=False) == pytest.approx(1.5, abs=0.001)
    assert pv(b + "samy.RBV").get(use_monitor=False) == pytest.approx(-0.8, abs=0.001)

    # B's soft limit (HLM 9.5 mm) refuses a target: the move fails naming B's motor, nothing moves
    assert go_to(a, 12000.0, 0.0) == ECA_PUTFAIL
    message = text(a + "Map:Message_RBV")
    assert "outside its soft limits" in message and f"{b}samx" in message
    assert pv(b + "samx.RBV").get(use_monitor=False) == pytest.approx(1.5, abs=0.001)
    # B's DISP refuses it too
    assert pv(b + "samx.DISP").put(1, wait=True) == 1
    wait_for(lambda: go_to(a, 100.0, 0.0) == ECA_PUTFAIL and "DISP" in text(a + "Map:Message_RBV"),
             what="a move refused by B's DISP")
    assert pv(b + "samx.DISP").put(0, wait=True) == 1

    # B gone: A's link to it in LINK/INVALID, moves and relocalization refused with the reason
    remote.stop()
    wait_for(lambda: alarm(a + "samx_rbv") == (14, 3), what="LINK/INVALID on A's link to B")
    assert go_to(a, 0.0, 0.0) == ECA_PUTFAIL
    assert f"motor {b}samx unavailable ({b}samx.RBV: not connected)" in text(a + "Map:Message_RBV")
    assert put_status(a + "Reloc:Start", 1) == ECA_PUTFAIL
    map_sync(a)
    assert f"motor {b}samx unavailable" in text(a + "Map:Message_RBV")

    # B back: the channels reconnect by themselves and moves complete again
    start_motor_ioc(start_ioc, second_ioc_env, tmp_path / "b2", b)
    wait_for(lambda: go_to(a, 300.0, 200.0) == ECA_NORMAL, timeout=60, what="a move after B restarted")
    assert pv(b + "samx.RBV").get(use_monitor=False) == pytest.approx(0.3, abs=0.001)
    wait_for(lambda: alarm(a + "samx_rbv") == (0, 0), what="A's link to B without alarm again")


def test_the_access_rights_of_the_other_ioc_refuse_the_move(start_ioc, second_ioc_env, tmp_path):
    a, b = "RMC:", "RMD:"
    start_motor_ioc(start_ioc, second_ioc_env, tmp_path / "b", b, acf=READ_ONLY_ACF)
    start_map_ioc(start_ioc, tmp_path, a, b)
    wait_for(lambda: go_to(a, 100.0, 0.0) == ECA_PUTFAIL and "no write access" in text(a + "Map:Message_RBV"),
             what="a move refused by B's access rights")
    assert f"{b}samx" in text(a + "Map:Message_RBV")
    assert pv(b + "samx.RBV").get(use_monitor=False) == pytest.approx(0.0, abs=0.001)
