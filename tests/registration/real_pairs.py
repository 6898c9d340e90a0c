"""Real-image registration pairs with known transforms, across signal-to-noise ratios: scikit-image's offline
sample images (grey, float), each cut to a frame with a margin, moved by a known similarity transform with scipy
(cubic splines, registration_scenes.similarity: register.h's model) or by a known translation, and both images
given Poisson noise at a set photon count. Used by the confidence test (tests/registration) and the calibration
bench (bench/bench_registration.py).

mapping_error() is the figure a user cares about: the RMS distance over the reference frame between where a
result maps each pixel and where the truth maps it."""
import numpy as np
from scipy import ndimage
from skimage import data
from skimage.color import rgb2gray

from registration_scenes import similarity

IMAGES = ["camera", "astronaut", "moon", "retina", "coins", "text", "brick", "grass", "gravel", "hubble_deep_field"]
# Photons at the brightest pixel: from a well-exposed frame down to a few photons per pixel.
PHOTONS = [1000.0, 60.0, 12.0, 3.0]


def grey(name, side):
    """The sample image as float grey in 0..1, enlarged when needed so that a side x side square fits; the
    central square."""
    img = getattr(data, name)()
    img = rgb2gray(img) if img.ndim == 3 else img / 255.0
    short = min(img.shape)
    if short < side:
        img = ndimage.zoom(img, side / short * 1.001, order=3)
    y0, x0 = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    return np.clip(img[y0:y0 + side, x0:x0 + side], 0, 1)


def poisson(img, photons, seed):
    """The image counted with photons at 1.0 (plus a dark level of 2 % so that black areas have noise), in
    photons."""
    rng = np.random.default_rng(seed)
    return rng.poisson((np.clip(img, 0, None) + 0.02) * photons).astype(np.float32)


def pairs(n=256, margin=64, similar=True, seed=0):
    """Yields (name, photons, ref, moving, truth) for every image and photon count; truth is a dict with angle_deg,
    scale, tx, ty (about the frame centre). Similarity pairs turn by -30..30 degrees and scale by 0.9..1.12;
    translation pairs move by up to 20 px."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(IMAGES):
        big = grey(name, n + 2 * margin)
        for j, photons in enumerate(PHOTONS):
            if similar:
                truth = dict(angle_deg=float(rng.uniform(-30, 30)), scale=float(rng.uniform(0.9, 1.12)),
                             tx=float(rng.uniform(-8, 8)), ty=float(rng.uniform(-8, 8)))
            else:
                truth = dict(angle_deg=0.0, scale=1.0, tx=float(rng.uniform(-20, 20)), ty=float(rng.uniform(-20, 20)))
            moved = similarity(big, truth["angle_deg"], truth["scale"], truth["tx"], truth["ty"])
            ref = poisson(big[margin:margin + n, margin:margin + n], photons, 100 * k + 2 * j)
            moving = poisson(moved[margin:margin + n, margin:margin + n], photons, 100 * k + 2 * j + 1)
            yield name, photons, ref, moving, truth


def mapping(t, n):
    """Where transform t (angle_deg, scale, tx, ty, centre cx, cy) maps every pixel of an n x n frame."""
    th = np.deg2rad(t["angle_deg"])
    c, s = t["scale"] * np.cos(th), t["scale"] * np.sin(th)
    cx, cy = t.get("center_x", (n - 1) / 2), t.get("center_y", (n - 1) / 2)
    y, x = np.mgrid[0:n, 0:n].astype(float)
    return c * (x - cx) + s * (y - cy) + cx + t["tx"], -s * (x - cx) + c * (y - cy) + cy + t["ty"]


def mapping_error(result, truth, n):
    """RMS over the frame of the distance between the result's and the truth's mapping of each pixel."""
    got = dict(angle_deg=result["angle_deg"], scale=result["scale"], tx=result["shift_x"], ty=result["shift_y"],
               center_x=result["center_x"], center_y=result["center_y"])
    (gx, gy), (tx, ty) = mapping(got, n), mapping(truth, n)
    return float(np.sqrt(np.mean((gx - tx) ** 2 + (gy - ty) ** 2)))
