"""The test client's PVData codec (tests/pva/pvaclient.py) against byte sequences the specification gives and
that were seen on the wire between upstream EPICS 7 tools (shared/reference/pva-facts.md): the server tests are
only as good as the client that reads the server's answers, so the client is checked first, without a server."""
import math
import struct

import numpy as np
import pytest

from pvaclient import (ANY, STRING, STRUCT, UNION, Reader, Type, Writer, header, pv_request, scalar,
                       struct_type)


def h(text):
    """Hex text (spaces allowed) and "quoted" ASCII runs -> bytes."""
    out, parts = b"", text.split('"')
    for i, part in enumerate(parts):
        out += part.encode() if i % 2 else bytes.fromhex(part)
    return out


def ascii_string(text):
    return bytes([len(text)]) + text.encode()


ALARM = struct_type("alarm_t", severity=scalar("int"), status=scalar("int"), message=scalar("string"))
TIME = struct_type("time_t", secondsPastEpoch=scalar("long"), nanoseconds=scalar("int"), userTag=scalar("int"))
ENUM = struct_type("enum_t", index=scalar("int"), choices=scalar("string", array=True))
NT_ENUM = struct_type("epics:nt/NTEnum:1.0", value=ENUM, alarm=ALARM, timeStamp=TIME,
                      display=struct_type(description=scalar("string")))


def test_sizes_use_one_byte_then_254_and_an_int32_and_255_is_null():
    for order in "<>":
        for n in (0, 1, 253, 254, 300, 70000):
            w = Writer(order).size(n)
            assert Reader(w.bytes(), order).size() == n
    assert Writer("<").size(300).bytes() == h("fe 2c 01 00 00")
    assert Writer("<").size(253).bytes() == h("fd")
    assert Reader(h("ff"), "<").size() is None
    assert Reader(h("fe ff ff ff 7f 00 00 00 80 00 00 00 00"), "<").size() == 2 ** 31   # the 64-bit form


def test_strings_have_no_terminator_and_the_empty_string_is_one_byte():
    assert Writer("<").string("T:ai").bytes() == h('04 "T:ai"')
    assert Writer("<").string("").bytes() == h("00")
    assert Reader(h('04 "T:ai" 00'), ">").string() == "T:ai"


def test_status_ok_is_one_byte_and_errors_carry_message_and_stack():
    assert Reader(h("ff"), "<").status().ok
    denied = Reader(h('02 11 "Put not permitted" 00'), "<").status()
    assert (denied.ok, denied.type, denied.message, denied.stack) == (False, 2, "Put not permitted", "")
    assert Reader(h('01 04 "slow" 00'), "<").status().ok          # a warning is a success


def test_bitsets_number_bits_lsb_first_and_big_endian_swaps_whole_words():
    bits = Reader(h("04 ba fb 36 1e"), "<").bitset()
    assert [i for i in range(40) if bits >> i & 1] == [1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 15, 17, 18, 20, 21,
                                                       25, 26, 27, 28]
    assert Reader(h("00"), "<").bitset() == 0
    wide = (1 << 0) | (1 << 9) | (1 << 70)
    assert Writer("<").bitset(wide).bytes() == h("09 01 02 00 00 00 00 00 00 40")
    assert Writer(">").bitset(wide).bytes() == h("09 00 00 00 00 00 00 02 01 40")
    for order in "<>":
        assert Reader(Writer(order).bitset(wide).bytes(), order).bitset() == wide


def test_empty_pv_request_and_field_selection_match_what_the_upstream_tools_send():
    t, v = pv_request("")
    assert Writer("<").type(t).value(t, v).bytes() == h('80 00 01 05 "field" 80 00 00')
    t, v = pv_request("field(value)")
    assert Writer("<").type(t).bytes() == h('80 00 01 05 "field" 80 00 01 05 "value" 80 00 00')
    t, v = pv_request("field(value,alarm.severity)record[block=true,process=true]")
    assert t["field.alarm.severity"].code == STRUCT
    assert v["record"]["_options"] == {"block": "true", "process": "true"}
    data = Writer(">").type(t).value(t, v).bytes()
    r = Reader(data, ">")
    assert r.value(r.type()) == v and r.remaining() == 0


def test_pipelined_monitor_request_bytes_match_the_wire_example():
    t = Type(STRUCT, "", [("field", Type(STRUCT)), ("record", struct_type(_options=struct_type(
        pipeline=Type(STRING), queueSize=Type(STRING))))])
    expected = h('80 00 02 05 "field" 80 00 00 06 "record" 80 00 01 08 "_options" 80 00 02 08 "pipeline" 60'
                 '09 "queueSize" 60 04 "true" 01 "4"')
    assert Writer("<").type(t).value(t, {"record": {"_options": {"pipeline": "true", "queueSize": "4"}}}).bytes() \
        == expected


def test_put_of_a_double_matches_the_wire_example():
    nt = struct_type("epics:nt/NTScalar:1.0", value=scalar("double"), alarm=ALARM)
    w = Writer("<").pack("IIB", 0x07050301, 0x10002000, 0).bitset(1 << nt.bit("value")).value(nt["value"], 3.5)
    assert header(0x0B, len(w.bytes()), "<") + w.bytes() == h(
        "ca 02 00 0b 13 00 00 00 01 03 05 07 00 20 00 10 00 01 02 00 00 00 00 00 00 0c 40")


def test_field_numbering_is_depth_first_as_in_the_ntenum_example():
    assert [NT_ENUM.bit(p) for p in ("value", "value.index", "value.choices", "alarm", "alarm.message",
                                     "timeStamp", "timeStamp.userTag", "display", "display.description")] == \
        [1, 2, 3, 4, 7, 8, 11, 12, 13]
    assert NT_ENUM.nfields == 14


def test_partial_values_read_only_marked_fields_and_a_marked_structure_brings_all_of_it():
    for order in "<>":
        w = Writer(order)
        bits = 1 << NT_ENUM.bit("value.index") | 1 << NT_ENUM.bit("timeStamp")
        w.bitset(bits).pack("i", 2).pack("qii", 1700000000, 5, 7)
        value = NT_ENUM.default()
        value["alarm"]["message"] = "kept"
        r = Reader(w.bytes(), order)
        r.partial(NT_ENUM, r.bitset(), value)
        assert r.remaining() == 0
        assert value["value"]["index"] == 2 and value["alarm"]["message"] == "kept"
        assert value["timeStamp"] == {"secondsPastEpoch": 1700000000, "nanoseconds": 5, "userTag": 7}


def test_ntscalar_descriptor_from_the_wire_decodes():
    data = h('80 15 "epics:nt/NTScalar:1.0" 02 05 "value" 43'
             '05 "alarm" 80 07 "alarm_t" 03 08 "severity" 22 06 "status" 22 07 "message" 60')
    t = Reader(data, "<").type()
    assert t.id == "epics:nt/NTScalar:1.0" and t.names() == ["value", "alarm"]
    assert t["alarm"] == ALARM and t["value"].code == 0x43


def test_type_cache_defines_once_and_reuses_the_key_on_both_sides():
    cache_out, cache_in = {}, {}
    w = Writer("<", cache_out)
    w.type(NT_ENUM).type(NT_ENUM).type(scalar("double"))
    data = w.bytes()
    assert data[0] == 0xFD and data[-4] == 0xFE and data[-1] == 0x43   # define, reuse (key 2 bytes), plain double
    r = Reader(data, "<", cache_in)
    assert r.type() == NT_ENUM and r.type() == NT_ENUM and r.type() == scalar("double")
    with pytest.raises(Exception, match="cache key"):
        Reader(h("fe 07 00"), "<", {}).type()


def test_unions_variants_and_structure_arrays_round_trip_in_both_orders():
    value_union = Type(UNION, "", [(n + "Value", scalar(n, array=True)) for n in ("byte", "short", "ushort",
                                                                                  "double")])
    attribute = struct_type("epics:nt/NTAttribute:1.0", name=scalar("string"), value=Type(ANY))
    t = struct_type("epics:nt/NTNDArray:1.0", value=value_union, attribute=Type(STRUCT | 0x08, element=attribute),
                    choice=Type(UNION, "", [("a", scalar("int")), ("b", scalar("string"))]))
    pixels = np.arange(300, dtype=np.uint16) * 200
    value = {"value": ("ushortValue", pixels),
             "attribute": [{"name": "X", "value": (scalar("double"), 1.25)}, None,
                           {"name": "Empty", "value": None}],
             "choice": None}
    for order in "<>":
        data = Writer(order).type(t).value(t, value).bytes()
        r = Reader(data, order)
        back = r.value(r.type())
        assert r.remaining() == 0
        assert back["value"][0] == "ushortValue" and np.array_equal(back["value"][1], pixels)
        assert back["attribute"][0]["value"] == (scalar("double"), 1.25) and back["attribute"][1] is None
        assert back["attribute"][2]["value"] is None and back["choice"] is None
    # the array value of a union in LE: selector 2, size 300 in the long form, then the uint16 words
    data = Writer("<").value(value_union, ("ushortValue", pixels[:2])).bytes()
    assert data == h("02 02 00 00 c8 00")


def test_variant_and_scalar_encodings_match_the_wire_examples():
    assert Reader(h("25 00 00"), "<").value(Type(ANY)) == (scalar("ushort"), 0)
    nan = Reader(h("00 00 00 00 00 00 f8 7f"), "<").value(scalar("double"))
    assert math.isnan(nan)
    assert Writer(">").value(scalar("double"), 1.5).bytes() == struct.pack(">d", 1.5)
    strings = Writer("<").value(scalar("string", array=True), ["Default", "String"]).bytes()
    assert strings == h('02 07 "Default" 06 "String"')
