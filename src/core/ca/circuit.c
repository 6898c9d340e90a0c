/* circuit.c -- one CA virtual circuit (a TCP connection) as a socket-free state machine: bytes received are
 * fed in with ca_client_input(), requests are decoded and executed against the record database, and replies
 * are queued in the client's output queue for the event loop (or a test, or the fuzzer) to drain.
 *
 * Ownership: the loop thread (server.c) owns the client and everything in it except `out`, the pending-update
 * list and `events_off`, which monitor and put-notify callbacks also touch under the client's lock; channel
 * access rights and put-notify lists are guarded by the db lock (callbacks read them with it held).
 * Lock order: db lock, then the client lock. Nothing here blocks on the network.
 */
#include "core/ca/ca_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/access/access.h"
#include "core/base/base.h"

ca_limits ca_server_limits = {
    .max_clients = 1000,
    .max_channels = 100000,
    .max_queue_bytes = 4u << 20,
    .max_message_bytes = 64u << 20,
};

/* ---------------------------------------------------------------------------------------------------
 * Output
 */
void ca_client_queue_locked(ca_client *c, const ca_hdr *h, const void *payload, size_t len)
{
    int was_empty = c->out.len == 0;
    ca_bytes_message(&c->out, h, payload, len);
    if (was_empty && c->wake)
        c->wake(c);
}

static void queue(ca_client *c, const ca_hdr *h, const void *payload, size_t len)
{
    pthread_mutex_lock(&c->lock);
    ca_client_queue_locked(c, h, payload, len);
    pthread_mutex_unlock(&c->lock);
}

static void queue_header(ca_client *c, uint16_t cmd, uint16_t dtype, uint32_t count, uint32_t p1, uint32_t p2)
{
    ca_hdr h = { .cmd = cmd, .dtype = dtype, .count = count, .p1 = p1, .p2 = p2 };
    queue(c, &h, NULL, 0);
}

/* ERROR: P1 = the client's CID (0xFFFFFFFF if none), P2 = ECA code, payload = the offending request's
 * header followed by a text. */
static void queue_error(ca_client *c, const ca_hdr *req, uint32_t cid, int eca, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void queue_error(ca_client *c, const ca_hdr *req, uint32_t cid, int eca, const char *fmt, ...)
{
    uint8_t payload[CA_EXT_HDR_SIZE + 256];
    size_t hs = ca_hdr_encode(payload, req);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf((char *)payload + hs, sizeof payload - hs, fmt, ap);
    va_end(ap);
    size_t text = n < 0 ? 0 : (size_t)n >= sizeof payload - hs ? sizeof payload - hs - 1 : (size_t)n;
    ca_hdr h = { .cmd = CA_PROTO_ERROR, .p1 = cid, .p2 = (uint32_t)eca };
    queue(c, &h, payload, hs + text + 1);
}

/* ---------------------------------------------------------------------------------------------------
 * Scratch buffer and reply encoding (both [db locked])
 */
static ca_bytes scratch;

uint8_t *ca_scratch_locked(size_t n)
{
    ca_scratch_reused_locked();
    scratch.len = 0;
    scratch.head = 0;
    return ca_bytes_room(&scratch, n);
}

void ca_scratch_queue_locked(ca_bytes *q, const uint8_t *msg, size_t n)
{
    uintptr_t at = (uintptr_t)msg, base = (uintptr_t)scratch.data;
    if (q->len != 0 || n < CA_SCRATCH_HANDOVER || at < base || at + n > base + scratch.cap) {
        ca_bytes_append(q, msg, n);
        return;
    }
    ca_bytes old = *q;
    q->data = scratch.data;
    q->cap = scratch.cap;
    q->head = (size_t)(msg - scratch.data);
    q->len = n;
    scratch = old;
    scratch.len = scratch.head = 0;
    ca_scratch_reused_locked();
}

size_t ca_encode_value_locked(ca_channel *ch, uint16_t cmd, uint16_t dtype, uint32_t count, uint32_t p2,
                              uint8_t **msg)
{
    ca_client *c = ch->client;
    int status = ECA_NORMAL;
    if (count == 0 && c->minor >= 13) {
        long cur = db_current_elements(&ch->addr);
        count = cur < 0 ? 0 : (uint32_t)cur;
    } else if (count == 0) {
        count = (uint32_t)ch->addr.max_elements;
    }
    if (dtype == DBR_CLASS_NAME)
        count = 1;
    size_t bytes = ca_dbr_bytes(dtype, count);
    if (bytes > ca_server_limits.max_message_bytes) {
        status = ECA_TOLARGE;
        count = 0;
        bytes = ca_dbr_bytes(dtype, 0);
    }
    ca_hdr h = { .cmd = cmd, .dtype = dtype, .count = count, .p2 = p2, .payload = (uint32_t)ca_pad8(bytes) };
    if ((h.payload >= 0xFFFF || count >= 0xFFFF) && c->minor < 9) {
        status = ECA_16KARRAYCLIENT;
        h.count = count = 0;
        h.payload = (uint32_t)ca_pad8(bytes = ca_dbr_bytes(dtype, 0));
    }
    size_t hs = ca_hdr_size(&h);
    uint8_t *out = ca_scratch_locked(hs + h.payload);
    if (status == ECA_NORMAL && !(ch->rights & ACCESS_READ))
        status = ECA_NORDACCESS;
    if (status == ECA_NORMAL)
        status = ca_dbr_read(&ch->addr, dtype, count, out + hs);
    if (status == ECA_NORMAL)
        memset(out + hs + bytes, 0, h.payload - bytes);     /* the padding */
    else
        memset(out + hs, 0, h.payload);
    h.p1 = (uint32_t)status;
    ca_hdr_encode(out, &h);
    *msg = out;
    return hs + h.payload;
}

/* ---------------------------------------------------------------------------------------------------
 * Channels
 */
static ca_channel *find_channel(ca_client *c, uint32_t sid)
{
    return sid < c->chan_cap ? c->chans[sid] : NULL;
}

/* Field level for access security: VAL is level 0 (operators), every other field level 1. */
static int field_level(const ca_channel *ch)
{
    return strcmp(ch->addr.field->name, "VAL") == 0 ? 0 : 1;
}

/* [db locked] */
static unsigned compute_rights_locked(ca_client *c, ca_channel *ch)
{
    unsigned r = access_rights(ch->addr.rec->asg, field_level(ch), c->user, c->host);
    if (ch->addr.field->flags & DBFLD_READONLY)
        r &= ~ACCESS_WRITE;
    return r;
}

void ca_client_refresh_rights(ca_client *c)
{
    for (uint32_t sid = 0; sid < c->chan_cap; sid++) {
        ca_channel *ch = c->chans[sid];
        if (!ch)
            continue;
        db_lock();
        unsigned r = compute_rights_locked(c, ch);
        int changed = r != ch->rights;
        ch->rights = r;
        db_unlock();
        if (changed)
            queue_header(c, CA_PROTO_ACCESS_RIGHTS, 0, 0, ch->cid, r);
    }
}

static void put_done(void *user, int status);

/* [db locked] The channel goes: its put-notifies are cancelled (one still waiting never writes, one under way
 * runs to its end unreported). */
static void cancel_putns_locked(ca_channel *ch)
{
    while (ch->putns) {
        ca_putn *p = ch->putns;
        ch->putns = p->next;
        db_put_notify_cancel(put_done, p);
        free(p);
    }
}

static void free_channel(ca_client *c, ca_channel *ch)
{
    while (ch->subs) {
        ca_sub *s = ch->subs;
        ch->subs = s->next;
        ca_sub_free(s);
    }
    db_lock();
    cancel_putns_locked(ch);
    db_unlock();
    c->chans[ch->sid] = NULL;
    c->free_sids[c->nfree_sids++] = ch->sid;
    c->nchans--;
    free(ch);
}

/* A free SID in O(1): the most recently freed one, else the next never used (growing the table). */
static uint32_t take_sid(ca_client *c)
{
    if (c->nfree_sids > 0)
        return c->free_sids[--c->nfree_sids];
    if (c->sids_used == c->chan_cap) {
        uint32_t cap = c->chan_cap ? c->chan_cap * 2 : 16;
        c->chans = xrealloc(c->chans, cap * sizeof *c->chans);
        memset(c->chans + c->chan_cap, 0, (cap - c->chan_cap) * sizeof *c->chans);
        c->free_sids = xrealloc(c->free_sids, cap * sizeof *c->free_sids);
        c->chan_cap = cap;
    }
    return c->sids_used++;
}

static int create_channel(ca_client *c, const ca_hdr *h, const uint8_t *payload)
{
    const char *name = (const char *)payload;
    if (h->payload == 0 || !memchr(payload, 0, h->payload)) {
        log_warn("ca", "client %s: CREATE_CHAN without a NUL-terminated name; closing circuit", c->peer);
        return -1;
    }
    db_addr addr;
    if (db_name_to_addr(name, &addr) != DB_OK) {
        queue_header(c, CA_PROTO_CREATE_CH_FAIL, 0, 0, h->p1, 0);
        return 0;
    }
    if (c->nchans >= ca_server_limits.max_channels) {
        log_warn("ca", "client %s (%s@%s): channel limit %u reached, refusing %s", c->peer, c->user, c->host,
                 ca_server_limits.max_channels, name);
        queue_error(c, h, h->p1, ECA_ALLOCMEM, "channel limit %u reached", ca_server_limits.max_channels);
        queue_header(c, CA_PROTO_CREATE_CH_FAIL, 0, 0, h->p1, 0);
        return 0;
    }
    uint32_t sid = take_sid(c);
    ca_channel *ch = xcalloc(1, sizeof *ch);
    ch->cid = h->p1;
    ch->sid = sid;
    ch->addr = addr;
    ch->client = c;
    str_copy(ch->name, name, sizeof ch->name);
    c->chans[sid] = ch;
    c->nchans++;
    db_lock();
    ch->rights = compute_rights_locked(c, ch);
    db_unlock();
    long count = addr.max_elements;
    if (c->minor < 9 && count > 0xFFFE)
        count = 0xFFFE;
    queue_header(c, CA_PROTO_ACCESS_RIGHTS, 0, 0, ch->cid, ch->rights);
    queue_header(c, CA_PROTO_CREATE_CHAN, ca_native_type(addr.type), (uint32_t)count, ch->cid, sid);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------
 * Reads and writes
 */
static int check_type_count(ca_client *c, const ca_hdr *h, ca_channel *ch, int for_write)
{
    if (h->dtype > CA_DBR_LAST || (for_write && h->dtype > DBR_PUT_ACKS && h->dtype != DBR_STRING)) {
        queue_error(c, h, ch->cid, ECA_BADTYPE, "bad DBR type %u", h->dtype);
        return -1;
    }
    if (h->count > (uint32_t)ch->addr.max_elements && h->dtype != DBR_CLASS_NAME) {
        queue_error(c, h, ch->cid, ECA_BADCOUNT, "count %u exceeds %ld elements", h->count,
                    ch->addr.max_elements);
        return -1;
    }
    return 0;
}

static void read_notify(ca_client *c, const ca_hdr *h, ca_channel *ch)
{
    if (check_type_count(c, h, ch, 0))
        return;
    db_lock();
    uint8_t *msg;
    size_t n = ca_encode_value_locked(ch, h->cmd == CA_PROTO_READ ? CA_PROTO_READ : CA_PROTO_READ_NOTIFY,
                                      h->dtype, h->count, h->p2, &msg);
    if (h->cmd == CA_PROTO_READ)
        ca_put32(msg + 8, ch->cid);     /* the obsolete READ carries the CID where READ_NOTIFY has the status */
    pthread_mutex_lock(&c->lock);
    int was_empty = c->out.len == 0;
    ca_scratch_queue_locked(&c->out, msg, n);
    if (was_empty && c->wake)
        c->wake(c);
    pthread_mutex_unlock(&c->lock);
    db_unlock();
}

static int eca_of_put_status(int status)
{
    switch (status) {
    case DB_OK: return ECA_NORMAL;
    case DB_ERR_READ_ONLY: case DB_ERR_DISABLED: return ECA_NOWTACCESS;
    case DB_ERR_BAD_TYPE: return ECA_BADTYPE;
    case DB_ERR_CONVERT: return ECA_NOCONVERT;
    default: return ECA_PUTFAIL;
    }
}

/* The target of a put: ACKT/ACKS of the channel's record for PUT_ACKT/PUT_ACKS, else the channel. */
static int put_target(const ca_channel *ch, unsigned dtype, db_addr *addr)
{
    if (dtype != DBR_PUT_ACKT && dtype != DBR_PUT_ACKS) {
        *addr = ch->addr;
        return 0;
    }
    char name[DB_NAME_SIZE + 8];
    snprintf(name, sizeof name, "%s.%s", ch->addr.rec->name, dtype == DBR_PUT_ACKT ? "ACKT" : "ACKS");
    return db_name_to_addr(name, addr) == DB_OK ? 0 : -1;
}

static void write_plain(ca_client *c, const ca_hdr *h, ca_channel *ch, uint8_t *payload)
{
    if (check_type_count(c, h, ch, 1))
        return;
    if (!(ch->rights & ACCESS_WRITE)) {
        queue_error(c, h, ch->cid, ECA_NOWTACCESS, "no write access to %s", ch->name);
        return;
    }
    void *values = ca_dbr_decode_values(payload, h->payload, h->dtype, h->count, &c->put_room);
    db_addr target;
    if (!values || put_target(ch, h->dtype, &target)) {
        queue_error(c, h, ch->cid, ECA_BADCOUNT, "payload too short for %u elements", h->count);
        return;
    }
    dbr_value_type base = (dbr_value_type)ca_dbr_layout_of(h->dtype)->base;
    int status = db_put_field(&target, base, values, (long)h->count);
    if (status != DB_OK)
        queue_error(c, h, ch->cid, eca_of_put_status(status), "put to %s failed: %s", ch->name,
                    db_strerror(status));
}

/* [db locked] A put-notify finished: reply to the client. A cancelled one never gets here. */
static void put_done(void *user, int status)
{
    ca_putn *p = user;
    ca_channel *ch = p->chan;
    ca_putn **pp = &ch->putns;
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
    ca_hdr h = { .cmd = CA_PROTO_WRITE_NOTIFY, .dtype = p->dtype, .count = p->count,
                 .p1 = (uint32_t)eca_of_put_status(status), .p2 = p->ioid };
    pthread_mutex_lock(&ch->client->lock);
    ca_client_queue_locked(ch->client, &h, NULL, 0);
    pthread_mutex_unlock(&ch->client->lock);
    free(p);
}

static void write_notify(ca_client *c, const ca_hdr *h, ca_channel *ch, uint8_t *payload)
{
    if (check_type_count(c, h, ch, 1))
        return;
    int status = ECA_NORMAL;
    void *values = NULL;
    db_addr target;
    if (!(ch->rights & ACCESS_WRITE))
        status = ECA_NOWTACCESS;
    else if (!(values = ca_dbr_decode_values(payload, h->payload, h->dtype, h->count, &c->put_room)) ||
             put_target(ch, h->dtype, &target))
        status = ECA_BADCOUNT;
    if (status != ECA_NORMAL) {
        queue_header(c, CA_PROTO_WRITE_NOTIFY, h->dtype, h->count, (uint32_t)status, h->p2);
        return;
    }
    ca_putn *p = xcalloc(1, sizeof *p);
    p->chan = ch;
    p->ioid = h->p2;
    p->dtype = h->dtype;
    p->count = h->count;
    db_lock();
    p->next = ch->putns;
    ch->putns = p;
    db_unlock();
    /* put_done runs exactly once, possibly inside this call, and frees p. */
    db_put_notify_start(&target, (dbr_value_type)ca_dbr_layout_of(h->dtype)->base, values, (long)h->count,
                        put_done, p);
}

/* ---------------------------------------------------------------------------------------------------
 * Dispatch
 */
static void copy_name(char *dst, size_t dstlen, const uint8_t *payload, size_t len)
{
    size_t n = strnlen((const char *)payload, len);
    if (n >= dstlen)
        n = dstlen - 1;
    memcpy(dst, payload, n);
    dst[n] = 0;
}

static int search_tcp(ca_client *c, const ca_hdr *h, const uint8_t *payload)
{
    if (h->payload == 0 || !memchr(payload, 0, h->payload))
        return -1;
    db_addr addr;
    if (db_name_to_addr((const char *)payload, &addr) == DB_OK) {
        uint8_t minor[8] = { 0, CA_MINOR_VERSION };
        ca_hdr r = { .cmd = CA_PROTO_SEARCH, .dtype = 0, .p1 = 0xFFFFFFFFu, .p2 = h->p1 };
        queue(c, &r, minor, sizeof minor);
    } else if (h->dtype == CA_SEARCH_DO_REPLY) {
        queue_header(c, CA_PROTO_NOT_FOUND, h->dtype, h->count, h->p1, h->p2);
    }
    return 0;
}

/* Executes one message. Returns -1 when the circuit must close. */
static int dispatch(ca_client *c, const ca_hdr *h, uint8_t *payload)
{
    ca_channel *ch = NULL;
    log_debug("ca", "client %s: command %u type %u count %u p1 %u p2 %u, %u payload bytes", c->peer, h->cmd,
              h->dtype, h->count, h->p1, h->p2, h->payload);
    switch (h->cmd) {
    case CA_PROTO_VERSION:
        if (h->dtype > 99) {
            log_warn("ca", "client %s: circuit priority %u out of range; closing circuit", c->peer, h->dtype);
            return -1;
        }
        c->priority = h->dtype;
        c->minor = (uint16_t)h->count;
        return 0;
    case CA_PROTO_CLIENT_NAME:
    case CA_PROTO_HOST_NAME:
        if (h->cmd == CA_PROTO_CLIENT_NAME)
            copy_name(c->user, sizeof c->user, payload, h->payload);
        else
            copy_name(c->host, sizeof c->host, payload, h->payload);
        ca_client_refresh_rights(c);
        return 0;
    case CA_PROTO_CREATE_CHAN:
        return create_channel(c, h, payload);
    case CA_PROTO_SEARCH:
        return search_tcp(c, h, payload);
    case CA_PROTO_ECHO:
    case CA_PROTO_READ_SYNC:
        queue(c, h, payload, h->payload);
        return 0;
    case CA_PROTO_EVENTS_OFF:
    case CA_PROTO_EVENTS_ON:
        pthread_mutex_lock(&c->lock);
        c->events_off = h->cmd == CA_PROTO_EVENTS_OFF;
        pthread_mutex_unlock(&c->lock);
        if (h->cmd == CA_PROTO_EVENTS_ON)
            ca_client_refill(c);
        return 0;
    case CA_PROTO_READ:
    case CA_PROTO_READ_NOTIFY:
    case CA_PROTO_WRITE:
    case CA_PROTO_WRITE_NOTIFY:
    case CA_PROTO_EVENT_ADD:
    case CA_PROTO_EVENT_CANCEL:
    case CA_PROTO_CLEAR_CHANNEL:
        ch = find_channel(c, h->p1);
        if (!ch) {
            queue_error(c, h, 0xFFFFFFFFu, ECA_BADCHID, "bad resource id %u", h->p1);
            return 0;
        }
        break;
    default:
        log_warn("ca", "client %s: unsupported command %u; closing circuit", c->peer, h->cmd);
        queue_error(c, h, 0xFFFFFFFFu, ECA_INTERNAL, "unsupported command %u", h->cmd);
        return -1;
    }

    switch (h->cmd) {
    case CA_PROTO_READ:
    case CA_PROTO_READ_NOTIFY:
        read_notify(c, h, ch);
        return 0;
    case CA_PROTO_WRITE:
        write_plain(c, h, ch, payload);
        return 0;
    case CA_PROTO_WRITE_NOTIFY:
        write_notify(c, h, ch, payload);
        return 0;
    case CA_PROTO_EVENT_ADD:
        if (h->payload < 16) {
            log_warn("ca", "client %s: EVENT_ADD without its 16-byte payload; closing circuit", c->peer);
            return -1;
        }
        if (check_type_count(c, h, ch, 0) == 0)
            ca_sub_start(c, ch, h, ca_get16(payload + 12));
        return 0;
    case CA_PROTO_EVENT_CANCEL: {
        ca_sub **sp = &ch->subs;
        while (*sp && (*sp)->subid != h->p2)
            sp = &(*sp)->next;
        if (!*sp) {
            queue_error(c, h, ch->cid, ECA_BADMONID, "no subscription %u on %s", h->p2, ch->name);
            return 0;
        }
        ca_sub *s = *sp;
        *sp = s->next;
        ca_sub_free(s);
        queue_header(c, CA_PROTO_EVENT_ADD, h->dtype, h->count, h->p1, h->p2);
        return 0;
    }
    default: /* CA_PROTO_CLEAR_CHANNEL */
        free_channel(c, ch);
        queue_header(c, CA_PROTO_CLEAR_CHANNEL, 0, 0, h->p1, h->p2);
        return 0;
    }
}

/* ---------------------------------------------------------------------------------------------------
 * Life cycle
 */
ca_client *ca_client_new(const char *peer, int fd, ca_wake_fn wake)
{
    ca_client *c = xcalloc(1, sizeof *c);
    str_copy(c->peer, peer, sizeof c->peer);
    c->fd = fd;
    c->wake = wake;
    pthread_mutex_init(&c->lock, NULL);
    /* The server announces its version at once; the client's VERSION gets no reply. */
    queue_header(c, CA_PROTO_VERSION, 0, CA_MINOR_VERSION, 0, 0);
    return c;
}

uint8_t *ca_client_input_room(ca_client *c, size_t *room)
{
    size_t want = 65536;
    ca_hdr h;
    int hs = c->in.len >= CA_HDR_SIZE ? ca_hdr_decode(c->in.data + c->in.head, c->in.len, 1, &h) : 0;
    if (hs > 0 && h.payload <= ca_server_limits.max_message_bytes) {
        size_t rest = (size_t)hs + h.payload > c->in.len ? (size_t)hs + h.payload - c->in.len : 0;
        if (rest > want)            /* the rest of a large message, nothing of the next one after it; in */
            want = rest < ((size_t)4 << 20) ? rest : (size_t)4 << 20;   /* steps: a header alone reserves little */
    }
    *room = want;
    return ca_bytes_room(&c->in, want);
}

int ca_client_input(ca_client *c, const uint8_t *data, size_t len)
{
    if (len && data == c->in.data + c->in.head + c->in.len)
        ca_bytes_commit(&c->in, len);           /* received in place (ca_client_input_room) */
    else if (len)
        ca_bytes_append(&c->in, data, len);
    while (!c->closing && c->in.len >= CA_HDR_SIZE) {
        pthread_mutex_lock(&c->lock);
        int backlog = c->out.len >= ca_server_limits.max_queue_bytes;
        pthread_mutex_unlock(&c->lock);
        if (backlog)
            break;      /* resumed by the loop once the client has read its replies */
        ca_hdr h;
        uint8_t *msg = c->in.data + c->in.head;
        int hs = ca_hdr_decode(msg, c->in.len, 1, &h);
        if (hs == 0)
            break;
        if (h.payload > ca_server_limits.max_message_bytes) {
            log_warn("ca", "client %s: message of %u bytes exceeds the limit of %zu; closing circuit", c->peer,
                     h.payload, ca_server_limits.max_message_bytes);
            c->closing = 1;
            break;
        }
        if (h.payload % 8) {
            log_warn("ca", "client %s: misaligned message (command %u, %u payload bytes); closing circuit",
                     c->peer, h.cmd, h.payload);
            c->closing = 1;
            break;
        }
        if (c->in.len < (size_t)hs + h.payload)
            break;
        int rc = dispatch(c, &h, msg + hs);
        ca_bytes_consume(&c->in, (size_t)hs + h.payload);
        if (rc < 0)
            c->closing = 1;
    }
    return c->closing ? -1 : 0;
}

void ca_client_disconnect_all(ca_client *c)
{
    for (uint32_t sid = 0; sid < c->chan_cap; sid++)
        if (c->chans[sid])
            queue_header(c, CA_PROTO_SERVER_DISCONN, 0, 0, c->chans[sid]->cid, 0);
}

void ca_client_free(ca_client *c)
{
    for (uint32_t sid = 0; sid < c->chan_cap; sid++)
        if (c->chans[sid])
            free_channel(c, c->chans[sid]);
    free(c->chans);
    free(c->free_sids);
    ca_bytes_free(&c->in);
    ca_bytes_free(&c->put_room);
    ca_bytes_free(&c->out);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
