#!/usr/bin/python3
"""spectrotomo.py -- simulated spectro-tomography of an NMC-like cathode particle, for reloc-tomoalign and its tests.

The particle is a sphere of LiNi(0.6)Co(0.2)Mn(0.2)O2 holding spherical grains of other Ni/Co/Mn contents (density
4.7 g/cm3). Attenuation per grain comes from xraylib (CS_Total, mass fractions of the formula), so contrast changes
across the Ni, Co and Mn K edges. Projections are exact line integrals of the spheres (no projector, no voxels:
independent of reloc's tomography), parallel beam rotating about the vertical axis. Per energy the pixel size is
pixel_size_ref * E / energy_ref (magnification ~ energy, as on a TXM whose zone plate is refocused), so the particle
shrinks in pixels as the energy rises. Every projection is moved by a random jitter (uniform in +-jitter px, x and
y), the rotation axis sits axis_offset px right of the detector centre (bin nx // 2), and the counts are Poisson
with i0 photons per pixel; the file holds the absorbance -ln(I / I0).

HDF5 layout (what reloc-tomoalign reads; README "Spectro-tomography files"):
  /projections        float32 (energies, angles, y, x)   absorbance; row y is perpendicular to the rotation axis
  /angles             float64 (angles)                   degrees
  /energies           float64 (energies)                 eV
  /pixel_size         float64 (energies)                 nm
  /truth/shift_x, /truth/shift_y   (energies, angles)    px, the jitter applied (content moved by +shift)
  /truth/axis_offset  float64 (energies)                 px
  /truth/scale        float64 (energies)                 pixel_size_ref / pixel_size: the magnification applied
  /truth/grains       float64 (grains, 7)                centre x, y, z (nm), radius (nm), Ni, Co, Mn fractions

Usage: sim/spectrotomo.py OUT.h5 [--size 256] [--angles 180] [--energies 8300,8400] [--jitter 8] [--axis-offset 3]
       [--i0 1e4] [--seed 0] [--noise-energy INDEX]
--noise-energy replaces one energy's projections by noise of the same mean (a failed acquisition)."""
import argparse

import h5py
import numpy as np
import xraylib

ENERGY_REF, PIXEL_REF = 8670.0, 33.4           # eV, nm (the facility's 8670 eV pixel size)
DENSITY = 4.7                                  # g/cm3
MATRIX = (0.6, 0.2, 0.2)                       # Ni, Co, Mn per formula unit of Li(NiCoMn)O2


def mass_attenuation(ni, co, mn, energy_ev):
    """cm2/g of Li(Ni_ni Co_co Mn_mn)O2 at energy_ev (xraylib CS_Total by mass fraction)."""
    atoms = {3: 1.0, 28: ni, 27: co, 25: mn, 8: 2.0}
    weights = {z: n * xraylib.AtomicWeight(z) for z, n in atoms.items()}
    total = sum(weights.values())
    return sum(w / total * xraylib.CS_Total(z, energy_ev / 1000.0) for z, w in weights.items())


def make_grains(rng, radius_nm, count=12):
    """Non-overlapping grains inside the particle: (x, y, z, r, ni, co, mn)."""
    grains = []
    while len(grains) < count:
        r = rng.uniform(0.15, 0.3) * radius_nm
        c = rng.uniform(-1, 1, 3) * (radius_nm - r)
        if np.linalg.norm(c) + r > radius_nm * 0.97:
            continue
        if any(np.linalg.norm(c - g[:3]) < r + g[3] for g in grains):
            continue
        ni = rng.uniform(0.3, 0.9)
        co = rng.uniform(0, 1 - ni)
        grains.append(np.array([*c, r, ni, co, 1 - ni - co]))
    return np.array(grains)


def sphere_projection(u, v, cu, cv, r):
    """Chord length (same units as r) through a sphere centred on the ray grid point (cu, cv)."""
    return 2 * np.sqrt(np.clip(r * r - (u - cu) ** 2 - (v - cv) ** 2, 0, None))


def project(size, angle_deg, pixel_nm, radius_nm, grains, mu_matrix, mu_grains, axis_offset, shift):
    """Absorbance of one projection: matrix sphere plus each grain's excess attenuation, in pixel units."""
    half = size // 2
    v, u = np.mgrid[:size, :size].astype(float)
    u = (u - half - axis_offset - shift[0]) * pixel_nm      # detector coordinates in nm
    v = (v - half - shift[1]) * pixel_nm
    th = np.deg2rad(angle_deg)
    p = mu_matrix * sphere_projection(u, v, 0.0, 0.0, radius_nm)
    for g, mu in zip(grains, mu_grains):
        cu = g[0] * np.cos(th) + g[2] * np.sin(th)
        p += (mu - mu_matrix) * sphere_projection(u, v, cu, g[1], g[3])
    return p


def simulate(path, size=256, n_angles=180, energies=(8300.0, 8400.0), jitter=8.0, axis_offset=3.0, i0=1e4, seed=0,
             noise_energy=None, radius_fraction=0.3):
    rng = np.random.default_rng(seed)
    energies = np.asarray(energies, float)
    angles = np.linspace(0.0, 180.0, n_angles, endpoint=False)
    pixel = PIXEL_REF * energies / ENERGY_REF * 256 / size   # same field of view whatever the size
    radius = radius_fraction * size * pixel.min()            # nm
    grains = make_grains(rng, radius)
    shifts = rng.uniform(-jitter, jitter, (len(energies), n_angles, 2))
    proj = np.empty((len(energies), n_angles, size, size), np.float32)
    for e, energy in enumerate(energies):
        to_per_nm = DENSITY * 1e-7                            # (cm2/g) * (g/cm3) -> 1/cm -> 1/nm
        mu_matrix = mass_attenuation(*MATRIX, energy) * to_per_nm
        mu_grains = [mass_attenuation(*g[4:], energy) * to_per_nm for g in grains]
        for a, angle in enumerate(angles):
            line = project(size, angle, pixel[e], radius, grains, mu_matrix, mu_grains, axis_offset, shifts[e, a])
            counts = rng.poisson(i0 * np.exp(-line))
            proj[e, a] = -np.log(np.maximum(counts, 1) / i0)
        if noise_energy == e:
            proj[e] = rng.normal(proj[e].mean(), proj[e].std() + 1e-3, proj[e].shape)
    with h5py.File(path, "w") as f:
        f["projections"] = proj
        f["angles"] = angles
        f["energies"] = energies
        f["pixel_size"] = pixel
        f["truth/shift_x"] = shifts[..., 0]
        f["truth/shift_y"] = shifts[..., 1]
        f["truth/axis_offset"] = np.full(len(energies), axis_offset)
        f["truth/scale"] = pixel[0] / pixel
        f["truth/grains"] = grains
    return {"shift_x": shifts[..., 0], "shift_y": shifts[..., 1], "angles": angles, "pixel_size": pixel}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--angles", type=int, default=180)
    ap.add_argument("--energies", default="8300,8400")
    ap.add_argument("--jitter", type=float, default=8.0)
    ap.add_argument("--axis-offset", type=float, default=3.0)
    ap.add_argument("--i0", type=float, default=1e4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise-energy", type=int)
    a = ap.parse_args()
    simulate(a.out, a.size, a.angles, [float(e) for e in a.energies.split(",")], a.jitter, a.axis_offset, a.i0,
             a.seed, a.noise_energy)


if __name__ == "__main__":
    main()
