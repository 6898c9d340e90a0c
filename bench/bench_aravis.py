#!/usr/bin/env python3
"""bench_aravis.py -- the camera's "aravis" source (GigE Vision stream -> frame ring -> image PV) against Aravis' own
arv-camera-test-0.8 on the same simulated GigE camera (arv-fake-gv-camera-0.8 on a loopback address of its own,
512x512 Mono8, 1000 frames/s asked), in one run, alternating rounds (only one controller may hold the camera; the
machine is shared: the order turns every round, and medians are printed). Prints frames/s of both and their ratio, and frames lost.
arv-camera-test reports no latency: bench/aravis_floor.c (Aravis alone, the same stream set-up as our source)
gives the floor for it -- the buffer's arrival -> popped --, next to ours -- the buffer's arrival -> the image PV
holds the frame.

Needs root (the camera's own loopback address, see tests/fake_gv_camera.py)."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

TOP = Path(os.environ.get("RELOC_TOP", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(TOP / "tests"))
import ioc as ioc_module  # noqa: E402
from fake_gv_camera import FakeGvCamera, skip_reason  # noqa: E402

IOC_ENV = ioc_module.standalone_client_ports()
import epics  # noqa: E402

SIZE = 512
RATE = 1000
SECONDS = 3.0
ROUNDS = 5


def ours(address, workdir):
    """(frames/s, frames lost, latency s) of the IOC's aravis source over SECONDS of streaming."""
    st = f"""epicsEnvSet EPICS_DB_INCLUDE_PATH "{TOP}/db"
cameraConfigure("CAM1", "aravis", "{address}", {SIZE}, {SIZE})
dbLoadRecords("camera.db", "P=B:,PORT=CAM1,NELM={SIZE * SIZE},XSIZE={SIZE},YSIZE={SIZE}")
iocInit
"""
    ioc = ioc_module.Ioc(st, workdir, env=IOC_ENV, binary=Path(os.environ.get("RELOC_BIN", TOP / "bin")) / "relocioc")
    ioc.start()
    try:
        ioc_module.wait_for(lambda: epics.caget("B:cam1:SourceConnected_RBV") == 1, what="the camera")
        for name, value in (("PixelFormat", 0), ("AcquireTime", 0.001), ("AcquirePeriod", 1.0 / RATE),
                            ("ImageMode", 2)):
            epics.caput(f"B:cam1:{name}", value, wait=True)
        epics.caput("B:cam1:Acquire", 1)
        ioc_module.wait_for(lambda: (epics.caget("B:cam1:ArrayCounter_RBV") or 0) > 50, what="frames")
        count0, missed0, t0 = epics.caget("B:cam1:ArrayCounter_RBV"), epics.caget("B:cam1:SourceMissed_RBV"), time.monotonic()
        latencies = []
        while time.monotonic() - t0 < SECONDS:
            time.sleep(0.25)
            latencies.append(epics.caget("B:image1:Latency_RBV"))
        count1, missed1, t1 = epics.caget("B:cam1:ArrayCounter_RBV"), epics.caget("B:cam1:SourceMissed_RBV"), time.monotonic()
        epics.caput("B:cam1:Acquire", 0, wait=True)
        latencies.sort()
        return (count1 - count0) / (t1 - t0), missed1 - missed0, latencies[len(latencies) // 2]
    finally:
        ioc.stop()


def peer(address):
    """(frames/s, frames lost) of arv-camera-test-0.8 with the same settings over SECONDS."""
    run = subprocess.run(["arv-camera-test-0.8", "-n", address, "-f", str(RATE), "-w", str(SIZE), "-h", str(SIZE),
                          "-e", "1000", "--features", "PixelFormat=Mono8", "--duration", str(int(SECONDS))],
                         capture_output=True, text=True, timeout=60)
    rates = [float(m) for m in re.findall(r"^(\d+) frames/s", run.stdout, re.M)]
    missing = re.search(r"n_missing_frames\s*=\s*(\d+)", run.stdout)
    failures = re.search(r"n_failures\s*=\s*(\d+)", run.stdout)
    if not rates:
        raise RuntimeError(f"arv-camera-test gave no rate:\n{run.stdout}\n{run.stderr}")
    rates = rates[1:] or rates          # the first second includes the start
    return sum(rates) / len(rates), int(missing.group(1)) + int(failures.group(1))


def floor(address, exe):
    """(frames/s, frames lost, latency s) of Aravis alone (bench/aravis_floor.c)."""
    run = subprocess.run([str(exe), address, str(SIZE), str(RATE), str(SECONDS)], capture_output=True, text=True,
                         timeout=60)
    m = re.search(r"fps ([\d.]+) lost (\d+) latency_ms ([\d.]+)", run.stdout)
    if not m:
        raise RuntimeError(f"aravis_floor failed:\n{run.stdout}\n{run.stderr}")
    return float(m.group(1)), int(m.group(2)), float(m.group(3)) * 1e-3


def build_floor(tmp):
    exe = Path(tmp) / "aravis_floor"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "aravis-0.8"], capture_output=True, text=True,
                           check=True).stdout.split()
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(TOP / "bench" / "aravis_floor.c"), *flags], check=True)
    return exe


def main():
    reason = skip_reason()
    if reason:
        print(f"bench_aravis: skipped: {reason}")
        return
    import tempfile
    with tempfile.TemporaryDirectory() as tmp, FakeGvCamera() as camera:
        exe = build_floor(tmp)
        runs = {"ours": [], "peer": [], "floor": []}
        contenders = {"ours": lambda r: ours(camera.address, Path(tmp) / f"ioc{r}"),
                      "peer": lambda r: peer(camera.address), "floor": lambda r: floor(camera.address, exe)}
        order = list(contenders)
        for r in range(ROUNDS):     # the order turns every round: the machine's load changes by the second
            for name in order[r % 3:] + order[:r % 3]:
                runs[name].append(contenders[name](r))
        med = {name: sorted(values)[len(values) // 2] for name, values in runs.items()}
        ratio_peer = median([o[0] / p[0] for o, p in zip(runs["ours"], runs["peer"])])
        ratio_floor = median([o[0] / f[0] for o, f in zip(runs["ours"], runs["floor"])])
        print(f"fake GigE camera {camera.address}, {SIZE}x{SIZE} Mono8, {RATE} frames/s asked, {SECONDS:.0f} s per "
              f"run, medians of {ROUNDS} rounds")
        print(f"  reloc aravis source : {med['ours'][0]:7.1f} frames/s, {med['ours'][1]} lost, "
              f"latency (arrival -> image PV) median {med['ours'][2] * 1e3:.2f} ms")
        print(f"  arv-camera-test-0.8 : {med['peer'][0]:7.1f} frames/s, {med['peer'][1]} lost")
        print(f"  Aravis alone (floor): {med['floor'][0]:7.1f} frames/s, {med['floor'][1]} lost, "
              f"latency (arrival -> popped) median {med['floor'][2] * 1e3:.2f} ms")
        print(f"  ratio reloc/arv-camera-test frames/s (median of the rounds): {ratio_peer:.2f}; "
              f"reloc/Aravis alone: {ratio_floor:.2f}; latency reloc/Aravis alone: "
              f"{med['ours'][2] / med['floor'][2]:.1f}x")
        print("  rounds frames/s (reloc, arv-camera-test, Aravis alone):",
              ", ".join(f"({o[0]:.0f}, {p[0]:.0f}, {f[0]:.0f})"
                        for o, p, f in zip(runs["ours"], runs["peer"], runs["floor"])))

if __name__ == "__main__":
    main()
