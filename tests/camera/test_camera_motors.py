"""The default IOC as an operator starts it: moving the sample stage through its motor records moves the
simulated camera image by distance / pixel size (within 0.2 px), at two zoom settings, where the pixel size
follows the zoom motor."""

import numpy as np
import pytest

import ioc as ioc_module
from ioc import pv_under, wait_for
from camera_images import measured_shift

P = "TCM:"


pv = pv_under(P)


def frame():
    before = pv("image1:UniqueId_RBV").get() or 0
    assert pv("cam1:Acquire").put(1, wait=True, timeout=30)
    wait_for(lambda: (pv("image1:UniqueId_RBV").get() or 0) > before, 15, "the new frame")
    w, h = pv("image1:ArraySize0_RBV").get(), pv("image1:ArraySize1_RBV").get()
    return np.asarray(pv("image1:ArrayData").get()[: w * h], dtype=np.float64).reshape(h, w)


@pytest.fixture
def default_ioc(start_ioc, tmp_path, ioc_env):
    env = ioc_module.default_env(ioc_env, tmp_path, P, RELOC_XRF_OUT_DIR=str(tmp_path), RELOC_CAMERA_WIDTH="320",
                                 RELOC_CAMERA_HEIGHT="256")
    ioc = start_ioc(ioc_module.default_st_cmd(), env=env, timeout=60)
    # the motors are usable once they have reached their controller
    wait_for(lambda: all(pv(f"{m}.SEVR").get() == 0 for m in ("samx", "samy", "pssy", "zoom")), 30,
             "the motors to reach their controller")
    return ioc


def test_stage_moves_through_motors_move_the_image_at_two_zooms(default_ioc):
    pv("cam1:ImageMode").put(0, wait=True)                  # Single: one frame per Acquire
    for preset in ("Medium", "High"):
        assert pv("zoom_preset").put(preset, wait=True, timeout=60)
        pixel = pv("cam_pixel_size").get()
        assert pv("samx").put(0.0100, wait=True, timeout=60) and pv("samy").put(-0.0200, wait=True, timeout=60)
        first = frame()
        assert pv("cam1:PixelSize_RBV").get() == pytest.approx(pixel, rel=1e-3)   # zoom encoder noise
        pixel = pv("cam1:PixelSize_RBV").get()                                   # what the image shows
        x0, y0 = pv("samx.RBV").get(), pv("samy.RBV").get()
        assert pv("samx").put(0.0142, wait=True, timeout=60)      # +4.2 um
        assert pv("pssy").put(-2.5, wait=True, timeout=60)        # piezo: -2.5 um
        second = frame()
        dx_um = (pv("samx.RBV").get() - x0) * 1000.0
        dy_um = (pv("samy.RBV").get() - y0) * 1000.0 + pv("pssy.RBV").get()
        assert dx_um == pytest.approx(4.2, abs=0.5) and dy_um == pytest.approx(-2.5, abs=0.5)
        expected = np.array([-dy_um, -dx_um]) / pixel             # (rows, cols), against the stage
        np.testing.assert_allclose(measured_shift(first, second, expected), expected, atol=0.2,
                                   err_msg=f"zoom {preset}, pixel {pixel:.4f} um")
        assert pv("pssy").put(0.0, wait=True, timeout=60)
