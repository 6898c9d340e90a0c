/* capture.c -- the HDF5 capture thread and its file (capture.h describes layout and rules).
 * `lock` guards the control fields and the status; the HDF5 handles belong to the capture thread, except
 * that capture_start creates the file (so that it can fail synchronously) before handing it over. */
#include "drivers/capture/capture.h"

#include "core/base/base.h"
#include "formats/h5array/h5array.h"

#include <hdf5.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DS_DATA, DS_TIMESTAMP, DS_UNIQUE_ID, DS_PIXEL_SIZE, DS_STAGE_X, DS_STAGE_Y, DS_STAGE_Z, DS_COUNT };

typedef struct h5_output {
    hid_t file;
    hid_t ds[DS_COUNT];
    int width, height;           /* 0 until the first frame fixes them */
} h5_output;

struct capture {
    pthread_t thread;
    frame_consumer *consumer;
    atomic_int stopping;

    pthread_mutex_t lock;        /* guards everything below */
    capture_status status;
    int stop_requested;
    h5_output out;               /* valid while status.state == CAPTURE_RUNNING */
    uint64_t dropped_at_start;
};

static const char *const ds_paths[DS_COUNT] = {
    "/entry/data/data", "/entry/data/timestamp", "/entry/data/uniqueId", "/entry/data/pixel_size",
    "/entry/instrument/stage/x", "/entry/instrument/stage/y", "/entry/instrument/stage/z",
};

static hid_t create_series(hid_t file, const char *path, hid_t type)
{
    hsize_t dims[1] = {0}, maxdims[1] = {H5S_UNLIMITED}, chunk[1] = {256};
    hid_t space = H5Screate_simple(1, dims, maxdims);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    H5Pset_chunk(dcpl, 1, chunk);
    hid_t ds = H5Dcreate2(file, path, type, space, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(space);
    return ds;
}

static void output_close(h5_output *o)
{
    for (int i = 0; i < DS_COUNT; i++)
        if (o->ds[i] > 0) H5Dclose(o->ds[i]);
    if (o->file > 0) H5Fclose(o->file);
    memset(o, 0, sizeof *o);
}

/* Creates the file and the 1D series; the image dataset waits for the first frame's size. */
static int output_open(h5_output *o, const char *path, char *err, size_t errlen)
{
    h5array_quiet();
    memset(o, 0, sizeof *o);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);   /* required for SWMR */
    o->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (o->file < 0) {
        snprintf(err, errlen, "cannot create %s (directory missing or not writable?)", path);
        o->file = 0;
        return -1;
    }
    static const int types[DS_COUNT] = {0, 1, 2, 1, 1, 1, 1};   /* 1 double, 2 int64 */
    for (int i = 1; i < DS_COUNT; i++) {
        o->ds[i] = create_series(o->file, ds_paths[i], types[i] == 2 ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE);
        if (o->ds[i] < 0) {
            snprintf(err, errlen, "cannot create dataset %s in %s", ds_paths[i], path);
            o->ds[i] = 0;
            output_close(o);
            return -1;
        }
    }
    return 0;
}

/* First frame: creates the image dataset and switches the file to SWMR writing. */
static int output_begin_images(h5_output *o, int width, int height)
{
    hsize_t dims[3] = {0, (hsize_t)height, (hsize_t)width};
    hsize_t maxdims[3] = {H5S_UNLIMITED, (hsize_t)height, (hsize_t)width};
    hsize_t chunk[3] = {1, (hsize_t)height, (hsize_t)width};
    hid_t space = H5Screate_simple(3, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 3, chunk);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 1);
    o->ds[DS_DATA] = H5Dcreate2(o->file, ds_paths[DS_DATA], H5T_NATIVE_UINT16, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (o->ds[DS_DATA] < 0) {
        o->ds[DS_DATA] = 0;
        return -1;
    }
    o->width = width;
    o->height = height;
    return H5Fstart_swmr_write(o->file) < 0 ? -1 : 0;
}

/* Appends `values` (one element of `type`, or one frame) at index n of dataset ds. */
static int append(hid_t ds, int rank, hsize_t n, const hsize_t *frame_dims, hid_t type, const void *values)
{
    hsize_t size[3] = {n + 1, rank > 1 ? frame_dims[0] : 0, rank > 1 ? frame_dims[1] : 0};
    hsize_t start[3] = {n, 0, 0}, count[3] = {1, size[1], size[2]};
    if (H5Dset_extent(ds, size) < 0) return -1;
    hid_t file_space = H5Dget_space(ds);
    hid_t mem_space = H5Screate_simple(rank, count, NULL);
    int rc = H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
             H5Dwrite(ds, type, mem_space, file_space, H5P_DEFAULT, values) < 0 || H5Dflush(ds) < 0 ? -1 : 0;
    H5Sclose(mem_space);
    H5Sclose(file_space);
    return rc;
}

static int output_write(h5_output *o, const frame *f, long index, char *err, size_t errlen)
{
    if (!o->width && output_begin_images(o, f->width, f->height) != 0) {
        snprintf(err, errlen, "cannot create the image dataset (disk full?)");
        return -1;
    }
    if (f->width != o->width || f->height != o->height) {
        snprintf(err, errlen, "frame size changed from %dx%d to %dx%d during capture", o->width, o->height,
                 f->width, f->height);
        return -1;
    }
    hsize_t n = (hsize_t)index, frame_dims[2] = {(hsize_t)f->height, (hsize_t)f->width};
    double stamp = (double)f->stamp.tv_sec + (double)f->stamp.tv_nsec * 1e-9;
    int64_t id = (int64_t)f->id;
    if (append(o->ds[DS_DATA], 3, n, frame_dims, H5T_NATIVE_UINT16, f->data) ||
        append(o->ds[DS_TIMESTAMP], 1, n, NULL, H5T_NATIVE_DOUBLE, &stamp) ||
        append(o->ds[DS_UNIQUE_ID], 1, n, NULL, H5T_NATIVE_INT64, &id) ||
        append(o->ds[DS_PIXEL_SIZE], 1, n, NULL, H5T_NATIVE_DOUBLE, &f->pixel_size) ||
        append(o->ds[DS_STAGE_X], 1, n, NULL, H5T_NATIVE_DOUBLE, &f->stage_x) ||
        append(o->ds[DS_STAGE_Y], 1, n, NULL, H5T_NATIVE_DOUBLE, &f->stage_y) ||
        append(o->ds[DS_STAGE_Z], 1, n, NULL, H5T_NATIVE_DOUBLE, &f->stage_z)) {
        snprintf(err, errlen, "write of frame %ld failed (disk full or file removed?)", index);
        return -1;
    }
    return 0;
}

/* [c->lock held] Ends the running capture with a final state and message. */
static void finish(capture *c, capture_state state, const char *message)
{
    output_close(&c->out);
    c->status.state = state;
    str_copy(c->status.message, message, sizeof c->status.message);
    if (state == CAPTURE_ERROR) log_error("capture", "%s: %s", c->status.file, message);
    else log_info("capture", "%s: %ld frames written", c->status.file, c->status.captured);
}

/* The file is written without holding `lock` (a frame can take a while), which is safe because while the
 * state is RUNNING only this thread touches `out`: capture_start refuses to run then, capture_stop only
 * sets a flag. */
static void *capture_thread(void *arg)
{
    capture *c = arg;
    while (!atomic_load(&c->stopping)) {
        frame *f = frame_consumer_next(c->consumer, 0.2);
        pthread_mutex_lock(&c->lock);
        int running = c->status.state == CAPTURE_RUNNING;
        long index = c->status.captured;
        pthread_mutex_unlock(&c->lock);
        char err[256];
        int write_rc = running && f ? output_write(&c->out, f, index, err, sizeof err) : 0;
        if (f) frame_consumer_done(c->consumer, f);
        if (!running) continue;
        frame_consumer_stats stats;
        frame_consumer_stats_get(c->consumer, &stats);
        pthread_mutex_lock(&c->lock);
        c->status.dropped = stats.dropped - c->dropped_at_start;
        if (write_rc != 0) finish(c, CAPTURE_ERROR, err);
        else if (f) c->status.captured++;
        if (c->status.state == CAPTURE_RUNNING &&
            (c->stop_requested || (c->status.requested > 0 && c->status.captured >= c->status.requested)))
            finish(c, CAPTURE_IDLE, "OK");
        pthread_mutex_unlock(&c->lock);
    }
    return NULL;
}

capture *capture_create(frame_ring *ring)
{
    frame_consumer *consumer = frame_ring_add_consumer(ring, "capture", FRAMES_SEQUENTIAL);
    if (!consumer) return NULL;
    capture *c = xcalloc(1, sizeof *c);
    c->consumer = consumer;
    pthread_mutex_init(&c->lock, NULL);
    str_copy(c->status.message, "idle", sizeof c->status.message);
    pthread_create(&c->thread, NULL, capture_thread, c);
    return c;
}

int capture_start(capture *c, const char *dir, const char *name, int number, long num_frames, char *err,
                  size_t errlen)
{
    pthread_mutex_lock(&c->lock);
    int rc = -1;
    if (c->status.state == CAPTURE_RUNNING) {
        snprintf(err, errlen, "a capture to %s is already running", c->status.file);
    } else if (num_frames < 0) {
        snprintf(err, errlen, "number of frames must be >= 0 (0: until stopped)");
    } else {
        snprintf(c->status.file, sizeof c->status.file, "%s/%s_%04d.h5", dir, name, number);
        if (output_open(&c->out, c->status.file, err, errlen) != 0) {
            c->status.state = CAPTURE_ERROR;
            str_copy(c->status.message, err, sizeof c->status.message);
            log_error("capture", "%s", err);
        } else {
            frame_consumer_stats stats;
            frame_consumer_stats_get(c->consumer, &stats);
            c->dropped_at_start = stats.dropped;
            c->status.state = CAPTURE_RUNNING;
            c->status.requested = num_frames;
            c->status.captured = 0;
            c->status.dropped = 0;
            c->stop_requested = 0;
            str_copy(c->status.message, "capturing", sizeof c->status.message);
            log_info("capture", "capturing %ld frames to %s", num_frames, c->status.file);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void capture_stop(capture *c)
{
    pthread_mutex_lock(&c->lock);
    c->stop_requested = 1;
    pthread_mutex_unlock(&c->lock);
}

void capture_status_get(capture *c, capture_status *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->status;
    pthread_mutex_unlock(&c->lock);
}

void capture_destroy(capture *c)
{
    if (!c) return;
    atomic_store(&c->stopping, 1);
    pthread_join(c->thread, NULL);
    pthread_mutex_lock(&c->lock);
    if (c->status.state == CAPTURE_RUNNING) finish(c, CAPTURE_IDLE, "stopped at shutdown");
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
