/* db_lifecycle.c -- the database's lifecycle: iocInit (links, init_record passes, device support, scan threads,
 * PINI), shutdown in three steps (drivers stop, processing stops, records are freed) and the hooks drivers
 * register for each step. Runs on the start-up thread; see db_lock.c for the lock it takes. */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int running, initializing;

typedef struct hook {
    db_hook_fn fn;
    void *user;
} hook;

typedef struct hook_list {
    hook *items;
    size_t count, cap;
} hook_list;

static hook_list init_hooks, shutdown_hooks, exit_hooks;   /* start-up thread only */

int db_is_running(void)
{
    return atomic_load(&running);
}

int db_is_initializing(void)
{
    return atomic_load(&initializing);
}

static void hook_add(hook_list *l, db_hook_fn fn, void *user)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->items = xrealloc(l->items, l->cap * sizeof *l->items);
    }
    l->items[l->count++] = (hook){fn, user};
}

static void hook_run(const hook_list *l)
{
    for (size_t i = 0; i < l->count; i++) l->items[i].fn(l->items[i].user);
}

static void hook_clear(hook_list *l)
{
    free(l->items);
    memset(l, 0, sizeof *l);
}

void db_at_init(db_hook_fn fn, void *user) { hook_add(&init_hooks, fn, user); }
void db_at_shutdown(db_hook_fn fn, void *user) { hook_add(&shutdown_hooks, fn, user); }
void db_at_exit(db_hook_fn fn, void *user) { hook_add(&exit_hooks, fn, user); }

/* Collects init errors: every one is logged, the first is returned to the caller. */
typedef struct init_errors {
    char *err;
    size_t errlen;
    int count;
} init_errors;

static void init_error(init_errors *e, const char *msg)
{
    log_error("db", "iocInit: %s", msg);
    if (e->count++ == 0 && e->err) str_copy(e->err, msg, e->errlen);
}

static void resolve_links(db_record *rec, init_errors *e)
{
    size_t n = db_field_count(rec->rtype);
    for (size_t i = 0; i < n; i++) {
        const db_field_desc *f = db_field_at(rec->rtype, i);
        if (f->type != DBF_INLINK && f->type != DBF_OUTLINK && f->type != DBF_FWDLINK) continue;
        char msg[512];
        if (db_link_resolve(rec, f, db_field_ptr(rec, f), msg, sizeof msg) != DB_OK) init_error(e, msg);
    }
}

static int has_io_link(const db_record *rec)
{
    return db_find_field(rec, "INP") || db_find_field(rec, "OUT");
}

static const char *io_link_text(const db_record *rec)
{
    const db_field_desc *f = db_find_field(rec, "INP");
    if (!f) f = db_find_field(rec, "OUT");
    return f ? ((const db_link *)db_field_ptr(rec, f))->text : "";
}

static void attach_device_support(db_record *rec, init_errors *e)
{
    char msg[512];
    const char *dtyp = rec->dtyp[0] ? rec->dtyp : "Soft Channel";
    if (!rec->dtyp[0] && !has_io_link(rec)) return;
    rec->dset = db_find_dset(dtyp, rec->rtype->name);
    if (!rec->dset) {
        snprintf(msg, sizeof msg, "record '%s': no device support '%s' for record type %s", rec->name, dtyp,
                 rec->rtype->name);
        init_error(e, msg);
        return;
    }
    if (rec->dset->init_record && rec->dset->init_record(rec) != 0) {
        rec->stat = STAT_SOFT;
        rec->sevr = INVALID_ALARM;
        snprintf(msg, sizeof msg, "record '%s': device support '%s' cannot use INP/OUT '%s'", rec->name, dtyp,
                 io_link_text(rec));
        init_error(e, msg);
    }
}

/* Why the record being initialised failed, from its record support (db_init_failure). */
static char init_failure[512];

void db_init_failure(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(init_failure, sizeof init_failure, fmt, ap);
    va_end(ap);
}

static void init_pass(int pass, init_errors *e)
{
    for (size_t i = 0; i < records_count(); i++) {
        db_record *rec = records_at(i);
        init_failure[0] = 0;
        if (!rec->rtype->init_record || rec->rtype->init_record(rec, pass) == 0) continue;
        char msg[640];
        if (init_failure[0]) snprintf(msg, sizeof msg, "record '%s': %s", rec->name, init_failure);
        else snprintf(msg, sizeof msg, "record '%s' (%s) failed to initialise", rec->name, rec->rtype->name);
        init_error(e, msg);
    }
}

static void process_pini(void)
{
    size_t n = 0, total = records_count();
    db_record **pini = xmalloc((total ? total : 1) * sizeof *pini);
    for (size_t i = 0; i < total; i++)
        if (records_at(i)->pini == 1) pini[n++] = records_at(i);
    qsort(pini, n, sizeof *pini, db_compare_phase);
    for (size_t i = 0; i < n; i++) db_process(pini[i]);
    free(pini);
}

int db_init(char *err, size_t errlen)
{
    init_errors e = {err, errlen, 0};
    if (err && errlen) err[0] = 0;
    if (db_is_running() || db_is_initializing()) {
        init_error(&e, "the database is already initialised");
        return DB_ERR_STATE;
    }
    atomic_store(&initializing, 1);
    db_lock();
    for (size_t i = 0; i < records_count(); i++) resolve_links(records_at(i), &e);
    if (!e.count) init_pass(0, &e);
    if (!e.count)
        for (size_t i = 0; i < records_count(); i++) attach_device_support(records_at(i), &e);
    if (!e.count) init_pass(1, &e);
    for (size_t i = 0; !e.count && i < records_count(); i++) db_cp_links_start(records_at(i));
    char msg[512];
    if (!e.count && db_scan_init(msg, sizeof msg) != DB_OK) init_error(&e, msg);
    if (!e.count) {
        atomic_store(&running, 1);
        process_pini();
    }
    atomic_store(&initializing, 0);
    db_unlock();
    if (e.count) return DB_ERR_FAILED;
    hook_run(&init_hooks);
    log_info("db", "iocInit: %zu records running", records_count());
    return DB_OK;
}

void db_shutdown(void)
{
    if (db_is_running()) {
        hook_run(&shutdown_hooks);
        db_ca_channels_stop();
        db_scan_stop();
        db_lock();
        atomic_store(&running, 0);
        db_notify_fail_all();
        db_unlock();
        hook_run(&exit_hooks);
    }
    db_ca_channels_stop();          /* (done already when iocInit had completed) */
    db_lock();
    db_notify_clear();
    db_scan_clear();
    records_clear();
    db_ca_context_end();
    registry_clear();
    db_unlock();
    hook_clear(&init_hooks);
    hook_clear(&shutdown_hooks);
    hook_clear(&exit_hooks);
}
