/* test_base.c -- unit tests of src/core/base: log level names, bounded copies, time arithmetic, large arrays. */
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

/* 1 when the mapping holding p is eligible for transparent huge pages, 0 when not, -1 when the kernel does not say
 * (no THPeligible line in /proc/self/smaps). */
static int huge_page_eligible(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[256];
    int inside = 0, eligible = -1;
    while (eligible < 0 && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)   /* a mapping's first line */
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (inside && strncmp(line, "THPeligible:", 12) == 0)
            eligible = atoi(line + 12);
    }
    fclose(f);
    return eligible;
}

/* 1 when transparent huge pages are on for madvised memory ("always" or "madvise"). */
static int huge_pages_enabled(void)
{
    char *mode = file_read_all("/sys/kernel/mm/transparent_hugepage/enabled", 0, NULL, NULL, 0);
    int on = mode && !strstr(mode, "[never]");
    free(mode);
    return on;
}

static void xmalloc_large_aligns_keeps_and_frees(void **state)
{
    (void)state;
    const size_t two_mib = (size_t)2 << 20;
    const size_t sizes[] = {1, 4096, two_mib - 1, two_mib, 5 * two_mib + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *a = xmalloc_large(n);
        assert_non_null(a);
        if (n >= two_mib) {
            assert_int_equal((uintptr_t)a % two_mib, 0);
            if (huge_pages_enabled()) assert_int_not_equal(huge_page_eligible(a), 0);
        }
        for (size_t k = 0; k < n; k++) a[k] = (unsigned char)(k * 7 + i);
        size_t wrong = 0;
        for (size_t k = 0; k < n; k++) wrong += a[k] != (unsigned char)(k * 7 + i);
        assert_int_equal(wrong, 0);
        free(a);   /* the matching release: LeakSanitizer would report the array otherwise */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_level_names),
        cmocka_unit_test(str_copy_truncates_and_terminates),
        cmocka_unit_test(time_add_normalizes),
        cmocka_unit_test(xmalloc_large_aligns_keeps_and_frees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
