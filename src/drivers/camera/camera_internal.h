/* camera_internal.h -- the camera driver's state, shared by camera_driver.c (configuration, parameter
 * writes, lifecycle) and camera_acquire.c (the acquisition and image threads). */
#ifndef RELOC_CAMERA_INTERNAL_H
#define RELOC_CAMERA_INTERNAL_H

#include "drivers/camera/camera.h"
#include "drivers/camera/camera_params.h"
#include "drivers/camera/source.h"
#include "drivers/capture/capture.h"
#include "drivers/motion/motion.h"
#include "core/db/db.h"
#include "core/param/param.h"
#include "drivers/preview/preview.h"

#include <pthread.h>
#include <stdatomic.h>

#define CAMERA_RING_DEPTH 16
#define CAMERA_MAX_CONSUMERS 8

/* A stage input: one channel or a sum of channels, in um (drivers/motion reads it). */
typedef struct stage_input {
    char spec[MOTION_MAX_TERMS * (DB_NAME_SIZE + 8)];   /* "P:samx.RBV" or "P:samx.RBV+P:pssx.RBV"; "" for none */
    motion_position position;
} stage_input;

/* Settings the acquisition thread works from; a copy is taken under the lock for every frame. */
typedef struct camera_settings {
    int acquire;                /* acquisition requested */
    int image_mode, num_images;
    double acquire_time, acquire_period, gain;
    int min_x, min_y, size_x, size_y, bin_x, bin_y;
    int image_enable;
    double image_min_time;      /* s between frames the image PV takes (areaDetector MinCallbackTime) */
    long reset_counter;         /* >= 0: set ArrayCounter to this (client write), -1: none */
} camera_settings;

struct camera {
    char port_name[40];
    param_port *port;
    frame_source *source;
    frame_ring *ring;
    int max_width, max_height;
    stage_input stage[4];       /* x, y, z, pixel size */
    preview_config preview_cfg;
    int preview_wanted;
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
    int capture_waiting;        /* a Capture=1 write is waiting for the capture to end */
};

void camera_threads_start(camera *cam);
void camera_threads_stop(camera *cam);

#endif
