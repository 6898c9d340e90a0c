/* test_capture.c -- HDF5 capture: every frame with its time stamp, id and stage position lands in the file;
 * unwritable paths and frame-size changes end in a clear error state, not a crash. */
#include "unit.h"
#include <hdf5.h>
#include <unistd.h>

#include "core/base/base.h"
#include "drivers/capture/capture.h"
#include "drivers/frames/frames.h"


static void publish(frame_ring *ring, int w, int h, double x)
{
    frame *f = frame_ring_acquire(ring, w, h);
    for (int i = 0; i < w * h; i++) f->data[i] = (uint16_t)(i + (int)x);
    f->stamp = time_wall();
    f->stage_x = x;
    f->stage_y = -x;
    f->stage_z = 1.0;
    f->pixel_size = 0.25;
    frame_ring_publish(ring, f);
}

static capture_status wait_idle(capture *c)
{
    capture_status st;
    for (int i = 0; i < 500; i++) {
        capture_status_get(c, &st);
        if (st.state != CAPTURE_RUNNING) break;
        usleep(10000);
    }
    return st;
}

static void read_doubles(hid_t file, const char *path, double *out, hsize_t expect)
{
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t space = H5Dget_space(ds);
    hsize_t n;
    H5Sget_simple_extent_dims(space, &n, NULL);
    assert_int_equal(n, expect);
    assert_true(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Sclose(space);
    H5Dclose(ds);
}

static void frames_and_positions_are_written(void **state)
{
    (void)state;
    frame_ring *ring = frame_ring_create(64, 32 * 16);
    capture *c = capture_create(ring);
    char err[256];
    assert_int_equal(capture_start(c, unit_dir(), "scan", 7, 20, err, sizeof err), 0);
    for (int k = 0; k < 20; k++) {
        publish(ring, 32, 16, k * 1.5);
        usleep(2000);
    }
    capture_status st = wait_idle(c);
    assert_int_equal(st.state, CAPTURE_IDLE);
    assert_int_equal(st.captured, 20);
    assert_string_equal(st.message, "OK");
    char path[256];
    snprintf(path, sizeof path, "%s/scan_0007.h5", unit_dir());
    assert_string_equal(st.file, path);

    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    double x[20], y[20], stamp[20];
    read_doubles(file, "/entry/instrument/stage/x", x, 20);
    read_doubles(file, "/entry/instrument/stage/y", y, 20);
    read_doubles(file, "/entry/data/timestamp", stamp, 20);
    for (int k = 0; k < 20; k++) {
        assert_true(x[k] == k * 1.5 && y[k] == -k * 1.5);
        if (k) assert_true(stamp[k] >= stamp[k - 1]);
    }
    hid_t ds = H5Dopen2(file, "/entry/data/data", H5P_DEFAULT);
    hid_t space = H5Dget_space(ds);
    hsize_t dims[3];
    assert_int_equal(H5Sget_simple_extent_dims(space, dims, NULL), 3);
    assert_true(dims[0] == 20 && dims[1] == 16 && dims[2] == 32);
    uint16_t *pixels = malloc(20 * 16 * 32 * sizeof *pixels);
    assert_true(H5Dread(ds, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, pixels) >= 0);
    assert_int_equal(pixels[5 * 512 + 100], 100 + (int)(5 * 1.5));
    free(pixels);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(file);
    unlink(path);

    frame_ring_shutdown(ring);
    capture_destroy(c);
    frame_ring_destroy(ring);
}

static void errors_end_the_capture_with_a_message(void **state)
{
    (void)state;
    frame_ring *ring = frame_ring_create(8, 64);
    capture *c = capture_create(ring);
    char err[256] = "";
    assert_int_equal(capture_start(c, "/nonexistent/dir", "x", 1, 5, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot create /nonexistent/dir/x_0001.h5"));
    capture_status st;
    capture_status_get(c, &st);
    assert_int_equal(st.state, CAPTURE_ERROR);

    assert_int_equal(capture_start(c, unit_dir(), "size", 1, 0, err, sizeof err), 0);
    assert_int_equal(capture_start(c, unit_dir(), "again", 1, 0, err, sizeof err), -1);   /* one at a time */
    publish(ring, 8, 8, 0);
    usleep(50000);
    publish(ring, 4, 4, 0);
    st = wait_idle(c);
    assert_int_equal(st.state, CAPTURE_ERROR);
    assert_int_equal(st.captured, 1);
    assert_non_null(strstr(st.message, "frame size changed"));
    unlink(st.file);

    frame_ring_shutdown(ring);
    capture_destroy(c);
    frame_ring_destroy(ring);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frames_and_positions_are_written),
        cmocka_unit_test(errors_end_the_capture_with_a_message),
    };
    return cmocka_run_group_tests(tests, unit_scratch_setup, unit_scratch_teardown);
}
