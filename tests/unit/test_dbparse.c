/* test_dbparse.c -- unit tests of the .db and substitution-file parsers of src/core/dbload (no record database
 * involved): every syntax form, includes, macros, and the file:line messages of broken input. */
#include "unit.h"
#include <sys/stat.h>
#include <unistd.h>

#include "core/dbload/dbload.h"

static char err[512];

/* Parses text that must parse. */
static void parse_ok(dbload_db *db, const char *text, const macsub_table *macros)
{
    memset(db, 0, sizeof *db);
    err[0] = '\0';
    if (dbload_parse_text(db, text, "t.db", macros, err, sizeof err) != 0) fail_msg("parse failed: %s", err);
}

/* Parses text that must fail with a message starting with `where` and containing `what`. */
static void parse_fails(const char *text, const char *where, const char *what)
{
    dbload_db db = {0};
    err[0] = '\0';
    int rc = dbload_parse_text(&db, text, "t.db", NULL, err, sizeof err);
    dbload_db_free(&db);
    if (rc == 0) fail_msg("parsing should fail: %s", text);
    if (strncmp(err, where, strlen(where)) || !strstr(err, what))
        fail_msg("error \"%s\" should start with \"%s\" and mention \"%s\"", err, where, what);
}

static const char *field_value(const dbload_record *r, const char *key)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (!strcmp(r->fields[i].key, key)) return r->fields[i].value;
    return NULL;
}

static void records_fields_infos_aliases(void **state)
{
    (void)state;
    dbload_db db;
    parse_ok(&db,
             "# a comment line\n"
             "record(ai, \"IOC:temp\") {\n"
             "    field(DESC, \"Sample temperature\")   # trailing comment\n"
             "    field(PREC, 3)\n"
             "    field(INP, \"@asyn(PORT,0)TEMP\")\n"
             "    info(autosaveFields, \"VAL EGU\")\n"
             "    alias(\"IOC:T\")\n"
             "}\n"
             "grecord(bo, IOC:sw) {field(ZNAM,Off) field(ONAM, \"On\")}\n"
             "record(longin, \"IOC:bare\")\n"
             "alias(\"IOC:temp\", \"IOC:temperature\")\n",
             NULL);
    assert_int_equal(db.nrecords, 3);
    const dbload_record *r = &db.records[0];
    assert_string_equal(r->type, "ai");
    assert_string_equal(r->name, "IOC:temp");
    assert_int_equal(r->line, 2);
    assert_string_equal(r->file, "t.db");
    assert_int_equal(r->nfields, 3);
    assert_string_equal(field_value(r, "DESC"), "Sample temperature");
    assert_string_equal(field_value(r, "PREC"), "3");
    assert_string_equal(field_value(r, "INP"), "@asyn(PORT,0)TEMP");
    assert_int_equal(r->fields[1].line, 4);
    assert_int_equal(r->ninfos, 1);
    assert_string_equal(r->infos[0].key, "autosaveFields");
    assert_string_equal(r->infos[0].value, "VAL EGU");
    assert_int_equal(r->naliases, 1);
    assert_string_equal(r->aliases[0].value, "IOC:T");
    assert_string_equal(db.records[1].type, "bo");
    assert_string_equal(db.records[1].name, "IOC:sw");
    assert_string_equal(field_value(&db.records[1], "ZNAM"), "Off");
    assert_string_equal(field_value(&db.records[1], "ONAM"), "On");
    assert_int_equal(db.records[2].nfields, 0);
    assert_int_equal(db.naliases, 1);
    assert_string_equal(db.aliases[0].key, "IOC:temp");
    assert_string_equal(db.aliases[0].value, "IOC:temperature");
    assert_int_equal(db.aliases[0].line, 11);
    dbload_db_free(&db);
}

static void string_escapes(void **state)
{
    (void)state;
    dbload_db db;
    parse_ok(&db, "record(stringout, \"S\") { field(VAL, \"a\\\"b\\\\c\\n\\x41\\101\\t#not a comment\") "
                  "field(DESC, \"\") }",
             NULL);
    assert_string_equal(field_value(&db.records[0], "VAL"), "a\"b\\c\nAA\t#not a comment");
    assert_string_equal(field_value(&db.records[0], "DESC"), "");
    dbload_db_free(&db);
}

static void macros_are_expanded(void **state)
{
    (void)state;
    macsub_table *m = macsub_create(NULL, 0);
    macsub_define(m, "P", "BL:");
    macsub_define(m, "N", "1");
    macsub_define(m, "M1", "m$(N)");
    dbload_db db;
    parse_ok(&db,
             "# $(UNDEFINED) in a comment line is not expanded\n"
             "record(ao, \"$(P)${M$(N)}\") { field(EGU, \"$(EGU=mm)\") field(DESC, \"cost \\$(P)\") }\n"
             "record(ao, \"$(P)#2\") # $(UNDEFINED) after code is a comment too\n",
             m);
    assert_string_equal(db.records[0].name, "BL:m1");
    assert_string_equal(field_value(&db.records[0], "EGU"), "mm");
    assert_string_equal(field_value(&db.records[0], "DESC"), "cost $(P)");
    assert_string_equal(db.records[1].name, "BL:#2");
    dbload_db_free(&db);
    macsub_free(m);
}

static void includes_relative_and_search_path(void **state)
{
    (void)state;
    char sub[128], other[128], top[192];
    snprintf(sub, sizeof sub, "%s/sub", unit_dir());
    snprintf(other, sizeof other, "%s/other", unit_dir());
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(mkdir(other, 0755), 0);
    unit_write_file("sub/top.db", "record(ai, \"A\")\ninclude \"part.db\"\ninclude \"far.db\"\nrecord(ai, \"D\")\n");
    unit_write_file("sub/part.db", "record(ai, \"$(P)B\")\n");
    unit_write_file("other/far.db", "\n\nrecord(ai, \"C\") { field(DESC, x) }\n");
    setenv("EPICS_DB_INCLUDE_PATH", other, 1);
    macsub_table *m = macsub_create(NULL, 0);
    macsub_define(m, "P", "inc:");
    dbload_db db = {0};
    snprintf(top, sizeof top, "%s/top.db", sub);
    if (dbload_parse_file(&db, top, m, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(db.nrecords, 4);
    assert_string_equal(db.records[0].name, "A");
    assert_string_equal(db.records[1].name, "inc:B");
    assert_non_null(strstr(db.records[1].file, "sub/part.db"));
    assert_string_equal(db.records[2].name, "C");
    assert_non_null(strstr(db.records[2].file, "other/far.db"));
    assert_int_equal(db.records[2].line, 3);
    assert_string_equal(db.records[3].name, "D");
    dbload_db_free(&db);

    unit_write_file("sub/self.db", "include \"self.db\"\n");
    snprintf(top, sizeof top, "%s/self.db", sub);
    assert_int_equal(dbload_parse_file(&db, top, m, err, sizeof err), -1);
    assert_non_null(strstr(err, "self.db:1: includes nested too deeply"));
    dbload_db_free(&db);
    unsetenv("EPICS_DB_INCLUDE_PATH");
    macsub_free(m);
}

static void broken_input_names_file_and_line(void **state)
{
    (void)state;
    parse_fails("record(ai, \"A\") {\n  field(DESC, \"unterminated)\n}\n", "t.db:2:15:", "unterminated string");
    parse_fails("record(ai, \"A\") {\n  field(DESC, \"x\")\n", "t.db:3:1:", "missing '}'");
    parse_fails("record(ai, \"A\") {\n  field(DESC \"x\")\n}", "t.db:2:14:", "expected ','");
    parse_fails("record(ai \"A\")", "t.db:1:11:", "expected ','");
    parse_fails("\nrecord(ai, \"$(P)x\")\n", "t.db:2:", "undefined macro $(P)");
    parse_fails("\n\nrecrod(ai, \"A\")\n", "t.db:3:", "unknown keyword \"recrod\"");
    parse_fails("record(ai, \"A\") { feld(DESC, x) }", "t.db:1:", "unknown item \"feld\"");
    parse_fails("include \"no-such-file.db\"", "t.db:1:", "not found");
    parse_fails("\ninclude \"/dev/null\"", "t.db:2:", "/dev/null: not a regular file");
    parse_fails("record(ai, \"A\") { field(DESC, ) }", "t.db:1:31:", "expected a field value");
    parse_fails("\"stray\"", "t.db:1:1:", "expected record");
}

static const char *instance_value(const dbload_instance *in, const char *name)
{
    return macsub_lookup(in->macros, name);
}

static void substitution_files(void **state)
{
    (void)state;
    macsub_table *parent = macsub_create(NULL, 0);
    macsub_define(parent, "TOP", "/top");
    dbload_substitutions tpl;
    const char *text =
        "# substitutions\n"
        "global { SYS=BL }\n"
        "file \"motor.db\" {\n"
        "  pattern { P, M }\n"
        "          { \"$(SYS):\", m1 }\n"
        "          { \"$(SYS):\", \"m 2\" }\n"
        "}\n"
        "global { SYS=XX }\n"
        "file $(TOP)/cam.db { { P=\"c:\", R=image } {P=d:} }\n";
    if (dbload_parse_template_text(&tpl, text, "t.substitutions", parent, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(tpl.ninstances, 4);
    assert_string_equal(tpl.instances[0].dbfile, "motor.db");
    assert_int_equal(tpl.instances[0].line, 5);
    assert_string_equal(instance_value(&tpl.instances[0], "M"), "m1");
    assert_string_equal(instance_value(&tpl.instances[1], "M"), "m 2");
    char *p = macsub_expand(tpl.instances[0].macros, "$(P)$(M)", err, sizeof err);
    assert_string_equal(p, "BL:m1");
    free(p);
    assert_string_equal(tpl.instances[2].dbfile, "$(TOP)/cam.db");
    assert_string_equal(instance_value(&tpl.instances[2], "R"), "image");
    assert_string_equal(instance_value(&tpl.instances[2], "SYS"), "XX");   /* globals in force at that point */
    assert_string_equal(instance_value(&tpl.instances[3], "P"), "d:");
    assert_null(instance_value(&tpl.instances[3], "R"));
    assert_string_equal(instance_value(&tpl.instances[3], "TOP"), "/top");   /* from the parent */
    dbload_template_free(&tpl);

    assert_int_equal(dbload_parse_template_text(&tpl, "file x.db {\n pattern {A,B}\n {1}\n}", "t.substitutions",
                                                parent, err, sizeof err), -1);
    assert_non_null(strstr(err, "t.substitutions:3: pattern row has 1 values for 2 macro names"));
    dbload_template_free(&tpl);
    assert_int_equal(dbload_parse_template_text(&tpl, "file x.db {\n { A=1 \n", "t.substitutions", parent, err,
                                                sizeof err), -1);
    assert_non_null(strstr(err, "t.substitutions:3:"));
    dbload_template_free(&tpl);
    assert_int_equal(dbload_parse_template_text(&tpl, "\nfiles x.db { }", "t.substitutions", parent, err,
                                                sizeof err), -1);
    assert_non_null(strstr(err, "t.substitutions:2:1: expected file or global"));
    dbload_template_free(&tpl);
    macsub_free(parent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(records_fields_infos_aliases),
        cmocka_unit_test(string_escapes),
        cmocka_unit_test(macros_are_expanded),
        cmocka_unit_test(includes_relative_and_search_path),
        cmocka_unit_test(broken_input_names_file_and_line),
        cmocka_unit_test(substitution_files),
    };
    return cmocka_run_group_tests(tests, unit_scratch_setup, unit_scratch_teardown);
}
