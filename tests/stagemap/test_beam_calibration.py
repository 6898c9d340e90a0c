"""Beam calibration is a setting (finding 5 of issue 15), on the default IOC (st.cmd unchanged): the beam pixel
starts at the image centre (where the simulator and the web view put the beam), Beam:Calibrate writes the clicked
pixel to the Live:BeamX/Y setpoints, autosave keeps them and a restart comes back with them; the live pixel size
setpoints follow the zoom like their readbacks."""
import epics
import pytest

import ioc as ioc_module
from ioc import wait_for

TOP = ioc_module.TOP
BOOT = TOP / "iocBoot" / "iocreloc"
P = "BEAM:"


def get(name):
    value = epics.caget(P + name, timeout=5, use_monitor=False)
    assert value is not None, name
    return value


def put(name, value):
    assert epics.caput(P + name, value, wait=True, timeout=30) == 1, name


def test_beam_calibration_is_a_persisted_setting(start_ioc, tmp_path, ioc_env):
    save = tmp_path / "reloc.sav"
    env = dict(ioc_env, RELOC_PREFIX=P, RELOC_TOP=str(TOP), RELOC_WEB_ADDRESS="127.0.0.1:0",
               RELOC_AUTOSAVE_FILE=str(save))
    first = start_ioc(f"cd {BOOT}\n< st.cmd\n", env=env)
    width, height = get("cam1:MaxSizeX_RBV"), get("cam1:MaxSizeY_RBV")
    for axis, size in (("X", width), ("Y", height)):
        assert get(f"Live:Beam{axis}") == pytest.approx((size - 1) / 2)
        assert get(f"Live:Beam{axis}_RBV") == pytest.approx((size - 1) / 2)
    # The live pixel size: setpoint, readback and the camera's pixel size agree, also after a zoom change.
    put("zoom", 20)
    wait_for(lambda: get("Live:PixelSizeX_RBV") == pytest.approx(get("cam_pixel_size")), 10, "pixel size readback")
    for axis in "XY":
        assert get(f"Live:PixelSize{axis}") == pytest.approx(get(f"Live:PixelSize{axis}_RBV"))
        assert get(f"Live:PixelSize{axis}") == pytest.approx(get("cam_pixel_size"))

    put("Beam:ClickX", 200.25)
    put("Beam:ClickY", 150.5)
    put("Beam:Calibrate", 1)
    assert get("Live:BeamX") == 200.25 and get("Live:BeamY") == 150.5
    wait_for(lambda: get("Live:BeamX_RBV") == 200.25 and get("Live:BeamY_RBV") == 150.5, 10, "beam readbacks")
    wait_for(lambda: save.exists() and f'{P}Live:BeamX.VAL "200.25"' in save.read_text(), 15, "saved beam")
    # A refused click (not a number) leaves the calibration alone.
    assert epics.caput(P + "Beam:ClickX", float("nan"), wait=True, timeout=10) == 1
    put("Beam:Calibrate", 1)
    assert get("Live:BeamX") == 200.25 and get("Live:BeamX_RBV") == 200.25
    assert first.stop() == 0

    start_ioc(f"cd {BOOT}\n< st.cmd\n", env=env)
    epics.ca.clear_cache()   # new channels to the new IOC (same names, same port)
    wait_for(lambda: get("Live:BeamX_RBV") == 200.25 and get("Live:BeamY_RBV") == 150.5, 15, "restored beam")
    assert get("Live:BeamX") == 200.25 and get("Live:BeamY") == 150.5
