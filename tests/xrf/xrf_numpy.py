"""xrf_numpy.py -- an independent, vectorized numpy implementation of reloc's XRF self-absorption correction
(the triangular sweep from the detector edge, documented in src/kernels/xrf/xrf.h), used as the reference in tests and as
the peer in bench/bench_xrf.py.

It takes the prepared parameters that reloc records with every result (the "parameters" JSON: xraylib mass
attenuation coefficients, cone directions and path weights), since python3-xraylib is not packaged here; the
coefficients themselves are checked against the paper's Table 1 by tests/xrf/test_xrf_coefficients.py."""
import json

import numpy as np


class Params:
    def __init__(self, parameters):
        p = json.loads(parameters) if isinstance(parameters, (str, bytes)) else parameters
        d = p["derived"]
        self.n = len(p["elements"])
        self.symbols = [e["symbol"] for e in p["elements"]]
        self.sensitivity = np.array([e["sensitivity"] for e in p["elements"]])
        self.density_measured = np.array([e["density"] for e in p["elements"]])
        self.matrix_fraction = np.array([m["fraction"] for m in p["matrix"]])
        self.matrix_density = np.array([m["density"] for m in p["matrix"]])
        self.matrix_total = float(self.matrix_fraction.sum()) if len(self.matrix_fraction) else 0.0
        self.density = p["density_g_cm3"]
        self.mu = np.array(d["mu_mass_cm2_g"])            # (absorbers, 1 + n)
        self.slope = np.array(d["theta_slope"])            # (T,)
        self.path_weight = np.array(d["path_weight"])      # (T, P)
        # Columns of equal path weights (phi and -phi) give equal exponentials: evaluate each once.
        self.weight_columns, self.weight_counts = np.unique(self.path_weight, axis=1, return_counts=True)
        self.pixel_cm = p["pixel_um"] * 1e-4
        self.depth_voxels = p["depth_voxels"]
        self.voxel_per_pixel = p["thickness_um"] / p["depth_voxels"] / p["pixel_um"]
        self.z_step = np.array(d["z_step_um"])             # (T, P): depth change per row crossed
        self.thickness_um = p["thickness_um"]
        num = p["numerics"]
        self.mean_exp = num["averaging"] == "mean_exp"
        self.half_source = num["source_voxel"] == "half"
        self.escape = num["face_escape"] == "escape"


def _depths(pr, w):
    """Optical depth per pixel length at every energy, (1 + n, W), for measured fractions w (n, W)."""
    measured = w.sum(axis=0)
    inverse = (w / pr.density_measured[:, None]).sum(axis=0)
    mu = pr.mu[: pr.n].T @ w
    if len(pr.matrix_fraction):
        inverse = inverse + (pr.matrix_fraction / pr.matrix_density).sum()
        mu = mu + (pr.matrix_fraction @ pr.mu[pr.n:])[:, None]
    rho = np.full_like(measured, pr.density) if pr.density > 0 else 1.0 / np.where(inverse > 0, inverse, 1.0)
    depth = mu * rho * pr.pixel_cm
    return np.where(measured > 0, depth, 0.0)


def _fractions(pr, yields):
    total = yields.sum(axis=0)
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, (1 - pr.matrix_total) * yields / safe, 0.0)


def _exit_factors(pr, tau, self_depth):
    """tau (n, T, W), self_depth (n, W) -> cone-averaged exit factor (n, W)."""
    depth = (tau + self_depth[:, None, :])[:, :, None, :] * pr.weight_columns[None, :, :, None]
    weights = pr.weight_counts[None, None, :, None] / pr.path_weight.size
    if pr.mean_exp:
        return (np.exp(-depth) * weights).sum(axis=(1, 2))
    return np.exp(-(depth * weights).sum(axis=(1, 2)))


def _beam_factor(pr, a):
    n = pr.depth_voxels
    safe = np.where(a < 1e-300, 1.0, a)
    return np.where(a < 1e-300, 1.0, np.expm1(-n * safe) / (n * np.expm1(-safe)))


def _path_end(slope, width, height, x_at_row0):
    """Y where the lines X = x_at_row0 + Y slope leave the map (through the top or a side)."""
    if slope < 0:
        return np.minimum(height - 0.5, (-0.5 - x_at_row0) * (1.0 / slope))
    if slope > 0:
        return np.minimum(height - 0.5, (width - 0.5 - x_at_row0) * (1.0 / slope))
    return np.full(np.shape(x_at_row0), height - 0.5)


def correct(pr, counts, i0, on_row=None):
    """counts (n, H, W), i0 (H, W) -> corrected counts (n, H, W), weight fractions (n, H, W).
    on_row(y) is called after each row (for per-row timing).

    Planar exit paths: per direction, a running sum of depth along digital lines (pixel (u + round(r s), r) of every
    row r), with the ray's exact clipped length at the map's sides charged at the depth where the line ends. The
    state of a row, per element and direction: `along`, the line's depth from the row on, and `extent`, the depth
    where it ends, for every column and `ghost` columns beyond each side. Vectorised over elements and columns; the
    loops are over rows (which depend on each other) and the few directions."""
    if pr.escape:
        return _correct_escape(pr, counts, i0)
    n, height, width = counts.shape
    n_theta = len(pr.slope)
    corrected = np.empty_like(counts, dtype=float)
    fractions = np.empty_like(counts, dtype=float)
    ghost = int(np.ceil(np.abs(pr.slope).max())) + 2
    w2 = width + 2 * ghost
    x = np.arange(width, dtype=float)
    edge_pixel = np.clip(np.arange(-ghost, width + ghost), 0, width - 1)
    # Per direction: the line offset of every row, and where every line u ends (u from u_low on).
    offsets = [np.floor(np.arange(height + 1) * s + 0.5).astype(int) for s in pr.slope]
    u_low = [-ghost - o.max() for o in offsets]
    line_end = [_path_end(s, width, height, np.arange(u_low[t], width + ghost - offsets[t].min(), dtype=float))
                for t, s in enumerate(pr.slope)]
    along = extent = None
    half = 0.5 if pr.half_source else 0.0
    tau = np.zeros((n, n_theta, width))
    for y in range(height - 1, -1, -1):
        shift = [offsets[t][y + 1] - offsets[t][y] for t in range(n_theta)]
        first = [-ghost - offsets[t][y] - u_low[t] for t in range(n_theta)]   # line_end index of column -ghost
        if along is not None:
            for t, s in enumerate(pr.slope):
                own = np.maximum(0, _path_end(s, width, height, x - y * s) - (y + 0.5))
                line = np.maximum(0, line_end[t][first[t] + ghost: first[t] + ghost + width] - (y + 0.5))
                src = slice(ghost + shift[t], ghost + shift[t] + width)
                np.maximum(0, along[:, t, src] + extent[:, t, src] * (own - line), out=tau[:, t])
        c_row = counts[:, y, :]
        base = c_row / (i0[y][None, :] * pr.sensitivity[:, None])
        w = _fractions(pr, base)
        depth = _depths(pr, w)
        for _ in range(200 if pr.half_source else 1):
            afl = _exit_factors(pr, tau, half * depth[1:])
            previous = w
            w = _fractions(pr, base / afl)
            depth = _depths(pr, w)
            if np.max(np.abs(w - previous)) < 1e-15:
                break
        if pr.half_source:
            afl = _exit_factors(pr, tau, half * depth[1:])
        beam = _beam_factor(pr, depth[0] * pr.voxel_per_pixel)
        corrected[:, y, :] = c_row / (beam[None, :] * afl)
        fractions[:, y, :] = w
        d = depth[1:, edge_pixel]                                        # (n, W2)
        new_along, new_extent = np.empty((n, n_theta, w2)), np.empty((n, n_theta, w2))
        for t in range(n_theta):
            end = line_end[t][first[t]: first[t] + w2]
            new_along[:, t] = d * np.clip(end - (y - 0.5), 0, 1)
            new_extent[:, t] = d
            if along is not None:
                lo, hi = max(0, -shift[t]), min(w2, w2 - shift[t])
                new_along[:, t, lo:hi] += along[:, t, lo + shift[t]: hi + shift[t]]
                carried = end[lo:hi] > y + 0.5
                new_extent[:, t, lo:hi] = np.where(carried, extent[:, t, lo + shift[t]: hi + shift[t]],
                                                   new_extent[:, t, lo:hi])
        along, extent = new_along, new_extent
        if on_row is not None:
            on_row(y)
    return corrected, fractions


def _rows_before_escape(pr):
    """(N, T, P): rows an exit ray from each depth voxel crosses before it leaves the slab through a face."""
    z = (np.arange(pr.depth_voxels) + 0.5) * pr.thickness_um / pr.depth_voxels
    step = pr.z_step[None, :, :]
    zz = z[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        to_face = np.where(step > 0, (pr.thickness_um - zz) / step, np.where(step < 0, zz / -step, np.inf))
    return np.where(to_face > 0.5, to_face - 0.5, 0.0)


def _correct_escape(pr, counts, i0):
    """Face escape: exit paths summed ray by ray over the rows toward the detector, exit factors per depth."""
    n, height, width = counts.shape
    corrected = np.empty_like(counts, dtype=float)
    fractions = np.empty_like(counts, dtype=float)
    depth_map = np.zeros((n, height, width))
    escape_rows = _rows_before_escape(pr)                          # (N, T, P)
    x = np.arange(width)
    n_vox = pr.depth_voxels
    for y in range(height - 1, -1, -1):
        rows = height - 1 - y
        k = np.arange(1, rows + 1)
        prefix = np.zeros((n, len(pr.slope), width, rows + 1))
        for t, s in enumerate(pr.slope):
            u = x[:, None] + k[None, :] * s                          # (W, rows)
            i = np.floor(u).astype(int)
            f = u - i
            rows_k = y + k[None, :]
            lo_ok, hi_ok = (i >= 0) & (i < width), (i + 1 >= 0) & (i + 1 < width)
            lo = np.where(lo_ok, depth_map[:, rows_k, np.clip(i, 0, width - 1)], 0.0)
            hi = np.where(hi_ok, depth_map[:, rows_k, np.clip(i + 1, 0, width - 1)], 0.0)
            prefix[:, t, :, 1:] = np.cumsum((1 - f) * lo + f * hi, axis=-1)
        # Optical depth of every (depth voxel, direction) ray, cut where it leaves the slab: (n, N, T, P, W).
        K = np.minimum(escape_rows, rows)
        k0 = np.minimum(np.floor(K).astype(int), rows)
        k1 = np.minimum(k0 + 1, rows)
        t_index = np.arange(len(pr.slope))[None, :, None]
        by_ray = prefix.transpose(1, 3, 0, 2)                        # (T, rows + 1, n, W)
        p0 = np.moveaxis(by_ray[t_index, k0], 3, 0)                  # (n, N, T, P, W)
        p1 = np.moveaxis(by_ray[t_index, k1], 3, 0)
        frac = (K - k0)[None, :, :, :, None]
        tau = np.where((K >= rows)[None, :, :, :, None], prefix[:, :, :, rows][:, None, :, None, :],
                       p0 + frac * (p1 - p0))

        def exit_profile(self_depth):
            d = (tau + self_depth[:, None, None, None, :]) * pr.path_weight[None, None, :, :, None]
            if pr.mean_exp:
                return np.exp(-d).mean(axis=(2, 3))                 # (n, N, W)
            return np.exp(-d.mean(axis=(2, 3)))

        base = counts[:, y, :] / (i0[y][None, :] * pr.sensitivity[:, None])
        w = _fractions(pr, base)
        depth = _depths(pr, w)
        afl = exit_profile(np.zeros((n, width)))

        def factors(depth):
            profile = exit_profile(0.5 * depth[1:]) if pr.half_source else afl
            a = depth[0] * pr.voxel_per_pixel
            beam = np.exp(-np.arange(n_vox)[:, None] * a[None, :])   # (N, W)
            return (beam[None] * profile).mean(axis=1)

        for _ in range(200):
            factor = factors(depth)
            previous = w
            w = _fractions(pr, base / factor)
            depth = _depths(pr, w)
            if np.max(np.abs(w - previous)) < 1e-15:
                break
        factor = factors(depth)
        corrected[:, y, :] = counts[:, y, :] / factor
        fractions[:, y, :] = w
        depth_map[:, y, :] = depth[1:]
    return corrected, fractions
