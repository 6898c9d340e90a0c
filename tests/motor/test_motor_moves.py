"""Motor records on the simulated controller, through pyepics: absolute and relative moves with put-wait, RBV
tracking, the DMOV/MOVN sequence, STOP, soft limits, SET/USE, DIR/OFF, homing, tweaks, two axes at once,
allstop/alldone/moving, epics.Motor, and the zoom presets with the pixel size that follows them.
Positions are checked against the simulator's own answer (its step count), not against the IOC."""
import threading
import time

import epics
import pytest

from ioc import pv_under, wait_for
from motor_stage import AXIS, MRES

P = "MT:"
pv = pv_under(P)


def get(name):
    value = pv(name).get(timeout=5.0, use_monitor=False)
    assert value is not None, f"no value for {P}{name}"
    return value


def put_wait(name, value, timeout=30.0):
    assert pv(name).put(value, wait=True, timeout=timeout) == 1, f"put {name}={value} did not complete"


class Recorder:
    """Collects monitor values of several PVs in arrival order: (name, value)."""

    def __init__(self, *names):
        self.events = []
        self.lock = threading.Lock()
        self.pvs = [epics.PV(P + n, callback=self._cb, form="native", auto_monitor=True) for n in names]
        for p in self.pvs:
            assert p.wait_for_connection(5.0)
        wait_for(lambda: len(self.events) >= len(names), 30,
                 lambda: f"the first monitor of every channel (arrived: {[n for n, _ in self.events]}; pyepics "
                         f"subscribed: {[p._monref is not None for p in self.pvs]})")   # tells client from server
        with self.lock:
            self.events.clear()

    def _cb(self, pvname=None, value=None, **kw):
        with self.lock:
            self.events.append((pvname[len(P):], value))

    def values(self, name):
        with self.lock:
            return [v for n, v in self.events if n == name]

    def close(self):
        for p in self.pvs:   # the channel is shared with get_pv's cache: stop listening, keep it open
            p.clear_callbacks()


def sim_position(sim, motor):
    """The simulator's position of a motor's axis in dial EGU."""
    return sim.steps(AXIS[motor]) * MRES[motor]


@pytest.fixture(autouse=True)
def clean_state(stage):
    """Every test starts from USE mode, DIR Pos, OFF 0, Go, at rest."""
    for m in ("samx", "samy"):
        for field, value in (("SPMG", 3), ("SET", 0), ("DIR", 0), ("OFF", 0.0), ("BDST", 0.0)):
            pv(f"{m}.{field}").put(value, wait=True)
        wait_for(lambda: get(f"{m}.DMOV") == 1, 10)
    yield


def test_absolute_and_relative_moves_with_put_wait(stage):
    sim, _ = stage
    put_wait("samx", 1.2345)
    assert get("samx.DMOV") == 1
    rdbd = get("samx.RDBD")
    assert abs(get("samx.RBV") - 1.2345) <= rdbd
    assert abs(sim_position(sim, "samx") - 1.2345) <= rdbd      # the controller really is there
    assert get("samx.RRBV") == pytest.approx(1.2345 / MRES["samx"], abs=rdbd / MRES["samx"])

    put_wait("samx.RLV", -0.5)
    assert get("samx") == pytest.approx(0.7345)
    assert get("samx.RLV") == 0
    assert abs(sim_position(sim, "samx") - 0.7345) <= rdbd

    put_wait("samx.DVAL", 0.25)                                   # dial and raw drive fields move too
    assert abs(sim_position(sim, "samx") - 0.25) <= rdbd
    put_wait("samx.RVAL", 5000)
    assert abs(sim_position(sim, "samx") - 0.5) <= rdbd
    assert get("samx") == pytest.approx(0.5)


def test_rbv_tracks_and_dmov_movn_sequence(stage):
    sim, _ = stage
    put_wait("samx", 0.0)
    rec = Recorder("samx.RBV", "samx.DMOV", "samx.MOVN")
    start = time.monotonic()
    put_wait("samx", 2.0)                    # 2 mm at 2 mm/s: about a second
    elapsed = time.monotonic() - start
    rec.close()
    assert elapsed > 0.8
    rbv = rec.values("samx.RBV")
    assert len(rbv) >= 8, f"RBV updated only {len(rbv)} times during a {elapsed:.1f} s move"
    inner = [v for v in rbv if 0.05 < v < 1.95]
    assert len(inner) >= 5                                            # seen in motion, not only at the ends
    assert all(b >= a - 0.001 for a, b in zip(rbv, rbv[1:]))          # monotonic (noise is sub-micron)
    order = [(n, v) for n, v in rec.events if n != "samx.RBV"]
    assert order[0] == ("samx.DMOV", 0)                               # DMOV drops first ...
    assert ("samx.MOVN", 1) in order
    assert order.index(("samx.MOVN", 1)) < order.index(("samx.DMOV", 1))
    assert order[-1] == ("samx.DMOV", 1)                              # ... and rises last, once
    assert rec.values("samx.DMOV") == [0, 1]
    assert rec.values("samx.MOVN")[-1] == 0

    # Commanding the current position still pulses DMOV 1 -> 0 -> 1.
    rec = Recorder("samx.DMOV")
    put_wait("samx", 2.0)
    wait_for(lambda: len(rec.values("samx.DMOV")) >= 2, 30, "DMOV 0 then 1")
    rec.close()
    assert rec.values("samx.DMOV") == [0, 1]


def test_stop_mid_move(stage):
    sim, _ = stage
    put_wait("samx", 0.0)
    pv("samx").put(8.0)
    wait_for(lambda: get("samx.MOVN") == 1, 5)
    time.sleep(0.3)
    pv("samx.STOP").put(1)
    wait_for(lambda: get("samx.DMOV") == 1, 10)
    assert get("samx.STOP") == 0
    where = sim_position(sim, "samx")
    assert 0.1 < where < 4.0
    assert not sim.status(AXIS["samx"]) & 0x01                       # the controller stopped
    assert get("samx") == pytest.approx(get("samx.RBV"), abs=get("samx.RDBD"))   # VAL := RBV
    time.sleep(0.5)
    assert sim_position(sim, "samx") == pytest.approx(where, abs=0.001)          # and it stays stopped


def test_soft_limit_violation_refuses_the_move(stage):
    sim, _ = stage
    put_wait("samx", 1.0)
    before = sim.steps(AXIS["samx"])
    rec = Recorder("samx.DMOV", "samx.LVIO")
    put_wait("samx", 50.0)                     # HLM is 9.5
    wait_for(lambda: len(rec.values("samx.DMOV")) >= 2, 30, "DMOV 0 then 1")
    rec.close()
    assert get("samx.LVIO") == 1
    assert get("samx") == pytest.approx(1.0)   # VAL restored
    assert rec.values("samx.DMOV") == [0, 1]
    time.sleep(0.3)
    assert abs(sim.steps(AXIS["samx"]) - before) <= 2
    put_wait("samx", 1.5)                      # a good move clears LVIO
    assert get("samx.LVIO") == 0
    # The limits are what CA clients see as control limits of VAL.
    ctrl = pv("samx").get_ctrlvars()
    assert ctrl["upper_ctrl_limit"] == pytest.approx(9.5)
    assert ctrl["lower_ctrl_limit"] == pytest.approx(-9.5)


def test_set_use_recalibration(stage):
    sim, _ = stage
    put_wait("samx", 1.0)
    steps = sim.steps(AXIS["samx"])
    put_wait("samx.SET", 1)
    put_wait("samx", 5.0)                      # SET + Variable: only the offset changes
    time.sleep(0.3)
    assert abs(sim.steps(AXIS["samx"]) - steps) <= 2
    assert get("samx.OFF") == pytest.approx(4.0, abs=0.001)
    assert get("samx.RBV") == pytest.approx(5.0, abs=0.001)
    assert get("samx.HLM") == pytest.approx(13.5, abs=0.001)       # user limits follow the offset
    put_wait("samx.SET", 0)
    put_wait("samx", 5.5)                      # USE: a 0.5 mm move of the controller
    assert sim_position(sim, "samx") == pytest.approx(1.5, abs=0.001)

    # SET + writing DVAL loads a new position into the controller; VAL stays, OFF absorbs the change.
    put_wait("samx.SET", 1)
    put_wait("samx.DVAL", 0.0)
    put_wait("samx.SET", 0)
    assert abs(sim.steps(AXIS["samx"])) <= 2
    assert get("samx") == pytest.approx(5.5, abs=0.001)
    assert get("samx.OFF") == pytest.approx(5.5, abs=0.001)


def test_dir_and_off_conversions(stage):
    sim, _ = stage
    put_wait("samx", 0.0)
    put_wait("samx.DIR", 1)                    # Neg
    put_wait("samx.OFF", 2.0)
    assert get("samx.HLM") == pytest.approx(11.5)        # -DLLM + OFF
    assert get("samx.LLM") == pytest.approx(-7.5)        # -DHLM + OFF
    put_wait("samx", 1.0)                      # user 1 = -dial + 2 -> dial 1
    assert get("samx.DVAL") == pytest.approx(1.0)
    assert sim_position(sim, "samx") == pytest.approx(1.0, abs=0.001)
    assert get("samx.RBV") == pytest.approx(2.0 - get("samx.DRBV"), abs=1e-9)
    put_wait("samx", 3.0)                      # dial -1
    assert sim_position(sim, "samx") == pytest.approx(-1.0, abs=0.001)
    assert get("samx.RVAL") == round(-1.0 / MRES["samx"])


def test_homing(stage):
    sim, _ = stage
    put_wait("samy", 0.7)
    put_wait("samy.HOMR", 1)                   # completes when the home search is over
    assert get("samy.DMOV") == 1
    assert get("samy.HOMR") == 0
    assert abs(sim.steps(AXIS["samy"])) <= 2
    assert sim.status(AXIS["samy"]) & 0x10                          # the controller says homed
    assert int(get("samy.MSTA")) & (1 << 14)                        # MSTA HOMED
    assert get("samy") == pytest.approx(get("samy.RBV"), abs=get("samy.RDBD"))
    put_wait("samy.HOMF", 1)                   # from the switch itself: done at once
    assert abs(sim.steps(AXIS["samy"])) <= 2


def test_tweak(stage):
    sim, _ = stage
    put_wait("samx", 1.0)
    put_wait("samx.TWV", 0.2)
    put_wait("samx.TWF", 1)
    assert get("samx") == pytest.approx(1.2)
    assert get("samx.TWF") == 0
    assert sim_position(sim, "samx") == pytest.approx(1.2, abs=0.001)
    put_wait("samx.TWR", 1)
    put_wait("samx.TWR", 1)
    assert get("samx") == pytest.approx(0.8)
    assert sim_position(sim, "samx") == pytest.approx(0.8, abs=0.001)


def test_two_axes_at_once_and_util_pvs(stage):
    sim, _ = stage
    put_wait("samx", 0.0)
    put_wait("samy", 0.0)
    rec = Recorder("moving", "alldone")
    pv("samx").put(1.5)
    pv("samy").put(-1.5)
    wait_for(lambda: get("samx.DMOV") == 1 and get("samy.DMOV") == 1, 15)
    wait_for(lambda: rec.values("alldone")[-1:] == [1], 30, "alldone 1")
    rec.close()
    assert sim_position(sim, "samx") == pytest.approx(1.5, abs=0.001)
    assert sim_position(sim, "samy") == pytest.approx(-1.5, abs=0.001)
    assert 2 in rec.values("moving")           # both were in motion at the same time
    assert rec.values("moving")[-1] == 0
    assert 0 in rec.values("alldone") and rec.values("alldone")[-1] == 1

    # allstop stops everything that moves.
    pv("samx").put(9.0)
    pv("samy").put(-9.0)
    wait_for(lambda: get("moving") == 2, 5)
    time.sleep(0.2)
    pv("allstop").put(1, wait=True)
    wait_for(lambda: get("alldone") == 1, 10)
    assert sim_position(sim, "samx") < 8.0 and sim_position(sim, "samy") > -8.0


def test_epics_motor_class(stage):
    sim, _ = stage
    m = epics.Motor(P + "pssx")                # reads RTYP, needs the standard fields
    assert m.get("RTYP") == "motor"
    m.move(12.5, wait=True)
    assert m.get_position(readback=True) == pytest.approx(12.5, abs=m.get("RDBD"))
    assert sim_position(sim, "pssx") == pytest.approx(12.5, abs=0.003)
    assert m.within_limits(90.0) and not m.within_limits(200.0)
    before = sim.steps(AXIS["pssx"])
    assert m.move(200.0, wait=True) != 0       # refused (pyepics checks the limits the IOC publishes)
    assert abs(sim.steps(AXIS["pssx"]) - before) <= 2
    m.move(0.0, relative=False, wait=True)
    assert m.EGU == "um"


def test_zoom_presets_move_the_zoom_and_set_the_pixel_size(stage):
    sim, _ = stage
    for index, position in ((2, 50.0), (1, 25.0), (0, 0.0)):
        put_wait("zoom_preset", index)        # completes once the zoom motor is there
        assert get("zoom.DMOV") == 1
        assert sim_position(sim, "zoom") == pytest.approx(position, abs=0.004)
        rbv = get("zoom.RBV")
        wait_for(lambda: get("cam_pixel_size") == pytest.approx(3.45 / (1 + 0.2 * rbv), rel=1e-3), 5)
    assert pv("zoom_preset").get(as_string=True) == "Low"


def test_backlash_final_approach_from_the_preferred_side(stage):
    sim, _ = stage
    put_wait("samx", 0.0)
    put_wait("samx.BDST", 0.2)                 # final approach always in +
    rec = Recorder("samx.RBV", "samx.DMOV")
    put_wait("samx", 1.0)                      # + direction: fast to 0.8, slow to 1.0
    wait_for(lambda: len(rec.values("samx.DMOV")) >= 2, 30, "DMOV 0 then 1")
    rec.close()
    assert rec.values("samx.DMOV") == [0, 1]                 # one pulse per move, not per leg
    assert min(rec.values("samx.RBV")) >= -0.001             # never went below the start
    rec = Recorder("samx.RBV", "samx.DMOV")
    put_wait("samx", 0.5)                      # - direction: overshoot to 0.3, come back up
    wait_for(lambda: len(rec.values("samx.DMOV")) >= 2, 30, "DMOV 0 then 1")
    rec.close()
    assert rec.values("samx.DMOV") == [0, 1]
    rbv = rec.values("samx.RBV")
    assert min(rbv) == pytest.approx(0.3, abs=0.02)          # went past the target ...
    assert rbv[-1] == pytest.approx(0.5, abs=get("samx.RDBD"))   # ... and approached it from below
    assert sim_position(sim, "samx") == pytest.approx(0.5, abs=0.001)
    put_wait("samx", -9.4)                     # the overshoot -9.6 would leave the soft limits
    assert get("samx.LVIO") == 1
    assert sim_position(sim, "samx") == pytest.approx(0.5, abs=0.001)


def test_pause_keeps_the_target_and_go_resumes(stage):
    sim, _ = stage
    put_wait("samx", 0.0)
    put_wait("samx.SPMG", 1)                   # Pause
    put_wait("samx", 1.5)
    time.sleep(0.3)
    assert abs(sim.steps(AXIS["samx"])) <= 2   # nothing moved
    assert get("samx") == pytest.approx(1.5)
    put_wait("samx.SPMG", 3)                   # Go: the kept target is reached
    wait_for(lambda: get("samx.DMOV") == 1 and get("samx.MOVN") == 0, 10)
    assert sim_position(sim, "samx") == pytest.approx(1.5, abs=0.001)


def test_disabled_motor_refuses_puts(stage):
    sim, _ = stage
    put_wait("samx", 0.5)
    put_wait("samx_able", 1)                   # Disable: writes DISP
    assert get("samx.DISP") == 1
    epics.caput(P + "samx", 2.0, wait=True, timeout=5)
    time.sleep(0.3)
    assert get("samx") == pytest.approx(0.5)
    assert sim_position(sim, "samx") == pytest.approx(0.5, abs=0.001)
    put_wait("samx_able", 0)
    put_wait("samx", 0.75)
    assert sim_position(sim, "samx") == pytest.approx(0.75, abs=0.001)


def test_retry_when_the_controller_lands_outside_the_deadband(stage):
    sim, _ = stage
    put_wait("samx", 0.0)
    sim.ask(f"{AXIS['samx']} SLIP 40")         # the next move stops 40 steps (4 um) short; RDBD is 3 um
    put_wait("samx", 1.0)
    assert get("samx.RCNT") == 1               # one retry ...
    assert get("samx.MISS") == 0
    assert sim_position(sim, "samx") == pytest.approx(1.0, abs=get("samx.RDBD"))   # ... put it in position
    put_wait("samx.RTRY", 0)                   # without retries the miss is reported
    sim.ask(f"{AXIS['samx']} SLIP 40")
    put_wait("samx", 0.5)
    assert get("samx.MISS") == 1
    assert sim_position(sim, "samx") == pytest.approx(0.5 + 0.004, abs=0.0005)
    put_wait("samx.RTRY", 5)


def test_jog_runs_until_released(stage):
    sim, _ = stage
    put_wait("samx", 0.0)
    put_wait("samx.JVEL", 1.0)
    pv("samx.JOGF").put(1)
    wait_for(lambda: get("samx.MOVN") == 1, 5)
    assert get("samx.DMOV") == 0
    time.sleep(0.5)
    pv("samx.JOGF").put(0)
    wait_for(lambda: get("samx.DMOV") == 1, 10)
    where = sim_position(sim, "samx")
    assert 0.2 < where < 2.0                     # ran forward for about half a second at 1 mm/s
    assert get("samx") == pytest.approx(where, abs=get("samx.RDBD") + 0.001)   # VAL := RBV: no restart
    put_wait("samx.DIR", 1)                      # reverse jog in user sense is + in dial with DIR Neg
    pv("samx.JOGR").put(1)
    time.sleep(0.4)
    pv("samx.JOGR").put(0)
    wait_for(lambda: get("samx.DMOV") == 1, 10)
    assert sim_position(sim, "samx") > where + 0.1


def test_readbacks_carry_the_time_of_each_readback(stage):
    """#15 finding 9: during a move every RBV/DRBV update has the time stamp of its own readback, not the time
    the move started; DMOV/MOVN changes too."""
    stamps = {"samx.RBV": [], "samx.MOVN": [], "samx.DMOV": []}

    def on_change(pvname=None, timestamp=None, **kw):
        stamps[pvname[len(P):]].append(timestamp)

    pvs = [epics.PV(P + name, form="time", auto_monitor=True) for name in stamps]
    for p in pvs:
        assert p.wait_for_connection(5.0)
    put_wait("samx", 0.0)
    for p in pvs:
        p.add_callback(on_change)
    started = time.time()
    put_wait("samx", 2.0)                             # 1 s at VELO 2
    wait_for(lambda: stamps["samx.DMOV"][-1:] and stamps["samx.DMOV"][-1] > started, 5, what="DMOV after the move")
    for p in pvs:
        p.clear_callbacks()
    rbv = stamps["samx.RBV"]
    assert len(rbv) >= 5, rbv
    assert all(b > a for a, b in zip(rbv, rbv[1:])), f"RBV time stamps do not advance: {rbv}"
    assert rbv[-1] - rbv[0] > 0.5, "the updates of a 1 s move span most of it"
    assert all(started - 1.0 < t < time.time() + 1.0 for t in rbv)
    movn, dmov = stamps["samx.MOVN"], stamps["samx.DMOV"]
    assert len(movn) >= 2 and movn[-1] > movn[0]     # 0 -> 1 at the start, 1 -> 0 at the end
    assert dmov[-1] >= rbv[-1] - 0.01 and dmov[-1] > dmov[0]
