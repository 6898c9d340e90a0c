"""The confidence verdict is calibrated on real images: over >= 40 pairs made from scikit-image's sample images
(real_pairs.py: known similarity transforms or translations, Poisson noise from 1000 down to 3 photons), no pair
is flagged confident with a mapping error above 1 px, most pairs registered right (error < 0.5 px) are flagged
confident, and the estimated error (error_px) is an upper figure for the confident ones. Similarity refinement
stops on its tolerance, converged, and says so when it is not allowed to."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from real_pairs import grey, mapping_error, pairs
from registration_scenes import crop, noisy, register, similarity, write_tiff

N = 256


def run_set(tmp_path, similar):
    def one(item):
        k, (name, photons, ref, moving, truth) = item
        a = write_tiff(tmp_path / f"r{k}.tif", ref)
        b = write_tiff(tmp_path / f"m{k}.tif", moving)
        r = register(a, b, *(["--similarity"] if similar else []))
        return name, photons, r, mapping_error(r, truth, N)
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, enumerate(pairs(n=N, similar=similar))))


@pytest.mark.parametrize("similar", [True, False], ids=["similarity", "translation"])
def test_no_confident_wrong_answer_on_real_images(tmp_path, similar):
    results = run_set(tmp_path, similar)
    assert len(results) >= 40
    wrong = [(n, p, e, r["error_px"]) for n, p, r, e in results if r["confident"] and e > 1]
    assert not wrong, wrong
    right = [r for n, p, r, e in results if e < 0.5]
    share = sum(r["confident"] for r in right) / len(right)
    assert share > 0.6, share
    # The estimate is an upper figure where it matters: for a confident result, the error is below it plus the
    # bias floor of interpolation.
    for n, p, r, e in results:
        if r["confident"]:
            assert e <= 1.5 * r["error_px"] + 0.05, (n, p, e, r)
    # The set holds failures (low photon counts) and the verdict catches every one of them.
    assert any(e > 1 for n, p, r, e in results)


def test_similarity_iterates_to_its_tolerance(tmp_path):
    """512^2, 12 deg, scale 1.1 on a real image: rounds run until the update is below the tolerance, well inside
    the cap, and the mapping is right to about a tenth of a pixel; with no refinement allowed, the result is
    flagged not converged and not confident."""
    n, m = 512, 128
    truth = dict(angle_deg=12.0, scale=1.1, tx=3.3, ty=-2.7)
    for name in ("camera", "brick"):
        big = grey(name, n + 2 * m)
        ref = noisy(crop(big, n, m), 0.02, 1)
        moving = noisy(crop(similarity(big, 12.0, 1.1, 3.3, -2.7), n, m), 0.02, 2)
        a, b = write_tiff(tmp_path / "r.tif", ref), write_tiff(tmp_path / "m.tif", moving)
        r = register(a, b, "--similarity")
        assert r["converged"] and r["confident"], r
        assert 1 <= r["iterations"] < 12, r
        assert mapping_error(r, truth, n) <= 0.116, r
        loose = register(a, b, "--similarity", "--tolerance", "1")
        assert loose["converged"] and loose["iterations"] <= r["iterations"]
        capped = register(a, b, "--similarity", "--iterations", "1")
        assert not capped["converged"] and not capped["confident"] and capped["iterations"] == 0, capped
