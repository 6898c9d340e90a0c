/* registration.c -- the live registration stage: every frame registered (src/kernels/registration) against a reference
 * image loaded from a file or taken from a frame, the shift in pixels and micrometres, rotation, scale and
 * the confidence figures as PVs (records: db/registration.db). */
#include "live/stages/stages_internal.h"

#include "core/base/base.h"
#include "core/pva/pva.h"
#include "formats/imageio/imageio.h"
#include "kernels/registration/registration.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGISTRATION_PARAMS(X) \
    X(P_MODE, "Mode", PARAM_INT) \
    X(P_UPSAMPLE, "Upsample", PARAM_INT) \
    X(P_ITERATIONS, "Iterations", PARAM_INT) \
    X(P_ROI_X, "RoiX", PARAM_INT) \
    X(P_ROI_Y, "RoiY", PARAM_INT) \
    X(P_ROI_WIDTH, "RoiWidth", PARAM_INT) \
    X(P_ROI_HEIGHT, "RoiHeight", PARAM_INT) \
    X(P_REF_PATH, "ReferencePath", PARAM_STRING) \
    X(P_LOAD_REF, "LoadReference", PARAM_INT) \
    X(P_TAKE_REF, "TakeReference", PARAM_INT) \
    X(P_REF_SOURCE, "ReferenceSource", PARAM_STRING) \
    X(P_REF_WIDTH, "ReferenceWidth", PARAM_INT) \
    X(P_REF_HEIGHT, "ReferenceHeight", PARAM_INT) \
    X(P_REF_PIXEL, "ReferencePixelSize", PARAM_DOUBLE) \
    X(P_SHIFT_X, "ShiftX", PARAM_DOUBLE) \
    X(P_SHIFT_Y, "ShiftY", PARAM_DOUBLE) \
    X(P_SHIFT_X_UM, "ShiftXUm", PARAM_DOUBLE) \
    X(P_SHIFT_Y_UM, "ShiftYUm", PARAM_DOUBLE) \
    X(P_ROTATION, "Rotation", PARAM_DOUBLE) \
    X(P_SCALE, "Scale", PARAM_DOUBLE) \
    X(P_ERROR, "Error", PARAM_DOUBLE) \
    X(P_CONFIDENCE, "Confidence", PARAM_DOUBLE) \
    X(P_CORRELATION, "Correlation", PARAM_DOUBLE) \
    X(P_ERROR_PX, "ErrorPx", PARAM_DOUBLE) \
    X(P_CONVERGED, "Converged", PARAM_INT) \
    X(P_MATCH_OK, "MatchOk", PARAM_INT)

enum { REGISTRATION_BEFORE_FIRST = ANALYSIS_NCOMMON - 1, REGISTRATION_PARAMS(PARAM_ENUM) };

static const param_def registration_params[] = {REGISTRATION_PARAMS(PARAM_DEF)};

enum { MODE_TRANSLATION = 0, MODE_SIMILARITY = 1 };

typedef struct registration_settings {
    int mode;
    int upsample, iterations;
    int roi_x, roi_y, roi_width, roi_height;
} registration_settings;

/* The reference as it was given: whole file image, or a frame (then the ROI applies to it as to the moving
 * frames). */
typedef struct reference {
    float *data;
    int width, height;
    double pixel_size;             /* um per pixel, 0 when the file did not say */
    int from_frame;
    long generation;               /* bumped by every new reference */
} reference;

typedef struct registration {
    /* guarded by the stage lock */
    registration_settings wanted;
    long generation;
    int load_pending, take_pending;
    uint64_t take_after;           /* TakeReference uses the first frame newer than this (the ring's newest at the
                                    * request): a frame read out before it, still in the stage's hands, would be
                                    * of the view before the stage or the sample moved */
    char load_path[512];
    /* stage thread only */
    reg_ctx *ctx;
    long ctx_generation;
    int ctx_width, ctx_height;
    registration_settings in_use;
    reference ref;
    long ref_applied;              /* generation of the reference the context holds, -1 none */
    double file_center_x, file_center_y;   /* a file reference's centre, in its pixels as the context has them */
    pva_source *result_pv;         /* registrationPvaResult: set before iocInit, NULL when not configured */
} registration;

static reg_params kernel_params(const registration_settings *s)
{
    reg_params p;
    reg_params_default(&p);
    p.upsample = s->upsample;
    p.iterations = s->iterations;
    return p;
}

static int settings_check(const registration_settings *s, char *err, size_t errlen)
{
    if (s->mode != MODE_TRANSLATION && s->mode != MODE_SIMILARITY)
        return error_set(err, errlen, "Mode must be 0 (translation) or 1 (similarity)");
    if (s->roi_x < 0 || s->roi_y < 0 || s->roi_width < 0 || s->roi_height < 0)
        return error_set(err, errlen, "ROI offsets and sizes must be >= 0");
    reg_params p = kernel_params(s);
    return reg_params_check(&p, err, errlen);
}

/* [db locked] */
static int registration_write(analysis_stage *s, const param_write *w, char *err, size_t errlen)
{
    registration *r = s->impl;
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    registration_settings candidate = r->wanted;
    int v = (int)w->ival;
    switch (w->index) {
    case P_MODE: candidate.mode = v; break;
    case P_UPSAMPLE: candidate.upsample = v; break;
    case P_ITERATIONS: candidate.iterations = v; break;
    case P_ROI_X: candidate.roi_x = v; break;
    case P_ROI_Y: candidate.roi_y = v; break;
    case P_ROI_WIDTH: candidate.roi_width = v; break;
    case P_ROI_HEIGHT: candidate.roi_height = v; break;
    case P_LOAD_REF:
    case P_TAKE_REF:
        if (v && (r->load_pending || r->take_pending)) {
            rc = error_set(err, errlen, "a reference request is pending already");
        } else if (v && w->index == P_LOAD_REF) {
            param_get_string(s->port, P_REF_PATH, r->load_path, sizeof r->load_path);
            r->load_pending = 1;
            rc = PARAM_ASYNC;
        } else if (v) {
            r->take_pending = 1;
            r->take_after = frame_ring_published(camera_ring(s->cam));
            rc = PARAM_ASYNC;
        }
        pthread_mutex_unlock(&s->lock);
        return rc;
    default:
        pthread_mutex_unlock(&s->lock);
        return 0;            /* ReferencePath: stored by the parameter layer */
    }
    rc = settings_check(&candidate, err, errlen);
    if (rc == 0) {
        r->wanted = candidate;
        r->generation++;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static void publish_reference(analysis_stage *s, const reference *ref, const char *source)
{
    param_set_string(s->port, P_REF_SOURCE, source);
    param_set_int(s->port, P_REF_WIDTH, ref->width);
    param_set_int(s->port, P_REF_HEIGHT, ref->height);
    param_set_double(s->port, P_REF_PIXEL, ref->pixel_size);
}

/* Finishes a reference request: the message, then the waiting put completes (status 0 or -1). */
static void finish_request(analysis_stage *s, int index, int status, const char *message)
{
    registration *r = s->impl;
    pthread_mutex_lock(&s->lock);
    if (index == P_LOAD_REF) r->load_pending = 0;
    else r->take_pending = 0;
    pthread_mutex_unlock(&s->lock);
    analysis_message(s, message);
    param_write_done(s->port, index, status);
}

/* The smallest reference a phase correlation finds a peak in (with room for the window's taper). */
#define REF_MIN_SIDE 16

/* Takes ownership of data as the new reference. */
static void reference_replace(registration *r, float *data, int width, int height, double pixel_size, int from_frame)
{
    free(r->ref.data);
    r->ref = (reference){.data = data, .width = width, .height = height, .pixel_size = pixel_size,
                         .from_frame = from_frame, .generation = r->ref.generation + 1};
}

/* [stage thread] A LoadReference request: read the file (TIFF, PNG, HDF5 dataset). */
static void registration_service(analysis_stage *s)
{
    registration *r = s->impl;
    char path[512];
    pthread_mutex_lock(&s->lock);
    int pending = r->load_pending;
    str_copy(path, r->load_path, sizeof path);
    pthread_mutex_unlock(&s->lock);
    if (!pending) return;
    image img;
    char err[300], message[700];
    if (image_read(path, &img, err, sizeof err) != 0) {
        snprintf(message, sizeof message, "cannot load the reference: %s", err);
        finish_request(s, P_LOAD_REF, -1, message);
        return;
    }
    if (img.width < REF_MIN_SIDE || img.height < REF_MIN_SIDE) {   /* the old reference stays */
        snprintf(message, sizeof message, "reference refused: %s is %dx%d pixels; registration needs at least %dx%d",
                 path, img.width, img.height, REF_MIN_SIDE, REF_MIN_SIDE);
        image_free(&img);
        finish_request(s, P_LOAD_REF, -1, message);
        return;
    }
    reference_replace(r, img.data, img.width, img.height, img.pixel_size_x, 0);
    publish_reference(s, &r->ref, path);
    snprintf(message, sizeof message, "reference loaded from %s (%dx%d)", path, img.width, img.height);
    finish_request(s, P_LOAD_REF, 0, message);
}

/* [stage thread] A context for this frame size and the current settings. */
static int prepare_context(analysis_stage *s, registration *r, const frame *f, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->lock);
    registration_settings want = r->wanted;
    long generation = r->generation;
    pthread_mutex_unlock(&s->lock);
    if (r->ctx && generation == r->ctx_generation && f->width == r->ctx_width && f->height == r->ctx_height) return 0;
    reg_destroy(r->ctx);
    reg_params p = kernel_params(&want);
    r->ctx = reg_create(f->width, f->height, &p, want.mode == MODE_SIMILARITY, err, errlen);
    r->ctx_generation = generation;
    r->ctx_width = f->width;
    r->ctx_height = f->height;
    r->in_use = want;
    r->ref_applied = -1;
    return r->ctx ? 0 : -1;
}

static reg_view frame_view(const registration *r, const float *data, int width, int height)
{
    const registration_settings *s = &r->in_use;
    reg_view view = {.data = data, .width = width, .height = height, .roi_x = s->roi_x, .roi_y = s->roi_y,
                     .roi_w = s->roi_width, .roi_h = s->roi_height};
    analysis_roi_resolve(view.roi_x, view.roi_y, &view.roi_w, &view.roi_h, width, height);
    return view;
}

/* [stage thread] Gives the context the reference. A file's reference is resampled to the frame's pixel size
 * when the file states its own (an SEM image of another magnification), and only its central part the size
 * of the frame is used when it is larger. */
static int apply_reference(registration *r, const frame *f, char *err, size_t errlen)
{
    const reference *ref = &r->ref;
    if (ref->from_frame) {
        reg_view view = frame_view(r, ref->data, ref->width, ref->height);
        if (reg_set_reference(r->ctx, &view, err, errlen)) return -1;
    } else {
        double factor = ref->pixel_size > 0 && f->pixel_size > 0 ? ref->pixel_size / f->pixel_size : 1.0;
        int width = ref->width, height = ref->height;
        float *resampled = fabs(factor - 1) > 1e-3 ? reg_resample(ref->data, width, height, factor, &width, &height) : NULL;
        if (fabs(factor - 1) > 1e-3 && !resampled)
            return error_set(err, errlen, "the reference resampled to the frame's pixel size is empty");
        int roi_w = width < f->width ? width : f->width, roi_h = height < f->height ? height : f->height;
        reg_view view = {.data = resampled ? resampled : ref->data, .width = width, .height = height,
                         .roi_x = (width - roi_w) / 2, .roi_y = (height - roi_h) / 2, .roi_w = roi_w, .roi_h = roi_h};
        int rc = reg_set_reference(r->ctx, &view, err, errlen);
        free(resampled);
        if (rc) return -1;
        r->file_center_x = (width - 1) / 2.0;
        r->file_center_y = (height - 1) / 2.0;
    }
    r->ref_applied = ref->generation;
    return 0;
}

/* A file's reference has no coordinates in common with the frame: the shift reported is where the
 * reference's centre is in the frame, from the frame's centre (register.h's t maps reference pixel p to
 * A (p - c) + c + t in the frame). */
static void shift_from_frame_centre(const registration *r, const frame *f, reg_result *res)
{
    double a = res->angle_deg * M_PI / 180, dx = r->file_center_x - res->center_x, dy = r->file_center_y - res->center_y;
    double x = res->scale * (cos(a) * dx + sin(a) * dy) + res->center_x + res->shift_x;
    double y = res->scale * (-sin(a) * dx + cos(a) * dy) + res->center_y + res->shift_y;
    res->shift_x = x - (f->width - 1) / 2.0;
    res->shift_y = y - (f->height - 1) / 2.0;
}

/* The PVA structure's members, in the order result_values() fills them. */
static const pva_member_def result_members[] = {
    {"uniqueId", PVA_MEMBER_INT},      {"shiftX", PVA_MEMBER_DOUBLE},     {"shiftY", PVA_MEMBER_DOUBLE},
    {"shiftXUm", PVA_MEMBER_DOUBLE},   {"shiftYUm", PVA_MEMBER_DOUBLE},   {"rotation", PVA_MEMBER_DOUBLE},
    {"scale", PVA_MEMBER_DOUBLE},      {"error", PVA_MEMBER_DOUBLE},      {"confidence", PVA_MEMBER_DOUBLE},
    {"correlation", PVA_MEMBER_DOUBLE}, {"errorPx", PVA_MEMBER_DOUBLE},   {"converged", PVA_MEMBER_BOOL},
    {"matchOk", PVA_MEMBER_BOOL},
};
enum { RESULT_MEMBERS = sizeof result_members / sizeof result_members[0] };

int registration_pva_result_cmd(int argc, char **argv, char *err, size_t errlen)
{
    (void)argc;
    analysis_stage *s = analysis_find(argv[1], &registration_kind, err, errlen);
    if (!s) return -1;
    registration *r = s->impl;
    if (r->result_pv) return error_set(err, errlen, "%s has its result PV already", argv[1]);
    r->result_pv = pva_struct_source_add(argv[2], "reloc:registration/Result:1.0", RESULT_MEMBERS, result_members,
                                         err, errlen);
    return r->result_pv ? 0 : -1;
}

/* One frame's result as one PVA update: a failed frame reads NaN in INVALID alarm with the reason, a result the
 * kernel is not confident of is in MINOR alarm. */
static void post_pva_result(registration *r, const frame *f, const reg_result *res, const char *failure)
{
    if (!r->result_pv) return;
    double v[RESULT_MEMBERS];
    v[0] = (double)(int32_t)f->id;            /* as the NTNDArray's and the CA image's UniqueId */
    if (failure) {
        for (int i = 1; i < RESULT_MEMBERS; i++) v[i] = result_members[i].kind == PVA_MEMBER_DOUBLE ? NAN : 0;
        pva_struct_post(r->result_pv, v, 3, failure, f->stamp);
        return;
    }
    const double values[RESULT_MEMBERS] = {
        v[0], res->shift_x, res->shift_y, res->shift_x * f->pixel_size, res->shift_y * f->pixel_size,
        res->angle_deg, res->scale, res->error, res->psr, res->correlation, res->error_px, res->converged,
        res->confident};
    pva_struct_post(r->result_pv, values, res->confident ? 0 : 1, res->confident ? "" : "not confident", f->stamp);
}

static void publish_result(analysis_stage *s, const reg_result *res, double pixel_size)
{
    param_port *p = s->port;
    param_set_double(p, P_SHIFT_X, res->shift_x);
    param_set_double(p, P_SHIFT_Y, res->shift_y);
    param_set_double(p, P_SHIFT_X_UM, res->shift_x * pixel_size);
    param_set_double(p, P_SHIFT_Y_UM, res->shift_y * pixel_size);
    param_set_double(p, P_ROTATION, res->angle_deg);
    param_set_double(p, P_SCALE, res->scale);
    param_set_double(p, P_ERROR, res->error);
    param_set_double(p, P_CONFIDENCE, res->psr);
    param_set_double(p, P_CORRELATION, res->correlation);
    param_set_double(p, P_ERROR_PX, res->error_px);
    param_set_int(p, P_CONVERGED, res->converged);
    /* The kernel's calibrated verdict: the result re-registered in quarters, its estimated mapping error within
     * max_error, and (similarity) the refinement converged. */
    param_set_int(p, P_MATCH_OK, res->confident);
}

static int registration_process(analysis_stage *s, const frame *f, const float *pixels, char *err, size_t errlen)
{
    registration *r = s->impl;
    pthread_mutex_lock(&s->lock);
    int take = r->take_pending && f->id > r->take_after;
    pthread_mutex_unlock(&s->lock);
    if (take) {
        size_t n = (size_t)f->width * f->height;
        float *copy = xmalloc(n * sizeof *copy);
        memcpy(copy, pixels, n * sizeof *copy);
        reference_replace(r, copy, f->width, f->height, f->pixel_size, 1);
        char source[64], message[128];
        snprintf(source, sizeof source, "frame %llu", (unsigned long long)f->id);
        publish_reference(s, &r->ref, source);
        snprintf(message, sizeof message, "reference taken from frame %llu", (unsigned long long)f->id);
        finish_request(s, P_TAKE_REF, 0, message);
    }
    int failed = prepare_context(s, r, f, err, errlen) != 0;
    if (!failed && !r->ref.data) failed = error_set(err, errlen, "no reference image: TakeReference or LoadReference");
    if (!failed && r->ref_applied != r->ref.generation) failed = apply_reference(r, f, err, errlen) != 0;
    reg_result res;
    if (!failed) {
        reg_view moving = frame_view(r, pixels, f->width, f->height);
        failed = (r->in_use.mode == MODE_SIMILARITY ? reg_similarity(r->ctx, &moving, &res, err, errlen)
                                                    : reg_translate(r->ctx, &moving, &res, err, errlen)) != 0;
    }
    if (failed) {
        param_set_int(s->port, P_MATCH_OK, 0);
        post_pva_result(r, f, NULL, err);
        return -1;
    }
    if (!r->ref.from_frame) shift_from_frame_centre(r, f, &res);
    publish_result(s, &res, f->pixel_size);
    post_pva_result(r, f, &res, NULL);
    snprintf(s->summary, sizeof s->summary,
             "{\"frame\": %llu, \"shift_px\": [%.4f, %.4f], \"shift_um\": [%.5g, %.5g], \"rotation_deg\": %.4f, "
             "\"scale\": %.6f, \"confidence\": %.4g, \"error_px\": %.3g, \"match\": %s}",
             (unsigned long long)f->id, res.shift_x, res.shift_y, res.shift_x * f->pixel_size,
             res.shift_y * f->pixel_size, res.angle_deg, res.scale, res.psr, res.error_px,
             res.confident ? "true" : "false");
    return 0;
}

static void registration_create(analysis_stage *s, int max_items)
{
    registration *r = xcalloc(1, sizeof *r);
    r->wanted = (registration_settings){.mode = MODE_TRANSLATION, .upsample = 100,
                                       .iterations = REG_DEFAULT_MAX_ITERATIONS};
    r->ref_applied = -1;
    s->impl = r;
    param_port *p = s->port;
    param_set_int(p, P_UPSAMPLE, r->wanted.upsample);
    param_set_int(p, P_ITERATIONS, r->wanted.iterations);
    param_set_string(p, P_REF_SOURCE, "none");
    param_set_double(p, P_SCALE, 1.0);
}

static void registration_destroy(analysis_stage *s)
{
    registration *r = s->impl;
    reg_destroy(r->ctx);
    free(r->ref.data);
    free(r);
}

const analysis_kind registration_kind = {
    .name = "registration",
    .params = registration_params,
    .nparams = sizeof registration_params / sizeof registration_params[0],
    .create = registration_create,
    .write = registration_write,
    .service = registration_service,
    .process = registration_process,
    .destroy = registration_destroy,
};
