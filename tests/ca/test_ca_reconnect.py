"""A client sees its channels disconnect when the IOC stops and reconnect by themselves when it restarts
(pyepics, real libca; beacons reach it through the CA repeater of tests/ca/conftest.py)."""
import epics

from ca_records import records_db, st_cmd
from ioc import wait_for


def test_disconnect_and_reconnect_when_ioc_restarts(start_ioc, tmp_path):
    db = tmp_path / "cat.db"
    db.write_text(records_db(prefix="RC:"))
    first = start_ioc(st_cmd(db))
    events = []
    pv = epics.PV("RC:long", connection_callback=lambda conn=None, **kw: events.append(conn))
    assert pv.wait_for_connection(5)
    assert pv.get() == 42
    assert first.stop() == 0
    wait_for(lambda: False in events, 10, "the disconnect")
    start_ioc(st_cmd(db))
    wait_for(lambda: events and events[-1] is True, 30, "the reconnect")
    assert pv.get(use_monitor=False) == 42
    pv.disconnect()
