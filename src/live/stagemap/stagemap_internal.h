/* stagemap_internal.h -- the stage-map port: its parameters and state, shared by the files of src/live/stagemap.
 *
 * Ownership. Layers, fiducial results and the macro queue are changed only while the db lock is held (in the
 * parameter write function, or by the worker thread after db_lock()), so the db lock guards them. The
 * request for the worker (job, targets) is guarded by `lock`, taken after the db lock, never before it.
 */
#ifndef RELOC_STAGEMAP_INTERNAL_H
#define RELOC_STAGEMAP_INTERNAL_H

#include "core/db/db.h"
#include "drivers/frames/frames.h"
#include "drivers/motion/motion.h"
#include "kernels/scanmacro/scanmacro.h"
#include "kernels/geometry/geometry.h"
#include "kernels/detection/detection.h"
#include "core/param/param.h"
#include "live/stagemap/stagemap.h"

#include <pthread.h>

#define STAGEMAP_PARAMS(X) \
    X(P_MACRO_ENGINE, "Macro:Engine", PARAM_STRING) \
    X(P_MACRO_ENGINES, "Macro:Engines", PARAM_STRING) \
    X(P_MACRO_SHAPE, "Macro:Shape", PARAM_INT) \
    X(P_MACRO_NAME, "Macro:Name", PARAM_STRING) \
    X(P_MACRO_X0, "Macro:X0", PARAM_DOUBLE) \
    X(P_MACRO_Y0, "Macro:Y0", PARAM_DOUBLE) \
    X(P_MACRO_X1, "Macro:X1", PARAM_DOUBLE) \
    X(P_MACRO_Y1, "Macro:Y1", PARAM_DOUBLE) \
    X(P_MACRO_SIZE, "Macro:ParticleSize", PARAM_DOUBLE) \
    X(P_MACRO_MARGIN, "Macro:Margin", PARAM_DOUBLE) \
    X(P_MACRO_STEP_X, "Macro:StepX", PARAM_DOUBLE) \
    X(P_MACRO_STEP_Y, "Macro:StepY", PARAM_DOUBLE) \
    X(P_MACRO_POINTS_X, "Macro:PointsX", PARAM_INT) \
    X(P_MACRO_POINTS_Y, "Macro:PointsY", PARAM_INT) \
    X(P_MACRO_DWELL, "Macro:Dwell", PARAM_DOUBLE) \
    X(P_MACRO_RELATIVE, "Macro:Relative", PARAM_INT) \
    X(P_MACRO_APPEND, "Macro:Append", PARAM_INT) \
    X(P_MACRO_REMOVE, "Macro:Remove", PARAM_INT) \
    X(P_MACRO_CLEAR, "Macro:Clear", PARAM_INT) \
    X(P_MACRO_MOVE_UP, "Macro:MoveUp", PARAM_INT) \
    X(P_MACRO_MOVE_DOWN, "Macro:MoveDown", PARAM_INT) \
    X(P_MACRO_SELECTED, "Macro:Selected", PARAM_INT) \
    X(P_MACRO_CURRENT, "Macro:Current", PARAM_STRING) \
    X(P_MACRO_COUNT, "Macro:Count", PARAM_INT) \
    X(P_MACRO_EXPORT_PATH, "Macro:ExportPath", PARAM_STRING) \
    X(P_MACRO_EXPORT, "Macro:Export", PARAM_INT) \
    X(P_MACRO_MESSAGE, "Macro:Message", PARAM_STRING) \
    X(P_MACRO_STATUS, "Macro:Status", PARAM_INT) \
    X(P_MACRO_APPEND_RELOCATED, "Macro:AppendRelocated", PARAM_INT) \
    X(P_REF_PIXEL_SIZE_X, "Ref:PixelSizeX", PARAM_DOUBLE) \
    X(P_REF_PIXEL_SIZE_Y, "Ref:PixelSizeY", PARAM_DOUBLE) \
    X(P_REF_REF_PIXEL_X, "Ref:RefPixelX", PARAM_DOUBLE) \
    X(P_REF_REF_PIXEL_Y, "Ref:RefPixelY", PARAM_DOUBLE) \
    X(P_REF_REF_STAGE_X, "Ref:RefStageX", PARAM_DOUBLE) \
    X(P_REF_REF_STAGE_Y, "Ref:RefStageY", PARAM_DOUBLE) \
    X(P_REF_ROTATION, "Ref:Rotation", PARAM_DOUBLE) \
    X(P_REF_FLIP_X, "Ref:FlipX", PARAM_INT) \
    X(P_REF_FLIP_Y, "Ref:FlipY", PARAM_INT) \
    X(P_REF_LOAD_PATH, "Ref:LoadPath", PARAM_STRING) \
    X(P_REF_LOAD, "Ref:Load", PARAM_INT) \
    X(P_REF_SIZE_X, "Ref:SizeX", PARAM_INT) \
    X(P_REF_SIZE_Y, "Ref:SizeY", PARAM_INT) \
    X(P_LIVE_PIXEL_SIZE_X, "Live:PixelSizeX", PARAM_DOUBLE) \
    X(P_LIVE_PIXEL_SIZE_Y, "Live:PixelSizeY", PARAM_DOUBLE) \
    X(P_LIVE_BEAM_X, "Live:BeamX", PARAM_DOUBLE) \
    X(P_LIVE_BEAM_Y, "Live:BeamY", PARAM_DOUBLE) \
    X(P_LIVE_ROTATION, "Live:Rotation", PARAM_DOUBLE) \
    X(P_LIVE_FLIP_X, "Live:FlipX", PARAM_INT) \
    X(P_LIVE_FLIP_Y, "Live:FlipY", PARAM_INT) \
    X(P_BEAM_CLICK_X, "Beam:ClickX", PARAM_DOUBLE) \
    X(P_BEAM_CLICK_Y, "Beam:ClickY", PARAM_DOUBLE) \
    X(P_BEAM_CALIBRATE, "Beam:Calibrate", PARAM_INT) \
    X(P_BEAM_STAGE_X, "Beam:StageX", PARAM_DOUBLE) \
    X(P_BEAM_STAGE_Y, "Beam:StageY", PARAM_DOUBLE) \
    X(P_REG_SHIFT_X, "Reg:ShiftX", PARAM_DOUBLE) \
    X(P_REG_SHIFT_Y, "Reg:ShiftY", PARAM_DOUBLE) \
    X(P_REG_ANGLE, "Reg:Angle", PARAM_DOUBLE) \
    X(P_REG_SCALE, "Reg:Scale", PARAM_DOUBLE) \
    X(P_REG_CENTER_X, "Reg:CenterX", PARAM_DOUBLE) \
    X(P_REG_CENTER_Y, "Reg:CenterY", PARAM_DOUBLE) \
    X(P_REG_APPLY, "Reg:Apply", PARAM_INT) \
    X(P_FID_KIND, "Fid:Kind", PARAM_INT) \
    X(P_FID_ROBUST, "Fid:Robust", PARAM_INT) \
    X(P_FID_FIT, "Fid:Fit", PARAM_INT) \
    X(P_FID_RMS, "Fid:RMS", PARAM_DOUBLE) \
    X(P_FID_NINLIERS, "Fid:NInliers", PARAM_INT) \
    X(P_CONV_LAYER, "Conv:Layer", PARAM_INT) \
    X(P_CONV_PIXEL_X, "Conv:PixelX", PARAM_DOUBLE) \
    X(P_CONV_PIXEL_Y, "Conv:PixelY", PARAM_DOUBLE) \
    X(P_CONV_STAGE_X, "Conv:StageX", PARAM_DOUBLE) \
    X(P_CONV_STAGE_Y, "Conv:StageY", PARAM_DOUBLE) \
    X(P_CONV_TO_STAGE_X, "Conv:ToStageX", PARAM_DOUBLE) \
    X(P_CONV_TO_STAGE_Y, "Conv:ToStageY", PARAM_DOUBLE) \
    X(P_CONV_TO_PIXEL_X, "Conv:ToPixelX", PARAM_DOUBLE) \
    X(P_CONV_TO_PIXEL_Y, "Conv:ToPixelY", PARAM_DOUBLE) \
    X(P_MOVE_ENABLE, "Move:Enable", PARAM_INT) \
    X(P_MOVE_LAYER, "Move:Layer", PARAM_INT) \
    X(P_MOVE_PIXEL_X, "Move:PixelX", PARAM_DOUBLE) \
    X(P_MOVE_PIXEL_Y, "Move:PixelY", PARAM_DOUBLE) \
    X(P_MOVE_GO, "Move:Go", PARAM_INT) \
    X(P_MOVE_PARTICLE, "Move:Particle", PARAM_INT) \
    X(P_MOVE_CENTRE, "Move:CentreParticle", PARAM_INT) \
    X(P_MOVE_TARGET_X, "Move:TargetX", PARAM_DOUBLE) \
    X(P_MOVE_TARGET_Y, "Move:TargetY", PARAM_DOUBLE) \
    X(P_MOVE_BUSY, "Move:Busy", PARAM_INT) \
    X(P_MAP_MESSAGE, "Map:Message", PARAM_STRING) \
    X(P_RELOC_REF_PATH, "Reloc:RefPath", PARAM_STRING) \
    X(P_RELOC_REF_DIAMETER, "Reloc:RefDiameter", PARAM_INT) \
    X(P_RELOC_LIVE_DIAMETER, "Reloc:LiveDiameter", PARAM_INT) \
    X(P_RELOC_MASS_FACTOR, "Reloc:MassFactor", PARAM_DOUBLE) \
    X(P_RELOC_TOLERANCE, "Reloc:Tolerance", PARAM_DOUBLE) \
    X(P_RELOC_SEARCH_RADIUS, "Reloc:SearchRadius", PARAM_DOUBLE) \
    X(P_RELOC_CAPTURE_RADIUS, "Reloc:CaptureRadius", PARAM_DOUBLE) \
    X(P_RELOC_MATCH_TOLERANCE, "Reloc:MatchTolerance", PARAM_DOUBLE) \
    X(P_RELOC_MAX_SCALE_ERROR, "Reloc:MaxScaleError", PARAM_DOUBLE) \
    X(P_RELOC_DETECT_FLIP, "Reloc:DetectFlip", PARAM_INT) \
    X(P_RELOC_MIN_SHARPNESS, "Reloc:MinSharpness", PARAM_DOUBLE) \
    X(P_RELOC_SHARPNESS, "Reloc:Sharpness", PARAM_DOUBLE) \
    X(P_RELOC_MAX_ITER, "Reloc:MaxIterations", PARAM_INT) \
    X(P_RELOC_START, "Reloc:Start", PARAM_INT) \
    X(P_RELOC_PAUSE, "Reloc:Pause", PARAM_INT) \
    X(P_RELOC_ABORT, "Reloc:Abort", PARAM_INT) \
    X(P_RELOC_PROGRESS, "Reloc:Progress", PARAM_DOUBLE) \
    X(P_RELOC_CURRENT, "Reloc:Current", PARAM_INT) \
    X(P_RELOC_FOUND, "Reloc:Found", PARAM_INT) \
    X(P_RELOC_MATCHES, "Reloc:CoarseMatches", PARAM_INT) \
    X(P_RELOC_RUNNER_UP, "Reloc:CoarseRunnerUp", PARAM_INT) \
    X(P_RELOC_VIEW, "Reloc:View", PARAM_INT) \
    X(P_RELOC_VIEWS, "Reloc:Views", PARAM_INT) \
    X(P_RELOC_MOUNT_X, "Reloc:MountX", PARAM_DOUBLE) \
    X(P_RELOC_MOUNT_Y, "Reloc:MountY", PARAM_DOUBLE) \
    X(P_RELOC_ROTATION, "Reloc:Rotation", PARAM_DOUBLE) \
    X(P_RELOC_MOUNT_SCALE, "Reloc:MountScale", PARAM_DOUBLE) \
    X(P_RELOC_MOUNT_FLIP, "Reloc:MountFlip", PARAM_INT) \
    X(P_RELOC_MOUNT_RMS, "Reloc:MountRMS", PARAM_DOUBLE) \
    X(P_RELOC_RESULT, "Reloc:Result", PARAM_INT) \
    X(P_RELOC_ELAPSED, "Reloc:Elapsed", PARAM_DOUBLE) \
    X(P_RELOC_TABLE, "Reloc:Table", PARAM_STRING) \
    X(P_RELOC_STATE, "Reloc:State", PARAM_STRING) \
    X(P_MAP_STATUS, "Map:Status", PARAM_INT) \
    X(P_MAP_SYNC, "Map:Sync", PARAM_INT)

enum { STAGEMAP_PARAMS(PARAM_ENUM) P_FIRST_ARRAY };

/* Array parameters, after the scalars. */
enum { P_MACRO_POLYGON = P_FIRST_ARRAY, P_FID_PIXEL, P_FID_STAGE, P_FID_RESIDUALS, P_FID_INLIERS, P_REF_MATRIX,
       P_PARTICLES, P_REF_OUTLINE, P_RELOC_STAGE_X, P_RELOC_STAGE_Y, P_RELOC_RESIDUAL, P_RELOC_STATUS };
#define STAGEMAP_MAX_PARTICLES 1024

enum { LAYER_REF = 0, LAYER_LIVE = 1 };
enum { SHAPE_RECT = 0, SHAPE_POLYGON = 1, SHAPE_PARTICLE = 2 };
enum { JOB_NONE = 0, JOB_MOVE, JOB_LOAD, JOB_RELOC };
/* Relocalization status of a particle (Reloc:Status). */
enum { RELOC_PENDING = 0, RELOC_FOUND, RELOC_AMBIGUOUS, RELOC_NOT_FOUND, RELOC_ABORTED, RELOC_NOT_CONVERGED };

typedef struct stagemap {
    char port_name[40];
    param_port *port;
    scan_engines *engines;
    motion_stage *stage;           /* coarse x, y; piezo x, y (with stagemapPiezo): every move goes through it */
    /* [db lock] */
    macro_queue queue;
    double polygon[ROI_MAX_VERTICES][2];       /* Macro:Polygon */
    int npolygon;
    double fid_pixel[FIT_MAX_POINTS][2], fid_stage[FIT_MAX_POINTS][2];   /* Fid:Pixel, Fid:Stage */
    int nfid_pixel, nfid_stage;
    double particle[STAGEMAP_MAX_PARTICLES][2];                         /* Particles (reference pixels) */
    int nparticles;
    double relocated[STAGEMAP_MAX_PARTICLES][2];                        /* last run: found particles (stage um) */
    int relocated_index[STAGEMAP_MAX_PARTICLES], nrelocated;
    affine2d ref_pixel_to_stage;
    /* [lock] the worker's job */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int thread_running, stopping;
    int job;                       /* JOB_* waiting for the worker */
    int job_param;                 /* the asynchronous parameter to complete when the job ends */
    double target_um[2];
    int abort, paused;             /* Reloc:Abort, Reloc:Pause */
    /* relocalization's views (stagemap_view.c): set at configuration and iocInit, then the worker thread's */
    char camera_port[40];
    frame_consumer *frames;        /* stagemapCamera */
    char worker[DB_NAME_SIZE];     /* stagemapWorker: the worker's features prefix */
    struct camera *worker_camera;  /* stagemapWorker: the camera whose frames the worker analyses (its size) */
    db_ca_channel *worker_view, *worker_diameter, *worker_mass_factor;
    pthread_mutex_t view_lock;     /* guards view_updates (bumped by the worker_view channel's callback) */
    pthread_cond_t view_changed;
    unsigned long view_updates;
} stagemap;

/* stagemap_driver.c */
/* Copies an array write of x,y pairs into pairs (at most max); returns the number of pairs, or -1 with err
 * when the count is odd or a value is not a finite number (pairs is then unchanged). */
int stagemap_copy_pairs(const param_write *w, double (*pairs)[2], int max, char *err, size_t errlen);
void stagemap_message(stagemap *m, int param, int status_param, int failed, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* [db lock] Stage position along x (0) or y (1) in um, now: the coarse motor plus the piezo when there is one. */
int stagemap_axis_position(const stagemap *m, int axis, double *um);

/* stagemap_macros.c: [db lock] a write to a Macro:* parameter; 0 or -1 with err. */
int stagemap_macro_write(stagemap *m, const param_write *w, char *err, size_t errlen);

/* stagemap_layers.c: [db lock] */
int stagemap_layer_write(stagemap *m, const param_write *w, char *err, size_t errlen);
/* The pixel -> stage transform of a layer now (the live layer follows the stage position). */
int stagemap_layer_transform(stagemap *m, int layer, affine2d *pixel_to_stage, char *err, size_t errlen);
void stagemap_ref_set_transform(stagemap *m, const affine2d *pixel_to_stage);
/* Worker thread: loads Ref:LoadPath (takes the db lock itself). */
int stagemap_load_geometry(stagemap *m, const char *path, char *err, size_t errlen);
void stagemap_register_commands(void);

/* stagemap_move.c */
int stagemap_move_write(stagemap *m, const param_write *w, char *err, size_t errlen);
void stagemap_worker_start(stagemap *m);
void stagemap_worker_stop(stagemap *m);
/* Worker thread: moves the stage to target_um (motion_move: planned from the records now), waits until done;
 * Reloc:Abort or the IOC stopping stops the motors and fails it. */
int stagemap_move_to(stagemap *m, const double target_um[2], char *err, size_t errlen);

/* stagemap_view.c: relocalization's views, from this IOC's camera or a worker IOC */
typedef struct stagemap_view_request {
    struct timespec after;         /* the frame was exposed after this (wall clock) ... */
    double stage[2];               /* ... at this stage position (um; NaN: unknown) ... */
    double stage_tolerance;        /* ... within this (um) when the frame carries its position */
    int diameter;                  /* features detected with these settings */
    double mass_factor;
} stagemap_view_request;
typedef struct stagemap_view {
    view_features features;        /* pixels */
    int width, height;
    double sharpness;              /* view_sharpness */
    uint64_t unique_id;            /* the frame's uniqueId at the camera */
    float *img;                    /* scratch for frames of this IOC */
    size_t img_capacity;
} stagemap_view;
/* Worker thread: the view of the first frame that fits rq, waiting up to a few seconds: 0, or -1 with err (no
 * such frame in time, the worker away). v is reused from call to call. */
int stagemap_view_take(stagemap *m, const stagemap_view_request *rq, stagemap_view *v, char *err, size_t errlen);
void stagemap_view_free(stagemap_view *v);
/* Whether views can be had now (a camera is configured, the worker is connected): 0, or -1 with err. */
int stagemap_view_available(stagemap *m, char *err, size_t errlen);
/* Worker thread, at a run's start: a worker is given the run's detection settings (puts with completion,
 * waited for): 0, or -1 with err (not sent, refused, failed, no verdict in time). */
int stagemap_view_settings(stagemap *m, int diameter, double mass_factor, char *err, size_t errlen);
void stagemap_view_bind(stagemap *m);        /* iocInit: opens the worker's channels */
void stagemap_view_register(void);

/* stagemap_reloc.c */
int stagemap_reloc_write(stagemap *m, const param_write *w, char *err, size_t errlen);
int stagemap_reloc_run(stagemap *m, char *err, size_t errlen);
/* Reloc:Abort was asked or the IOC is stopping (takes lock). */
int stagemap_aborting(stagemap *m);

stagemap *stagemap_find(const char *port);

#endif
