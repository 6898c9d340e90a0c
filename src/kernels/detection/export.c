/* export.c -- writing a feature table as CSV (the columns trackpy users know, in trackpy's order) and as
 * HDF5 (one 1-D dataset per column in a group, with the detection parameters as attributes). */
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

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

static int write_column(hid_t group, const char *name, hid_t type, const void *data, int count)
{
    hsize_t dims[1] = {(hsize_t)count};
    hid_t space = H5Screate_simple(1, dims, NULL);
    if (space < 0) return -1;
    hid_t set = H5Dcreate2(group, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = set < 0 ? -1 : 0;
    if (set >= 0 && count > 0 && H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) rc = -1;
    if (set >= 0) H5Dclose(set);
    H5Sclose(space);
    return rc;
}

static void put_attribute(hid_t group, const char *name, double value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(group, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr >= 0) {
        H5Awrite(attr, H5T_NATIVE_DOUBLE, &value);
        H5Aclose(attr);
    }
    H5Sclose(space);
}

static void put_parameters(hid_t group, const locate_params *p)
{
    put_attribute(group, "diameter", p->diameter);
    put_attribute(group, "minmass", p->minmass);
    put_attribute(group, "maxsize", p->maxsize);
    put_attribute(group, "separation", p->separation);
    put_attribute(group, "noise_size", p->noise_size);
    put_attribute(group, "smoothing_size", p->smoothing_size);
    put_attribute(group, "threshold", p->threshold);
    put_attribute(group, "invert", p->invert);
    put_attribute(group, "percentile", p->percentile);
    put_attribute(group, "topn", p->topn);
    put_attribute(group, "preprocess", p->preprocess);
    put_attribute(group, "max_iterations", p->max_iterations);
    put_attribute(group, "characterize", p->characterize);
    put_attribute(group, "roi_x", p->roi_x);
    put_attribute(group, "roi_y", p->roi_y);
    put_attribute(group, "roi_width", p->roi_width);
    put_attribute(group, "roi_height", p->roi_height);
}

int locate_table_write_hdf5(const locate_table *t, const char *path, const char *group_name, const locate_params *p,
                            char *err, size_t errlen)
{
    H5E_auto2_t old_func;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);   /* errors are reported through err, not printed by HDF5 */
    int rc = -1;
    hid_t file = -1, group = -1;
    /* An existing file gets the group added; anything that is not HDF5 is left alone. */
    if (access(path, F_OK) == 0) {
        file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        if (file < 0) {
            snprintf(err, errlen, "%s exists and is not a writable HDF5 file", path);
            goto done;
        }
    } else {
        file = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
        if (file < 0) {
            snprintf(err, errlen, "cannot create HDF5 file %s", path);
            goto done;
        }
    }
    if (H5Lexists(file, group_name, H5P_DEFAULT) > 0) H5Ldelete(file, group_name, H5P_DEFAULT);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    group = H5Gcreate2(file, group_name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (group < 0) {
        snprintf(err, errlen, "cannot create group %s in %s", group_name, path);
        goto done;
    }
    struct { const char *name; const double *data; } cols[] = {
        {"y", t->y}, {"x", t->x}, {"mass", t->mass}, {"size", t->size}, {"ecc", t->ecc},
        {"signal", t->signal}, {"raw_mass", t->raw_mass}, {"ep", t->ep}, {"r", t->r},
    };
    int ncols = t->has_r ? 9 : 8;
    for (int i = 0; i < ncols; i++) {
        if (write_column(group, cols[i].name, H5T_NATIVE_DOUBLE, cols[i].data, t->count) < 0) {
            snprintf(err, errlen, "cannot write column %s to %s", cols[i].name, path);
            goto done;
        }
    }
    if (write_column(group, "frame", H5T_NATIVE_INT, t->frame, t->count) < 0 ||
        write_column(group, "particle", H5T_NATIVE_LONG, t->particle, t->count) < 0) {
        snprintf(err, errlen, "cannot write frame/particle columns to %s", path);
        goto done;
    }
    if (p) put_parameters(group, p);
    rc = 0;
done:
    if (group >= 0) H5Gclose(group);
    if (file >= 0 && H5Fclose(file) < 0 && rc == 0) {
        snprintf(err, errlen, "cannot close %s", path);
        rc = -1;
    }
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    return rc;
}
