/* load.c -- puts parsed databases into the record database: validation of a whole parse tree against the
 * registered record types, then creation of its records; dbLoadRecords and dbLoadTemplate (see dbload.h).
 * Runs on the st.cmd shell's thread during the load phase (before iocInit). */
#include "core/dbload/dbload.h"
#include "core/base/base.h"
#include "core/db/db.h"

#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail_at(char *err, size_t errlen, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail_at(char *err, size_t errlen, const char *file, int line, const char *fmt, ...)
{
    int n = snprintf(err, errlen, "%s:%d: ", file, line);
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Record and alias names: as EPICS, no blanks, quotes, '.' (field separator) or leftover '$'. */
static const char *bad_name(const char *name)
{
    if (!*name) return "is empty";
    if (strlen(name) >= DB_NAME_SIZE) return "is too long (at most 60 characters)";
    if (name[strcspn(name, " \t\n\"'.$")]) return "contains a blank, quote, '.' or '$'";
    return NULL;
}

static int field_known(const db_record_type *type, const char *field)
{
    size_t n = db_field_count(type);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(db_field_at(type, i)->name, field)) return 1;
    return 0;
}

static int by_name_then_order(const void *a, const void *b)
{
    const dbload_record *ra = *(const dbload_record *const *)a, *rb = *(const dbload_record *const *)b;
    int c = strcmp(ra->name, rb->name);
    return c ? c : (ra < rb ? -1 : ra > rb);
}

/* The record type a parsed record will have: its own, or for "*" an earlier definition in the tree (same
 * name, earlier in `group`) or in the database. */
static const db_record_type *resolve_type(const dbload_record *rec, const dbload_record *earlier_concrete,
                                          char *err, size_t errlen)
{
    const db_record *existing = db_find_record(rec->name);
    const db_record_type *type;
    if (strcmp(rec->type, "*")) {
        type = db_find_record_type(rec->type);
        if (!type) {
            fail_at(err, errlen, rec->file, rec->line, "unknown record type \"%s\" for record \"%s\"", rec->type,
                    rec->name);
            return NULL;
        }
    } else if (earlier_concrete) {
        type = db_find_record_type(earlier_concrete->type);
    } else if (existing) {
        type = existing->rtype;
    } else {
        fail_at(err, errlen, rec->file, rec->line, "record(\"*\", \"%s\") refers to a record not defined before",
                rec->name);
        return NULL;
    }
    const char *clash = existing && existing->rtype != type ? existing->rtype->name
                      : earlier_concrete && type && strcmp(earlier_concrete->type, type->name) ? earlier_concrete->type
                      : NULL;
    if (clash) {
        fail_at(err, errlen, rec->file, rec->line, "record \"%s\" already defined with type %s, not %s", rec->name,
                clash, type->name);
        return NULL;
    }
    return type;
}

static int validate_record(const dbload_record *rec, const db_record_type *type, char *err, size_t errlen)
{
    const char *why = bad_name(rec->name);
    if (why) return fail_at(err, errlen, rec->file, rec->line, "record name \"%s\" %s", rec->name, why);
    for (size_t i = 0; i < rec->nfields; i++) {
        const dbload_item *f = &rec->fields[i];
        if (!field_known(type, f->key))
            return fail_at(err, errlen, f->file, f->line, "record \"%s\": unknown field \"%s\" for record type %s",
                           rec->name, f->key, type->name);
    }
    for (size_t i = 0; i < rec->naliases; i++) {
        const dbload_item *a = &rec->aliases[i];
        if ((why = bad_name(a->value)))
            return fail_at(err, errlen, a->file, a->line, "alias name \"%s\" %s", a->value, why);
    }
    return 0;
}

/* Whether a record named `name` exists in the database or the tree. */
static int record_defined(const dbload_db *db, const char *name)
{
    if (db_find_record(name)) return 1;
    for (size_t i = 0; i < db->nrecords; i++) {
        if (!strcmp(db->records[i].name, name)) return 1;
        for (size_t j = 0; j < db->records[i].naliases; j++)
            if (!strcmp(db->records[i].aliases[j].value, name)) return 1;
    }
    return 0;
}

int dbload_validate(const dbload_db *db, char *err, size_t errlen)
{
    const dbload_record **sorted = xmalloc(db->nrecords * sizeof *sorted);
    for (size_t i = 0; i < db->nrecords; i++) sorted[i] = &db->records[i];
    qsort(sorted, db->nrecords, sizeof *sorted, by_name_then_order);
    int rc = 0;
    const dbload_record *concrete = NULL;   /* first record of the current name group with a real type */
    for (size_t i = 0; i < db->nrecords && rc == 0; i++) {
        const dbload_record *rec = sorted[i];
        if (i == 0 || strcmp(sorted[i - 1]->name, rec->name)) concrete = NULL;
        const db_record_type *type = resolve_type(rec, concrete, err, errlen);
        if (!type) rc = -1;
        else rc = validate_record(rec, type, err, errlen);
        if (!concrete && strcmp(rec->type, "*")) concrete = rec;
    }
    free(sorted);
    for (size_t i = 0; i < db->naliases && rc == 0; i++) {
        const dbload_item *a = &db->aliases[i];
        const char *why = bad_name(a->value);
        if (why) rc = fail_at(err, errlen, a->file, a->line, "alias name \"%s\" %s", a->value, why);
        else if (!record_defined(db, a->key))
            rc = fail_at(err, errlen, a->file, a->line, "alias(\"%s\", \"%s\"): no such record", a->key, a->value);
    }
    return rc;
}

static int apply_record(const dbload_record *rec, char *err, size_t errlen)
{
    char msg[256] = "";
    const char *type = strcmp(rec->type, "*") ? rec->type : db_find_record(rec->name)->rtype->name;
    db_record *r = db_create_record(type, rec->name, msg, sizeof msg);
    if (!r) return fail_at(err, errlen, rec->file, rec->line, "record \"%s\": %s", rec->name, msg);
    for (size_t i = 0; i < rec->nfields; i++) {
        const dbload_item *f = &rec->fields[i];
        if (db_set_field_text(r, f->key, f->value, msg, sizeof msg) != DB_OK)
            return fail_at(err, errlen, f->file, f->line, "record \"%s\" field %s = \"%s\": %s", rec->name, f->key,
                           f->value, msg);
    }
    for (size_t i = 0; i < rec->ninfos; i++) {
        const dbload_item *info = &rec->infos[i];
        if (db_add_info(r, info->key, info->value) != DB_OK)
            return fail_at(err, errlen, info->file, info->line, "record \"%s\": info(%s) refused", rec->name,
                           info->key);
    }
    for (size_t i = 0; i < rec->naliases; i++) {
        const dbload_item *a = &rec->aliases[i];
        if (db_add_alias(r, a->value, msg, sizeof msg) != DB_OK)
            return fail_at(err, errlen, a->file, a->line, "alias \"%s\": %s", a->value, msg);
    }
    return 0;
}

int dbload_apply(const dbload_db *db, char *err, size_t errlen)
{
    if (dbload_validate(db, err, errlen) < 0) return -1;
    for (size_t i = 0; i < db->nrecords; i++)
        if (apply_record(&db->records[i], err, errlen) < 0) return -1;
    for (size_t i = 0; i < db->naliases; i++) {
        const dbload_item *a = &db->aliases[i];
        char msg[256] = "";
        if (db_add_alias(db_find_record(a->key), a->value, msg, sizeof msg) != DB_OK)
            return fail_at(err, errlen, a->file, a->line, "alias \"%s\": %s", a->value, msg);
    }
    return 0;
}

/* Refuses loading once the IOC runs: records cannot be added to a running database. */
static int check_load_phase(const char *what, const char *path, char *err, size_t errlen)
{
    if (!db_is_running()) return 0;
    snprintf(err, errlen, "%s(\"%s\"): records can only be loaded before iocInit", what, path);
    return -1;
}

int dbload_records(const char *path, const char *defs, char *err, size_t errlen)
{
    if (check_load_phase("dbLoadRecords", path, err, errlen) < 0) return -1;
    macsub_table *macros = macsub_create(NULL, 1);
    dbload_db db = {0};
    int rc = macsub_parse_defs(macros, defs, err, errlen);
    if (rc == 0) rc = dbload_parse_file(&db, path, macros, err, errlen);
    if (rc == 0) rc = dbload_apply(&db, err, errlen);
    if (rc == 0) log_info("dbload", "%s: %zu records", path, db.nrecords);
    dbload_db_free(&db);
    macsub_free(macros);
    return rc;
}

/* Parses the .db file of one template instance into db (the file's name may itself contain macros). */
static int parse_instance(const dbload_instance *in, const char *tpl_dir, dbload_db *db, char *err, size_t errlen)
{
    char msg[256];
    char *name = macsub_expand(in->macros, in->dbfile, msg, sizeof msg);
    if (!name) return fail_at(err, errlen, in->file, in->line, "file name \"%s\": %s", in->dbfile, msg);
    char *path = dbload_find_file(name, tpl_dir);
    int rc = path ? dbload_parse_file(db, path, in->macros, err, errlen)
                  : fail_at(err, errlen, in->file, in->line, "database file \"%s\" not found", name);
    free(path);
    free(name);
    return rc;
}

int dbload_template(const char *path, const char *defs, char *err, size_t errlen)
{
    if (check_load_phase("dbLoadTemplate", path, err, errlen) < 0) return -1;
    macsub_table *macros = macsub_create(NULL, 1);
    dbload_substitutions tpl = {0};
    dbload_db db = {0};
    int rc = macsub_parse_defs(macros, defs, err, errlen);
    if (rc == 0) rc = dbload_parse_template(&tpl, path, macros, err, errlen);
    if (rc == 0) {
        char *dircopy = xstrdup(tpl.file);
        const char *dir = dirname(dircopy);
        for (size_t i = 0; i < tpl.ninstances && rc == 0; i++) rc = parse_instance(&tpl.instances[i], dir, &db, err, errlen);
        free(dircopy);
    }
    if (rc == 0) rc = dbload_apply(&db, err, errlen);
    if (rc == 0) log_info("dbload", "%s: %zu instances, %zu records", path, tpl.ninstances, db.nrecords);
    dbload_db_free(&db);
    dbload_template_free(&tpl);
    macsub_free(macros);
    return rc;
}
