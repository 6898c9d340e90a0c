"""tests/ca_status.py -- a put with completion through the real libca that tells how it completed.

pyepics' PV.put(wait=True) returns once the put completed but drops the completion status, so a failed
WRITE_NOTIFY (ECA_PUTFAIL) looks like success. start_put() calls libca's ca_array_put_callback itself and
keeps the status libca reports:

    put = start_put("IOC:samx", 8.0)
    ... (the move runs)
    assert put.wait(10) == ECA_PUTFAIL
"""
import threading

from epics import ca, dbr

ECA_NORMAL = 1
ECA_PUTFAIL = 160


class PendingPut:
    def __init__(self):
        self.status = None
        self.done = threading.Event()
        self.callback = dbr.make_callback(self._on_done, dbr.event_handler_args)   # kept alive with the put

    def _on_done(self, args):
        self.status = args.status
        self.done.set()

    def wait(self, timeout=30.0):
        """The ECA status of the completion, or None when it did not complete within timeout."""
        deadline_step = 0.05
        waited = 0.0
        while not self.done.is_set() and waited < timeout:
            ca.poll(evt=deadline_step)
            waited += deadline_step
        return self.status


def start_put(name, value, ftype=None):
    """Starts a put with completion of one number, or a list of numbers to an array channel, sent as the
    channel's native type or as ftype (e.g. dbr.DOUBLE: a NaN to an integer field); returns a PendingPut."""
    chid = ca.create_channel(name, connect=True)
    assert ca.connect_channel(chid, timeout=5.0), f"{name} did not connect"
    if ftype is None:
        ftype = ca.field_type(chid)
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    data = (len(values) * dbr.Map[ftype])(*values)
    pending = PendingPut()
    status = ca.libca.ca_array_put_callback(ftype, len(values), chid, data, pending.callback, None)
    assert status == ECA_NORMAL, f"ca_array_put_callback refused: {status}"
    ca.flush_io()
    return pending


def put_status(name, value, timeout=30.0, ftype=None):
    """A put with completion that waits for it; returns the ECA status."""
    return start_put(name, value, ftype).wait(timeout)
