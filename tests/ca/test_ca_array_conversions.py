"""Array values over CA for every pair of waveform element type (FTVL) and numeric DBR type, both ways: what the
bulk conversion path (one typed loop per pair, byte order swapped on the wire) gives must be what the
per-element rules say -- integers truncated toward zero and clamped into the destination's range, floating point
cast -- in big-endian order, for a length that is no multiple of any vector width, with the requested count
honoured (fewer elements: the first ones; more than NORD: zeros after them). Raw circuits read the bytes."""
import os

import numpy as np

from ca_raw import ERROR, READ_NOTIFY, WRITE_NOTIFY, Circuit, message
from ca_records import st_cmd

FTVLS = {"CHAR": "i1", "UCHAR": "u1", "SHORT": "i2", "USHORT": "u2", "LONG": "i4", "ULONG": "u4",
         "FLOAT": "f4", "DOUBLE": "f8"}
DBRS = {1: "i2", 2: "f4", 3: "u2", 4: "u1", 5: "i4", 6: "f8"}     # SHORT FLOAT ENUM CHAR LONG DOUBLE
DBR_DOUBLE = 6
SAMPLE = [0, 1, -1, 3.7, -3.7, 0.5, 100, -100, 127, 128, -129, 255, 256, 32767, 32768, -32769, 65535, 65536,
          2147483647, -2147483648, 4294967295, 1e10, -1e10]
NELM = 1000
NORD = 999                                   # an odd length: every loop runs its vector body and its tail
VALUES = np.resize(np.array(SAMPLE, float), NORD)


def convert(values, dtype):
    """The conversion rules, element by element: floating point cast, integers truncated and clamped."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return values.astype(dtype)
    info = np.iinfo(dtype)
    values = np.where(np.isnan(values), 0, values.astype(float))          # a read gives NaN as 0
    return np.clip(np.trunc(values), info.min, info.max).astype(dtype)


def put(c, sid, dbr, values):
    c.send(message(WRITE_NOTIFY, dbr, len(values), sid, 9, np.asarray(values, ">" + DBRS[dbr]).tobytes()))
    done, seen = c.expect(WRITE_NOTIFY)
    assert done[3] == 1 and not [m for m in seen if m[0] == ERROR], seen


def read(c, sid, dbr, count):
    reply = c.read(sid, dbr, count)
    assert reply[0] == READ_NOTIFY and reply[3] == 1, reply[:5]
    dtype = np.dtype(">" + DBRS[dbr])
    return np.frombuffer(reply[5][:reply[2] * dtype.itemsize], dtype)


def test_every_element_type_to_every_dbr_type_and_back(start_ioc, tmp_path):
    db = tmp_path / "conv.db"
    db.write_text("".join(f'record(waveform, "CV:{t}") {{ field(FTVL, "{t}") field(NELM, "{NELM}") }}\n'
                          for t in FTVLS))
    start_ioc(st_cmd(db))
    c = Circuit(int(os.environ["EPICS_CA_SERVER_PORT"]))
    for k, (ftvl, field) in enumerate(FTVLS.items()):
        reply, _ = c.create(f"CV:{ftvl}", k + 1)
        sid = reply[4]
        put(c, sid, DBR_DOUBLE, VALUES)                          # the field keeps its type's values
        stored = convert(VALUES, field)
        for dbr, wire in DBRS.items():
            want = convert(stored, wire)
            got = read(c, sid, dbr, 0)                          # count 0: the current length
            assert np.array_equal(got, want, equal_nan=True), (ftvl, dbr, got[:8], want[:8])
            assert np.array_equal(read(c, sid, dbr, 7), want[:7]), (ftvl, dbr)
            longer = read(c, sid, dbr, NORD + 1)                # past NORD: zeros
            assert np.array_equal(longer[:NORD], want) and longer[NORD] == 0, (ftvl, dbr)
        for dbr, wire in DBRS.items():                          # puts of every type into this field
            sent = convert(VALUES, wire)
            put(c, sid, dbr, sent)
            want = convert(convert(sent, field), "f8")
            assert np.array_equal(read(c, sid, DBR_DOUBLE, 0), want), (ftvl, dbr)
            put(c, sid, dbr, sent[:5])                          # a shorter put sets the length
            assert np.array_equal(read(c, sid, DBR_DOUBLE, 0), want[:5]), (ftvl, dbr)
        if field.startswith("f"):                               # NaN and infinities read as any type
            odd = np.resize([np.nan, np.inf, -np.inf, 2.5, -2.5], NORD)
            put(c, sid, DBR_DOUBLE, odd)
            for dbr, wire in DBRS.items():
                want = convert(convert(odd, field), wire)
                assert np.array_equal(read(c, sid, dbr, 0), want, equal_nan=True), (ftvl, dbr)
    c.close()
