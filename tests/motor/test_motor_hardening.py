"""Motor record hardening (#15 finding 1): no client value is trusted. NaN and Inf are refused by every numeric
field of the motor record (the put fails, the field keeps its value), MRES 0 and speeds <= 0 are refused, a soft
limit can be disabled only explicitly (DHLM = DLLM = 0), and a move the limits refuse fails its put-callback.
The fields are enumerated from the record's own field table (dbpr RECORD 1 in the IOC's log) and their types and
write access from Channel Access, so a field added to the record later is covered too."""
import math
import re

import pytest
from epics import ca, dbr

from ca_status import ECA_NORMAL, ECA_PUTFAIL, put_status
from ioc import pv_under, wait_for
from motor_stage import AXIS, MRES, read

P = "MH:"
pv = pv_under(P)
AFTER_INIT = f"dbpr {P}samy 1"
NUMERIC = {dbr.SHORT, dbr.FLOAT, dbr.ENUM, dbr.CHAR, dbr.LONG, dbr.DOUBLE}


def get(name):
    return read(P + name)


def put_ok(name, value):
    assert put_status(P + name, value) == ECA_NORMAL, f"put {name}={value} failed"


def motor_fields(ioc):
    """Field names of the motor record as the IOC's dbpr lists them (every field of its type)."""
    text = ioc.wait_for_log(rf"{re.escape(P)}samy \(motor\)\n(  \S+ *: .*\n)+")
    block = text.split(f"{P}samy (motor)\n", 1)[1]
    names = []
    for line in block.splitlines():
        match = re.match(r"  (\S+) *: ", line)
        if not match:
            break
        names.append(match.group(1))
    assert {"VAL", "HLM", "DLLM", "MRES", "VELO", "RVAL", "DIR"} <= set(names), names
    return names


def writable_numeric(fields):
    """(field, CA type) of every field a client can write a number to."""
    out = []
    for field in fields:
        chid = ca.create_channel(f"{P}samy.{field}", connect=True)
        assert ca.connect_channel(chid, timeout=5.0), field
        if ca.field_type(chid) in NUMERIC and ca.write_access(chid):
            out.append((field, ca.field_type(chid)))
    return out


def same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_nan_and_inf_refused_by_every_numeric_field(stage):
    sim, ioc = stage
    fields = writable_numeric(motor_fields(ioc))
    assert len(fields) > 40, fields
    steps = sim.steps(AXIS["samy"])
    for field, _ in fields:
        before = get(f"samy.{field}")
        for bad in (math.nan, math.inf, -math.inf):
            status = put_status(f"{P}samy.{field}", bad, timeout=10.0, ftype=dbr.DOUBLE)
            assert status not in (None, ECA_NORMAL), f"samy.{field} = {bad} was accepted"
            after = get(f"samy.{field}")
            assert same(after, before), f"samy.{field} changed from {before} to {after} on a refused {bad}"
    assert get("samy.DMOV") == 1
    assert abs(sim.steps(AXIS["samy"]) - steps) <= 2   # nothing moved (the simulator's noise is +-1 step)
    assert get("samy.HLM") == pytest.approx(9.5) and get("samy.DLLM") == pytest.approx(-9.5)


def test_nan_soft_limit_cannot_remove_the_limit(stage):
    sim, ioc = stage
    put_ok("samy", 1.0)
    for field in ("HLM", "DHLM", "LLM", "DLLM"):
        pv(f"samy.{field}").put(math.nan, wait=True)  # a plain caput as well: refused the same way
        assert math.isfinite(get(f"samy.{field}"))
    before = sim.steps(AXIS["samy"])
    assert put_status(P + "samy", 11.0) == ECA_PUTFAIL, "a move past HLM must fail its put-callback"
    assert get("samy.LVIO") == 1
    assert get("samy") == pytest.approx(1.0)
    assert abs(sim.steps(AXIS["samy"]) - before) <= 2
    assert get("samy.HLS") == 0
    ioc.wait_for_log(r"samy\.HLM = nan refused")


def test_limits_disabled_only_by_dhlm_and_dllm_zero(stage):
    sim, _ = stage
    put_ok("pssy", 94.0)
    assert put_status(P + "pssy", 96.0) == ECA_PUTFAIL  # DHLM 95
    for field in ("DHLM", "DLLM"):
        put_ok(f"pssy.{field}", 0.0)
    assert get("pssy.HLM") == 0 and get("pssy.LLM") == 0
    put_ok("pssy", 96.0)                                 # explicitly disabled: the move runs
    assert sim.steps(AXIS["pssy"]) * MRES["pssy"] == pytest.approx(96.0, abs=0.003)
    put_ok("pssy", 94.0)
    put_ok("pssy.DHLM", 95.0)
    put_ok("pssy.DLLM", -95.0)
    # user limits follow the dial limits through OFF and DIR
    put_ok("pssy.OFF", 10.0)
    assert (get("pssy.HLM"), get("pssy.LLM")) == (pytest.approx(105.0), pytest.approx(-85.0))
    put_ok("pssy.HLM", 100.0)
    assert get("pssy.DHLM") == pytest.approx(90.0)
    put_ok("pssy.HLM", 105.0)
    put_ok("pssy.OFF", 0.0)


def test_mres_zero_refused(stage):
    sim, ioc = stage
    assert put_status(P + "samx.MRES", 0.0) == ECA_PUTFAIL
    assert get("samx.MRES") == pytest.approx(MRES["samx"])
    put_ok("samx", 0.3)
    assert sim.steps(AXIS["samx"]) * MRES["samx"] == pytest.approx(0.3, abs=0.0003)
    assert get("samx.RBV") == pytest.approx(0.3, abs=0.0003)
    ioc.wait_for_log(r"samx\.MRES = 0 refused: a step size of 0")


@pytest.mark.parametrize("field", ["VELO", "BVEL", "HVEL", "JVEL"])
@pytest.mark.parametrize("speed", [0.0, -1.0])
def test_speeds_must_be_positive(stage, field, speed):
    before = get(f"samx.{field}")
    assert put_status(f"{P}samx.{field}", speed) == ECA_PUTFAIL
    assert get(f"samx.{field}") == before


def test_velo_clamped_to_vbas_vmax(stage):
    sim, ioc = stage
    put_ok("samx.VMAX", 1.5)
    assert get("samx.VELO") == pytest.approx(1.5)      # VELO 2 clamped when VMAX came below it
    put_ok("samx.VELO", 3.0)
    assert get("samx.VELO") == pytest.approx(1.5)
    ioc.wait_for_log(r"samx: VELO 3 outside VBAS..VMAX 0..1.5: set to 1.5")
    assert put_status(P + "samx.VBAS", 2.0) == ECA_PUTFAIL   # above VMAX
    put_ok("samx.VMAX", 0.0)
    put_ok("samx.VELO", 2.0)
    put_ok("samx", 0.5)
    assert sim.steps(AXIS["samx"]) * MRES["samx"] == pytest.approx(0.5, abs=0.0003)


def test_huge_target_refused_when_limits_are_off(stage):
    """With the limits disabled a target the controller cannot be sent (beyond a 32-bit step count) is refused
    like a limit violation, not sent as a garbage position."""
    sim, ioc = stage
    put_ok("pssx", 0.0)
    put_ok("pssx.DHLM", 0.0)
    put_ok("pssx.DLLM", 0.0)
    try:
        assert put_status(P + "pssx", 1e300) == ECA_PUTFAIL
        assert get("pssx.LVIO") == 1
        assert get("pssx") == pytest.approx(0.0)
        wait_for(lambda: get("pssx.DMOV") == 1, 5, "pssx done")
        assert abs(sim.steps(AXIS["pssx"])) <= 2
    finally:
        put_ok("pssx.DHLM", 95.0)
        put_ok("pssx.DLLM", -95.0)
    assert "cannot be sent" not in ioc.log()
