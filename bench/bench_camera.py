#!/usr/bin/env python3
"""bench_camera.py -- the camera pipeline of the running IOC (sim source -> frame ring -> image PV, JPEG
preview, HDF5-capable consumers) at 1024^2 and 2048^2 uint16, next to libjpeg-turbo alone (through PIL,
which Debian builds on libjpeg-turbo) encoding the same frame size at the same quality, in one run.

Prints frames/s produced, and per consumer its rate and latency (exposure -> done), as the IOC's own
PVs report them."""
import io
import os
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(os.environ.get("RELOC_TOP", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(TOP / "tests"))
import ioc as ioc_module  # noqa: E402

IOC_ENV = ioc_module.standalone_client_ports()
import epics  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

QUALITY = 85


def run_ioc(size, workdir):
    preview = f'cameraPreview("CAM1", "tcp://127.0.0.1:*", {QUALITY}, {size}, 0)'
    ioc = ioc_module.camera_bench_ioc(size, workdir, IOC_ENV, preview)
    try:
        ioc_module.acquire_fast()
        time.sleep(6.0)
        values = {name: epics.caget("B:" + name) for name in (
            "cam1:ArrayRate_RBV", "image1:ArrayRate_RBV", "image1:Latency_RBV", "image1:DroppedArrays_RBV",
            "Preview1:ArrayRate_RBV", "Preview1:Latency_RBV", "Preview1:DroppedArrays_RBV",
            "Preview1:CompressedSize_RBV", "cam1:ArrayCounter_RBV")}
        epics.caput("B:cam1:Acquire", 0, wait=True)
        return values
    finally:
        ioc.stop()


def jpeg_alone(size):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, size=(size, size), dtype=np.uint8)
    img = Image.fromarray(frame)
    best = float("inf")
    for _ in range(7):
        t = time.perf_counter()
        img.save(io.BytesIO(), format="JPEG", quality=QUALITY)
        best = min(best, time.perf_counter() - t)
    return best


def main():
    print("camera pipeline of the IOC (sim source, uint16) vs libjpeg-turbo alone (PIL), quality 85")
    print(f"{'size':>7} {'produced':>9} {'image PV rate, latency':>24} {'JPEG preview rate, latency':>28}"
          f" {'libjpeg-turbo alone':>20} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (1024, 2048):
            v = run_ioc(size, Path(tmp) / str(size))
            jpeg = jpeg_alone(size)
            print(f"{size:>5}^2 {v['cam1:ArrayRate_RBV']:7.1f}/s {v['image1:ArrayRate_RBV']:12.1f}/s "
                  f"{1e3 * v['image1:Latency_RBV']:7.1f} ms {v['Preview1:ArrayRate_RBV']:15.1f}/s "
                  f"{1e3 * v['Preview1:Latency_RBV']:7.1f} ms {1e3 * jpeg:15.1f} ms "
                  f"{v['Preview1:Latency_RBV'] / jpeg:6.2f}")
            print(f"        dropped: image PV {v['image1:DroppedArrays_RBV']}, preview "
                  f"{v['Preview1:DroppedArrays_RBV']} of {v['cam1:ArrayCounter_RBV']} frames; "
                  f"JPEG {v['Preview1:CompressedSize_RBV']} bytes")
    print("latency = frame read out -> consumer done; ratio = preview latency / libjpeg-turbo alone")


if __name__ == "__main__":
    main()
