/* db_ca.c -- database links to records of other IOCs ("OTHER:pv CP MS" naming no record here, or any link with
 * the CA modifier), as EPICS dbCa does them, through Debian's Channel Access client library (libca).
 *
 * Input links never wait for the network: each link subscribes to its PV (DBR_TIME_DOUBLE, or DBR_TIME_STRING
 * for a string PV; every element) and a read copies the newest update. Until the first update, while
 * disconnected or without read access the read fails and the record goes to LINK/INVALID, keeping its value;
 * MS/MSS/MSI carry the remote alarm as for local links. CP processes the record on every update and on a
 * disconnect (so the record shows the LINK alarm); CPP only when the record is Passive. Output links send a
 * plain put (no completion), or, for "Async Soft Channel" records, a put with completion (ca_put_callback):
 * the record stays active until the other IOC reports, then runs again and takes the outcome -- the remote
 * failure (a refused put: limits, DISP, access rights), or a disconnect while waiting, fail it. Disconnected
 * or without write access a put fails at once and the record goes to LINK/INVALID. Channels reconnect by
 * themselves (libca). `dbcar` reports them.
 *
 * Drivers reach PVs of other IOCs through the same links without a record (db_ca_channel: the stage motors of
 * drivers/motion): a channel subscribes like an input link, and puts plainly or with completion; its
 * completion (done, failed, refused by the other IOC, or lost with the channel) is called on this module's
 * completion thread with the db lock held, as db_put_notify's. Channels live until db_shutdown closes them.
 *
 * Threads and locks: one preemptive libca context, created by the first thread that opens a link or channel
 * (iocInit's, or a driver's own: open_lock guards the context, the list of links and the completion thread's
 * start); any other thread that puts or opens attaches to it first. libca's own threads run the connection,
 * update and put callbacks: they take only the link's lock and may queue the record for processing
 * (db_request_process) or a channel's completion (the completion thread takes the db lock, then calls it),
 * never the db lock. Record processing holds the db lock and takes a link's lock after it (db before module).
 * At db_shutdown the drivers' puts still under way fail and the completion thread ends (db_ca_channels_stop),
 * links are cleared when the records are freed (db_link_release) and the remaining channels after them, with
 * no link lock held, then the context is destroyed.
 */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- The part of libca's C API used here. Debian's libca-dev ships no headers; these declarations follow
 * cadef.h / db_access.h of EPICS Base 7.0 (the C ABI of libca 4.13). */
typedef struct oldChannelNotify *chid;
typedef struct oldSubscription *evid;
struct ca_client_context;
struct connection_handler_args { chid chid; long op; };
struct event_handler_args { void *usr; chid chid; long type; long count; const void *dbr; int status; };
struct exception_handler_args {
    void *usr; chid chid; long type; long count; void *addr; long stat; long op; const char *ctx;
    const char *pFile; unsigned lineNo;
};
int ca_context_create(int preemptive_callbacks);
struct ca_client_context *ca_current_context(void);
int ca_attach_context(struct ca_client_context *context);
void ca_context_destroy(void);
int ca_add_exception_event(void (*handler)(struct exception_handler_args), void *user);
int ca_create_channel(const char *name, void (*conn)(struct connection_handler_args), void *user, unsigned priority,
                      chid *channel);
int ca_clear_channel(chid channel);
int ca_create_subscription(long type, unsigned long count, chid channel, long mask,
                           void (*fn)(struct event_handler_args), void *user, evid *subscription);
int ca_array_put(long type, unsigned long count, chid channel, const void *value);
int ca_array_put_callback(long type, unsigned long count, chid channel, const void *value,
                          void (*fn)(struct event_handler_args), void *user);
int ca_flush_io(void);
void *ca_puser(chid channel);
short ca_field_type(chid channel);
const char *ca_host_name(chid channel);
unsigned ca_read_access(chid channel);
unsigned ca_write_access(chid channel);
const char *ca_message(long status);

enum { CA_OP_CONN_UP = 6, ECA_NORMAL = 1, CA_PRIORITY_DB_LINKS = 80 };
enum { CA_DBR_STRING = 0, CA_DBR_DOUBLE = 6, CA_DBR_TIME_STRING = 14, CA_DBR_TIME_DOUBLE = 20 };
enum { CA_DBE_VALUE = 1, CA_DBE_ALARM = 4 };
/* Where DBR_TIME_* values sit (status, severity, time stamp {seconds since 1990, ns}, then the value). */
enum { TIME_STATUS = 0, TIME_SEVERITY = 2, TIME_SECONDS = 4, TIME_NANOSECONDS = 8, TIME_STRING_VALUE = 12,
       TIME_DOUBLE_VALUE = 16 };

/* ---- Links */
struct db_ca_link {
    /* Set when the link is opened (iocInit), read-only afterwards. */
    char pv[DB_LINK_SIZE];
    char owner[DB_NAME_SIZE + 16];     /* "REC.FIELD" of a record's link, or the driver owning a channel */
    db_record *rec;                    /* NULL: a driver's channel */
    const db_link *link;
    int input;                         /* an input link (subscribes); else an output link (puts) */
    chid channel;
    /* Guarded by lock. */
    pthread_mutex_t lock;
    int connected, subscribed, has_value, string_value;
    double *values;                    /* the newest update (doubles), nvalues of capacity */
    long nvalues, capacity;
    char text[DB_STRING_SIZE];         /* the newest update of a string PV */
    uint16_t stat, sevr;
    unsigned long disconnects, failed_writes;
    struct put_token *put;             /* the put with completion under way (NULL: none); freed by on_put_done */
    int put_status;                    /* the outcome of the last one: ECA_NORMAL, a libca status, or PUT_LOST */
    void (*changed)(void *user);       /* a driver's channel: told of every update and disconnect */
    void *changed_user;
    struct db_ca_link *next;           /* all links: iocInit thread, then read-only */
};

/* One put with completion: libca's callback argument. Owned by the link while under way; a disconnect ends the
 * wait (the link forgets it) and the late callback, if any, only frees it. */
struct put_token {
    db_ca_link *link;
    int forgotten;                     /* guarded by the link's lock */
    db_ca_done_fn done;                /* a channel's put: its owner's completion */
    void *user;
};
enum { PUT_LOST = -1 };                /* the channel went down while the put was under way */

/* The context, the list of links and channels, and the completion thread's start: guarded by open_lock, as
 * drivers open channels from their own threads (the XANES stage) while iocInit opens links. Taken after the db
 * lock (dbcar), never before it. */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ca_client_context *context;       /* created by the first thread that opens a link or channel */
static db_ca_link *links;
static _Thread_local int attached;

/* ---- The completion thread: channels' put completions, called with the db lock held. */
typedef struct completion {
    db_ca_done_fn done;
    void *user;
    int ok;
    char why[DB_LINK_SIZE + 96];
    struct completion *next;
} completion;

static struct {
    pthread_mutex_t lock;              /* guards the queue and stopping */
    pthread_cond_t wake;
    completion *head, **tail;
    int started, stopping;
    pthread_t thread;
} completions = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .tail = &completions.head};

static void *completion_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&completions.lock);
    for (;;) {
        while (!completions.head && !completions.stopping) pthread_cond_wait(&completions.wake, &completions.lock);
        completion *c = completions.head;
        if (!c) break;                               /* stopping, and everything queued has been called */
        completions.head = c->next;
        if (!completions.head) completions.tail = &completions.head;
        pthread_mutex_unlock(&completions.lock);
        db_lock();
        c->done(c->user, c->ok, c->why);
        db_unlock();
        free(c);
        pthread_mutex_lock(&completions.lock);
    }
    pthread_mutex_unlock(&completions.lock);
    return NULL;
}

/* Any thread (a link's lock not held): queues a channel's completion; dropped once the thread has stopped. */
static void complete_later(db_ca_done_fn done, void *user, int ok, const char *why)
{
    completion *c = xcalloc(1, sizeof *c);
    c->done = done, c->user = user, c->ok = ok;
    str_copy(c->why, why, sizeof c->why);
    pthread_mutex_lock(&completions.lock);
    int running = completions.started && !completions.stopping;
    if (running) {
        *completions.tail = c;
        completions.tail = &c->next;
        pthread_cond_signal(&completions.wake);
    }
    pthread_mutex_unlock(&completions.lock);
    if (!running) free(c);
}

/* libca's messages for errors of circuits and requests: one log line each instead of its stderr block. */
static void on_exception(struct exception_handler_args args)
{
    log_warn("calink", "%s%s%s: %s", args.chid ? ((db_ca_link *)ca_puser(args.chid))->pv : "",
             args.chid ? " " : "", args.ctx ? args.ctx : "", ca_message(args.stat));
}

static void attach(void)
{
    if (attached) return;
    pthread_mutex_lock(&open_lock);
    if (context) attached = ca_attach_context(context) == ECA_NORMAL;
    pthread_mutex_unlock(&open_lock);
}

static void request_processing(db_ca_link *l)
{
    if (!l->rec) return;                             /* a driver's channel: read when used */
    if ((l->link->flags & DBLINK_CP) || ((l->link->flags & DBLINK_CPP) && l->rec->scan == DB_SCAN_PASSIVE))
        db_request_process(l->rec);
}

static void on_update(struct event_handler_args args)
{
    db_ca_link *l = args.usr;
    if (args.status != ECA_NORMAL || !args.dbr) return;
    const unsigned char *dbr = args.dbr;
    pthread_mutex_lock(&l->lock);
    memcpy(&l->stat, dbr + TIME_STATUS, sizeof l->stat);
    memcpy(&l->sevr, dbr + TIME_SEVERITY, sizeof l->sevr);
    if (args.type == CA_DBR_TIME_STRING) {
        str_copy(l->text, (const char *)dbr + TIME_STRING_VALUE, sizeof l->text);
    } else {
        long n = args.count > 0 ? args.count : 0;
        if (n > l->capacity) {
            l->values = xrealloc(l->values, (size_t)n * sizeof *l->values);
            l->capacity = n;
        }
        if (n > 0) memcpy(l->values, dbr + TIME_DOUBLE_VALUE, (size_t)n * sizeof *l->values);   /* empty array: none */
        l->nvalues = n;
    }
    l->has_value = 1;
    void (*changed)(void *) = l->changed;
    void *changed_user = l->changed_user;
    pthread_mutex_unlock(&l->lock);
    request_processing(l);
    if (changed) changed(changed_user);
}

static int send_put(db_ca_link *l, const db_span *src, long nelem, struct put_token *token);

static const char *put_error(int status)
{
    return status == PUT_LOST ? "disconnected before it completed" : ca_message(status);
}

/* A put with completion has ended (no lock held): its record runs again, or its owner hears the outcome. */
static void put_finished(db_ca_link *l, const struct put_token *t, int status)
{
    if (l->rec) {
        db_request_process(l->rec);
        return;
    }
    if (status != ECA_NORMAL)
        log_warn("calink", "%s -> %s: put failed: %s", l->owner, l->pv, put_error(status));
    char why[DB_LINK_SIZE + 96];
    snprintf(why, sizeof why, "%s: %s", l->pv, status == ECA_NORMAL ? "done" : put_error(status));
    complete_later(t->done, t->user, status == ECA_NORMAL, why);
}

static void on_connection(struct connection_handler_args args)
{
    db_ca_link *l = ca_puser(args.chid);
    int up = args.op == CA_OP_CONN_UP;
    pthread_mutex_lock(&l->lock);
    int subscribe = up && l->input && !l->subscribed;
    l->connected = up;
    if (up) {
        l->string_value = ca_field_type(args.chid) == CA_DBR_STRING;
    } else {
        l->disconnects++;
        l->has_value = 0;
    }
    struct put_token lost = {0};
    int lost_put = !up && l->put;
    if (lost_put) {
        lost = *l->put;
        l->put->forgotten = 1;
        l->put = NULL;
        l->put_status = PUT_LOST;
    }
    if (subscribe) l->subscribed = 1;
    long type = l->string_value ? CA_DBR_TIME_STRING : CA_DBR_TIME_DOUBLE;
    void (*changed)(void *) = up ? NULL : l->changed;
    void *changed_user = l->changed_user;
    pthread_mutex_unlock(&l->lock);
    if (changed) changed(changed_user);
    log_info("calink", "%s -> %s %s", l->owner, l->pv, up ? "connected" : "disconnected");
    if (subscribe) {
        /* libca keeps the subscription across reconnections (each starts with a fresh update) */
        evid ignored;
        if (ca_create_subscription(type, 0, args.chid, CA_DBE_VALUE | CA_DBE_ALARM, on_update, l, &ignored) !=
            ECA_NORMAL)
            log_error("calink", "%s: cannot subscribe", l->pv);
        ca_flush_io();
    }
    if (!up && l->input) request_processing(l);      /* the record shows the LINK alarm at once (CP) */
    if (lost_put) put_finished(l, &lost, PUT_LOST);  /* the waiting record or owner completes, failing */
}

static int ensure_context(void)
{
    if (context) return 0;
    if (ca_context_create(1) != ECA_NORMAL) {
        log_error("calink", "cannot create the Channel Access client context");
        return -1;
    }
    context = ca_current_context();
    attached = 1;
    ca_add_exception_event(on_exception, NULL);
    return 0;
}

static db_ca_link *open_channel(const char *pv, const char *owner, db_record *rec, const db_link *link, int input)
{
    pthread_mutex_lock(&open_lock);
    int no_context = ensure_context();
    pthread_mutex_unlock(&open_lock);
    if (no_context) return NULL;
    attach();
    db_ca_link *l = xcalloc(1, sizeof *l);
    str_copy(l->pv, pv, sizeof l->pv);
    str_copy(l->owner, owner, sizeof l->owner);
    l->rec = rec;
    l->link = link;
    l->input = input;
    pthread_mutex_init(&l->lock, NULL);
    pthread_mutex_lock(&open_lock);
    l->next = links;
    links = l;
    pthread_mutex_unlock(&open_lock);
    if (ca_create_channel(l->pv, on_connection, l, CA_PRIORITY_DB_LINKS, &l->channel) != ECA_NORMAL)
        log_error("calink", "%s: cannot create a channel for %s", owner, pv);
    ca_flush_io();
    return l;
}

db_ca_link *db_ca_link_open(db_record *rec, const db_link *link, const char *field, int input, const char *pv)
{
    char owner[sizeof ((db_ca_link *)0)->owner];
    snprintf(owner, sizeof owner, "%s.%s", rec->name, field);
    return open_channel(pv, owner, rec, link, input);
}

void db_ca_channels_stop(void)
{
    pthread_mutex_lock(&completions.lock);
    int started = completions.started;
    pthread_mutex_unlock(&completions.lock);
    if (!started) return;
    pthread_mutex_lock(&open_lock);
    for (db_ca_link *l = links; l; l = l->next) {
        if (l->rec) continue;
        pthread_mutex_lock(&l->lock);
        struct put_token lost = {0};
        int pending = l->put != NULL;
        if (pending) {
            lost = *l->put;
            l->put->forgotten = 1;
            l->put = NULL;
        }
        pthread_mutex_unlock(&l->lock);
        if (pending) complete_later(lost.done, lost.user, 0, "the IOC is shutting down");
    }
    pthread_mutex_unlock(&open_lock);
    pthread_mutex_lock(&completions.lock);
    completions.stopping = 1;
    pthread_cond_signal(&completions.wake);
    pthread_mutex_unlock(&completions.lock);
    pthread_join(completions.thread, NULL);
    pthread_mutex_lock(&completions.lock);
    completions.started = 0;
    pthread_mutex_unlock(&completions.lock);
}

db_ca_channel *db_ca_channel_open(const char *pv, const char *owner)
{
    pthread_mutex_lock(&completions.lock);
    int start = !completions.started;
    if (start && pthread_create(&completions.thread, NULL, completion_main, NULL) != 0) {
        pthread_mutex_unlock(&completions.lock);
        log_error("calink", "%s: cannot start the completion thread", owner);
        return NULL;
    }
    completions.started = 1;
    completions.stopping = 0;
    pthread_mutex_unlock(&completions.lock);
    return open_channel(pv, owner, NULL, NULL, 1);
}

void db_ca_channel_watch(db_ca_channel *c, void (*changed)(void *user), void *user)
{
    pthread_mutex_lock(&c->lock);
    c->changed = changed;
    c->changed_user = user;
    pthread_mutex_unlock(&c->lock);
}

/* [the channel's lock] Why the channel has no value to read, or NULL. */
static const char *read_problem(const db_ca_channel *c)
{
    return !c->connected ? "not connected" : !ca_read_access(c->channel) ? "no read access" :
           !c->has_value ? "no value yet" : NULL;
}

int db_ca_channel_get(db_ca_channel *c, double *value, char *text, size_t textlen, char *err, size_t errlen)
{
    pthread_mutex_lock(&c->lock);
    const char *why = read_problem(c);
    if (!why) {
        if (value) *value = c->string_value ? strtod(c->text, NULL) : c->nvalues > 0 ? c->values[0] : NAN;
        if (text) {
            if (c->string_value) str_copy(text, c->text, textlen);
            else snprintf(text, textlen, "%.17g", c->nvalues > 0 ? c->values[0] : NAN);
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (why) return error_set(err, errlen, "%s: %s", c->pv, why);
    return 0;
}

int db_ca_channel_severity(db_ca_channel *c)
{
    pthread_mutex_lock(&c->lock);
    int sevr = read_problem(c) ? 3 : c->sevr;      /* INVALID_ALARM */
    pthread_mutex_unlock(&c->lock);
    return sevr;
}

int db_ca_channel_get_array(db_ca_channel *c, double *values, long max, long *n, char *err, size_t errlen)
{
    pthread_mutex_lock(&c->lock);
    const char *why = read_problem(c);
    int waiting = c->connected && ca_read_access(c->channel) && !c->has_value;
    if (!why && c->string_value) why = "a string, not an array of numbers";
    *n = 0;
    if (!why) {
        *n = c->nvalues < max ? c->nvalues : max;
        if (*n > 0) memcpy(values, c->values, (size_t)*n * sizeof *values);
    }
    pthread_mutex_unlock(&c->lock);
    if (waiting) return 1;
    if (why) return error_set(err, errlen, "%s: %s", c->pv, why);
    return 0;
}

int db_ca_channel_put(db_ca_channel *c, double value, db_ca_done_fn done, void *user, char *err, size_t errlen)
{
    db_span src = {DBF_DOUBLE, &value, sizeof value, NULL};
    struct put_token *t = NULL;
    if (done) {
        t = xcalloc(1, sizeof *t);
        t->link = c, t->done = done, t->user = user;
    }
    if (send_put(c, &src, 1, t) == 0) return 0;
    free(t);
    pthread_mutex_lock(&c->lock);
    const char *why = !c->connected ? "not connected" : !ca_write_access(c->channel) ? "no write access" :
                      "the put was refused";
    pthread_mutex_unlock(&c->lock);
    return error_set(err, errlen, "%s: %s", c->pv, why);
}

/* One db_ca_channel_put_wait: shared by the waiting thread and the completion, freed by the last of the two. */
typedef struct put_waiter {
    pthread_mutex_t lock;              /* guards the rest */
    pthread_cond_t finished_cond;
    int refs, finished, ok;
    char why[DB_LINK_SIZE + 96];
} put_waiter;

static void put_waiter_release(put_waiter *w)
{
    pthread_mutex_lock(&w->lock);
    int last = --w->refs == 0;
    pthread_mutex_unlock(&w->lock);
    if (!last) return;
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->finished_cond);
    free(w);
}

/* db_ca's completion thread (db lock held): only hands the verdict over. */
static void put_waited(void *user, int ok, const char *why)
{
    put_waiter *w = user;
    pthread_mutex_lock(&w->lock);
    w->finished = 1, w->ok = ok;
    str_copy(w->why, why, sizeof w->why);
    pthread_cond_broadcast(&w->finished_cond);
    pthread_mutex_unlock(&w->lock);
    put_waiter_release(w);
}

int db_ca_channel_put_wait(db_ca_channel *c, double value, double timeout_s, char *err, size_t errlen)
{
    put_waiter *w = xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->finished_cond, NULL);
    w->refs = 2;
    if (db_ca_channel_put(c, value, put_waited, w, err, errlen)) {
        w->refs = 1;                                 /* never sent: no completion will come */
        put_waiter_release(w);
        return -1;
    }
    struct timespec until = time_add(time_wall(), timeout_s);
    pthread_mutex_lock(&w->lock);
    while (!w->finished)
        if (pthread_cond_timedwait(&w->finished_cond, &w->lock, &until)) break;
    int finished = w->finished, ok = w->ok;
    char why[sizeof w->why];
    str_copy(why, w->why, sizeof why);
    pthread_mutex_unlock(&w->lock);
    put_waiter_release(w);
    if (!finished) return error_set(err, errlen, "%s: no completion within %.0f s", c->pv, timeout_s);
    if (!ok) return error_set(err, errlen, "%s", why);   /* "PV: reason" */
    return 0;
}

int db_ca_link_read(db_ca_link *l, const db_span *dst, long *nelem, uint16_t *stat, uint16_t *sevr)
{
    pthread_mutex_lock(&l->lock);
    int status = -1;
    if (l->connected && l->has_value && ca_read_access(l->channel)) {
        db_span src = {DBF_DOUBLE, l->values, sizeof *l->values, NULL};
        long n = l->nvalues < *nelem ? l->nvalues : *nelem;
        if (l->string_value) {
            src = (db_span){DBF_STRING, l->text, sizeof l->text, NULL};
            n = 1;
        }
        status = db_convert(dst, &src, n);
        *nelem = status == DB_OK ? n : 0;
        *stat = l->stat;
        *sevr = l->sevr;
    }
    pthread_mutex_unlock(&l->lock);
    return status;
}

static void on_put_done(struct event_handler_args args)
{
    struct put_token *t = args.usr;
    db_ca_link *l = t->link;
    pthread_mutex_lock(&l->lock);
    int waited = !t->forgotten;
    if (waited) {
        l->put = NULL;
        l->put_status = args.status;
    }
    pthread_mutex_unlock(&l->lock);
    if (waited) put_finished(l, t, args.status);
    free(t);
}

/* Converts and sends a put (with completion when token is set); 0 or -1. */
static int send_put(db_ca_link *l, const db_span *src, long nelem, struct put_token *token)
{
    pthread_mutex_lock(&l->lock);
    int ok = l->connected && ca_write_access(l->channel) && !(token && l->put);
    int string_value = l->string_value;
    const char *why = !l->connected ? "not connected" : !ca_write_access(l->channel) ? "no write access" :
                      !ok ? "a put with completion is still under way" : NULL;
    if (!ok) l->failed_writes++;
    if (ok && token) l->put = token;
    pthread_mutex_unlock(&l->lock);
    if (!ok) {
        log_warn("calink", "%s -> %s: put refused: %s", l->owner, l->pv, why);
        return -1;
    }
    attach();
    int status = -1;
    long type = string_value ? CA_DBR_STRING : CA_DBR_DOUBLE;
    unsigned long count = string_value ? 1 : (unsigned long)(nelem > 0 ? nelem : 1);
    void *values = xmalloc(string_value ? DB_STRING_SIZE : count * sizeof(double));
    db_span dst = {string_value ? DBF_STRING : DBF_DOUBLE, values, string_value ? DB_STRING_SIZE : sizeof(double),
                   NULL};
    if (db_convert(&dst, src, (long)count) == DB_OK)
        status = token ? ca_array_put_callback(type, count, l->channel, values, on_put_done, token)
                       : ca_array_put(type, count, l->channel, values);
    free(values);
    ca_flush_io();
    if (status != ECA_NORMAL && token) {
        pthread_mutex_lock(&l->lock);
        if (l->put == token) l->put = NULL;       /* never sent: libca will not call back */
        l->failed_writes++;
        pthread_mutex_unlock(&l->lock);
        log_warn("calink", "%s -> %s: put refused: %s", l->owner, l->pv,
                 status == -1 ? "value not convertible" : ca_message(status));
    }
    return status == ECA_NORMAL ? 0 : -1;
}

int db_ca_link_write(db_ca_link *l, const db_span *src, long nelem)
{
    return send_put(l, src, nelem, NULL);
}

int db_ca_link_write_start(db_ca_link *l, const db_span *src, long nelem)
{
    struct put_token *t = xcalloc(1, sizeof *t);
    t->link = l;
    if (send_put(l, src, nelem, t) == 0) return 0;
    free(t);                          /* never handed to libca */
    return -1;
}

int db_ca_link_write_outcome(db_ca_link *l)
{
    pthread_mutex_lock(&l->lock);
    int status = l->put ? ECA_NORMAL : l->put_status;
    int pending = l->put != NULL;
    pthread_mutex_unlock(&l->lock);
    if (pending) return 1;
    if (status == ECA_NORMAL) return 0;
    log_warn("calink", "%s -> %s: put failed: %s", l->owner, l->pv, put_error(status));
    return -1;
}

void db_ca_link_close(db_ca_link *l)
{
    attach();
    ca_clear_channel(l->channel);          /* waits for its callbacks; no lock of ours is held here */
    if (l->put) free(l->put);              /* a put with completion still under way: libca dropped it */
    pthread_mutex_lock(&open_lock);
    for (db_ca_link **p = &links; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    pthread_mutex_unlock(&open_lock);
    pthread_mutex_destroy(&l->lock);
    free(l->values);
    free(l);
}

void db_ca_context_end(void)
{
    if (!context) return;
    attach();
    while (links) db_ca_link_close(links);      /* the drivers' channels (records' links are closed already) */
    pthread_mutex_lock(&open_lock);
    ca_context_destroy();
    context = NULL;
    attached = 0;
    pthread_mutex_unlock(&open_lock);
}

void db_ca_report(FILE *out, const char *name, int level)
{
    db_lock();
    int all = !name || !*name || strcmp(name, "*") == 0;
    if (all) fprintf(out, "CA links in all records\n");
    else fprintf(out, "CA links in record named '%s'\n", name);
    int total = 0, connected = 0, no_read = 0, no_write = 0;
    unsigned long disconnects = 0, failed = 0;
    pthread_mutex_lock(&open_lock);
    for (db_ca_link *l = links; l; l = l->next) {
        if (!all && strcmp(l->rec ? l->rec->name : l->owner, name) != 0) continue;
        pthread_mutex_lock(&l->lock);
        int up = l->connected;
        unsigned long d = l->disconnects, w = l->failed_writes;
        pthread_mutex_unlock(&l->lock);
        total++;
        connected += up;
        if (up) {
            no_read += !ca_read_access(l->channel);
            no_write += !ca_write_access(l->channel);
            disconnects += d;
            failed += w;
        }
        if (level >= 1 && !up) fprintf(out, "    %s --> %s  (%lu, %lu)\n", l->owner, l->pv, d, w);
        if (level >= 2 && up) {
            fprintf(out, "    %s ==> %s  (%lu, %lu)\n", l->owner, l->pv, d, w);
            fprintf(out, "       host %s, %s\n", ca_host_name(l->channel),
                    ca_read_access(l->channel) ? (ca_write_access(l->channel) ? "Read/Write" : "Read Only")
                                               : (ca_write_access(l->channel) ? "Write Only" : "No Access"));
        }
    }
    pthread_mutex_unlock(&open_lock);
    fprintf(out, "Total %d CA link%s; %d connected, %d not connected.\n", total, total == 1 ? "" : "s", connected,
            total - connected);
    fprintf(out, "    %d can't read, %d can't write.  (%lu disconnects, %lu writes prohibited)\n", no_read, no_write,
            disconnects, failed);
    db_unlock();
}
