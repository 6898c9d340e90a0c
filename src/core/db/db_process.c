/* db_process.c -- record processing (DISA/SDIS, PACT, alarms, time stamps, FLNK, RPRO) and put with
 * completion (put-notify), which finishes only when every record its put started -- the target, records
 * reached through forward and PP links, asynchronous ones -- has finished processing.
 *
 * All state here (the notify queues, current_notify) is guarded by the database lock.
 */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <stdlib.h>
#include <string.h>

struct db_put_notify {
    db_addr addr;
    dbr_value_type type;
    void *data;                 /* copy of the client's value */
    long nelem;
    db_put_done_fn done;
    void *user;
    int pending;                /* records of this put still processing asynchronously */
    int cancelled;
    int active;                 /* started (else waiting for its record) */
    int failure;                /* DB_OK, or the first failure reported with db_notify_fail */
    struct db_put_notify *next; /* in the waiting or the active list */
};

static db_put_notify *waiting, *active;
/* The put-notify whose processing is on the stack: records going asynchronous now join it. */
static db_put_notify *current_notify;

static void list_remove(db_put_notify **list, db_put_notify *n)
{
    for (db_put_notify **p = list; *p; p = &(*p)->next) {
        if (*p == n) {
            *p = n->next;
            return;
        }
    }
}

static void list_append(db_put_notify **list, db_put_notify *n)
{
    n->next = NULL;
    while (*list) list = &(*list)->next;
    *list = n;
}

static void notify_free(db_put_notify *n)
{
    free(n->data);
    free(n);
}

static void start_waiting(void);

static void notify_finish(db_put_notify *n, int status)
{
    if (n->addr.rec->notify == n) n->addr.rec->notify = NULL;
    list_remove(&active, n);
    if (!n->cancelled) n->done(n->user, status);
    notify_free(n);
    start_waiting();
}

/* ---- Processing */

void db_alarm_raise(db_record *rec, uint16_t status, uint16_t severity)
{
    if (severity > rec->nsev) {
        rec->nsta = status;
        rec->nsev = severity;
    }
}

unsigned db_process_finish(db_record *rec)
{
    unsigned mask = 0;
    if (rec->stat != rec->nsta || rec->sevr != rec->nsev) {
        rec->stat = rec->nsta;
        rec->sevr = rec->nsev;
        db_post_events(rec, &rec->stat, DBE_VALUE);
        db_post_events(rec, &rec->sevr, DBE_VALUE);
        mask = DBE_ALARM;
    }
    rec->nsta = rec->nsev = 0;
    if (!rec->ackt || rec->sevr >= rec->acks) {    /* ACKT=NO: acknowledgement follows the severity */
        if (rec->acks != rec->sevr) {
            rec->acks = rec->sevr;
            db_post_events(rec, &rec->acks, DBE_VALUE);
        }
    }
    if (rec->tse != -2) rec->time = time_wall();
    rec->finished = 1;
    return mask;
}

static void process_disabled(db_record *rec)
{
    if (rec->stat == STAT_DISABLE && rec->sevr == rec->diss) return;
    rec->stat = STAT_DISABLE;
    rec->sevr = rec->diss;
    rec->nsta = rec->nsev = 0;
    db_post_events(rec, &rec->stat, DBE_VALUE);
    db_post_events(rec, &rec->sevr, DBE_VALUE);
    const db_field_desc *val = db_find_field(rec, "VAL");
    if (val) db_post_events(rec, db_field_ptr(rec, val), DBE_VALUE | DBE_ALARM);
}

void db_forward(const db_link *link)
{
    if (link->kind != LINK_DB || !link->target) return;
    db_record *target = link->target->rec;
    if (target->scan == DB_SCAN_PASSIVE || strcmp(link->target->field->name, "PROC") == 0) db_process(target);
}

/* Runs process() once; a record with PACT set is completing its asynchronous processing. */
static long run_record(db_record *rec)
{
    if (rec->busy) return 0;
    int completing = rec->pact;
    if (!completing) {
        if (rec->sdis.kind == LINK_DB) {
            db_span disa = {DBF_SHORT, &rec->disa, sizeof rec->disa, NULL};
            long one = 1;
            db_link_read(rec, &rec->sdis, &disa, &one);
        }
        if (rec->disa == rec->disv) {
            process_disabled(rec);
            rec->putf = 0;
            return 0;
        }
    }
    if (rec->tpro) log_info("db", "process %s%s", rec->name, completing ? " (completing)" : "");
    db_put_notify *outer = current_notify;
    if (completing && rec->notify) current_notify = rec->notify;
    rec->busy = 1;
    rec->finished = 0;
    long status = rec->rtype->process(rec);
    rec->busy = 0;
    if (rec->pact && !rec->finished) {           /* asynchronous: device support completes it later */
        if (!completing && current_notify && (!rec->notify || rec->notify == current_notify)) {
            rec->notify = current_notify;
            current_notify->pending++;
        }
        current_notify = outer;
        return status;
    }
    rec->pact = 1;                               /* forward-link loops stop at an active record */
    db_forward(&rec->flnk);
    rec->pact = 0;
    rec->putf = 0;
    db_post_events(rec, &rec->pact, DBE_VALUE);
    if (completing && rec->notify) {
        db_put_notify *n = rec->notify;
        if (n->addr.rec != rec) rec->notify = NULL;
        if (--n->pending == 0) notify_finish(n, n->failure);
    }
    current_notify = outer;
    if (rec->rpro) {
        rec->rpro = 0;
        db_request_process(rec);
    }
    if (completing) start_waiting();
    return status;
}

long db_process_for(db_record *rec, db_process_cause cause)
{
    if (rec->pact && cause == PROCESS_NOW) return 0;
    if (rec->pact && cause == PROCESS_PUT) {
        rec->rpro = 1;
        return 0;
    }
    if (cause == PROCESS_PUT) rec->putf = 1;
    return run_record(rec);
}

long db_process(db_record *rec)
{
    return db_process_for(rec, PROCESS_NOW);
}

/* ---- Put with completion */

/* Starts a put whose record is free; returns 1 when it already completed (n is freed). */
static int notify_run(db_put_notify *n)
{
    db_record *rec = n->addr.rec;
    n->active = 1;
    list_append(&active, n);
    rec->notify = n;
    db_span src = {dbr_storage_type(n->type), n->data, db_dbr_value_size(n->type), NULL};
    int status = db_client_put_check(&n->addr);
    if (status == DB_OK) status = db_put_span(&n->addr, &src, n->nelem);
    if (status != DB_OK) {
        notify_finish(n, status);
        return 1;
    }
    if (db_client_put_processes(&n->addr)) {
        db_put_notify *outer = current_notify;
        current_notify = n;
        db_process_for(rec, PROCESS_PUT);
        current_notify = outer;
    }
    if (n->pending == 0) {
        notify_finish(n, n->failure);
        return 1;
    }
    return 0;
}

void db_notify_fail(db_record *rec, int status)
{
    db_put_notify *n = rec->notify ? rec->notify : current_notify;
    if (n && n->failure == DB_OK) n->failure = status;
}

static void start_waiting(void)
{
    db_put_notify *n = waiting;
    while (n) {
        db_put_notify *next = n->next;
        if (!n->addr.rec->notify && !n->addr.rec->pact) {
            list_remove(&waiting, n);
            notify_run(n);
            next = waiting;       /* the list may have changed under us: rescan */
        }
        n = next;
    }
}

db_put_notify *db_put_notify_start(const db_addr *addr, dbr_value_type type, const void *buf, long nelem,
                                   db_put_done_fn done, void *user)
{
    if ((int)type < DBR_STRING || type > DBR_DOUBLE || nelem < 1) {
        db_lock();
        done(user, DB_ERR_BAD_TYPE);
        db_unlock();
        return NULL;
    }
    db_put_notify *n = xcalloc(1, sizeof *n);
    n->addr = *addr;
    n->type = type;
    n->nelem = nelem;
    n->data = xmalloc((size_t)nelem * db_dbr_value_size(type));
    memcpy(n->data, buf, (size_t)nelem * db_dbr_value_size(type));
    n->done = done;
    n->user = user;
    db_lock();
    db_put_notify *handle = n;
    if (!db_is_running()) {
        n->done(n->user, DB_ERR_STATE);
        notify_free(n);
        handle = NULL;
    } else if (addr->rec->notify || addr->rec->pact) {
        list_append(&waiting, n);
    } else if (notify_run(n)) {
        handle = NULL;
    }
    db_unlock();
    return handle;
}

int db_put_notify_cancel(db_put_done_fn done, void *user)
{
    for (db_put_notify *n = waiting; n; n = n->next)
        if (n->done == done && n->user == user) {
            list_remove(&waiting, n);      /* its put never happens */
            notify_free(n);
            return 1;
        }
    for (db_put_notify *n = active; n; n = n->next)
        if (n->done == done && n->user == user && !n->cancelled) {
            n->cancelled = 1;     /* freed when its asynchronous records finish; done is never called */
            return 1;
        }
    return 0;
}

static void detach_records(db_put_notify *n)
{
    for (size_t i = 0; i < records_count(); i++)
        if (records_at(i)->notify == n) records_at(i)->notify = NULL;
}

void db_notify_fail_all(void)
{
    while (waiting) {
        db_put_notify *n = waiting;
        waiting = n->next;
        n->done(n->user, DB_ERR_FAILED);
        notify_free(n);
    }
    while (active) {
        db_put_notify *n = active;
        active = n->next;
        detach_records(n);
        if (!n->cancelled) n->done(n->user, DB_ERR_FAILED);
        notify_free(n);
    }
}

void db_notify_clear(void)
{
    db_notify_fail_all();
    current_notify = NULL;
}
