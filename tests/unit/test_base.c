/* test_base.c -- unit tests of src/core/base: log level names, bounded copies, time arithmetic. */
#include "unit.h"

#include "core/base/base.h"

static void log_level_names(void **state)
{
    (void)state;
    assert_int_equal(log_level_from_name("debug"), LOG_DEBUG);
    assert_int_equal(log_level_from_name("WARNING"), LOG_WARN);
    assert_int_equal(log_level_from_name("error"), LOG_ERROR);
    assert_int_equal(log_level_from_name("loud"), -1);
    assert_int_equal(log_level_from_name(NULL), -1);
}

static void str_copy_truncates_and_terminates(void **state)
{
    (void)state;
    char buf[5];
    assert_int_equal(str_copy(buf, "abcdefgh", sizeof buf), 8);
    assert_string_equal(buf, "abcd");
    assert_int_equal(str_copy(buf, "ab", sizeof buf), 2);
    assert_string_equal(buf, "ab");
}

static void time_add_normalizes(void **state)
{
    (void)state;
    struct timespec t = {.tv_sec = 10, .tv_nsec = 900000000};
    struct timespec u = time_add(t, 0.2);
    assert_int_equal(u.tv_sec, 11);
    assert_int_equal(u.tv_nsec, 100000000);
    u = time_add(t, -1.0);
    assert_int_equal(u.tv_sec, 9);
    assert_int_equal(u.tv_nsec, 900000000);
    assert_true(time_monotonic() > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_level_names),
        cmocka_unit_test(str_copy_truncates_and_terminates),
        cmocka_unit_test(time_add_normalizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
