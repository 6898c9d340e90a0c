/* geometry.h -- coordinates between image layers (SEM, AFM, optical, XRF map, live camera) and the sample
 * stage: 2D affine transforms, their least-squares fit from fiducial pairs (with residuals, RMS and robust
 * rejection of outliers), and the pixel <-> stage geometry of an image layer. Plain C: no IOC, no I/O.
 *
 * Conventions. A transform maps p to M p + t. Stage coordinates are micrometres. A layer's pixel (u, v) has
 * u to the right and v down the image, sampled at pixel centres; its geometry says where one reference
 * pixel lies on the stage, the pixel size per axis, a rotation of the image axes against the stage axes and
 * optional flips:  stage = ref_stage + R(rotation) * diag(sx * fx, sy * fy) * (pixel - ref_pixel),
 * fx = -1 when flipped in x. For the live camera the reference pixel is the beam (crosshair) pixel and the
 * reference stage position is the current motor position, as in the simulated microscope (simscope.h).
 */
#ifndef RELOC_MAPPING_H
#define RELOC_MAPPING_H

#include <stddef.h>

typedef struct affine2d {
    double m[2][2];
    double t[2];
} affine2d;

affine2d affine_identity(void);
void affine_apply(const affine2d *a, double x, double y, double *out_x, double *out_y);
/* 0, or -1 when the matrix is singular. */
int affine_invert(const affine2d *a, affine2d *inverse);
/* outer(inner(p)) */
affine2d affine_compose(const affine2d *outer, const affine2d *inner);
/* Scale per axis, rotation of the x axis (degrees, counter-clockwise), shear, and whether it mirrors. */
void affine_decompose(const affine2d *a, double *scale_x, double *scale_y, double *rotation_deg, double *shear,
                      int *mirrored);

typedef enum { FIT_SIMILARITY, FIT_AFFINE } fit_kind;

#define FIT_MAX_POINTS 512

typedef struct fit_result {
    affine2d transform;           /* dst ~= transform(src) */
    int n;                        /* pairs given */
    int ninliers;                 /* pairs used by the final fit */
    double rms;                   /* root mean square residual over the inliers (dst units) */
    double residual[FIT_MAX_POINTS];      /* |transform(src_i) - dst_i| for every pair */
    unsigned char inlier[FIT_MAX_POINTS]; /* 1 when pair i was used */
} fit_result;

/* Least-squares fit of dst ~= T(src) for n point pairs.
 *   FIT_SIMILARITY: rotation, uniform scale and translation (no mirror); 2 pairs determine it exactly.
 *   FIT_AFFINE: 6 parameters; needs 3 pairs that are not collinear.
 * robust (used when n >= 5): tries every minimal subset (or 2000 seeded random ones when there are more);
 * with a threshold (dst units) keeps the model with the most pairs within it, with threshold 0 the model
 * with the least median residual and 3 times that median as threshold (at least 1e-6); refits on the pairs
 * within the threshold and reports the others as outliers. Works while fewer than half the pairs are bad.
 * Returns 0, or -1 with a message (too few pairs, degenerate geometry, n over FIT_MAX_POINTS). */
int transform_fit(const double (*src)[2], const double (*dst)[2], int n, fit_kind kind, int robust,
                  double threshold, fit_result *out, char *err, size_t errlen);

/* Rotation-invariant matching of point constellations (constellation.c): the similarity scene ~= T(model) of
 * any rotation, a scale within [scale_min, scale_max] and, with allow_mirror, either handedness, that lays the
 * most scene points within tolerance of a model point. Seeds are scene pairs of length [pair_min, pair_max]
 * against model pairs of the same length (up to the scale bounds); deterministic for given inputs. */
typedef struct constellation_params {
    double tolerance;               /* scene units: a scene point is explained within this distance */
    double scale_min, scale_max;    /* bounds of the scale of T */
    double pair_min, pair_max;      /* lengths (scene units) of the scene pairs that seed proposals */
    int max_seed_pairs;             /* at most this many scene pairs seed (a seeded spread of them) */
    int allow_mirror;               /* also try the mirrored handedness */
} constellation_params;

typedef struct constellation_result {
    affine2d transform;    /* model -> scene, scale * R(rotation) * (mirrored ? diag(1, -1) : 1) + t */
    int mirrored;
    double scale, rotation_deg;
    int matches;           /* scene points within tolerance of a model point under transform (0: no proposal) */
    int runner_up;         /* scene points the best *different* placement explains: near matches = ambiguous */
    double rms;            /* of the matched pairs (scene units) */
    int hypotheses;        /* proposals scored on the whole scene */
} constellation_result;

/* tolerance 1, scales 0.9..1.1, pairs 15..70, 400 seed pairs, mirror allowed. */
void constellation_params_default(constellation_params *p);
/* Matches scene to model (>= 3 points each). scene_match (nscene entries, or NULL) receives for every scene
 * point the index of its model point or -1. A scene without any consistent placement gives matches = 0 and
 * returns 0; -1 with a message only for bad parameters or too few points. The caller judges the answer
 * (matches against the scene size, runner_up against matches). */
int constellation_match(const double (*model)[2], int nmodel, const double (*scene)[2], int nscene,
                        const constellation_params *p, constellation_result *out, int *scene_match, char *err,
                        size_t errlen);

typedef struct layer_geometry {
    double pixel_size_x, pixel_size_y;    /* um per pixel */
    double ref_pixel_x, ref_pixel_y;      /* a reference pixel (e.g. the image centre or the beam pixel) */
    double ref_stage_x, ref_stage_y;      /* where that pixel is on the stage (um) */
    double rotation_deg;                  /* image axes against stage axes, counter-clockwise */
    int flip_x, flip_y;
} layer_geometry;

/* The pixel -> stage transform of a layer (its inverse maps stage -> pixel). */
affine2d layer_pixel_to_stage(const layer_geometry *g);
/* The geometry whose pixel -> stage transform is closest to a fitted transform whose reference pixel is
 * (ref_x, ref_y): pixel sizes, rotation and flips read off the matrix (shear is dropped). */
layer_geometry layer_from_transform(const affine2d *pixel_to_stage, double ref_x, double ref_y);

#endif
