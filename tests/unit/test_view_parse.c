/* test_view_parse.c -- unit tests of view_parse (src/kernels/detection/features.c): a worker IOC's View_RBV
 * array is untrusted; every head element that is not finite, out of range or not whole where a whole number is
 * meant, a length that does not match the count and a feature outside the frame make it "malformed" (never a cast
 * of NaN or a huge value: UBSan would stop this test), and more features than the limit is its own verdict. */
#include "unit.h"
#include <math.h>

#include "kernels/detection/detection.h"

#define MAX 8

/* A well-formed view of a 64x48 frame with three features. */
static long good_view(double *a)
{
    const double head[VIEW_HEAD] = {[VIEW_UNIQUE_ID] = 41, [VIEW_STAMP] = 1.7e9 + 0.25, [VIEW_STAGE_X] = 12.5,
                                    [VIEW_STAGE_Y] = -3, [VIEW_WIDTH] = 64, [VIEW_HEIGHT] = 48, [VIEW_DIAMETER] = 15,
                                    [VIEW_MASS_FACTOR] = 10, [VIEW_SHARPNESS] = 14.5, [VIEW_COUNT] = 3};
    memcpy(a, head, sizeof head);
    const double xy[6] = {0, 0, 63.4, 47.4, 20.25, 30};
    memcpy(a + VIEW_HEAD, xy, sizeof xy);
    return VIEW_HEAD + 6;
}

static void a_well_formed_view_is_read_whole(void **state)
{
    (void)state;
    double a[VIEW_HEAD + 2 * MAX];
    long n = good_view(a);
    view_parsed p;
    char why[200] = "";
    assert_int_equal(view_parse(a, n, MAX, &p, why, sizeof why), VIEW_OK);
    assert_true(p.unique_id == 41 && p.stamp == 1.7e9 + 0.25 && p.stage_x == 12.5 && p.stage_y == -3);
    assert_true(p.width == 64 && p.height == 48 && p.diameter == 15 && p.mass_factor == 10 && p.sharpness == 14.5);
    assert_int_equal(p.count, 3);
    assert_true(p.xy[1][0] == 63.4 && p.xy[1][1] == 47.4 && p.xy[2][0] == 20.25);
    /* unknown stage position and no structure (NaN sharpness) are allowed; no features too */
    a[VIEW_STAGE_X] = a[VIEW_STAGE_Y] = a[VIEW_SHARPNESS] = NAN;
    a[VIEW_COUNT] = 0;
    assert_int_equal(view_parse(a, VIEW_HEAD, MAX, &p, why, sizeof why), VIEW_OK);
    assert_true(isnan(p.stage_x) && isnan(p.sharpness) && p.count == 0);
}

static void every_bad_head_element_is_malformed(void **state)
{
    (void)state;
    static const struct {
        int index;
        double value;
        const char *says;
    } bad[] = {
        {VIEW_UNIQUE_ID, NAN, "uniqueId"},           {VIEW_UNIQUE_ID, -1, "uniqueId"},
        {VIEW_UNIQUE_ID, 2.5, "uniqueId"},           {VIEW_UNIQUE_ID, 1e300, "uniqueId"},
        {VIEW_STAMP, NAN, "time stamp"},             {VIEW_STAMP, INFINITY, "time stamp"},
        {VIEW_STAMP, -5, "time stamp"},              {VIEW_STAGE_X, INFINITY, "stage x"},
        {VIEW_STAGE_Y, -INFINITY, "stage y"},        {VIEW_WIDTH, 0, "width"},
        {VIEW_WIDTH, -64, "width"},                  {VIEW_WIDTH, NAN, "width"},
        {VIEW_WIDTH, 1e12, "width"},                 {VIEW_WIDTH, 63.5, "width"},
        {VIEW_HEIGHT, 0, "height"},                  {VIEW_HEIGHT, INFINITY, "height"},
        {VIEW_DIAMETER, 14, "diameter"},             {VIEW_DIAMETER, 1, "diameter"},
        {VIEW_DIAMETER, NAN, "diameter"},            {VIEW_DIAMETER, 1e300, "diameter"},
        {VIEW_DIAMETER, 15.5, "diameter"},           {VIEW_MASS_FACTOR, 0, "mass factor"},
        {VIEW_MASS_FACTOR, NAN, "mass factor"},      {VIEW_MASS_FACTOR, INFINITY, "mass factor"},
        {VIEW_SHARPNESS, -1, "sharpness"},           {VIEW_SHARPNESS, INFINITY, "sharpness"},
        {VIEW_COUNT, -1, "feature count"},           {VIEW_COUNT, 1.5, "feature count"},
        {VIEW_COUNT, NAN, "feature count"},          {VIEW_HEAD, NAN, "feature 0"},
        {VIEW_HEAD + 3, 48, "feature 1"},            {VIEW_HEAD + 4, -0.6, "feature 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double a[VIEW_HEAD + 2 * MAX];
        long n = good_view(a);
        a[bad[i].index] = bad[i].value;
        view_parsed p;
        char why[200] = "";
        int rc = view_parse(a, n, MAX, &p, why, sizeof why);
        if (rc != VIEW_MALFORMED || !strstr(why, bad[i].says))
            fail_msg("element %d = %g: %d \"%s\" (expected malformed, \"%s\")", bad[i].index, bad[i].value, rc, why,
                     bad[i].says);
    }
}

static void a_length_that_does_not_match_the_count_is_malformed(void **state)
{
    (void)state;
    double a[VIEW_HEAD + 2 * MAX] = {0};
    long n = good_view(a);
    view_parsed p;
    char why[200];
    assert_int_equal(view_parse(a, n - 1, MAX, &p, why, sizeof why), VIEW_MALFORMED);   /* half a pair missing */
    assert_non_null(strstr(why, "elements for 3 features"));
    assert_int_equal(view_parse(a, n + 2, MAX, &p, why, sizeof why), VIEW_MALFORMED);   /* a pair too many */
    assert_int_equal(view_parse(a, VIEW_HEAD - 1, MAX, &p, why, sizeof why), VIEW_MALFORMED);
    assert_non_null(strstr(why, "fewer than the head"));
    assert_int_equal(view_parse(a, 0, MAX, &p, why, sizeof why), VIEW_MALFORMED);
}

static void more_features_than_the_limit_is_not_called_malformed(void **state)
{
    (void)state;
    double a[VIEW_HEAD + 2 * MAX] = {0};
    good_view(a);
    a[VIEW_COUNT] = 25000;                          /* the array read was cut at the limit */
    view_parsed p;
    char why[200];
    assert_int_equal(view_parse(a, VIEW_HEAD + 2 * MAX, MAX, &p, why, sizeof why), VIEW_TOO_MANY);
    assert_string_equal(why, "too many features (25000 > 8)");
    assert_true(p.width == 64 && p.diameter == 15 && p.mass_factor == 10 && p.xy == NULL);   /* the head, read */
    a[VIEW_COUNT] = MAX;                             /* exactly the limit: fine */
    for (int i = 0; i < 2 * MAX; i++) a[VIEW_HEAD + i] = 1;
    assert_int_equal(view_parse(a, VIEW_HEAD + 2 * MAX, MAX, &p, why, sizeof why), VIEW_OK);
}

static void the_diameter_rule_is_one(void **state)
{
    (void)state;
    assert_true(locate_diameter_valid(3) && locate_diameter_valid(VIEW_DEFAULT_DIAMETER) &&
                locate_diameter_valid(LOCATE_MAX_DIAMETER));
    assert_false(locate_diameter_valid(1) || locate_diameter_valid(4) ||
                 locate_diameter_valid(LOCATE_MAX_DIAMETER + 2) || locate_diameter_valid(-3));
    char err[256];
    locate_params p;
    locate_params_default(&p, VIEW_DEFAULT_DIAMETER);   /* the default is one locate accepts */
    assert_int_equal(locate_params_check(&p, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_well_formed_view_is_read_whole),
        cmocka_unit_test(every_bad_head_element_is_malformed),
        cmocka_unit_test(a_length_that_does_not_match_the_count_is_malformed),
        cmocka_unit_test(more_features_than_the_limit_is_not_called_malformed),
        cmocka_unit_test(the_diameter_rule_is_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
