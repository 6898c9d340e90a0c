"""Autosave saves what the driver accepted (#15 finding 6). A put the driver refuses (SizeX beyond the sensor,
a gain of -1e30, BinX 0, a negative ROI width, Upsample 0, an ImageMode with no state, NaN exposure) fails, the
record goes back to the value the driver uses, the save file never holds the refused value, and a restart
comes up on the accepted values without alarms. Generic in the "reloc param" device support: camera, detection
and registration records all behave the same."""
import math
import re
import pytest
from epics import dbr

import ioc as ioc_module
from ca_status import ECA_NORMAL, put_status
from ioc import wait_for

SAMPLE = ioc_module.TOP / "sim" / "sample_default.json"
P = "TRS:"
SIZE = 128

REFUSED = [
    ("cam1:SizeX", 100000),
    ("cam1:Gain", -1e30),
    ("cam1:Gain", math.nan),
    ("cam1:BinX", 0),
    ("cam1:ImageMode", 65535),
    ("cam1:AcquireTime", math.nan),
    ("cam1:AcquireTime", math.inf),
    ("det1:RoiWidth", -10),
    ("reg1:Upsample", 0),
]

pv = ioc_module.pv_under(P)


def start(workdir, save_file):
    st_cmd = ioc_module.st_cmd(
        [f'autosaveSetFile "{save_file}"', "autosaveSetPeriod 0.2"],
        ioc_module.soft_stage(workdir, P),
        ioc_module.camera(P, "CAM1", "sim", SAMPLE, SIZE, SIZE, stage=True),
        'detectionConfigure("DET1", "CAM1", 100)',
        'registrationConfigure("REG1", "CAM1")',
        f'dbLoadRecords("detection.db", "P={P},R=det1:,PORT=DET1,NMAX=100")',
        f'dbLoadRecords("registration.db", "P={P},R=reg1:,PORT=REG1")')
    return ioc_module.Ioc(st_cmd, workdir / "ioc", env=ioc_module.session_env()).start()


def get(name):
    value = pv(name).get(timeout=5.0)
    assert value is not None, f"no value for {P}{name}"
    return value


def saved(save_file):
    """channel -> value text of the save file."""
    return dict(re.findall(r'^(\S+) "(.*)"$', save_file.read_text(), re.M))


def stop(ioc):
    code = ioc.stop()
    ioc.check_sanitizers()
    assert code == 0, ioc.log()[-4000:]


def test_refused_puts_are_neither_kept_nor_saved_nor_restored(tmp_path):
    save_file = tmp_path / "refused.sav"
    ioc = start(tmp_path, save_file)
    try:
        accepted = {}
        for record, _ in REFUSED:
            wait_for(lambda: pv(record + "_RBV").get() is not None, what=f"{record}_RBV posted")
            accepted[record] = get(record)
            assert get(record + "_RBV") == pytest.approx(accepted[record])
        for record, bad in REFUSED:
            status = put_status(P + record, bad, timeout=10.0, ftype=dbr.DOUBLE)
            assert status not in (None, ECA_NORMAL), f"{record} = {bad} was accepted"
            assert get(record) == pytest.approx(accepted[record]), f"{record} kept the refused {bad}"
            assert get(record + "_RBV") == pytest.approx(accepted[record])
            assert get(record + ".STAT") != 0, f"{record}: the refusal is not shown"
        ioc.wait_for_log(r"cam1:AcquireTime: write to CAM1/AcquireTime refused: not a finite number")
        # a good put afterwards: once it is in the file, the file shows the state after all the refusals
        assert put_status(P + "det1:Diameter", 9) == ECA_NORMAL
        wait_for(lambda: save_file.exists() and saved(save_file).get(f"{P}det1:Diameter.VAL") == "9",
                 what="the save file after a good put")
        values = saved(save_file)
        for record, bad in REFUSED:
            text = values[f"{P}{record}.VAL"]
            state = pv(record).get(as_string=True)   # menus are saved by their state string
            assert text == state or float(text) == pytest.approx(accepted[record]), \
                f"{record} saved as {text} after refusing {bad}"
    finally:
        stop(ioc)

    again = start(tmp_path, save_file)
    try:
        for record, _ in REFUSED:
            wait_for(lambda: pv(record + "_RBV").get() is not None, what=f"{record}_RBV posted")
            assert get(record) == pytest.approx(accepted[record])
            assert get(record + "_RBV") == pytest.approx(accepted[record])
            assert (get(record + ".STAT"), get(record + ".SEVR")) == (0, 0), f"{record} restored in alarm"
        assert get("det1:Diameter_RBV") == 9
    finally:
        stop(again)
