"""Stage-map settings persist: the reference layer's geometry and the macro settings are saved by autosave and
written back to the driver at iocInit, so conversions after a restart give the same stage positions."""
import re
import time

import epics
import numpy as np

import ioc as ioc_module

TOP = ioc_module.TOP
ENGINES = TOP / "protocols" / "scan_engines.json"


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_layer_geometry_and_settings_survive_a_restart(start_ioc, tmp_path):
    """A second IOC (its own prefix, no motors) saves the reference geometry and macro settings, and a restart
    restores them into the driver: conversions give the same stage positions."""
    save = tmp_path / "stagemap.sav"
    st = f"""
epicsEnvSet EPICS_DB_INCLUDE_PATH "{TOP / 'db'}"
autosaveSetFile "{save}"
autosaveSetPeriod 0.2
stagemapConfigure "MAP2" "PS:samx" "PS:samy" "{ENGINES}"
dbLoadRecords "stagemap.db" "P=PS:,PORT=MAP2"
iocInit
"""
    def conv(u, v):
        epics.caput("PS:Conv:PixelX", u, wait=True)
        epics.caput("PS:Conv:PixelY", v, wait=True)
        epics.caput("PS:Map:Sync", 1, wait=True, timeout=10)          # readbacks reflect the writes once
        assert wait_for(lambda: epics.caget("PS:Map:Sync_RBV", timeout=5) == 1, 15), "readbacks did not settle"
        return epics.caget("PS:Conv:ToStageX_RBV", timeout=5), epics.caget("PS:Conv:ToStageY_RBV", timeout=5)

    first = start_ioc(st)
    assert epics.caget("PS:Macro:Engine_RBV", timeout=5) == "sardana"
    for k, v in dict(PixelSizeX=0.04, PixelSizeY=0.05, RefPixelX=100, RefStageX=-250.0, Rotation=12.0, FlipY=1).items():
        assert epics.caput("PS:Ref:" + k, v, wait=True, timeout=5) == 1
    assert epics.caput("PS:Macro:Engine", "bluesky", wait=True, timeout=5) == 1
    assert epics.caput("PS:Macro:StepX", 0.3, wait=True, timeout=5) == 1
    before = conv(300.0, 400.0)
    assert wait_for(lambda: save.exists() and 'PS:Ref:Rotation.VAL "12"' in save.read_text(), 15)
    assert first.stop() == 0
    # the restarted IOC reports through its shell (no CA client reconnection needed)
    second = start_ioc(st + 'mapPixelToStage "MAP2" "ref" 300 400\ndbgf "PS:Macro:Engine_RBV"\n'
                       'dbgf "PS:Macro:StepX_RBV"\n')
    log = second.wait_for_log(r"stage -?[0-9.]+ -?[0-9.]+ um")
    assert f"stage {before[0]:.4f} {before[1]:.4f} um" in log
    log = second.wait_for_log(r"PS:Macro:StepX_RBV: \S+")
    assert "PS:Macro:Engine_RBV: bluesky" in log and re.search(r"PS:Macro:StepX_RBV: 0\.3\n", log)
