/* test_stagemap.c -- unit tests of the pure parts of src/live/stagemap: x,y pair arrays. (Move planning left
 * the stage map for the one move path, src/drivers/motion, which binds real motor records: its tests drive the
 * IOC, tests/stagemap and tests/web.) */
#include "db_test_util.h"

#include <math.h>

#include "core/base/base.h"
#include "live/stagemap/stagemap_internal.h"

static char err[256];

static void pairs_are_copied_and_odd_counts_refused(void **state)
{
    (void)state;
    double values[7] = {1, 2, 3, 4, 5, 6, 7}, pairs[2][2];
    param_write w = {.name = "Fid:Pixel", .array = values, .array_type = DBR_DOUBLE, .nelem = 6};
    assert_int_equal(stagemap_copy_pairs(&w, pairs, 2, err, sizeof err), 2);    /* at most max pairs */
    assert_true(pairs[0][0] == 1 && pairs[0][1] == 2 && pairs[1][0] == 3 && pairs[1][1] == 4);
    w.nelem = 7;
    assert_int_equal(stagemap_copy_pairs(&w, pairs, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "Fid:Pixel"));
    assert_non_null(strstr(err, "pairs"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pairs_are_copied_and_odd_counts_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
