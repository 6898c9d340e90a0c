/* simscope.h -- the simulated inline microscope: what the camera sees of a described sample at a given
 * stage position and zoom. Used by the camera's "sim" frame source and by tests that need ground truth.
 *
 * Coordinates. A sample description lists features in SAMPLE coordinates (micrometres). The sample is
 * mounted on the stage with an offset and rotation (the "mount", part of the description, so a test can
 * remount a sample by editing it): stage = R(mount_rotation) * sample + mount_offset. A feature at stage
 * coordinate m is on the beam -- at the beam pixel (bx, by) of the image -- when the stage motors stand at
 * m. So pixel (u, v) shows stage point m = stage_position + ((u - bx) * px, (v - by) * px) for pixel size
 * px, with optional flips and a camera rotation. Moving the stage by +d moves the image content by -d/px.
 *
 * Image model: counts = background * illumination(u, v) * (1 + sum of feature contrasts * feature profile),
 * where profiles are shapes blurred by a Gaussian point-spread function (PSF, micrometres, fixed by the
 * optics), the illumination has a linear gradient, then shot noise (Poisson in electrons), Gaussian read
 * noise, gain, and clipping to 16 bits. Rendering is deterministic for a given seed.
 */
#ifndef RELOC_SIMSCOPE_H
#define RELOC_SIMSCOPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum { FEATURE_PARTICLE, FEATURE_SQUARE, FEATURE_L, FEATURE_EDGE } simscope_feature_kind;

typedef struct simscope_feature {
    simscope_feature_kind kind;
    int id;                    /* particles: the id given in the file (ground truth for tests) */
    double x, y;               /* sample coordinates (um): centre; L: corner; edge: a point on the edge */
    double size;               /* particle: radius; square: side; L: arm length; edge: unused (um) */
    double width;              /* L: arm width (um) */
    double angle_deg;          /* orientation in sample coordinates; edge: direction of its normal */
    double contrast;           /* relative change of intensity inside (negative: dark) */
    int removed;               /* 1: listed but no longer on the sample (relocalization must not find it) */
} simscope_feature;

typedef struct simscope_sample {
    char name[64];
    double mount_x, mount_y;        /* mount offset (um) */
    double mount_rotation_deg;      /* mount rotation */
    double background;              /* counts of the bare substrate at unit exposure and gain */
    double psf_sigma;               /* um */
    simscope_feature *features;
    int nfeatures;
} simscope_sample;

typedef struct simscope_view {
    int width, height;              /* pixels */
    double pixel_size;              /* um per pixel at the current zoom */
    double beam_x, beam_y;          /* beam pixel (default: image centre) */
    double stage_x, stage_y;        /* current stage position (um) */
    double camera_rotation_deg;     /* camera axes vs stage axes */
    int flip_x, flip_y;
    double exposure;                /* scales the signal (1 = background counts as described) */
    double gain;                    /* output counts per electron */
    double read_noise;              /* electrons rms */
    double gradient_x, gradient_y;  /* relative illumination change across the full width/height */
    int noise;                      /* 0: noiseless (exact expectation) */
    uint64_t seed;
} simscope_view;

/* Loads a JSON sample description (see sim/sample_default.json). NULL with a message on any error. */
simscope_sample *simscope_load(const char *path, char *err, size_t errlen);
void simscope_free(simscope_sample *sample);
/* Fills view with defaults for a width x height camera: centre beam, pixel size 1, exposure/gain 1, no
 * gradient, noise on. */
void simscope_view_defaults(simscope_view *view, int width, int height);
/* Renders the noiseless expected counts of one frame into expected (width * height, x fastest).
 * Thread-safe; allocates nothing. */
void simscope_render(const simscope_sample *sample, const simscope_view *view, float *expected);
/* Turns expected counts into a camera frame: shot noise, read noise, gain, clipping to 0..65535 (only
 * rounding and clipping when view->noise is 0). Deterministic for view->seed. */
void simscope_expose(const simscope_view *view, const float *expected, uint16_t *out);
/* Where a sample point appears in the image for this view (ground truth for tests). */
void simscope_sample_to_pixel(const simscope_sample *sample, const simscope_view *view, double sx, double sy,
                              double *u, double *v);
/* Stage position that puts a sample point on the beam. */
void simscope_sample_to_stage(const simscope_sample *sample, double sx, double sy, double *mx, double *my);

#endif
