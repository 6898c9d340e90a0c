"""tests/pva/pvaclient.py -- a small, independent pvAccess client for the tests.

Written from the pvAccess protocol specification (message layouts, PVData serialization; summarised in
shared/reference/pva-facts.md). It imports nothing from src/ and shares no code with the server, so a test that
passes shows the server speaks what another reader of the specification expects. One connection, one thread:
every call sends its request and reads messages until its reply arrives (other replies wait in an inbox).

    hosts = search(["P:ai"], udp_port)              # UDP unicast search on loopback -> {name: (host, tcp port)}
    with Client(tcp_port, auth=("ca", "alice")) as c:
        c.get_field("P:ai")                          # Type (introspection)
        d = c.get("P:ai", "field(value,alarm)")      # Data: d["value"], d["alarm.severity"], d.type, d.changed
        c.put("P:ao", {"value": 2.5}, "record[block=true]")   # -> Status
        m = c.monitor("P:ai", pipeline=True, queue_size=4); m.start(); m.next(); m.ack(2)

Values: structures are dicts, scalar arrays numpy arrays (string arrays lists), a union is (member name, value)
or None, a variant ("any") is (Type, value) or None, structure/union arrays are lists (None for null elements).
"""
import collections
import itertools
import os
import re
import socket
import struct
import time

import numpy as np

MAGIC, VERSION = 0xCA, 2
FLAG_CONTROL, FLAG_SERVER, FLAG_BIG_ENDIAN, FLAG_SEGMENT = 0x01, 0x40, 0x80, 0x30
SEGMENT_FIRST, SEGMENT_LAST, SEGMENT_MIDDLE = 0x10, 0x20, 0x30
CTRL_SET_BYTE_ORDER = 0x02
(CMD_BEACON, CMD_VALIDATION, CMD_ECHO, CMD_SEARCH, CMD_SEARCH_RESPONSE, CMD_CREATE_CHANNEL, CMD_DESTROY_CHANNEL,
 CMD_VALIDATED, CMD_GET, CMD_PUT, CMD_MONITOR, CMD_DESTROY_REQUEST, CMD_PROCESS, CMD_GET_FIELD, CMD_MESSAGE) = (
    0x00, 0x01, 0x02, 0x03, 0x04, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0D, 0x0F, 0x10, 0x11, 0x12)
SUB_INIT, SUB_DESTROY, SUB_GET, SUB_PIPELINE, SUB_START = 0x08, 0x10, 0x40, 0x80, 0x04
OK, WARNING, ERROR, FATAL = 0, 1, 2, 3

# type codes (introspection): scalar code -> struct/numpy format character; arrays are code | 0x08
SCALARS = {0x00: "?", 0x20: "b", 0x21: "h", 0x22: "i", 0x23: "q", 0x24: "B", 0x25: "H", 0x26: "I", 0x27: "Q",
           0x42: "f", 0x43: "d"}
STRING, STRUCT, UNION, ANY = 0x60, 0x80, 0x81, 0x82
ARRAY = 0x08
LARGE_PAYLOAD = 65536        # bytes: a longer message payload is received into a buffer of its own
NULL_TYPE, CACHE_DEFINE, CACHE_REUSE = 0xFF, 0xFD, 0xFE
SCALAR_NAMES = {"boolean": 0x00, "byte": 0x20, "short": 0x21, "int": 0x22, "long": 0x23, "ubyte": 0x24,
                "ushort": 0x25, "uint": 0x26, "ulong": 0x27, "float": 0x42, "double": 0x43, "string": STRING}


class ProtocolError(Exception):
    """The peer sent something the specification does not allow (or the connection ended)."""


class PvaError(Exception):
    """An operation answered with an error status."""

    def __init__(self, what, status):
        super().__init__(f"{what}: {status}")
        self.status = status


class Status(collections.namedtuple("Status", "type message stack")):
    @property
    def ok(self):
        return self.type in (OK, WARNING)

    def __str__(self):
        return f"{['OK', 'WARNING', 'ERROR', 'FATAL'][self.type]} {self.message!r}" if self.type <= 3 else "?"


STATUS_OK = Status(OK, "", "")


# ---------------------------------------------------------------------------------------------------- types

class Type:
    """A pvData type descriptor: code, id (structures and unions), members [(name, Type)] (structures and
    unions) or element (arrays of structures/unions)."""

    def __init__(self, code, id="", members=(), element=None):
        self.code, self.id, self.members, self.element = code, id, list(members), element
        self.nfields = 1 + sum(t.nfields for _, t in self.members) if code == STRUCT else 1

    def member(self, name):
        for member_name, t in self.members:
            if member_name == name:
                return t
        raise KeyError(name)

    def __getitem__(self, path):
        t = self
        for part in path.split(".") if path else []:
            t = t.member(part)
        return t

    def names(self):
        return [name for name, _ in self.members]

    def bit(self, path):
        """Bit number of a field in bitsets: nodes numbered depth first, the root 0."""
        t, bit = self, 0
        for part in path.split(".") if path else []:
            bit += 1
            for name, mt in t.members:
                if name == part:
                    t = mt
                    break
                bit += mt.nfields
            else:
                raise KeyError(path)
        return bit

    def default(self):
        if self.code == STRUCT:
            return {name: t.default() for name, t in self.members}
        if self.code == STRING:
            return ""
        if self.code in SCALARS:
            return {"?": False, "f": 0.0, "d": 0.0}.get(SCALARS[self.code], 0)
        if self.code == STRING | ARRAY or self.code >= STRUCT | ARRAY:
            return []
        if self.code & ARRAY:
            return np.zeros(0, SCALARS[self.code & ~ARRAY])
        return None                      # union, any

    def __eq__(self, other):
        return isinstance(other, Type) and (self.code, self.id, self.members, self.element) == (
            other.code, other.id, other.members, other.element)

    def __repr__(self):
        if self.code in (STRUCT, UNION):
            inner = ", ".join(f"{n}: {t!r}" for n, t in self.members)
            return f"{'struct' if self.code == STRUCT else 'union'} {self.id}{{{inner}}}"
        if self.element is not None:
            return f"{self.element!r}[]"
        names = {v: k for k, v in SCALAR_NAMES.items()}
        return names.get(self.code & ~ARRAY, "any") + ("[]" if self.code & ARRAY else "")


def struct_type(id="", **members):
    return Type(STRUCT, id, members.items())


def scalar(name, array=False):
    return Type(SCALAR_NAMES[name] | (ARRAY if array else 0))


# ---------------------------------------------------------------------------------------------------- decoding

class Reader:
    """Decodes one message payload; order is '<' or '>' (from the header's flag bit 7), types the connection's
    receive-side introspection cache (key -> Type)."""

    def __init__(self, data, order, types=None):
        self.data, self.order, self.types, self.pos = memoryview(data), order, types if types is not None else {}, 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError(f"message too short: {n} bytes wanted at {self.pos} of {len(self.data)}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def remaining(self):
        return len(self.data) - self.pos

    def end(self):
        """A reply must be exactly what its type says: bytes left over mean the type and the value disagree."""
        if self.remaining():
            raise ProtocolError(f"{self.remaining()} bytes left after the value ({len(self.data)} in all)")

    def unpack(self, fmt):
        fmt = self.order + fmt
        values = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
        return values[0] if len(values) == 1 else values

    def u8(self):
        return self.unpack("B")

    def u32(self):
        return self.unpack("I")

    def size(self):
        """A Size: one byte below 254, 254 + int32 (+ int64 when the int32 is 2^31-1); 255 means null (None)."""
        first = self.u8()
        if first == 0xFF:
            return None
        if first < 0xFE:
            return first
        n = self.unpack("i")
        return self.unpack("q") if n == 0x7FFFFFFF else n

    def string(self):
        n = self.size()
        return "" if n is None else bytes(self.take(n)).decode("utf-8")

    def status(self):
        kind = self.u8()
        if kind == 0xFF:
            return STATUS_OK
        return Status(kind, self.string(), self.string())

    def bitset(self):
        """A BitSet as a Python int (bit i = field i). Whole 8-byte groups are 64-bit words in message order."""
        raw = bytes(self.take(self.size() or 0))
        if self.order == ">":
            whole = len(raw) // 8 * 8
            raw = b"".join(raw[i:i + 8][::-1] for i in range(0, whole, 8)) + raw[whole:]
        return int.from_bytes(raw, "little")

    def type(self):
        code = self.u8()
        if code == CACHE_DEFINE:
            key = self.unpack("h")
            self.types[key] = self.type()
            return self.types[key]
        if code == CACHE_REUSE:
            key = self.unpack("h")
            if key not in self.types:
                raise ProtocolError(f"type cache key {key} used before it was defined")
            return self.types[key]
        if code == NULL_TYPE:
            return None
        if code in (STRUCT, UNION):
            id, n = self.string(), self.size()
            return Type(code, id, [(self.string(), self.type()) for _ in range(n or 0)])
        if code in (STRUCT | ARRAY, UNION | ARRAY):
            return Type(code, element=self.type())
        if code in (ANY, ANY | ARRAY, STRING, STRING | ARRAY) or code & ~ARRAY in SCALARS:
            return Type(code)
        raise ProtocolError(f"type code {code:#04x} is not used by EPICS 7 (bounded/fixed or unknown)")

    def value(self, t):
        """A full value of type t."""
        code = t.code
        if code == STRUCT:
            return {name: self.value(mt) for name, mt in t.members}
        if code == STRING:
            return self.string()
        if code in SCALARS:
            return self.unpack(SCALARS[code])
        if code == UNION:
            selector = self.size()
            if selector is None:
                return None
            if selector >= len(t.members):
                raise ProtocolError(f"union selector {selector} out of {len(t.members)} members")
            name, mt = t.members[selector]
            return name, self.value(mt)
        if code == ANY:
            vt = self.type()
            return None if vt is None else (vt, self.value(vt))
        n = self.size() or 0
        if code == STRING | ARRAY:
            return [self.string() for _ in range(n)]
        if code & ~ARRAY in SCALARS:
            # A view of the message (each message has its own buffer) when its order is the host's, a converted
            # copy otherwise; read-only either way, so that the snapshots of a monitor can share it.
            dtype = np.dtype(SCALARS[code & ~ARRAY]).newbyteorder(self.order)
            array = np.frombuffer(self.take(n * dtype.itemsize), dtype)
            if not dtype.isnative:
                array = array.astype(dtype.newbyteorder("="))
            array.flags.writeable = False
            return array
        element = t.element if t.element is not None else Type(ANY)
        return [self.value(element) if self.u8() else None for _ in range(n)]

    def partial(self, t, bits, into):
        """Reads the fields marked in bits (in bit order) into the structure value into (a dict of type t): a
        marked node brings its whole sub-tree, an unmarked structure is searched for marked descendants."""
        def walk(mt, bit, holder, key):
            if bits >> bit & 1:
                holder[key] = self.value(mt)
            elif mt.code == STRUCT and bits >> bit & ((1 << mt.nfields) - 1):
                child = bit + 1
                for name, ct in mt.members:
                    walk(ct, child, holder[key], name)
                    child += ct.nfields
        root = {"": into}
        walk(t, 0, root, "")
        return root[""]


# ---------------------------------------------------------------------------------------------------- encoding

class Writer:
    """Builds one message payload in byte order order ('<' or '>'); types, if given, is the connection's
    send-side introspection cache (descriptor bytes -> key): structures are then sent once as 0xFD key + descriptor
    and afterwards as 0xFE key."""

    def __init__(self, order, types=None):
        self.order, self.types, self.parts = order, types, []

    def bytes(self):
        return b"".join(self.parts)

    def raw(self, data):
        self.parts.append(bytes(data))
        return self

    def pack(self, fmt, *values):
        return self.raw(struct.pack(self.order + fmt, *values))

    def size(self, n):
        if n is None:
            return self.raw(b"\xff")
        return self.pack("B", n) if n < 0xFE else self.pack("Bi", 0xFE, n)

    def string(self, text):
        data = text.encode("utf-8")
        return self.size(len(data)).raw(data)

    def bitset(self, bits):
        raw = bits.to_bytes((bits.bit_length() + 7) // 8, "little")
        if self.order == ">":
            whole = len(raw) // 8 * 8
            raw = b"".join(raw[i:i + 8][::-1] for i in range(0, whole, 8)) + raw[whole:]
        return self.size(len(raw)).raw(raw)

    def type(self, t):
        if t is None:
            return self.pack("B", NULL_TYPE)
        descriptor = Writer(self.order)
        descriptor._descriptor(t)
        data = descriptor.bytes()
        if self.types is None or t.code not in (STRUCT, UNION, STRUCT | ARRAY, UNION | ARRAY):
            return self.raw(data)
        if data in self.types:
            return self.pack("Bh", CACHE_REUSE, self.types[data])
        self.types[data] = len(self.types) + 1
        return self.pack("Bh", CACHE_DEFINE, self.types[data]).raw(data)

    def _descriptor(self, t):
        self.pack("B", t.code)
        if t.code in (STRUCT, UNION):
            self.string(t.id).size(len(t.members))
            for name, mt in t.members:
                self.string(name)._descriptor(mt)
        elif t.element is not None:
            self._descriptor(t.element)

    def value(self, t, v):
        code = t.code
        if code == STRUCT:
            v = v or {}
            for name, mt in t.members:
                self.value(mt, v[name] if name in v else mt.default())
        elif code == STRING:
            self.string(str(v))
        elif code in SCALARS:
            self.pack(SCALARS[code], v)
        elif code == UNION:
            if v is None:
                self.size(None)
            else:
                self.size(t.names().index(v[0])).value(t.member(v[0]), v[1])
        elif code == ANY:
            self.type(None if v is None else v[0])
            if v is not None:
                self.value(v[0], v[1])
        elif code == STRING | ARRAY:
            self.size(len(v))
            for item in v:
                self.string(item)
        elif code & ~ARRAY in SCALARS:
            data = np.asarray(v, np.dtype(SCALARS[code & ~ARRAY]).newbyteorder(self.order))
            self.size(len(data)).raw(data.tobytes())
        else:
            element = t.element if t.element is not None else Type(ANY)
            self.size(len(v))
            for item in v:
                self.pack("B", item is not None)
                if item is not None:
                    self.value(element, item)
        return self


def snapshot(value):
    """A copy of a value's structure (dicts and lists) sharing its leaves: strings, numbers and the read-only
    arrays are never changed in place, updates replace them."""
    if isinstance(value, dict):
        return {name: snapshot(v) for name, v in value.items()}
    if isinstance(value, list):
        return [snapshot(v) for v in value]
    return value


def get_path(value, path):
    for part in path.split(".") if path else []:
        value = value[part]
    return value


def pv_request(text=""):
    """The pvRequest structure (Type, value) for the text form 'field(a,b.c)record[opt=val,...]' (a bare
    'a,b' means field(a,b)); option values are sent as strings, as the command-line tools do."""
    options = {}
    record = re.search(r"record\[([^\]]*)\]", text)
    if record:
        for item in filter(None, (s.strip() for s in record.group(1).split(","))):
            key, _, val = item.partition("=")
            options[key.strip()] = val.strip()
        text = text[:record.start()] + text[record.end():]
    selection = re.search(r"field\(([^)]*)\)", text)
    names = selection.group(1) if selection else text
    tree = {}
    for name in filter(None, (s.strip() for s in names.split(","))):
        node = tree
        for part in name.split("."):
            node = node.setdefault(part, {})

    def selection_type(node):
        return Type(STRUCT, "", [(name, selection_type(sub)) for name, sub in node.items()])
    members = [("field", selection_type(tree))]
    if options:
        opts = Type(STRUCT, "", [(k, Type(STRING)) for k in options])
        members.append(("record", Type(STRUCT, "", [("_options", opts)])))
    t = Type(STRUCT, "", members)
    value = t.default()
    if options:
        value["record"]["_options"] = dict(options)
    return t, value


# ---------------------------------------------------------------------------------------------------- messages

def header(command, size, order, flags=0):
    return struct.pack(order + "BBBBI", MAGIC, VERSION, flags | (FLAG_BIG_ENDIAN if order == ">" else 0),
                       command, size)


def message(command, payload, order, flags=0):
    return header(command, len(payload), order, flags) + payload


def parse_header(data):
    magic, version, flags, command = data[:4]
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {magic:#04x}")
    order = ">" if flags & FLAG_BIG_ENDIAN else "<"
    return flags, command, struct.unpack(order + "I", data[4:8])[0], order


def ipv4_mapped(host):
    return bytes(10) + b"\xff\xff" + socket.inet_aton(host)


class Found(dict):
    replies = 0
    guids = frozenset()              # the GUIDs of the servers that replied


def search(names, udp_port, host="127.0.0.1", timeout=5.0, must_reply=False, order=">"):
    """One UDP unicast SEARCH datagram for names to host:udp_port. Returns a Found {name: (server host, tcp
    port)} of the names claimed in the first reply (and any other reply already arrived), with .replies the
    number of replies (0 if none came within timeout). must_reply sets the flag that asks a server to answer
    even when it claims none of the names."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        cids = dict(zip(itertools.count(0x1000 + os.getpid() % 1000), names))
        w = Writer(order).pack("IB3x", 0x53524348, 0x80 | (0x01 if must_reply else 0))
        w.raw(bytes(16)).pack("H", sock.getsockname()[1]).size(1).string("tcp").pack("H", len(cids))
        for cid, name in cids.items():
            w.pack("I", cid).string(name)
        sock.sendto(message(CMD_SEARCH, w.bytes(), order), (host, udp_port))
        found = Found()
        sock.settimeout(timeout)
        while True:
            try:
                data, source = sock.recvfrom(65536)
            except (socket.timeout, BlockingIOError):
                return found
            for guid, cid_list, address, port in _search_responses(data):
                found.replies += 1
                found.guids |= {guid}
                unset = address in (bytes(16), ipv4_mapped("0.0.0.0"))
                server = source[0] if unset else socket.inet_ntoa(address[12:])
                for cid in cid_list:
                    if cid in cids:
                        found.setdefault(cids[cid], (server, port))
            if found.replies:
                sock.setblocking(False)
    finally:
        sock.close()


def _search_responses(data):
    """(server GUID, claimed CIDs, 16-byte address, tcp port) for each SEARCH_RESPONSE in a datagram."""
    pos = 0
    while pos + 8 <= len(data):
        flags, command, size, order = parse_header(data[pos:pos + 8])
        r = Reader(data[pos + 8:pos + 8 + size], order)
        pos += 8 + size
        if command != CMD_SEARCH_RESPONSE or not flags & FLAG_SERVER:
            continue
        guid = bytes(r.take(12))
        r.u32()                                     # search sequence id
        address, port, protocol, found = bytes(r.take(16)), r.unpack("H"), r.string(), r.u8()
        cids = [r.u32() for _ in range(r.unpack("H"))]
        if protocol == "tcp":
            yield guid, (cids if found else []), address, port


Beacon = collections.namedtuple("Beacon", "guid flags sequence change address port protocol status")


def parse_beacons(data):
    """The BEACON messages of a datagram (the server status is decoded as a full value, None if absent)."""
    pos, beacons = 0, []
    while pos + 8 <= len(data):
        flags, command, size, order = parse_header(data[pos:pos + 8])
        r = Reader(data[pos + 8:pos + 8 + size], order)
        pos += 8 + size
        if command == CMD_BEACON and flags & FLAG_SERVER:
            guid, bflags, sequence, change = bytes(r.take(12)), r.u8(), r.u8(), r.unpack("H")
            address, port, protocol = bytes(r.take(16)), r.unpack("H"), r.string()
            status_type = r.type()
            status = None if status_type is None else r.value(status_type)
            beacons.append(Beacon(guid, bflags, sequence, change, address, port, protocol, status))
    return beacons


class Data:
    """One decoded value: type, value (dict) and changed (the bitset of the fields the server sent)."""

    def __init__(self, type, value, changed=0, overrun=0):
        self.type, self.value, self.changed, self.overrun = type, value, changed, overrun

    def __getitem__(self, path):
        return get_path(self.value, path)

    def marked(self, path):
        """Whether the server sent this field (its bit or an enclosing structure's bit is set)."""
        parts = path.split(".")
        prefixes = [".".join(parts[:i]) for i in range(len(parts) + 1)]
        return any(self.changed >> self.type.bit(prefix) & 1 for prefix in prefixes)


class Channel(collections.namedtuple("Channel", "name cid sid")):
    pass


class Client:
    """One validated TCP connection to a PVA server. auth: None (anonymous) or ("ca", user[, host]). order:
    byte order the client sends in ('<', '>'; None = the one the server announced). type_cache: send
    structure descriptors through the introspection cache (0xFD/0xFE). segment_size: send longer messages as
    segments of that many payload bytes (as pvAccessCPP does past its buffer size)."""

    def __init__(self, port, host="127.0.0.1", auth=None, order=None, timeout=10.0, type_cache=False,
                 segment_size=None):
        self.timeout, self.segment_size = timeout, segment_size
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # requests are small: no Nagle delay
        self.inbox = []                     # (command, order, payload) read but not yet asked for
        self.messages = []                  # MESSAGE (0x12) notices: (ioid, type, text)
        self.rx_types, self.tx_types = {}, ({} if type_cache else None)
        self.server_order, self.order = None, order
        self.channels = {}
        self.ids = itertools.count(1)
        self._partial, self._segments = bytearray(), b""  # received bytes not yet framed; segments so far
        self._header, self._large = None, None              # the message being received; a large payload's
                                                            # [buffer, bytes received]
        self._echoes = 0                                     # our ECHO requests not yet answered
        command, order, payload = self._receive(lambda c, o, p: c == CMD_VALIDATION)
        r = Reader(payload, order)
        self.server_buffer, self.server_registry = r.unpack("i"), r.unpack("h")
        self.auth_methods = [r.string() for _ in range(r.size() or 0)]
        if self.order is None:
            self.order = self.server_order or order
        w = self.writer().pack("ihh", 0x10000, 0x7FFF, 0)
        if auth is None:
            w.string("anonymous").type(None)
        else:
            method, user, host_name = (tuple(auth) + ("localhost",))[:3]
            t = struct_type(user=Type(STRING), host=Type(STRING))
            w.string(method).type(t).value(t, {"user": user, "host": host_name})
        self.send(CMD_VALIDATION, w)
        command, order, payload = self._receive(lambda c, o, p: c == CMD_VALIDATED)
        self.validation = Reader(payload, order).status()
        if not self.validation.ok:
            raise PvaError("connection validation", self.validation)

    # -- transport

    def writer(self):
        return Writer(self.order, self.tx_types)

    def send(self, command, writer_or_bytes):
        payload = writer_or_bytes.bytes() if isinstance(writer_or_bytes, Writer) else writer_or_bytes
        step = self.segment_size
        if not step or len(payload) <= step:
            self.sock.sendall(message(command, payload, self.order))
            return
        chunks = [payload[i:i + step] for i in range(0, len(payload), step)]
        for i, chunk in enumerate(chunks):
            flags = SEGMENT_FIRST if i == 0 else SEGMENT_LAST if i == len(chunks) - 1 else SEGMENT_MIDDLE
            self.sock.sendall(message(command, chunk, self.order, flags))

    def _fill(self, n, deadline):
        """Waits until n bytes are buffered (TimeoutError at deadline; buffered bytes are kept)."""
        while len(self._partial) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from the server")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(max(65536, n - len(self._partial)))
            except socket.timeout:
                raise TimeoutError("no reply from the server") from None
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self._partial += chunk

    def _fill_payload(self, size, deadline):
        """The payload of the message whose header starts the buffer. A large one (a camera frame) is received
        straight into a buffer of its own: one copy from the kernel, none in Python, and decoded arrays may
        keep pointing into it. That buffer is numpy's, not a bytearray: it is not zero-filled first and comes
        in huge pages, so a frame costs no memset and few page faults. A timeout keeps what was received
        (self._large) for the next call."""
        if size <= LARGE_PAYLOAD:
            self._fill(8 + size, deadline)
            payload = bytes(self._partial[8:8 + size])
            del self._partial[:8 + size]
            return payload
        if self._large is None:
            self._large = [memoryview(np.empty(size, np.uint8)), min(size, len(self._partial) - 8)]
            self._large[0][:self._large[1]] = self._partial[8:8 + self._large[1]]
            del self._partial[:8 + self._large[1]]
        payload, got = self._large
        while got < size:
            left = deadline - time.monotonic()
            if left <= 0:
                self._large[1] = got
                raise TimeoutError("no reply from the server")
            self.sock.settimeout(left)
            try:
                n = self.sock.recv_into(payload[got:])
            except socket.timeout:
                self._large[1] = got
                raise TimeoutError("no reply from the server") from None
            if not n:
                raise ConnectionError("the server closed the connection")
            got += n
        self._large = None
        return payload

    def _read_message(self, deadline):
        """The next application message (command, order, payload); control messages, echo requests and
        segments handled here. A timeout loses nothing: bytes stay buffered until a whole message is there."""
        while True:
            if self._large is None:
                self._fill(8, deadline)
                self._header = parse_header(self._partial[:8])
            flags, command, size, order = self._header
            if not flags & FLAG_SERVER:
                raise ProtocolError(f"message {command:#04x} without the server flag")
            if flags & FLAG_CONTROL:
                del self._partial[:8]
                if command == CTRL_SET_BYTE_ORDER:
                    self.server_order = order
                continue
            payload = self._fill_payload(size, deadline)
            if flags & FLAG_SEGMENT not in (0, SEGMENT_LAST):
                self._segments += payload
                continue
            if self._segments:
                payload, self._segments = self._segments + payload, b""
            if command == CMD_ECHO and not self._echoes:       # the server checks that we are alive
                self.send(CMD_ECHO, payload)
                continue
            if command == CMD_MESSAGE:
                r = Reader(payload, order)
                self.messages.append((r.u32(), r.u8(), r.string()))
            return command, order, payload

    def _receive(self, match, timeout=None):
        """The first message (from the inbox, then the socket) for which match(command, order, payload) is
        true; others are kept in the inbox. timeout=0: only what has already arrived (None if nothing)."""
        for i, item in enumerate(self.inbox):
            if match(*item):
                return self.inbox.pop(i)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                item = self._read_message(deadline if timeout != 0 else time.monotonic() + 0.005)
            except TimeoutError:
                if timeout == 0:
                    return None
                raise
            if match(*item):
                return item
            self.inbox.append(item)

    def _reply(self, command, ident, timeout=None, subcmd=None):
        """Reader positioned after the id (CID, SID or IOID) of the next reply command for ident."""
        def match(c, order, payload):
            return (c == command and len(payload) >= 4 and struct.unpack(order + "I", payload[:4])[0] == ident
                    and (subcmd is None or len(payload) > 4 and payload[4] & subcmd == subcmd))
        item = self._receive(match, timeout)
        if item is None:
            return None
        r = Reader(item[2], item[1], self.rx_types)
        r.u32()
        return r

    def echo(self, payload=b"ping"):
        """Sends an ECHO and returns the payload of the server's answer."""
        self._echoes += 1
        self.send(CMD_ECHO, payload)
        try:
            return self._receive(lambda c, o, p: c == CMD_ECHO)[2]
        finally:
            self._echoes -= 1

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- channels

    def channel(self, name):
        if name not in self.channels:
            cid = next(self.ids)
            self.send(CMD_CREATE_CHANNEL, self.writer().pack("HI", 1, cid).string(name))
            r = self._reply(CMD_CREATE_CHANNEL, cid)
            sid, status = r.u32(), r.status()
            if not status.ok:
                raise PvaError(f"create channel {name}", status)
            self.channels[name] = Channel(name, cid, sid)
        return self.channels[name]

    def destroy_channel(self, name):
        ch = self.channels.pop(name)
        self.send(CMD_DESTROY_CHANNEL, self.writer().pack("II", ch.sid, ch.cid))
        r = self._reply(CMD_DESTROY_CHANNEL, ch.sid)
        return r.u32() == ch.cid

    # -- operations

    def get_field(self, name, subfield=""):
        ch, ioid = self.channel(name), next(self.ids)
        self.send(CMD_GET_FIELD, self.writer().pack("II", ch.sid, ioid).string(subfield))
        r = self._reply(CMD_GET_FIELD, ioid)
        status = r.status()
        if not status.ok:
            raise PvaError(f"get_field {name}", status)
        t = r.type()
        r.end()
        return t

    def init(self, command, name, request="", subcmd=SUB_INIT, extra=b""):
        """Creates an operation; returns (ioid, Type of its data, None for PROCESS). Raises PvaError if
        refused."""
        ch, ioid = self.channel(name), next(self.ids)
        t, value = pv_request(request) if isinstance(request, str) else request
        w = self.writer().pack("IIB", ch.sid, ioid, subcmd).type(t).value(t, value).raw(extra)
        self.send(command, w)
        r = self._reply(command, ioid)
        r.u8()
        status = r.status()
        if not status.ok:
            raise PvaError(f"{name} init", status)
        t = None if command == CMD_PROCESS else r.type()
        r.end()
        return ioid, t

    def destroy_request(self, name, ioid):
        self.send(CMD_DESTROY_REQUEST, self.writer().pack("II", self.channel(name).sid, ioid))

    def get(self, name, request=""):
        ioid, t = self.init(CMD_GET, name, request)
        self.send(CMD_GET, self.writer().pack("IIB", self.channel(name).sid, ioid, 0x00))
        r = self._reply(CMD_GET, ioid)
        r.u8()
        status = r.status()
        self.destroy_request(name, ioid)
        if not status.ok:
            raise PvaError(f"get {name}", status)
        changed = r.bitset()
        data = Data(t, r.partial(t, changed, t.default()), changed)
        r.end()
        return data

    def process(self, name, request=""):
        """PROCESS: has the server process the record behind name; returns the reply's Status."""
        ioid, _ = self.init(CMD_PROCESS, name, request)
        self.send(CMD_PROCESS, self.writer().pack("IIB", self.channel(name).sid, ioid, 0x00))
        r = self._reply(CMD_PROCESS, ioid)
        r.u8()
        self.destroy_request(name, ioid)
        return r.status()

    def put(self, name, values, request="", timeout=None, read_first=False):
        """Writes values ({field path: value}) and waits for the reply; returns its Status."""
        return self.start_put(name, values, request, read_first).wait(timeout)

    def start_put(self, name, values, request="", read_first=False):
        """Sends a put without waiting: the returned Put's done() / wait() give its Status. read_first: fetch
        the current value first (subcommand 0x40) as pvxput does; it is kept in the Put's current."""
        ioid, t = self.init(CMD_PUT, name, request)
        current = None
        if read_first:
            self.send(CMD_PUT, self.writer().pack("IIB", self.channel(name).sid, ioid, SUB_GET))
            r = self._reply(CMD_PUT, ioid)
            r.u8()
            status = r.status()
            if not status.ok:
                raise PvaError(f"put {name}: reading the current value", status)
            changed = r.bitset()
            current = Data(t, r.partial(t, changed, t.default()), changed)
        marked = sorted((t.bit(path), path) for path in values)
        w = self.writer().pack("IIB", self.channel(name).sid, ioid, 0x00)
        w.bitset(sum(1 << bit for bit, _ in marked))
        for _, path in marked:
            w.value(t[path], values[path])
        self.send(CMD_PUT, w)
        put = Put(self, name, ioid)
        put.current = current
        return put

    def monitor(self, name, request="", pipeline=False, queue_size=4, nfree=None):
        """A Monitor; pipeline=True adds record[pipeline=true,queueSize=queue_size] and offers nfree (default
        queue_size) credits."""
        return Monitor(self, name, request, pipeline, queue_size, nfree)


class Put:
    """A put on its way: done() is None while the reply has not arrived, then the reply's Status."""

    def __init__(self, client, name, ioid):
        self.client, self.name, self.ioid, self.status = client, name, ioid, None

    def _take(self, timeout):
        r = self.client._reply(CMD_PUT, self.ioid, timeout)
        if r is not None:
            r.u8()
            self.status = r.status()
            self.client.destroy_request(self.name, self.ioid)
        return self.status

    def done(self):
        return self.status if self.status is not None else self._take(0)

    def wait(self, timeout=None):
        return self.status if self.status is not None else self._take(timeout)


class Monitor:
    """A subscription. start(); next() -> Data (the accumulated value after the next update, changed and
    overrun bitsets of that update); ack(n) returns n credits of a pipelined monitor."""

    def __init__(self, client, name, request, pipeline, queue_size, nfree):
        self.client, self.name = client, name
        if pipeline:
            opts = f"pipeline=true,queueSize={queue_size}"
            request = re.sub(r"record\[", f"record[{opts},", request) if "record[" in request else \
                request + f"record[{opts}]"
        extra = struct.pack(client.order + "I", queue_size if nfree is None else nfree) if pipeline else b""
        self.ioid, self.type = client.init(CMD_MONITOR, name, request, SUB_INIT | (SUB_PIPELINE if pipeline else 0),
                                           extra)
        self.value = self.type.default()
        self.finished = None             # Status of a server-side end of the subscription

    def _command(self, subcmd, extra=b""):
        ch = self.client.channel(self.name)
        self.client.send(CMD_MONITOR, self.client.writer().pack("IIB", ch.sid, self.ioid, subcmd).raw(extra))

    def start(self):
        self._command(SUB_START | SUB_GET)

    def stop(self):
        self._command(SUB_START)

    def ack(self, n):
        self._command(SUB_PIPELINE, struct.pack(self.client.order + "I", n))

    def destroy(self):
        self.client.destroy_request(self.name, self.ioid)

    def next(self, timeout=None):
        """The next update: waits up to timeout (TimeoutError after it); with timeout=0 only one that has already
        arrived, else None. None also when the server ended the subscription (see finished)."""
        while True:
            r = self.client._reply(CMD_MONITOR, self.ioid, timeout)
            if r is None:
                return None
            subcmd = r.u8()
            if subcmd & SUB_DESTROY:
                self.finished = r.status() if r.remaining() else STATUS_OK
                return None
            changed = r.bitset()
            r.partial(self.type, changed, self.value)
            data = Data(self.type, snapshot(self.value), changed, r.bitset())
            r.end()
            return data

    def received(self):
        """Every update that has already arrived, without waiting."""
        updates = []
        while (update := self.next(timeout=0)) is not None:
            updates.append(update)
        return updates
