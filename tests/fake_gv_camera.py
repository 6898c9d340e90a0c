"""tests/fake_gv_camera.py -- Aravis' simulated GigE Vision camera (arv-fake-gv-camera-0.8, Debian aravis-tools; read
back with arv-tool-0.8, aravis-tools-cli) for tests and benchmarks: bound to its own loopback address, so that
parallel runs do not share the GVCP port (3956), and reached by that address (unicast; nothing here discovers cameras
by broadcast).

The own address is a random 127.0.x.y added to `lo` (only root may), removed again by close(). Without root the
camera cannot have its own address: callers skip with skip_reason()."""
import os
import random
import socket
import shutil
import subprocess
import time

FAKE_CAMERA = "arv-fake-gv-camera-0.8"
TOOL = "arv-tool-0.8"


def skip_reason():
    """Why the fake GigE camera cannot run here, or None."""
    if not shutil.which(FAKE_CAMERA):
        return f"{FAKE_CAMERA} not installed (Debian package aravis-tools)"
    if os.geteuid() != 0:
        return "the fake GigE camera needs its own loopback address (ip addr add ... dev lo), which needs root"
    if not shutil.which("ip"):
        return "no ip command to add a loopback address"
    return None


class FakeGvCamera:
    """arv-fake-gv-camera-0.8 on a loopback address of its own; start() / stop() it as often as needed (the
    address stays until close())."""

    def __init__(self, lost_packets_per_thousand=0):
        self.lost = lost_packets_per_thousand
        self.proc = None
        for _ in range(20):
            address = f"127.0.{random.randint(2, 254)}.{random.randint(2, 254)}"
            if subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], capture_output=True).returncode == 0:
                self.address = address
                break
        else:
            raise RuntimeError("no free 127.0.x.y address could be added to lo")

    def start(self):
        cmd = [FAKE_CAMERA, "-i", self.address]
        if self.lost:
            cmd += ["-r", str(self.lost)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{FAKE_CAMERA} on {self.address} did not come up")
            time.sleep(0.02)
        return self

    def listening(self):
        """Whether the camera's GVCP socket (UDP port 3956 on its address) is open."""
        local = f"{socket.htonl(int.from_bytes(socket.inet_aton(self.address), 'big')):08X}:0F74"
        with open("/proc/net/udp") as table:
            return any(line.split()[1] == local for line in table.readlines()[1:])

    def control(self, *features):
        """arv-tool's reading of features ("Name = value ..." lines), or None when the camera does not answer.
        While another application (the IOC) controls the camera, arv-tool's attempts to take and leave control
        time out: a call then takes about 5 s, so read many features in one call."""
        try:
            run = subprocess.run([TOOL, "-a", self.address, "control", *features], capture_output=True, text=True,
                                 timeout=10)
        except subprocess.TimeoutExpired:
            return None
        values = {}
        for line in run.stdout.splitlines():
            name, sep, rest = line.partition(" = ")
            if sep:
                values[name.strip()] = rest.split(" min:")[0].strip()
        return values if run.returncode == 0 and len(values) == len(features) else None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def close(self):
        self.stop()
        subprocess.run(["ip", "addr", "del", f"{self.address}/32", "dev", "lo"], capture_output=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
