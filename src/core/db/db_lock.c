/* db_lock.c -- the database lock (db_lifecycle.c starts and stops the database).
 *
 * Lock discipline (the one rule every file of src/core/db and every user of db.h follows):
 *   - ONE plain, non-recursive pthread mutex guards every record field, every subscription list, the
 *     put-notify queues, the scan lists' contents and all processing. db_lock()/db_unlock() take it.
 *   - Functions marked [locked] in db.h expect it held; others take it themselves. db calls monitor
 *     callbacks, put-notify completions, record and device support with it held; those must not block.
 *   - Order: the db lock first, then any module lock (the scan queue's mutex in db_scan.c, a CA client's
 *     queue, a driver's state). Nobody calls into db while holding a module lock.
 *   - Threads that wait (scan threads, drivers) never wait while holding it.
 *   - The record table (names, aliases, record types) is built before db_init on the loading thread and
 *     frozen while the database runs, so finding a record needs no lock.
 */
#include "core/db/db_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t db_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Atomic long lock_owner;          /* kernel thread id of the holder, 0 when free */

/* The calling thread's id, asked of the kernel once per thread (db_lock runs on every CA request). */
static long thread_id(void)
{
    static _Thread_local long id;
    if (!id) id = (long)syscall(SYS_gettid);
    return id;
}

void db_lock(void)
{
    pthread_mutex_lock(&db_mutex);
    atomic_store(&lock_owner, thread_id());
}

void db_unlock(void)
{
    atomic_store(&lock_owner, 0);
    pthread_mutex_unlock(&db_mutex);
}

int db_lock_held(void)
{
    return atomic_load(&lock_owner) == thread_id();
}
