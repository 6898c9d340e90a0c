"""Answers a CA client gets from reloc exactly as from EPICS rsrv (upstream softIoc), through pyepics (real
libca): a VAL set in the .db is defined (no UDF severity), processing an output record defines its value,
alarm limits whose severity is NO_ALARM are NaN, and a field other than VAL carries its own metadata (units
only on floating-point fields, the field type's range, no alarm limits) rather than the record's."""
import math
import os

import pytest

import epics
import epics.ca as ca
from epics import dbr

import ioc as ioc_module
from ca_records import st_cmd

RECORDS = """
record(ao, "RS:ao_set")        { field(VAL, "1.5") field(EGU, "V") }
record(ao, "RS:ao_unset")      { field(EGU, "V") field(DRVH, "10") field(DRVL, "-10") }
record(longout, "RS:lo_set")   { field(VAL, "3") }
record(stringout, "RS:so_set") { field(VAL, "ready") }
record(bo, "RS:bo_unset")      { field(ZNAM, "Off") field(ONAM, "On") }
record(ai, "RS:ai") {
    field(EGU, "mm") field(PREC, "3") field(HOPR, "100") field(LOPR, "-100")
    field(HIHI, "90") field(HHSV, "MAJOR") field(HIGH, "80") field(LOW, "-80") field(LOLO, "-90")
}
record(waveform, "RS:wf")      { field(FTVL, "DOUBLE") field(NELM, "10") field(EGU, "V") }
"""


@pytest.fixture(scope="module")
def ioc(tmp_path_factory):
    work = tmp_path_factory.mktemp("ca_rsrv")
    (work / "rs.db").write_text(RECORDS)
    env = ioc_module.server_env(int(os.environ["EPICS_CA_SERVER_PORT"]), int(os.environ["EPICS_CA_REPEATER_PORT"]))
    server = ioc_module.Ioc(st_cmd(work / "rs.db"), work, env=env)
    server.start()
    yield server
    code = server.stop()
    server.check_sanitizers()
    assert code == 0, server.log()[-4000:]


def chan(name):
    pv = epics.get_pv(name, connect=True, timeout=5.0)
    assert pv.connected, f"{name} did not connect"
    return pv.chid


def severity(name):
    return ca.get_with_metadata(chan(name), ftype=dbr.TIME_STRING, timeout=5)["severity"]


def test_val_set_in_the_db_is_defined_and_processing_defines_it(ioc):
    for name in ("RS:ao_set", "RS:lo_set", "RS:so_set"):
        assert severity(name) == 0, f"{name}: VAL given in the .db must not read UDF/INVALID"
    for name in ("RS:ao_unset", "RS:bo_unset"):
        assert severity(name) == 3, f"{name}: a record never set or processed is UDF/INVALID"
    for name in ("RS:ao_unset", "RS:bo_unset"):
        assert epics.caput(name + ".PROC", 1, wait=True) == 1
        ioc_module.wait_for(lambda: severity(name) == 0, what=f"{name} defined after processing")


def test_alarm_limits_without_severity_are_nan(ioc):
    ctrl = ca.get_ctrlvars(chan("RS:ai"))
    assert ctrl["upper_alarm_limit"] == 90
    for key in ("upper_warning_limit", "lower_warning_limit", "lower_alarm_limit"):
        assert math.isnan(ctrl[key]), (key, ctrl[key])


def test_fields_other_than_val_carry_their_own_metadata(ioc):
    prec = ca.get_ctrlvars(chan("RS:ai.PREC"))          # SHORT field: no units, the type's range
    assert prec["units"] == ""
    assert (prec["upper_disp_limit"], prec["lower_disp_limit"]) == (32767, -32768)
    assert (prec["upper_ctrl_limit"], prec["lower_ctrl_limit"]) == (32767, -32768)

    nord = ca.get_ctrlvars(chan("RS:wf.NORD"))          # ULONG field of a waveform
    assert nord["units"] == ""
    assert (nord["upper_disp_limit"], nord["lower_disp_limit"]) == (4294967295, 0)

    hihi = ca.get_ctrlvars(chan("RS:ai.HIHI"))          # an alarm limit is shown on the value's scale
    assert hihi["units"] == "mm" and hihi["precision"] == 3
    assert (hihi["upper_disp_limit"], hihi["lower_disp_limit"]) == (100, -100)
    for key in ("upper_alarm_limit", "upper_warning_limit", "lower_warning_limit", "lower_alarm_limit"):
        assert math.isnan(hihi[key]), (key, hihi[key])

    drvh = ca.get_ctrlvars(chan("RS:ao_unset.DRVH"))    # other DOUBLE fields: units, the type's range
    assert drvh["units"] == "V"
    assert (drvh["upper_disp_limit"], drvh["lower_disp_limit"]) == (1e300, -1e300)
    val = ca.get_ctrlvars(chan("RS:ao_unset"))          # VAL keeps the record's own limits
    assert (val["upper_ctrl_limit"], val["lower_ctrl_limit"]) == (10, -10)
