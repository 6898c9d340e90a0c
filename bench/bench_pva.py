#!/usr/bin/env python3
"""bench_pva.py -- camera frames to image viewers over pvAccess (NTNDArray $(P)Pva1:Image) and over Channel Access
(the image waveform $(P)image1:ArrayData of the same camera), 2048^2 uint16, to 1 and to 10 subscribers, in one
run of one IOC.

Every subscriber is its own process and decodes every frame into a numpy array: PVA through tests/pva/pvaclient.py
(our independent client, non-pipelined monitor), CA through pyepics (libca, as ophyd/Bluesky read images). For
each phase (protocol x subscribers) the camera runs continuously and the subscribers count what they receive for
SECONDS. Printed per phase: frames/s the camera produced meanwhile, frames/s received per subscriber (mean), the
share of the produced frames delivered, latency from the frame's read-out to receipt
(median and 95th percentile over all subscribers), frames missed (produced while subscribed but never received:
the servers send the newest frame to a slow client, never a backlog), then PVA/CA ratios. If upstream pvxs's
pvxmonitor is found (RELOC_PVXS_BIN, default /tmp/upstream/pvxs/bin/linux-x86_64; built by hand, never part of
the build), one pvxmonitor subscriber is added as a peer client (rate and frames missed; it prints no receipt
times).

Latency reference: PVA carries the frame's read-out stamp (dataTimeStamp) and uniqueId. The CA waveform's own
time stamp is set when its record finishes processing (after the copy of the frame), so the CA subscriber also
monitors cam1:TimeStamp_RBV (each frame's read-out stamp) and takes, for each image, the newest read-out stamp not
later than the image record's time stamp."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(os.environ.get("RELOC_TOP", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(TOP / "tests"))
sys.path.insert(0, str(TOP / "tests" / "pva"))
import ioc as ioc_module  # noqa: E402

SIZE = 2048
SECONDS = 8.0
P = "B:"
PVXMONITOR = Path(os.environ.get("RELOC_PVXS_BIN", "/tmp/upstream/pvxs/bin/linux-x86_64")) / "pvxmonitor"


# ---------------------------------------------------------------------------------------------- subscribers

def pva_subscriber(port, seconds):
    """Receipts of NTNDArray updates: (receipt time, uniqueId, read-out stamp) per frame."""
    from pvaclient import Client
    name = P + "Pva1:Image"
    out = []
    with Client(port, timeout=30.0) as client:
        mon = client.monitor(name, "field(value,uniqueId,dataTimeStamp)")
        mon.start()
        mon.next()                                      # the frame current at subscription
        end = time.time() + seconds
        while time.time() < end:
            update = mon.next(timeout=10.0)
            now = time.time()
            kind, pixels = update["value"]
            assert kind == "ushortValue" and pixels.size == SIZE * SIZE
            stamp = update["dataTimeStamp"]
            out.append((now, update["uniqueId"], stamp["secondsPastEpoch"] + stamp["nanoseconds"] * 1e-9))
        mon.destroy()
    return out


def ca_subscriber(seconds):
    """Receipts of CA image updates: (receipt time, image record stamp) per frame, and the read-out stamps of
    the frames produced meanwhile."""
    import epics.ca as ca
    images, stamps = [], []

    def on_image(value=None, timestamp=None, **kw):
        assert value is not None and len(value) >= SIZE * SIZE
        images.append((time.time(), timestamp))

    def on_stamp(value=None, **kw):
        stamps.append(value)

    image = ca.create_channel(P + "image1:ArrayData", connect=True, auto_cb=False)
    stamp = ca.create_channel(P + "cam1:TimeStamp_RBV", connect=True, auto_cb=False)
    subs = [ca.create_subscription(stamp, use_time=True, callback=on_stamp),
            ca.create_subscription(image, use_time=True, callback=on_image)]
    end = time.time() + seconds
    while time.time() < end:
        ca.poll(evt=0.01)
    for sub in subs:
        ca.clear_subscription(sub[2])
    return {"images": images[1:], "stamps": stamps}      # the first image: the one current at subscription


def subscriber_main():
    kind, port, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    result = pva_subscriber(port, seconds) if kind == "pva" else ca_subscriber(seconds)
    json.dump(result, sys.stdout)


# ---------------------------------------------------------------------------------------------- analysis

def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def pva_figures(results, seconds):
    latencies, rates, missed, produced = [], [], 0, 0
    for receipts in results:
        ids = [uid for _, uid, _ in receipts]
        latencies += [now - stamp for now, _, stamp in receipts]
        rates.append(len(receipts) / seconds)
        if ids:
            missed += ids[-1] - ids[0] + 1 - len(ids)
            produced = max(produced, (ids[-1] - ids[0]) / (receipts[-1][2] - receipts[0][2]))
    return rates, latencies, missed, produced


def ca_figures(results, seconds):
    latencies, rates, missed, rate = [], [], 0, float("nan")
    for r in results:
        produced = sorted(r["stamps"])
        for now, record_stamp in r["images"]:
            readout = [s for s in produced if s <= record_stamp + 1e-6]
            if readout:
                latencies.append(now - readout[-1])
        rates.append(len(r["images"]) / seconds)
        if produced:
            rate = (len(produced) - 1) / (produced[-1] - produced[0])
        if r["images"]:
            first, last = r["images"][0][1], r["images"][-1][1]
            window = [s for s in produced if first - 1e-6 <= s <= last + 1e-6]
            missed += max(0, len(window) - len(r["images"]))
    return rates, latencies, missed, rate


def pvxmonitor_figures(port_env, seconds):
    """pvxmonitor (upstream pvxs client) on the image: frames/s and missed from the uniqueIds it prints."""
    env = dict(os.environ, **port_env)
    proc = subprocess.run(["timeout", str(seconds), str(PVXMONITOR), "-#", "1", "-r", "field(value,uniqueId)",
                           P + "Pva1:Image"], env=env, capture_output=True, text=True)
    ids = [int(line.split("=")[1]) for line in proc.stdout.splitlines() if "uniqueId" in line][1:]
    if not ids:
        return [0.0], [], 0, float("nan")
    return [len(ids) / seconds], [], ids[-1] - ids[0] + 1 - len(ids), (ids[-1] - ids[0] + 1) / seconds


# ---------------------------------------------------------------------------------------------- driver

def run_phase(kind, n, pva_port):
    procs = [subprocess.Popen([sys.executable, __file__, "--subscriber", kind, str(pva_port), str(SECONDS)],
                              stdout=subprocess.PIPE, text=True) for _ in range(n)]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=SECONDS + 120)
        if proc.returncode:
            raise SystemExit(f"{kind} subscriber failed ({proc.returncode})")
        results.append(json.loads(out))
    return (pva_figures if kind == "pva" else ca_figures)(results, SECONDS)


def line(label, n, figures):
    rates, latencies, missed, produced = figures
    rate = sum(rates) / len(rates)
    lat = (f"{1e3 * percentile(latencies, 0.5):8.1f} ms {1e3 * percentile(latencies, 0.95):8.1f} ms"
           if latencies else f"{'-':>11} {'-':>11}")
    received = sum(rates) * SECONDS
    delivered = received / (received + missed) if received + missed else float("nan")
    print(f"{label:<22} {n:>4} {produced:9.1f}/s {rate:10.1f}/s {100 * delivered:8.1f} % {lat} {missed:>8}")
    return delivered, percentile(latencies, 0.5)


def main():
    import pva_ioc
    ioc_env = ioc_module.standalone_client_ports()
    env, tcp, udp, beacons = pva_ioc.pva_env(ioc_env)
    beacons.close()
    client_env = {"EPICS_PVA_SERVER_PORT": str(tcp), "EPICS_PVA_BROADCAST_PORT": str(udp),
                  "EPICS_PVA_ADDR_LIST": "127.0.0.1", "EPICS_PVA_AUTO_ADDR_LIST": "NO"}
    print(f"camera frames {SIZE}^2 uint16 to subscribers in separate processes, {SECONDS:.0f} s per phase: "
          "PVA NTNDArray (pvaclient.py) vs CA image waveform (pyepics/libca)")
    print(f"{'client':<22} {'subs':>4} {'produced':>11} {'received':>12} {'delivered':>10} {'lat. median':>11}"
          f" {'lat. p95':>11} {'missed':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        ioc = ioc_module.camera_bench_ioc(SIZE, Path(tmp) / "ioc", env, f'pvaImageConfigure("CAM1", "{P}Pva1:Image")')
        try:
            import epics
            ioc_module.acquire_fast(P)
            time.sleep(2.0)
            ratios = []
            for n in (1, 10):
                pva = line("PVA pvaclient.py", n, run_phase("pva", n, tcp))
                ca = line("CA pyepics", n, run_phase("ca", n, tcp))
                ratios.append((n, pva[0] / ca[0], pva[1] / ca[1]))
            if PVXMONITOR.exists():
                line("PVA pvxmonitor (pvxs)", 1, pvxmonitor_figures(client_env, SECONDS))
            else:
                print(f"(pvxmonitor not found at {PVXMONITOR}: upstream peer skipped)")
            epics.caput(P + "cam1:Acquire", 0, wait=True)
        finally:
            ioc.stop()
    for n, delivered, latency in ratios:
        print(f"PVA/CA with {n:>2} subscriber(s): share of frames delivered x{delivered:.2f}, median latency "
              f"x{latency:.2f}")
    print("latency = frame read-out -> decoded in the subscriber; missed = produced while subscribed, never received;"
          " delivered = received / (received + missed) (the camera's rate varies between phases with the load)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--subscriber":
        subscriber_main()
    else:
        main()
