"""Coarse plus piezo: with stagemapPiezo the stage position is the coarse motor plus the piezo on top of it; the
live layer follows the sum, a move within the piezo's range moves only the piezo (fast, fine), a longer one moves
the coarse motors and leaves the piezo where it is, and a move the piezo cannot make and the coarse motors may
not make is refused."""

import epics
import numpy as np
import pytest

import ioc as ioc_module
from reloc_scene import map_sync, stage_st_cmd

TOP = ioc_module.TOP
P = "PZ:"
JITTER = 0.25          # um: encoder jitter of the simulated motors (a step or two)


@pytest.fixture(scope="module")
def ioc(tmp_path_factory):
    env = ioc_module.session_env()
    st = stage_st_cmd(P, f"""stagemapConfigure "MAP" "{P}samx" "{P}samy" "{TOP / 'protocols' / 'scan_engines.json'}"
stagemapPiezo "MAP" "{P}pssx" "{P}pssy"
dbLoadRecords "stagemap.db" "P={P},PORT=MAP\"""")
    with ioc_module.Ioc(st, tmp_path_factory.mktemp("piezo"), env=env) as running:
        assert epics.caget(P + "pssx.HLM", timeout=5) == 95.0
        yield running


def put(name, value):
    assert epics.caput(P + name, value, wait=True, timeout=30) == 1, name
    map_sync(P)


def get(name):
    value = epics.caget(P + name, timeout=5)
    assert value is not None, name
    return value


def positions():
    """coarse x, y and piezo x, y in um"""
    return np.array([get("samx.RBV") * 1000, get("samy.RBV") * 1000, get("pssx.RBV"), get("pssy.RBV")])


def test_live_layer_follows_coarse_plus_piezo_and_moves_pick_the_stage(ioc):
    put("samx", 0.2)
    put("samy", -0.1)
    put("pssx", 30.0)
    put("pssy", -20.0)
    for k, v in dict(PixelSizeX=0.5, PixelSizeY=0.5, BeamX=100, BeamY=100, Rotation=0).items():
        put("Live:" + k, v)
    pos = positions()
    put("Conv:Layer", 1)
    put("Conv:PixelX", 140)
    put("Conv:PixelY", 60)
    expected = pos[:2] + pos[2:] + [20.0, -20.0]
    assert get("Conv:ToStageX_RBV") == pytest.approx(expected[0], abs=JITTER)
    assert get("Conv:ToStageY_RBV") == pytest.approx(expected[1], abs=JITTER)

    put("Move:Enable", 1)
    put("Move:Layer", 1)
    put("Move:PixelX", 140)             # +20 um, -20 um: within the piezo's range (+-95 um)
    put("Move:PixelY", 60)
    put("Move:Go", 1)
    after = positions()
    np.testing.assert_allclose(after[:2], pos[:2], atol=JITTER)            # coarse stayed
    np.testing.assert_allclose(after[2:], pos[2:] + [20.0, -20.0], atol=0.01)

    pos = after
    put("Move:PixelX", 100 + 2 * 150)   # +150 um in x: the piezo (at 50 um) cannot, the coarse stage moves
    put("Move:PixelY", 100)
    put("Move:Go", 1)
    after = positions()
    np.testing.assert_allclose(after[2:], pos[2:], atol=0.01)              # piezo stayed
    np.testing.assert_allclose(after[:2], pos[:2] + [150.0, 0.0], atol=0.5)
    total = after[:2] + after[2:]
    np.testing.assert_allclose(total, pos[:2] + pos[2:] + [150.0, 0.0], atol=0.5)

    put("Move:PixelX", 100 + 2 * 20000)  # 20 mm: beyond the coarse soft limit
    epics.caput(P + "Move:Go", 1, wait=True, timeout=30)
    map_sync(P)
    message = epics.caget(P + "Map:Message_RBV", as_string=True)
    assert "PZ:samx" in message and "outside its soft limits" in message, message
    np.testing.assert_allclose(positions(), after, atol=JITTER)
