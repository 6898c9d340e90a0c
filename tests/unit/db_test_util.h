/* db_test_util.h -- helpers shared by the record database unit tests (test_db_*.c): building records
 * through db.h the way the .db loader does, reading/writing channels, counting monitor events. */
#ifndef RELOC_DB_TEST_UTIL_H
#define RELOC_DB_TEST_UTIL_H

#include "unit.h"
#include <time.h>

#include "core/db/db.h"

/* Creates a record and sets fields given as "FIELD", "value" pairs, ending with NULL. */
static inline db_record *make_record(const char *type, const char *name, ...)
{
    char err[256] = "";
    db_record *rec = db_create_record(type, name, err, sizeof err);
    if (!rec) fail_msg("create %s %s: %s", type, name, err);
    va_list ap;
    va_start(ap, name);
    for (const char *f = va_arg(ap, const char *); f; f = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        if (db_set_field_text(rec, f, v, err, sizeof err) != DB_OK) fail_msg("%s.%s=%s: %s", name, f, v, err);
    }
    va_end(ap);
    return rec;
}

static inline void init_db(void)
{
    char err[512] = "";
    int status = db_init(err, sizeof err);
    if (status != DB_OK) fail_msg("db_init: %s", err);
}

static inline db_addr addr_of(const char *channel)
{
    db_addr a;
    if (db_name_to_addr(channel, &a) != DB_OK) fail_msg("no channel %s", channel);
    return a;
}

static inline double get_double(const char *channel)
{
    db_addr a = addr_of(channel);
    double v = 0;
    long n = 1;
    db_lock();
    int status = db_get(&a, DBR_DOUBLE, &v, &n);
    db_unlock();
    if (status != DB_OK) fail_msg("get %s: %s", channel, db_strerror(status));
    return v;
}

static inline const char *get_string(const char *channel, char buf[DB_STRING_SIZE])
{
    db_addr a = addr_of(channel);
    long n = 1;
    db_lock();
    int status = db_get(&a, DBR_STRING, buf, &n);
    db_unlock();
    if (status != DB_OK) fail_msg("get %s: %s", channel, db_strerror(status));
    return buf;
}

static inline int put_double(const char *channel, double v)
{
    db_addr a = addr_of(channel);
    return db_put_field(&a, DBR_DOUBLE, &v, 1);
}

static inline int put_string(const char *channel, const char *s)
{
    char buf[DB_STRING_SIZE] = "";
    strncpy(buf, s, sizeof buf - 1);
    db_addr a = addr_of(channel);
    return db_put_field(&a, DBR_STRING, buf, 1);
}

static inline db_meta meta_of(const char *channel)
{
    db_addr a = addr_of(channel);
    db_meta m;
    db_lock();
    db_get_meta(&a, &m);
    db_unlock();
    return m;
}

/* Records every monitor event: mask and the value (as double) at the time of the event. */
typedef struct event_log {
    int count;
    unsigned masks[64];
    double values[64];
} event_log;

static inline void log_event(void *user, const db_addr *addr, unsigned mask)
{
    event_log *log = user;
    double v = 0;
    long n = 1;
    db_get(addr, DBR_DOUBLE, &v, &n);
    if (log->count < 64) {
        log->masks[log->count] = mask;
        log->values[log->count] = v;
    }
    log->count++;
}

/* Waits (bounded) until cond() holds; the database runs on its own threads meanwhile. */
static inline int wait_for(int (*cond)(void *), void *arg, double seconds)
{
    struct timespec ts = {0, 5000000};
    for (double t = 0; t < seconds; t += 0.005) {
        if (cond(arg)) return 1;
        nanosleep(&ts, NULL);
    }
    return cond(arg);
}

static inline int setup_db(void **state)
{
    (void)state;
    db_register_builtins();
    return 0;
}

static inline int teardown_db(void **state)
{
    (void)state;
    db_shutdown();
    return 0;
}

#endif
