/* pvaimage.c -- the NTNDArray image PV (pvaimage.h): st.cmd command, frame consumer thread, start/stop. */
#include "drivers/pvaimage/pvaimage.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/base/base.h"
#include "core/db/db.h"
#include "core/pva/pva.h"
#include "core/shell/shell.h"
#include "drivers/camera/camera.h"

typedef struct pvaimage {
    frame_consumer *frames;     /* added at configure time */
    pva_source *pv;
    pthread_t thread;
    int running;
    atomic_int stopping;
    struct pvaimage *next;
} pvaimage;

static pvaimage *images;        /* st.cmd thread before iocInit; read-only afterwards */

static void *image_thread(void *arg)
{
    pvaimage *im = arg;
    static const char *const names[] = { "stage_x", "stage_y", "stage_z", "pixel_size" };
    while (!atomic_load(&im->stopping)) {
        frame *f = frame_consumer_next(im->frames, 0.2);
        if (!f)
            continue;
        double values[] = { f->stage_x, f->stage_y, f->stage_z, f->pixel_size };
        pva_ndarray a = { .width = f->width, .height = f->height, .data = f->data, .unique_id = (int32_t)f->id,
                          .stamp = f->stamp, .nattr = 4, .attr_names = names, .attr_values = values };
        pva_ndarray_post(im->pv, &a);
        frame_consumer_done(im->frames, f);
    }
    return NULL;
}

static void images_start(void *user)
{
    (void)user;
    for (pvaimage *im = images; im; im = im->next) {
        im->running = pthread_create(&im->thread, NULL, image_thread, im) == 0;
        if (!im->running)
            log_error("pvaimage", "cannot start the NTNDArray thread");
    }
}

static void images_stop(void *user)
{
    (void)user;
    for (pvaimage *im = images; im; im = im->next) {
        atomic_store(&im->stopping, 1);
        if (im->running)
            pthread_join(im->thread, NULL);
        im->running = 0;
    }
}

static void images_free(void *user)
{
    (void)user;
    while (images) {
        pvaimage *im = images;
        images = im->next;
        free(im);
    }
}

static int configure_cmd(int argc, char **argv, char *err, size_t errlen)
{
    (void)argc;
    camera *cam = camera_find(argv[1]);
    if (!cam)
        return error_set(err, errlen, "no camera port '%s' (cameraConfigure first)", argv[1]);
    pvaimage *im = xcalloc(1, sizeof *im);
    im->pv = pva_ndarray_source_add(argv[2], err, errlen);
    if (!im->pv) {
        free(im);
        return -1;
    }
    im->frames = frame_ring_add_consumer(camera_ring(cam), "pva", FRAMES_NEWEST);
    if (!im->frames) {
        free(im);
        return error_set(err, errlen, "camera %s is acquiring already: pvaImageConfigure belongs before iocInit",
                         argv[1]);
    }
    im->next = images;
    images = im;
    return 0;
}

void pvaimage_register(void)
{
    shell_register("pvaImageConfigure", "pvaImageConfigure(CAMERA_PORT, PV_NAME)  camera frames as NTNDArray", 2, 2,
                   configure_cmd);
    db_at_init(images_start, NULL);
    db_at_shutdown(images_stop, NULL);
    db_at_exit(images_free, NULL);
}
