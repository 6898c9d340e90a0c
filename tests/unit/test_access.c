/* test_access.c -- unit tests of access security: ACF parsing (good files and errors with line numbers),
 * rule evaluation by user, host, level and group, DEFAULT fallback, reload keeping old rules on error. */
#include "unit.h"
#include <unistd.h>

#include "core/access/access.h"
#include "core/base/base.h"
#include "core/db/db.h"

#define RW (ACCESS_READ | ACCESS_WRITE)

static const char *acf =
    "# beamline rules\n"
    "UAG(ops) { alice, bob }\n"
    "UAG(guests) { \"carol\" }\n"
    "HAG(consoles) { ws1.beamline, localhost }\n"
    "ASG(DEFAULT) {\n"
    "    RULE(1, READ)\n"
    "    RULE(0, WRITE) { UAG(ops) }\n"
    "}\n"
    "ASG(MOTORS) {\n"
    "    RULE(1, READ) { UAG(ops, guests) }\n"
    "    RULE(1, WRITE, TRAPWRITE) { UAG(ops) HAG(consoles) }\n"
    "}\n"
    "ASG(CLOSED) {\n"
    "    RULE(1, NONE)\n"
    "}\n";

static int load(const char *text, char *err, size_t errlen)
{
    return access_load_text(text, "test.acf", err, errlen);
}

static void no_file_means_everybody_reads_and_writes(void **state)
{
    (void)state;
    access_clear();
    assert_int_equal(access_rights("MOTORS", 1, "anyone", "anywhere"), RW);
}

static void users_hosts_and_levels(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(load(acf, err, sizeof err), 0);
    /* DEFAULT: everybody reads, ops write level-0 fields (VAL) only */
    assert_int_equal(access_rights("", 0, "alice", "x"), RW);
    assert_int_equal(access_rights("", 1, "alice", "x"), ACCESS_READ);
    assert_int_equal(access_rights("", 0, "mallory", "x"), ACCESS_READ);
    /* unknown group -> DEFAULT */
    assert_int_equal(access_rights("NO_SUCH_GROUP", 0, "bob", "x"), RW);
    /* MOTORS: write needs both the user and the host; host names compare case-insensitively */
    assert_int_equal(access_rights("MOTORS", 0, "alice", "WS1.beamline"), RW);
    assert_int_equal(access_rights("MOTORS", 1, "alice", "elsewhere"), ACCESS_READ);
    assert_int_equal(access_rights("MOTORS", 1, "carol", "localhost"), ACCESS_READ);
    assert_int_equal(access_rights("MOTORS", 1, "Alice", "localhost"), 0);   /* user names are exact */
    assert_int_equal(access_rights("CLOSED", 0, "alice", "localhost"), 0);
}

static void errors_name_the_line_and_keep_old_rules(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(load(acf, err, sizeof err), 0);
    unsigned long gen = access_generation();
    const struct { const char *text; const char *needle; } bad[] = {
        { "ASG(A) {\n RULE(1, WRIT)\n}\n", "test.acf:2" },
        { "UAG(x) { a }\nASG(A) {\n RULE(1, READ) { UAG(y) }\n}\n", "UAG 'y' is not defined" },
        { "ASG(A) {\n\n RULE(one, READ)\n}\n", "test.acf:3" },
        { "ASG(A) { RULE(1, READ) }\nASG(A) { }\n", "ASG defined twice" },
        { "ASG(A) {\n RULE(1, READ\n", "test.acf:3" },
        { "HAG(h) { \"unterminated }\n", "unterminated string" },
        { "BOGUS(x)\n", "expected UAG, HAG or ASG" },
        { "ASG(A) { RULE(1, READ) { CALC(A) } }", "CALC needs a quoted expression" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_int_equal(load(bad[i].text, err, sizeof err), -1);
        if (!strstr(err, bad[i].needle))
            fail_msg("case %zu: '%s' does not contain '%s'", i, err, bad[i].needle);
    }
    assert_int_equal(access_generation(), gen);
    assert_int_equal(access_rights("MOTORS", 0, "alice", "localhost"), RW);      /* old rules still active */
}

static void init_loads_and_reloads_the_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_access_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("ASG(DEFAULT) { RULE(1, READ) }\n", f);
    fclose(f);
    char err[256];
    access_set_file(path);
    assert_int_equal(access_init(err, sizeof err), 0);
    assert_int_equal(access_rights("", 0, "alice", "h"), ACCESS_READ);
    f = fopen(path, "w");
    fputs("ASG(DEFAULT) { RULE(1, WRITE) }\n", f);
    fclose(f);
    assert_int_equal(access_init(err, sizeof err), 0);
    assert_int_equal(access_rights("", 0, "alice", "h"), RW);
    unlink(path);
    assert_int_equal(access_init(err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    access_set_file(NULL);
    assert_int_equal(access_init(err, sizeof err), 0);
    assert_int_equal(access_rights("X", 1, "a", "h"), RW);
}

static void calc_condition_follows_its_input_record(void **state)
{
    (void)state;
    char err[256];
    db_register_builtins();
    assert_non_null(db_create_record("ao", "AS:gate", err, sizeof err));
    assert_int_equal(db_init(err, sizeof err), 0);
    assert_int_equal(load("ASG(DEFAULT) { RULE(1, READ) }\n"
                          "ASG(GATED) {\n  INPA(\"AS:gate\")\n  RULE(1, READ)\n"
                          "  RULE(1, WRITE) { CALC(\"A>0 && A<10\") }\n}\n", err, sizeof err), 0);
    db_lock();
    access_refresh_inputs();
    db_unlock();
    assert_int_equal(access_rights("GATED", 0, "anyone", "h"), ACCESS_READ);
    db_addr gate;
    assert_int_equal(db_name_to_addr("AS:gate", &gate), DB_OK);
    double one = 1;
    assert_int_equal(db_put_field(&gate, DBR_DOUBLE, &one, 1), DB_OK);
    unsigned long gen = access_generation();
    db_lock();
    assert_int_equal(access_refresh_inputs(), 1);          /* changed: clients must be told */
    db_unlock();
    assert_true(access_generation() != gen);
    assert_int_equal(access_rights("GATED", 0, "anyone", "h"), RW);
    db_lock();
    assert_int_equal(access_refresh_inputs(), 0);          /* nothing changed since */
    db_unlock();
    /* a CALC naming a record that does not exist never grants access */
    assert_int_equal(load("ASG(X) { INPB(\"AS:missing\") RULE(1, WRITE) { CALC(\"B=0\") } }\n", err, sizeof err), 0);
    db_lock();
    access_refresh_inputs();
    db_unlock();
    assert_int_equal(access_rights("X", 0, "a", "h"), 0);
    /* a CALC that does not compile is an error naming the expression */
    assert_int_equal(load("ASG(Y) { RULE(1, WRITE) { CALC(\"A+\") } }\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "CALC(\"A+\")"));
    access_clear();
    db_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_file_means_everybody_reads_and_writes),
        cmocka_unit_test(users_hosts_and_levels),
        cmocka_unit_test(errors_name_the_line_and_keep_old_rules),
        cmocka_unit_test(init_loads_and_reloads_the_file),
        cmocka_unit_test(calc_condition_follows_its_input_record),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    access_clear();
    return rc;
}
