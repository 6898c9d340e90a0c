/* test_macsub.c -- unit tests of src/core/macsub: every reference form, nesting, escapes, errors, definitions. */
#include "unit.h"

#include "core/macsub/macsub.h"

static char err[256];

/* Expands text with the table; asserts success and compares. */
static void expect(const macsub_table *t, const char *text, const char *want)
{
    err[0] = '\0';
    char *got = macsub_expand(t, text, err, sizeof err);
    if (!got) fail_msg("expanding \"%s\" failed: %s", text, err);
    assert_string_equal(got, want);
    free(got);
}

/* Expands text; asserts failure with a message containing `needle`. */
static void expect_error(const macsub_table *t, const char *text, const char *needle)
{
    err[0] = '\0';
    char *got = macsub_expand(t, text, err, sizeof err);
    if (got) fail_msg("expanding \"%s\" should fail but gave \"%s\"", text, got);
    if (!strstr(err, needle)) fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void both_bracket_forms_and_plain_text(void **state)
{
    (void)state;
    macsub_table *t = macsub_create(NULL, 0);
    macsub_define(t, "P", "IOC:");
    macsub_define(t, "R", "m1");
    expect(t, "$(P)$(R).VAL", "IOC:m1.VAL");
    expect(t, "${P}${R}", "IOC:m1");
    expect(t, "no macros here", "no macros here");
    expect(t, "cost $5 (approx)", "cost $5 (approx)");
    expect(t, "", "");
    macsub_free(t);
}

static void defaults_used_only_when_undefined(void **state)
{
    (void)state;
    macsub_table *t = macsub_create(NULL, 0);
    macsub_define(t, "P", "A:");
    expect(t, "$(P=X:)", "A:");
    expect(t, "$(Q=X:)rest", "X:rest");
    expect(t, "${Q=}", "");
    expect(t, "$(Q=$(P)def)", "A:def");          /* default containing a macro */
    expect(t, "$(Q=a=b)", "a=b");                 /* only the first '=' separates */
    macsub_free(t);
}

static void nested_names_and_values(void **state)
{
    (void)state;
    macsub_table *t = macsub_create(NULL, 0);
    macsub_define(t, "N", "2");
    macsub_define(t, "P2", "second");
    macsub_define(t, "SYS", "BL");
    macsub_define(t, "P", "$(SYS):");              /* value refers to another macro */
    expect(t, "$(P$(N))", "second");
    expect(t, "${P${N}}", "second");
    expect(t, "$(P)x", "BL:x");
    macsub_free(t);
}

static void escapes(void **state)
{
    (void)state;
    macsub_table *t = macsub_create(NULL, 0);
    macsub_define(t, "P", "v");
    expect(t, "\\$(P)", "$(P)");                  /* escaped dollar is literal, backslash dropped */
    expect(t, "a\\\"b", "a\\\"b");                /* other escapes are kept for the next stage */
    expect(t, "\\\\$(P)", "\\\\v");               /* an escaped backslash does not escape the dollar */
    macsub_free(t);
}

static void undefined_and_recursive_are_errors(void **state)
{
    (void)state;
    macsub_table *t = macsub_create(NULL, 0);
    macsub_define(t, "A", "$(B)");
    macsub_define(t, "B", "x$(A)");
    macsub_define(t, "S", "$(S)");
    expect_error(t, "$(MISSING)", "undefined macro $(MISSING)");
    expect_error(t, "pre $(A) post", "refers to itself");
    expect_error(t, "$(S)", "$(S) refers to itself");
    expect_error(t, "$(P", "unterminated");
    expect_error(t, "$(P$(N))", "undefined macro $(N)");
    macsub_free(t);
}

static void scopes_and_environment(void **state)
{
    (void)state;
    setenv("RELOC_TEST_MACRO_ENV", "fromenv", 1);
    macsub_table *outer = macsub_create(NULL, 1);
    macsub_define(outer, "P", "outer");
    macsub_table *inner = macsub_create(outer, 0);
    macsub_define(inner, "P", "inner");
    expect(inner, "$(P)", "inner");
    expect(outer, "$(P)", "outer");
    expect(inner, "$(RELOC_TEST_MACRO_ENV)", "fromenv");
    macsub_table *noenv = macsub_create(NULL, 0);
    expect_error(noenv, "$(RELOC_TEST_MACRO_ENV)", "undefined");
    macsub_free(noenv);
    macsub_free(inner);
    macsub_free(outer);
}

static void parse_definitions(void **state)
{
    (void)state;
    macsub_table *t = macsub_create(NULL, 0);
    assert_int_equal(macsub_parse_defs(t, " P = IOC: , R=m1,DESC=\"a, b = c\",E='',SP=' x ',BS=a\\,b", err,
                                      sizeof err), 0);
    assert_string_equal(macsub_lookup(t, "P"), "IOC:");
    assert_string_equal(macsub_lookup(t, "R"), "m1");
    assert_string_equal(macsub_lookup(t, "DESC"), "a, b = c");
    assert_string_equal(macsub_lookup(t, "E"), "");
    assert_string_equal(macsub_lookup(t, "SP"), " x ");
    assert_string_equal(macsub_lookup(t, "BS"), "a,b");
    assert_null(macsub_lookup(t, "Q"));
    assert_int_equal(macsub_parse_defs(t, "P=new", err, sizeof err), 0);   /* redefinition */
    assert_string_equal(macsub_lookup(t, "P"), "new");
    assert_int_equal(macsub_parse_defs(t, "", err, sizeof err), 0);
    assert_int_equal(macsub_parse_defs(t, NULL, err, sizeof err), 0);

    assert_int_equal(macsub_parse_defs(t, "P", err, sizeof err), -1);
    assert_non_null(strstr(err, "no '='"));
    assert_int_equal(macsub_parse_defs(t, "=3", err, sizeof err), -1);
    assert_non_null(strstr(err, "without a name"));
    assert_int_equal(macsub_parse_defs(t, "A=\"open", err, sizeof err), -1);
    assert_non_null(strstr(err, "unterminated"));
    macsub_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(both_bracket_forms_and_plain_text),
        cmocka_unit_test(defaults_used_only_when_undefined),
        cmocka_unit_test(nested_names_and_values),
        cmocka_unit_test(escapes),
        cmocka_unit_test(undefined_and_recursive_are_errors),
        cmocka_unit_test(scopes_and_environment),
        cmocka_unit_test(parse_definitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
