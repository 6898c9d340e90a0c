/* db_registry.c -- registered record types, menus and device support, and the db_common field table.
 *
 * Registration happens on the start-up thread before iocInit (db_register_builtins, driver modules,
 * st.cmd), so the tables need no lock; they are frozen from db_init until db_shutdown clears them.
 */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <stdlib.h>
#include <string.h>

#define C(NAME, TYPE, MEMBER, FLAGS) DB_FIELD(db_common, NAME, TYPE, MEMBER, FLAGS)

const db_field_desc db_common_fields[] = {
    C("NAME", DBF_STRING, name, DBFLD_READONLY | DBFLD_NOSAVE),
    C("DESC", DBF_STRING, desc, 0),
    C("ASG", DBF_STRING, asg, 0),
    DB_MENU_FIELD(db_common, "SCAN", scan, DBFLD_SPECIAL, menuScan, NULL),
    DB_MENU_FIELD(db_common, "PINI", pini, 0, menuPini, NULL),
    C("PHAS", DBF_SHORT, phas, DBFLD_SPECIAL),
    C("EVNT", DBF_SHORT, evnt, DBFLD_SPECIAL),
    DB_MENU_FIELD(db_common, "PRIO", prio, 0, menuPriority, NULL),
    DB_FIELD_INIT(db_common, "DISV", DBF_SHORT, disv, 0, "1"),
    C("DISA", DBF_SHORT, disa, 0),
    C("SDIS", DBF_INLINK, sdis, 0),
    DB_MENU_FIELD(db_common, "DISS", diss, 0, menuAlarmSevr, NULL),
    C("DISP", DBF_UCHAR, disp, 0),
    C("PROC", DBF_UCHAR, proc, DBFLD_NOSAVE),
    C("PACT", DBF_UCHAR, pact, DBFLD_READONLY | DBFLD_NOSAVE),
    C("UDF", DBF_UCHAR, udf, DBFLD_PROCESS | DBFLD_NOSAVE),
    DB_MENU_FIELD(db_common, "UDFS", udfs, 0, menuAlarmSevr, "INVALID"),
    DB_MENU_FIELD(db_common, "STAT", stat, DBFLD_READONLY | DBFLD_NOSAVE, menuAlarmStat, NULL),
    DB_MENU_FIELD(db_common, "SEVR", sevr, DBFLD_READONLY | DBFLD_NOSAVE, menuAlarmSevr, NULL),
    DB_MENU_FIELD(db_common, "NSTA", nsta, DBFLD_READONLY | DBFLD_NOSAVE, menuAlarmStat, NULL),
    DB_MENU_FIELD(db_common, "NSEV", nsev, DBFLD_READONLY | DBFLD_NOSAVE, menuAlarmSevr, NULL),
    DB_MENU_FIELD(db_common, "ACKS", acks, DBFLD_NOSAVE, menuAlarmSevr, NULL),
    DB_MENU_FIELD(db_common, "ACKT", ackt, 0, menuYesNo, "YES"),
    C("TPRO", DBF_UCHAR, tpro, 0),
    C("PUTF", DBF_UCHAR, putf, DBFLD_READONLY | DBFLD_NOSAVE),
    C("RPRO", DBF_UCHAR, rpro, DBFLD_READONLY | DBFLD_NOSAVE),
    C("TSE", DBF_SHORT, tse, 0),
    C("TIME", DBF_NOACCESS, time, DBFLD_READONLY | DBFLD_NOSAVE),
    C("DTYP", DBF_STRING, dtyp, DBFLD_READONLY),
    C("FLNK", DBF_FWDLINK, flnk, 0),
    {"RTYP", DBF_STRING, 0, DB_STRING_SIZE, DBFLD_READONLY | DBFLD_NOSAVE, NULL, NULL},
};
const size_t db_common_nfields = sizeof db_common_fields / sizeof db_common_fields[0];
const db_field_desc *const db_rtyp_field = &db_common_fields[sizeof db_common_fields / sizeof db_common_fields[0] - 1];

/* Growable arrays of pointers to registered (caller-owned, static) descriptions. */
typedef struct ptr_table {
    const void **items;
    size_t count, cap;
} ptr_table;

static ptr_table record_types, menus, dsets;

/* Each registered record type's fields (db_common's and its own) sorted by name, so that a field is found
 * by binary search: record processing and device support look fields up by name on every pass.
 * field_index[i] belongs to record_types.items[i]. Written at registration (start-up thread), read-only
 * afterwards. */
typedef struct field_index {
    const db_field_desc **sorted;
    size_t n;
} field_index;
static field_index *field_indexes;

static int compare_field_names(const void *a, const void *b)
{
    return strcmp((*(const db_field_desc *const *)a)->name, (*(const db_field_desc *const *)b)->name);
}

static void index_fields(size_t slot, const db_record_type *type)
{
    field_indexes = xrealloc(field_indexes, record_types.cap * sizeof *field_indexes);
    field_index *ix = &field_indexes[slot];
    ix->n = db_field_count(type);
    ix->sorted = xmalloc(ix->n * sizeof *ix->sorted);
    for (size_t i = 0; i < ix->n; i++) ix->sorted[i] = db_field_at(type, i);
    qsort(ix->sorted, ix->n, sizeof *ix->sorted, compare_field_names);
}

static void table_add(ptr_table *t, const void *item)
{
    if (t->count == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->items = xrealloc(t->items, t->cap * sizeof *t->items);
    }
    t->items[t->count++] = item;
}

static void table_free(ptr_table *t)
{
    free(t->items);
    memset(t, 0, sizeof *t);
}

void registry_clear(void)
{
    for (size_t i = 0; i < record_types.count; i++) free(field_indexes[i].sorted);
    free(field_indexes);
    field_indexes = NULL;
    table_free(&record_types);
    table_free(&menus);
    table_free(&dsets);
}

/* Record types and menus both start with their name, which is what lookups compare. */
static const void *table_find(const ptr_table *t, const char *name)
{
    for (size_t i = 0; i < t->count; i++)
        if (strcmp(*(const char *const *)t->items[i], name) == 0) return t->items[i];
    return NULL;
}

/* Registering the same description twice is harmless; another one under a taken name is refused. */
static int table_register(ptr_table *t, const void *item, const char *name)
{
    const void *old = table_find(t, name);
    if (old) return old == item ? DB_OK : DB_ERR_STATE;
    table_add(t, item);
    return DB_OK;
}

const db_record_type *db_find_record_type(const char *name)
{
    return table_find(&record_types, name);
}

int db_register_record_type(const db_record_type *type)
{
    size_t before = record_types.count;
    int status = table_register(&record_types, type, type->name);
    if (record_types.count > before) index_fields(before, type);
    return status;
}

int db_register_menu(const db_menu *menu)
{
    return table_register(&menus, menu, menu->name);
}

/* A dset for a specific record type wins over a generic one (record_type NULL) of the same name. */
const db_dset *db_find_dset(const char *dtyp, const char *rtype)
{
    const db_dset *generic = NULL;
    for (size_t i = 0; i < dsets.count; i++) {
        const db_dset *d = dsets.items[i];
        if (strcmp(d->name, dtyp) != 0) continue;
        if (!d->record_type) generic = d;
        else if (strcmp(d->record_type, rtype) == 0) return d;
    }
    return generic;
}

int db_register_dset(const db_dset *dset)
{
    for (size_t i = 0; i < dsets.count; i++) {
        const db_dset *d = dsets.items[i];
        int same_type = (!d->record_type && !dset->record_type) ||
                        (d->record_type && dset->record_type && strcmp(d->record_type, dset->record_type) == 0);
        if (strcmp(d->name, dset->name) == 0 && same_type) return d == dset ? DB_OK : DB_ERR_STATE;
    }
    table_add(&dsets, dset);
    return DB_OK;
}

size_t db_field_count(const db_record_type *type)
{
    return db_common_nfields + type->nfields;
}

const db_field_desc *db_field_at(const db_record_type *type, size_t index)
{
    if (index < db_common_nfields) return &db_common_fields[index];
    index -= db_common_nfields;
    return index < type->nfields ? &type->fields[index] : NULL;
}

const db_field_desc *db_find_field(const db_record *rec, const char *field)
{
    for (size_t t = 0; t < record_types.count; t++) {
        if (record_types.items[t] != rec->rtype) continue;
        const field_index *ix = &field_indexes[t];
        size_t lo = 0, hi = ix->n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            int c = strcmp(ix->sorted[mid]->name, field);
            if (c == 0) return ix->sorted[mid];
            if (c < 0) lo = mid + 1;
            else hi = mid;
        }
        return NULL;
    }
    return NULL;
}

void *db_field_ptr(const db_record *rec, const db_field_desc *field)
{
    if (field == db_rtyp_field) return (void *)rec->rtype->name;
    return (char *)rec + field->offset;
}

void db_register_builtins(void)
{
    const db_menu *builtin_menus[] = {&menuScan, &menuPini, &menuPriority, &menuAlarmSevr, &menuAlarmStat,
                                      &menuYesNo, &menuOmsl, &menuFtype, &menuIvoa};
    for (size_t i = 0; i < sizeof builtin_menus / sizeof builtin_menus[0]; i++) db_register_menu(builtin_menus[i]);
    rec_ai_register();
    rec_ao_register();
    rec_integer_register();
    rec_discrete_register();
    rec_calc_register();
    rec_fanout_register();
    rec_string_register();
    rec_array_register();
    dev_soft_register();
}

const char *db_strerror(int status)
{
    switch (status) {
    case DB_OK: return "success";
    case DB_ERR_NOT_FOUND: return "no such record or field";
    case DB_ERR_READ_ONLY: return "field is read-only";
    case DB_ERR_DISABLED: return "record is disabled for puts (DISP=1)";
    case DB_ERR_CONVERT: return "value cannot be converted";
    case DB_ERR_BAD_TYPE: return "type not valid for this field";
    case DB_ERR_BUSY: return "a put with completion is already in progress";
    case DB_ERR_FAILED: return "put or processing failed";
    case DB_ERR_SYNTAX: return "syntax error";
    case DB_ERR_STATE: return "not allowed in this phase";
    default: return "unknown error";
    }
}
