"""Channel Access server, seen through pyepics (real libca): name resolution, every DBR family and its
metadata, puts with and without completion, monitors with masks and deadbands, large arrays, REC.FIELD
channels, reconnection after an IOC restart, access security, and robustness against malformed input."""
import os
import pwd
import socket
import struct
import time

import numpy as np
import pytest

import epics
import epics.ca as ca
from epics import dbr

import ioc as ioc_module
from ioc import wait_for
from ca_records import BIG_NELM, acf_text, records_db, st_cmd

USER = pwd.getpwuid(os.getuid()).pw_name
HOST = socket.gethostname()


@pytest.fixture(scope="module")
def ioc(tmp_path_factory):
    """One IOC for the whole module: libca keeps its channels across tests."""
    work = tmp_path_factory.mktemp("ca_server")
    (work / "cat.db").write_text(records_db())
    (work / "cat.acf").write_text(acf_text(USER, HOST))
    server = ioc_module.Ioc(st_cmd(work / "cat.db", work / "cat.acf"), work, env=ioc_module.session_env())
    server.start()
    yield server
    code = server.stop()
    server.check_sanitizers()
    assert code == 0, server.log()[-4000:]


def chan(name, timeout=5.0):
    """The chid of the cached PV for name (pyepics must not hold two channels of one name)."""
    pv = epics.get_pv(name, connect=True, timeout=timeout)
    assert pv.connected, f"{name} did not connect"
    return pv.chid


# --------------------------------------------------------------------------------------------------------
def test_every_record_type_through_every_dbr_family(ioc):
    expected = {   # name: (native CA type, value as read in its native type, elements)
        "CAT:ai": (dbr.DOUBLE, 1.5, 1),
        "CAT:ao": (dbr.DOUBLE, 0.0, 1),
        "CAT:bo": (dbr.ENUM, 0, 1),
        "CAT:mbbo": (dbr.ENUM, 0, 1),
        "CAT:long": (dbr.LONG, 42, 1),
        "CAT:str": (dbr.STRING, "hello", 1),
        "CAT:wf": (dbr.DOUBLE, None, 10),
        "CAT:chars": (dbr.CHAR, None, 64),
    }
    for name, (native, value, nelm) in expected.items():
        chid = chan(name)
        assert ca.field_type(chid) == native, name
        assert ca.element_count(chid) == nelm, name
        for family in (0, 14, 28):                        # plain, TIME, CTRL (pyepics decodes these)
            got = ca.get(chid, ftype=native + family, timeout=5)
            assert got is not None, (name, family)
            if value is not None:
                assert got == value, (name, family, got)
        for other in (dbr.STRING, dbr.SHORT, dbr.FLOAT, dbr.ENUM, dbr.CHAR, dbr.LONG, dbr.DOUBLE):
            if native == dbr.STRING and other != dbr.STRING:
                continue                                   # "hello" is not a number
            for family in (0, 14, 28):
                assert ca.get(chid, ftype=other + family, timeout=5) is not None, (name, other, family)

    # conversions the server performs
    ai = chan("CAT:ai")
    assert ca.get(ai, ftype=dbr.STRING) == "1.500"        # PREC 3
    assert ca.get(ai, ftype=dbr.LONG) in (1, 2)
    assert ca.get(chan("CAT:long"), ftype=dbr.STRING) == "42"
    assert ca.get(chan("CAT:mbbo"), ftype=dbr.STRING) == "zero"
    assert epics.caget("CAT:ai", as_string=True) == "1.500"
    assert epics.caget("CAT:bo", as_string=True) == "Off"


def test_metadata_units_precision_limits_enums_alarms(ioc):
    ctrl = ca.get_ctrlvars(chan("CAT:ai"))
    assert ctrl["units"] == "mm"
    assert ctrl["precision"] == 3
    assert ctrl["upper_disp_limit"] == 100 and ctrl["lower_disp_limit"] == -100
    assert ctrl["upper_alarm_limit"] == 90 and ctrl["upper_warning_limit"] == 80
    assert ctrl["lower_warning_limit"] == -80 and ctrl["lower_alarm_limit"] == -90

    ao = ca.get_ctrlvars(chan("CAT:ao"))
    assert ao["upper_ctrl_limit"] == 10 and ao["lower_ctrl_limit"] == -10
    assert ao["units"] == "V" and ao["precision"] == 2

    assert ca.get_ctrlvars(chan("CAT:long"))["units"] == "counts"
    assert list(ca.get_enum_strings(chan("CAT:mbbo"))) == ["zero", "one", "two"]
    assert list(ca.get_enum_strings(chan("CAT:bo"))) == ["Off", "On"]

    ai = chan("CAT:ai")
    for value, sevr, stat in ((85.0, 1, 4), (95.0, 2, 3), (-85.0, 1, 6), (0.0, 0, 0)):
        epics.caput("CAT:ai", value, wait=True)
        meta = ca.get_with_metadata(ai, ftype=dbr.TIME_DOUBLE, timeout=5)
        assert meta["value"] == value
        assert (meta["severity"], meta["status"]) == (sevr, stat), value


def test_time_stamps_advance_and_are_epics_epoch(ioc):
    ticks = chan("CAT:ticks")
    first = ca.get_with_metadata(ticks, ftype=dbr.TIME_DOUBLE)
    time.sleep(0.35)
    second = ca.get_with_metadata(ticks, ftype=dbr.TIME_DOUBLE)
    assert second["value"] > first["value"]
    assert second["timestamp"] > first["timestamp"]
    assert abs(second["timestamp"] - time.time()) < 5.0    # pyepics adds the 1990 epoch offset back


def test_put_and_put_with_completion(ioc):
    epics.caput("CAT:ao", 3.25, wait=True)
    assert epics.caget("CAT:ao") == 3.25
    epics.caput("CAT:mbbo", "two", wait=True)
    assert epics.caget("CAT:mbbo") == 2
    epics.caput("CAT:str", "changed text", wait=True)
    assert epics.caget("CAT:str") == "changed text"
    epics.caput("CAT:wf", [1.0, 2.0, 3.0], wait=True)
    assert list(epics.caget("CAT:wf")) == [1.0, 2.0, 3.0]

    # an output that completes 0.5 s after the write: put-with-completion returns only then
    done = []
    slow = epics.PV("CAT:slow", callback=lambda value=None, **kw: done.append(value))
    assert slow.wait_for_connection(5)
    pact = epics.PV("CAT:slow.PACT")
    assert pact.wait_for_connection(5)
    assert slow.put(7, wait=True, timeout=10) == 1
    assert pact.get(use_monitor=False) == 0             # processing finished when the put returned
    assert epics.caget("CAT:slow", use_monitor=False) == 7
    # without completion the put returns while the record is still busy
    slow.put(9)
    wait_for(lambda: pact.get(use_monitor=False) == 1, timeout=2)
    wait_for(lambda: pact.get(use_monitor=False) == 0, timeout=5)


def _subscribe(name, mask):
    chid = chan(name)
    updates = []

    def cb(value=None, **kw):
        updates.append((value, kw.get("severity"), kw.get("status")))
    handle = ca.create_subscription(chid, use_time=True, mask=mask, callback=cb)
    wait_for(lambda: len(updates) >= 1, what="the initial update")
    return chid, updates, handle


def test_monitor_masks_and_deadbands(ioc):
    epics.caput("CAT:mdel", 0.0, wait=True)
    _, value_updates, h1 = _subscribe("CAT:mdel", dbr.DBE_VALUE)
    _, log_updates, h2 = _subscribe("CAT:mdel", dbr.DBE_LOG)
    for v in (0.5, 0.9, 1.6, 2.0, 5.5, 6.0):               # MDEL 1.0, ADEL 5.0
        epics.caput("CAT:mdel", v, wait=True)
    wait_for(lambda: len(value_updates) >= 3)
    epics.poll(0.3)
    assert [u[0] for u in value_updates[1:]] == [1.6, 5.5]  # changes beyond 1.0 from the last posted value
    assert [u[0] for u in log_updates[1:]] == [5.5]

    _, alarm_updates, h3 = _subscribe("CAT:ai", dbr.DBE_ALARM)
    epics.caput("CAT:ai", 85.0, wait=True)                  # NO_ALARM -> HIGH/MINOR
    epics.caput("CAT:ai", 86.0, wait=True)                  # no alarm change
    epics.caput("CAT:ai", 95.0, wait=True)                  # -> HIHI/MAJOR
    wait_for(lambda: len(alarm_updates) >= 3)
    epics.poll(0.3)
    assert [(u[0], u[1]) for u in alarm_updates[1:]] == [(85.0, 1), (95.0, 2)]

    # DBE_PROPERTY: a metadata field's own channel reports its change under the property mask
    _, prop_updates, h4 = _subscribe("CAT:mdel.EGU", dbr.DBE_PROPERTY)
    _, val_prop_updates, h5 = _subscribe("CAT:mdel", dbr.DBE_PROPERTY)   # and so does the record's value
    epics.caput("CAT:mdel", 9.0, wait=True)                 # a value change is not a property change
    epics.caput("CAT:mdel.EGU", "um", wait=True)
    wait_for(lambda: len(prop_updates) >= 2 and len(val_prop_updates) >= 2)
    epics.poll(0.3)
    assert [u[0] for u in prop_updates[1:]] == ["um"]
    assert [u[0] for u in val_prop_updates[1:]] == [9.0]
    assert ca.get_ctrlvars(chan("CAT:mdel"))["units"] == "um"
    for handle in (h1, h2, h3, h4, h5):      # libca must not call a callback Python has freed
        ca.clear_subscription(handle[2])


def test_four_mib_waveform_read_and_monitored(ioc):
    data = np.arange(BIG_NELM, dtype=np.float64) * 0.5
    chid = chan("CAT:big")
    assert ca.element_count(chid) == BIG_NELM
    assert epics.caput("CAT:big", data, wait=True, timeout=30) == 1
    back = ca.get(chid, count=BIG_NELM, timeout=30)
    np.testing.assert_array_equal(back, data)

    got = []

    def on_update(value=None, **kw):
        got.append(np.array(value))
    handle = ca.create_subscription(chid, callback=on_update)
    wait_for(lambda: len(got) >= 1, timeout=30)            # the current 4 MiB value at once
    np.testing.assert_array_equal(got[0], data)
    assert epics.caput("CAT:big", data[::-1].copy(), wait=True, timeout=30) == 1
    wait_for(lambda: len(got) >= 2, timeout=30)
    np.testing.assert_array_equal(got[-1], data[::-1])
    ca.clear_subscription(handle[2])


def test_rec_field_channels(ioc):
    assert epics.caget("CAT:ai.EGU") == "mm"
    assert epics.caget("CAT:ai.PREC") == 3
    assert epics.caget("CAT:ai.HOPR") == 100
    assert epics.caget("CAT:ai.DESC") == "analog in"
    scan = chan("CAT:ai.SCAN")
    assert ca.field_type(scan) == dbr.ENUM
    assert ca.get(scan, ftype=dbr.STRING) == "Passive"
    assert "1 second" in ca.get_enum_strings(scan)
    assert epics.caget("CAT:ai.VAL") == epics.caget("CAT:ai")
    assert not epics.get_pv("CAT:ai.NOPE", connect=True, timeout=1.0).connected


def test_access_security_denies_writes_by_user_and_host(ioc):
    locked = epics.PV("CAT:locked")
    hostlocked = epics.PV("CAT:hostlocked")
    opened = epics.PV("CAT:open")
    for pv in (locked, hostlocked, opened):
        assert pv.wait_for_connection(5)
        assert pv.read_access
    assert not locked.write_access                        # user not in the UAG
    assert not hostlocked.write_access                    # right user, wrong host
    assert opened.write_access

    # the put has no effect (libca reports the ECA_NOWTACCESS error or refuses locally)
    with pytest.raises(Exception):
        epics.caput("CAT:locked", 99, wait=True, timeout=5)
    assert epics.caget("CAT:locked", use_monitor=False) == 3
    assert epics.caput("CAT:open", 6, wait=True) == 1
    assert epics.caget("CAT:open", use_monitor=False) == 6

    # moving a record to another group pushes the new rights to connected clients
    assert epics.caput("CAT:open.ASG", "LOCKED", wait=True) == 1
    wait_for(lambda: not opened.write_access, timeout=5)
    with pytest.raises(Exception):
        epics.caput("CAT:open", 7, wait=True, timeout=5)
    assert epics.caget("CAT:open", use_monitor=False) == 6


def test_read_only_fields_report_no_write_access(ioc):
    stat = epics.PV("CAT:ai.STAT")
    assert stat.wait_for_connection(5)
    assert stat.read_access and not stat.write_access


def _raw_circuit():
    port = int(os.environ["EPICS_CA_SERVER_PORT"])
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.recv(16)                                            # the server's VERSION
    return s


def test_malformed_messages_close_only_the_offending_circuit(ioc):
    pv = epics.PV("CAT:long")
    assert pv.wait_for_connection(5)
    bad = _raw_circuit()
    bad.sendall(struct.pack(">HHHHII", 0, 0, 0, 13, 0, 0) + struct.pack(">HHHHII", 18, 5, 0, 0, 1, 13) + b"ABCDE")
    bad.settimeout(5)
    assert bad.recv(4096) == b""                          # closed by the server
    huge = _raw_circuit()
    huge.sendall(struct.pack(">HHHHIIII", 4, 0xFFFF, 6, 0, 0, 0, 0x7FFFFFF8, 1))
    huge.settimeout(5)
    assert huge.recv(4096) == b""
    text = ioc.log()
    assert "misaligned" in text and "exceeds the limit" in text
    assert "127.0.0.1:" in text
    assert pv.get(use_monitor=False) == 42                # everyone else is still served
    bad.close()
    huge.close()
