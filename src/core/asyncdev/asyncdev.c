/* asyncdev.c -- "Async Delay" device support (see asyncdev.h). Each write starts a detached timer thread that
 * sleeps the record's delay and then asks db to complete the processing (db_request_process); the thread
 * touches no record field itself. The delay lives in dpvt, written once at iocInit. */
#include "core/asyncdev/asyncdev.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "core/base/base.h"
#include "core/db/db.h"

static int delay_init(db_record *rec)
{
    const db_field_desc *out = db_find_field(rec, "OUT");
    if (!out || out->type != DBF_OUTLINK) {
        log_error("asyncdev", "%s: Async Delay needs an output record with an OUT link", rec->name);
        return -1;
    }
    const db_link *link = db_field_ptr(rec, out);
    const char *text = link->text[0] == '@' ? link->text + 1 : link->text;
    char *end;
    double seconds = strtod(text, &end);
    if (end == text || seconds < 0 || seconds > 3600) {
        log_error("asyncdev", "%s: OUT \"%s\" is not a delay in seconds (\"@0.5\")", rec->name, link->text);
        return -1;
    }
    double *delay = xmalloc(sizeof *delay);
    *delay = seconds;
    rec->dpvt = delay;
    return 0;
}

static void *timer_main(void *arg)
{
    db_record *rec = arg;
    struct timespec ts = time_add((struct timespec){ 0, 0 }, *(const double *)rec->dpvt);
    nanosleep(&ts, NULL);
    db_request_process(rec);
    return NULL;
}

/* [locked] First call: start the timer and go asynchronous. Second call (pact set): the write is done. */
static long delay_io(db_record *rec)
{
    if (rec->pact)
        return 0;
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, timer_main, rec);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return -1;
    rec->pact = 1;
    return 0;
}

static const db_dset async_delay = { "Async Delay", NULL, delay_init, NULL, delay_io };

void asyncdev_register(void)
{
    db_register_dset(&async_delay);
}
