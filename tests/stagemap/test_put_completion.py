"""Truthful completion (finding 8 of issue 15) on the default IOC (st.cmd unchanged): a put-callback that starts
work reports failure (ECA_PUTFAIL, read through libca by tests/ca_status.py) when the work failed -- Ref:Load of
bad JSON, a corrupt TIFF or a missing file; Macro:Append of an ROI beyond a soft limit; Macro:Export to a
folder that does not exist; Beam:Calibrate after a refused click; Reloc:Start without a readable reference;
Move:Go while moves are disabled -- and succeeds when it worked. A list of positions with a NaN in it is refused
at the put, and the list before it is kept."""
import json

import epics
import pytest

import ioc as ioc_module
from ca_status import ECA_NORMAL, ECA_PUTFAIL, put_status
from ioc import wait_for

P = "TRU:"


def put(name, value):
    assert epics.caput(P + name, value, wait=True, timeout=30) == 1, name


def text(name):
    value = epics.caget(P + name, as_string=True, timeout=5, use_monitor=False)
    assert value is not None, name
    return value


@pytest.fixture(scope="module")
def default_ioc(tmp_path_factory):
    with ioc_module.default_ioc(P, tmp_path_factory.mktemp("completion")) as running:
        assert epics.caget(P + "samx.HLM", timeout=10) == 9.5
        yield running


@pytest.mark.parametrize("name, content, message", [
    ("bad.json", b'{"pixel_size": ', "not a JSON object"),
    ("corrupt.tif", b"II*\x00" + b"\xff" * 64, "corrupt.tif"),
    ("missing.json", None, "cannot open"),
])
def test_ref_load_that_fails_fails_the_put(default_ioc, tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    put("Ref:LoadPath", str(path))
    assert put_status(P + "Ref:Load", 1) == ECA_PUTFAIL
    assert message in text("Map:Message_RBV")


def test_ref_load_that_works_completes(default_ioc, tmp_path):
    path = tmp_path / "sem.json"
    path.write_text(json.dumps({"pixel_size": 0.025, "ref_pixel": [10, 20], "ref_stage": [100, -50]}))
    put("Ref:LoadPath", str(path))
    assert put_status(P + "Ref:Load", 1) == ECA_NORMAL
    assert epics.caget(P + "Ref:PixelSizeX_RBV", timeout=5, use_monitor=False) == pytest.approx(0.025)


def test_a_list_with_nan_is_refused_and_the_list_before_is_kept(default_ioc):
    put("Move:Enable", 1)
    assert put_status(P + "Particles", [10.0, 20.0, 30.0, 40.0]) == ECA_NORMAL
    assert put_status(P + "Particles", [1.0, 2.0, float("nan"), 4.0, 5.0, 6.0]) == ECA_PUTFAIL
    assert "not a finite number" in text("Map:Message_RBV")
    put("Move:Particle", 2)                                    # the kept list holds 2 particles
    assert put_status(P + "Move:CentreParticle", 1) == ECA_PUTFAIL
    assert "the list holds 2" in text("Map:Message_RBV")
    assert put_status(P + "Fid:Pixel", [0.0, 0.0, float("inf"), 1.0]) == ECA_PUTFAIL
    assert put_status(P + "Macro:Polygon", [0.0, 0.0, 10.0, float("nan"), 0.0, 10.0]) == ECA_PUTFAIL
    put("Move:Enable", 0)


def test_macro_append_and_export_report_failure(default_ioc, tmp_path):
    put("Macro:Clear", 1)
    for k, v in dict(Shape=0, X0=0, Y0=0, X1=10, Y1=10, StepX=1, StepY=1, Dwell=0.1).items():
        put("Macro:" + k, v)
    put("Macro:X1", 20000)                                     # beyond samx's 9.5 mm
    assert put_status(P + "Macro:Append", 1) == ECA_PUTFAIL
    put("Macro:X1", 10)
    assert put_status(P + "Macro:Append", 1) == ECA_NORMAL
    put("Macro:ExportPath", str(tmp_path / "no" / "such" / "folder" / "macros.txt"))
    assert put_status(P + "Macro:Export", 1) == ECA_PUTFAIL
    put("Macro:ExportPath", str(tmp_path / "macros.txt"))
    assert put_status(P + "Macro:Export", 1) == ECA_NORMAL
    assert "mesh samx" in (tmp_path / "macros.txt").read_text()


def test_beam_calibrate_after_a_refused_click_fails(default_ioc):
    put("Beam:ClickY", 100)
    assert put_status(P + "Beam:ClickX", float("nan")) == ECA_PUTFAIL
    before = epics.caget(P + "Live:BeamX_RBV", timeout=5, use_monitor=False)
    assert put_status(P + "Beam:Calibrate", 1) == ECA_PUTFAIL
    assert epics.caget(P + "Live:BeamX", timeout=5, use_monitor=False) == before
    assert put_status(P + "Beam:ClickX", 120.0) == ECA_NORMAL
    assert put_status(P + "Beam:Calibrate", 1) == ECA_NORMAL
    wait_for(lambda: epics.caget(P + "Live:BeamX_RBV", timeout=5, use_monitor=False) == 120.0, 10, "beam readback")


def test_moves_and_runs_that_cannot_happen_fail_the_put(default_ioc, tmp_path):
    put("Move:Enable", 0)
    assert put_status(P + "Move:Go", 1) == ECA_PUTFAIL
    assert "disabled" in text("Map:Message_RBV")
    put("Move:Enable", 1)
    put("Particles", [0.0, 0.0])
    put("Reloc:RefPath", str(tmp_path / "missing.tif"))
    assert put_status(P + "Reloc:Start", 1, timeout=60) == ECA_PUTFAIL
    wait_for(lambda: "missing.tif" in text("Map:Message_RBV") or "missing.tif" in text("Reloc:State_RBV"), 10,
             "the reason")
    put("Move:Enable", 0)


def test_clients_that_come_and_go_do_not_fill_the_log(default_ioc):
    """Quieter logs: a client closing its circuit is routine (every caget does it), logged at debug only."""
    import os
    import subprocess
    import sys
    for _ in range(5):
        subprocess.run([sys.executable, "-c", f"import epics; assert epics.caget('{P}samx.RBV', timeout=5) is not None"],
                       env=dict(os.environ), check=True, timeout=30)
    assert "disconnected: connection closed" not in default_ioc.log()
