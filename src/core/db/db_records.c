/* db_records.c -- the record table: creating records, names and aliases, info items, setting fields from
 * text at load time, and walking records in name order.
 *
 * The table (hash of names and aliases, array of records) is built on the loading thread before
 * iocInit and never changes while the database runs, so lookups need no lock. Record contents are
 * guarded by the database lock (db_lock.c).
 */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct db_info {
    char *key, *value;
    struct db_info *next;
};

typedef struct name_entry {
    char *name;                 /* record name or alias (owned) */
    db_record *rec;
    struct name_entry *next;
} name_entry;

static name_entry **buckets;
static size_t nbuckets, nnames;
static db_record **recs;
static size_t nrecs, recs_cap;
static int recs_sorted = 1;

static size_t hash_name(const char *s)
{
    size_t h = 5381;
    while (*s) h = h * 33 + (unsigned char)*s++;
    return h;
}

static void hash_grow(void)
{
    size_t n = nbuckets ? nbuckets * 2 : 256;
    name_entry **b = xcalloc(n, sizeof *b);
    for (size_t i = 0; i < nbuckets; i++) {
        name_entry *e = buckets[i];
        while (e) {
            name_entry *next = e->next;
            size_t h = hash_name(e->name) % n;
            e->next = b[h];
            b[h] = e;
            e = next;
        }
    }
    free(buckets);
    buckets = b;
    nbuckets = n;
}

static name_entry *hash_lookup(const char *name)
{
    if (!nbuckets) return NULL;
    for (name_entry *e = buckets[hash_name(name) % nbuckets]; e; e = e->next)
        if (strcmp(e->name, name) == 0) return e;
    return NULL;
}

static void hash_insert(const char *name, db_record *rec)
{
    if (nnames + 1 > nbuckets) hash_grow();
    name_entry *e = xmalloc(sizeof *e);
    e->name = xstrdup(name);
    e->rec = rec;
    size_t h = hash_name(name) % nbuckets;
    e->next = buckets[h];
    buckets[h] = e;
    nnames++;
}

db_record *records_find(const char *name)
{
    name_entry *e = hash_lookup(name);
    return e ? e->rec : NULL;
}

db_record *db_find_record(const char *name)
{
    return name ? records_find(name) : NULL;
}

static int compare_records(const void *a, const void *b)
{
    return strcmp((*(db_record *const *)a)->name, (*(db_record *const *)b)->name);
}

size_t records_count(void)
{
    return nrecs;
}

db_record *records_at(size_t index)
{
    if (!recs_sorted) {
        qsort(recs, nrecs, sizeof *recs, compare_records);
        recs_sorted = 1;
    }
    return index < nrecs ? recs[index] : NULL;
}

int db_foreach_record(int (*fn)(db_record *rec, void *user), void *user)
{
    for (size_t i = 0; i < nrecs; i++) {
        int r = fn(records_at(i), user);
        if (r) return r;
    }
    return 0;
}

/* Record and alias names: what EPICS accepts, minus the characters that would break "REC.FIELD". */
static int valid_name(const char *name, char *err, size_t errlen)
{
    size_t len = strlen(name);
    if (len == 0 || len >= DB_NAME_SIZE) {
        snprintf(err, errlen, "record name '%s' must have 1 to %d characters", name, DB_NAME_SIZE - 1);
        return 0;
    }
    for (const char *p = name; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == '.' || *p == '"' || *p == '\'' || *p == '$' || *p == '\\') {
            snprintf(err, errlen, "record name '%s' contains the invalid character '%c'", name,
                     (unsigned char)*p <= ' ' ? ' ' : *p);
            return 0;
        }
    }
    return 1;
}

static int set_initial_values(db_record *rec, char *err, size_t errlen)
{
    size_t n = db_field_count(rec->rtype);
    for (size_t i = 0; i < n; i++) {
        const db_field_desc *f = db_field_at(rec->rtype, i);
        if (!f->initial) continue;
        db_addr addr;
        db_addr_for_field(rec, f, 0, &addr);
        if (db_put_text_locked(&addr, f->initial, err, errlen) != DB_OK) return DB_ERR_SYNTAX;
    }
    return DB_OK;
}

db_record *db_create_record(const char *type_name, const char *name, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    if (db_is_running() || db_is_initializing()) {
        snprintf(err, errlen, "cannot create record '%s' after iocInit", name);
        return NULL;
    }
    const db_record_type *type = db_find_record_type(type_name);
    if (!type) {
        snprintf(err, errlen, "unknown record type '%s' for record '%s'", type_name, name);
        return NULL;
    }
    if (!valid_name(name, err, errlen)) return NULL;
    db_record *old = records_find(name);
    if (old) {
        if (old->rtype == type) return old;
        snprintf(err, errlen, "record '%s' already exists with type '%s', not '%s'", name, old->rtype->name,
                 type_name);
        return NULL;
    }
    db_record *rec = xcalloc(1, type->size);
    str_copy(rec->name, name, sizeof rec->name);
    rec->rtype = type;
    rec->udf = 1;
    rec->stat = STAT_UDF;
    rec->sevr = INVALID_ALARM;
    if (set_initial_values(rec, err, errlen) != DB_OK) {
        free(rec);
        return NULL;
    }
    hash_insert(name, rec);
    if (nrecs == recs_cap) {
        recs_cap = recs_cap ? 2 * recs_cap : 64;
        recs = xrealloc(recs, recs_cap * sizeof *recs);
    }
    recs[nrecs++] = rec;
    recs_sorted = 0;
    return rec;
}

int db_add_alias(db_record *rec, const char *alias, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    if (db_is_running() || db_is_initializing()) {
        snprintf(err, errlen, "cannot add alias '%s' after iocInit", alias);
        return DB_ERR_STATE;
    }
    if (!valid_name(alias, err, errlen)) return DB_ERR_SYNTAX;
    db_record *old = records_find(alias);
    if (old == rec) return DB_OK;
    if (old) {
        snprintf(err, errlen, "alias '%s' for '%s': the name is already used by record '%s'", alias, rec->name,
                 old->name);
        return DB_ERR_SYNTAX;
    }
    hash_insert(alias, rec);
    return DB_OK;
}

int db_add_info(db_record *rec, const char *key, const char *value)
{
    for (struct db_info *i = rec->info; i; i = i->next) {
        if (strcmp(i->key, key) == 0) {
            free(i->value);
            i->value = xstrdup(value);
            return DB_OK;
        }
    }
    struct db_info *i = xmalloc(sizeof *i);
    i->key = xstrdup(key);
    i->value = xstrdup(value);
    i->next = NULL;
    struct db_info **tail = &rec->info;    /* keep file order for dbpr and autosave */
    while (*tail) tail = &(*tail)->next;
    *tail = i;
    return DB_OK;
}

const char *db_get_info(const db_record *rec, const char *key)
{
    for (const struct db_info *i = rec->info; i; i = i->next)
        if (strcmp(i->key, key) == 0) return i->value;
    return NULL;
}

int db_set_field_text(db_record *rec, const char *field, const char *value, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    const db_field_desc *f = db_find_field(rec, field);
    if (!f) {
        snprintf(err, errlen, "record '%s' (type %s) has no field '%s'", rec->name, rec->rtype->name, field);
        return DB_ERR_NOT_FOUND;
    }
    if (f == db_rtyp_field || f->type == DBF_NOACCESS || strcmp(f->name, "NAME") == 0) {
        snprintf(err, errlen, "field %s.%s cannot be set", rec->name, field);
        return DB_ERR_READ_ONLY;
    }
    db_addr addr;
    db_addr_for_field(rec, f, 0, &addr);
    int running = db_is_running();
    if (running) db_lock();
    int status = db_put_text_locked(&addr, value, err, errlen);
    if (running) db_unlock();
    return status;
}

static void free_record(db_record *rec)
{
    size_t n = db_field_count(rec->rtype);
    for (size_t i = 0; i < n; i++) {
        const db_field_desc *f = db_field_at(rec->rtype, i);
        if (f->type == DBF_INLINK || f->type == DBF_OUTLINK || f->type == DBF_FWDLINK)
            db_link_release(db_field_ptr(rec, f));
    }
    if (rec->rtype->free_record) rec->rtype->free_record(rec);
    db_monitors_free(rec);
    struct db_info *i = rec->info;
    while (i) {
        struct db_info *next = i->next;
        free(i->key);
        free(i->value);
        free(i);
        i = next;
    }
    free(rec);
}

void records_clear(void)
{
    /* CP links unsubscribe from their targets first, while every record is still allocated. */
    for (size_t i = 0; i < nrecs; i++) db_cp_links_free(recs[i]);
    for (size_t i = 0; i < nrecs; i++) free_record(recs[i]);
    free(recs);
    recs = NULL;
    nrecs = recs_cap = 0;
    recs_sorted = 1;
    for (size_t i = 0; i < nbuckets; i++) {
        name_entry *e = buckets[i];
        while (e) {
            name_entry *next = e->next;
            free(e->name);
            free(e);
            e = next;
        }
    }
    free(buckets);
    buckets = NULL;
    nbuckets = nnames = 0;
}
