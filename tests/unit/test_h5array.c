/* test_h5array.c -- unit tests of src/formats/h5array: locations split into file and dataset, datasets written
 * and read back with their shape and type, attributes, adding to an existing file (replacing a group, leaving a
 * file that is not HDF5 alone), empty datasets, errors reported as text, and float32 datasets mapped from the file
 * (the same samples as read; other types, unaligned offsets and datasets past the end of a truncated file refused so
 * that the caller reads them). */
#include "unit.h"

#include "formats/h5array/h5array.h"

#include <hdf5.h>
#include <unistd.h>

static char err[512];

static void locations_split_into_file_and_dataset(void **state)
{
    (void)state;
    char file[64], dset[64];
    assert_int_equal(h5array_split("scan.h5:/entry/data", "/data", file, sizeof file, dset, sizeof dset), 0);
    assert_string_equal(file, "scan.h5");
    assert_string_equal(dset, "/entry/data");
    assert_int_equal(h5array_split("scan.h5", "/data", file, sizeof file, dset, sizeof dset), 0);
    assert_string_equal(dset, "/data");                                 /* the default */
    assert_int_equal(h5array_split(":/data", "/data", file, sizeof file, dset, sizeof dset), -1);   /* no file */
    assert_int_equal(h5array_split("scan.h5:/data", "/d", file, 4, dset, sizeof dset), -1);         /* too long */
}

static void datasets_and_attributes_round_trip(void **state)
{
    (void)state;
    char path[256];
    unit_path(path, sizeof path, "round.h5");
    h5out *out = h5out_create(path, err, sizeof err);
    assert_non_null(out);
    const float f[6] = {1.5f, -2, 3, 4, 5, 6.25f};
    const double d[3] = {0.1, 1e300, -7};
    const int i[4] = {1, -2, 3, 2147483647};
    const long l[2] = {-5000000000L, 7};
    size_t dims23[2] = {2, 3}, n3 = 3, n4 = 4, n2 = 2;
    assert_int_equal(h5out_write_float(out, "/images/f", f, 2, dims23), 0);    /* intermediate group created */
    assert_int_equal(h5out_write_double(out, "/d", d, 1, &n3), 0);
    assert_int_equal(h5out_write_int(out, "/i", i, 1, &n4), 0);
    assert_int_equal(h5out_write_long(out, "/l", l, 1, &n2), 0);
    assert_int_equal(h5out_attr_double(out, "/d", "scale", 2.5), 0);
    assert_int_equal(h5out_attr_string(out, "/", "mode", "HEBT"), 0);
    assert_int_equal(h5out_close(out, err, sizeof err), 0);

    h5array a;
    assert_int_equal(h5array_read(path, "/images/f", &a, err, sizeof err), 0);
    assert_int_equal(a.rank, 2);
    assert_int_equal(a.dims[0], 2);
    assert_int_equal(a.dims[1], 3);
    assert_int_equal(h5array_count(&a), 6);
    for (int k = 0; k < 6; k++) assert_true(a.data[k] == f[k]);
    h5array_free(&a);
    assert_int_equal(h5array_read(path, "/d", &a, err, sizeof err), 0);
    for (int k = 0; k < 3; k++) assert_true(a.data[k] == d[k]);
    h5array_free(&a);
    assert_int_equal(h5array_read(path, "/i", &a, err, sizeof err), 0);
    for (int k = 0; k < 4; k++) assert_true(a.data[k] == i[k]);
    h5array_free(&a);
    assert_int_equal(h5array_read(path, "/l", &a, err, sizeof err), 0);
    for (int k = 0; k < 2; k++) assert_true(a.data[k] == (double)l[k]);    /* 64-bit on disk, not truncated */
    h5array_free(&a);
    char text[32];
    assert_int_equal(h5array_read_attr_string(path, "/d", "scale", text, sizeof text), 0);
    assert_true(strtod(text, NULL) == 2.5);
    assert_int_equal(h5array_read_attr_string(path, "/", "mode", text, sizeof text), 0);
    assert_string_equal(text, "HEBT");
    assert_int_equal(h5array_read_attr_string(path, "/", "absent", text, sizeof text), -1);
}

static void adding_to_a_file_replaces_a_group_and_keeps_the_rest(void **state)
{
    (void)state;
    char path[256];
    unit_path(path, sizeof path, "add.h5");
    const double one[1] = {1}, two[2] = {2, 3};
    size_t n1 = 1, n2 = 2, n0 = 0;
    h5out *out = h5out_add(path, err, sizeof err);                    /* no file yet: created */
    assert_non_null(out);
    assert_int_equal(h5out_write_double(out, "/keep/x", one, 1, &n1), 0);
    assert_int_equal(h5out_write_double(out, "/table/x", one, 1, &n1), 0);
    assert_int_equal(h5out_close(out, err, sizeof err), 0);

    out = h5out_add(path, err, sizeof err);
    assert_non_null(out);
    assert_int_equal(h5out_remove(out, "/table"), 0);
    assert_int_equal(h5out_remove(out, "/never"), 0);                  /* nothing to remove is fine */
    assert_int_equal(h5out_write_double(out, "/table/x", two, 1, &n2), 0);
    assert_int_equal(h5out_write_double(out, "/table/empty", NULL, 1, &n0), 0);
    assert_int_equal(h5out_close(out, err, sizeof err), 0);

    h5array a;
    assert_int_equal(h5array_read(path, "/keep/x", &a, err, sizeof err), 0);
    assert_true(h5array_count(&a) == 1 && a.data[0] == 1);
    h5array_free(&a);
    assert_int_equal(h5array_read(path, "/table/x", &a, err, sizeof err), 0);
    assert_true(h5array_count(&a) == 2 && a.data[0] == 2 && a.data[1] == 3);
    h5array_free(&a);
    assert_int_equal(h5array_read(path, "/table/empty", &a, err, sizeof err), 0);
    assert_int_equal(a.rank, 1);
    assert_int_equal(h5array_count(&a), 0);
    h5array_free(&a);
}

static void errors_are_reported_as_text(void **state)
{
    (void)state;
    char path[256], text[32];
    h5array a;
    assert_int_equal(h5array_read("/nonexistent-dir/x.h5", "/d", &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/x.h5"));
    unit_path(path, sizeof path, "round.h5");
    assert_int_equal(h5array_read(path, "/missing", &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "/missing"));
    assert_null(h5out_create("/nonexistent-dir/y.h5", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent-dir/y.h5"));

    /* a file that exists but is not HDF5 is left as it was */
    const char *notes = unit_write_file("notes.txt", "not HDF5\n");
    assert_null(h5out_add(notes, err, sizeof err));
    assert_non_null(strstr(err, "not a writable HDF5 file"));
    FILE *f = fopen(notes, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof text, f));
    fclose(f);
    assert_string_equal(text, "not HDF5\n");

    /* a failed write is remembered and reported by close */
    h5out *out = h5out_create(path, err, sizeof err);
    const double v = 1;
    size_t n1 = 1;
    assert_int_equal(h5out_write_double(out, "/v", &v, 1, &n1), 0);
    assert_int_equal(h5out_write_double(out, "/v", &v, 1, &n1), -1);        /* exists already */
    assert_non_null(strstr(h5out_error(out), "/v"));
    assert_int_equal(h5out_attr_double(out, "/nothing", "a", 1), -1);
    assert_int_equal(h5out_close(out, err, sizeof err), -1);
    assert_non_null(strstr(err, "/v"));                                     /* the first failure is the one told */
}

static void float_datasets_mapped_from_the_file(void **state)
{
    (void)state;
    char path[256];
    unit_path(path, sizeof path, "mapped.h5");
    h5out *out = h5out_create(path, err, sizeof err);
    assert_non_null(out);
    enum { N = 3 * 5 * 7 };
    float f[N];
    double d[4] = {1, 2, 3, 4};
    for (int k = 0; k < N; k++) f[k] = (float)k * 0.25f - 3;
    size_t dims[3] = {3, 5, 7}, n4 = 4;
    assert_int_equal(h5out_write_double(out, "/first", d, 1, &n4), 0);   /* the stack does not start the file */
    assert_int_equal(h5out_write_float(out, "/stack", f, 3, dims), 0);
    assert_int_equal(h5out_close(out, err, sizeof err), 0);

    h5array shape;
    h5array_mapping mapping;
    const float *mapped = h5array_map_float(path, "/stack", &shape, &mapping, err, sizeof err);
    assert_non_null(mapped);
    assert_int_equal(shape.rank, 3);
    assert_int_equal(shape.dims[0], 3);
    assert_int_equal(shape.dims[2], 7);
    assert_null(shape.data);
    float *read = h5array_read_float(path, "/stack", &shape, err, sizeof err);
    assert_non_null(read);
    assert_memory_equal(mapped, read, sizeof f);
    assert_memory_equal(mapped, f, sizeof f);
    free(read);
    h5array_unmap(&mapping);
    assert_null(mapping.base);

    assert_null(h5array_map_float(path, "/first", &shape, &mapping, err, sizeof err));   /* float64: read it */
    assert_non_null(strstr(err, "not a contiguous native float32 dataset"));
    assert_null(mapping.base);
    assert_null(h5array_map_float(path, "/none", &shape, &mapping, err, sizeof err));
    assert_non_null(strstr(err, "no dataset"));
}

/* Writes f (n floats) as /stack, after a 1-byte /flag when `flag`; returns the stack's file offset. */
static haddr_t write_stack_after(const char *path, int flag, const float *f, hsize_t n)
{
    const unsigned char one = 1;
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), scalar = H5Screate(H5S_SCALAR);
    hid_t line = H5Screate_simple(1, &n, NULL);
    if (flag) {
        hid_t d = H5Dcreate2(file, "/flag", H5T_NATIVE_UCHAR, scalar, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(H5Dwrite(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, &one) >= 0);
        H5Dclose(d);
    }
    hid_t d = H5Dcreate2(file, "/stack", H5T_NATIVE_FLOAT, line, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, f) >= 0);
    haddr_t offset = H5Dget_offset(d);
    H5Dclose(d);
    H5Sclose(line);
    H5Sclose(scalar);
    assert_true(H5Fclose(file) >= 0);
    return offset;
}

/* A stack at an odd file offset (a 1-byte dataset written before it) would give misaligned floats, and one that
 * runs past the end of a truncated file would fault when touched: neither is mapped. The first reads as usual;
 * the read of the second fails with a message (HDF5 would fill a small one's missing part with zeros). */
static void unaligned_or_truncated_datasets_are_not_mapped(void **state)
{
    (void)state;
    char path[256];
    enum { N = 4096 };
    static float f[N];
    for (int k = 0; k < N; k++) f[k] = (float)k - 0.5f;
    h5array shape;
    h5array_mapping mapping;
    unit_path(path, sizeof path, "unaligned.h5");
    assert_true(write_stack_after(path, 1, f, N) % 4 != 0);
    assert_null(h5array_map_float(path, "/stack", &shape, &mapping, err, sizeof err));
    assert_non_null(strstr(err, "not aligned for float"));
    assert_null(mapping.base);
    float *read = h5array_read_float(path, "/stack", &shape, err, sizeof err);
    assert_non_null(read);
    assert_memory_equal(read, f, sizeof f);
    free(read);

    unit_path(path, sizeof path, "truncated.h5");
    haddr_t offset = write_stack_after(path, 0, f, N);
    assert_non_null(h5array_map_float(path, "/stack", &shape, &mapping, err, sizeof err));   /* intact: mapped */
    h5array_unmap(&mapping);
    /* The stack ends the file; cut 8 KiB off it and rewrite the end-of-file address of the superblock (version 0,
     * at byte 40) to match, as a corrupt copy may have it, so that HDF5 still opens the file. */
    FILE *io = fopen(path, "r+b");
    assert_non_null(io);
    assert_int_equal(fseek(io, 0, SEEK_END), 0);
    long size = ftell(io) - 8192;
    assert_true(size > (long)offset && (unsigned long)ftell(io) == offset + sizeof f);
    unsigned char eof[8];
    for (int i = 0; i < 8; i++) eof[i] = (unsigned char)((unsigned long)size >> (8 * i));
    assert_int_equal(fseek(io, 40, SEEK_SET), 0);
    assert_int_equal(fwrite(eof, 1, 8, io), 8);
    fclose(io);
    assert_int_equal(truncate(path, size), 0);
    assert_null(h5array_map_float(path, "/stack", &shape, &mapping, err, sizeof err));
    assert_non_null(strstr(err, "runs past the end of the file"));
    assert_null(mapping.base);
    assert_null(h5array_read_float(path, "/stack", &shape, err, sizeof err));
    char expected[96];
    snprintf(expected, sizeof expected, "/stack runs past the end of the file (%ld bytes): truncated or corrupt", size);
    assert_non_null(strstr(err, expected));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(locations_split_into_file_and_dataset),
        cmocka_unit_test(datasets_and_attributes_round_trip),
        cmocka_unit_test(adding_to_a_file_replaces_a_group_and_keeps_the_rest),
        cmocka_unit_test(errors_are_reported_as_text),
        cmocka_unit_test(float_datasets_mapped_from_the_file),
        cmocka_unit_test(unaligned_or_truncated_datasets_are_not_mapped),
    };
    return cmocka_run_group_tests(tests, unit_scratch_setup, unit_scratch_teardown);
}
