"""reg1:LoadReference tells the truth (finding 8 of issue 15), through libca (tests/ca_status.py reads the real
put-callback status): a reference smaller than registration needs (1x1, 3x20000) or an HDF5 file that cannot be
read fails the put with a message, and the reference in use stays, so frames keep registering; a good file
completes the put. After failed HDF5 loads the IOC exits cleanly, with no HDF5 handle left open."""
import h5py
import numpy as np
import tifffile

import ioc as ioc_module
from ca_status import ECA_NORMAL, ECA_PUTFAIL, put_status
from ioc import wait_for
from test_live_analysis_ioc import st_cmd

P = "TREF:"


def test_degenerate_and_unreadable_references_fail_the_put(tmp_path, ioc_env):
    import epics

    def pv(name):
        channel = epics.PV(P + name, auto_monitor=False)
        assert channel.wait_for_connection(10), name
        return channel

    server = ioc_module.Ioc(st_cmd(tmp_path).replace("TLIVE:", P), tmp_path / "ioc", env=ioc_env)
    server.start()
    try:
        assert pv("cam1:ImageMode").put(2, wait=True) and pv("cam1:Acquire").put(1)
        assert put_status(P + "reg1:TakeReference", 1) == ECA_NORMAL
        processed = pv("reg1:Processed_RBV")
        wait_for(lambda: pv("reg1:MatchOk_RBV").get() == 1, 20, "frames registering against the reference")

        tifffile.imwrite(tmp_path / "dot.tif", np.ones((1, 1), np.uint16))
        tifffile.imwrite(tmp_path / "sliver.tif", np.ones((20000, 3), np.uint16))
        tifffile.imwrite(tmp_path / "good.tif", np.random.default_rng(1).integers(0, 4000, (64, 64), dtype=np.uint16))
        with h5py.File(tmp_path / "ref.h5", "w") as f:
            f["image"] = np.random.default_rng(2).random((300, 300))
            f["text"] = b"not an image"
            f["tiny"] = np.ones((2, 2))
            f.create_group("group")
        data = (tmp_path / "ref.h5").read_bytes()
        (tmp_path / "truncated.h5").write_bytes(data[: len(data) // 2])
        for path, why in ((tmp_path / "dot.tif", "1x1"), (tmp_path / "sliver.tif", "3x20000"),
                          (f"{tmp_path / 'truncated.h5'}:/image", "cannot load"),
                          (f"{tmp_path / 'ref.h5'}:/nothing", "cannot load"),
                          (f"{tmp_path / 'ref.h5'}:/text", "cannot load"),
                          (f"{tmp_path / 'ref.h5'}:/group", "cannot load"),
                          (f"{tmp_path / 'ref.h5'}:/tiny", "2x2")):
            assert pv("reg1:ReferencePath").put(str(path), wait=True)
            assert put_status(P + "reg1:LoadReference", 1) == ECA_PUTFAIL, path
            message = pv("reg1:Message").get(as_string=True)
            assert why in message, (path, message)
            # the reference in use stays: the next frames still register
            after = processed.get()
            wait_for(lambda: processed.get() > after + 2, 20, "more frames processed")
            assert pv("reg1:MatchOk_RBV").get() == 1 and pv("reg1:Status").get() == 0, message
        assert pv("reg1:ReferencePath").put(str(tmp_path / "good.tif"), wait=True)
        assert put_status(P + "reg1:LoadReference", 1) == ECA_NORMAL
        assert pv("reg1:ReferencePath").put(f"{tmp_path / 'ref.h5'}:/image", wait=True)
        assert put_status(P + "reg1:LoadReference", 1) == ECA_NORMAL
    finally:
        code = server.stop()
        server.check_sanitizers()
    log = server.log()
    assert code == 0, log[-3000:]
    assert "infinite loop" not in log and "HDF5-DIAG" not in log, log[-3000:]
