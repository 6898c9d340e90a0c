/* test_autosave_file.c -- unit tests of the autosave file format: round trip of awkward values, atomic
 * replacement, and rejection of truncated, corrupted or tampered files without returning any entry. */
#include "unit.h"
#include <sys/stat.h>
#include <unistd.h>

#include "core/autosave/autosave.h"

static char path[128], err[512];

static int setup(void **state)
{
    if (unit_scratch_setup(state)) return -1;
    unit_path(path, sizeof path, "ioc.sav");
    return 0;
}

static const char *const channels[] = {"IOC:m1.VAL", "IOC:m1.EGU", "IOC:name.VAL", "IOC:empty.VAL", "IOC:ctl.VAL"};
static const char *const values[] = {"12.5", "mm", "a \"quoted\" \\ value", "", "tab\there\nnewline\x01"};
#define NVALUES (sizeof values / sizeof *values)

static void write_sample(void)
{
    autosave_set set = {0};
    for (size_t i = 0; i < NVALUES; i++) autosave_set_add(&set, channels[i], values[i]);
    if (autosave_file_write(path, &set, err, sizeof err)) fail_msg("%s", err);
    autosave_set_free(&set);
}

static char *slurp(size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    char *buf = malloc(*len + 1);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static void spit(const char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(buf, 1, len, f);
    fclose(f);
}

static void round_trip_keeps_every_value(void **state)
{
    (void)state;
    write_sample();
    autosave_set got = {0};
    if (autosave_file_read(path, &got, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(got.n, NVALUES);
    for (size_t i = 0; i < NVALUES; i++) {
        assert_string_equal(got.entries[i].channel, channels[i]);
        assert_string_equal(got.entries[i].value, values[i]);
    }
    autosave_set_free(&got);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);          /* the temporary file was renamed away */
}

static void missing_file_is_not_an_error(void **state)
{
    (void)state;
    char other[160];
    snprintf(other, sizeof other, "%s/none.sav", unit_dir());
    autosave_set got = {0};
    assert_int_equal(autosave_file_read(other, &got, err, sizeof err), 1);
    assert_int_equal(got.n, 0);
}

/* Every truncation point of a valid file is rejected and yields no entries. */
static void every_truncation_is_rejected(void **state)
{
    (void)state;
    write_sample();
    size_t len;
    char *full = slurp(&len);
    for (size_t cut = 0; cut < len; cut++) {
        spit(full, cut);
        autosave_set got = {0};
        if (autosave_file_read(path, &got, err, sizeof err) != -1) fail_msg("truncation at %zu accepted", cut);
        assert_int_equal(got.n, 0);
        assert_non_null(strstr(err, path));
    }
    free(full);
}

static void expect_rejected(const char *text, const char *reason)
{
    spit(text, strlen(text));
    autosave_set got = {0};
    assert_int_equal(autosave_file_read(path, &got, err, sizeof err), -1);
    assert_int_equal(got.n, 0);
    if (!strstr(err, reason)) fail_msg("error \"%s\" does not mention \"%s\"", err, reason);
}

static void corruption_is_rejected(void **state)
{
    (void)state;
    write_sample();
    size_t len;
    char *full = slurp(&len);
    char *digit = strstr(full, "12.5");
    digit[0] = '7';                                    /* one changed byte in a value */
    spit(full, len);
    autosave_set got = {0};
    assert_int_equal(autosave_file_read(path, &got, err, sizeof err), -1);
    assert_non_null(strstr(err, "checksum"));
    assert_int_equal(got.n, 0);
    free(full);

    expect_rejected("garbage\n", ":1: not a reloc autosave file");
    expect_rejected("# reloc autosave 1\nA.VAL \"1\"\n#END 2 fnv1a64=0\n", ":3: entry count");
    expect_rejected("# reloc autosave 1\nA.VAL 1\n#END 1 fnv1a64=0\n", ":2: expected CHANNEL");
    expect_rejected("# reloc autosave 1\nA.VAL \"1\" x\n#END 1 fnv1a64=0\n", ":2: value not terminated");
    expect_rejected("# reloc autosave 1\n#END 0 fnv1a64=zz\n", ":2: malformed end marker");
}

static void data_after_end_is_rejected(void **state)
{
    (void)state;
    write_sample();
    size_t len;
    char *full = slurp(&len);
    char *longer = malloc(len + 32);
    memcpy(longer, full, len);
    memcpy(longer + len, "X.VAL \"1\"\n", 10);
    spit(longer, len + 10);
    autosave_set got = {0};
    assert_int_equal(autosave_file_read(path, &got, err, sizeof err), -1);
    assert_non_null(strstr(err, "after the end marker"));
    free(longer);
    free(full);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_keeps_every_value),
        cmocka_unit_test(missing_file_is_not_an_error),
        cmocka_unit_test(every_truncation_is_rejected),
        cmocka_unit_test(corruption_is_rejected),
        cmocka_unit_test(data_after_end_is_rejected),
    };
    return cmocka_run_group_tests(tests, setup, unit_scratch_teardown);
}
