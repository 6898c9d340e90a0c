"""Scan macros move the motors the stage map maps image pixels to (finding 4 of issue 15): on the default IOC
(st.cmd unchanged: the stage map's X and Y motors are $(P)samx and $(P)samy), every engine of
protocols/scan_engines.json names samx and samy, never the focus axis samz, and the soft-limit check uses the
limits of those records: a Y extent beyond samy's high limit is refused naming samy, one within is accepted and
scanned on samy even where samz's limit (4.5 mm) would refuse it."""
import json
import re

import epics
import pytest

import ioc as ioc_module
from ioc import wait_for

ENGINES = sorted(json.loads((ioc_module.TOP / "protocols" / "scan_engines.json").read_text())["engines"])
P = "MAX:"


def put(name, value):
    assert epics.caput(P + name, value, wait=True, timeout=10) == 1, name


def text(name):
    value = epics.caget(P + name, as_string=True, timeout=5)
    assert value is not None, name
    return value


@pytest.fixture(scope="module")
def default_ioc(tmp_path_factory):
    with ioc_module.default_ioc(P, tmp_path_factory.mktemp("macro_axes")) as running:
        assert epics.caget(P + "samy.HLM", timeout=10) == 9.5 and epics.caget(P + "samz.HLM", timeout=5) == 4.5
        yield running


def append(name, x0, y0, x1, y1):
    for k, v in dict(Shape=0, X0=x0, Y0=y0, X1=x1, Y1=y1, StepX=100, StepY=100, Dwell=0.5, Relative=0).items():
        put("Macro:" + k, v)
    epics.caput(P + "Macro:Name", name, wait=True, timeout=10)
    return epics.caput(P + "Macro:Append", 1, wait=True, timeout=10)


@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_moves_the_stage_maps_motors_within_their_limits(default_ioc, engine):
    put("Macro:Clear", 1)
    epics.caput(P + "Macro:Engine", engine, wait=True, timeout=10)
    wait_for(lambda: text("Macro:Engine_RBV") == engine, 10, "Macro:Engine_RBV")
    # 5000..6000 um in Y: within samy's limit (9.5 mm), beyond samz's (4.5 mm).
    append("within", 0, 5000, 1000, 6000)
    assert epics.caget(P + "Macro:Status_RBV", timeout=5) == 0, text("Macro:Message_RBV")
    macro = text("Macro:Current_RBV")
    motors = set(re.findall(r"\bsam[a-z]\b", macro))
    assert motors == {"samx", "samy"}, macro
    assert re.search(r"samy\W+5\.0000\W+6\.0000", macro) or re.search(r"samy, 5\.0000, 6\.0000", macro), macro
    # The check follows samy's own limit, read at the moment of the append.
    put("samy.HLM", 5.5)
    try:
        assert append("beyond", 0, 5000, 1000, 6000) == 1   # the put completes; the append is refused
        assert epics.caget(P + "Macro:Status_RBV", timeout=5) == 1
        message = text("Macro:Message_RBV")
        assert "refused" in message and "samy" in message and "5500.0000 um" in message, message
        assert epics.caget(P + "Macro:Count_RBV", timeout=5) == 1
    finally:
        put("samy.HLM", 9.5)
