/* stagemap_macros.c -- the Macro:* parameters: the ROI being edited, Append (generate for the selected engine,
 * check the motors' soft limits, queue), Remove/MoveUp/MoveDown of the selected entry, Clear, Export. */
#include "live/stagemap/stagemap_internal.h"

#include "core/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* [db lock] Publishes the count, the selected entry and its text. */
static void publish_queue(stagemap *m, int selected)
{
    param_port *p = m->port;
    if (selected >= m->queue.count) selected = m->queue.count - 1;
    param_set_int(p, P_MACRO_COUNT, m->queue.count);
    param_set_int(p, P_MACRO_SELECTED, selected);
    param_set_string(p, P_MACRO_CURRENT, selected >= 0 ? m->queue.entry[selected] : "");
}

static int build_roi(stagemap *m, scan_roi *roi, char *err, size_t errlen)
{
    param_port *p = m->port;
    char name[ROI_NAME_LEN];
    param_get_string(p, P_MACRO_NAME, name, sizeof name);
    long shape = param_get_int(p, P_MACRO_SHAPE);
    double x0 = param_get_double(p, P_MACRO_X0), y0 = param_get_double(p, P_MACRO_Y0);
    memset(roi, 0, sizeof *roi);
    if (shape == SHAPE_PARTICLE) {
        *roi = roi_particle(name, x0, y0, param_get_double(p, P_MACRO_SIZE), param_get_double(p, P_MACRO_MARGIN));
        return 0;
    }
    str_copy(roi->name, name, sizeof roi->name);
    if (shape == SHAPE_RECT) {
        roi->shape = ROI_RECT;
        roi->x0 = x0, roi->y0 = y0;
        roi->x1 = param_get_double(p, P_MACRO_X1), roi->y1 = param_get_double(p, P_MACRO_Y1);
        return 0;
    }
    if (shape != SHAPE_POLYGON) return error_set(err, errlen, "Macro:Shape must be 0 (rect), 1 (polygon), 2 (particle)");
    roi->shape = ROI_POLYGON;
    roi->nvertices = m->npolygon;
    memcpy(roi->vertex, m->polygon, sizeof m->polygon);
    return 0;
}

static int append(stagemap *m, const scan_roi *roi, char *err, size_t errlen)
{
    param_port *p = m->port;
    char engine_name[64];
    param_get_string(p, P_MACRO_ENGINE, engine_name, sizeof engine_name);
    int engine = scan_engine_find(m->engines, engine_name);
    if (engine < 0) return error_set(err, errlen, "no scan engine \"%s\"", engine_name);
    scan_sampling s = {.step_x = param_get_double(p, P_MACRO_STEP_X), .step_y = param_get_double(p, P_MACRO_STEP_Y),
                       .points_x = (int)param_get_int(p, P_MACRO_POINTS_X),
                       .points_y = (int)param_get_int(p, P_MACRO_POINTS_Y),
                       .dwell = param_get_double(p, P_MACRO_DWELL), .relative = param_get_int(p, P_MACRO_RELATIVE) != 0};
    scan_axis axes[2];
    for (int i = 0; i < 2; i++) {   /* the records the macro moves (the engine names them), their limits now */
        motion_limits lim;
        if (motion_motor_limits(m->stage, MOTION_X + i, &lim, err, errlen)) return -1;
        axes[i] = (scan_axis){motion_motor_record(m->stage, MOTION_X + i), {lim.low, lim.high}};
    }
    char *text = scan_macro_generate(m->engines, engine, roi, &s, axes, err, errlen);
    if (!text) return -1;
    int rc = macro_queue_append(&m->queue, text, err, errlen);
    free(text);
    if (rc == 0) publish_queue(m, m->queue.count - 1);
    return rc;
}

int stagemap_macro_write(stagemap *m, const param_write *w, char *err, size_t errlen)
{
    param_port *p = m->port;
    int selected = (int)param_get_int(p, P_MACRO_SELECTED), rc = 0;
    const char *done = NULL;
    char what[96];
    switch (w->index) {
    case P_MACRO_ENGINE:
        if (scan_engine_find(m->engines, w->sval) < 0) {
            char names[512];
            param_get_string(p, P_MACRO_ENGINES, names, sizeof names);
            rc = error_set(err, errlen, "no scan engine \"%s\" (known: %s)", w->sval, names);
        }
        break;
    case P_MACRO_POLYGON: {
        int n = stagemap_copy_pairs(w, m->polygon, ROI_MAX_VERTICES, err, errlen);
        if (n < 0) rc = -1;
        else m->npolygon = n;
        break;
    }
    case P_MACRO_APPEND:
        if (!w->ival) return 0;
        {
            scan_roi roi;
            rc = build_roi(m, &roi, err, errlen);
            if (!rc) rc = append(m, &roi, err, errlen);
            if (!rc) {
                snprintf(what, sizeof what, "appended %s as entry %d", roi.name, m->queue.count - 1);
                done = what;
            }
        }
        break;
    case P_MACRO_APPEND_RELOCATED:
        if (!w->ival) return 0;
        if (m->nrelocated == 0) {
            rc = error_set(err, errlen, "no relocated particles (run Reloc:Start first)");
            break;
        }
        {
            int appended = 0;
            double size = param_get_double(p, P_MACRO_SIZE), margin = param_get_double(p, P_MACRO_MARGIN);
            for (int i = 0; i < m->nrelocated && !rc; i++) {
                char name[ROI_NAME_LEN];
                snprintf(name, sizeof name, "p%d", m->relocated_index[i]);
                scan_roi roi = roi_particle(name, m->relocated[i][0], m->relocated[i][1], size, margin);
                rc = append(m, &roi, err, errlen);
                appended += rc == 0;
            }
            snprintf(what, sizeof what, "appended %d relocated particles", appended);
            if (!rc) done = what;
        }
        break;
    case P_MACRO_REMOVE:
        if (!w->ival) return 0;
        rc = macro_queue_remove(&m->queue, selected, err, errlen);
        if (!rc) publish_queue(m, selected), done = "removed";
        break;
    case P_MACRO_MOVE_UP:
    case P_MACRO_MOVE_DOWN:
        if (!w->ival) return 0;
        {
            int to;
            rc = macro_queue_move(&m->queue, selected, w->index == P_MACRO_MOVE_UP ? -1 : 1, &to, err, errlen);
            if (!rc) publish_queue(m, to), done = "moved";
        }
        break;
    case P_MACRO_CLEAR:
        if (!w->ival) return 0;
        macro_queue_clear(&m->queue);
        publish_queue(m, -1);
        done = "cleared";
        break;
    case P_MACRO_SELECTED:
        if (w->ival < -1 || w->ival >= m->queue.count)
            rc = error_set(err, errlen, "no macro %ld in the queue (it holds %d)", w->ival, m->queue.count);
        else publish_queue(m, (int)w->ival);
        break;
    case P_MACRO_EXPORT:
        if (!w->ival) return 0;
        {
            char path[1024];
            param_get_string(p, P_MACRO_EXPORT_PATH, path, sizeof path);
            rc = macro_queue_export(&m->queue, path, err, errlen);
            if (!rc) snprintf(what, sizeof what, "exported %d macros", m->queue.count), done = what;
        }
        break;
    default:
        break;       /* ROI fields, sampling: stored by the parameter layer */
    }
    if (rc) stagemap_message(m, P_MACRO_MESSAGE, P_MACRO_STATUS, 1, "%s", err);
    else if (done) stagemap_message(m, P_MACRO_MESSAGE, P_MACRO_STATUS, 0, "%s", done);
    return rc;
}
