"""bench_ca.py -- Channel Access server throughput, against the limits of this machine measured in the same run.

  1. sequential gets/s from one pyepics client   vs  a Python TCP ping-pong over loopback (the round-trip limit)
  2. monitor updates/s delivered for a scalar     (a writer process puts as fast as it can)
  3. monitor updates/s and MB/s for a 1 Mi-element USHORT waveform  vs  loopback TCP bandwidth (one stream)
  4. memory per connected channel (IOC resident set before/after 20000 channels)
  5. server CPU per channel connect on one circuit at 10,000 and 50,000 channels (flat: O(1) per channel)
  6. server CPU per pipelined DBR_DOUBLE get and put-with-completion (200,000 requests on one raw circuit)

The peers of rows 1-6 are the machine's own loopback limits. Then, when a build of upstream EPICS Base is on the
machine (RELOC_EPICS_BASE_BIN, default /tmp/upstream/epics-base/bin/linux-x86_64; Debian ships only the client
library, so the comparison is skipped with a line saying so when it is absent), the rows of issue #17 against its
softIoc, each server measured alternately on the same database with the same clients (BENCH_CA_ROUNDS rounds,
best of each kept, server CPU from /proc including rsrv's per-client threads that end):
  7. 1 Mi-element USHORT waveform: bench/ca_wf_client.c (raw-socket C writer putting DBR_SHORT as fast as the
     circuit takes it, C reader monitoring the native type): updates/s delivered, server CPU per update
  8. catime B:scalar 50000: channel connect, async put and get of DBR_DOUBLE (catime's own us per op), server CPU
  9. caEventRate B:tick 20000 (a 10 Hz calc): subscribe + initial values, events/s, server CPU per second
Prints ours, the peer and the ratio for each. `bench_ca.py --softioc-only` runs rows 7-9 alone."""
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


def report(what, ours, peer, unit, peer_name, digits=1):
    print(f"{what:44s} ours {ours:12.{digits}f} {unit:10s} {peer_name} {peer:12.{digits}f}  ratio {ours / peer:.3f}",
          flush=True)


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
    pending = c.buf                  # what the circuit read past the subscription's reply: the stream goes on there
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


def process_cpu_seconds(pid):
    """CPU time of a process including its threads that have ended (rsrv runs a thread per client, gone when the
    client disconnects, so a sum over /proc/PID/task would miss it). Clock ticks: measure seconds, not ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


# ---- Against upstream EPICS Base's softIoc (the peer of issue #17), when a build of it is on this machine ------
EPICS_BIN = Path(os.environ.get("RELOC_EPICS_BASE_BIN", "/tmp/upstream/epics-base/bin/linux-x86_64"))
PEER_DB = f"""
record(ao, "B:scalar") {{ field(PREC, "1") }}
record(waveform, "B:wf") {{ field(FTVL, "USHORT") field(NELM, "{WF_NELM}") }}
record(calc, "B:tick") {{ field(SCAN, ".1 second") field(CALC, "A+1") field(INPA, "B:tick") }}
"""


class SoftIoc:
    """Upstream softIoc serving db on port (loopback only), its shell kept open on a pipe."""

    def __init__(self, db, port, workdir):
        env = ioc_module.server_env(port, ioc_module.free_port())
        env["EPICS_CA_MAX_ARRAY_BYTES"] = "100000000"
        self.log = open(workdir / "softioc.log", "wb")
        self.proc = subprocess.Popen([str(EPICS_BIN / "softIoc"), "-d", str(db)], cwd=workdir, env=env,
                                     stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT)
        self.log_path = workdir / "softioc.log"
        ioc_module.wait_for(lambda: "iocRun: All initialization complete" in self.log_path.read_text(errors="replace"),
                            timeout=20, what="softIoc start")

    def stop(self):
        self.proc.stdin.close()
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def client_env(port):
    env = dict(os.environ)
    env.update({"EPICS_CA_SERVER_PORT": str(port), "EPICS_CA_ADDR_LIST": "127.0.0.1", "EPICS_CA_AUTO_ADDR_LIST": "NO",
                "EPICS_CA_MAX_ARRAY_BYTES": "100000000"})
    return env


def waveform_c_clients(exe, port, pid, seconds=4.0):
    """(updates/s, server CPU s per update) of the 1 Mi USHORT waveform: the C writer puts DBR_SHORT as fast as it
    can, the C reader monitors it in the native type."""
    w = subprocess.Popen([str(exe), "write", str(port), "B:wf", "1", str(WF_NELM), str(seconds + 1.5)],
                         stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    cpu = process_cpu_seconds(pid)
    r = subprocess.run([str(exe), "read", str(port), "B:wf", "5", str(seconds)], capture_output=True, text=True,
                       check=True)
    cpu = process_cpu_seconds(pid) - cpu
    w.wait()
    updates, _, elapsed = (float(x) for x in r.stdout.split())
    return updates / elapsed, cpu / max(updates, 1)


def catime(port, pid, channels=50000):
    """catime on B:scalar with n channels: {connect, put, get} in us per channel/op (catime's own timing),
    and the server's CPU seconds over the whole run."""
    cpu = process_cpu_seconds(pid)
    out = subprocess.run([str(EPICS_BIN / "catime"), "B:scalar", str(channels)], capture_output=True, text=True,
                         env=client_env(port), timeout=600).stdout
    cpu = process_cpu_seconds(pid) - cpu
    per_op = [float(line.split()[2]) for line in out.splitlines() if line.startswith("Per Op,")]
    double = out.split("DBR_DOUBLE Test")[1]
    ops = [float(line.split()[2]) for line in double.splitlines() if line.startswith("Per Op,")]
    return {"connect": per_op[0], "put": ops[0], "get": ops[1], "cpu": cpu}


def event_rate(port, pid, subscriptions=20000, seconds=6.0):
    """caEventRate: 20,000 subscriptions to B:tick (10 Hz). (seconds to subscribe and receive the initial values,
    events/s delivered, server CPU seconds per second of steady state)."""
    proc = subprocess.Popen(["stdbuf", "-oL", str(EPICS_BIN / "caEventRate"), "B:tick", str(subscriptions)], stdout=subprocess.PIPE,
                            text=True, env=client_env(port))
    initial = 0.0
    rates = []
    cpu0 = t0 = None
    try:
        for line in proc.stdout:
            if line.startswith("Subscribing"):       # initial values arrive while subscribing, or after it
                initial += float(line.split("done(")[1].split()[0])
            elif line.startswith("Waiting for initial value events."):
                initial += float(line.split("done(")[1].split()[0])
                cpu0, t0 = process_cpu_seconds(pid), time.monotonic()
            elif line.startswith("CA Event Rate") and t0 is not None:
                rates.append(float(line.split("current")[1].split()[0]))
                if time.monotonic() - t0 >= seconds:
                    break
        cpu_per_s = (process_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
    finally:
        proc.terminate()
        proc.wait()
    return initial, sum(rates[1:]) / max(len(rates) - 1, 1), cpu_per_s


def versus_softioc(rounds=int(os.environ.get("BENCH_CA_ROUNDS", "2"))):
    """Each row measured on our IOC and softIoc alternately (rounds times each, the best of each kept: the machine is
    shared), same database, same clients."""
    if not (EPICS_BIN / "softIoc").exists():
        print(f"(no upstream softIoc at {EPICS_BIN}: the comparison with EPICS rsrv is skipped)")
        return
    work = Path(tempfile.mkdtemp(prefix="bench_ca_peer_"))
    db = work / "peer.db"
    db.write_text(PEER_DB)
    exe = work / "ca_wf_client"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(TOP / "bench" / "ca_wf_client.c")], check=True)
    ours_port, peer_port = ioc_module.free_port(), ioc_module.free_port()
    env = ioc_module.server_env(ours_port, ioc_module.free_port())
    env.pop("ASAN_OPTIONS", None)
    env["EPICS_CA_MAX_ARRAY_BYTES"] = "100000000"
    ours = ioc_module.Ioc(f'dbLoadRecords("{db}")\niocInit\n', work / "ours", env=env).start()
    peer = SoftIoc(db, peer_port, work)
    servers = [("ours", ours_port, ours.proc.pid), ("softIoc", peer_port, peer.proc.pid)]
    print(f"-- versus upstream softIoc ({EPICS_BIN}), load average {os.getloadavg()[0]:.2f}")
    try:
        rows = {}
        for _ in range(rounds):
            for name, port, pid in servers:
                rate, cpu = waveform_c_clients(exe, port, pid)
                r = rows.setdefault(("wf", name), [0, 1e9])
                rows[("wf", name)] = [max(r[0], rate), min(r[1], cpu)]
        report("1 Mi USHORT waveform updates/s (C clients)", rows[("wf", "ours")][0], rows[("wf", "softIoc")][0],
               "updates/s", "softIoc")
        report("  server CPU per update", rows[("wf", "ours")][1] * 1e3, rows[("wf", "softIoc")][1] * 1e3, "ms",
               "softIoc")
        best = {}
        for _ in range(rounds):
            for name, port, pid in servers:
                t = catime(port, pid)
                b = best.setdefault(name, t)
                best[name] = {k: min(b[k], t[k]) for k in t}
        for key, what in (("connect", "catime connect, 50,000 channels"), ("get", "catime async get DBR_DOUBLE"),
                          ("put", "catime async put DBR_DOUBLE"), ("cpu", "  server CPU over the catime run")):
            unit = "s" if key == "cpu" else "us"
            report(what, best["ours"][key], best["softIoc"][key], unit, "softIoc", 3)
        ev = {}
        for _ in range(rounds):
            for name, port, pid in servers:
                e = event_rate(port, pid)
                b = ev.setdefault(name, e)
                ev[name] = (min(b[0], e[0]), max(b[1], e[1]), min(b[2], e[2]))
        report("caEventRate 20,000 subs: subscribe + initial", ev["ours"][0], ev["softIoc"][0], "s", "softIoc", 3)
        report("caEventRate 20,000 subs at 10 Hz: events/s", ev["ours"][1], ev["softIoc"][1], "events/s", "softIoc", 3)
        report("  server CPU per second", ev["ours"][2], ev["softIoc"][2], "s/s", "softIoc", 3)
        print(f"   (load average {os.getloadavg()[0]:.2f} at the end; ratio = ours / softIoc: above 1 is better for "
              "updates/s and events/s, below 1 for times)")
    finally:
        ours.stop()
        peer.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["--softioc-only"]:
        versus_softioc()
    else:
        main()
        versus_softioc()
