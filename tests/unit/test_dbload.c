/* test_dbload.c -- unit tests of loading parsed databases into the record database (src/core/dbload/load.c with
 * the real src/core/db): fields, infos and aliases arrive; unknown types and fields, bad names, type clashes and
 * bad values are reported with file:line; a broken file or template creates none of its records. */
#include "unit.h"
#include <unistd.h>

#include "core/db/db.h"
#include "core/dbload/dbload.h"

static char err[512];

static int setup(void **state)
{
    db_register_builtins();
    return unit_scratch_setup(state);
}

static void field_is(const char *channel, const char *want)
{
    db_addr addr;
    char got[256];
    if (db_name_to_addr(channel, &addr) != DB_OK) fail_msg("no channel %s", channel);
    assert_int_equal(db_get_text(&addr, got, sizeof got), DB_OK);
    if (strcmp(got, want)) fail_msg("%s is \"%s\", expected \"%s\"", channel, got, want);
}

/* Loads a file that must fail, with a message containing file:line and `what`; no record `absent` exists. */
static void load_fails(const char *name, const char *text, const char *defs, int line, const char *what,
                       const char *absent)
{
    const char *path = unit_write_file(name, text);
    char where[300];
    snprintf(where, sizeof where, "%s:%d:", path, line);
    err[0] = '\0';
    assert_int_equal(dbload_records(path, defs, err, sizeof err), -1);
    if (!strstr(err, where) || !strstr(err, what)) fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", err, where, what);
    if (absent && db_find_record(absent)) fail_msg("record %s was created by a file that failed", absent);
}

static void good_file_loads_fields_infos_aliases(void **state)
{
    (void)state;
    const char *path = unit_write_file("good.db",
                                  "record(ao, \"$(P)x\") {\n"
                                  "  field(DESC, \"a setting\") field(EGU, \"$(EGU=mm)\") field(PREC, 2)\n"
                                  "  info(autosaveFields, \"VAL\") alias(\"$(P)y\")\n"
                                  "}\n"
                                  "alias(\"$(P)x\", \"$(P)z\")\n"
                                  "record(\"*\", \"$(P)x\") { field(DRVH, 10) }\n");
    if (dbload_records(path, "P=G:", err, sizeof err)) fail_msg("%s", err);
    db_record *rec = db_find_record("G:x");
    assert_non_null(rec);
    assert_string_equal(rec->rtype->name, "ao");
    assert_ptr_equal(db_find_record("G:y"), rec);
    assert_ptr_equal(db_find_record("G:z"), rec);
    field_is("G:x.DESC", "a setting");
    field_is("G:x.EGU", "mm");
    field_is("G:x.PREC", "2");
    assert_string_equal(db_get_info(rec, "autosaveFields"), "VAL");
    db_addr addr;
    assert_int_equal(db_name_to_addr("G:x.DRVH", &addr), DB_OK);
    double drvh;
    long n = 1;
    assert_int_equal(db_get(&addr, DBR_DOUBLE, &drvh, &n), DB_OK);
    assert_true(drvh == 10.0);
}

static void errors_name_file_and_line_and_create_nothing(void **state)
{
    (void)state;
    load_fails("type.db", "record(ai, \"E1:a\")\n\nrecord(nosuch, \"E1:b\")\n", NULL, 3,
               "unknown record type \"nosuch\"", "E1:a");
    load_fails("field.db", "record(ai, \"E2:a\")\nrecord(ai, \"E2:b\") {\n  field(DESC, x)\n  field(BOGUS, 1)\n}\n",
               NULL, 4, "unknown field \"BOGUS\"", "E2:a");
    load_fails("name.db", "record(ai, \"E3:a\")\nrecord(ai, \"E3.b\")\n", NULL, 2, "record name \"E3.b\"", "E3:a");
    load_fails("alias.db", "record(ai, \"E4:a\")\nalias(\"E4:none\", \"E4:al\")\n", NULL, 2, "no such record",
               "E4:a");
    load_fails("star.db", "record(ai, \"E5:a\")\nrecord(\"*\", \"E5:never\") { field(DESC, x) }\n", NULL, 2,
               "not defined before", "E5:a");
    load_fails("macro.db", "record(ai, \"E6:a\")\nrecord(ai, \"$(R)\")\n", "P=x", 2, "undefined macro $(R)", "E6:a");
    load_fails("syntax.db", "record(ai, \"E7:a\")\nrecord(ai, \"E7:b\") {\n field(DESC, \"x\")\n", NULL, 4,
               "missing '}'", "E7:a");
    /* A value the field does not accept is found when it is stored; the message still names the line. */
    load_fails("value.db", "record(ai, \"E8:a\") {\n  field(SCAN, \"whenever\")\n}\n", NULL, 2, "SCAN", NULL);
}

static void type_clash_with_existing_record(void **state)
{
    (void)state;
    const char *first = unit_write_file("first.db", "record(ai, \"C:a\") { field(DESC, one) }\n");
    if (dbload_records(first, NULL, err, sizeof err)) fail_msg("%s", err);
    load_fails("clash.db", "record(ai, \"C:new\")\nrecord(bo, \"C:a\")\n", NULL, 2, "already defined with type ai",
               "C:new");
    /* The same type again merges: fields are overridden. */
    const char *again = unit_write_file("again.db", "record(ai, \"C:a\") { field(DESC, two) }\n");
    if (dbload_records(again, NULL, err, sizeof err)) fail_msg("%s", err);
    field_is("C:a.DESC", "two");
}

static void template_is_all_or_nothing(void **state)
{
    (void)state;
    unit_write_file("inst.db", "record(longout, \"$(P)v\") { field(VAL, \"$(V=0)\") }\n");
    const char *ok = unit_write_file("ok.substitutions",
                                "global { V=3 }\nfile inst.db { pattern { P } { T1: } { T2: } }\n"
                                "file \"inst.db\" { { P=T3:, V=\"$(W=8)\" } }\n");
    if (dbload_template(ok, "W=9", err, sizeof err)) fail_msg("%s", err);
    field_is("T1:v", "3");
    field_is("T2:v", "3");
    field_is("T3:v", "9");

    const char *bad = unit_write_file("bad.substitutions", "file inst.db { { P=U1: } }\nfile missing.db { { P=U2: } }\n");
    assert_int_equal(dbload_template(bad, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad.substitutions:2: database file \"missing.db\" not found"));
    assert_null(db_find_record("U1:v"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_file_loads_fields_infos_aliases),
        cmocka_unit_test(errors_name_file_and_line_and_create_nothing),
        cmocka_unit_test(type_clash_with_existing_record),
        cmocka_unit_test(template_is_all_or_nothing),
    };
    return cmocka_run_group_tests(tests, setup, unit_scratch_teardown);
}
