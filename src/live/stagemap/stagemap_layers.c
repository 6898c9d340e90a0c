/* stagemap_layers.c -- the reference and live image layers: geometry parameters, the fiducial fit that sets
 * the reference layer's transform, geometry loaded from a JSON sidecar, TIFF or HDF5 file, beam calibration,
 * pixel <-> stage conversions as parameters and as shell commands. */
#include "live/stagemap/stagemap_internal.h"

#include "core/base/base.h"
#include "formats/imageio/imageio.h"
#include "core/shell/shell.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static layer_geometry ref_geometry(param_port *p)
{
    return (layer_geometry){
        .pixel_size_x = param_get_double(p, P_REF_PIXEL_SIZE_X), .pixel_size_y = param_get_double(p, P_REF_PIXEL_SIZE_Y),
        .ref_pixel_x = param_get_double(p, P_REF_REF_PIXEL_X), .ref_pixel_y = param_get_double(p, P_REF_REF_PIXEL_Y),
        .ref_stage_x = param_get_double(p, P_REF_REF_STAGE_X), .ref_stage_y = param_get_double(p, P_REF_REF_STAGE_Y),
        .rotation_deg = param_get_double(p, P_REF_ROTATION),
        .flip_x = param_get_int(p, P_REF_FLIP_X) != 0, .flip_y = param_get_int(p, P_REF_FLIP_Y) != 0};
}

static void publish_geometry(param_port *p, const layer_geometry *g)
{
    param_set_double(p, P_REF_PIXEL_SIZE_X, g->pixel_size_x);
    param_set_double(p, P_REF_PIXEL_SIZE_Y, g->pixel_size_y);
    param_set_double(p, P_REF_REF_PIXEL_X, g->ref_pixel_x);
    param_set_double(p, P_REF_REF_PIXEL_Y, g->ref_pixel_y);
    param_set_double(p, P_REF_REF_STAGE_X, g->ref_stage_x);
    param_set_double(p, P_REF_REF_STAGE_Y, g->ref_stage_y);
    param_set_double(p, P_REF_ROTATION, g->rotation_deg);
    param_set_int(p, P_REF_FLIP_X, g->flip_x);
    param_set_int(p, P_REF_FLIP_Y, g->flip_y);
}

/* The image's outline on the stage: the outer corners of its corner pixels, x,y pairs in the order top left,
 * top right, bottom right, bottom left (none while the size is unknown). */
static void publish_outline(stagemap *m)
{
    long w = param_get_int(m->port, P_REF_SIZE_X), h = param_get_int(m->port, P_REF_SIZE_Y);
    if (w <= 0 || h <= 0) {
        const double none[1] = {0};
        param_set_array(m->port, P_REF_OUTLINE, none, 0);
        return;
    }
    const double corner[4][2] = {{-0.5, -0.5}, {w - 0.5, -0.5}, {w - 0.5, h - 0.5}, {-0.5, h - 0.5}};
    double outline[8];
    for (int i = 0; i < 4; i++)
        affine_apply(&m->ref_pixel_to_stage, corner[i][0], corner[i][1], &outline[2 * i], &outline[2 * i + 1]);
    param_set_array(m->port, P_REF_OUTLINE, outline, 8);
}

void stagemap_ref_set_transform(stagemap *m, const affine2d *pixel_to_stage)
{
    m->ref_pixel_to_stage = *pixel_to_stage;
    const double matrix[6] = {pixel_to_stage->m[0][0], pixel_to_stage->m[0][1], pixel_to_stage->t[0],
                              pixel_to_stage->m[1][0], pixel_to_stage->m[1][1], pixel_to_stage->t[1]};
    param_set_array(m->port, P_REF_MATRIX, matrix, 6);
    publish_outline(m);
}

int stagemap_layer_transform(stagemap *m, int layer, affine2d *pixel_to_stage, char *err, size_t errlen)
{
    param_port *p = m->port;
    if (layer == LAYER_REF) {
        *pixel_to_stage = m->ref_pixel_to_stage;
        return 0;
    }
    if (layer != LAYER_LIVE) return error_set(err, errlen, "layer must be 0 (reference) or 1 (live camera)");
    layer_geometry g = {
        .pixel_size_x = param_get_double(p, P_LIVE_PIXEL_SIZE_X), .pixel_size_y = param_get_double(p, P_LIVE_PIXEL_SIZE_Y),
        .ref_pixel_x = param_get_double(p, P_LIVE_BEAM_X), .ref_pixel_y = param_get_double(p, P_LIVE_BEAM_Y),
        .rotation_deg = param_get_double(p, P_LIVE_ROTATION),
        .flip_x = param_get_int(p, P_LIVE_FLIP_X) != 0, .flip_y = param_get_int(p, P_LIVE_FLIP_Y) != 0};
    if (stagemap_axis_position(m, 0, &g.ref_stage_x) || stagemap_axis_position(m, 1, &g.ref_stage_y))
        return error_set(err, errlen, "the live layer needs the stage position: motors %s, %s unavailable",
                         motion_motor_record(m->stage, MOTION_X), motion_motor_record(m->stage, MOTION_Y));
    *pixel_to_stage = layer_pixel_to_stage(&g);
    return 0;
}

static int fit_fiducials(stagemap *m, char *err, size_t errlen)
{
    param_port *p = m->port;
    if (m->nfid_pixel != m->nfid_stage)
        return error_set(err, errlen, "Fid:Pixel has %d points but Fid:Stage %d", m->nfid_pixel, m->nfid_stage);
    fit_result *fit = xmalloc(sizeof *fit);
    int n = m->nfid_pixel;
    fit_kind kind = n >= 3 && param_get_int(p, P_FID_KIND) == 1 ? FIT_AFFINE : FIT_SIMILARITY;
    int robust = param_get_int(p, P_FID_ROBUST) != 0 && n >= 5;
    if (transform_fit((const double (*)[2])m->fid_pixel, (const double (*)[2])m->fid_stage, n, kind, robust, 0, fit,
                      err, errlen)) {
        free(fit);
        return -1;
    }
    double residual[FIT_MAX_POINTS];
    int32_t inlier[FIT_MAX_POINTS];
    for (int i = 0; i < n; i++) residual[i] = fit->residual[i], inlier[i] = fit->inlier[i];
    param_set_array(p, P_FID_RESIDUALS, residual, n);
    param_set_array(p, P_FID_INLIERS, inlier, n);
    param_set_double(p, P_FID_RMS, fit->rms);
    param_set_int(p, P_FID_NINLIERS, fit->ninliers);
    stagemap_ref_set_transform(m, &fit->transform);
    layer_geometry g = layer_from_transform(&fit->transform, 0, 0);
    publish_geometry(p, &g);
    stagemap_message(m, P_MAP_MESSAGE, P_MAP_STATUS, 0, "%s fit of %d pairs: %d inliers, rms %.4g um",
                     kind == FIT_AFFINE ? "affine" : "similarity", n, fit->ninliers, fit->rms);
    free(fit);
    return 0;
}

/* Reference layer from a DFT registration of the live frame against the reference image (register.h: the
 * reference pixel p is at A (p - c) + c + t in the live frame, A = scale [[cos, sin], [-sin, cos]]), composed
 * with the live layer at the current stage position, where the frame was taken. */
static int apply_registration(stagemap *m, char *err, size_t errlen)
{
    param_port *p = m->port;
    double a = param_get_double(p, P_REG_ANGLE) * M_PI / 180, scale = param_get_double(p, P_REG_SCALE);
    double cx = param_get_double(p, P_REG_CENTER_X), cy = param_get_double(p, P_REG_CENTER_Y);
    if (!(scale > 0)) return error_set(err, errlen, "Reg:Scale must be > 0");
    affine2d ref_to_live = {.m = {{scale * cos(a), scale * sin(a)}, {-scale * sin(a), scale * cos(a)}}};
    ref_to_live.t[0] = cx - (ref_to_live.m[0][0] * cx + ref_to_live.m[0][1] * cy) + param_get_double(p, P_REG_SHIFT_X);
    ref_to_live.t[1] = cy - (ref_to_live.m[1][0] * cx + ref_to_live.m[1][1] * cy) + param_get_double(p, P_REG_SHIFT_Y);
    affine2d live_to_stage;
    if (stagemap_layer_transform(m, LAYER_LIVE, &live_to_stage, err, errlen)) return -1;
    affine2d t = affine_compose(&live_to_stage, &ref_to_live);
    stagemap_ref_set_transform(m, &t);
    layer_geometry g = layer_from_transform(&t, 0, 0);
    publish_geometry(p, &g);
    stagemap_message(m, P_MAP_MESSAGE, P_MAP_STATUS, 0, "reference layer from the registration result");
    return 0;
}

static void convert(stagemap *m, int to_stage)
{
    param_port *p = m->port;
    affine2d t, inverse;
    char err[256];
    if (stagemap_layer_transform(m, (int)param_get_int(p, P_CONV_LAYER), &t, err, sizeof err)) {
        stagemap_message(m, P_MAP_MESSAGE, P_MAP_STATUS, 1, "%s", err);
        return;
    }
    double x, y;
    if (to_stage) {
        affine_apply(&t, param_get_double(p, P_CONV_PIXEL_X), param_get_double(p, P_CONV_PIXEL_Y), &x, &y);
        param_set_double(p, P_CONV_TO_STAGE_X, x);
        param_set_double(p, P_CONV_TO_STAGE_Y, y);
    } else if (affine_invert(&t, &inverse) == 0) {
        affine_apply(&inverse, param_get_double(p, P_CONV_STAGE_X), param_get_double(p, P_CONV_STAGE_Y), &x, &y);
        param_set_double(p, P_CONV_TO_PIXEL_X, x);
        param_set_double(p, P_CONV_TO_PIXEL_Y, y);
    } else {
        stagemap_message(m, P_MAP_MESSAGE, P_MAP_STATUS, 1, "the layer's transform is singular");
    }
}

int stagemap_layer_write(stagemap *m, const param_write *w, char *err, size_t errlen)
{
    param_port *p = m->port;
    int rc = 0, n;
    switch (w->index) {
    case P_LIVE_PIXEL_SIZE_X: case P_LIVE_PIXEL_SIZE_Y:
        if (!(w->dval > 0) || !isfinite(w->dval)) rc = error_set(err, errlen, "%s must be > 0 um", w->name);
        break;
    case P_REF_PIXEL_SIZE_X: case P_REF_PIXEL_SIZE_Y:
        if (!(w->dval > 0) || !isfinite(w->dval)) {
            rc = error_set(err, errlen, "%s must be > 0 um", w->name);
            break;
        }
        __attribute__((fallthrough));     /* a new geometry */
    case P_REF_REF_PIXEL_X: case P_REF_REF_PIXEL_Y: case P_REF_REF_STAGE_X: case P_REF_REF_STAGE_Y:
    case P_REF_ROTATION: case P_REF_FLIP_X: case P_REF_FLIP_Y: {
        if (w->index == P_REF_FLIP_X || w->index == P_REF_FLIP_Y) param_set_int(p, w->index, w->ival);
        else param_set_double(p, w->index, w->dval);
        layer_geometry g = ref_geometry(p);
        affine2d t = layer_pixel_to_stage(&g);
        stagemap_ref_set_transform(m, &t);
        break;
    }
    case P_REF_LOAD:   /* the worker reads the file; the put completes (or fails) when it is done */
        if (!w->ival) return 0;
        pthread_mutex_lock(&m->lock);
        if (m->job) rc = error_set(err, errlen, "busy with a move or a load");
        else m->job = JOB_LOAD, m->job_param = P_REF_LOAD;
        pthread_cond_broadcast(&m->wake);
        pthread_mutex_unlock(&m->lock);
        if (!rc) return PARAM_ASYNC;
        break;
    case P_REF_SIZE_X: case P_REF_SIZE_Y:
        if (w->ival < 0) return error_set(err, errlen, "%s must be >= 0 (0: unknown)", w->name);
        param_set_int(p, w->index, w->ival);
        publish_outline(m);
        break;
    case P_FID_PIXEL:
        if ((n = stagemap_copy_pairs(w, m->fid_pixel, FIT_MAX_POINTS, err, errlen)) < 0) rc = -1;
        else m->nfid_pixel = n;
        break;
    case P_FID_STAGE:
        if ((n = stagemap_copy_pairs(w, m->fid_stage, FIT_MAX_POINTS, err, errlen)) < 0) rc = -1;
        else m->nfid_stage = n;
        break;
    case P_PARTICLES:
        if ((n = stagemap_copy_pairs(w, m->particle, STAGEMAP_MAX_PARTICLES, err, errlen)) < 0) rc = -1;
        else m->nparticles = n;
        break;
    case P_FID_FIT:
        if (w->ival) rc = fit_fiducials(m, err, errlen);
        break;
    case P_REG_APPLY:
        if (w->ival) rc = apply_registration(m, err, errlen);
        break;
    case P_CONV_PIXEL_X: case P_CONV_PIXEL_Y: case P_CONV_STAGE_X: case P_CONV_STAGE_Y: case P_CONV_LAYER:
        if (w->index == P_CONV_LAYER) param_set_int(p, w->index, w->ival);
        else param_set_double(p, w->index, w->dval);
        convert(m, 1);
        convert(m, 0);
        break;
    case P_LIVE_BEAM_X: case P_LIVE_BEAM_Y: case P_BEAM_CLICK_X: case P_BEAM_CLICK_Y:
        if (!isfinite(w->dval)) rc = error_set(err, errlen, "%s must be a finite pixel position", w->name);
        break;
    case P_BEAM_CALIBRATE:
        if (!w->ival) return 0;
        {
            /* The records copy the click to Live:BeamX/Y (db/stagemap.db); the stage position is a note. */
            int refused_x = param_write_refused(p, P_BEAM_CLICK_X);   /* param refuses NaN before we see it */
            if (refused_x || param_write_refused(p, P_BEAM_CLICK_Y))
                return error_set(err, errlen, "Beam:Click%s was refused: the calibration is unchanged",
                                 refused_x ? "X" : "Y");
            double x = param_get_double(p, P_BEAM_CLICK_X), y = param_get_double(p, P_BEAM_CLICK_Y), xy[2];
            if (motion_stage_position(m->stage, xy, NULL, 0) == 0) {
                param_set_double(p, P_BEAM_STAGE_X, xy[0]);
                param_set_double(p, P_BEAM_STAGE_Y, xy[1]);
                stagemap_message(m, P_MAP_MESSAGE, P_MAP_STATUS, 0, "beam at pixel (%.2f, %.2f), stage (%.3f, %.3f) um",
                                 x, y, xy[0], xy[1]);
            } else {
                stagemap_message(m, P_MAP_MESSAGE, P_MAP_STATUS, 0, "beam at pixel (%.2f, %.2f)", x, y);
            }
        }
        break;
    default:
        break;
    }
    if (rc) stagemap_message(m, P_MAP_MESSAGE, P_MAP_STATUS, 1, "%s", err);
    return rc;
}

/* JSON sidecar: {"pixel_size_x", "pixel_size_y" (or "pixel_size"), "ref_pixel": [u, v], "ref_stage": [x, y],
 * "rotation_deg", "flip_x", "flip_y"}; missing keys keep their current values. */
static int load_sidecar(const char *path, layer_geometry *g, char *err, size_t errlen)
{
    char *text = file_read_all(path, 0, NULL, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return error_set(err, errlen, "%s: not a JSON object", path);
    }
    const struct { const char *key; double *dst; int index; } keys[] = {
        {"pixel_size", &g->pixel_size_x, -1}, {"pixel_size", &g->pixel_size_y, -1},
        {"pixel_size_x", &g->pixel_size_x, -1}, {"pixel_size_y", &g->pixel_size_y, -1},
        {"ref_pixel", &g->ref_pixel_x, 0}, {"ref_pixel", &g->ref_pixel_y, 1},
        {"ref_stage", &g->ref_stage_x, 0}, {"ref_stage", &g->ref_stage_y, 1}, {"rotation_deg", &g->rotation_deg, -1}};
    int rc = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !rc; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, keys[i].key);
        if (!item) continue;
        if (keys[i].index >= 0) item = cJSON_IsArray(item) && cJSON_GetArraySize(item) == 2 ?
                                       cJSON_GetArrayItem(item, keys[i].index) : NULL;
        if (!cJSON_IsNumber(item)) rc = error_set(err, errlen, "%s: \"%s\" must be a number%s", path, keys[i].key,
                                                  keys[i].index >= 0 ? " pair" : "");
        else *keys[i].dst = item->valuedouble;
    }
    const cJSON *fx = cJSON_GetObjectItemCaseSensitive(root, "flip_x"), *fy = cJSON_GetObjectItemCaseSensitive(root, "flip_y");
    if (fx) g->flip_x = cJSON_IsTrue(fx) || (cJSON_IsNumber(fx) && fx->valueint);
    if (fy) g->flip_y = cJSON_IsTrue(fy) || (cJSON_IsNumber(fy) && fy->valueint);
    cJSON_Delete(root);
    if (!rc && (!(g->pixel_size_x > 0) || !(g->pixel_size_y > 0)))
        rc = error_set(err, errlen, "%s: pixel sizes must be > 0", path);
    return rc;
}

int stagemap_load_geometry(stagemap *m, const char *path, char *err, size_t errlen)
{
    db_lock();
    layer_geometry g = ref_geometry(m->port);
    db_unlock();
    size_t len = strlen(path);
    int rc, width = 0, height = 0;
    if (len > 5 && !strcmp(path + len - 5, ".json")) {
        rc = load_sidecar(path, &g, err, errlen);
    } else {
        image img;
        rc = image_read(path, &img, err, errlen);
        if (!rc) {
            width = img.width, height = img.height;
            if (img.pixel_size_x > 0 && img.pixel_size_y > 0) {
                g.pixel_size_x = img.pixel_size_x;
                g.pixel_size_y = img.pixel_size_y;
            } else {
                rc = error_set(err, errlen, "%s has no pixel size (resolution tags or attributes)", path);
            }
            image_free(&img);
        }
    }
    if (rc) return -1;
    db_lock();
    if (width > 0) {
        param_set_int(m->port, P_REF_SIZE_X, width);
        param_set_int(m->port, P_REF_SIZE_Y, height);
    }
    publish_geometry(m->port, &g);
    affine2d t = layer_pixel_to_stage(&g);
    stagemap_ref_set_transform(m, &t);
    db_unlock();
    return 0;
}

/* mapPixelToStage / mapStageToPixel. */
static int convert_cmd(int argc, char **argv, int to_stage, char *err, size_t errlen)
{
    stagemap *m = stagemap_find(argv[1]);
    double a, b, x, y;
    if (!m) return error_set(err, errlen, "no stage map port %s", argv[1]);
    int layer = !strcmp(argv[2], "ref") ? LAYER_REF : !strcmp(argv[2], "live") ? LAYER_LIVE : -1;
    if (layer < 0) return error_set(err, errlen, "LAYER must be ref or live");
    if (shell_arg_double(argv[3], "first coordinate", &a, err, errlen) ||
        shell_arg_double(argv[4], "second coordinate", &b, err, errlen))
        return -1;
    affine2d t, inverse;
    db_lock();
    int rc = stagemap_layer_transform(m, layer, &t, err, errlen);
    db_unlock();
    if (rc) return -1;
    if (!to_stage && affine_invert(&t, &inverse)) return error_set(err, errlen, "the layer's transform is singular");
    affine_apply(to_stage ? &t : &inverse, a, b, &x, &y);
    printf(to_stage ? "stage %.4f %.4f um\n" : "pixel %.4f %.4f\n", x, y);
    return 0;
}

static int pixel_to_stage_cmd(int argc, char **argv, char *err, size_t errlen)
{
    return convert_cmd(argc, argv, 1, err, errlen);
}

static int stage_to_pixel_cmd(int argc, char **argv, char *err, size_t errlen)
{
    return convert_cmd(argc, argv, 0, err, errlen);
}

void stagemap_register_commands(void)
{
    shell_register("mapPixelToStage", "mapPixelToStage(PORT, ref|live, U, V)", 4, 4, pixel_to_stage_cmd);
    shell_register("mapStageToPixel", "mapStageToPixel(PORT, ref|live, X_UM, Y_UM)", 4, 4, stage_to_pixel_cmd);
}
