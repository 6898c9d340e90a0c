"""bench_ca.py -- Channel Access server throughput, against the limits of this machine measured in the same run.

  1. sequential gets/s from one pyepics client   vs  a Python TCP ping-pong over loopback (the round-trip limit)
  2. monitor updates/s delivered for a scalar     (a writer process puts as fast as it can)
  3. monitor updates/s and MB/s for a 1 Mi-element USHORT waveform  vs  loopback TCP bandwidth (one stream)
  4. memory per connected channel (IOC resident set before/after 20000 channels)
  5. server CPU per channel connect on one circuit at 10,000 and 50,000 channels (flat: O(1) per channel)
  6. server CPU per pipelined DBR_DOUBLE get and put-with-completion (200,000 requests on one raw circuit)

There is no other CA server on this machine (Debian ships only the client library), so the peers are the
machine's own loopback limits. Prints ours, the limit and the ratio for each."""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TOP = Path(os.environ.get("RELOC_TOP", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(TOP / "tests"))
sys.path.insert(0, str(TOP / "tests" / "ca"))
import ioc as ioc_module  # noqa: E402

PORT = ioc_module.free_port()
os.environ.update({"EPICS_CA_SERVER_PORT": str(PORT), "EPICS_CA_REPEATER_PORT": str(ioc_module.free_port()),
                   "EPICS_CA_ADDR_LIST": "127.0.0.1", "EPICS_CA_AUTO_ADDR_LIST": "NO",
                   "EPICS_CA_MAX_ARRAY_BYTES": "100000000"})
import epics  # noqa: E402
import epics.ca as ca  # noqa: E402
import numpy as np  # noqa: E402

import ca_raw as raw  # noqa: E402

WF_NELM = 1 << 20
DB = f"""
record(ao, "B:scalar") {{ field(PREC, "1") }}
record(waveform, "B:wf") {{ field(FTVL, "USHORT") field(NELM, "{WF_NELM}") }}
"""
DB += "".join(f'record(ao, "B:mem{i}") {{ }}\n' for i in range(200))


def server_cpu_per_request(pid, make_requests, reply_bytes, n=200000):
    """Server CPU microseconds per request: n requests made by make_requests(circuit, i) sent pipelined on one
    raw circuit, then the reply_bytes each is answered with read back."""
    c = raw.Circuit(PORT)
    batch = b"".join(make_requests(c, i) for i in range(n))
    before = cpu_seconds(pid)
    c.send(batch)
    received = 0
    while received < n * reply_bytes:
        received += len(c.sock.recv(1 << 20))
    used = cpu_seconds(pid) - before
    c.close()
    return used / n * 1e6


def create_request(c, i):
    """CREATE_CHAN, answered by ACCESS_RIGHTS + CREATE_CHAN (32 bytes)."""
    return raw.message(raw.CREATE_CHAN, 0, 0, i, 13, f"B:mem{i % 200}".encode() + b"\0")


def scalar_sid(c):
    if not hasattr(c, "scalar_sid"):
        c.scalar_sid = c.create("B:scalar", 1)[0][4]
    return c.scalar_sid


def report(what, ours, peer, unit, peer_name):
    print(f"{what:44s} ours {ours:12.1f} {unit:10s} {peer_name} {peer:12.1f}  ratio {ours / peer:.3f}")


def loopback_pingpong(seconds=2.0):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def echo():
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            d = conn.recv(64)
            if not d:
                break
            conn.sendall(d)
    t = threading.Thread(target=echo, daemon=True)
    t.start()
    c = socket.create_connection(srv.getsockname())
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        c.sendall(b"x" * 16)
        c.recv(64)
        n += 1
    c.close()
    srv.close()
    return n / seconds


def loopback_bandwidth(seconds=2.0):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    total = [0]

    def sink():
        conn, _ = srv.accept()
        buf = bytearray(1 << 22)
        while True:
            n = conn.recv_into(buf)
            if not n:
                break
            total[0] += n
    t = threading.Thread(target=sink, daemon=True)
    t.start()
    c = socket.create_connection(srv.getsockname())
    chunk = b"\0" * (1 << 22)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        c.sendall(chunk)
    c.close()
    t.join()
    srv.close()
    return total[0] / (time.monotonic() - start) / 1e6


def writer(name, payload_fn, dtype, count, seconds):
    """Another process puts to name as fast as the circuit takes it (plain WRITE, pipelined)."""
    code = f"""
import struct, sys, time
sys.path.insert(0, {str(TOP / 'tests' / 'ca')!r})
import ca_raw as raw
c = raw.Circuit({PORT})
sid = c.create({name!r}, 1)[0][4]
payload = {payload_fn}
end = time.monotonic() + {seconds}
i = 0
while time.monotonic() < end:
    c.send(raw.message(raw.WRITE, {dtype}, {count}, sid, 1, payload(i)))
    i += 1
c.close()
"""
    return subprocess.Popen([sys.executable, "-c", code])


def monitor_rate(name, seconds, payload_fn, dtype, count):
    got = [0, 0]

    def cb(value=None, **kw):
        got[0] += 1
        got[1] += getattr(value, "nbytes", 8)
    pv = epics.PV(name, auto_monitor=True, callback=cb)
    pv.wait_for_connection(10)
    time.sleep(0.5)
    w = writer(name, payload_fn, dtype, count, seconds + 1)
    time.sleep(0.5)
    got[0] = got[1] = 0
    start = time.monotonic()
    epics.poll(evt=seconds, iot=seconds)
    while time.monotonic() - start < seconds:
        epics.poll()
    elapsed = time.monotonic() - start
    rate, mb = got[0] / elapsed, got[1] / elapsed / 1e6
    w.wait()
    pv.clear_callbacks()
    pv.disconnect()
    return rate, mb


def raw_monitor_rate(name, seconds, payload_fn, dtype, count):
    """The same waveform monitor read by a raw-socket client: what the server delivers without libca."""
    c = raw.Circuit(PORT)
    sid = c.create(name, 1)[0][4]
    c.send(raw.message(raw.EVENT_ADD, 5, 0, sid, 1, struct.pack(">fffHH", 0, 0, 0, 1, 0)))
    c.expect(raw.EVENT_ADD)
    w = writer(name, payload_fn, dtype, count, seconds + 1)
    time.sleep(0.5)
    c.sock.settimeout(2)
    updates = nbytes = 0
    buf = bytearray(1 << 24)
    pending = b""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        n = c.sock.recv_into(buf)
        pending += bytes(buf[:n])
        msgs, pending = raw.parse(pending)
        updates += len(msgs)
        nbytes += n
    elapsed = time.monotonic() - start
    w.wait()
    c.close()
    return updates / elapsed, nbytes / elapsed / 1e6


def cpu_seconds(pid):
    """CPU time all threads of a process have used so far (schedstat: nanoseconds, not 10 ms ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass                                  # a thread that ended meanwhile
    return total / 1e9


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    work = Path(tempfile.mkdtemp(prefix="bench_ca_"))
    (work / "b.db").write_text(DB)
    env = ioc_module.server_env(PORT, int(os.environ["EPICS_CA_REPEATER_PORT"]))
    env.pop("ASAN_OPTIONS", None)
    ioc = ioc_module.Ioc(f'dbLoadRecords("{work / "b.db"}")\niocInit\n', work, env=env)
    ioc.start()
    try:
        before = rss_kib(ioc.proc.pid)
        circuits = []
        nchan = 0
        for k in range(10):
            c = raw.Circuit(PORT)
            for i in range(2000):
                c.send(raw.message(raw.CREATE_CHAN, 0, 0, i, 13, f"B:mem{i % 200}".encode() + b"\0"))
            got = 0
            while got < 2000:
                if c.recv_one()[0] == raw.CREATE_CHAN:
                    got += 1
            nchan += got
            circuits.append(c)
        time.sleep(0.5)
        after = rss_kib(ioc.proc.pid)
        print(f"{'memory per connected channel':44s} ours {(after - before) * 1024 / nchan:12.1f} bytes     "
              f"({nchan} channels, RSS {before} -> {after} KiB)")
        for c in circuits:
            c.close()

        small = server_cpu_per_request(ioc.proc.pid, create_request, 32, 10000)
        large = server_cpu_per_request(ioc.proc.pid, create_request, 32, 50000)
        print(f"{'server CPU per channel connect (one circuit)':44s} ours {large:12.2f} us at 50k   "
              f"{small:.2f} us at 10k  ratio 50k/10k {large / small:.2f} (1.0 = flat)")

        get_us = server_cpu_per_request(
            ioc.proc.pid, lambda c, i: raw.message(raw.READ_NOTIFY, 6, 1, scalar_sid(c), i), 24)
        put_us = server_cpu_per_request(
            ioc.proc.pid, lambda c, i: raw.message(raw.WRITE_NOTIFY, 6, 1, scalar_sid(c), i, struct.pack(">d", i / 2)), 16)
        print(f"{'server CPU per pipelined DBR_DOUBLE get':44s} ours {get_us:12.2f} us")
        print(f"{'server CPU per pipelined DBR_DOUBLE put-notify':44s} ours {put_us:12.2f} us")

        chid = ca.create_channel("B:scalar")
        ca.connect_channel(chid, timeout=10)
        n, end = 0, time.monotonic() + 3
        while time.monotonic() < end:
            ca.get(chid)
            n += 1
        report("sequential gets/s (pyepics, one client)", n / 3, loopback_pingpong(), "gets/s", "TCP ping-pong/s")

        scalar_rate, _ = monitor_rate("B:scalar", 3, "lambda i: struct.pack('>d', float(i))", 6, 1)
        print(f"{'scalar monitor updates/s':44s} ours {scalar_rate:12.1f} updates/s  (no peer CA server here)")

        wf = "lambda i, b=bytes(2 * (1 << 20)): b"
        cpu_before = cpu_seconds(ioc.proc.pid)
        wf_rate, wf_mb = monitor_rate("B:wf", 4, wf, 1, WF_NELM)
        cpu_used = cpu_seconds(ioc.proc.pid) - cpu_before
        raw_rate, raw_mb = raw_monitor_rate("B:wf", 4, wf, 1, WF_NELM)
        bw = loopback_bandwidth()
        print(f"{'1 Mi USHORT waveform updates/s (pyepics)':44s} ours {wf_rate:12.1f} updates/s")
        print(f"{'server CPU per waveform update (put + monitor)':44s} ours {cpu_used / (wf_rate * 4) * 1e3:12.1f} ms  "
              f"(a 2 MiB copy costs ~0.2 ms: the floor is a few copies)")
        report("1 Mi USHORT waveform MB/s (pyepics)", wf_mb, bw, "MB/s", "loopback TCP MB/s")
        print(f"{'1 Mi USHORT waveform updates/s (raw socket)':44s} ours {raw_rate:12.1f} updates/s")
        report("1 Mi USHORT waveform MB/s (raw socket)", raw_mb, bw, "MB/s", "loopback TCP MB/s")

    finally:
        ioc.stop()


if __name__ == "__main__":
    main()
