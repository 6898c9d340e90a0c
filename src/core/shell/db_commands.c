/* db_commands.c -- the operator's diagnostics on the record database: dbl (list records), dbpr (print a
 * record's fields), dbgf (get a field), dbpf (put a field, processing as a client put does), dbcar (links to
 * other IOCs).
 * Output goes to stdout, as in the EPICS iocsh. Shell thread only (see shell.c). */
#include "core/shell/shell.h"
#include "core/shell/shell_internal.h"
#include "core/base/base.h"
#include "core/db/db.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#define FIELD_TEXT_SIZE 1024

typedef struct list_filter {
    const char *type;      /* NULL or "*": every type */
    const char *pattern;   /* NULL: every name; else an fnmatch() glob */
} list_filter;

static int list_record(db_record *rec, void *user)
{
    const list_filter *f = user;
    if (f->type && strcmp(f->type, "*") && strcmp(f->type, rec->rtype->name)) return 0;
    if (f->pattern && fnmatch(f->pattern, rec->name, 0)) return 0;
    printf("%s\n", rec->name);
    return 0;
}

static int cmd_dbl(int argc, char **argv, char *err, size_t errlen)
{
    list_filter f = {argc > 1 && argv[1][0] ? argv[1] : NULL, argc > 2 ? argv[2] : NULL};
    if (f.type && strcmp(f.type, "*") && !db_find_record_type(f.type)) {
        snprintf(err, errlen, "dbl: unknown record type \"%s\"", f.type);
        return -1;
    }
    db_foreach_record(list_record, &f);
    return 0;
}

/* Reads channel "REC.FIELD" as text into out; returns 0 or -1 with err. */
static int channel_text(const char *channel, char *out, size_t outlen, char *err, size_t errlen)
{
    db_addr addr;
    int rc = db_name_to_addr(channel, &addr);
    if (rc == DB_OK) rc = db_get_text(&addr, out, outlen);
    if (rc == DB_OK) return 0;
    snprintf(err, errlen, "%s: %s", channel, db_strerror(rc));
    return -1;
}

static int cmd_dbgf(int argc, char **argv, char *err, size_t errlen)
{
    char value[FIELD_TEXT_SIZE];
    if (channel_text(argv[1], value, sizeof value, err, errlen) < 0) return -1;
    printf("%s: %s\n", argv[1], value);
    return 0;
}

static int cmd_dbpf(int argc, char **argv, char *err, size_t errlen)
{
    db_addr addr;
    int rc = db_name_to_addr(argv[1], &addr);
    if (rc == DB_OK) rc = db_put_text(&addr, argv[2]);
    if (rc != DB_OK) {
        snprintf(err, errlen, "dbpf %s \"%s\": %s", argv[1], argv[2], db_strerror(rc));
        return -1;
    }
    return cmd_dbgf(2, argv, err, errlen);
}

/* Fields dbpr shows at level 0: what an operator checks first. */
static const char *const summary_fields[] = {"NAME", "DESC", "VAL", "STAT", "SEVR", "SCAN", "DTYP", "UDF"};

static void print_field(const db_record *rec, const char *field)
{
    char channel[DB_NAME_SIZE + 8], value[FIELD_TEXT_SIZE], err[256];
    snprintf(channel, sizeof channel, "%s.%s", rec->name, field);
    if (channel_text(channel, value, sizeof value, err, sizeof err) == 0) printf("  %-4s: %s\n", field, value);
}

static int cmd_dbpr(int argc, char **argv, char *err, size_t errlen)
{
    long level = 0;
    if (argc > 2 && shell_arg_long(argv[2], "dbpr level", &level, err, errlen) < 0) return -1;
    const db_record *rec = db_find_record(argv[1]);
    if (!rec) {
        snprintf(err, errlen, "dbpr: no record \"%s\"", argv[1]);
        return -1;
    }
    printf("%s (%s)\n", rec->name, rec->rtype->name);
    if (level <= 0) {
        for (size_t i = 0; i < sizeof summary_fields / sizeof *summary_fields; i++)
            if (db_find_field(rec, summary_fields[i])) print_field(rec, summary_fields[i]);
        return 0;
    }
    size_t n = db_field_count(rec->rtype);
    for (size_t i = 0; i < n; i++) {
        const db_field_desc *f = db_field_at(rec->rtype, i);
        if (f->type != DBF_NOACCESS) print_field(rec, f->name);
    }
    return 0;
}

static int cmd_dbcar(int argc, char **argv, char *err, size_t errlen)
{
    long level = 0;
    if (argc > 2 && shell_arg_long(argv[2], "dbcar level", &level, err, errlen) < 0) return -1;
    db_ca_report(stdout, argc > 1 ? argv[1] : "", (int)level);
    fflush(stdout);
    return 0;
}

void shell_register_db_commands(void)
{
    shell_register("dbl", "dbl [RECORD_TYPE|\"*\"] [NAME_PATTERN]  list records", 0, 2, cmd_dbl);
    shell_register("dbpr", "dbpr RECORD [LEVEL]  print fields (level 0: summary, 1: all)", 1, 2, cmd_dbpr);
    shell_register("dbgf", "dbgf RECORD[.FIELD]  get a field", 1, 1, cmd_dbgf);
    shell_register("dbpf", "dbpf RECORD[.FIELD] VALUE  put a field (processes as a client put)", 2, 2, cmd_dbpf);
    shell_register("dbcar", "dbcar [RECORD|\"*\"] [LEVEL]  report links to other IOCs (Channel Access)", 0, 2,
                   cmd_dbcar);
}
