/* source_aravis.c -- the "aravis" frame source: a GigE Vision / GenICam camera through Aravis. Owns the
 * ArvCamera and its ArvStream (with the stream's buffers) of the connection in use; everything here runs on the
 * camera's acquisition thread, except the "control-lost" signal of the device's heartbeat thread, which only
 * sets an atomic flag.
 *
 * The camera is opened by its IPv4 address through Aravis' GigE Vision interface (a unicast connection: this
 * source never sends a broadcast discovery), or is Aravis' in-process simulated camera "Fake_1". The areaDetector
 * settings map onto GenICam features (apply, readback):
 *   AcquireTime -> ExposureTime (us)          AcquirePeriod -> AcquisitionFrameRate (1 / period)
 *   Gain -> Gain (or the vendor's GainRaw)    MinX/MinY/SizeX/SizeY -> OffsetX/OffsetY/Width/Height (binned)
 *   BinX/BinY -> BinningHorizontal/Vertical   ImageMode -> AcquisitionMode, NumImages -> AcquisitionFrameCount
 *   PixelFormat -> PixelFormat (Mono8/12/16)  TriggerMode/TriggerSource -> the FrameStart trigger
 *   SoftwareTrigger -> TriggerSoftware
 * through Aravis' ArvCamera calls, which know the vendors' feature names. Frames are copied out of the stream's
 * buffers as uint16; incomplete buffers and gaps in the camera's frame ids count as missed frames, the stream's
 * buffer underruns as underruns. A camera that stops answering (heartbeat lost, or no frame and no register read
 * for a second) is reported as SOURCE_LOST; the driver then disconnects and connects again. */
#include "drivers/camera/camera_internal.h"

#include "core/base/base.h"

#include <arpa/inet.h>
#include <arv.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_BUFFERS 16
#define PROBE_INTERVAL_S 1.0   /* no frame for this long: read a register to see whether the camera is there */
#define SILENCE_S 2.0          /* an untriggered stream without a frame for this long (and 3 frame periods) is lost:
                                * Aravis' register read would take up to 15 s to say so (retries, heartbeat) */

static const char *const pixel_format_names[PIXEL_NFORMATS] = {"Mono8", "Mono12", "Mono16"};
static const char *const trigger_source_names[TRIGGER_NSOURCES] = {"Software", "Line0", "Line1", "Line2", "Line3"};
static const char *const acquisition_mode_names[] = {"SingleFrame", "MultiFrame", "Continuous"};   /* ImageMode */

typedef struct aravis_source {
    frame_source base;
    char id[64];
    int fake;                    /* Aravis' in-process camera, not the GigE Vision interface */
    ArvCamera *camera;           /* NULL while disconnected */
    ArvStream *stream;           /* NULL unless acquiring */
    atomic_int control_lost;     /* set by the device's heartbeat thread */
    int lost;                    /* check said SOURCE_LOST: no more commands to this camera */
    double last_alive;           /* monotonic time of the last frame or successful register read */
    double frame_period;         /* s, and whether frames wait for triggers: the camera's readbacks */
    int triggered;
    guint64 last_frame_id;       /* 0: none yet in this stream */
    unsigned long underruns_before;   /* underruns of the streams closed before this one */
} aravis_source;

/* Takes a GError into err (the first one of a call wins) naming the setting; 1 when there was one. */
static int failed(GError **ge, const char *what, int *errors, char *err, size_t errlen)
{
    if (!*ge) return 0;
    if (!(*errors)++) snprintf(err, errlen, "%s: %s", what, (*ge)->message);
    g_clear_error(ge);
    return 1;
}

static int name_index(const char *name, const char *const *names, int n, int fallback)
{
    for (int i = 0; name && i < n; i++)
        if (!strcmp(name, names[i])) return i;
    return fallback;
}

static int has_entry(ArvCamera *cam, const char *feature, const char *entry)
{
    GError *ge = NULL;
    gboolean yes = arv_camera_is_enumeration_entry_available(cam, feature, entry, &ge);
    g_clear_error(&ge);
    return yes;
}

static int has_feature(ArvCamera *cam, const char *feature)
{
    GError *ge = NULL;
    gboolean yes = arv_camera_is_feature_available(cam, feature, &ge);
    g_clear_error(&ge);
    return yes;
}

static void on_control_lost(ArvDevice *device, gpointer user)
{
    atomic_store(&((aravis_source *)user)->control_lost, 1);
}

/* What the camera accepts, read once per connection. */
static void read_limits(aravis_source *a)
{
    ArvCamera *cam = a->camera;
    source_limits *l = &a->base.limits;
    GError *ge = NULL;
    *l = (source_limits){.known = 1, .gain_min = 1, .gain_max = 0, .rate_min = 1, .rate_max = 0, .bin_max_x = 1,
                         .bin_max_y = 1};
    arv_camera_get_sensor_size(cam, &l->sensor_width, &l->sensor_height, &ge);
    g_clear_error(&ge);
    arv_camera_get_exposure_time_bounds(cam, &l->exposure_min, &l->exposure_max, &ge);
    l->exposure_min *= 1e-6;
    l->exposure_max *= 1e-6;
    g_clear_error(&ge);
    if (arv_camera_is_gain_available(cam, NULL)) arv_camera_get_gain_bounds(cam, &l->gain_min, &l->gain_max, &ge);
    g_clear_error(&ge);
    if (arv_camera_is_frame_rate_available(cam, NULL)) arv_camera_get_frame_rate_bounds(cam, &l->rate_min, &l->rate_max, &ge);
    g_clear_error(&ge);
    if (arv_camera_is_binning_available(cam, NULL)) {
        int lo;
        arv_camera_get_x_binning_bounds(cam, &lo, &l->bin_max_x, &ge);
        g_clear_error(&ge);
        arv_camera_get_y_binning_bounds(cam, &lo, &l->bin_max_y, &ge);
        g_clear_error(&ge);
    }
    for (int i = 0; i < PIXEL_NFORMATS; i++)
        if (has_entry(cam, "PixelFormat", pixel_format_names[i])) l->pixel_formats |= 1 << i;
    if (has_feature(cam, "TriggerMode") && arv_camera_is_software_trigger_supported(cam, NULL)) {
        for (int i = 0; i < TRIGGER_NSOURCES; i++)
            if (has_entry(cam, "TriggerSource", trigger_source_names[i])) l->trigger_sources |= 1 << i;
        if (!has_feature(cam, "TriggerSource")) l->trigger_sources = 1 << TRIGGER_SOFTWARE;
    }
}

static void aravis_stop(frame_source *s)
{
    aravis_source *a = (aravis_source *)s;
    if (!a->stream) return;
    if (!a->lost) arv_camera_stop_acquisition(a->camera, NULL);   /* a lost camera would only time out */
    a->underruns_before = s->counters.underruns;
    g_clear_object(&a->stream);      /* joins the stream's thread, frees its buffers */
}

static void aravis_disconnect(frame_source *s)
{
    aravis_source *a = (aravis_source *)s;
    aravis_stop(s);
    g_clear_object(&a->camera);
}

static int aravis_connect(frame_source *s, char *err, size_t errlen)
{
    aravis_source *a = (aravis_source *)s;
    aravis_disconnect(s);
    GError *ge = NULL;
    /* An address goes to the GigE Vision interface's unicast open (no discovery); "Fake_1" to the fake one. */
    ArvInterface *iface = a->fake ? arv_fake_interface_get_instance() : arv_gv_interface_get_instance();
    ArvDevice *device = arv_interface_open_device(iface, a->id, &ge);
    if (!device) {
        snprintf(err, errlen, "camera %s: %s", a->id, ge ? ge->message : "not found");
        g_clear_error(&ge);
        return -1;
    }
    atomic_store(&a->control_lost, 0);
    a->lost = 0;
    g_signal_connect(device, "control-lost", G_CALLBACK(on_control_lost), a);
    a->camera = arv_camera_new_with_device(device, &ge);
    g_object_unref(device);          /* the camera holds its own reference */
    if (!a->camera) {
        snprintf(err, errlen, "camera %s: %s", a->id, ge ? ge->message : "not a GenICam camera");
        g_clear_error(&ge);
        return -1;
    }
    read_limits(a);
    a->last_alive = time_monotonic();
    return 0;
}

/* The camera's current values of every mapped setting, into got (what it lacks stays as wanted). */
static void read_back(aravis_source *a, const camera_settings *want, camera_settings *got)
{
    ArvCamera *cam = a->camera;
    GError *ge = NULL;
    *got = *want;
    int x, y, w, h, bx = 1, by = 1;
    if (arv_camera_is_binning_available(cam, NULL)) {
        arv_camera_get_binning(cam, &bx, &by, &ge);
        if (ge || bx < 1 || by < 1) bx = by = 1;
        g_clear_error(&ge);
    }
    arv_camera_get_region(cam, &x, &y, &w, &h, &ge);
    if (!ge) {
        got->min_x = x * bx;
        got->min_y = y * by;
        got->size_x = w * bx;
        got->size_y = h * by;
        got->bin_x = bx;
        got->bin_y = by;
    }
    g_clear_error(&ge);
    double v = arv_camera_get_exposure_time(cam, &ge);
    if (!ge) got->acquire_time = v * 1e-6;
    g_clear_error(&ge);
    if (arv_camera_is_gain_available(cam, NULL)) {
        v = arv_camera_get_gain(cam, &ge);
        if (!ge) got->gain = v;
        g_clear_error(&ge);
    }
    if (arv_camera_is_frame_rate_available(cam, NULL)) {
        v = arv_camera_get_frame_rate(cam, &ge);
        if (!ge && v > 0) got->acquire_period = 1.0 / v;
        g_clear_error(&ge);
    }
    got->pixel_format = name_index(arv_camera_get_pixel_format_as_string(cam, NULL), pixel_format_names,
                                   PIXEL_NFORMATS, want->pixel_format);
    got->image_mode = name_index(arv_camera_get_string(cam, "AcquisitionMode", NULL), acquisition_mode_names, 3,
                                 want->image_mode);
    if (has_feature(cam, "AcquisitionFrameCount")) {
        gint64 n = arv_camera_get_integer(cam, "AcquisitionFrameCount", &ge);
        if (!ge) got->num_images = (int)n;
        g_clear_error(&ge);
    }
    if (a->base.limits.trigger_sources) {
        const char *mode = arv_camera_get_string(cam, "TriggerMode", NULL);
        got->trigger_mode = mode && !strcmp(mode, "On") ? TRIGGER_ON : TRIGGER_OFF;
        if (has_feature(cam, "TriggerSource"))
            got->trigger_source = name_index(arv_camera_get_string(cam, "TriggerSource", NULL), trigger_source_names,
                                             TRIGGER_NSOURCES, want->trigger_source);
    }
    a->frame_period = got->acquire_period;
    a->triggered = got->trigger_mode == TRIGGER_ON;
}

static int aravis_apply(frame_source *s, const camera_settings *before, const camera_settings *want,
                        camera_settings *got, char *err, size_t errlen)
{
    aravis_source *a = (aravis_source *)s;
    ArvCamera *cam = a->camera;
    const camera_settings *b = before;
    GError *ge = NULL;
    int errors = 0;
    int geometry = !b || b->min_x != want->min_x || b->min_y != want->min_y || b->size_x != want->size_x ||
                   b->size_y != want->size_y || b->bin_x != want->bin_x || b->bin_y != want->bin_y ||
                   b->pixel_format != want->pixel_format;
    int streaming = a->stream != NULL;
    if (geometry && streaming) aravis_stop(s);   /* the payload changes: the camera locks these while streaming */
    if (geometry) {
        int bx = want->bin_x, by = want->bin_y;
        if (arv_camera_is_binning_available(cam, NULL)) {
            arv_camera_set_binning(cam, bx, by, &ge);
            failed(&ge, "BinningHorizontal/Vertical", &errors, err, errlen);
        } else if ((bx != 1 || by != 1) && !errors++) {
            snprintf(err, errlen, "the camera has no binning");
        }
        arv_camera_get_binning(cam, &bx, &by, NULL);
        if (bx < 1 || by < 1) bx = by = 1;
        arv_camera_set_pixel_format_from_string(cam, pixel_format_names[want->pixel_format], &ge);
        failed(&ge, "PixelFormat", &errors, err, errlen);
        arv_camera_set_region(cam, want->min_x / bx, want->min_y / by, want->size_x / bx, want->size_y / by, &ge);
        failed(&ge, "OffsetX/OffsetY/Width/Height", &errors, err, errlen);
    }
    if (!b || b->acquire_time != want->acquire_time) {
        arv_camera_set_exposure_time(cam, want->acquire_time * 1e6, &ge);
        failed(&ge, "ExposureTime", &errors, err, errlen);
    }
    if ((!b || b->gain != want->gain) && arv_camera_is_gain_available(cam, NULL)) {
        arv_camera_set_gain(cam, want->gain, &ge);
        failed(&ge, "Gain", &errors, err, errlen);
    }
    int rate = (!b || b->acquire_period != want->acquire_period) && want->acquire_period > 0 &&
               arv_camera_is_frame_rate_available(cam, NULL);
    if (rate) {      /* Aravis clears the triggers while setting the rate: they are set again below */
        arv_camera_set_frame_rate(cam, 1.0 / want->acquire_period, &ge);
        failed(&ge, "AcquisitionFrameRate", &errors, err, errlen);
    }
    if (s->limits.trigger_sources &&
        (rate || !b || b->trigger_mode != want->trigger_mode || b->trigger_source != want->trigger_source)) {
        if (has_feature(cam, "TriggerSelector")) arv_camera_set_string(cam, "TriggerSelector", "FrameStart", NULL);
        if (want->trigger_mode == TRIGGER_ON && has_feature(cam, "TriggerSource")) {
            arv_camera_set_string(cam, "TriggerSource", trigger_source_names[want->trigger_source], &ge);
            failed(&ge, "TriggerSource", &errors, err, errlen);
        }
        arv_camera_set_string(cam, "TriggerMode", want->trigger_mode == TRIGGER_ON ? "On" : "Off", &ge);
        failed(&ge, "TriggerMode", &errors, err, errlen);
    }
    if ((!b || b->image_mode != want->image_mode) && has_feature(cam, "AcquisitionMode")) {
        arv_camera_set_string(cam, "AcquisitionMode", acquisition_mode_names[want->image_mode], &ge);
        failed(&ge, "AcquisitionMode", &errors, err, errlen);
    }
    if ((!b || b->num_images != want->num_images) && has_feature(cam, "AcquisitionFrameCount")) {
        arv_camera_set_integer(cam, "AcquisitionFrameCount", want->num_images, &ge);
        failed(&ge, "AcquisitionFrameCount", &errors, err, errlen);
    }
    read_back(a, want, got);
    if (geometry && streaming && s->ops->start(s, errors ? NULL : err, errors ? 0 : errlen) != 0) errors++;
    return errors ? -1 : 0;
}

static int aravis_start(frame_source *s, char *err, size_t errlen)
{
    aravis_source *a = (aravis_source *)s;
    if (a->stream) return 0;
    GError *ge = NULL;
    int errors = 0;
    a->stream = arv_camera_create_stream(a->camera, NULL, NULL, &ge);
    if (failed(&ge, "stream", &errors, err, errlen)) return -1;
    guint payload = arv_camera_get_payload(a->camera, &ge);
    if (failed(&ge, "PayloadSize", &errors, err, errlen)) {
        g_clear_object(&a->stream);
        return -1;
    }
    for (int i = 0; i < STREAM_BUFFERS; i++) arv_stream_push_buffer(a->stream, arv_buffer_new_allocate(payload));
    a->last_frame_id = 0;
    arv_camera_start_acquisition(a->camera, &ge);
    if (failed(&ge, "AcquisitionStart", &errors, err, errlen)) {
        g_clear_object(&a->stream);
        return -1;
    }
    a->last_alive = time_monotonic();
    return 0;
}

static int aravis_trigger(frame_source *s, char *err, size_t errlen)
{
    GError *ge = NULL;
    int errors = 0;
    arv_camera_software_trigger(((aravis_source *)s)->camera, &ge);
    return failed(&ge, "TriggerSoftware", &errors, err, errlen) ? -1 : 0;
}

/* Whether the camera still answers: the heartbeat's verdict, and a register read once a second without frames.
 * Returns 0 or SOURCE_LOST (err says why). */
static int aravis_check(frame_source *s, char *err, size_t errlen)
{
    aravis_source *a = (aravis_source *)s;
    if (atomic_load(&a->control_lost)) {
        snprintf(err, errlen, "camera %s: control lost (no heartbeat answer)", a->id);
        return a->lost = SOURCE_LOST;
    }
    double silent = time_monotonic() - a->last_alive;
    if (a->stream && !a->triggered) {     /* a free-running stream says it by its frames */
        if (silent <= SILENCE_S || silent <= 3 * a->frame_period) return 0;
        snprintf(err, errlen, "camera %s: no frame for %.1f s", a->id, silent);
        return a->lost = SOURCE_LOST;
    }
    if (silent < PROBE_INTERVAL_S) return 0;
    GError *ge = NULL;
    arv_camera_get_integer(a->camera, "Width", &ge);
    if (ge) {
        snprintf(err, errlen, "camera %s does not answer: %s", a->id, ge->message);
        g_clear_error(&ge);
        return a->lost = SOURCE_LOST;
    }
    a->last_alive = time_monotonic();
    return 0;
}

/* A popped buffer into f: 1 for a whole image, 0 for a lost (incomplete) or unusable one. */
static int take_buffer(aravis_source *a, ArvBuffer *b, frame *f)
{
    frame_source *s = &a->base;
    ArvBufferStatus status = arv_buffer_get_status(b);
    if (status == ARV_BUFFER_STATUS_CLEARED || status == ARV_BUFFER_STATUS_ABORTED) return 0;   /* never filled */
    guint64 id = arv_buffer_get_frame_id(b);
    if (a->last_frame_id && id > a->last_frame_id + 1) s->counters.missed += id - a->last_frame_id - 1;
    if (id) a->last_frame_id = id;      /* a smaller id: the camera's counter wrapped or restarted */
    if (status != ARV_BUFFER_STATUS_SUCCESS) {
        s->counters.missed++;
        snprintf(s->counters.last_error, sizeof s->counters.last_error, "frame %llu lost: buffer status %d",
                 (unsigned long long)id, (int)status);
        if (s->counters.missed <= 10 || s->counters.missed % 100 == 0)
            log_warn("camera", "aravis %s: %s (%lu lost so far)", a->id, s->counters.last_error, s->counters.missed);
        return 0;
    }
    if (arv_buffer_get_payload_type(b) != ARV_BUFFER_PAYLOAD_TYPE_IMAGE)
        return source_reject(s, "payload type %d is not an image", (int)arv_buffer_get_payload_type(b));
    int w = arv_buffer_get_image_width(b), h = arv_buffer_get_image_height(b);
    ArvPixelFormat format = arv_buffer_get_image_pixel_format(b);
    int bytes = format == ARV_PIXEL_FORMAT_MONO_8 ? 1 : format == ARV_PIXEL_FORMAT_MONO_12 || format == ARV_PIXEL_FORMAT_MONO_16 ? 2 : 0;
    size_t size = 0;
    const unsigned char *data = arv_buffer_get_image_data(b, &size);
    if (!bytes) return source_reject(s, "pixel format 0x%08x is not Mono8/Mono12/Mono16", (unsigned)format);
    if (w < 1 || h < 1 || w > s->max_width || h > s->max_height)
        return source_reject(s, "image %dx%d does not fit %dx%d", w, h, s->max_width, s->max_height);
    size_t n = (size_t)w * h;
    if (!data || size < n * (size_t)bytes) return source_reject(s, "image data has %zu bytes for %dx%d", size, w, h);
    if (bytes == 1) {
        for (size_t i = 0; i < n; i++) f->data[i] = data[i];
    } else {
        memcpy(f->data, data, n * 2);    /* GigE Vision sends Mono12/Mono16 little-endian, as this host is */
    }
    f->width = w;
    f->height = h;
    guint64 ns = arv_buffer_get_system_timestamp(b);
    if (ns) f->stamp = (struct timespec){.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
    s->counters.received++;
    return 1;
}

static int aravis_next(frame_source *s, frame *f, const source_request *rq, double timeout_s, char *err, size_t errlen)
{
    aravis_source *a = (aravis_source *)s;
    if (!a->stream) return aravis_check(s, err, errlen);
    ArvBuffer *b = arv_stream_timeout_pop_buffer(a->stream, (guint64)(timeout_s * 1e6));
    guint64 completed, failures, underruns;
    arv_stream_get_statistics(a->stream, &completed, &failures, &underruns);
    s->counters.underruns = a->underruns_before + underruns;
    if (!b) return aravis_check(s, err, errlen);
    a->last_alive = time_monotonic();
    int rc = take_buffer(a, b, f);
    arv_stream_push_buffer(a->stream, b);
    return rc;
}

static void aravis_close(frame_source *s)
{
    aravis_disconnect(s);
    free(s);
}

static const frame_source_ops aravis_ops = {.kind = "aravis", .self_paced = 1, .next = aravis_next,
                                            .close = aravis_close, .connect = aravis_connect,
                                            .disconnect = aravis_disconnect, .apply = aravis_apply,
                                            .start = aravis_start, .stop = aravis_stop, .trigger = aravis_trigger,
                                            .check = aravis_check};

frame_source *source_aravis_open(const char *camera_id, int max_width, int max_height, char *err, size_t errlen)
{
    struct in_addr address;
    int fake = !strcmp(camera_id, "Fake_1");
    if (!fake && inet_pton(AF_INET, camera_id, &address) != 1) {
        snprintf(err, errlen, "aravis camera \"%s\": give the camera's IPv4 address (cameras are opened by address, "
                 "never found by broadcast discovery) or Fake_1 (Aravis' simulated camera)", camera_id);
        return NULL;
    }
    aravis_source *a = xcalloc(1, sizeof *a);
    a->base.ops = &aravis_ops;
    a->base.max_width = max_width;
    a->base.max_height = max_height;
    str_copy(a->id, camera_id, sizeof a->id);
    a->fake = fake;
    return &a->base;
}
