/* monitor.c -- pvAccess MONITOR operations: the db callback that records which fields changed, and the
 * encoding of updates when the client can take them.
 *
 * A db post never encodes anything: under the db lock and the connection's lock, the callback ORs the fields
 * the event touches (value and timeStamp; alarm only when it changed; or the properties: display, control,
 * valueAlarm, enum choices) into the monitor's `changed` BitSet, marks fields changed twice in `overrun`, and
 * puts the monitor on the connection's pending list. The loop (pva_conn_refill, after every flush) encodes the *current* value of the
 * changed fields while the output queue is below the per-client limit and, for a pipelined monitor, while the
 * client's window (queueSize updates, credited back by acks) is open. So a slow client gets the newest value
 * with a BitSet delta, never a queue of stale ones, and a post never waits for the network or grows memory.
 * A structured PV's update (a camera frame) is chosen only when the queue is empty and is not copied: its
 * shared encoding is spliced into the output (conn.c), so ten viewers of a frame cost no copy of it. */
#include "core/pva/pva_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"

/* [conn lock] */
static void mark_pending_locked(pva_conn *c, pva_op *op)
{
    if (op->mon.on_pending_list)
        return;
    op->mon.on_pending_list = 1;
    op->mon.next_pending = NULL;
    if (c->pending_tail)
        c->pending_tail->mon.next_pending = op;
    else
        c->pending_head = op;
    c->pending_tail = op;
    if (c->wake)
        c->wake(c);
}

/* [conn lock] */
static void unlink_pending_locked(pva_conn *c, pva_op *op)
{
    if (!op->mon.on_pending_list)
        return;
    pva_op *prev = NULL;
    for (pva_op *o = c->pending_head; o; prev = o, o = o->mon.next_pending)
        if (o == op) {
            if (prev)
                prev->mon.next_pending = o->mon.next_pending;
            else
                c->pending_head = o->mon.next_pending;
            if (c->pending_tail == o)
                c->pending_tail = prev;
            break;
        }
    op->mon.on_pending_list = 0;
}

/* [db locked] */
static void on_event(void *user, const db_addr *addr, unsigned mask)
{
    (void)addr;
    pva_op *op = user;
    pva_conn *c = op->conn;
    const pva_nt *nt = &op->chan->nt;
    uint64_t bits = 0;
    /* As QSRV2: alarm fields only when the alarm changed (then with the value), so unchanged ones are not
     * resent with every value. */
    if (mask & (DBE_VALUE | DBE_LOG))
        bits |= nt->value_bits | nt->time_bits;
    if (mask & DBE_ALARM)
        bits |= nt->value_bits | nt->alarm_bits | nt->time_bits;
    if (mask & DBE_PROPERTY)
        bits |= nt->property_bits;
    bits &= op->mask;
    if (!bits)
        return;
    pthread_mutex_lock(&c->lock);
    op->mon.overrun |= op->mon.changed & bits;
    op->mon.changed |= bits;
    if (op->mon.started)
        mark_pending_locked(c, op);
    pthread_mutex_unlock(&c->lock);
}

int pva_mon_init(pva_conn *c, pva_op *op, const char *queue_size)
{
    if (queue_size[0]) {
        char *end;
        long n = strtol(queue_size, &end, 10);
        if (*end || n < 1) {
            /* As pvxs: a warning MESSAGE, and the monitor goes on with the default. */
            pthread_mutex_lock(&c->lock);
            size_t was = pva_conn_queued_locked(c);
            size_t m = pva_msg_begin(&c->out, PVA_CMD_MESSAGE);
            pva_put32(&c->out, op->ioid);
            pva_put8(&c->out, PVA_WARNING);
            pva_put_string(&c->out, "Unable to use record._options.queueSize: not a positive integer");
            pva_msg_end(&c->out, m);
            pva_conn_wake_locked(c, was);
            pthread_mutex_unlock(&c->lock);
        }
    }
    if (op->chan->src)
        return 0;       /* structured PVs: pva_conn_refill looks for new values */
    op->mon.dbsub = db_subscribe(&op->chan->addr, DBE_VALUE | DBE_ALARM | DBE_PROPERTY, on_event, op);
    return 0;
}

void pva_mon_exec(pva_conn *c, pva_op *op, uint8_t sub, pva_reader *r)
{
    uint32_t credit = (sub & PVA_SUB_ACK) ? pva_get32(r) : 0;
    if (r->bad)
        return;
    pthread_mutex_lock(&c->lock);
    op->mon.window += credit;
    if (sub & PVA_SUB_PROCESS) {
        op->mon.started = (sub & PVA_SUB_GET) != 0;
        if (op->mon.started) {
            op->mon.first_pending = 1;      /* (re)start: the whole current value first */
            op->mon.changed = op->mon.overrun = 0;
        }
    }
    if (op->mon.started && (op->mon.first_pending || op->mon.changed))
        mark_pending_locked(c, op);
    else if (!op->mon.started)
        unlink_pending_locked(c, op);
    pthread_mutex_unlock(&c->lock);
}

void pva_mon_free(pva_conn *c, pva_op *op)
{
    if (op->mon.dbsub)
        db_unsubscribe(op->mon.dbsub);     /* no callback runs after this returns */
    op->mon.dbsub = NULL;
    pthread_mutex_lock(&c->lock);
    unlink_pending_locked(c, op);
    pthread_mutex_unlock(&c->lock);
}

/* [conn lock] Monitors of structured PVs with a value newer than the one they sent become pending. */
static void mark_new_values_locked(pva_conn *c)
{
    for (uint32_t i = 0; i < c->nops; i++) {
        pva_op *op = c->ops[i];
        if (op->cmd == PVA_CMD_MONITOR && op->chan->src && op->mon.started &&
            pva_source_seq(op->chan->src) != op->mon.sent_seq) {
            op->mon.changed |= 1;
            mark_pending_locked(c, op);
        }
    }
}

void pva_conn_refill(pva_conn *c)
{
    pthread_mutex_lock(&c->lock);
    mark_new_values_locked(c);
    int any = c->pending_head != NULL;
    pthread_mutex_unlock(&c->lock);
    if (!any)
        return;
    db_lock();
    pthread_mutex_lock(&c->lock);
    size_t was = pva_conn_queued_locked(c);
    pva_op *prev = NULL;
    for (pva_op *op = c->pending_head, *next; op && pva_conn_queued_locked(c) < pva_server_limits.max_queue_bytes;
         op = next) {
        next = op->mon.next_pending;
        pva_mon *m = &op->mon;
        if ((m->started && m->pipeline && m->window <= 0) || (op->chan->src && pva_conn_queued_locked(c) > 0)) {
            /* Waits for the client's ack; or, a structured PV (a camera frame), until what is queued has gone
             * to the kernel: the frame chosen then is the newest, not one that waited behind another. */
            prev = op;
            continue;
        }
        uint64_t bits = m->first_pending ? op->mask : m->changed & op->mask;
        int sent = 0;
        if (m->started && bits && op->chan->src) {
            /* The shared encoding itself goes out (no copy per subscriber); -1: no value posted yet. */
            sent = pva_conn_splice_update_locked(c, op, &m->sent_seq) == 0;
        } else if (m->started && bits) {
            size_t start = pva_msg_begin(&c->out, PVA_CMD_MONITOR);
            pva_put32(&c->out, op->ioid);
            pva_put8(&c->out, 0);
            sent = pva_nt_put_value_locked(&c->out, &op->chan->nt, &op->chan->addr, bits) == 0;
            if (sent) {
                pva_put_bitset(&c->out, m->first_pending ? 0 : m->overrun & op->mask);
                pva_msg_end(&c->out, start);
            } else {
                c->out.len = start;     /* nothing to send (the record could not be read) */
            }
        }
        if (sent) {
            m->window--;
            c->updates_sent++;
        }
        m->first_pending = 0;
        m->changed = m->overrun = 0;
        /* off the list */
        if (prev)
            prev->mon.next_pending = next;
        else
            c->pending_head = next;
        if (c->pending_tail == op)
            c->pending_tail = prev;
        m->on_pending_list = 0;
    }
    pva_conn_wake_locked(c, was);
    pthread_mutex_unlock(&c->lock);
    db_unlock();
}
