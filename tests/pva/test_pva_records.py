"""pvAccess server on a small IOC, through the independent test client (pvaclient.py) and compared with Channel
Access (pyepics): name search, connection validation, records as NTScalar / NTEnum / NTScalarArray with their
metadata, REC.FIELD channels, field selection, puts with process and block options, monitors with stop/start and
flow control, both byte orders, the introspection cache, access security and malformed input."""
import math
import os
import pwd
import socket
import struct
import sys

import numpy as np
import pytest

from ioc import TOP, pv_under, wait_for
from pva_ioc import records_ioc
from pvaclient import CMD_CREATE_CHANNEL, ERROR, FATAL, PvaError, header, parse_beacons, search

sys.path.insert(0, str(TOP / "tests" / "ca"))
from ca_records import acf_text, records_db, st_cmd  # noqa: E402

P = "PVT:"
USER = pwd.getpwuid(os.getuid()).pw_name
pv = pv_under(P)

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The Channel Access tests' IOC (tests/ca/ca_records.py): the same records and access rules."""
    work = tmp_path_factory.mktemp("pva_records")
    (work / "pvt.db").write_text(records_db(P))
    (work / "pvt.acf").write_text(acf_text(USER, socket.gethostname()))
    with records_ioc(st_cmd(work / "pvt.db", work / "pvt.acf"), work) as running:
        yield running


@pytest.fixture
def client(server):
    with server.client() as connection:
        yield connection


def ca_put(name, value):
    assert pv(name).put(value, wait=True, timeout=10), name


# ------------------------------------------------------------------------------------------ name resolution

def test_search_finds_a_record_and_its_fields_and_not_a_missing_name(server):
    for order in "<>":
        found = search([P + "ai", P + "missing", P + "ao.DRVH"], server.udp_port, order=order)
        assert found == {P + "ai": ("127.0.0.1", server.tcp_port), P + "ao.DRVH": ("127.0.0.1", server.tcp_port)}
    # a name nobody serves: no reply at all, unless the client asks for one, which then claims nothing
    assert search([P + "missing"], server.udp_port, timeout=1.0).replies == 0
    answered = search([P + "missing"], server.udp_port, must_reply=True)
    assert answered.replies >= 1 and answered == {}


def test_beacons_announce_the_server_that_answers_searches(server):
    server.beacons.settimeout(20.0)                       # the first beacon goes out at start, then every 15 s
    beacon = parse_beacons(server.beacons.recvfrom(65536)[0])[0]
    found = search([P + "ai"], server.udp_port)
    assert beacon.guid in found.guids and len(beacon.guid) == 12
    assert (beacon.port, beacon.protocol) == (server.tcp_port, "tcp")


def test_connection_validation_offers_anonymous_and_ca(server):
    with server.client() as anonymous:
        assert {"anonymous", "ca"} <= set(anonymous.auth_methods)
        assert anonymous.validation.ok
        assert anonymous.echo(b"hello!") == b"hello!"
    with server.client(auth=("ca", "alice", "somewhere")) as named:
        assert named.validation.ok and named.get(P + "ai")["value"] == pytest.approx(1.5)


def test_missing_channel_is_refused_and_a_channel_can_be_destroyed(client):
    with pytest.raises(PvaError) as refused:
        client.channel(P + "missing")
    assert refused.value.status.type in (ERROR, FATAL)
    client.channel(P + "ao")
    assert client.destroy_channel(P + "ao")
    assert client.get(P + "ao")["value"] == pytest.approx(pv("ao").get())     # a new channel works


# ------------------------------------------------------------------------------------------ normative types

def test_ai_is_an_ntscalar_with_alarm_time_display_control_and_value_alarm(client):
    ca_put("ai", 85.0)                                    # HIGH: a MINOR alarm, and a fresh time stamp
    info = client.get_field(P + "ai")
    assert info.id == "epics:nt/NTScalar:1.0"
    assert {"value", "alarm", "timeStamp", "display", "control", "valueAlarm"} <= set(info.names())
    assert info["value"].code == 0x43                     # double
    data = client.get(P + "ai")
    assert data.type == info
    meta = pv("ai").get_ctrlvars()
    assert data["value"] == pytest.approx(85.0)
    assert data["alarm.severity"] == meta["severity"] == 1
    assert data["alarm.status"] == 1                      # DEVICE: a limit alarm
    assert data["alarm.message"] == "HIGH"
    assert (data["display.limitLow"], data["display.limitHigh"]) == (-100.0, 100.0)
    assert data["display.description"] == "analog in" and data["display.units"] == "mm"
    assert data["display.precision"] == 3
    assert (data["valueAlarm.lowAlarmLimit"], data["valueAlarm.lowWarningLimit"],
            data["valueAlarm.highWarningLimit"], data["valueAlarm.highAlarmLimit"]) == (-90.0, -80.0, 80.0, 90.0)


def test_time_stamp_is_posix_seconds_as_ca_gives_them(client):
    ca_put("ai", 12.0)
    for record in ("ai", "hostlocked"):                  # processed just now, and never processed
        ts = client.get(P + record)["timeStamp"]
        pva_time = ts["secondsPastEpoch"] + ts["nanoseconds"] * 1e-9
        assert abs(pva_time - pv(record).get_timevars()["timestamp"]) < 1e-3, record


NUMERIC_LAYOUT = {   # member -> its fields, as EPICS 7's own IOC (QSRV) serves a numeric record; T = value type
    "alarm": ["severity", "status", "message"],
    "timeStamp": ["secondsPastEpoch", "nanoseconds", "userTag"],
    "display": ["limitLow", "limitHigh", "description", "units", "precision", "form"],
    "control": ["limitLow", "limitHigh", "minStep"],
    "valueAlarm": ["active", "lowAlarmLimit", "lowWarningLimit", "highWarningLimit", "highAlarmLimit",
                   "lowAlarmSeverity", "lowWarningSeverity", "highWarningSeverity", "highAlarmSeverity",
                   "hysteresis"],
}


@pytest.mark.parametrize("record, value_code", [("ai", 0x43), ("long", 0x22), ("wf", 0x4B), ("chars", 0x28)])
def test_numeric_layout_is_the_one_epics_clients_expect(client, record, value_code):
    """What display managers and ophyd-async read by name: the NTScalar/NTScalarArray sub-structures, limits of
    the value's own element type, and the display form choices."""
    info = client.get_field(P + record)
    assert info.names() == ["value", *NUMERIC_LAYOUT] and info["value"].code == value_code
    for member, fields in NUMERIC_LAYOUT.items():
        assert info[member].names() == fields, member
    element = value_code & ~0x08
    for path in ("display.limitLow", "display.limitHigh", "control.limitLow", "control.limitHigh",
                 "control.minStep", "valueAlarm.highAlarmLimit"):
        assert info[path].code == element, path
    assert info["alarm"].id == "alarm_t" and info["timeStamp"].id == "time_t"
    assert client.get(P + record)["display.form.choices"] == ["Default", "String", "Binary", "Decimal", "Hex",
                                                               "Exponential", "Engineering"]


def test_string_and_enum_layouts_carry_a_short_display(client):
    assert client.get_field(P + "str")["display"].names() == ["description", "units"]
    assert client.get_field(P + "bo")["display"].names() == ["description"]
    assert client.get(P + "str")["value"] == "hello"


def test_ao_control_limits_are_its_drive_limits(client):
    data = client.get(P + "ao")
    assert (data["control.limitLow"], data["control.limitHigh"]) == (-10.0, 10.0)
    assert (data["display.limitLow"], data["display.limitHigh"]) == (-12.0, 12.0)
    assert data["display.units"] == "V" and data["display.precision"] == 2
    # no alarm severities configured: no alarm limits (NaN), as EPICS 7's IOC reports them
    assert all(math.isnan(data["valueAlarm." + limit]) for limit in ("lowAlarmLimit", "lowWarningLimit",
                                                                       "highWarningLimit", "highAlarmLimit"))


@pytest.mark.parametrize("record, choices", [("bo", ["Off", "On"]), ("mbbo", ["zero", "one", "two"])])
def test_enums_are_ntenum_and_index_puts_and_changes_travel(client, record, choices):
    info = client.get_field(P + record)
    assert info.id == "epics:nt/NTEnum:1.0" and info["value"].id == "enum_t"
    data = client.get(P + record)
    assert data["value.choices"] == choices
    last = len(choices) - 1
    assert client.put(P + record, {"value.index": last}).ok
    assert pv(record).get() == last
    mon = client.monitor(P + record)
    mon.start()
    assert mon.next()["value.index"] == last
    ca_put(record, 0)
    update = mon.next()
    assert update.marked("value.index") and update["value.index"] == 0
    mon.destroy()
    assert client.get(P + record)["value.index"] == 0


def test_waveforms_are_ntscalararrays_of_their_element_type(client):
    ca_put("wf", [1.0, 2.5, -3.0])
    info = client.get_field(P + "wf")
    assert info.id == "epics:nt/NTScalarArray:1.0" and info["value"].code == 0x4B      # double[]
    assert client.get(P + "wf")["value"].tolist() == [1.0, 2.5, -3.0]
    assert client.get_field(P + "chars")["value"].code == 0x28                         # int8[]
    text = np.frombuffer(b"pvAccess\0", np.int8)
    assert client.put(P + "chars", {"value": text}).ok
    assert np.array_equal(client.get(P + "chars")["value"], text)
    assert pv("chars").get(count=len(text)).tobytes() == text.tobytes()
    ramp = np.linspace(-1.0, 1.0, 300000)                                               # 2.4 MB, long sizes
    assert client.put(P + "big", {"value": ramp}).ok
    assert np.array_equal(client.get(P + "big")["value"], ramp)
    assert np.array_equal(pv("big").get(count=len(ramp)), ramp)


def test_rec_field_channels_read_and_write_one_field(client):
    assert client.get(P + "ai.EGU")["value"] == "mm"
    assert client.get(P + "ao.DRVH")["value"] == pytest.approx(10.0)
    assert client.put(P + "ao.DRVH", {"value": 8.0}).ok
    assert pv("ao.DRVH").get() == pytest.approx(8.0)
    assert client.get(P + "ao")["control.limitHigh"] == pytest.approx(8.0)
    ca_put("ao.DRVH", 10.0)


def test_fields_are_sent_as_epics_7s_own_ioc_fills_them(client):
    """pvxget/pvget print the fields a server marks: the same ones QSRV2 (EPICS 7's IOC) marks for the same
    record, field and record type, so that an upstream client shows the same output from either IOC."""
    ai = client.get(P + "ai")
    for path in ("value", "alarm.severity", "timeStamp.nanoseconds", "display.limitLow", "display.units",
                 "display.precision", "display.form.index", "control.limitHigh", "valueAlarm.highAlarmLimit"):
        assert ai.marked(path), path
    for path in ("control.minStep", "valueAlarm.active", "valueAlarm.lowAlarmSeverity", "valueAlarm.hysteresis"):
        assert not ai.marked(path), path
    long = client.get(P + "long")                         # integers: no precision
    assert long.marked("valueAlarm.highAlarmLimit") and not long.marked("display.precision")
    wf = client.get(P + "wf")                             # waveforms report no alarm limits
    assert wf.marked("display.units") and wf.marked("control.limitLow") and not wf.marked("valueAlarm.lowAlarmLimit")
    assert not client.get(P + "str").marked("display.units")            # stringout reports no units
    prec = client.get(P + "ai.PREC")                      # the display form applies to VAL only
    assert prec.marked("display.form.choices") and not prec.marked("display.form.index")
    zrvl = client.get(P + "mbbo.ZRVL")                    # mbbo reports neither limits nor units
    assert zrvl["value"] == 0 and zrvl.marked("display.description")
    for path in ("display.limitLow", "display.units", "control.limitHigh", "valueAlarm.highAlarmLimit"):
        assert not zrvl.marked(path), path


def test_a_field_no_client_can_read_is_not_a_channel(client):
    """TIME (no access): refused when the channel is created, as QSRV does, rather than a channel whose every
    read fails (pvxget then printed "cannot read the record" instead of "refuses channel")."""
    with pytest.raises(PvaError) as refused:
        client.channel(P + "ai.TIME")
    assert refused.value.status.type in (ERROR, FATAL)
    assert client.get(P + "ai.DESC")["value"] == "analog in"


def test_field_selection_sends_only_the_selected_fields(client):
    data = client.get(P + "ai", "field(value,alarm)")
    assert data.marked("value") and data.marked("alarm.severity")
    assert not data.marked("display.units") and not data.marked("timeStamp.secondsPastEpoch")
    everything = client.get(P + "ai")
    assert everything.marked("display.units") and everything.marked("timeStamp.secondsPastEpoch")


# ------------------------------------------------------------------------------------------ puts

def test_put_reaches_ca_and_process_true_processes_the_record(client):
    ca_put("ao", 1.5)
    put = client.start_put(P + "ao", {"value": 2.5}, read_first=True)        # as pvxput: read, then write
    assert put.wait().ok and put.current["value"] == 1.5 and put.current["display.units"] == "V"
    assert pv("ao").get() == pytest.approx(2.5)
    stamp = pv("ao").get_timevars()["timestamp"]
    assert client.put(P + "ao.DESC", {"value": "out"}).ok                # DESC is not a process-passive field
    assert pv("ao").get_timevars()["timestamp"] == stamp
    assert client.put(P + "ao.DESC", {"value": "out"}, "record[process=true]").ok
    assert pv("ao").get_timevars()["timestamp"] > stamp                  # processed: a new time stamp


def test_process_command_processes_the_record(client):
    stamp = pv("ao").get_timevars()["timestamp"]
    assert client.process(P + "ao").ok
    assert pv("ao").get_timevars()["timestamp"] > stamp


def test_block_true_put_replies_when_asynchronous_processing_completes(client):
    pact = pv("slow.PACT")
    put = client.start_put(P + "slow", {"value": 1.0}, "record[block=true]")
    seen_active = False
    while put.done() is None:
        seen_active |= pact.get() == 1
    assert put.status.ok and pact.get() == 0 and seen_active
    assert pv("slow").get() == pytest.approx(1.0)
    # without block the reply comes at once, while the record is still processing
    assert client.put(P + "slow", {"value": 2.0}).ok
    assert pact.get() == 1
    wait_for(lambda: pact.get() == 0, 10, "slow to finish")


# ------------------------------------------------------------------------------------------ monitors

def test_monitor_sends_the_current_value_then_every_change_and_stops_and_restarts(client):
    ca_put("ao", 0.0)
    mon = client.monitor(P + "ao")
    mon.start()
    first = mon.next()
    assert first["value"] == 0.0 and first.marked("display.units") and first.marked("alarm.severity")
    for value in (1.0, 2.0, 3.0):
        ca_put("ao", value)
    values = []
    while not values or values[-1] != 3.0:
        update = mon.next()
        assert update.marked("value")
        values.append(update["value"])
    assert values == sorted(values) and set(values) <= {1.0, 2.0, 3.0}
    mon.stop()
    client.get(P + "ao")                       # a round trip: the server has handled the stop
    ca_put("ao", 4.0)
    client.get(P + "ao")
    assert [u["value"] for u in mon.received()] == []
    mon.start()
    assert mon.next()["value"] == 4.0          # a restart sends the current value again
    mon.destroy()


def test_monitor_updates_mark_only_what_changed(client):
    """As QSRV2 sends them: a value change marks value and timeStamp, the alarm only when it changed (then with
    the value), an enum's choices only when its strings change, not with every index."""
    ca_put("ai", 0.0)
    mon = client.monitor(P + "ai")
    mon.start()
    assert mon.next().marked("alarm.severity")            # the first update has everything
    ca_put("ai", 1.0)
    quiet = mon.next()
    assert quiet["value"] == 1.0 and quiet.marked("timeStamp.nanoseconds") and not quiet.marked("alarm.severity")
    ca_put("ai", 85.0)                                    # HIGH: MINOR
    alarmed = mon.next()
    assert alarmed.marked("alarm.severity") and (alarmed["value"], alarmed["alarm.severity"]) == (85.0, 1)
    ca_put("ai", 1.0)
    cleared = mon.next()
    assert cleared.marked("alarm.message") and (cleared["alarm.severity"], cleared["alarm.message"]) == (0, "")
    mon.destroy()
    ca_put("mbbo", 0)
    enum = client.monitor(P + "mbbo")
    enum.start()
    assert enum.next().marked("value.choices")
    ca_put("mbbo", 1)
    index = enum.next()
    assert index["value.index"] == 1 and not index.marked("value.choices")
    ca_put("mbbo.TWST", "deux")
    renamed = enum.next()
    assert renamed.marked("value.choices") and renamed["value.choices"] == ["zero", "one", "deux"]
    ca_put("mbbo.TWST", "two")
    enum.destroy()


def test_a_client_that_stops_reading_gets_the_newest_array_not_a_backlog(client):
    """An array viewer that stalls (reads nothing) while 20 arrays of 2.4 MB are written: when it reads again it
    has fewer than 20 updates queued, the last one the newest array."""
    mon = client.monitor(P + "big", "field(value)")
    mon.start()
    mon.next()
    for k in range(1, 21):
        ca_put("big", np.full(300000, float(k)))
    updates = []
    while mon.value["value"][:1].tolist() != [20.0]:
        updates.append(mon.next()["value"][0])
    assert len(updates) < 20 and updates == sorted(updates), updates
    assert np.array_equal(mon.value["value"][:300000], np.full(300000, 20.0))
    mon.destroy()


@pytest.mark.parametrize("pipeline", [False, True])
def test_a_bad_queue_size_option_is_reported_and_the_monitor_still_works(client, pipeline):
    """(An upstream server stopped answering everyone on a pipelined monitor with queueSize=abc.)"""
    ca_put("ao", 0.5)
    mon = client.monitor(P + "ao", "" if pipeline else "record[queueSize=abc]", pipeline=pipeline,
                         queue_size="abc", nfree=4)
    mon.start()
    assert mon.next()["value"] == 0.5
    assert any(ioid == mon.ioid and "queueSize" in text for ioid, _, text in client.messages), client.messages
    ca_put("ao", 0.75)
    assert mon.next()["value"] == 0.75
    mon.destroy()


def test_flow_controlled_monitor_holds_updates_until_acked_then_sends_the_newest(client):
    ca_put("ao", 0.0)
    mon = client.monitor(P + "ao", pipeline=True, queue_size=2)
    mon.start()
    assert mon.next()["value"] == 0.0
    values = [k * 0.25 for k in range(1, 21)]          # within the record's drive limits (+-10)
    for value in values:
        ca_put("ao", value)
    assert client.get(P + "ao")["value"] == values[-1]  # and a round trip: the updates for the puts are on their way
    before_ack = mon.received()
    assert len(before_ack) <= 1, "more updates than the client's window of 2"
    mon.ack(2)
    updates = before_ack
    while mon.value["value"] != values[-1]:
        updates.append(mon.next())
        mon.ack(1)
    assert len(updates) < len(values), "the slow client was sent every intermediate value"
    assert [u["value"] for u in updates] == sorted(u["value"] for u in updates)
    mon.destroy()


# ------------------------------------------------------------------------------------------ encodings

def test_segmented_messages_are_reassembled(server):
    with server.client(segment_size=16) as client:                          # a GET INIT in 5 segments
        assert client.get(P + "ai", "field(value,alarm,timeStamp,display)").marked("display.units")
        client.segment_size = 1000
        ramp = np.linspace(5.0, 6.0, 20000)                                # a 160 kB put in 161 segments
        assert client.put(P + "big", {"value": ramp}).ok
        assert np.array_equal(pv("big").get(count=len(ramp)), ramp)


def test_big_endian_client_and_introspection_cache_are_understood(server):
    with server.client(order=">", type_cache=True, auth=("ca", USER)) as client:
        assert client.put(P + "ao", {"value": -7.25}).ok          # the request structures come as cache keys
        assert client.get(P + "ao", "field(value)")["value"] == -7.25
        assert client.get(P + "ao", "field(value)")["value"] == -7.25     # the same pvRequest: 0xFE key only
        assert pv("ao").get() == pytest.approx(-7.25)
        assert client.get(P + "chars")["value"].dtype == np.int8


# ------------------------------------------------------------------------------------------ access security

def test_a_write_refused_over_ca_is_refused_over_pva_for_the_same_user(server):
    assert not pv("locked").write_access                                   # CA: our user may not write it
    for auth in (None, ("ca", USER)):
        with server.client(auth=auth) as client:
            status = client.put(P + "locked", {"value": 31.0})
            assert not status.ok and status.type >= ERROR, auth
            assert client.get(P + "locked")["value"] == 3.0
    assert pv("locked").get() == 3.0
    with server.client(auth=("ca", "someone_else")) as client:             # the user the rule names
        assert client.put(P + "locked", {"value": 32.0}).ok
    assert pv("locked").get() == 32.0
    # the host is where the connection comes from, not what the client claims: HOSTLOCKED is writable for our
    # user only from some.other.host, and a client claiming to be there is still refused
    with server.client(auth=("ca", USER, "some.other.host")) as client:
        assert not client.put(P + "hostlocked", {"value": 40.0}).ok
    assert pv("hostlocked").get() == 4.0
    with server.client(auth=("ca", "", "")) as client:                      # as pvxs clients send "ca"
        assert client.get(P + "locked")["value"] == 32.0
        assert not client.put(P + "locked", {"value": 33.0}).ok


# ------------------------------------------------------------------------------------------ malformed input

def closed_by_server(sock, timeout=10.0):
    """Whether the server closes sock within timeout (whatever it sends first)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False
    return True


@pytest.mark.parametrize("garbage", [
    b"\x00\x02\x00\x07\x04\x00\x00\x00abcd",                                  # bad magic
    header(CMD_CREATE_CHANNEL, 0x7FFFFFF0, "<"),                              # oversized message
    header(CMD_CREATE_CHANNEL, 6, "<") + struct.pack("<HI", 5, 1),            # 5 names announced, none there
])
def test_a_malformed_message_closes_only_that_connection(server, client, garbage):
    ca_put("ao", 1.25)
    bad = server.client()
    bad.get(P + "ai")
    bad.sock.sendall(garbage)
    assert closed_by_server(bad.sock), "the connection that sent garbage is still open after 10 s"
    bad.close()
    assert client.get(P + "ao")["value"] == 1.25              # an established client keeps working
    with server.client() as fresh:                             # and new ones connect
        assert fresh.get(P + "ai")["value"] == pytest.approx(pv("ai").get())
    assert server.ioc.proc.poll() is None
    assert math.isfinite(pv("ao").get())
