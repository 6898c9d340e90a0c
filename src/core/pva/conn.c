/* conn.c -- one pvAccess TCP connection as a socket-free state machine: bytes received are fed in with
 * pva_conn_input(), messages are framed (byte order per header, segments reassembled), decoded and executed
 * against the record database, and replies are queued in the connection's output queue for the event loop
 * (or a test, or the fuzzer) to drain. Handles connection validation (anonymous and "ca"), ECHO, SEARCH over
 * TCP, channels, and the GET, PUT, PROCESS and GET_FIELD operations (MONITOR is monitor.c's).
 *
 * Ownership: the loop thread owns the connection and everything in it except `out`, the pending-monitor list
 * and monitor state (the connection's lock: db callbacks touch them) and ops' put_pending (the db lock).
 * Lock order: db lock, then the connection lock. Nothing here blocks on the network.
 */
#include "core/pva/pva_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/access/access.h"
#include "core/base/base.h"

pva_limits pva_server_limits = {
    .max_clients = 1000,
    .max_channels = 100000,
    .max_ops = 100000,
    .max_queue_bytes = 4u << 20,
    .max_message_bytes = 64u << 20,
    .idle_timeout = 40.0,       /* pvxs: EPICS_PVA_CONN_TMO (30 s) x 4/3; clients echo every 15 s */
};

/* ---------------------------------------------------------------------------------------------------
 * Output: a reply is built straight into `out` with the connection's lock held.
 */
size_t pva_conn_queued_locked(const pva_conn *c)
{
    size_t len = 0;
    if (c->splice)
        pva_value_bytes(c->splice, &len);
    return c->out.len + len - c->splice_sent;
}

void pva_conn_wake_locked(pva_conn *c, size_t was)
{
    if (was == 0 && pva_conn_queued_locked(c) && c->wake)
        c->wake(c);
}

int pva_conn_peek_locked(const pva_conn *c, struct iovec iov[3])
{
    uint8_t *out = c->out.data + c->out.head;
    if (!c->splice) {
        iov[0] = (struct iovec){ out, c->out.len };
        return 1;
    }
    size_t len;
    const uint8_t *value = pva_value_bytes(c->splice, &len);
    iov[0] = (struct iovec){ out, c->splice_at };
    iov[1] = (struct iovec){ (void *)(value + c->splice_sent), len - c->splice_sent };
    iov[2] = (struct iovec){ out + c->splice_at, c->out.len - c->splice_at };
    return 3;
}

void pva_conn_consume_locked(pva_conn *c, size_t n)
{
    if (c->splice) {
        size_t before = n < c->splice_at ? n : c->splice_at, len;
        pva_buf_consume(&c->out, before);
        c->splice_at -= before;
        n -= before;
        pva_value_bytes(c->splice, &len);
        size_t part = n < len - c->splice_sent ? n : len - c->splice_sent;
        c->splice_sent += part;
        n -= part;
        if (c->splice_sent == len) {
            pva_value_unref(c->splice);
            c->splice = NULL;
            c->splice_at = c->splice_sent = 0;
        }
    }
    pva_buf_consume(&c->out, n);
}

int pva_conn_splice_update_locked(pva_conn *c, pva_op *op, uint64_t *seq)
{
    pva_value *v = pva_source_latest(op->chan->src, seq);
    if (!v)
        return -1;
    size_t len;
    pva_value_bytes(v, &len);
    size_t start = pva_msg_begin(&c->out, PVA_CMD_MONITOR);
    pva_put32(&c->out, op->ioid);
    pva_put8(&c->out, 0);
    pva_put_bitset(&c->out, op->chan->src->leaf_bits);     /* every field, marked leaf by leaf as pvxs does */
    c->splice = v;
    c->splice_at = c->out.len;
    c->splice_sent = 0;
    pva_put_bitset(&c->out, 0);                             /* overrun: never, only the newest value is sent */
    pva_msg_end_spliced(&c->out, start, len);
    return 0;
}

static size_t reply_begin(pva_conn *c, uint8_t cmd)
{
    pthread_mutex_lock(&c->lock);
    c->reply_was = pva_conn_queued_locked(c);
    return pva_msg_begin(&c->out, cmd);
}

static void reply_end(pva_conn *c, size_t start)
{
    pva_msg_end(&c->out, start);
    pva_conn_wake_locked(c, c->reply_was);
    pthread_mutex_unlock(&c->lock);
}

/* IOID │ subcommand │ Status: the reply of an operation without data. */
static void reply_status(pva_conn *c, uint8_t cmd, uint32_t ioid, uint8_t sub, int type, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void reply_status(pva_conn *c, uint8_t cmd, uint32_t ioid, uint8_t sub, int type, const char *fmt, ...)
{
    char text[256] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
    }
    size_t m = reply_begin(c, cmd);
    pva_put32(&c->out, ioid);
    pva_put8(&c->out, sub);
    pva_put_status(&c->out, type, text);
    reply_end(c, m);
}

/* ---------------------------------------------------------------------------------------------------
 * Channels and rights
 */
static pva_chan *find_chan(pva_conn *c, uint32_t sid)
{
    return sid >= 1 && sid <= c->chan_cap ? c->chans[sid - 1] : NULL;
}

/* [db locked] Access security as CA: VAL is level 0, other fields level 1; read-only fields never writable. */
static unsigned rights_locked(pva_conn *c, pva_chan *ch)
{
    if (ch->src)
        return ACCESS_READ;     /* structured PVs are read-only */
    int level = strcmp(ch->addr.field->name, "VAL") == 0 ? 0 : 1;
    unsigned r = access_rights(ch->addr.rec->asg, level, c->user, c->host);
    if (ch->addr.field->flags & DBFLD_READONLY)
        r &= ~ACCESS_WRITE;
    return r;
}

void pva_conn_refresh_rights(pva_conn *c)
{
    db_lock();
    for (uint32_t i = 0; i < c->chan_cap; i++)
        if (c->chans[i])
            c->chans[i]->rights = rights_locked(c, c->chans[i]);
    db_unlock();
}

static void create_channels(pva_conn *c, pva_reader *r)
{
    unsigned count = pva_get16(r);
    for (unsigned i = 0; i < count && !r->bad; i++) {
        uint32_t cid = pva_get32(r);
        char name[DB_NAME_SIZE + 16];
        pva_get_string(r, name, sizeof name);
        if (r->bad)
            return;
        db_addr addr = { 0 };
        pva_source *src = NULL;
        const char *refusal = NULL;
        if (db_name_to_addr(name, &addr) != DB_OK && !(src = pva_source_find(name)))
            refusal = "no such channel";
        else if (!src && addr.type == DBF_NOACCESS)
            refusal = "field not accessible";       /* as QSRV: no channel rather than failing reads */
        else if (c->nchans >= pva_server_limits.max_channels)
            refusal = "channel limit reached";
        if (refusal) {
            if (c->nchans >= pva_server_limits.max_channels)
                log_warn("pva", "client %s (%s@%s): channel limit %u reached, refusing %s", c->peer, c->user,
                         c->host, pva_server_limits.max_channels, name);
            size_t m = reply_begin(c, PVA_CMD_CREATE_CHANNEL);
            pva_put32(&c->out, cid);
            pva_put32(&c->out, 0xFFFFFFFFu);
            pva_put_status(&c->out, PVA_FATAL, refusal);
            reply_end(c, m);
            continue;
        }
        uint32_t slot = 0;
        while (slot < c->chan_cap && c->chans[slot])
            slot++;
        if (slot == c->chan_cap) {
            uint32_t cap = c->chan_cap ? c->chan_cap * 2 : 16;
            c->chans = xrealloc(c->chans, cap * sizeof *c->chans);
            memset(c->chans + c->chan_cap, 0, (cap - c->chan_cap) * sizeof *c->chans);
            c->chan_cap = cap;
        }
        pva_chan *ch = xcalloc(1, sizeof *ch);
        ch->cid = cid;
        ch->sid = slot + 1;
        ch->addr = addr;
        ch->src = src;
        str_copy(ch->name, name, sizeof ch->name);
        if (!src)
            pva_nt_build(&addr, &ch->nt);
        c->chans[slot] = ch;
        c->nchans++;
        db_lock();
        ch->rights = rights_locked(c, ch);
        db_unlock();
        size_t m = reply_begin(c, PVA_CMD_CREATE_CHANNEL);
        pva_put32(&c->out, cid);
        pva_put32(&c->out, ch->sid);
        pva_put_status(&c->out, PVA_OK, NULL);
        reply_end(c, m);
    }
}

static void free_chan(pva_conn *c, pva_chan *ch)
{
    for (uint32_t i = c->nops; i-- > 0;)
        if (c->ops[i]->chan == ch)
            pva_op_free(c, c->ops[i]);
    c->chans[ch->sid - 1] = NULL;
    c->nchans--;
    free(ch);
}

/* ---------------------------------------------------------------------------------------------------
 * What a channel serves: records through nt.c, structured PVs through their shared encoded value
 */
static void put_chan_type(pva_buf *b, const pva_chan *ch)
{
    if (ch->src)
        pva_buf_append(b, ch->src->type.data + ch->src->type.head, ch->src->type.len);
    else
        pva_nt_put_type(b, &ch->nt);
}

int pva_chan_put_value_locked(pva_buf *b, pva_chan *ch, uint64_t mask, uint64_t *seq)
{
    if (!ch->src)
        return pva_nt_put_value_locked(b, &ch->nt, &ch->addr, mask);
    pva_value *v = pva_source_latest(ch->src, seq);
    if (!v)
        return -1;
    size_t len;
    const uint8_t *bytes = pva_value_bytes(v, &len);
    pva_put_bitset(b, ch->src->leaf_bits);      /* every field, marked leaf by leaf as pvxs does */
    pva_buf_append(b, bytes, len);
    pva_value_unref(v);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------
 * Operations
 */
static pva_op *find_op(pva_conn *c, uint32_t ioid)
{
    for (uint32_t i = 0; i < c->nops; i++)
        if (c->ops[i]->ioid == ioid)
            return c->ops[i];
    return NULL;
}

static void put_done(void *user, int status);

void pva_op_free(pva_conn *c, pva_op *op)
{
    if (op->cmd == PVA_CMD_MONITOR)
        pva_mon_free(c, op);
    db_lock();
    if (op->put_pending)
        db_put_notify_cancel(put_done, op);
    db_unlock();
    for (uint32_t i = 0; i < c->nops; i++)
        if (c->ops[i] == op) {
            c->ops[i] = c->ops[--c->nops];
            break;
        }
    free(op);
}

/* What a pvRequest asks for: fields (paths under "field") and record._options. */
typedef struct request {
    const pva_nt *nt;
    uint64_t mask;
    int fields_named, all;
    char process[16], block[16], queue_size[16], pipeline[16];
} request;

static void request_visit(void *user, const char *path, const char *text)
{
    request *q = user;
    if (!strcmp(path, "field") && !text) {
        q->all = 1;
    } else if (!strncmp(path, "field.", 6)) {
        char sel[256];
        str_copy(sel, path + 6, sizeof sel);
        q->fields_named = 1;
        /* "field.a.b" with a leaf text would be odd; select the named node either way. */
        q->mask |= pva_nt_select(q->nt, sel);
    } else if (!strncmp(path, "record._options.", 16) && text) {
        const char *opt = path + 16;
        char *dst = !strcmp(opt, "process") ? q->process : !strcmp(opt, "block") ? q->block
                  : !strcmp(opt, "queueSize") ? q->queue_size : !strcmp(opt, "pipeline") ? q->pipeline : NULL;
        if (dst)
            str_copy(dst, text, sizeof q->process);
    }
}

static int option_true(const char *v)
{
    return !strcmp(v, "true") || !strcmp(v, "1");
}

/* INIT of GET, PUT, MONITOR, PROCESS: creates the op and answers with its type. */
static int op_init(pva_conn *c, pva_chan *ch, uint8_t cmd, uint32_t ioid, uint8_t sub, pva_reader *r)
{
    if (find_op(c, ioid)) {
        log_warn("pva", "client %s: INIT reuses the live request id %u; closing connection", c->peer, ioid);
        return -1;
    }
    request q = { .nt = &ch->nt };
    pva_type *t = pva_type_decode(r, &c->cache);
    pva_value_walk(r, t, &c->cache, request_visit, &q);
    pva_type_free(t);
    if (r->bad) {
        log_warn("pva", "client %s: malformed pvRequest for %s; closing connection", c->peer, ch->name);
        return -1;
    }
    uint32_t nfree = 0;
    if (cmd == PVA_CMD_MONITOR && (sub & PVA_SUB_ACK)) {
        nfree = pva_get32(r);
        if (r->bad)
            return -1;
    }
    uint64_t all = ch->src ? 1 : pva_nt_subtree(&ch->nt, 0);
    uint64_t mask = ch->src || !q.fields_named || q.all ? all : q.mask;
    if (!mask) {
        reply_status(c, cmd, ioid, PVA_SUB_INIT, PVA_ERROR, "pvRequest must select at least one field");
        return 0;
    }
    if (cmd == PVA_CMD_RPC || cmd == PVA_CMD_PUT_GET) {
        reply_status(c, cmd, ioid, PVA_SUB_INIT, PVA_ERROR, "%s not supported on %s",
                     cmd == PVA_CMD_RPC ? "RPC" : "PUT_GET", ch->name);
        return 0;
    }
    if ((cmd == PVA_CMD_GET || cmd == PVA_CMD_MONITOR) && !(ch->rights & ACCESS_READ)) {
        reply_status(c, cmd, ioid, PVA_SUB_INIT, PVA_ERROR, "Get not permitted");
        return 0;
    }
    if (c->nops >= pva_server_limits.max_ops) {
        log_warn("pva", "client %s (%s@%s): operation limit %u reached", c->peer, c->user, c->host,
                 pva_server_limits.max_ops);
        reply_status(c, cmd, ioid, PVA_SUB_INIT, PVA_ERROR, "operation limit reached");
        return 0;
    }
    pva_op *op = xcalloc(1, sizeof *op);
    op->ioid = ioid;
    op->cmd = cmd;
    op->chan = ch;
    op->conn = c;
    op->mask = mask;
    op->process = !q.process[0] || !strcmp(q.process, "passive") ? -1 : option_true(q.process);
    op->block = option_true(q.block);
    if (c->nops == c->ops_cap) {
        c->ops_cap = c->ops_cap ? c->ops_cap * 2 : 16;
        c->ops = xrealloc(c->ops, c->ops_cap * sizeof *c->ops);
    }
    c->ops[c->nops++] = op;
    if (cmd == PVA_CMD_MONITOR) {
        op->mon.pipeline = (sub & PVA_SUB_ACK) || option_true(q.pipeline);
        op->mon.window = nfree;
        if (pva_mon_init(c, op, q.queue_size) < 0) {
            pva_op_free(c, op);
            return 0;
        }
    }
    size_t m = reply_begin(c, cmd);
    pva_put32(&c->out, ioid);
    pva_put8(&c->out, PVA_SUB_INIT);
    pva_put_status(&c->out, PVA_OK, NULL);
    if (cmd != PVA_CMD_PROCESS)
        put_chan_type(&c->out, ch);
    reply_end(c, m);
    return 0;
}

/* IOID │ sub │ Status │ BitSet │ values: a GET reply or a PUT's read of the current value. */
static void reply_value(pva_conn *c, pva_op *op, uint8_t sub)
{
    pva_chan *ch = op->chan;
    if (!(ch->rights & ACCESS_READ)) {
        reply_status(c, op->cmd, op->ioid, sub, PVA_ERROR, "Get not permitted");
        return;
    }
    db_lock();
    size_t m = reply_begin(c, op->cmd);
    pva_put32(&c->out, op->ioid);
    pva_put8(&c->out, sub);
    size_t status_at = c->out.len;
    pva_put_status(&c->out, PVA_OK, NULL);
    uint64_t seq;
    if (pva_chan_put_value_locked(&c->out, ch, op->mask, &seq) < 0) {
        c->out.len = status_at;
        pva_put_status(&c->out, PVA_ERROR, ch->src ? "no value posted yet" : "cannot read the record");
    }
    reply_end(c, m);
    db_unlock();
}

static const char *put_error(int status)
{
    switch (status) {
    case DB_ERR_READ_ONLY: return "Put not permitted (read-only field)";
    case DB_ERR_DISABLED: return "Put disabled";
    default: return db_strerror(status);
    }
}

/* [db locked] A blocking put finished: reply. A cancelled one never gets here. */
static void put_done(void *user, int status)
{
    pva_op *op = user;
    op->put_pending = 0;
    pva_conn *c = op->conn;
    size_t m = reply_begin(c, PVA_CMD_PUT);
    pva_put32(&c->out, op->ioid);
    pva_put8(&c->out, 0);
    if (status == DB_OK)
        pva_put_status(&c->out, PVA_OK, NULL);
    else
        pva_put_status(&c->out, PVA_ERROR, put_error(status));
    reply_end(c, m);
}

static void put_write(pva_conn *c, pva_op *op, uint8_t sub, pva_reader *r)
{
    pva_chan *ch = op->chan;
    long nelem;
    if (!ch->src && pva_nt_decode_put(r, &ch->nt, &c->values, &nelem) < 0) {
        reply_status(c, PVA_CMD_PUT, op->ioid, sub, PVA_ERROR, "put data does not match the type of %s",
                     ch->name);
        return;
    }
    if (!(ch->rights & ACCESS_WRITE) || ch->src) {
        reply_status(c, PVA_CMD_PUT, op->ioid, sub, PVA_ERROR, "Put not permitted");
        return;
    }
    if (op->put_pending) {
        reply_status(c, PVA_CMD_PUT, op->ioid, sub, PVA_ERROR, "a put is already in progress");
        return;
    }
    if (nelem < 0 && op->process != 1) {
        reply_status(c, PVA_CMD_PUT, op->ioid, sub, PVA_OK, NULL);   /* nothing marked to write */
        return;
    }
    if (nelem > ch->addr.max_elements) {
        reply_status(c, PVA_CMD_PUT, op->ioid, sub, PVA_ERROR, "%ld elements exceed the %ld of %s", nelem,
                     ch->addr.max_elements, ch->name);
        return;
    }
    if (op->block && op->process != 0 && nelem >= 0) {
        db_lock();
        op->put_pending = 1;
        db_unlock();
        /* put_done runs exactly once, possibly inside this call. */
        db_put_notify_start(&ch->addr, ch->nt.dbr, c->values.data + c->values.head, nelem, put_done, op);
        return;
    }
    int status;
    if (op->process == -1) {
        status = db_put_field(&ch->addr, ch->nt.dbr, c->values.data + c->values.head, nelem);
    } else {
        db_lock();
        db_record *rec = ch->addr.rec;
        status = rec->disp && strcmp(ch->addr.field->name, "DISP") ? DB_ERR_DISABLED : DB_OK;
        if (status == DB_OK && nelem >= 0)
            status = db_put(&ch->addr, ch->nt.dbr, c->values.data + c->values.head, nelem);
        if (status == DB_OK && op->process == 1) {
            rec->putf = 1;
            db_process(rec);
        }
        db_unlock();
    }
    if (status != DB_OK)
        reply_status(c, PVA_CMD_PUT, op->ioid, sub, PVA_ERROR, "%s", put_error(status));
    else
        reply_status(c, PVA_CMD_PUT, op->ioid, sub, PVA_OK, NULL);
}

static void process_exec(pva_conn *c, pva_op *op, uint8_t sub)
{
    pva_chan *ch = op->chan;
    if (!(ch->rights & ACCESS_WRITE) || ch->src) {
        reply_status(c, PVA_CMD_PROCESS, op->ioid, sub, PVA_ERROR, "Process not permitted");
        return;
    }
    db_lock();
    db_process(ch->addr.rec);
    db_unlock();
    reply_status(c, PVA_CMD_PROCESS, op->ioid, sub, PVA_OK, NULL);
}

static int operation(pva_conn *c, uint8_t cmd, pva_reader *r)
{
    uint32_t sid = pva_get32(r), ioid = pva_get32(r);
    uint8_t sub = pva_get8(r);
    if (r->bad)
        return -1;
    pva_chan *ch = find_chan(c, sid);
    if (sub & PVA_SUB_INIT) {
        if (!ch) {
            reply_status(c, cmd, ioid, sub, PVA_ERROR, "no channel with id %u", sid);
            return 0;
        }
        return op_init(c, ch, cmd, ioid, sub, r);
    }
    pva_op *op = find_op(c, ioid);
    if (!op || op->cmd != cmd || op->chan != ch)
        return 0;       /* exec on an unknown or destroyed request: ignored, as pvxs does */
    if (cmd == PVA_CMD_MONITOR) {
        pva_mon_exec(c, op, sub, r);
    } else if (cmd == PVA_CMD_GET) {
        reply_value(c, op, sub);
    } else if (cmd == PVA_CMD_PUT) {
        if (sub & PVA_SUB_GET)
            reply_value(c, op, sub);
        else
            put_write(c, op, sub, r);
    } else if (cmd == PVA_CMD_PROCESS) {
        process_exec(c, op, sub);
    }
    if ((sub & PVA_SUB_DESTROY) && !op->put_pending)
        pva_op_free(c, op);
    return 0;
}

static void get_field(pva_conn *c, pva_reader *r)
{
    uint32_t sid = pva_get32(r), ioid = pva_get32(r);
    char sub[128];
    pva_get_string(r, sub, sizeof sub);
    pva_chan *ch = find_chan(c, sid);
    size_t m = reply_begin(c, PVA_CMD_GET_FIELD);
    pva_put32(&c->out, ioid);
    if (r->bad || !ch) {
        pva_put_status(&c->out, PVA_ERROR, "no such channel");
    } else {
        pva_put_status(&c->out, PVA_OK, NULL);
        put_chan_type(&c->out, ch);
    }
    reply_end(c, m);
}

/* ---------------------------------------------------------------------------------------------------
 * Connection validation
 */
typedef struct auth_data {
    char user[64];
} auth_data;

static void auth_visit(void *user, const char *path, const char *text)
{
    auth_data *a = user;
    if (text && !strcmp(path, "user"))
        str_copy(a->user, text, sizeof a->user);
}

static int validation(pva_conn *c, pva_reader *r)
{
    pva_get32(r);       /* client receive buffer size */
    pva_get16(r);       /* introspection registry size */
    pva_get16(r);       /* quality of service */
    char method[32];
    pva_get_string(r, method, sizeof method);
    auth_data a = { "" };
    pva_type *t = r->p < r->end ? pva_type_decode(r, &c->cache) : NULL;
    pva_value_walk(r, t, &c->cache, auth_visit, &a);
    pva_type_free(t);
    if (r->bad) {
        log_warn("pva", "client %s: malformed connection validation; closing connection", c->peer);
        return -1;
    }
    int ok = !strcmp(method, "ca") || !strcmp(method, "anonymous") || !method[0];
    size_t m = reply_begin(c, PVA_CMD_VALIDATED);
    pva_put_status(&c->out, ok ? PVA_OK : PVA_ERROR, ok ? NULL : "Client selects unadvertised auth");
    reply_end(c, m);
    if (!ok)
        return 0;
    /* As QSRV2: "ca" gives the account name, other methods "method/account". */
    str_copy(c->method, method[0] ? method : "anonymous", sizeof c->method);
    if (!strcmp(c->method, "ca"))
        str_copy(c->user, a.user, sizeof c->user);
    else
        str_copy(c->user, "anonymous/anonymous", sizeof c->user);
    c->validated = 1;
    pva_conn_refresh_rights(c);
    log_debug("pva", "client %s validated: %s user '%s'", c->peer, c->method, c->user);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------
 * Dispatch
 */
static int dispatch(pva_conn *c, uint8_t cmd, pva_reader *r)
{
    if (!c->validated && cmd != PVA_CMD_VALIDATION && cmd != PVA_CMD_ECHO && cmd != PVA_CMD_SEARCH) {
        log_warn("pva", "client %s: command 0x%02x before connection validation; closing connection", c->peer,
                 cmd);
        return -1;
    }
    switch (cmd) {
    case PVA_CMD_VALIDATION:
        return validation(c, r);
    case PVA_CMD_ECHO: {
        size_t m = reply_begin(c, PVA_CMD_ECHO);
        pva_buf_append(&c->out, r->p, (size_t)(r->end - r->p));
        reply_end(c, m);
        return 0;
    }
    case PVA_CMD_SEARCH:
        pthread_mutex_lock(&c->lock);
        c->reply_was = c->out.len;
        pva_search_reply_tcp(r, &pva_server_guid, pva_server_port, &c->out);
        pva_conn_wake_locked(c, c->reply_was);
        pthread_mutex_unlock(&c->lock);
        return 0;
    case PVA_CMD_CREATE_CHANNEL:
        create_channels(c, r);
        break;
    case PVA_CMD_DESTROY_CHANNEL: {
        uint32_t sid = pva_get32(r), cid = pva_get32(r);
        pva_chan *ch = find_chan(c, sid);
        if (r->bad)
            break;
        if (ch && ch->cid == cid)
            free_chan(c, ch);
        size_t m = reply_begin(c, PVA_CMD_DESTROY_CHANNEL);
        pva_put32(&c->out, sid);
        pva_put32(&c->out, cid);
        reply_end(c, m);
        return 0;
    }
    case PVA_CMD_GET: case PVA_CMD_PUT: case PVA_CMD_MONITOR: case PVA_CMD_PROCESS: case PVA_CMD_RPC:
    case PVA_CMD_PUT_GET:
        return operation(c, cmd, r);
    case PVA_CMD_GET_FIELD:
        get_field(c, r);
        return 0;
    case PVA_CMD_DESTROY_REQUEST: {
        uint32_t sid = pva_get32(r), ioid = pva_get32(r);
        pva_op *op = r->bad ? NULL : find_op(c, ioid);
        if (op && op->chan == find_chan(c, sid))
            pva_op_free(c, op);
        return 0;
    }
    default:
        return 0;       /* CANCEL_REQUEST, MESSAGE, AUTHNZ, unknown: skipped, as pvxs does */
    }
    if (r->bad) {
        log_warn("pva", "client %s: truncated message (command 0x%02x); closing connection", c->peer, cmd);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------------
 * Life cycle and framing
 */
pva_conn *pva_conn_new(const char *peer, const char *host, int fd, pva_wake_fn wake)
{
    pva_conn *c = xcalloc(1, sizeof *c);
    str_copy(c->peer, peer, sizeof c->peer);
    str_copy(c->host, host, sizeof c->host);
    str_copy(c->user, "anonymous/anonymous", sizeof c->user);
    c->fd = fd;
    c->wake = wake;
    c->last_alive = time_monotonic();
    pthread_mutex_init(&c->lock, NULL);
    /* The server speaks first: byte order (little endian), then the authentication methods it offers. */
    pthread_mutex_lock(&c->lock);
    pva_put_control(&c->out, PVA_CTRL_SET_BYTE_ORDER, 0);
    size_t m = pva_msg_begin(&c->out, PVA_CMD_VALIDATION);
    pva_put32(&c->out, 65536);
    pva_put16(&c->out, 0x7FFF);
    pva_put_size(&c->out, 2);
    pva_put_string(&c->out, "anonymous");
    pva_put_string(&c->out, "ca");
    pva_msg_end(&c->out, m);
    pthread_mutex_unlock(&c->lock);
    return c;
}

/* One complete message (segments already joined). */
static int handle(pva_conn *c, const pva_hdr *h, const uint8_t *payload, size_t len)
{
    pva_reader r = { .p = payload, .end = payload + len, .be = (h->flags & PVA_FLAG_BE) != 0 };
    log_debug("pva", "client %s: command 0x%02x, %zu bytes", c->peer, h->cmd, len);
    return dispatch(c, h->cmd, &r);
}

int pva_conn_input(pva_conn *c, const uint8_t *data, size_t len)
{
    if (len) {
        pva_buf_append(&c->in, data, len);
        c->last_alive = time_monotonic();
    }
    while (!c->closing && c->in.len >= PVA_HDR_SIZE) {
        pthread_mutex_lock(&c->lock);
        int backlog = pva_conn_queued_locked(c) >= pva_server_limits.max_queue_bytes;
        pthread_mutex_unlock(&c->lock);
        if (backlog)
            break;      /* resumed by the loop once the client has read its replies */
        const uint8_t *msg = c->in.data + c->in.head;
        pva_hdr h;
        if (pva_hdr_decode(msg, &h) < 0) {
            log_warn("pva", "client %s: bad message header (magic 0x%02x version %u); closing connection",
                     c->peer, msg[0], msg[1]);
            c->closing = 1;
            break;
        }
        if (h.flags & PVA_FLAG_SERVER) {
            log_warn("pva", "client %s: message flagged as sent by a server; closing connection", c->peer);
            c->closing = 1;
            break;
        }
        if (h.flags & PVA_FLAG_CONTROL) {
            pva_buf_consume(&c->in, PVA_HDR_SIZE);     /* control messages from clients carry nothing we use */
            continue;
        }
        if (h.size > pva_server_limits.max_message_bytes ||
            c->seg.len + h.size > pva_server_limits.max_message_bytes) {
            log_warn("pva", "client %s: message of %u bytes exceeds the limit of %zu; closing connection",
                     c->peer, h.size, pva_server_limits.max_message_bytes);
            c->closing = 1;
            break;
        }
        if (c->in.len < PVA_HDR_SIZE + (size_t)h.size)
            break;
        const uint8_t *payload = msg + PVA_HDR_SIZE;
        unsigned seg = h.flags & PVA_FLAG_SEGMENT;
        int rc = 0;
        if (seg == 0 && !c->in_segment) {
            rc = handle(c, &h, payload, h.size);
        } else if ((seg == 0x10) == c->in_segment || seg == 0) {
            log_warn("pva", "client %s: segment out of order; closing connection", c->peer);
            rc = -1;
        } else {
            pva_buf_append(&c->seg, payload, h.size);
            c->in_segment = seg != 0x20;
            if (seg == 0x20) {
                rc = handle(c, &h, c->seg.data + c->seg.head, c->seg.len);
                pva_buf_reset(&c->seg);
            }
        }
        pva_buf_consume(&c->in, PVA_HDR_SIZE + (size_t)h.size);
        if (rc < 0)
            c->closing = 1;
    }
    return c->closing ? -1 : 0;
}

void pva_conn_free(pva_conn *c)
{
    while (c->nops)
        pva_op_free(c, c->ops[c->nops - 1]);
    for (uint32_t i = 0; i < c->chan_cap; i++)
        if (c->chans[i])
            free_chan(c, c->chans[i]);
    free(c->chans);
    free(c->ops);
    pva_type_cache_free(&c->cache);
    pva_buf_free(&c->in);
    pva_buf_free(&c->values);
    pva_buf_free(&c->seg);
    pva_buf_free(&c->out);
    pva_value_unref(c->splice);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
