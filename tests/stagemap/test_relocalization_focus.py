"""Relocalization when the sample height changed: within the depth of field the live detection still finds the
particles; far out of focus the run stops with "out of focus" (the views' sharpness below Reloc:MinSharpness)
instead of matching blurred blobs, and reports no particle. The camera sees the sample of the scene blurred (the
simulated microscope's point-spread function widened, as defocus does)."""
import epics
import numpy as np
import pytest

import ioc as ioc_module
from reloc_scene import RESULT, Remount, make_reference, make_scene, prepare_run, results, score, st_cmd

P = "RF:"


def relocate(tmp, defocus_um, keep):
    scene = make_scene(tmp, defocus_um=defocus_um)
    with ioc_module.Ioc(st_cmd(scene, P), tmp / "ioc", env=ioc_module.session_env()):
        run = make_reference(scene, Remount(-60, 120, 75.0, 1.05))
        run = dict(run, pixels=run["pixels"][keep], stages=run["stages"][keep])
        prepare_run(run, P)
        assert epics.caput(P + "Reloc:SearchRadius", 150, wait=True, timeout=10) == 1
        epics.caput(P + "Reloc:Start", 1, wait=True, timeout=300)
        status, found, _ = results(P, len(keep))
        return (run, status, found, RESULT[epics.caget(P + "Reloc:Result_RBV", timeout=5)],
                epics.caget(P + "Reloc:State_RBV", as_string=True, timeout=5),
                epics.caget(P + "Reloc:Sharpness_RBV", timeout=5))


def test_within_the_depth_of_field_the_particles_are_found(tmp_path):
    run, status, found, result, state, sharpness = relocate(tmp_path, 1.0, [4, 11, 18, 20])
    assert result == "Done", state
    assert score(run, status, found) == dict(found=3, removed_not_found=True, wrong=0,
                                             max_error=pytest.approx(0.25, abs=0.25)), state
    assert sharpness > 6 or np.isnan(sharpness)


def test_far_out_of_focus_the_run_says_so_and_reports_no_particle(tmp_path):
    run, status, found, result, state, sharpness = relocate(tmp_path, 4.0, [4, 11, 18, 20])
    assert result == "Out of focus", state
    assert "out of focus" in state and "sample height" in state
    assert list(status) == [0, 0, 0, 0], state
    assert sharpness < 6, state
