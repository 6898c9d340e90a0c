/* camera.h -- the camera driver: acquisition from a frame source into the frame ring, and the
 * areaDetector-style parameters its records use ($(P)cam1:, $(P)image1:, $(P)HDF1:, see db/camera.db).
 *
 * st.cmd commands (registered by camera_register):
 *   cameraConfigure(PORT, SOURCE, ARG, MAX_WIDTH, MAX_HEIGHT)
 *       SOURCE "sim" (ARG: sample description file), "zmq" (ARG: publisher endpoint), "files" (ARG: a
 *       directory of TIFF/PNG files, an image file, or file.h5:/dataset), "aravis" (ARG: a GigE Vision camera's
 *       IPv4 address, or Fake_1 for Aravis' in-process simulated camera; connected, and after a loss reconnected,
 *       by the acquisition thread; exposure, gain, ROI, binning, frame rate, image mode, pixel format and
 *       triggers are the camera's GenICam features, their _RBV records what the camera reports)
 *   cameraStage(PORT, X_CHANNEL, Y_CHANNEL, Z_CHANNEL, PIXEL_SIZE_CHANNEL)
 *       channels (e.g. "IOC:samx.RBV", or "IOC:samx.RBV+IOC:pssx.RBV" for coarse plus piezo) read at every
 *       exposure: the stage position stored with each frame and the view the sim source renders, in um
 *       whatever the records' EGU (mm, um, nm); "" for none (0, or 1 um per pixel)
 *   cameraPreview(PORT, ENDPOINT, QUALITY, MAX_WIDTH, MAX_RATE_HZ)
 *       JPEG preview on a ZeroMQ PUB socket (src/drivers/preview)
 *
 * Frame consumers. Every user of the frames is a consumer of the camera's ring (drivers/frames), added when st.cmd
 * configures it (before iocInit; the ring holds one frame more per consumer, so there is no fixed maximum, and a
 * consumer configured once the camera acquires is refused with an error). iocInit logs the list. They are:
 *   image           the image PV ($(P)image1:ArrayData), cameraConfigure
 *   capture         HDF5 capture ($(P)HDF1:), cameraConfigure (drivers/capture)
 *   preview         JPEG preview over ZeroMQ, cameraPreview (drivers/preview)
 *   framepub        raw frames over ZeroMQ, framePublishConfigure (drivers/framepub)
 *   detection, registration, xanes   live analysis stages: detectionConfigure, registrationConfigure,
 *                   xanesLiveConfigure (live/stages)
 *   relocalization  stagemapCamera (live/stagemap)
 *   web             the web live view, webServerConfigure (live/web)
 * A consumer takes the newest frame when it is ready (capture: every frame in order while the ring holds it) and
 * counts the frames it missed; acquisition never waits for a consumer.
 *
 * Threads, each owned by the driver and stopped at db_shutdown: the acquisition thread (source -> ring,
 * pacing, ImageMode, counters, once-a-second statistics and capture bookkeeping), the image thread (newest
 * frame -> $(P)image1:ArrayData), the preview thread and the capture thread. The driver's own lock guards
 * its control state (requests from record writes); it is never held while calling into db.
 */
#ifndef RELOC_CAMERA_H
#define RELOC_CAMERA_H

#include "drivers/frames/frames.h"

typedef struct camera camera;

void camera_register(void);
camera *camera_find(const char *port);
/* The camera's frame ring, for the consumers above. */
frame_ring *camera_ring(camera *cam);
/* The size of the camera's newest frame (ArraySizeX/Y_RBV): 0, or -1 before its first frame. Any thread. */
int camera_frame_size(camera *cam, int *width, int *height);
/* Attaches an analysis result (JSON text) under key to the following JPEG previews (preview_set_result;
 * NULL removes it). Does nothing when the camera has no preview running. Any thread. */
void camera_post_result(camera *cam, const char *key, const char *json_value);

#endif
