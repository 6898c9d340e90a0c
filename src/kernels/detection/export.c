/* export.c -- writing a feature table as CSV (the columns trackpy users know, in trackpy's order) and as
 * HDF5 (one 1-D dataset per column in a group, with the detection parameters as attributes). */
#include <math.h>
#include <stdio.h>

#include "formats/h5array/h5array.h"
#include "kernels/detection/detection.h"

static void put_number(FILE *f, double v)
{
    if (isnan(v)) fputs(",nan", f);
    else fprintf(f, ",%.10g", v);
}

int locate_table_write_csv(const locate_table *t, FILE *f, int with_ids)
{
    if (with_ids) fputs("frame,particle,", f);
    fputs(t->has_r ? "y,x,r,mass,size,ecc,signal,raw_mass,ep\n" : "y,x,mass,size,ecc,signal,raw_mass,ep\n", f);
    for (int i = 0; i < t->count; i++) {
        if (with_ids) fprintf(f, "%d,%ld,", t->frame[i], t->particle[i]);
        fprintf(f, "%.10g", t->y[i]);
        put_number(f, t->x[i]);
        if (t->has_r) put_number(f, t->r[i]);
        put_number(f, t->mass[i]);
        put_number(f, t->size[i]);
        put_number(f, t->ecc[i]);
        put_number(f, t->signal[i]);
        put_number(f, t->raw_mass[i]);
        put_number(f, t->ep[i]);
        fputc('\n', f);
    }
    return ferror(f) ? -1 : 0;
}

static void put_parameters(h5out *out, const char *group, const locate_params *p)
{
    h5out_attr_double(out, group, "diameter", p->diameter);
    h5out_attr_double(out, group, "minmass", p->minmass);
    h5out_attr_double(out, group, "maxsize", p->maxsize);
    h5out_attr_double(out, group, "separation", p->separation);
    h5out_attr_double(out, group, "noise_size", p->noise_size);
    h5out_attr_double(out, group, "smoothing_size", p->smoothing_size);
    h5out_attr_double(out, group, "threshold", p->threshold);
    h5out_attr_double(out, group, "invert", p->invert);
    h5out_attr_double(out, group, "percentile", p->percentile);
    h5out_attr_double(out, group, "topn", p->topn);
    h5out_attr_double(out, group, "preprocess", p->preprocess);
    h5out_attr_double(out, group, "max_iterations", p->max_iterations);
    h5out_attr_double(out, group, "characterize", p->characterize);
    h5out_attr_double(out, group, "roi_x", p->roi_x);
    h5out_attr_double(out, group, "roi_y", p->roi_y);
    h5out_attr_double(out, group, "roi_width", p->roi_width);
    h5out_attr_double(out, group, "roi_height", p->roi_height);
}

int locate_table_write_hdf5(const locate_table *t, const char *path, const char *group_name, const locate_params *p,
                            char *err, size_t errlen)
{
    /* An existing file gets the group added (replacing one of that name); anything that is not HDF5 is left
     * alone. */
    h5out *out = h5out_add(path, err, errlen);
    if (!out) return -1;
    h5out_remove(out, group_name);
    struct { const char *name; const double *data; } cols[] = {
        {"y", t->y}, {"x", t->x}, {"mass", t->mass}, {"size", t->size}, {"ecc", t->ecc},
        {"signal", t->signal}, {"raw_mass", t->raw_mass}, {"ep", t->ep}, {"r", t->r},
    };
    size_t count = (size_t)t->count;
    char name[512];
    for (int i = 0; i < (t->has_r ? 9 : 8); i++) {
        snprintf(name, sizeof name, "%s/%s", group_name, cols[i].name);
        h5out_write_double(out, name, cols[i].data, 1, &count);
    }
    snprintf(name, sizeof name, "%s/frame", group_name);
    h5out_write_int(out, name, t->frame, 1, &count);
    snprintf(name, sizeof name, "%s/particle", group_name);
    h5out_write_long(out, name, t->particle, 1, &count);
    if (p) put_parameters(out, group_name, p);
    return h5out_close(out, err, errlen);
}
