/* test_imageio.c -- writers of src/formats/imageio round-trip through the readers; bad paths are reported. */
#include "unit.h"
#include <unistd.h>

#include "formats/imageio/imageio.h"


static void tiff_float_and_u16_round_trip(void **state)
{
    (void)state;
    float data[6 * 4];
    for (int i = 0; i < 24; i++) data[i] = (float)(i * 1000.25 - 3000);
    char path[256], err[256];
    image img;
    unit_path(path, sizeof path, "f.tif");
    assert_int_equal(image_write_tiff(path, data, 6, 4, 0, err, sizeof err), 0);
    assert_int_equal(image_read(path, &img, err, sizeof err), 0);
    assert_int_equal(img.type, PIX_F32);
    assert_memory_equal(img.data, data, sizeof data);
    image_free(&img);

    unit_path(path, sizeof path, "u.tif");
    assert_int_equal(image_write_tiff(path, data, 6, 4, 1, err, sizeof err), 0);
    assert_int_equal(image_read(path, &img, err, sizeof err), 0);
    assert_int_equal(img.type, PIX_U16);
    for (int i = 0; i < 24; i++) {
        float expect = data[i] < 0 ? 0 : (float)(int)(data[i] + 0.5f);
        assert_true(img.data[i] == expect);
    }
    image_free(&img);
}

static void png_grey_scaled_round_trip(void **state)
{
    (void)state;
    float data[3 * 2] = {10, 20, 30, 40, 50, 60};
    char path[256], err[256];
    image img;
    unit_path(path, sizeof path, "g.png");
    assert_int_equal(image_write_png(path, data, 3, 2, 0, 0, err, sizeof err), 0);   /* auto range */
    assert_int_equal(image_read(path, &img, err, sizeof err), 0);
    assert_int_equal(img.type, PIX_U8);
    assert_true(img.data[0] == 0 && img.data[5] == 255);
    assert_true(img.data[2] == 102);    /* (30-10)*255/50 = 102 */
    image_free(&img);
}

static void unwritable_and_unknown_paths_are_reported(void **state)
{
    (void)state;
    float data[4] = {0};
    char err[256] = "";
    image img;
    assert_int_equal(image_write_png("/nonexistent-dir/x.png", data, 2, 2, 0, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/x.png"));
    assert_int_equal(image_read("/tmp/whatever.jpg", &img, err, sizeof err), -1);
    assert_non_null(strstr(err, "unsupported"));
    assert_int_equal(image_read("/nonexistent-dir/x.tif", &img, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tiff_float_and_u16_round_trip),
        cmocka_unit_test(png_grey_scaled_round_trip),
        cmocka_unit_test(unwritable_and_unknown_paths_are_reported),
    };
    return cmocka_run_group_tests(tests, unit_scratch_setup, unit_scratch_teardown);
}
