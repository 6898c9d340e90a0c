/* camera_internal.h -- shared by the files of src/drivers/camera: the driver's parameters (an X-macro table,
 * so that the enum and the names used in db/camera.db cannot drift apart), the frame sources (source_*.c),
 * and the driver's state used by camera_driver.c (configuration, parameter writes, lifecycle), camera_acquire.c
 * (the acquisition and image threads), camera_link.c (a camera source's connection) and camera_stage.c. */
#ifndef RELOC_CAMERA_INTERNAL_H
#define RELOC_CAMERA_INTERNAL_H

#include "drivers/camera/camera.h"
#include "drivers/capture/capture.h"
#include "drivers/motion/motion.h"
#include "core/db/db.h"
#include "core/param/param.h"
#include "drivers/preview/preview.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Parameters */
#define CAMERA_PARAMS(X) \
    X(P_ACQUIRE, "Acquire", PARAM_INT) \
    X(P_ACQUIRE_BUSY, "AcquireBusy", PARAM_INT) \
    X(P_ACQUIRE_TIME, "AcquireTime", PARAM_DOUBLE) \
    X(P_ACQUIRE_PERIOD, "AcquirePeriod", PARAM_DOUBLE) \
    X(P_IMAGE_MODE, "ImageMode", PARAM_INT) \
    X(P_NUM_IMAGES, "NumImages", PARAM_INT) \
    X(P_NUM_IMAGES_COUNTER, "NumImagesCounter", PARAM_INT) \
    X(P_ARRAY_COUNTER, "ArrayCounter", PARAM_INT) \
    X(P_ARRAY_RATE, "ArrayRate", PARAM_DOUBLE) \
    X(P_DETECTOR_STATE, "DetectorState", PARAM_INT) \
    X(P_STATUS_MESSAGE, "StatusMessage", PARAM_STRING) \
    X(P_MAX_SIZE_X, "MaxSizeX", PARAM_INT) \
    X(P_MAX_SIZE_Y, "MaxSizeY", PARAM_INT) \
    X(P_SIZE_X, "SizeX", PARAM_INT) \
    X(P_SIZE_Y, "SizeY", PARAM_INT) \
    X(P_MIN_X, "MinX", PARAM_INT) \
    X(P_MIN_Y, "MinY", PARAM_INT) \
    X(P_BIN_X, "BinX", PARAM_INT) \
    X(P_BIN_Y, "BinY", PARAM_INT) \
    X(P_GAIN, "Gain", PARAM_DOUBLE) \
    X(P_DATA_TYPE, "DataType", PARAM_INT) \
    X(P_COLOR_MODE, "ColorMode", PARAM_INT) \
    X(P_ARRAY_SIZE_X, "ArraySizeX", PARAM_INT) \
    X(P_ARRAY_SIZE_Y, "ArraySizeY", PARAM_INT) \
    X(P_ARRAY_SIZE, "ArraySize", PARAM_INT) \
    X(P_UNIQUE_ID, "UniqueId", PARAM_INT) \
    X(P_TIME_STAMP, "TimeStamp", PARAM_DOUBLE) \
    X(P_STAGE_X, "StageX", PARAM_DOUBLE) \
    X(P_STAGE_Y, "StageY", PARAM_DOUBLE) \
    X(P_PIXEL_SIZE, "PixelSize", PARAM_DOUBLE) \
    X(P_SOURCE_KIND, "SourceKind", PARAM_STRING) \
    X(P_SOURCE_RECEIVED, "SourceReceived", PARAM_INT) \
    X(P_SOURCE_REJECTED, "SourceRejected", PARAM_INT) \
    X(P_SOURCE_MISSED, "SourceMissed", PARAM_INT) \
    X(P_SOURCE_ERROR, "SourceError", PARAM_STRING) \
    X(P_SOURCE_UNDERRUNS, "SourceUnderruns", PARAM_INT) \
    X(P_SOURCE_CONNECTED, "SourceConnected", PARAM_INT) \
    X(P_SOURCE_RECONNECTS, "SourceReconnects", PARAM_INT) \
    X(P_PIXEL_FORMAT, "PixelFormat", PARAM_INT) \
    X(P_TRIGGER_MODE, "TriggerMode", PARAM_INT) \
    X(P_TRIGGER_SOURCE, "TriggerSource", PARAM_INT) \
    X(P_SOFTWARE_TRIGGER, "SoftwareTrigger", PARAM_INT) \
    X(P_IMAGE_ENABLE, "image:EnableCallbacks", PARAM_INT) \
    X(P_IMAGE_COUNTER, "image:ArrayCounter", PARAM_INT) \
    X(P_IMAGE_UNIQUE_ID, "image:UniqueId", PARAM_INT) \
    X(P_IMAGE_SIZE0, "image:ArraySize0", PARAM_INT) \
    X(P_IMAGE_SIZE1, "image:ArraySize1", PARAM_INT) \
    X(P_IMAGE_RATE, "image:ArrayRate", PARAM_DOUBLE) \
    X(P_IMAGE_DROPPED, "image:DroppedArrays", PARAM_INT) \
    X(P_IMAGE_LATENCY, "image:Latency", PARAM_DOUBLE) \
    X(P_IMAGE_MIN_TIME, "image:MinCallbackTime", PARAM_DOUBLE) \
    X(P_PREVIEW_ENDPOINT, "preview:Endpoint", PARAM_STRING) \
    X(P_PREVIEW_QUALITY, "preview:Quality", PARAM_INT) \
    X(P_PREVIEW_SENT, "preview:Sent", PARAM_INT) \
    X(P_PREVIEW_BYTES, "preview:Bytes", PARAM_INT) \
    X(P_PREVIEW_RATE, "preview:Rate", PARAM_DOUBLE) \
    X(P_PREVIEW_DROPPED, "preview:Dropped", PARAM_INT) \
    X(P_PREVIEW_LATENCY, "preview:Latency", PARAM_DOUBLE) \
    X(P_FILE_PATH, "hdf:FilePath", PARAM_STRING) \
    X(P_FILE_NAME, "hdf:FileName", PARAM_STRING) \
    X(P_FILE_NUMBER, "hdf:FileNumber", PARAM_INT) \
    X(P_FULL_FILE_NAME, "hdf:FullFileName", PARAM_STRING) \
    X(P_CAPTURE, "hdf:Capture", PARAM_INT) \
    X(P_CAPTURE_BUSY, "hdf:CaptureBusy", PARAM_INT) \
    X(P_NUM_CAPTURE, "hdf:NumCapture", PARAM_INT) \
    X(P_NUM_CAPTURED, "hdf:NumCaptured", PARAM_INT) \
    X(P_WRITE_STATUS, "hdf:WriteStatus", PARAM_INT) \
    X(P_WRITE_MESSAGE, "hdf:WriteMessage", PARAM_STRING) \
    X(P_CAPTURE_DROPPED, "hdf:DroppedArrays", PARAM_INT)

enum { CAMERA_PARAMS(PARAM_ENUM) P_IMAGE_DATA, CAMERA_NPARAMS };

/* areaDetector DetectorState values */
enum { DETECTOR_IDLE = 0, DETECTOR_ACQUIRE = 1, DETECTOR_ERROR = 6, DETECTOR_DISCONNECTED = 9 };
/* ImageMode */
enum { IMAGE_SINGLE = 0, IMAGE_MULTIPLE = 1, IMAGE_CONTINUOUS = 2 };
/* PixelFormat (GenICam names); frames are uint16 in the ring whatever the camera sends */
enum { PIXEL_MONO8 = 0, PIXEL_MONO12 = 1, PIXEL_MONO16 = 2, PIXEL_NFORMATS };
/* TriggerMode (GenICam FrameStart trigger) and TriggerSource */
enum { TRIGGER_OFF = 0, TRIGGER_ON = 1 };
enum { TRIGGER_SOFTWARE = 0, TRIGGER_LINE0, TRIGGER_LINE1, TRIGGER_LINE2, TRIGGER_LINE3, TRIGGER_NSOURCES };

/* Settings the acquisition thread works from; a copy is taken under the lock for every frame. */
typedef struct camera_settings {
    int acquire;                /* acquisition requested */
    int image_mode, num_images;
    double acquire_time, acquire_period, gain;
    int min_x, min_y, size_x, size_y, bin_x, bin_y;
    int pixel_format, trigger_mode, trigger_source;
    unsigned long software_triggers;   /* SoftwareTrigger writes so far (the thread fires the new ones) */
    int image_enable;
    double image_min_time;      /* s between frames the image PV takes (areaDetector MinCallbackTime) */
    long reset_counter;         /* >= 0: set ArrayCounter to this (client write), -1: none */
} camera_settings;

/* ---- Frame sources: where frames come from.
 *   sim   : the simulated microscope (src/drivers/simscope) rendered at the current stage position and zoom
 *   zmq   : an external publisher, ADZMQ-style two-part messages (JSON header, raw pixels)
 *   files : replay of a directory of TIFF/PNG files or of an HDF5 stack, in a loop
 *   aravis: a GigE Vision / GenICam camera through Aravis (opened by IPv4 address, or Aravis' in-process Fake_1)
 * A source is used only by the camera's acquisition thread. A "camera" source (aravis) does exposure, gain, ROI,
 * binning, frame rate, image mode, pixel format and triggering in the camera: the thread hands it the settings
 * (apply) and publishes what the camera reports back; the others get the exposure settings with each request
 * and the driver crops and bins their frames itself. */
/* What the acquisition thread asks of a source for one frame: where the stage is, how large a pixel is,
 * and the exposure settings (the sim source renders what that shows; others ignore most of it). */
typedef struct source_request {
    double x, y, z;              /* stage position, um */
    double pixel_size;           /* um per pixel */
    double exposure;             /* relative exposure (1 = the sample description's background counts) */
    double gain;
    uint64_t seed;               /* noise seed for this frame */
} source_request;

typedef struct frame_source frame_source;

typedef struct source_counters {
    unsigned long received;      /* frames delivered */
    unsigned long rejected;      /* malformed input refused (zmq) */
    unsigned long missed;        /* frames sent that never arrived whole (zmq: gaps in "frame" ids; aravis: incomplete
                                  * buffers and gaps in the camera's frame ids) */
    unsigned long underruns;     /* of those, frames dropped for want of a free buffer (aravis stream) */
    char last_error[256];        /* what the last rejection or failure was */
} source_counters;

typedef struct frame_source_ops {
    const char *kind;
    int self_paced;              /* frames arrive at the source's own pace (AcquirePeriod does not apply) */
    /* Fills f with the next frame (f has room for max_width * max_height pixels; the source sets width and
     * height). Returns 1 when a frame is ready, 0 when none came within timeout_s, -1 on a failure that
     * stops acquisition (message in err). */
    int (*next)(frame_source *s, frame *f, const source_request *request, double timeout_s, char *err, size_t errlen);
    void (*close)(frame_source *s);
    /* Camera sources only (NULL for the others). connect: (re)opens the camera, fills `limits`; 0 or -1 (err).
     * disconnect: closes it. apply: makes the camera take `want` (acquiring or not; `before` is what it was given
     * last, NULL after a connect: everything) and writes what it took into `got` (the readbacks); -1 with err
     * names a setting the camera refused. start/stop: the camera's acquisition. trigger: one software trigger.
     * check: whether the camera still answers (0), cheap, called about once a second while not acquiring.
     * `next` and `check` return SOURCE_LOST when the camera stopped answering: the driver raises the alarm,
     * disconnects and calls connect again (once a second) until it succeeds. */
    int (*connect)(frame_source *s, char *err, size_t errlen);
    void (*disconnect)(frame_source *s);
    int (*apply)(frame_source *s, const camera_settings *before, const camera_settings *want, camera_settings *got,
                 char *err, size_t errlen);
    int (*start)(frame_source *s, char *err, size_t errlen);
    void (*stop)(frame_source *s);
    int (*trigger)(frame_source *s, char *err, size_t errlen);
    int (*check)(frame_source *s, char *err, size_t errlen);
} frame_source_ops;

#define SOURCE_LOST (-2)

/* What a camera source's camera accepts, filled by connect (read by camera_write under the camera's lock). */
typedef struct source_limits {
    int known;                   /* a camera has been connected: the bounds below hold */
    int sensor_width, sensor_height;
    double exposure_min, exposure_max;   /* s */
    double gain_min, gain_max;
    double rate_min, rate_max;   /* frames/s */
    int bin_max_x, bin_max_y;
    int pixel_formats;           /* bit PIXEL_* set when the camera offers the format */
    int trigger_sources;         /* bit TRIGGER_* set when TriggerSource offers it; 0: no FrameStart trigger */
} source_limits;

struct frame_source {
    const frame_source_ops *ops;
    int max_width, max_height;
    source_counters counters;
    source_limits limits;        /* camera sources: written by connect (acquisition thread), copied to the
                                  * camera's own (struct camera, under its lock) for camera_write */
};

/* Counts and logs (rate-limited) a rejected frame; the message stays in counters.last_error. Returns 0, the
 * value `next` returns for "no frame". */
int source_reject(frame_source *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A sample as uint16: rounded, clipped to 0..65535, NaN as 0. */
uint16_t source_clamp16(double v);

/* Constructors: NULL with a message on a bad argument (unreadable sample file, bad endpoint, no frames). */
frame_source *source_sim_open(const char *sample_path, int width, int height, char *err, size_t errlen);
frame_source *source_zmq_open(const char *endpoint, int max_width, int max_height, char *err, size_t errlen);
frame_source *source_files_open(const char *path, int max_width, int max_height, char *err, size_t errlen);
/* The camera is not contacted here: the acquisition thread connects (and reconnects) it. */
frame_source *source_aravis_open(const char *camera_id, int max_width, int max_height, char *err, size_t errlen);

/* ---- The driver */
#define CAMERA_RING_DEPTH 16

/* A stage input: one channel or a sum of channels, in um (drivers/motion reads it). */
typedef struct stage_input {
    char spec[MOTION_MAX_TERMS * (DB_NAME_SIZE + 8)];   /* "P:samx.RBV" or "P:samx.RBV+P:pssx.RBV"; "" for none */
    motion_position position;
} stage_input;

struct camera {
    char port_name[40];
    param_port *port;
    frame_source *source;
    frame_ring *ring;
    int max_width, max_height;
    stage_input stage[4];       /* x, y, z, pixel size */
    preview_config preview_cfg;
    frame_consumer *preview_frames;   /* cameraPreview: the preview's consumer, started at iocInit */
    preview *preview;
    capture *capture;
    frame_consumer *image_consumer;
    int32_t *image_buffer;      /* frame converted for the ArrayData parameter */

    pthread_t acquire_thread, image_thread;
    atomic_int stopping;

    pthread_mutex_t lock;       /* guards settings, capture_waiting and the preview pointer; never held while
                                 * calling db */
    pthread_cond_t wake;        /* acquisition requested or settings changed */
    camera_settings settings;
    source_limits limits;       /* what the connected camera accepts (camera sources) */
    int capture_waiting;        /* a Capture=1 write is waiting for the capture to end */
};

/* ---- A camera source's connection (camera_link.c), owned by the acquisition thread */
typedef struct camera_link {
    int connected, streaming;
    int ever_connected;
    long reconnects;
    double next_attempt;             /* monotonic time of the next connect attempt */
    double next_check;               /* monotonic time of the next check while not acquiring */
    camera_settings applied;         /* what the camera was given last */
    int readback_stale;              /* its readbacks were not published (newer settings were waiting) */
    unsigned long triggers_fired;
    unsigned long failed_attempts;
} camera_link;

/* Every iteration of the acquisition thread: (re)connects, hands changed settings to the camera and publishes
 * its readbacks, fires software triggers, starts and stops the camera's acquisition, checks an idle camera.
 * Returns 1 when the camera is connected and ready, 0 when it is not connected, -1 when it would not start
 * acquiring (err says why). */
int camera_link_service(camera *cam, camera_link *link, const camera_settings *s, char *err, size_t errlen);
/* The camera stopped answering: alarm and log line, then the connection is closed; service reconnects. */
void camera_lost(camera *cam, camera_link *link, int acquiring, const char *why);

void camera_threads_start(camera *cam);
void camera_threads_stop(camera *cam);

#endif
