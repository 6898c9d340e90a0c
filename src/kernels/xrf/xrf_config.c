/* xrf_config.c -- the XRF correction's configuration: defaults, the JSON form, and the coefficients derived from
 * it through xraylib (line energies, densities, CS_Total mass attenuation) and the detector cone (directions and
 * their path lengths). Nothing here keeps state between calls. */
#include "kernels/xrf/xrf.h"

#include "core/base/base.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xraylib.h>
#include <xraylib-parser.h>

#ifndef RELOC_XRAYLIB_VERSION
#define RELOC_XRAYLIB_VERSION "unknown"
#endif

const char *xrf_xraylib_version(void) { return RELOC_XRAYLIB_VERSION; }

static const struct { const char *name; int line; } line_names[] = {
    {"KA", KA_LINE}, {"KB", KB_LINE}, {"LA", LA_LINE}, {"LB", LB_LINE},
    {"KA1", KA1_LINE}, {"KA2", KA2_LINE}, {"LA1", LA1_LINE}, {"MA1", MA1_LINE},
};

static const char *const path_factor_names[] = {"oblique", "normal"};
static const char *const averaging_names[] = {"mean_exp", "exp_mean"};
static const char *const source_voxel_names[] = {"exclude", "half"};
static const char *const sweep_names[] = {"gauss_seidel", "jacobi"};
static const char *const faces_names[] = {"planar", "escape"};

void xrf_config_defaults(xrf_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->energy_kev = 12.0;
    cfg->thickness_um = 5.0;
    cfg->depth_voxels = 100;
    cfg->pixel_um = 0.05;
    cfg->distance_mm = 20.0;
    cfg->active_x_mm = 10.0;
    cfg->active_z_mm = 10.0;
    cfg->num.n_theta = 5;
    cfg->num.n_phi = 3;
    cfg->num.path_factor = XRF_PATH_OBLIQUE;
    cfg->num.averaging = XRF_AVG_MEAN_EXP;
    cfg->num.source_voxel = XRF_SOURCE_EXCLUDE;
    cfg->num.sweep = XRF_SWEEP_GAUSS_SEIDEL;
    cfg->num.tolerance = 0.01;
    cfg->num.max_iterations = 100;
}

/* Atomic number and density of an element symbol through xraylib; -1 with a message when unknown. */
static int lookup_element(const char *symbol, int *z, double *density, char *err, size_t errlen)
{
    xrl_error *xe = NULL;
    *z = SymbolToAtomicNumber(symbol, &xe);
    if (xe || *z <= 0) {
        snprintf(err, errlen, "unknown element symbol '%s'", symbol);
        if (xe) xrl_error_free(xe);
        return -1;
    }
    *density = ElementDensity(*z, &xe);
    if (xe) {
        snprintf(err, errlen, "xraylib has no density for %s: %s", symbol, xe->message);
        xrl_error_free(xe);
        return -1;
    }
    return 0;
}

int xrf_config_add_element(xrf_config *cfg, const char *symbol, const char *line, double line_kev,
                           double sensitivity, char *err, size_t errlen)
{
    if (cfg->n_elements >= XRF_MAX_ELEMENTS) {
        snprintf(err, errlen, "at most %d measured elements", XRF_MAX_ELEMENTS);
        return -1;
    }
    xrf_element *e = &cfg->element[cfg->n_elements];
    memset(e, 0, sizeof *e);
    if (str_copy(e->symbol, symbol, sizeof e->symbol) >= sizeof e->symbol ||
        str_copy(e->line_name, line, sizeof e->line_name) >= sizeof e->line_name) {
        snprintf(err, errlen, "element '%s' line '%s': name too long", symbol, line);
        return -1;
    }
    if (lookup_element(symbol, &e->z, &e->density, err, errlen) < 0) return -1;
    e->line_kev = line_kev;
    e->sensitivity = sensitivity;
    cfg->n_elements++;
    return 0;
}

int xrf_config_add_matrix(xrf_config *cfg, const char *symbol, double fraction, char *err, size_t errlen)
{
    if (cfg->n_matrix >= XRF_MAX_MATRIX) {
        snprintf(err, errlen, "at most %d matrix elements", XRF_MAX_MATRIX);
        return -1;
    }
    xrf_matrix_element *m = &cfg->matrix[cfg->n_matrix];
    memset(m, 0, sizeof *m);
    if (str_copy(m->symbol, symbol, sizeof m->symbol) >= sizeof m->symbol) {
        snprintf(err, errlen, "matrix element '%s': name too long", symbol);
        return -1;
    }
    if (lookup_element(symbol, &m->z, &m->density, err, errlen) < 0) return -1;
    m->fraction = fraction;
    cfg->n_matrix++;
    return 0;
}

/* xraylib's macro for a line name; -1 when the name is not one we accept. */
static int find_line(const char *name, int *code)
{
    for (size_t i = 0; i < sizeof line_names / sizeof line_names[0]; i++)
        if (!strcmp(line_names[i].name, name)) { *code = line_names[i].line; return 0; }
    return -1;
}

static double mass_attenuation(int z, double kev, char *err, size_t errlen)
{
    xrl_error *xe = NULL;
    double mu = CS_Total(z, kev, &xe);
    if (xe) {
        snprintf(err, errlen, "xraylib CS_Total(Z=%d, %.4f keV): %s", z, kev, xe->message);
        xrl_error_free(xe);
        return -1;
    }
    return mu;
}

/* Absorber a: the measured elements, then the matrix elements. */
static int absorber_z(const xrf_config *cfg, int a)
{
    return a < cfg->n_elements ? cfg->element[a].z : cfg->matrix[a - cfg->n_elements].z;
}

static const char *absorber_symbol(const xrf_config *cfg, int a)
{
    return a < cfg->n_elements ? cfg->element[a].symbol : cfg->matrix[a - cfg->n_elements].symbol;
}

int xrf_config_prepare(xrf_config *cfg, char *err, size_t errlen)
{
    xrf_numerics *num = &cfg->num;
    if (cfg->n_elements < 1) { snprintf(err, errlen, "no measured elements configured"); return -1; }
    if (!(cfg->energy_kev > 0.5 && cfg->energy_kev < 200)) {
        snprintf(err, errlen, "incident energy %g keV out of range (0.5..200)", cfg->energy_kev);
        return -1;
    }
    if (!(cfg->thickness_um > 0) || cfg->depth_voxels < 1 || cfg->depth_voxels > 100000 || !(cfg->pixel_um > 0)) {
        snprintf(err, errlen, "thickness and pixel size must be positive, depth_voxels 1..100000");
        return -1;
    }
    if (num->n_theta < 1 || num->n_theta > XRF_MAX_THETA || num->n_phi < 1 || num->n_phi > XRF_MAX_PHI) {
        snprintf(err, errlen, "n_theta must be 1..%d and n_phi 1..%d", XRF_MAX_THETA, XRF_MAX_PHI);
        return -1;
    }
    if (!(num->tolerance > 0) || num->max_iterations < 1) {
        snprintf(err, errlen, "tolerance must be > 0 and max_iterations >= 1");
        return -1;
    }
    /* An element given twice would be measured twice or absorb twice, and its maps would collide in the output:
     * refused here, before any data is read. */
    int n_absorbers = cfg->n_elements + cfg->n_matrix;
    for (int a = 0; a < n_absorbers; a++)
        for (int b = a + 1; b < n_absorbers; b++)
            if (absorber_z(cfg, a) == absorber_z(cfg, b)) {
                snprintf(err, errlen, "element %s is listed twice (in %s and %s); list each element once",
                         absorber_symbol(cfg, a), a < cfg->n_elements ? "elements" : "matrix",
                         b < cfg->n_elements ? "elements" : "matrix");
                return -1;
            }
    cfg->matrix_total = 0;
    for (int m = 0; m < cfg->n_matrix; m++) {
        if (!(cfg->matrix[m].fraction >= 0)) {
            snprintf(err, errlen, "matrix element %s: fraction must be >= 0", cfg->matrix[m].symbol);
            return -1;
        }
        cfg->matrix_total += cfg->matrix[m].fraction;
    }
    if (cfg->matrix_total >= 1) { snprintf(err, errlen, "matrix fractions add up to >= 1"); return -1; }

    for (int c = 0; c < cfg->n_elements; c++) {
        xrf_element *e = &cfg->element[c];
        int line;
        if (find_line(e->line_name, &line) < 0) {
            snprintf(err, errlen, "element %s: unknown line '%s' (KA, KB, LA, LB, KA1, KA2, LA1, MA1)", e->symbol,
                     e->line_name);
            return -1;
        }
        if (!(e->sensitivity > 0) || !(e->density > 0)) {
            snprintf(err, errlen, "element %s: sensitivity and density must be > 0", e->symbol);
            return -1;
        }
        if (e->line_kev <= 0) {
            xrl_error *xe = NULL;
            e->line_kev = LineEnergy(e->z, line, &xe);
            if (xe || !(e->line_kev > 0)) {
                snprintf(err, errlen, "xraylib has no %s line for %s%s%s", e->line_name, e->symbol, xe ? ": " : "",
                         xe ? xe->message : "");
                if (xe) xrl_error_free(xe);
                return -1;
            }
        }
        if (e->line_kev >= cfg->energy_kev) {
            snprintf(err, errlen, "element %s: line %.3f keV is not excited by %.3f keV", e->symbol, e->line_kev,
                     cfg->energy_kev);
            return -1;
        }
    }
    for (int a = 0; a < cfg->n_elements + cfg->n_matrix; a++) {
        int z = absorber_z(cfg, a);
        for (int k = 0; k <= cfg->n_elements; k++) {
            double kev = k == 0 ? cfg->energy_kev : cfg->element[k - 1].line_kev;
            double mu = mass_attenuation(z, kev, err, errlen);
            if (mu < 0) return -1;
            cfg->mu_mass[a][k] = mu;
        }
    }

    /* xraylib gives gases their gas density, which would swamp a volume-additive mixture density. */
    for (int a = 0; cfg->density <= 0 && a < cfg->n_elements + cfg->n_matrix; a++) {
        double rho = a < cfg->n_elements ? cfg->element[a].density : cfg->matrix[a - cfg->n_elements].density;
        if (rho < 0.1)
            log_warn("xrf", "%s: density %g g/cm^3 (a gas) enters the volume-additive pixel density; give a "
                     "\"density\" for it or a fixed \"density_g_cm3\"", absorber_symbol(cfg, a), rho);
    }
    double half_x = cfg->half_angle_x_deg, half_z = cfg->half_angle_z_deg;
    if (half_x <= 0 || half_z <= 0) {
        if (!(cfg->distance_mm > 0) || !(cfg->active_x_mm > 0) || !(cfg->active_z_mm > 0)) {
            snprintf(err, errlen, "detector: give half angles, or distance and active size > 0");
            return -1;
        }
        if (half_x <= 0) half_x = atan(cfg->active_x_mm / (2 * cfg->distance_mm)) * 180 / M_PI;
        if (half_z <= 0) half_z = atan(cfg->active_z_mm / (2 * cfg->distance_mm)) * 180 / M_PI;
    }
    cfg->half_angle_x_deg = half_x;
    cfg->half_angle_z_deg = half_z;
    if (fabs(cfg->tilt_xy_deg) + half_x >= 75 || fabs(cfg->tilt_z_deg) + half_z >= 75) {
        snprintf(err, errlen, "detector cone reaches beyond 75 degrees from +y; exit paths would be unbounded");
        return -1;
    }
    cfg->ghost_columns = 0;
    for (int i = 0; i < num->n_theta; i++) {
        double theta = (cfg->tilt_xy_deg + half_x * (2 * (i + 0.5) / num->n_theta - 1)) * M_PI / 180;
        cfg->theta_slope[i] = tan(theta);
        /* A line leaving through a side still crosses part of a row up to |slope| + 1 columns beyond it. */
        int ghosts = (int)ceil(fabs(cfg->theta_slope[i])) + 2;
        if (ghosts > cfg->ghost_columns) cfg->ghost_columns = ghosts;
        for (int j = 0; j < num->n_phi; j++) {
            double phi = (cfg->tilt_z_deg + half_z * (2 * (j + 0.5) / num->n_phi - 1)) * M_PI / 180;
            cfg->path_weight[i][j] = num->path_factor == XRF_PATH_OBLIQUE ? 1 / (cos(theta) * cos(phi)) : 1.0;
            cfg->z_step_um[i][j] = tan(phi) / cos(theta) * cfg->pixel_um;
        }
        /* Directions with the same slope and path weight have the same exit attenuation: count them once. */
        cfg->n_distinct[i] = 0;
        for (int j = 0; j < num->n_phi; j++) {
            int k = 0;
            while (k < cfg->n_distinct[i] && fabs(cfg->distinct_weight[i][k] - cfg->path_weight[i][j]) > 1e-15) k++;
            if (k == cfg->n_distinct[i]) {
                cfg->distinct_weight[i][k] = cfg->path_weight[i][j];
                cfg->distinct_count[i][k] = 0;
                cfg->n_distinct[i]++;
            }
            cfg->distinct_count[i][k]++;
        }
    }
    return 0;
}

/* ---- JSON ---- */

static int check_keys(const cJSON *obj, const char *where, const char *const *allowed, char *err, size_t errlen)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        int ok = 0;
        for (int i = 0; allowed[i]; i++) ok |= !strcmp(it->string, allowed[i]);
        if (!ok) {
            snprintf(err, errlen, "%s: unknown key '%s'", where, it->string);
            return -1;
        }
    }
    return 0;
}

/* Reads an optional number; -1 with a message when present but not a number. */
static int get_number(const cJSON *obj, const char *key, double *out, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return 0;
    if (!cJSON_IsNumber(it)) { snprintf(err, errlen, "'%s' must be a number", key); return -1; }
    *out = it->valuedouble;
    return 0;
}

static int get_int(const cJSON *obj, const char *key, int *out, char *err, size_t errlen)
{
    double v = *out;
    if (get_number(obj, key, &v, err, errlen) < 0) return -1;
    if (v != floor(v) || fabs(v) > 1e9) { snprintf(err, errlen, "'%s' must be an integer", key); return -1; }
    *out = (int)v;
    return 0;
}

/* Reads an optional string naming one of `names`; stores its index. */
static int get_choice(const cJSON *obj, const char *key, const char *const *names, int n, int *out, char *err,
                      size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return 0;
    if (cJSON_IsString(it))
        for (int i = 0; i < n; i++)
            if (!strcmp(it->valuestring, names[i])) { *out = i; return 0; }
    snprintf(err, errlen, "'%s' must be one of:", key);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(err);
        snprintf(err + len, errlen - len, " %s", names[i]);
    }
    return -1;
}

static const char *get_string(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static int parse_elements(xrf_config *cfg, const cJSON *list, int matrix, char *err, size_t errlen)
{
    static const char *const element_keys[] = {"symbol", "line", "line_keV", "sensitivity", "density", NULL};
    static const char *const matrix_keys[] = {"symbol", "fraction", "density", NULL};
    if (!cJSON_IsArray(list)) { snprintf(err, errlen, "'%s' must be a list", matrix ? "matrix" : "elements"); return -1; }
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
        const char *symbol = get_string(it, "symbol");
        if (!cJSON_IsObject(it) || !symbol) {
            snprintf(err, errlen, "every entry of '%s' needs a \"symbol\"", matrix ? "matrix" : "elements");
            return -1;
        }
        if (check_keys(it, symbol, matrix ? matrix_keys : element_keys, err, errlen) < 0) return -1;
        double density = 0;
        if (get_number(it, "density", &density, err, errlen) < 0) return -1;
        if (matrix) {
            double fraction = -1;
            if (get_number(it, "fraction", &fraction, err, errlen) < 0) return -1;
            if (xrf_config_add_matrix(cfg, symbol, fraction, err, errlen) < 0) return -1;
            if (density > 0) cfg->matrix[cfg->n_matrix - 1].density = density;
        } else {
            double line_kev = 0, sensitivity = 1;
            const char *line = get_string(it, "line");
            if (get_number(it, "line_keV", &line_kev, err, errlen) < 0 ||
                get_number(it, "sensitivity", &sensitivity, err, errlen) < 0)
                return -1;
            if (xrf_config_add_element(cfg, symbol, line ? line : "KA", line_kev, sensitivity, err, errlen) < 0)
                return -1;
            if (density > 0) cfg->element[cfg->n_elements - 1].density = density;
        }
    }
    return 0;
}

int xrf_config_from_json(xrf_config *cfg, const char *json_text, char *err, size_t errlen)
{
    static const char *const top_keys[] = {"energy_keV", "elements", "matrix", "density_g_cm3", "thickness_um",
                                           "depth_voxels", "pixel_um", "detector", "numerics", NULL};
    static const char *const detector_keys[] = {"distance_mm", "active_x_mm", "active_z_mm", "half_angle_x_deg",
                                                "half_angle_z_deg", "tilt_xy_deg", "tilt_z_deg", NULL};
    static const char *const numerics_keys[] = {"n_theta", "n_phi", "path_factor", "averaging", "source_voxel",
                                                "sweep", "tolerance", "max_iterations", "face_escape", NULL};
    xrf_config_defaults(cfg);
    cJSON *root = cJSON_Parse(json_text);
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "configuration is not a JSON object (near '%.20s')",
                 cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
        goto out;
    }
    if (check_keys(root, "configuration", top_keys, err, errlen) < 0) goto out;
    const cJSON *elements = cJSON_GetObjectItemCaseSensitive(root, "elements");
    const cJSON *matrix = cJSON_GetObjectItemCaseSensitive(root, "matrix");
    if (!elements) { snprintf(err, errlen, "configuration has no \"elements\""); goto out; }
    if (parse_elements(cfg, elements, 0, err, errlen) < 0) goto out;
    if (matrix && parse_elements(cfg, matrix, 1, err, errlen) < 0) goto out;
    if (get_number(root, "energy_keV", &cfg->energy_kev, err, errlen) < 0 ||
        get_number(root, "density_g_cm3", &cfg->density, err, errlen) < 0 ||
        get_number(root, "thickness_um", &cfg->thickness_um, err, errlen) < 0 ||
        get_int(root, "depth_voxels", &cfg->depth_voxels, err, errlen) < 0 ||
        get_number(root, "pixel_um", &cfg->pixel_um, err, errlen) < 0)
        goto out;
    const cJSON *det = cJSON_GetObjectItemCaseSensitive(root, "detector");
    if (det) {
        if (!cJSON_IsObject(det) || check_keys(det, "detector", detector_keys, err, errlen) < 0) {
            if (!cJSON_IsObject(det)) snprintf(err, errlen, "'detector' must be an object");
            goto out;
        }
        if (get_number(det, "distance_mm", &cfg->distance_mm, err, errlen) < 0 ||
            get_number(det, "active_x_mm", &cfg->active_x_mm, err, errlen) < 0 ||
            get_number(det, "active_z_mm", &cfg->active_z_mm, err, errlen) < 0 ||
            get_number(det, "half_angle_x_deg", &cfg->half_angle_x_deg, err, errlen) < 0 ||
            get_number(det, "half_angle_z_deg", &cfg->half_angle_z_deg, err, errlen) < 0 ||
            get_number(det, "tilt_xy_deg", &cfg->tilt_xy_deg, err, errlen) < 0 ||
            get_number(det, "tilt_z_deg", &cfg->tilt_z_deg, err, errlen) < 0)
            goto out;
    }
    const cJSON *num = cJSON_GetObjectItemCaseSensitive(root, "numerics");
    if (num) {
        if (!cJSON_IsObject(num) || check_keys(num, "numerics", numerics_keys, err, errlen) < 0) {
            if (!cJSON_IsObject(num)) snprintf(err, errlen, "'numerics' must be an object");
            goto out;
        }
        int path = cfg->num.path_factor, avg = cfg->num.averaging, src = cfg->num.source_voxel,
            sweep = cfg->num.sweep, faces = cfg->num.faces;
        if (get_int(num, "n_theta", &cfg->num.n_theta, err, errlen) < 0 ||
            get_int(num, "n_phi", &cfg->num.n_phi, err, errlen) < 0 ||
            get_choice(num, "path_factor", path_factor_names, 2, &path, err, errlen) < 0 ||
            get_choice(num, "averaging", averaging_names, 2, &avg, err, errlen) < 0 ||
            get_choice(num, "source_voxel", source_voxel_names, 2, &src, err, errlen) < 0 ||
            get_choice(num, "sweep", sweep_names, 2, &sweep, err, errlen) < 0 ||
            get_choice(num, "face_escape", faces_names, 2, &faces, err, errlen) < 0 ||
            get_number(num, "tolerance", &cfg->num.tolerance, err, errlen) < 0 ||
            get_int(num, "max_iterations", &cfg->num.max_iterations, err, errlen) < 0)
            goto out;
        cfg->num.path_factor = path;
        cfg->num.averaging = avg;
        cfg->num.source_voxel = src;
        cfg->num.sweep = sweep;
        cfg->num.faces = faces;
    }
    rc = xrf_config_prepare(cfg, err, errlen);
out:
    cJSON_Delete(root);
    return rc;
}

int xrf_config_load(xrf_config *cfg, const char *path, char *err, size_t errlen)
{
    char *text = file_read_all(path, 0, NULL, err, errlen);
    if (!text) return -1;
    int rc = xrf_config_from_json(cfg, text, err, errlen);
    if (rc < 0) {
        char where[512];
        snprintf(where, sizeof where, "%s: %s", path, err);
        str_copy(err, where, errlen);
    }
    free(text);
    return rc;
}

char *xrf_config_to_json(const xrf_config *cfg)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "energy_keV", cfg->energy_kev);
    cJSON *els = cJSON_AddArrayToObject(root, "elements");
    for (int c = 0; c < cfg->n_elements; c++) {
        const xrf_element *e = &cfg->element[c];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "symbol", e->symbol);
        cJSON_AddStringToObject(o, "line", e->line_name);
        cJSON_AddNumberToObject(o, "line_keV", e->line_kev);
        cJSON_AddNumberToObject(o, "sensitivity", e->sensitivity);
        cJSON_AddNumberToObject(o, "density", e->density);
        cJSON_AddItemToArray(els, o);
    }
    cJSON *mat = cJSON_AddArrayToObject(root, "matrix");
    for (int m = 0; m < cfg->n_matrix; m++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "symbol", cfg->matrix[m].symbol);
        cJSON_AddNumberToObject(o, "fraction", cfg->matrix[m].fraction);
        cJSON_AddNumberToObject(o, "density", cfg->matrix[m].density);
        cJSON_AddItemToArray(mat, o);
    }
    cJSON_AddNumberToObject(root, "density_g_cm3", cfg->density);
    cJSON_AddNumberToObject(root, "thickness_um", cfg->thickness_um);
    cJSON_AddNumberToObject(root, "depth_voxels", cfg->depth_voxels);
    cJSON_AddNumberToObject(root, "pixel_um", cfg->pixel_um);
    cJSON *det = cJSON_AddObjectToObject(root, "detector");
    cJSON_AddNumberToObject(det, "half_angle_x_deg", cfg->half_angle_x_deg);
    cJSON_AddNumberToObject(det, "half_angle_z_deg", cfg->half_angle_z_deg);
    cJSON_AddNumberToObject(det, "tilt_xy_deg", cfg->tilt_xy_deg);
    cJSON_AddNumberToObject(det, "tilt_z_deg", cfg->tilt_z_deg);
    cJSON *num = cJSON_AddObjectToObject(root, "numerics");
    cJSON_AddNumberToObject(num, "n_theta", cfg->num.n_theta);
    cJSON_AddNumberToObject(num, "n_phi", cfg->num.n_phi);
    cJSON_AddStringToObject(num, "path_factor", path_factor_names[cfg->num.path_factor]);
    cJSON_AddStringToObject(num, "averaging", averaging_names[cfg->num.averaging]);
    cJSON_AddStringToObject(num, "source_voxel", source_voxel_names[cfg->num.source_voxel]);
    cJSON_AddStringToObject(num, "sweep", sweep_names[cfg->num.sweep]);
    cJSON_AddStringToObject(num, "face_escape", faces_names[cfg->num.faces]);
    cJSON_AddNumberToObject(num, "tolerance", cfg->num.tolerance);
    cJSON_AddNumberToObject(num, "max_iterations", cfg->num.max_iterations);
    /* Derived values, so that a reader can reproduce the correction without xraylib. */
    cJSON *derived = cJSON_AddObjectToObject(root, "derived");
    cJSON_AddStringToObject(derived, "xraylib_version", xrf_xraylib_version());
    cJSON_AddNumberToObject(derived, "matrix_total", cfg->matrix_total);
    cJSON *mu = cJSON_AddArrayToObject(derived, "mu_mass_cm2_g");   /* [absorber][energy] */
    for (int a = 0; a < cfg->n_elements + cfg->n_matrix; a++)
        cJSON_AddItemToArray(mu, cJSON_CreateDoubleArray(cfg->mu_mass[a], cfg->n_elements + 1));
    cJSON_AddItemToObject(derived, "theta_slope", cJSON_CreateDoubleArray(cfg->theta_slope, cfg->num.n_theta));
    cJSON *pw = cJSON_AddArrayToObject(derived, "path_weight");
    cJSON *zs = cJSON_AddArrayToObject(derived, "z_step_um");
    for (int i = 0; i < cfg->num.n_theta; i++) {
        cJSON_AddItemToArray(pw, cJSON_CreateDoubleArray(cfg->path_weight[i], cfg->num.n_phi));
        cJSON_AddItemToArray(zs, cJSON_CreateDoubleArray(cfg->z_step_um[i], cfg->num.n_phi));
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}
