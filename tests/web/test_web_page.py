"""The web live view as an operator sees it in an 800 px wide Chromium window, on the default IOC (st.cmd
unchanged), driven by drive_web_page.js step by step: the page reflows (no horizontal scrolling, the lists under
the image); the crosshair is at the beam pixel that Beam:Calibrate set (not the image centre); the scale bar
matches the camera's pixel size; the match confidence is shown to 3 significant digits (registration paused while
the page is read, so both are of one frame); clicking while moves are
disabled says so in red; a move the motors refuse is shown in red with the reason; a click beside the crosshair
brings that point to the calibrated beam; STOP stops a moving motor
without Move:Enable; the image is marked stale once frames stop arriving."""
import json
import math
import subprocess

import pytest

from test_web_view import HERE, P, node_modules, pv, stage_position, web_ioc  # noqa: F401 (fixtures)
from ioc import wait_for


def significant_digits(text):
    digits = text.replace("-", "").replace(".", "").lstrip("0")
    return len(digits.rstrip("0")) if "." not in text else len(digits)


def test_what_the_operator_sees(node_modules, web_ioc, tmp_path):  # noqa: F811
    assert pv("zoom").put(20, wait=True, timeout=30)
    assert pv("cam1:ImageMode").put(2, wait=True) and pv("cam1:Acquire").put(1)
    # Beam calibration: the operator clicked the beam at pixel (200, 150) of the 640 x 512 frame.
    assert pv("Live:BeamX").get() == pytest.approx(319.5) and pv("Live:BeamY").get() == pytest.approx(255.5)
    assert pv("Beam:ClickX").put(200, wait=True) and pv("Beam:ClickY").put(150, wait=True)
    assert pv("Beam:Calibrate").put(1, wait=True)
    wait_for(lambda: pv("Live:BeamX_RBV").get() == 200 and pv("Live:BeamY_RBV").get() == 150, 10, "beam readbacks")
    assert pv("Live:BeamX").get() == 200 and pv("Live:BeamY").get() == 150   # the setpoints, which autosave keeps
    assert pv("reg1:TakeReference").put(1, wait=True, timeout=30)
    wait_for(lambda: (pv("reg1:Confidence_RBV").get() or 0) > 0, 20, "a match confidence")
    # The confidence changes with every frame's noise: registration pauses (Enable 0) while the page is read, so
    # the value shown and the PV are of the same frame. Paused once a new frame went by without being analysed.
    assert pv("reg1:Enable").put(0, wait=True)

    def paused():
        processed, uid = pv("reg1:Processed_RBV").get(), pv("cam1:UniqueId_RBV").get()
        wait_for(lambda: pv("cam1:UniqueId_RBV").get() > uid, 10, "a new frame")
        return pv("reg1:Processed_RBV").get() == processed
    wait_for(paused, 20, "registration to pause")

    shots = tmp_path / "shots"
    shots.mkdir()
    driver = subprocess.Popen(["node", str(HERE / "drive_web_page.js"), web_ioc, str(shots)], cwd=HERE,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def step(name):
            line = driver.stdout.readline()
            assert line, driver.stderr.read()
            seen = json.loads(line)
            assert seen["step"] == name, seen
            return seen

        def go():
            driver.stdin.write("go\n")
            driver.stdin.flush()

        layout = step("layout")
        assert layout["scroll_width"] <= 800, layout                # no horizontal scrolling at 800 px
        assert layout["aside_top"] >= layout["view_bottom"] - 1, layout   # the lists go under the image
        overlay = step("overlay")
        frame, width = overlay["frame"], overlay["client_width"]
        scale = width / frame["width"]
        binning = frame["binning"]
        bx, by = (float(v) for v in overlay["beam"].split(","))
        assert bx == pytest.approx(((200 + 0.5) / binning - 0.5 + 0.5) * scale, abs=0.2), overlay
        assert by == pytest.approx(((150 + 0.5) / binning - 0.5 + 0.5) * scale, abs=0.2), overlay
        length_um, length_px = (float(v) for v in overlay["scale_bar"].split())
        assert length_px == pytest.approx(length_um / frame["pixel_size"] * scale, rel=1e-3), overlay
        assert frame["pixel_size"] == pytest.approx(pv("cam_pixel_size").get() * binning, rel=1e-3)
        mantissa = length_um / 10 ** math.floor(math.log10(length_um))
        assert 0.1 * width <= length_px <= 0.3 * width and round(mantissa, 6) in (1, 2, 5), overlay
        shown = step("shows")["shows"]["Match confidence"]
        confidence = pv("reg1:Confidence_RBV").get()
        assert pv("reg1:Enable").put(1, wait=True)
        assert significant_digits(shown) <= 3 and float(shown) == pytest.approx(confidence, rel=0.01), shown

        disabled = step("disabled")
        assert disabled["class"] == "bad" and "disabled" in disabled["message"], disabled
        assert pv("Move:Enable").put(1, wait=True)
        go()
        refused = step("refused")
        assert refused["class"] == "bad" and "soft limits" in refused["message"], refused
        assert refused["color"] == "rgb(255, 119, 119)", refused      # red
        # A click 40 screen px right of the crosshair brings that point to the calibrated beam.
        before = stage_position()
        go()
        click = step("click")
        assert click["class"] == "ok", click
        after = stage_position()
        assert after[0] - before[0] == pytest.approx(40 / scale * frame["pixel_size"], abs=frame["pixel_size"]), click
        assert after[1] == pytest.approx(before[1], abs=frame["pixel_size"]), click
        assert pv("Move:Enable").put(0, wait=True)                      # STOP needs no enable
        assert pv("samy").put(6.0)
        wait_for(lambda: pv("samy.DMOV").get() == 0, 10, "samy moving")
        go()
        assert step("stop")["message"] == "stopped"
        wait_for(lambda: pv("samy.DMOV").get() == 1, 10, "samy stopped")
        assert pv("samy.RBV").get() < 5.0
        assert pv("cam1:Acquire").put(0, wait=True)
        go()
        stale = step("stale")
        assert stale["visible"] and "no new frame" in stale["text"], stale
        assert driver.wait(30) == 0, driver.stderr.read()
    finally:
        pv("reg1:Enable").put(1, wait=True)
        if driver.poll() is None:
            driver.kill()
            driver.wait()
