"""Stage-map settings persist: the reference layer's geometry and the macro settings are saved by autosave and
written back to the driver at iocInit, so conversions after a restart give the same stage positions."""
import epics

import ioc as ioc_module
from ioc import wait_for
from reloc_scene import map_sync

ENGINES = ioc_module.TOP / "protocols" / "scan_engines.json"


def test_layer_geometry_and_settings_survive_a_restart(start_ioc, tmp_path):
    """A second IOC (its own prefix, no motors) saves the reference geometry and macro settings, and a restart
    restores them into the driver: conversions give the same stage positions, and the readbacks (posted after
    iocInit, so waited for) show the restored settings."""
    save = tmp_path / "stagemap.sav"
    st = ioc_module.st_cmd(f'autosaveSetFile "{save}"', "autosaveSetPeriod 0.2",
                           f'stagemapConfigure "MAP2" "PS:samx" "PS:samy" "{ENGINES}"',
                           'dbLoadRecords "stagemap.db" "P=PS:,PORT=MAP2"')

    def conv(u, v):
        epics.caput("PS:Conv:PixelX", u, wait=True)
        epics.caput("PS:Conv:PixelY", v, wait=True)
        map_sync("PS:")
        return epics.caget("PS:Conv:ToStageX_RBV", timeout=5), epics.caget("PS:Conv:ToStageY_RBV", timeout=5)

    def readbacks(engine, step_x):
        return epics.caget("PS:Macro:Engine_RBV", timeout=5) == engine and \
            epics.caget("PS:Macro:StepX_RBV", timeout=5) == step_x

    first = start_ioc(st)
    wait_for(lambda: epics.caget("PS:Macro:Engine_RBV", timeout=5) == "sardana", what="the default engine readback")
    for k, v in dict(PixelSizeX=0.04, PixelSizeY=0.05, RefPixelX=100, RefStageX=-250.0, Rotation=12.0, FlipY=1).items():
        assert epics.caput("PS:Ref:" + k, v, wait=True, timeout=5) == 1
    assert epics.caput("PS:Macro:Engine", "bluesky", wait=True, timeout=5) == 1
    assert epics.caput("PS:Macro:StepX", 0.3, wait=True, timeout=5) == 1
    before = conv(300.0, 400.0)
    wait_for(lambda: save.exists() and 'PS:Ref:Rotation.VAL "12"' in save.read_text(), 15, "the geometry saved")
    assert first.stop() == 0
    # the restarted IOC converts through its shell (the driver's restored geometry, before any client connects)
    second = start_ioc(st + 'mapPixelToStage "MAP2" "ref" 300 400\n')
    log = second.wait_for_log(r"stage -?[0-9.]+ -?[0-9.]+ um")
    assert f"stage {before[0]:.4f} {before[1]:.4f} um" in log
    epics.ca.clear_cache()          # fresh channels find the new IOC at once
    wait_for(lambda: readbacks("bluesky", 0.3), 30, "the restored macro settings in their readbacks")
