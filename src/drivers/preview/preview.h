/* preview.h -- the compressed live preview: a frame-ring consumer that encodes the newest frame as JPEG
 * (libjpeg-turbo) at a configurable quality and size and publishes it on a ZeroMQ PUB socket, so screens
 * and browsers can watch the camera without pulling full 16-bit frames over Channel Access.
 *
 * Each message has two parts: a UTF-8 JSON header, then the JPEG bytes. Header keys:
 *   "htype": "reloc-preview-1.0", "frame": unique id, "timeStamp": POSIX seconds of the exposure,
 *   "shape": [height, width] of the JPEG, "source_shape": [height, width] of the frame, "binning": b,
 *   "encoding": "jpeg", "type": "uint8", "levels": [lo, hi] (the 16-bit range mapped to 0..255),
 *   "stage": {"x", "y", "z"} (um, at exposure), "pixel_size": um per JPEG pixel,
 *   plus one key per analysis result posted with preview_set_result (e.g. "registration", "detection").
 *
 * Thread model: the preview owns one thread (consumer loop -> encode -> send). Results are posted from any
 * thread under the preview's own lock. Sending never blocks: slow subscribers lose messages (PUB semantics).
 */
#ifndef RELOC_PREVIEW_H
#define RELOC_PREVIEW_H

#include <stddef.h>

#include "drivers/frames/frames.h"

typedef struct preview_config {
    char endpoint[256];      /* ZeroMQ endpoint to bind, e.g. "tcp://127.0.0.1:5570" ("...:*": any free port) */
    int quality;             /* JPEG quality 1..100 */
    int max_width;           /* frames wider than this are binned by an integer factor (0: no limit) */
    double max_rate_hz;      /* at most this many previews per second (0: every frame it gets) */
} preview_config;

typedef struct preview preview;

void preview_config_defaults(preview_config *cfg);
/* Starts the preview thread on consumer (added to the camera's ring at configuration). NULL with a message when
 * the endpoint cannot be bound. */
preview *preview_start(frame_consumer *consumer, const preview_config *cfg, char *err, size_t errlen);
/* Replaces the settings that can change while running (quality, max_width, max_rate_hz). */
void preview_update(preview *p, const preview_config *cfg);
/* Attaches a JSON value (object, array or number text) under `key` to the following previews; NULL removes. */
void preview_set_result(preview *p, const char *key, const char *json_value);
/* The endpoint actually bound ("tcp://127.0.0.1:*" binds a free port; this tells which). */
const char *preview_endpoint(preview *p);
/* The preview's frame-ring consumer (its rate, drops and latency). */
frame_consumer *preview_frame_consumer(preview *p);
/* Frames encoded so far and the size of the last JPEG in bytes. */
void preview_counts(preview *p, unsigned long *sent, size_t *last_bytes);
/* Stops the thread (the ring must be shut down or still producing; the thread notices within 0.2 s). */
void preview_stop(preview *p);

/* Encodes a 16-bit frame as 8-bit grey JPEG after binning by `binning` and mapping [lo, hi] to [0, 255]
 * (lo == hi: the frame's own 0.1 and 99.9 percentiles). Used by the preview thread and by tools. The JPEG is
 * returned in *jpeg (free with preview_free_jpeg). 0 or -1. */
int preview_encode(const uint16_t *pixels, int width, int height, int binning, int quality, double *lo, double *hi,
                   unsigned char **jpeg, unsigned long *jpeg_size, int *out_width, int *out_height);
void preview_free_jpeg(unsigned char *jpeg);

#endif
