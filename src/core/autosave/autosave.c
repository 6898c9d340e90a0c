/* autosave.c -- which fields are saved (info(autosaveFields)), restoring them before iocInit, watching
 * them after, and the rate-limited writer thread (see autosave.h for the threads and the lock order). */
#include "core/autosave/autosave.h"
#include "core/base/base.h"
#include "core/db/db.h"
#include "core/shell/shell.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Info keys listing the fields to save; "_pass0" is the EPICS autosave spelling, treated the same. */
static const char *const info_keys[] = {"autosaveFields", "autosaveFields_pass0"};
#define FIELD_SEPARATORS " \t,"

typedef struct watched_field {
    char channel[DB_NAME_SIZE + 8];
    db_addr addr;
    db_subscription *sub;
} watched_field;

/* Configuration and the watched fields: written by the shell thread before iocInit (or by autosave_stop
 * after the writer has been joined), read by the writer thread in between. */
static char *save_path;
static double save_period = 1.0;
static watched_field *watched;
static size_t nwatched;

/* Shared between monitor callbacks, the status device support, the shell and the writer thread; guarded by
 * `lock`. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int dirty, stopping;
static int file_rejected;            /* the save file of this start was set aside: settings were lost */
static int write_failing;            /* the last write failed */
static struct timespec last_written; /* wall-clock time of the last good write */
static pthread_t writer;
static int writer_running;

/* Calls fn(rec, field, user) for every field name in the record's autosave info items; stops at the first
 * non-zero return and returns it. */
static int foreach_saved_field(const db_record *rec, int (*fn)(const db_record *, const char *, void *), void *user)
{
    for (size_t k = 0; k < sizeof info_keys / sizeof *info_keys; k++) {
        const char *list = db_get_info(rec, info_keys[k]);
        while (list && *(list += strspn(list, FIELD_SEPARATORS))) {
            size_t len = strcspn(list, FIELD_SEPARATORS);
            char field[32];
            snprintf(field, sizeof field, "%.*s", (int)len, list);
            list += len;
            int rc = fn(rec, field, user);
            if (rc) return rc;
        }
    }
    return 0;
}

static int same_field(const db_record *rec, const char *field, void *wanted)
{
    return !strcmp(field, wanted);
}

/* Whether rec lists field in its autosave info items. */
static int field_is_saved(const db_record *rec, const char *field)
{
    return foreach_saved_field(rec, same_field, (void *)field);
}

/* Applies one validated entry before db_init. Arrays get their storage only when records initialize, so
 * they go to `deferred` and are put after db_init. A record or field that no longer asks to be saved is
 * skipped with a warning. */
static void restore_entry(const autosave_entry *e, autosave_set *deferred)
{
    const char *dot = strrchr(e->channel, '.');
    char name[DB_NAME_SIZE], msg[256];
    if (!dot || (size_t)(dot - e->channel) >= sizeof name) {
        log_warn("autosave", "%s: not a REC.FIELD channel, skipped", e->channel);
        return;
    }
    snprintf(name, sizeof name, "%.*s", (int)(dot - e->channel), e->channel);
    db_record *rec = db_find_record(name);
    const db_field_desc *field = rec ? db_find_field(rec, dot + 1) : NULL;
    if (!field || !field_is_saved(rec, dot + 1)) {
        log_warn("autosave", "%s: no longer saved (record or autosaveFields changed), skipped", e->channel);
        return;
    }
    if (field->flags & DBFLD_ARRAY) autosave_set_add(deferred, e->channel, e->value);
    else if (db_set_field_text(rec, dot + 1, e->value, msg, sizeof msg) != DB_OK)
        log_warn("autosave", "%s = \"%.80s\" not restored: %s", e->channel, e->value, msg);
}

/* Arrays of the save file, put after db_init; owned by the shell thread. */
static autosave_set deferred_arrays;

static void restore_deferred(void)
{
    for (size_t i = 0; i < deferred_arrays.n; i++) {
        const autosave_entry *e = &deferred_arrays.entries[i];
        db_addr addr;
        int rc = db_name_to_addr(e->channel, &addr);
        if (rc == DB_OK) rc = db_put_text(&addr, e->value);
        if (rc != DB_OK) log_warn("autosave", "%s not restored: %s", e->channel, db_strerror(rc));
    }
    autosave_set_free(&deferred_arrays);
}

typedef struct field_check {
    char *err;
    size_t errlen;
} field_check;

static int check_field(const db_record *rec, const char *field, void *user)
{
    if (db_find_field(rec, field)) return 0;
    field_check *c = user;
    snprintf(c->err, c->errlen, "record %s: info(autosaveFields) names \"%s\", which %s records do not have",
             rec->name, field, rec->rtype->name);
    return -1;
}

static int check_record(db_record *rec, void *user)
{
    return foreach_saved_field(rec, check_field, user);
}

/* iocInit, before db_init: every field the records ask to save must exist (a .db mistake stops the IOC like
 * an unknown field does); then apply a valid save file, or set a broken one aside (that never stops it). */
static int restore_before_init(char *err, size_t errlen)
{
    field_check check = {err, errlen};
    if (db_foreach_record(check_record, &check)) return -1;
    if (!save_path) return 0;
    autosave_set set = {0};
    char msg[512];
    int rc = autosave_file_read(save_path, &set, msg, sizeof msg);
    if (rc == 1) {
        log_info("autosave", "%s does not exist yet: starting from the database defaults", save_path);
        return 0;
    }
    if (rc < 0) {
        char *bad = NULL;
        if (asprintf(&bad, "%s.bad", save_path) < 0) abort();
        int moved = rename(save_path, bad) == 0;
        pthread_mutex_lock(&lock);
        file_rejected = 1;
        pthread_mutex_unlock(&lock);
        log_error("autosave", "save file rejected, nothing restored: %s; %s %s", msg,
                  moved ? "set aside as" : "could not be set aside as", bad);
        free(bad);
        return 0;
    }
    for (size_t i = 0; i < set.n; i++) restore_entry(&set.entries[i], &deferred_arrays);
    log_info("autosave", "restored %zu fields from %s", set.n, save_path);
    autosave_set_free(&set);
    return 0;
}

/* Monitor callback, db lock held: only flag the change (lock order: db, then ours). */
static void field_changed(void *user, const db_addr *addr, unsigned mask)
{
    pthread_mutex_lock(&lock);
    dirty = 1;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
}

#define AUTOSAVE_MAX_TEXT (64u << 20)

/* A field as text (numbers at full precision). db_get_text cuts what does not fit, so a text that fills the
 * buffer is read again into a larger one: an array must never be saved cut short. */
static int field_text(const db_addr *addr, char **text)
{
    size_t size = 1024;
    for (;;) {
        *text = xrealloc(*text, size);
        int rc = db_get_text(addr, *text, size);
        if (rc != DB_OK || strlen(*text) + 2 < size) return rc;
        if (size >= AUTOSAVE_MAX_TEXT) return DB_ERR_BAD_TYPE;
        size *= 4;
    }
}

static void write_snapshot(void)
{
    autosave_set set = {0};
    char *value = NULL, err[512];
    for (size_t i = 0; i < nwatched; i++) {
        int rc = field_text(&watched[i].addr, &value);
        if (rc == DB_OK) autosave_set_add(&set, watched[i].channel, value);
        else log_warn("autosave", "%s not saved: %s", watched[i].channel, db_strerror(rc));
    }
    free(value);
    int failed = autosave_file_write(save_path, &set, err, sizeof err) < 0;
    if (failed) log_error("autosave", "write failed: %s", err);
    else log_debug("autosave", "wrote %zu fields to %s", set.n, save_path);
    pthread_mutex_lock(&lock);
    write_failing = failed;
    if (!failed) last_written = time_wall();
    pthread_mutex_unlock(&lock);
    autosave_set_free(&set);
}

/* Writer thread: waits for a change, keeps at least save_period between writes (except the final one). */
static void *writer_main(void *arg)
{
    double last_write = -1e9;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!dirty && !stopping) pthread_cond_wait(&wake, &lock);
        if (!dirty) break;
        double wait = last_write + save_period - time_monotonic();
        if (wait > 0 && !stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until = time_add(until, wait);
            pthread_cond_timedwait(&wake, &lock, &until);
            continue;
        }
        dirty = 0;
        pthread_mutex_unlock(&lock);
        write_snapshot();
        last_write = time_monotonic();
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int watch_field(const db_record *rec, const char *field, void *user)
{
    watched_field w = {0};
    snprintf(w.channel, sizeof w.channel, "%s.%s", rec->name, field);
    if (db_name_to_addr(w.channel, &w.addr) == DB_OK) {   /* checked before iocInit; kept for safety */
        watched = xrealloc(watched, (nwatched + 1) * sizeof *watched);
        watched[nwatched++] = w;
    }
    return 0;
}

static int watch_record(db_record *rec, void *user)
{
    return foreach_saved_field(rec, watch_field, NULL);
}

/* db_shutdown hook (no lock held, scan threads still running; drivers registered earlier have stopped). */
static void stop_at_shutdown(void *user)
{
    for (size_t i = 0; i < nwatched; i++)
        if (watched[i].sub) db_unsubscribe(watched[i].sub);
    if (writer_running) {
        pthread_mutex_lock(&lock);
        stopping = 1;
        pthread_cond_signal(&wake);
        pthread_mutex_unlock(&lock);
        pthread_join(writer, NULL);
        writer_running = 0;
        log_info("autosave", "flushed %s", save_path);
    }
    free(watched);
    watched = NULL;
    nwatched = 0;
}

/* iocInit, after db_init: put the saved arrays, subscribe to every saved field and start the writer. */
static int start_after_init(char *err, size_t errlen)
{
    restore_deferred();
    db_foreach_record(watch_record, NULL);
    if (!save_path) {
        if (nwatched) log_warn("autosave", "%zu fields ask to be saved but no autosaveSetFile was given", nwatched);
        return 0;
    }
    for (size_t i = 0; i < nwatched; i++)
        watched[i].sub = db_subscribe(&watched[i].addr, DBE_VALUE | DBE_LOG | DBE_PROPERTY, field_changed, NULL);
    dirty = 1;   /* the file reflects the running IOC from the start */
    int rc = pthread_create(&writer, NULL, writer_main, NULL);
    if (rc) {
        snprintf(err, errlen, "autosave: cannot start the writer thread: %s", strerror(rc));
        return -1;
    }
    writer_running = 1;
    db_at_shutdown(stop_at_shutdown, NULL);
    log_info("autosave", "saving %zu fields to %s at most every %g s", nwatched, save_path, save_period);
    return 0;
}

int autosave_status(char *text, size_t len)
{
    pthread_mutex_lock(&lock);
    int problem = file_rejected || write_failing;
    struct tm tm;
    char when[16] = "";
    if (last_written.tv_sec) {
        localtime_r(&last_written.tv_sec, &tm);
        strftime(when, sizeof when, "%H:%M:%S", &tm);
    }
    if (file_rejected) snprintf(text, len, "bad save file set aside (see log)");
    else if (write_failing) snprintf(text, len, "write failed (see log)");
    else if (!save_path) snprintf(text, len, "off");
    else if (*when) snprintf(text, len, "saved %s", when);
    else snprintf(text, len, "waiting");
    pthread_mutex_unlock(&lock);
    return problem;
}

static int cmd_set_file(int argc, char **argv, char *err, size_t errlen)
{
    if (shell_iocinit_done()) {
        snprintf(err, errlen, "autosaveSetFile must come before iocInit");
        return -1;
    }
    char *path = NULL;
    if (argv[1][0] == '/') {
        path = xstrdup(argv[1]);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd) || asprintf(&path, "%s/%s", cwd, argv[1]) < 0) {
            snprintf(err, errlen, "autosaveSetFile: %s", strerror(errno));
            return -1;
        }
    }
    char *dircopy = xstrdup(path);
    const char *dir = dirname(dircopy);
    int writable = access(dir, W_OK) == 0;
    if (!writable) snprintf(err, errlen, "autosaveSetFile: cannot write into %s: %s", dir, strerror(errno));
    free(dircopy);
    if (!writable) {
        free(path);
        return -1;
    }
    free(save_path);
    save_path = path;
    return 0;
}

static int cmd_set_period(int argc, char **argv, char *err, size_t errlen)
{
    double seconds;
    if (shell_arg_double(argv[1], "autosaveSetPeriod seconds", &seconds, err, errlen) < 0) return -1;
    if (!(seconds > 0 && seconds <= 86400)) {
        snprintf(err, errlen, "autosaveSetPeriod: %g s is out of range (0, 86400]", seconds);
        return -1;
    }
    pthread_mutex_lock(&lock);
    save_period = seconds;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    return 0;
}

void autosave_register(void)
{
    shell_register("autosaveSetFile", "autosaveSetFile \"path.sav\"  save file (before iocInit)", 1, 1, cmd_set_file);
    shell_register("autosaveSetPeriod", "autosaveSetPeriod SECONDS  least time between writes (default 1)", 1, 1,
                   cmd_set_period);
    shell_before_iocinit(restore_before_init);
    shell_after_iocinit(start_after_init);
}
