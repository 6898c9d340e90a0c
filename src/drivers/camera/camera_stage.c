/* camera_stage.c -- where the stage is, for the camera: each axis is one channel or a sum of channels
 * ("P:samx.RBV+P:pssx.RBV", coarse plus piezo), each converted to micrometres by its record's EGU (mm, um,
 * nm, m), so a coarse stage in mm and a piezo in um add up right. */
#include "drivers/camera/camera_internal.h"

#include "core/base/base.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int stage_axis_resolve(stage_axis *axis, const char *what, const char *camera_port)
{
    axis->nterms = 0;
    char spec[sizeof axis->spec];
    str_copy(spec, axis->spec, sizeof spec);
    char *save = NULL;
    for (char *name = strtok_r(spec, "+ ", &save); name; name = strtok_r(NULL, "+ ", &save)) {
        if (axis->nterms == STAGE_MAX_TERMS) {
            log_error("camera", "%s: %s: at most %d channels are added", camera_port, what, STAGE_MAX_TERMS);
            return -1;
        }
        stage_term *t = &axis->term[axis->nterms];
        if (db_name_to_addr(name, &t->addr) != DB_OK) {
            log_error("camera", "%s: %s channel %s does not exist", camera_port, what, name);
            return -1;
        }
        db_meta meta;
        db_lock();
        db_get_meta(&t->addr, &meta);
        db_unlock();
        t->to_um = um_per_length_unit(meta.units);
        if (t->to_um == 0) {
            log_warn("camera", "%s: %s channel %s has units \"%s\"; taking them as um", camera_port, what, name, meta.units);
            t->to_um = 1;
        }
        axis->nterms++;
    }
    return 0;
}

double stage_axis_read(const stage_axis *axis, double fallback)
{
    if (!axis->nterms) return fallback;
    double sum = 0;
    db_lock();
    for (int i = 0; i < axis->nterms; i++) {
        double v = 0;
        long n = 1;
        db_get(&axis->term[i].addr, DBR_DOUBLE, &v, &n);
        sum += v * axis->term[i].to_um;
    }
    db_unlock();
    return sum;
}
