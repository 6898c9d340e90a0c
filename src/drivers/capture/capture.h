/* capture.h -- saving camera frames to HDF5 as they arrive (the areaDetector "HDF1:" plugin of reloc).
 *
 * A capture is a frame-ring consumer in sequential mode: while capturing it writes every frame the ring
 * still holds (and counts the ones it could not keep up with as dropped). File layout, NeXus-like:
 *   /entry/data/data          uint16 [N, height, width], chunked one frame per chunk, shuffle + deflate
 *   /entry/data/timestamp     float64 [N], POSIX seconds of each exposure
 *   /entry/data/uniqueId      int64 [N]
 *   /entry/data/pixel_size    float64 [N], um
 *   /entry/instrument/stage/x, y, z   float64 [N], sample stage position at exposure (um)
 * The file is written in HDF5 single-writer/multiple-reader mode and flushed after every frame, so h5py can
 * read it (h5py.File(path, "r", swmr=True)) while it grows. Failures (path not writable, disk full, frame
 * size changing mid-capture) end the capture with state CAPTURE_ERROR and a message; nothing crashes.
 *
 * Thread model: one thread per capture owns the HDF5 file. Control calls and status reads come from other
 * threads (record processing) and are guarded by the capture's lock.
 */
#ifndef RELOC_CAPTURE_H
#define RELOC_CAPTURE_H

#include <stddef.h>

#include "drivers/frames/frames.h"

typedef enum { CAPTURE_IDLE = 0, CAPTURE_RUNNING = 1, CAPTURE_ERROR = 2 } capture_state;

typedef struct capture_status {
    capture_state state;
    long requested;          /* frames asked for (0 = until stopped) */
    long captured;           /* frames written to the current/last file */
    unsigned long dropped;   /* frames published while capturing that could not be written in time */
    char file[1024];         /* current or last file */
    char message[256];       /* last status text ("OK", or what failed) */
} capture_status;

typedef struct capture capture;

capture *capture_create(frame_ring *ring);
/* Starts writing to dir/name_NNNN.h5 with NNNN = number (4 digits); num_frames 0 captures until capture_stop.
 * Fails at once (with err, and the status says so too) when the file cannot be created. */
int capture_start(capture *c, const char *dir, const char *name, int number, long num_frames, char *err,
                  size_t errlen);
/* Closes the file after the frame being written; safe when idle. */
void capture_stop(capture *c);
void capture_status_get(capture *c, capture_status *out);
/* Stops the thread (after frame_ring_shutdown or while frames still flow) and frees the capture. */
void capture_destroy(capture *c);

#endif
