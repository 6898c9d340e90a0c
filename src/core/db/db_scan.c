/* db_scan.c -- who processes records when: the periodic scan thread (".1 second" .. "10 second"), the
 * scan-once thread that runs queued processing (db_request_process, I/O Intr, SCAN=Event, CP links,
 * RPRO), and the lists that connect them.
 *
 * Threads: one periodic thread and one scan-once worker, started by db_init, joined by db_shutdown.
 * Locks: the scan mutex below guards the queue, the I/O Intr lists' membership and the event list; it is
 * taken after the db lock (never the other way round) and never held while processing. The periodic
 * lists are read by the periodic thread under the db lock; they change with both locks held.
 */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rec_list {
    db_record **recs;
    size_t count, cap;
} rec_list;

struct db_ioscan {
    rec_list members;
    struct db_ioscan *next;      /* all lists, for freeing */
};

#define NPERIODS 7
static const double periods[NPERIODS] = {10, 5, 2, 1, 0.5, 0.2, 0.1};   /* DB_SCAN_10S .. DB_SCAN_0_1S */

static pthread_mutex_t scan_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t scan_cond = PTHREAD_COND_INITIALIZER;
static rec_list periodic[NPERIODS], event_list;
static int *event_numbers;                /* EVNT of each event_list record, kept under the scan mutex */
static size_t event_numbers_cap;
static db_ioscan *ioscans;
static db_record **queue;                 /* ring buffer of records to process once */
static size_t queue_head, queue_count, queue_cap;
static int threads_running, stopping;
static pthread_t periodic_thread, once_thread;

static void list_add(rec_list *l, db_record *rec)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->recs = xrealloc(l->recs, l->cap * sizeof *l->recs);
    }
    l->recs[l->count++] = rec;
}

static void list_remove(rec_list *l, db_record *rec)
{
    for (size_t i = 0; i < l->count; i++) {
        if (l->recs[i] == rec) {
            memmove(&l->recs[i], &l->recs[i + 1], (l->count - i - 1) * sizeof *l->recs);
            l->count--;
            return;
        }
    }
}

static void list_free(rec_list *l)
{
    free(l->recs);
    memset(l, 0, sizeof *l);
}

int db_compare_phase(const void *a, const void *b)
{
    const db_record *ra = *(db_record *const *)a, *rb = *(db_record *const *)b;
    if (ra->phas != rb->phas) return ra->phas < rb->phas ? -1 : 1;
    return strcmp(ra->name, rb->name);
}

static void list_sort(rec_list *l)
{
    qsort(l->recs, l->count, sizeof *l->recs, db_compare_phase);
}

db_ioscan *db_ioscan_create(void)
{
    db_ioscan *io = xcalloc(1, sizeof *io);
    pthread_mutex_lock(&scan_mutex);
    io->next = ioscans;
    ioscans = io;
    pthread_mutex_unlock(&scan_mutex);
    return io;
}

/* Caller holds the scan mutex. */
static void enqueue(db_record *rec)
{
    if (!threads_running || stopping || rec->queued) return;   /* a late request after shutdown is dropped */
    if (queue_count == queue_cap) {
        size_t cap = queue_cap ? 2 * queue_cap : 64;
        db_record **q = xmalloc(cap * sizeof *q);
        for (size_t i = 0; i < queue_count; i++) q[i] = queue[(queue_head + i) % queue_cap];
        free(queue);
        queue = q;
        queue_cap = cap;
        queue_head = 0;
    }
    queue[(queue_head + queue_count++) % queue_cap] = rec;
    rec->queued = 1;
    pthread_cond_broadcast(&scan_cond);
}

void db_request_process(db_record *rec)
{
    pthread_mutex_lock(&scan_mutex);
    enqueue(rec);
    pthread_mutex_unlock(&scan_mutex);
}

void db_ioscan_request(db_ioscan *list)
{
    if (!list) return;
    pthread_mutex_lock(&scan_mutex);
    for (size_t i = 0; i < list->members.count; i++) enqueue(list->members.recs[i]);
    pthread_mutex_unlock(&scan_mutex);
}

void db_post_event(int event)
{
    pthread_mutex_lock(&scan_mutex);
    for (size_t i = 0; i < event_list.count; i++)
        if (event_numbers[i] == event) enqueue(event_list.recs[i]);
    pthread_mutex_unlock(&scan_mutex);
}

static void *once_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&scan_mutex);
    for (;;) {
        while (!queue_count && !stopping) pthread_cond_wait(&scan_cond, &scan_mutex);
        if (stopping) break;
        db_record *rec = queue[queue_head];
        queue_head = (queue_head + 1) % queue_cap;
        queue_count--;
        rec->queued = 0;
        pthread_mutex_unlock(&scan_mutex);
        db_lock();
        db_process_for(rec, PROCESS_QUEUED);
        db_unlock();
        pthread_mutex_lock(&scan_mutex);
    }
    pthread_mutex_unlock(&scan_mutex);
    return NULL;
}

static void *periodic_main(void *arg)
{
    (void)arg;
    double next[NPERIODS];
    double start = time_monotonic();
    for (int i = 0; i < NPERIODS; i++) next[i] = start + periods[i];
    pthread_mutex_lock(&scan_mutex);
    while (!stopping) {
        double soonest = next[0];
        for (int i = 1; i < NPERIODS; i++) soonest = next[i] < soonest ? next[i] : soonest;
        double wait = soonest - time_monotonic();
        if (wait > 0) {
            struct timespec deadline;
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline = time_add(deadline, wait);
            pthread_cond_timedwait(&scan_cond, &scan_mutex, &deadline);
            continue;
        }
        pthread_mutex_unlock(&scan_mutex);
        double now = time_monotonic();
        db_lock();
        for (int i = NPERIODS - 1; i >= 0; i--) {
            if (next[i] > now) continue;
            for (size_t k = 0; k < periodic[i].count; k++) db_process(periodic[i].recs[k]);
            next[i] += periods[i];
            if (next[i] < now) next[i] = now + periods[i];   /* fell behind: skip, do not burst */
        }
        db_unlock();
        pthread_mutex_lock(&scan_mutex);
    }
    pthread_mutex_unlock(&scan_mutex);
    return NULL;
}

/* Caller holds the db lock; takes the scan mutex. Returns non-zero when the record cannot join. */
static int join_scan(db_record *rec, char *err, size_t errlen)
{
    int status = 0;
    db_ioscan *io = NULL;
    if (rec->scan == DB_SCAN_IO_INTR) {
        if (!rec->dset || !rec->dset->get_ioint || rec->dset->get_ioint(rec, &io) != 0 || !io) {
            snprintf(err, errlen, "record '%s': SCAN \"I/O Intr\" but device support '%s' has no I/O Intr source",
                     rec->name, rec->dset ? rec->dset->name : "(none)");
            return -1;
        }
    }
    pthread_mutex_lock(&scan_mutex);
    if (rec->scan >= DB_SCAN_10S && rec->scan <= DB_SCAN_0_1S) {
        rec_list *l = &periodic[rec->scan - DB_SCAN_10S];
        list_add(l, rec);
        list_sort(l);
    } else if (rec->scan == DB_SCAN_EVENT) {
        list_add(&event_list, rec);
        if (event_numbers_cap < event_list.cap) {
            event_numbers_cap = event_list.cap;
            event_numbers = xrealloc(event_numbers, event_numbers_cap * sizeof *event_numbers);
        }
        event_numbers[event_list.count - 1] = rec->evnt;
    } else if (io) {
        list_add(&io->members, rec);
        list_sort(&io->members);
    }
    pthread_mutex_unlock(&scan_mutex);
    return status;
}

static void remove_event_record(db_record *rec)
{
    for (size_t i = 0; i < event_list.count; i++) {
        if (event_list.recs[i] == rec) {
            memmove(&event_numbers[i], &event_numbers[i + 1], (event_list.count - i - 1) * sizeof *event_numbers);
            break;
        }
    }
    list_remove(&event_list, rec);
}

static void leave_scan(db_record *rec, unsigned scan)
{
    pthread_mutex_lock(&scan_mutex);
    if (scan >= DB_SCAN_10S && scan <= DB_SCAN_0_1S) list_remove(&periodic[scan - DB_SCAN_10S], rec);
    else if (scan == DB_SCAN_EVENT) remove_event_record(rec);
    else if (scan == DB_SCAN_IO_INTR)
        for (db_ioscan *io = ioscans; io; io = io->next) list_remove(&io->members, rec);
    pthread_mutex_unlock(&scan_mutex);
}

void db_scan_record_changed(db_record *rec, unsigned old_scan)
{
    if (!db_is_running()) return;
    leave_scan(rec, old_scan);
    char err[256];
    if (join_scan(rec, err, sizeof err) != 0) {
        log_warn("db", "%s; the record is now Passive", err);
        rec->scan = DB_SCAN_PASSIVE;
    }
}

int db_scan_init(char *err, size_t errlen)
{
    for (size_t i = 0; i < records_count(); i++)
        if (join_scan(records_at(i), err, errlen) != 0) return DB_ERR_FAILED;
    pthread_mutex_lock(&scan_mutex);
    stopping = 0;
    threads_running = 1;
    pthread_mutex_unlock(&scan_mutex);
    if (pthread_create(&once_thread, NULL, once_main, NULL) != 0 ||
        pthread_create(&periodic_thread, NULL, periodic_main, NULL) != 0) {
        log_error("db", "cannot start scan threads");
        abort();
    }
    return DB_OK;
}

void db_scan_stop(void)
{
    pthread_mutex_lock(&scan_mutex);
    int was_running = threads_running;
    stopping = 1;
    pthread_cond_broadcast(&scan_cond);
    pthread_mutex_unlock(&scan_mutex);
    if (!was_running) return;
    pthread_join(once_thread, NULL);
    pthread_join(periodic_thread, NULL);
    pthread_mutex_lock(&scan_mutex);
    threads_running = 0;
    pthread_mutex_unlock(&scan_mutex);
}

void db_scan_clear(void)
{
    pthread_mutex_lock(&scan_mutex);
    for (int i = 0; i < NPERIODS; i++) list_free(&periodic[i]);
    list_free(&event_list);
    free(event_numbers);
    event_numbers = NULL;
    event_numbers_cap = 0;
    while (ioscans) {
        db_ioscan *next = ioscans->next;
        list_free(&ioscans->members);
        free(ioscans);
        ioscans = next;
    }
    free(queue);
    queue = NULL;
    queue_head = queue_count = queue_cap = 0;
    stopping = 0;
    pthread_mutex_unlock(&scan_mutex);
}
