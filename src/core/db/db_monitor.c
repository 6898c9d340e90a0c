/* db_monitor.c -- monitors: subscriptions on record fields and posting events to them.
 *
 * Each record owns a list of its subscriptions (rec->subs); lists change and are walked only with the
 * database lock held, and callbacks run with it held (see db.h).
 */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <stdlib.h>

struct db_subscription {
    db_addr addr;
    unsigned mask;
    db_event_fn fn;
    void *user;
    struct db_subscription *next;
};

struct db_subscription_list {
    db_subscription *head;
};

db_subscription *db_subscribe_locked(const db_addr *addr, unsigned mask, db_event_fn fn, void *user)
{
    db_record *rec = addr->rec;
    if (!rec->subs) rec->subs = xcalloc(1, sizeof *rec->subs);
    db_subscription *sub = xmalloc(sizeof *sub);
    sub->addr = *addr;
    sub->mask = mask;
    sub->fn = fn;
    sub->user = user;
    sub->next = NULL;
    db_subscription **tail = &rec->subs->head;    /* keep subscription order: first come, first told */
    while (*tail) tail = &(*tail)->next;
    *tail = sub;
    return sub;
}

void db_unsubscribe_locked(db_subscription *sub)
{
    db_record *rec = sub->addr.rec;
    for (db_subscription **p = rec->subs ? &rec->subs->head : NULL; p && *p; p = &(*p)->next) {
        if (*p == sub) {
            *p = sub->next;
            free(sub);
            return;
        }
    }
}

db_subscription *db_subscribe(const db_addr *addr, unsigned mask, db_event_fn fn, void *user)
{
    db_lock();
    db_subscription *sub = db_subscribe_locked(addr, mask, fn, user);
    db_unlock();
    return sub;
}

void db_unsubscribe(db_subscription *sub)
{
    if (!sub) return;
    db_lock();
    db_unsubscribe_locked(sub);
    db_unlock();
}

void db_post_events(db_record *rec, const void *pfield, unsigned mask)
{
    if (!rec->subs || !mask) return;
    rec->posts++;         /* lets a protocol encode one update for all monitors of this post */
    db_subscription *sub = rec->subs->head;
    while (sub) {
        db_subscription *next = sub->next;    /* a CP callback may not unsubscribe, but stay safe */
        if ((sub->mask & mask) && (!pfield || db_field_ptr(rec, sub->addr.field) == pfield))
            sub->fn(sub->user, &sub->addr, mask);
        sub = next;
    }
}

void db_monitors_free(db_record *rec)
{
    if (!rec->subs) return;
    db_subscription *sub = rec->subs->head;
    while (sub) {
        db_subscription *next = sub->next;
        free(sub);
        sub = next;
    }
    free(rec->subs);
    rec->subs = NULL;
}
