/* monitor.c -- CA subscriptions (EVENT_ADD): the db callback that encodes an update and queues it, and the
 * per-client flow control that keeps a slow client from costing memory or delaying anybody else.
 *
 * An update goes straight into the client's output queue while the queue is below the per-client limit
 * (ca_server_limits.max_queue_bytes) and events are on. Otherwise the subscription is marked pending and
 * nothing is encoded: a slow client gets only the newest value per subscription (as EPICS IOCs do), encoded
 * when its queue has room again, so a camera frame posted faster than a client reads costs no conversion, and
 * the callback -- running under the db lock on a scan thread -- never waits for the network. Once a
 * subscription is pending, later updates wait too, so that a client never sees values out of order. The loop
 * refills the queue from the pending subscriptions after each flush (ca_client_refill). */
#include "core/ca/ca_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/access/access.h"
#include "core/base/base.h"

/* [client lock] The subscription's newest value is to be sent once the queue has room. */
static void mark_pending_locked(ca_client *c, ca_sub *s)
{
    c->updates_coalesced++;
    if (s->on_pending_list)
        return;
    s->on_pending_list = 1;
    s->next_pending = NULL;
    if (c->pending_tail)
        c->pending_tail->next_pending = s;
    else
        c->pending_head = s;
    c->pending_tail = s;
}

/* [client lock] Whether an update of s fits in the queue now (an empty queue takes anything). The size is
 * bounded before encoding (a count of 0 means at most the channel's capacity), so a full queue costs no
 * conversion. */
static int has_room_locked(const ca_client *c, const ca_sub *s)
{
    if (c->out.len == 0)
        return 1;
    uint32_t count = s->count ? s->count : (uint32_t)s->chan->addr.max_elements;
    size_t bytes = CA_EXT_HDR_SIZE + ca_pad8(ca_dbr_bytes(s->dtype, count));
    return c->out.len + bytes <= ca_server_limits.max_queue_bytes;
}

/* The update just encoded into the scratch buffer, while it is still there: every subscriber of the same
 * channel with the same type and count gets the same bytes from one record post (db_post_events calls their
 * callbacks one after the other), so a camera frame watched by ten clients is converted once. [db locked] */
static struct {
    int valid;                          /* the scratch buffer holds this update (cleared by other encodes) */
    const db_record *rec;
    const db_field_desc *field;
    int long_string, minor13;
    uint16_t dtype;
    uint32_t count;
    uint64_t posts;                     /* rec->posts when encoded: a later post is a new value */
    uint8_t *msg;
    size_t len;
} last_update;

static int same_update(const ca_sub *s)
{
    const db_addr *a = &s->chan->addr;
    return last_update.valid && last_update.rec == a->rec && last_update.field == a->field &&
           last_update.long_string == a->long_string && last_update.dtype == s->dtype &&
           last_update.count == s->count && last_update.minor13 == (s->chan->client->minor >= 13) &&
           last_update.posts == a->rec->posts && (s->chan->rights & ACCESS_READ);
}

/* [db locked] Encodes the subscription's update, or reuses the one a subscriber of the same post got. */
static size_t encode_update_locked(ca_sub *s, int from_post, uint8_t **msg)
{
    if (from_post && same_update(s)) {
        ca_put32(last_update.msg + 12, s->subid);      /* P2 sits at 12 in both header forms */
        *msg = last_update.msg;
        return last_update.len;
    }
    size_t n = ca_encode_value_locked(s->chan, CA_PROTO_EVENT_ADD, s->dtype, s->count, s->subid, msg);
    const db_addr *a = &s->chan->addr;
    last_update.valid = from_post && ca_get32(*msg + 8) == ECA_NORMAL;
    last_update.rec = a->rec;
    last_update.field = a->field;
    last_update.long_string = a->long_string;
    last_update.minor13 = s->chan->client->minor >= 13;
    last_update.dtype = s->dtype;
    last_update.count = s->count;
    last_update.posts = a->rec->posts;
    last_update.msg = *msg;
    last_update.len = n;
    return n;
}

void ca_scratch_reused_locked(void)
{
    last_update.valid = 0;
}

/* [db locked, client lock] Encodes the update and queues it. */
static void queue_update_locked(ca_client *c, ca_sub *s, int from_post)
{
    uint8_t *msg;
    size_t n = encode_update_locked(s, from_post, &msg);
    int was_empty = c->out.len == 0;
    ca_scratch_queue_locked(&c->out, msg, n);
    c->updates_sent++;
    if (was_empty && c->wake)
        c->wake(c);
}

/* [db locked] from_post: called by a record post (not a subscription's first value). */
static void post_update_locked(ca_sub *s, int from_post)
{
    ca_client *c = s->chan->client;
    pthread_mutex_lock(&c->lock);
    if (s->on_pending_list || c->events_off || !has_room_locked(c, s))
        mark_pending_locked(c, s);
    else
        queue_update_locked(c, s, from_post);
    pthread_mutex_unlock(&c->lock);
}

static void sub_event(void *user, const db_addr *addr, unsigned mask)
{
    (void)addr;
    (void)mask;
    post_update_locked(user, 1);
}

void ca_client_refill(ca_client *c)
{
    pthread_mutex_lock(&c->lock);
    int waiting = !c->events_off && c->pending_head;
    pthread_mutex_unlock(&c->lock);
    if (!waiting)
        return;                             /* the common case, after every flush: no db lock */
    db_lock();
    pthread_mutex_lock(&c->lock);
    while (!c->events_off && c->pending_head && has_room_locked(c, c->pending_head)) {
        ca_sub *s = c->pending_head;
        c->pending_head = s->next_pending;
        if (!c->pending_head)
            c->pending_tail = NULL;
        s->on_pending_list = 0;
        s->next_pending = NULL;
        queue_update_locked(c, s, 0);       /* the value now: the newest */
    }
    pthread_mutex_unlock(&c->lock);
    db_unlock();
}

int ca_sub_start(ca_client *c, ca_channel *ch, const ca_hdr *h, uint16_t mask)
{
    ca_sub *s = xcalloc(1, sizeof *s);
    s->chan = ch;
    s->subid = h->p2;
    s->dtype = h->dtype;
    s->count = h->count;
    s->mask = mask;
    s->next = ch->subs;
    ch->subs = s;
    s->dbsub = db_subscribe(&ch->addr, mask, sub_event, s);
    if (!s->dbsub)
        log_warn("ca", "client %s: cannot subscribe to %s", c->peer, ch->name);
    /* The first update goes out at once whatever the mask; later ones when an event matches it. */
    db_lock();
    post_update_locked(s, 0);
    db_unlock();
    return 0;
}

void ca_sub_free(ca_sub *s)
{
    if (s->dbsub)
        db_unsubscribe(s->dbsub);       /* no callback runs for s after this returns */
    ca_client *c = s->chan->client;
    pthread_mutex_lock(&c->lock);
    if (s->on_pending_list) {
        ca_sub **pp = &c->pending_head;
        ca_sub *prev = NULL;
        while (*pp != s) {
            prev = *pp;
            pp = &(*pp)->next_pending;
        }
        *pp = s->next_pending;
        if (c->pending_tail == s)
            c->pending_tail = prev;
    }
    pthread_mutex_unlock(&c->lock);
    free(s);
}
