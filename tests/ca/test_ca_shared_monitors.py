"""Monitors of one array watched by several clients: every subscriber of the same type gets the same, correct
update for each post (one encoding shared by all of them), each under its own subscription id; a subscriber
of another type gets its own conversion; a new subscriber's first value is the record's current one, even
when the last post was suppressed by a deadband. Raw circuits (tests/ca/ca_raw.py) read the bytes."""
import os
import struct

import numpy as np
import pytest

import ioc as ioc_module
from ca_raw import EVENT_ADD, WRITE_NOTIFY, Circuit, message
from ca_records import st_cmd

NELM = 100000
RECORDS = f"""
record(waveform, "SM:wf") {{ field(FTVL, "USHORT") field(NELM, "{NELM}") }}
record(ao, "SM:ao") {{ field(MDEL, "10") }}
"""
DBR_LONG, DBR_DOUBLE, DBR_TIME_LONG = 5, 6, 19
MASK = struct.pack(">fffHH", 0, 0, 0, 1 | 4, 0)      # DBE_VALUE | DBE_ALARM


@pytest.fixture(scope="module")
def ioc(tmp_path_factory):
    work = tmp_path_factory.mktemp("ca_shared")
    (work / "sm.db").write_text(RECORDS)
    port = ioc_module.free_port()
    server = ioc_module.Ioc(st_cmd(work / "sm.db"), work, env=ioc_module.server_env(port, ioc_module.free_port()))
    server.port = port
    server.start()
    yield server
    code = server.stop()
    server.check_sanitizers()
    assert code == 0, server.log()[-4000:]


def subscribe(port, name, dtype, subid):
    c = Circuit(port)
    reply, _ = c.create(name, 1)
    sid = reply[4]
    c.send(message(EVENT_ADD, dtype, 0, sid, subid, MASK))
    first, _ = c.expect(EVENT_ADD)
    assert first[3] == 1 and first[4] == subid, first          # ECA_NORMAL, our subscription id
    return c, sid, first


def put_array(c, sid, values):
    c.send(message(WRITE_NOTIFY, DBR_LONG, len(values), sid, 7, np.asarray(values, ">i4").tobytes()))
    done, _ = c.expect(WRITE_NOTIFY)
    assert done[3] == 1, done


def test_every_subscriber_gets_the_same_update_under_its_own_id(ioc):
    subs = [subscribe(ioc.port, "SM:wf", DBR_LONG, 100 + k) for k in range(3)]
    other, _, _ = subscribe(ioc.port, "SM:wf", DBR_DOUBLE, 200)
    writer, wsid, _ = subscribe(ioc.port, "SM:wf", DBR_TIME_LONG, 300)
    rng = np.random.default_rng(1)
    for _ in range(3):
        values = rng.integers(0, 65536, NELM)
        put_array(writer, wsid, values)
        for k, (c, _, _) in enumerate(subs):
            update, _ = c.expect(EVENT_ADD)
            assert update[4] == 100 + k and update[3] == 1 and update[2] == NELM
            assert np.array_equal(np.frombuffer(update[5][:4 * NELM], ">i4"), values)
        update, _ = other.expect(EVENT_ADD)
        assert update[4] == 200
        assert np.array_equal(np.frombuffer(update[5][:8 * NELM], ">f8"), values.astype(float))
    for c, _, _ in subs:
        c.close()
    other.close()
    writer.close()


def test_a_new_subscriber_gets_the_current_value_not_the_last_posted(ioc):
    a, sid, first = subscribe(ioc.port, "SM:ao", DBR_DOUBLE, 1)
    for value in (100.0, 105.0):          # the second change is within MDEL: no post
        a.send(message(WRITE_NOTIFY, DBR_DOUBLE, 1, sid, 9, struct.pack(">d", value)))
        a.expect(WRITE_NOTIFY)
    b, _, first_b = subscribe(ioc.port, "SM:ao", DBR_DOUBLE, 2)
    assert struct.unpack(">d", first_b[5][:8])[0] == 105.0
    a.close()
    b.close()
