"""Scan macros as a beamline scientist pastes them into Sardana, SPEC or a Bluesky session: the text for a set of
ROIs (rectangle, particle, polygon; step or point count; absolute or relative) matches hand-checked expected
text for each engine, the engines come from the config file, and an ROI the motors cannot reach is refused with a
message that names the motor and the limit."""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("RELOC_BIN", ROOT / "bin"))
ENGINES = ROOT / "protocols" / "scan_engines.json"
LIMITS = ["--limits", "-9500", "9500", "-9000", "9000"]        # soft limits of the X and Y motors in um


def macro(engine, *args, engines=ENGINES):
    return subprocess.run([str(BIN / "reloc-macro"), str(engines), engine, *args, *LIMITS],
                          capture_output=True, text=True, timeout=30)


def text(engine, *args):
    r = macro(engine, *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


# Expected texts worked out by hand: positions in mm (the engines' unit), 4 decimals; Sardana and SPEC count
# intervals, Bluesky counts points and takes the slow axis first.
CASES = [
    # 10 um x 10 um at (100..110, -50..-40) um with 1 um steps: 10 intervals per axis.
    ("sardana", ["--rect", "100", "-50", "110", "-40", "--step", "1", "1", "--dwell", "0.5", "--name", "r1"],
     "mesh samx 0.1000 0.1100 10 samy -0.0500 -0.0400 10 0.5\n"),
    ("spec", ["--rect", "100", "-50", "110", "-40", "--step", "1", "1", "--dwell", "0.5", "--name", "r1"],
     "mesh samx 0.1000 0.1100 10 samy -0.0500 -0.0400 10 0.5\n"),
    ("bluesky", ["--rect", "100", "-50", "110", "-40", "--step", "1", "1", "--dwell", "0.5", "--name", "r1"],
     "RE(bps.mv(det.count_time, 0.5))\n"
     "RE(bp.grid_scan([det], samy, -0.0500, -0.0400, 11, samx, 0.1000, 0.1100, 11, snake_axes=False, md={'roi': 'r1'}))\n"),
    # A step that does not divide the width: 0..10 um in 3 um steps needs 4 intervals, 12 um centred on the ROI.
    ("sardana", ["--rect", "0", "0", "10", "2", "--step", "3", "2", "--dwell", "1"],
     "mesh samx -0.0010 0.0110 4 samy 0.0000 0.0020 1 1\n"),
    # Point counts span the ROI exactly: 6 x 3 points are 5 x 2 intervals.
    ("spec", ["--rect", "-20", "30", "-10", "40", "--points", "6", "3", "--dwell", "0.2"],
     "mesh samx -0.0200 -0.0100 5 samy 0.0300 0.0400 2 0.2\n"),
    ("bluesky", ["--rect", "-20", "30", "-10", "40", "--points", "6", "3", "--dwell", "0.2", "--name", "r2"],
     "RE(bps.mv(det.count_time, 0.2))\n"
     "RE(bp.grid_scan([det], samy, 0.0300, 0.0400, 3, samx, -0.0200, -0.0100, 6, snake_axes=False, md={'roi': 'r2'}))\n"),
    # A particle of 3 um diameter at (1250, -730) um with a 1 um margin: a 5 um square; relative forms move to
    # the centre first (mv), then scan +-2.5 um.
    ("sardana", ["--particle", "1250", "-730", "3", "--margin", "1", "--step", "0.5", "0.5", "--dwell", "0.1",
                 "--relative"],
     "mv samx 1.2500 samy -0.7300\ndmesh samx -0.0025 0.0025 10 samy -0.0025 0.0025 10 0.1\n"),
    ("spec", ["--particle", "1250", "-730", "3", "--margin", "1", "--step", "0.5", "0.5", "--dwell", "0.1",
              "--relative"],
     "umv samx 1.2500 samy -0.7300\ndmesh samx -0.0025 0.0025 10 samy -0.0025 0.0025 10 0.1\n"),
    ("bluesky", ["--particle", "1250", "-730", "3", "--margin", "1", "--step", "0.5", "0.5", "--dwell", "0.1",
                 "--relative", "--name", "p7"],
     "RE(bps.mv(det.count_time, 0.1))\nRE(bps.mv(samx, 1.2500, samy, -0.7300))\n"
     "RE(bp.rel_grid_scan([det], samy, -0.0025, 0.0025, 11, samx, -0.0025, 0.0025, 11, snake_axes=False, "
     "md={'roi': 'p7'}))\n"),
    ("sardana", ["--particle", "1250", "-730", "3", "--margin", "1", "--step", "0.5", "0.5", "--dwell", "0.1"],
     "mesh samx 1.2475 1.2525 10 samy -0.7325 -0.7275 10 0.1\n"),
    # A right triangle (0,0) (10,0) (0,10) on a 2 um grid: each row scans the grid columns covering the inside.
    ("spec", ["--polygon", "0,0", "10,0", "0,10", "--step", "2", "2", "--dwell", "1"],
     "umv samy 0.0000\nascan samx 0.0000 0.0100 5 1\n"
     "umv samy 0.0020\nascan samx 0.0000 0.0080 4 1\n"
     "umv samy 0.0040\nascan samx 0.0000 0.0060 3 1\n"
     "umv samy 0.0060\nascan samx 0.0000 0.0040 2 1\n"
     "umv samy 0.0080\nascan samx 0.0000 0.0020 1 1\n"
     "umv samy 0.0100\nascan samx 0.0000 0.0020 1 1\n"),
    # A U shape: rows through the arms scan two separate runs and skip the gap between them (x 4..6 um).
    ("sardana", ["--polygon", "0,0", "10,0", "10,10", "7,10", "7,4", "3,4", "3,10", "0,10",
                 "--step", "2", "5", "--dwell", "1"],
     "mv samy 0.0000\nascan samx 0.0000 0.0100 5 1\n"
     "mv samy 0.0050\nascan samx 0.0000 0.0040 2 1\nmv samy 0.0050\nascan samx 0.0060 0.0100 2 1\n"
     "mv samy 0.0100\nascan samx 0.0000 0.0040 2 1\nmv samy 0.0100\nascan samx 0.0060 0.0100 2 1\n"),
    ("bluesky", ["--polygon", "0,0", "10,0", "0,10", "--step", "5", "5", "--dwell", "1", "--name", "tri"],
     "RE(bps.mv(det.count_time, 1))\n"
     "RE(bps.mv(samy, 0.0000))\nRE(bp.scan([det], samx, 0.0000, 0.0100, 3, md={'roi': 'tri'}))\n"
     "RE(bps.mv(samy, 0.0050))\nRE(bp.scan([det], samx, 0.0000, 0.0050, 2, md={'roi': 'tri'}))\n"
     "RE(bps.mv(samy, 0.0100))\nRE(bp.scan([det], samx, 0.0000, 0.0050, 2, md={'roi': 'tri'}))\n"),
]


@pytest.mark.parametrize("engine,args,expected", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_macro_text_matches_the_hand_checked_text(engine, args, expected):
    assert text(engine, *args) == expected


@pytest.mark.parametrize("args,motor,limit", [
    (["--rect", "9400", "0", "9600", "10"], "samx", "high soft limit 9500.0000 um"),
    (["--rect", "-9600", "0", "-9400", "10"], "samx", "low soft limit -9500.0000 um"),
    (["--rect", "0", "8900", "10", "9001"], "samy", "high soft limit 9000.0000 um"),
    (["--polygon", "0,-9100", "10,0", "0,10"], "samy", "low soft limit -9000.0000 um"),
    # The ROI is inside, but 3 um steps widen 0..10 to -1..11 and the scan would pass the limit at 0.
    (["--rect", "9490", "0", "9500", "2"], "samx", "high soft limit"),
])
def test_out_of_limit_rois_are_refused_with_a_message(args, motor, limit):
    step = ["--step", "3", "2"] if args[1] == "9490" else ["--step", "1", "1"]
    for engine in ("sardana", "spec", "bluesky"):
        r = macro(engine, *args, *step, "--dwell", "1", "--name", "far")
        assert r.returncode == 1 and r.stdout == ""
        assert "ROI far refused" in r.stderr and motor in r.stderr and limit in r.stderr, r.stderr


def test_a_scan_ending_exactly_on_the_limit_is_accepted():
    assert text("sardana", "--rect", "9490", "0", "9500", "10", "--step", "1", "1", "--dwell", "1") == \
        "mesh samx 9.4900 9.5000 10 samy 0.0000 0.0100 10 1\n"


def test_an_engine_defined_only_in_the_config_file(tmp_path):
    engines = json.loads(ENGINES.read_text())
    engines["engines"]["myscan"] = {
        "motor_x": "sx", "motor_y": "sy", "precision": 1,
        "absolute": ["open_shutter", "raster $(MX)=$(X0):$(X1):$(SX) $(MY)=$(Y0):$(Y1):$(SY) dwell=$(T)"],
        "relative": "rraster $(RX0) $(RX1) $(RY0) $(RY1)", "polygon_row": "line $(Y) $(XA) $(XB) $(NXR)",
        "post": "close_shutter"}
    path = tmp_path / "engines.json"
    path.write_text(json.dumps(engines))
    r = macro("myscan", "--rect", "0", "0", "4", "2", "--step", "0.5", "0.5", "--dwell", "2", engines=path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "open_shutter\nraster sx=0.0:4.0:0.5 sy=0.0:2.0:0.5 dwell=2\nclose_shutter\n"


@pytest.mark.parametrize("config,message", [
    ('{"engines": {"x": {"motor_y": "b", "absolute": "a", "relative": "r", "polygon_row": "p"}}}',
     "names no motor for X"),
    ('{"engines": {"x": {"motor_x": 3, "motor_y": "b", "absolute": "a", "relative": "r", "polygon_row": "p"}}}',
     '"motor_x"'),
    ('{"engines": {"x": {"motor_x": "a", "motor_y": "b", "relative": "r", "polygon_row": "p"}}}', '"absolute"'),
    ('{"engines": {"x": {"motor_x": "a", "motor_y": "b", "absolute": "$(NOPE)", "relative": "r", '
     '"polygon_row": "p"}}}', "undefined macro $(NOPE)"),
    ('{"engines": {}}', "non-empty \"engines\""),
    ("not json", "non-empty \"engines\""),
])
def test_a_broken_engines_file_is_reported(tmp_path, config, message):
    path = tmp_path / "engines.json"
    path.write_text(config)
    r = macro("x", "--rect", "0", "0", "4", "2", "--step", "1", "1", "--dwell", "1", engines=path)
    assert r.returncode in (1, 2) and message in r.stderr, r.stderr


@pytest.mark.parametrize("args,message", [
    (["--rect", "0", "0", "10", "10", "--step", "1", "1", "--dwell", "0"], "dwell"),
    (["--rect", "0", "0", "0", "10", "--points", "3", "3", "--dwell", "1"], "no extent in X"),
    (["--polygon", "0,0", "1,1", "--step", "1", "1", "--dwell", "1"], "3..64 vertices"),
    (["--polygon", "0,0", "1,1", "2,2", "--step", "1", "1", "--dwell", "1"], "no area"),
    (["--rect", "0", "0", "10", "10", "--dwell", "1"], "step"),
])
def test_invalid_rois_are_refused(args, message):
    r = macro("sardana", *args)
    assert r.returncode == 1 and message in r.stderr, r.stderr
