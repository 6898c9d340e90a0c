/* params.c -- registration parameters: defaults, validation, and setting them by name (command-line options of
 * the tools, and later PVs and st.cmd), so every front end accepts the same names and values. */
#include "kernels/registration/registration.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void reg_params_default(reg_params *p)
{
    memset(p, 0, sizeof *p);
    p->upsample = 100;
    p->window = REG_WINDOW_HANN;
    p->tukey_alpha = 0.25;
    p->whitening = REG_DEFAULT_WHITENING;
    p->overlap_windows = 1;
    p->band_high = REG_DEFAULT_BAND_HIGH;
    p->min_psr = REG_DEFAULT_MIN_PSR;
    p->min_correlation = REG_DEFAULT_MIN_CORRELATION;
    p->iterations = REG_DEFAULT_MAX_ITERATIONS;
    p->tolerance = REG_DEFAULT_TOLERANCE;
    p->max_error = REG_DEFAULT_MAX_ERROR;
    p->threads = 1;
    p->effort = REG_PLAN_MEASURE;
}

int reg_params_check(const reg_params *p, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (p->upsample < 1 || p->upsample > 10000) bad = "upsample must be 1..10000";
    else if (p->window < REG_WINDOW_NONE || p->window > REG_WINDOW_TUKEY) bad = "unknown window";
    else if (!(p->tukey_alpha >= 0 && p->tukey_alpha <= 1)) bad = "Tukey alpha must be within 0..1";
    else if (!(p->whitening >= 0 && p->whitening <= 1)) bad = "whitening exponent must be within 0..1";
    else if (!(p->band_low >= 0 && p->band_low < 0.5) || !(p->band_high >= 0 && p->band_high <= 0.5))
        bad = "band limits must be within 0..0.5 cycles/pixel";
    else if (p->band_high > 0 && p->band_high < 0.5 && p->band_low >= p->band_high) bad = "band_low >= band_high";
    else if (!(p->min_psr >= 0)) bad = "min_psr must be >= 0";
    else if (!(p->min_correlation >= -1 && p->min_correlation <= 1)) bad = "min_correlation must be within -1..1";
    else if (!(p->pixel_size >= 0)) bad = "pixel size must be >= 0";
    else if (p->iterations < 1 || p->iterations > 50) bad = "iterations must be 1..50";
    else if (!(p->tolerance > 0 && p->tolerance <= 1)) bad = "tolerance must be within 0..1 pixel (not 0)";
    else if (!(p->max_error > 0 && p->max_error <= 1e6)) bad = "max_error must be > 0 pixels";
    else if (p->threads < 1 || p->threads > 256) bad = "threads must be 1..256";
    if (bad) snprintf(err, errlen, "%s", bad);
    return bad ? -1 : 0;
}


static int parse_double(const char *value, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end) return -1;
    *out = v;
    return 0;
}

int reg_params_set(reg_params *p, const char *name, const char *value, char *err, size_t errlen)
{
    double v = 0;
    if (strcmp(name, "window") == 0) {
        if (strcasecmp(value, "hann") == 0) p->window = REG_WINDOW_HANN;
        else if (strcasecmp(value, "tukey") == 0) p->window = REG_WINDOW_TUKEY;
        else if (strcasecmp(value, "none") == 0) p->window = REG_WINDOW_NONE;
        else goto bad;
        return 0;
    }
    if (strcmp(name, "effort") == 0) {
        if (strcasecmp(value, "estimate") == 0) p->effort = REG_PLAN_ESTIMATE;
        else if (strcasecmp(value, "measure") == 0) p->effort = REG_PLAN_MEASURE;
        else if (strcasecmp(value, "patient") == 0) p->effort = REG_PLAN_PATIENT;
        else goto bad;
        return 0;
    }
    if (parse_double(value, &v) != 0) goto bad;
    int is_int = v == (double)(long)v;
    if (strcmp(name, "upsample") == 0 && is_int) p->upsample = (int)v;
    else if (strcmp(name, "iterations") == 0 && is_int) p->iterations = (int)v;
    else if (strcmp(name, "threads") == 0 && is_int) p->threads = (int)v;
    else if (strcmp(name, "contrast-invariant") == 0 && is_int) p->contrast_invariant = v != 0;
    else if (strcmp(name, "overlap-windows") == 0 && is_int) p->overlap_windows = v != 0;
    else if (strcmp(name, "tukey-alpha") == 0) p->tukey_alpha = v;
    else if (strcmp(name, "whitening") == 0) p->whitening = v;
    else if (strcmp(name, "band-low") == 0) p->band_low = v;
    else if (strcmp(name, "band-high") == 0) p->band_high = v;
    else if (strcmp(name, "min-psr") == 0) p->min_psr = v;
    else if (strcmp(name, "min-correlation") == 0) p->min_correlation = v;
    else if (strcmp(name, "pixel-size") == 0) p->pixel_size = v;
    else if (strcmp(name, "tolerance") == 0) p->tolerance = v;
    else if (strcmp(name, "max-error") == 0) p->max_error = v;
    else if (strcmp(name, "upsample") == 0 || strcmp(name, "iterations") == 0 || strcmp(name, "threads") == 0 ||
             strcmp(name, "contrast-invariant") == 0 || strcmp(name, "overlap-windows") == 0) goto bad;
    else {
        snprintf(err, errlen, "unknown registration parameter '%s'", name);
        return -1;
    }
    return reg_params_check(p, err, errlen);
bad:
    snprintf(err, errlen, "bad value '%s' for %s", value, name);
    return -1;
}
