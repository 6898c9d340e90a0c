/* source.h -- frame sources of the camera driver (internal to src/drivers/camera): where frames come from.
 *   sim   : the simulated microscope (src/drivers/simscope) rendered at the current stage position and zoom
 *   zmq   : an external publisher, ADZMQ-style two-part messages (JSON header, raw pixels)
 *   files : replay of a directory of TIFF/PNG files or of an HDF5 stack, in a loop
 * A source is used only by the camera's acquisition thread. */
#ifndef RELOC_CAMERA_SOURCE_H
#define RELOC_CAMERA_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "drivers/frames/frames.h"

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
} frame_source_ops;

struct frame_source {
    const frame_source_ops *ops;
    int max_width, max_height;
    source_counters counters;
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

#endif
