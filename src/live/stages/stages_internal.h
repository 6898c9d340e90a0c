/* stages_internal.h -- what the analysis stages share: the stage (port, frame consumer, thread, lock) run
 * by stage.c, and the hooks each kind of stage (detection.c, registration.c, xanes.c) supplies. Internal to
 * src/live/stages.
 *
 * Threads and locks. A stage's thread is the only one that touches its kernel state (contexts, tables,
 * reference image). Record writes arrive on scan/CA threads with the db lock held: the kind's write hook
 * validates the value and records the request under the stage's lock (stage->lock guards the request state
 * the kind keeps in its `wanted` part, and `enabled`); the thread copies that state under the lock at the
 * start of every loop. The stage lock is never held while calling param_post or any db function.
 */
#ifndef RELOC_ANALYSIS_INTERNAL_H
#define RELOC_ANALYSIS_INTERNAL_H

#include "live/stages/stages.h"
#include "drivers/camera/camera.h"
#include "core/param/param.h"

#include <pthread.h>
#include <stdatomic.h>

/* Parameters every stage has, first in its port (index = enum value). */
#define ANALYSIS_COMMON_PARAMS(X) \
    X(P_ENABLE, "Enable", PARAM_INT) \
    X(P_MESSAGE, "Message", PARAM_STRING) \
    X(P_STATUS, "Status", PARAM_INT) \
    X(P_FRAME_ID, "FrameId", PARAM_INT) \
    X(P_PROCESSED, "Processed", PARAM_INT) \
    X(P_DROPPED, "Dropped", PARAM_INT) \
    X(P_RATE, "Rate", PARAM_DOUBLE) \
    X(P_LATENCY, "Latency", PARAM_DOUBLE) \
    X(P_COMPUTE_TIME, "ComputeTime", PARAM_DOUBLE)

enum { ANALYSIS_COMMON_PARAMS(PARAM_ENUM) ANALYSIS_NCOMMON };

typedef struct analysis_stage analysis_stage;

typedef struct analysis_kind {
    const char *name;                      /* "detection", used in messages */
    const param_def *params;      /* the kind's scalar parameters, indices from ANALYSIS_NCOMMON */
    int nparams;
    /* Creates the kind's state (s->impl) and its array parameters; called at configuration. */
    void (*create)(analysis_stage *s, int max_items);
    /* [db locked] A record wrote one of the kind's parameters: 0, PARAM_ASYNC or -1 with err. */
    int (*write)(analysis_stage *s, const param_write *w, char *err, size_t errlen);
    /* [stage thread] Work that needs no frame (file loads, exports), done every loop; NULL: none. */
    void (*service)(analysis_stage *s);
    /* [stage thread] Analyses one frame (pixels: the frame as floats) and sets result parameters and a short
     * JSON summary for the camera's preview in s->summary; 0, or -1 with err (the stage's Status goes to
     * error, Message says why, and the preview loses the summary). */
    int (*process)(analysis_stage *s, const frame *f, const float *pixels, char *err, size_t errlen);
    /* Frees s->impl (threads stopped). */
    void (*destroy)(analysis_stage *s);
} analysis_kind;

struct analysis_stage {
    char name[40];
    const analysis_kind *kind;
    param_port *port;
    camera *cam;
    frame_consumer *consumer;
    void *impl;

    pthread_t thread;
    int running;
    atomic_int stopping;
    float *pixels;                 /* [thread] the current frame as floats */
    size_t pixels_capacity;
    int last_status;               /* [thread] Status last published (0 ok, 1 error, -1 none yet) */
    int noted;                     /* [thread] the kind set Message for this frame (analysis_note) */
    char summary[512];             /* [thread] the last frame's result as JSON, posted to the preview */

    pthread_mutex_t lock;          /* guards enabled and the kind's requested settings */
    int enabled;
};

/* A region of interest as the PVs give it, resolved for a frame: a width or height of 0 reaches to the
 * frame's edge, and all four 0 stay 0 (the kernels' "whole frame"). Offsets beyond the frame are left for
 * the kernels to refuse with their message. */
void analysis_roi_resolve(int x, int y, int *width, int *height, int frame_width, int frame_height);
/* Sets the Message parameter and posts it (a refused write, a failed request). Any thread, no stage lock. */
void analysis_message(analysis_stage *s, const char *message);
/* [stage thread, in process] The kind reports its own progress in Message for this frame (NULL: leaves it as
 * it is), so a frame that succeeds does not replace it with "OK". */
void analysis_note(analysis_stage *s, const char *message);
/* Creates a stage of kind on port, taking frames from camera_port's ring (st.cmd, before iocInit); NULL with
 * err when the camera or the port name is wrong or the camera is acquiring already. */
analysis_stage *analysis_configure(const analysis_kind *kind, const char *port, const char *camera_port,
                                   int max_items, char *err, size_t errlen);

/* The stage of this kind configured on port, or NULL with a message in err. */
analysis_stage *analysis_find(const char *port, const analysis_kind *kind, char *err, size_t errlen);

extern const analysis_kind detection_kind;
/* detectionPvaTable(PORT, PV_NAME): the detection stage's features of each frame also as one NTTable over
 * pvAccess (columns x, y, mass, size, ecc, signal, id), so a client gets one frame's results in one update. */
int detection_pva_table_cmd(int argc, char **argv, char *err, size_t errlen);
extern const analysis_kind registration_kind;
/* registrationPvaResult(PORT, PV_NAME): each frame's registration result also as one structure over pvAccess
 * (uniqueId, shifts in px and um, rotation, scale, error, confidence, correlation, errorPx, converged, matchOk,
 * alarm, timeStamp), so a client never mixes the shift of one frame with the verdict of another. */
int registration_pva_result_cmd(int argc, char **argv, char *err, size_t errlen);
extern const analysis_kind features_kind;
extern const analysis_kind xanes_kind;
/* xanesLiveConfigure(PORT, CAMERA_PORT, ENERGY_CHANNEL, MAX_PIXELS) */
int xanes_configure_cmd(int argc, char **argv, char *err, size_t errlen);

#endif
