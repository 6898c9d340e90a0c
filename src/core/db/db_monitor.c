/* db_monitor.c -- monitors: subscriptions on record fields and posting events to them.
 *
 * Each record owns a list of its subscriptions (rec->subs), doubly linked with a tail so that subscribing and
 * unsubscribing cost the same with 20,000 monitors on one record as with one; lists change and are walked only
 * with the database lock held, and callbacks run with it held (see db.h).
 */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <stdlib.h>

struct db_subscription {
    db_addr addr;
    unsigned mask;
    db_event_fn fn;
    void *user;
    struct db_subscription *next, *prev;
};

struct db_subscription_list {
    db_subscription *head, *tail;
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
    sub->prev = rec->subs->tail;                  /* keep subscription order: first come, first told */
    if (sub->prev) sub->prev->next = sub;
    else rec->subs->head = sub;
    rec->subs->tail = sub;
    return sub;
}

void db_unsubscribe_locked(db_subscription *sub)
{
    struct db_subscription_list *list = sub->addr.rec->subs;
    if (sub->prev) sub->prev->next = sub->next;
    else list->head = sub->next;
    if (sub->next) sub->next->prev = sub->prev;
    else list->tail = sub->prev;
    free(sub);
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
