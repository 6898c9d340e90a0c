"""The "aravis" camera source without a network camera: Aravis' in-process simulated camera (Fake_1) streams into
the ring, and camera ids that only a broadcast discovery could find are refused at st.cmd (cameras are opened by
their IPv4 address)."""
from ioc import pv_under, wait_for
from test_aravis import W, st_cmd

P = "TARVF:"
pv = pv_under(P)


def test_fake_1_in_process_camera_streams(start_ioc):
    ioc = start_ioc(st_cmd("Fake_1", P))
    wait_for(lambda: pv("cam1:SourceConnected_RBV").get() == 1, what=lambda: f"Fake_1 connected\n{ioc.log()}")
    pv("cam1:AcquirePeriod").put(0.02, wait=True)
    pv("cam1:Acquire").put(1)
    wait_for(lambda: (pv("cam1:ArrayCounter_RBV").get() or 0) >= 5, what="frames from Fake_1")
    assert pv("cam1:SourceKind_RBV").get() == "aravis"
    assert pv("image1:ArraySize0_RBV").get() <= W


def test_camera_ids_that_need_discovery_are_refused(refuses_to_start):
    log = refuses_to_start(st_cmd("Basler-12345678", P))
    assert "IPv4 address" in log and "broadcast" in log
