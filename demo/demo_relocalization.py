"""demo/demo_relocalization.py -- automated relocalization with the simulated microscope and motors: the SEM-like
reference with the particles chosen in it, a live camera frame with the beam crosshair on a relocated particle, and
the stage map after the run (reference warped by the fitted reference -> stage transform, the nominal-mount guess
for each particle, where the IOC found it, and the removed particle reported as not found). Starts its own IOC on
free loopback ports. Writes relocalization.png into argv[1]."""
import os
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(os.environ.get("RELOC_TOP", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(TOP / "tests"))
sys.path.insert(0, str(TOP / "tests/stagemap"))
import ioc as ioc_module  # noqa: E402

CA_PORT, REPEATER_PORT = ioc_module.free_port(), ioc_module.free_port()
os.environ.update({"EPICS_CA_SERVER_PORT": str(CA_PORT), "EPICS_CA_REPEATER_PORT": str(REPEATER_PORT),
                   "EPICS_CA_ADDR_LIST": "127.0.0.1", "EPICS_CA_AUTO_ADDR_LIST": "NO",
                   "EPICS_CA_MAX_ARRAY_BYTES": "100000000"})

import epics  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402
from reloc_scene import LIVE_PIXEL, LIVE_SIZE, MOUNT, REF_PIXEL, REF_SIZE, STATUS, make_scene, prepare_run, st_cmd  # noqa: E402,E501

P = "DEMO:"


def get(name, **kw):
    return epics.caget(P + name, timeout=5, **kw)


def main(outdir):
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        scene = make_scene(Path(tmp))
        env = ioc_module.server_env(CA_PORT, REPEATER_PORT)
        with ioc_module.Ioc(st_cmd(scene, P), Path(tmp) / "ioc", env=env):
            prepare_run(scene, P)
            assert epics.caput(P + "Reloc:Start", 1, wait=True, timeout=240) == 1
            n = len(scene["pixels"])
            found = np.column_stack([get("Reloc:StageX_RBV")[:n], get("Reloc:StageY_RBV")[:n]])
            status = np.asarray(get("Reloc:Status_RBV")[:n])
            matrix = np.asarray(get("Ref:Matrix_RBV")).reshape(2, 3)
            # a live frame with a relocated particle on the beam
            epics.caput(P + "Move:Particle", 0, wait=True)
            epics.caput(P + "Move:CentreParticle", 1, wait=True, timeout=30)
            epics.caput(P + "cam1:Acquire", 0, wait=True)
            epics.caput(P + "cam1:ImageMode", 0, wait=True)
            before = get("image1:UniqueId_RBV")
            epics.caput(P + "cam1:Acquire", 1, wait=True, timeout=10)
            deadline = time.monotonic() + 5     # the image thread publishes the frame after the acquisition
            while get("image1:UniqueId_RBV") == before and time.monotonic() < deadline:
                time.sleep(0.05)
            live = np.asarray(get("image1:ArrayData", count=LIVE_SIZE * LIVE_SIZE), float).reshape(LIVE_SIZE, LIVE_SIZE)
        ref = tifffile.imread(scene["ref"]).astype(float)

    errors = np.hypot(*(found - scene["stages"]).T)
    ok = status == 1
    fig, ax = plt.subplots(1, 3, figsize=(19, 6.6))
    ax[0].imshow(ref, cmap="gray", vmin=np.percentile(ref, 1), vmax=np.percentile(ref, 99.5))
    ax[0].scatter(*scene["pixels"][:-1].T, s=60, facecolors="none", edgecolors="lime", label="chosen particles")
    ax[0].scatter(*scene["pixels"][-1], s=90, marker="x", color="red", label="chosen, since removed")
    ax[0].set_title(f"SEM-like reference ({REF_PIXEL} um/px), nominal mount")
    ax[0].legend(loc="lower right", fontsize=8)

    c = (LIVE_SIZE - 1) / 2
    ax[1].imshow(live, cmap="gray", vmin=np.percentile(live, 1), vmax=np.percentile(live, 99.5))
    ax[1].axhline(c, color="yellow", lw=0.6)
    ax[1].axvline(c, color="yellow", lw=0.6)
    ax[1].set_title(f"live camera ({LIVE_PIXEL} um/px): particle 0 centred on the beam")

    # the reference in stage coordinates through the fitted transform (corners -> extent; rotation is small)
    corners = np.array([[0, 0], [REF_SIZE - 1, REF_SIZE - 1]], float) @ matrix[:, :2].T + matrix[:, 2]
    ax[2].imshow(ref, cmap="gray", extent=[corners[0, 0], corners[1, 0], corners[1, 1], corners[0, 1]],
                 vmin=np.percentile(ref, 1), vmax=np.percentile(ref, 99.5), alpha=0.6)
    nominal = (scene["pixels"] - (REF_SIZE - 1) / 2) * REF_PIXEL
    ax[2].scatter(*nominal.T, s=25, marker="s", facecolors="none", edgecolors="orange", label="nominal-mount guess")
    ax[2].scatter(*scene["stages"].T, s=80, marker="+", color="cyan", label="truth (sample description)")
    ax[2].scatter(*found[ok].T, s=60, facecolors="none", edgecolors="lime", label="relocated (found)")
    ax[2].scatter(*found[~ok].T, s=90, marker="x", color="red", label="not found / other")
    for i in range(n):
        ax[2].annotate(STATUS[int(status[i])] if not ok[i] else f"{errors[i]:.2f}", found[i], fontsize=6, color="white")
    ax[2].set_title(f"stage map after the run: mount ({MOUNT[0]:.0f}, {MOUNT[1]:.0f}) um, {MOUNT[2]} deg; "
                    f"max error {errors[ok].max():.3f} um", fontsize=9)
    ax[2].set_xlabel("stage x (um)")
    ax[2].set_ylabel("stage y (um)")
    ax[2].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(outdir / "relocalization.png", dpi=110)
    print(f"relocalization.png: {ok.sum()} of {n} found, max error {errors[ok].max():.3f} um, "
          f"removed particle: {STATUS[int(status[-1])]}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo/out"))
