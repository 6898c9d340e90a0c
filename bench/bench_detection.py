"""bench/bench_detection.py -- time per frame of particle location (trackpy's algorithm, diameter 11, uint16)
at 1024^2 (~576 particles) and 2048^2 (~2304): reloc-locate on one thread and on all cores (timed inside the
tool over --repeat runs, without file I/O) against the peer, the scipy.ndimage implementation of the same
algorithm in tests/detection/locate_ref.py (trackpy is not in Debian; issue 17 measured trackpy's numba engine
at 143 ms and 688 ms on this machine, about the scipy peer's time), on the same frame with the same table.
Prints ours, the peer's and the ratio, and issue 17's goal (>= 10x trackpy-numba: 14 ms, 70 ms)."""
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

TOP = Path(os.environ.get("RELOC_TOP", Path(__file__).resolve().parents[1]))
BIN = Path(os.environ.get("RELOC_BIN", TOP / "bin"))
sys.path.insert(0, str(TOP / "tests/detection"))
import locate_ref  # noqa: E402
import synth  # noqa: E402

DIAMETER, MINMASS = 11, 1500
FRAMES = ((1024, 576, 14.0), (2048, 2304, 70.0))     # side, particles, goal (ms)


def time_reloc(path, repeat, threads, rounds=3):
    """Best over rounds of the tool's mean time per run (the machine is shared: the best is the least
    disturbed), and the table."""
    best = np.inf
    for _ in range(rounds):
        result = subprocess.run([str(BIN / "reloc-locate"), str(path), "--diameter", str(DIAMETER), "--minmass",
                                 str(MINMASS), "--repeat", str(repeat), "--threads", str(threads)],
                                capture_output=True, text=True, check=True)
        best = min(best, float(re.search(r"time per frame: ([0-9.eE+-]+) s", result.stderr).group(1)))
    return best, result.stdout


def time_scipy(image, repeat):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        table = locate_ref.locate(image, DIAMETER, minmass=MINMASS)
        best = min(best, time.perf_counter() - t0)
    return best, table


def main():
    rng = np.random.default_rng(2026)
    cores = os.cpu_count()
    print(f"particle location, diameter {DIAMETER}, uint16; peer: scipy.ndimage re-implementation (one thread)")
    print(f"{'frame':>10} {'found':>6} {'peer (ms)':>10} {'reloc 1 thread':>15} {'ratio':>7} "
          f"{f'reloc {cores} threads':>16} {'ratio':>7} {'goal (ms)':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for side, count, goal in FRAMES:
            spacing = side / np.sqrt(count) * 0.7
            image, _, _, _, _ = synth.frame(rng, shape=(side, side), count=count, spacing=spacing,
                                            gradient=(0.05, 0.02))
            path = Path(tmp) / f"frame{side}.tif"
            tifffile.imwrite(path, image)
            repeat = 20 if side == 1024 else 8
            one, table_one = time_reloc(path, repeat, 1)
            many, table_many = time_reloc(path, repeat, 0)
            peer, peer_table = time_scipy(image, 3)
            found = table_one.count("\n") - 1
            assert table_one == table_many and found == len(peer_table["x"]), (found, len(peer_table["x"]))
            print(f"{side:>5}x{side:<4} {found:>6} {peer * 1e3:>10.1f} {one * 1e3:>15.1f} {peer / one:>6.1f}x "
                  f"{many * 1e3:>16.1f} {peer / many:>6.1f}x {goal:>10.0f}")


if __name__ == "__main__":
    main()
