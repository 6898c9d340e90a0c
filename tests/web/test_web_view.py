"""The web live view in a real browser: Debian's headless Chromium, driven by playwright-core from npm, loads the
page from the default IOC (st.cmd unchanged: motor and camera simulators, live detection), sees the camera image
update in several browsers at once, clicks "go to" on a detected particle and the sample stage moves so that a
real particle of the simulated sample (ground truth) is on the beam (checked through pyepics); clicking a
particle in the image centres it too. Moves are refused
while the stage map's Move:Enable is off; clients that stop reading do not hold up the others."""
import json
import math
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

import ioc as ioc_module
from ioc import pv_under, wait_for

TOP = ioc_module.TOP
HERE = TOP / "tests" / "web"
SAMPLE = TOP / "sim" / "sample_default.json"
P = "WEB:"


def sample_particles():
    """Stage positions (um) that put each particle of the simulated sample on the beam: R * sample + mount."""
    sample = json.loads(SAMPLE.read_text())
    mount = sample["mount"]
    angle = math.radians(mount["rotation_deg"])
    return [(math.cos(angle) * f["x"] - math.sin(angle) * f["y"] + mount["x"],
             math.sin(angle) * f["x"] + math.cos(angle) * f["y"] + mount["y"])
            for f in sample["features"] if f["type"] == "particle"]


pv = pv_under(P)


def stage_position():
    """Where the stage is (um): coarse (mm) plus piezo (um), as the camera sees it."""
    return (pv("samx.RBV").get() * 1000 + pv("pssx.RBV").get(), pv("samy.RBV").get() * 1000 + pv("pssy.RBV").get())


def frame_size(base):
    """Bytes of the newest JPEG, 0 while there is none yet."""
    try:
        with urllib.request.urlopen(base + "frame.jpg", timeout=5) as reply:
            return len(reply.read())
    except urllib.error.HTTPError as err:
        assert err.code == 503, err
        return 0


def post(base, path, form=""):
    """POST form to the page's path: (status, the JSON verdict)."""
    request = urllib.request.Request(base + path, data=form.encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def post_move(base, x, y):
    return post(base, "move", f"x={x}&y={y}")


def start_web_ioc(start_ioc, lines, db_file=None):
    """An IOC with the web view on a 64x64 simulated camera, the given st.cmd lines and records: (its log, the
    page's URL)."""
    script = (f'cameraConfigure("CAM1", "sim", "{SAMPLE}", 64, 64)\n'
              f'webServerConfigure("127.0.0.1:0", "CAM1", "{TOP / "web"}", "{P}web:")\n' + "".join(
                  line + "\n" for line in lines) +
              (f'dbLoadRecords("{db_file}")\n' if db_file else "") +
              f'dbLoadRecords("{TOP / "db" / "web.db"}", "P={P}")\niocInit\n')
    server = start_ioc(script)
    return server, re.search(r"web live view at (http://\S+)", server.wait_for_log(r"web live view at http")).group(1)


@pytest.fixture(scope="module")
def node_modules():
    """playwright-core from the npm registry, exactly as package-lock.json pins it."""
    if not shutil.which("npm") or not os.path.exists("/usr/bin/chromium"):
        pytest.fail("npm and Debian's chromium are required (configure/debian-packages.txt)")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True, timeout=300)


@pytest.fixture
def web_ioc(start_ioc, tmp_path, ioc_env):
    """The default IOC as st.cmd starts it, with a free web port and its own autosave file."""
    env = ioc_module.default_env(ioc_env, tmp_path, P, RELOC_TOP=str(TOP), RELOC_WEB_ADDRESS="127.0.0.1:0")
    ioc = start_ioc(ioc_module.default_st_cmd(), env=env)
    # every motor polled once: a move sent before the controller answered fails (with its alarm), which the
    # tests here are not about
    ioc.wait_for_log(r"MC1 axis 6: communication restored", timeout=30)
    port = pv("web:Port")
    wait_for(lambda: (port.get() or 0) > 0, 10, "web:Port")
    return f"http://127.0.0.1:{port.get()}/"


def test_browsers_watch_and_go_to_a_particle(node_modules, web_ioc, tmp_path):
    base = web_ioc
    assert pv("zoom").put(20, wait=True, timeout=30)          # 0.69 um per pixel: particles a few pixels wide
    assert pv("cam1:ImageMode").put(2, wait=True) and pv("cam1:Acquire").put(1)
    start_x, start_y = stage_position()

    # Moves are refused while the enable PV is off, and the stage stays where it is.
    status, reply = post_move(base, start_x + 20, start_y)
    assert status == 403 and "disabled" in reply["message"]
    time.sleep(0.5)
    assert abs(stage_position()[0] - start_x) < 0.5
    assert pv("Move:Enable").put(1, wait=True)

    # Clients that stop reading must not hold up the others: one event stream never read, and one client that
    # asks for 400 frames at once (far more than its output buffer may hold) and then reads nothing.
    port = int(base.rsplit(":", 1)[1].strip("/"))
    stalled = []
    watcher = urllib.request.urlopen(base + "events", timeout=5)   # JPEGs are made while someone watches
    wait_for(lambda: frame_size(base) > 0, 10, "a first JPEG")
    for request in (b"GET /events HTTP/1.1\r\n\r\n", b"GET /frame.jpg HTTP/1.1\r\n\r\n" * 400):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        client.sendall(request)
        stalled.append(client)

    chosen = 5   # the sixth particle nearest to the beam
    shots = tmp_path / "shots"
    shots.mkdir()
    truth = tmp_path / "sample_particles.json"
    truth.write_text(json.dumps(sample_particles()))
    run = subprocess.run(["node", str(HERE / "drive_web_view.js"), base, str(shots), "3", str(chosen), str(truth)],
                         cwd=HERE, capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, run.stdout + run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    # The greedy client got a bounded amount, then was disconnected (it took nothing for 10 s).
    greedy = stalled[1]
    greedy.settimeout(5)
    received = 0
    try:
        while chunk := greedy.recv(1 << 16):
            received += len(chunk)
    except ConnectionResetError:   # closed with its unread requests pending: the kernel resets
        pass
    jpeg_bytes = frame_size(base)
    watcher.close()
    assert 0 < received < 8 << 20 and received < 400 * jpeg_bytes * 0.9, (received, jpeg_bytes)
    for client in stalled:
        client.close()

    assert len(seen["frames"]) == 3 and all(0 < a < b for a, b in seen["frames"]), seen   # images updated
    assert seen["particles"] > 10, seen   # the live detection finds the sample's particles
    # The stage went where the page said ("at X, Y um", the motors' verdict), far from the start, and that put a particle of
    # the sample on the beam: detection pixels -> stage um is right to within two pixels.
    # (the stage as the page showed it once the motors had stopped: the IOC's readbacks)
    target = [float(v) for v in seen["message"].removeprefix("at ").removesuffix(" um").split(",")]
    x_um, y_um = (float(v) for v in seen["stage_text"].split(","))
    assert abs(x_um - target[0]) < 1.0 and abs(y_um - target[1]) < 1.0, (x_um, y_um, target)
    assert math.hypot(x_um - start_x, y_um - start_y) > 5, (x_um, y_um)
    pixel = pv("cam_pixel_size").get()
    nearest = min(math.hypot(x_um - sx, y_um - sy) for sx, sy in sample_particles())
    assert nearest < 2 * pixel, (x_um, y_um, nearest, pixel)
    # Clicking a particle in the image centres it on the beam: the stage PVs say so.
    x_um, y_um = stage_position()
    clicked = seen["clicked_particle"]
    assert math.hypot(x_um - clicked[0], y_um - clicked[1]) < pixel, (x_um, y_um, seen)
    assert (shots / "web-view.png").stat().st_size > 10000
    if os.environ.get("RELOC_UPDATE_DOCS"):   # refreshes the README's picture
        shutil.copy(shots / "web-view.png", TOP / "docs" / "web-view.png")

    # Every browser has gone: the IOC counts no watcher any more.
    wait_for(lambda: pv("web:Clients").get() == 0, 15, "web:Clients back to 0")


def test_bad_requests_get_clear_errors(web_ioc):
    base = web_ioc
    status, reply = post_move(base, "nan", 1)
    assert status == 400 and "x and y" in reply["message"]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(base + "no-such-page", timeout=5)
    assert err.value.code == 404
    with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1].strip("/")))) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    with urllib.request.urlopen(base, timeout=5) as page:   # the server still serves everyone else
        assert b"reloc live view" in page.read()


@pytest.mark.parametrize("lines, message", [
    ('webServerStage("X:samx", "X:samy")', "webServerConfigure first"),
    ('webServerConfigure("127.0.0.1:0", "NOCAM", "web", "X:web:")', "no camera port NOCAM"),
    ('webServerConfigure("localhost", "CAM1", "web", "X:web:")', "is not host:port"),
    ('webServerConfigure("127.0.0.1:0", "CAM1", "web", "X:web:")\n'
     'webServerConfigure("127.0.0.1:0", "CAM1", "web", "X:web:")', "configured already"),
])
def test_st_cmd_errors_stop_startup(refuses_to_start, lines, message):
    log = refuses_to_start(f'cameraConfigure("CAM1", "sim", "{SAMPLE}", 64, 64)\n{lines}\niocInit\n')
    assert message in log, log


def test_missing_channels_are_logged_and_shown_invalid(start_ioc):
    """A channel no record here has is looked for on other IOCs (logged); while none serves it, the page shows it
    in INVALID with no value."""
    server, url = start_web_ioc(start_ioc, [f'webServerShow("Nothing", "{P}no:such:record")'])
    server.wait_for_log(r"WEB:no:such:record is no record of this IOC: read through Channel Access")
    state = state_events(url, lambda s: s["show"])
    assert state["show"] == [{"label": "Nothing", "channel": f"{P}no:such:record", "value": "", "severity": 3}]
    status, reply = post_move(url, 1, 2)   # no stage, no enable configured: refused
    assert status == 503 and "no stage" in reply["message"]


def test_the_web_view_moves_the_motors_of_another_ioc(start_ioc, second_ioc_env, tmp_path):
    """webServerStage naming motors no record here has: moved on the other IOC (drivers/motion through Channel
    Access), their soft limits refusing a move with the reason."""
    b = "WEBB:"
    start_ioc(ioc_module.st_cmd(ioc_module.sample_stage(b)), env=second_ioc_env)
    (tmp_path / "enable.db").write_text(f'record(bo, "{P}enable") {{ field(VAL, "1") field(PINI, "YES") }}\n')
    _, url = start_web_ioc(start_ioc, [f'webServerStage("{b}samx", "{b}samy")', f'webServerMoveEnable("{P}enable")'],
                           tmp_path / "enable.db")
    wait_for(lambda: post_move(url, 400, -250)[0] == 200, what="a move once the channels to the motor IOC connected")
    remote = pv_under(b)
    wait_for(lambda: remote("samx.RBV").get(use_monitor=False) == pytest.approx(0.4, abs=0.001) and
             remote("samy.RBV").get(use_monitor=False) == pytest.approx(-0.25, abs=0.001) and
             remote("samx.DMOV").get(use_monitor=False) == 1, what="the other IOC's motors at the target")
    status, reply = post_move(url, 12000, 0)                  # beyond the other IOC's 9.5 mm soft limit
    assert status != 200 and "outside its soft limits" in reply["message"] and f"{b}samx" in reply["message"]


def state_events(base, until, timeout=20):
    """Reads the page's server-sent "state" events until until(state) holds for one; returns that state."""
    deadline = time.monotonic() + timeout
    buffered = b""
    with urllib.request.urlopen(base + "events", timeout=5) as events:
        while time.monotonic() < deadline:
            buffered += events.read1(65536)
            *done, buffered = buffered.split(b"\n\n")
            for block in done:
                lines = block.split(b"\n")
                if b"event: state" in lines:
                    state = json.loads(b"".join(x[6:] for x in lines if x.startswith(b"data: ")))
                    if until(state):
                        return state
    raise AssertionError(f"no state event as expected within {timeout} s")


def test_the_web_view_shows_and_stops_through_pvs_of_another_ioc(start_ioc, second_ioc_env, tmp_path):
    """webServerBeam/Particles/Show/StopAll/MoveEnable naming PVs no record here has: read from (and the stop
    written to) the other IOC; the page follows their updates; while that IOC is away its values show INVALID."""
    b = "WEBC:"
    (tmp_path / "b.db").write_text(
        f'record(ao, "{b}beamx") {{ field(VAL, "31.5") field(PINI, "YES") }}\n'
        f'record(ao, "{b}beamy") {{ field(VAL, "20.25") field(PINI, "YES") }}\n'
        f'record(waveform, "{b}px") {{ field(FTVL, "DOUBLE") field(NELM, "8") field(EGU, "um") }}\n'
        f'record(waveform, "{b}py") {{ field(FTVL, "DOUBLE") field(NELM, "8") field(EGU, "um") }}\n'
        f'record(stringin, "{b}status") {{ field(VAL, "registered") field(PINI, "YES") }}\n'
        f'record(ai, "{b}count") {{ field(VAL, "7") field(PINI, "YES") }}\n'
        f'record(bo, "{b}enable") {{ field(VAL, "1") field(PINI, "YES") }}\n'
        f'record(bo, "{b}allstop") {{ field(VAL, "0") }}\n')
    other = start_ioc(ioc_module.st_cmd(f'dbLoadRecords("{tmp_path / "b.db"}")'), env=second_ioc_env)
    remote = pv_under(b)
    assert remote("px").put([10.0, -5.5], wait=True) and remote("py").put([2.0, 4.25], wait=True)
    _, url = start_web_ioc(start_ioc, [f'webServerBeam("{b}beamx", "{b}beamy")',
                                       f'webServerParticles("{b}px", "{b}py")',
                                       f'webServerShow("Registration", "{b}status")',
                                       f'webServerShow("Particles", "{b}count")', f'webServerStopAll("{b}allstop")',
                                       f'webServerMoveEnable("{b}enable")'])
    state = state_events(url, lambda s: s.get("beam") and s.get("particles") and s["show"][0]["value"])
    assert state["beam"] == [31.5, 20.25] and state["move_enable"] is True
    assert state["particles"] == [[10.0, 2.0], [-5.5, 4.25]]
    assert [(s["label"], s["value"], s["severity"]) for s in state["show"]] == [("Registration", "registered", 0),
                                                                                 ("Particles", "7", 0)]
    # the other IOC's updates reach the page
    assert remote("status").put("lost", wait=True)
    state_events(url, lambda s: s["show"][0]["value"] == "lost")
    # the stop button writes the other IOC's all-stop, with completion: done when that IOC has taken it ...
    assert post(url, "stop") == (200, {"ok": True, "message": "stopped"})
    assert remote("allstop").get(use_monitor=False) == 1
    # ... and a stop that IOC refuses (its all-stop disabled) is reported as failed, with the reason
    assert remote("allstop").put(0, wait=True) and remote("allstop.DISP").put(1, wait=True)
    status, reply = post(url, "stop")
    assert status == 409 and f"{b}allstop refused" in reply["message"], reply
    assert remote("allstop").get(use_monitor=False) == 0
    # the other IOC gone: its values show INVALID, moves are refused (no enable)
    other.stop()
    state = state_events(url, lambda s: s["show"] and s["show"][0]["severity"] == 3)
    assert state["move_enable"] is False and "beam" not in state
