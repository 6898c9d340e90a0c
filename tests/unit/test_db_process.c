/* test_db_process.c -- processing between records: PP/NPP and MS links, CP monitored inputs, forward
 * link chains and loops, SDIS/DISV, PROC, PINI, put-notify (synchronous, asynchronous device support
 * completing from another thread, through forward links, queued, cancelled, failed at shutdown),
 * periodic scans, I/O Intr, SCAN=Event, and iocInit errors. */
#include "db_test_util.h"

#include <pthread.h>

/* ---- An asynchronous device support: io() starts an operation that a helper thread completes. */
static int async_never_completes;
static int async_started;

static void *complete_later(void *arg)
{
    struct timespec ts = {0, 30000000};
    nanosleep(&ts, NULL);
    db_request_process(arg);
    return NULL;
}

static long async_io(db_record *rec)
{
    if (rec->pact) return 0;          /* second call: the operation finished */
    rec->pact = 1;
    async_started++;
    if (async_never_completes) return 0;
    pthread_t t;
    pthread_create(&t, NULL, complete_later, rec);
    pthread_detach(t);
    return 0;
}
static const db_dset async_dset = {"Test Async", NULL, NULL, NULL, async_io};

/* ---- An I/O Intr device support: records join one list that the test triggers. */
static db_ioscan *test_ioscan;
static int ioint(db_record *rec, db_ioscan **list)
{
    (void)rec;
    *list = test_ioscan;
    return 0;
}
static long ioint_read(db_record *rec)
{
    (void)rec;
    return 2;
}
static const db_dset ioint_dset = {"Test Intr", NULL, NULL, ioint, ioint_read};

static int setup(void **state)
{
    setup_db(state);
    db_register_dset(&async_dset);
    db_register_dset(&ioint_dset);
    test_ioscan = db_ioscan_create();
    async_never_completes = 0;
    async_started = 0;
    return 0;
}

/* A counter: a calc that adds one each time it processes. */
static db_record *counter(const char *name)
{
    return make_record("calc", name, "CALC", "VAL+1", NULL);
}

static double locked_val(const char *name)
{
    return get_double(name);
}

static void pp_and_npp_links(void **state)
{
    (void)state;
    counter("L:count");
    make_record("ai", "L:pp", "INP", "L:count PP", NULL);
    make_record("ai", "L:npp", "INP", "L:count NPP", NULL);
    make_record("ao", "L:out", "OUT", "L:count.A PP", NULL);
    init_db();
    put_double("L:npp.PROC", 1);
    assert_true(locked_val("L:count") == 0);          /* NPP reads without processing */
    put_double("L:pp.PROC", 1);
    assert_true(locked_val("L:count") == 1);          /* PP processes the target first */
    assert_true(locked_val("L:pp") == 1);
    put_double("L:out", 5);                            /* output PP: writes A and processes */
    assert_true(locked_val("L:count.A") == 5);
    assert_true(locked_val("L:count") == 2);
}

static void maximize_severity(void **state)
{
    (void)state;
    make_record("ai", "S:src", "HIGH", "10", "HSV", "MAJOR", NULL);
    make_record("ai", "S:ms", "INP", "S:src NPP MS", NULL);
    make_record("ai", "S:nms", "INP", "S:src NPP NMS", NULL);
    make_record("ai", "S:msi", "INP", "S:src NPP MSI", NULL);
    make_record("ai", "S:mss", "INP", "S:src NPP MSS", NULL);
    init_db();
    put_double("S:src", 20);
    put_double("S:ms.PROC", 1);
    put_double("S:nms.PROC", 1);
    put_double("S:msi.PROC", 1);
    put_double("S:mss.PROC", 1);
    assert_int_equal(db_find_record("S:ms")->sevr, MAJOR_ALARM);
    assert_int_equal(db_find_record("S:ms")->stat, STAT_LINK);
    assert_int_equal(db_find_record("S:mss")->stat, STAT_HIGH);   /* MSS: status too */
    assert_int_equal(db_find_record("S:nms")->sevr, NO_ALARM);
    assert_int_equal(db_find_record("S:msi")->sevr, NO_ALARM);    /* only INVALID propagates */
    put_double("S:src", 1);
    put_double("S:ms.PROC", 1);
    assert_int_equal(db_find_record("S:ms")->sevr, NO_ALARM);
}

static int value_is_7(void *arg) { return get_double(arg) == 7; }

static void cp_input_processes_on_change(void **state)
{
    (void)state;
    make_record("ai", "C:src", NULL);
    make_record("calc", "C:watch", "INPA", "C:src CP", "CALC", "A+1", NULL);
    make_record("calc", "C:scanned", "INPA", "C:src CPP", "CALC", "A+1", "SCAN", "10 second", NULL);
    init_db();
    put_double("C:src", 6);
    assert_true(wait_for(value_is_7, "C:watch", 5));
    assert_true(get_double("C:scanned") != 7);         /* CPP: only a Passive record processes */
}

static void forward_links_chain_and_loop(void **state)
{
    (void)state;
    counter("F:c");
    make_record("calc", "F:b", "CALC", "VAL+1", "FLNK", "F:c", NULL);
    make_record("calc", "F:a", "CALC", "VAL+1", "FLNK", "F:b", NULL);
    make_record("calc", "F:loop1", "CALC", "VAL+1", "FLNK", "F:loop2", NULL);
    make_record("calc", "F:loop2", "CALC", "VAL+1", "FLNK", "F:loop1", NULL);
    make_record("calc", "F:periodic", "CALC", "VAL+1", "SCAN", "10 second", NULL);
    make_record("calc", "F:toperiodic", "FLNK", "F:periodic", NULL);
    make_record("calc", "F:toproc", "FLNK", "F:periodic.PROC", NULL);
    init_db();
    put_double("F:a.PROC", 1);
    assert_true(get_double("F:a") == 1 && get_double("F:b") == 1 && get_double("F:c") == 1);
    put_double("F:loop1.PROC", 1);                     /* a loop stops at the record already active */
    assert_true(get_double("F:loop1") == 1 && get_double("F:loop2") == 1);
    double before = get_double("F:periodic");
    put_double("F:toperiodic.PROC", 1);                 /* FLNK to a scanned record does nothing... */
    assert_true(get_double("F:periodic") == before);
    put_double("F:toproc.PROC", 1);                     /* ...unless it goes through PROC */
    assert_true(get_double("F:periodic") == before + 1);
}

static void disable_and_pini(void **state)
{
    (void)state;
    make_record("bo", "D:switch", NULL);
    make_record("calc", "D:rec", "CALC", "VAL+1", "SDIS", "D:switch NPP", "DISS", "MINOR", NULL);
    make_record("ai", "D:pini", "INP", "3", "PINI", "YES", NULL);
    make_record("ai", "D:nopini", NULL);
    init_db();
    assert_int_equal(db_find_record("D:pini")->sevr, NO_ALARM);     /* processed at iocInit */
    assert_int_equal(db_find_record("D:nopini")->stat, STAT_UDF);
    put_double("D:rec.PROC", 1);
    assert_true(get_double("D:rec") == 1);
    put_double("D:switch", 1);                                      /* SDIS == DISV (1): disabled */
    put_double("D:rec.PROC", 1);
    assert_true(get_double("D:rec") == 1);
    assert_int_equal(db_find_record("D:rec")->stat, STAT_DISABLE);
    assert_int_equal(db_find_record("D:rec")->sevr, MINOR_ALARM);
    put_double("D:switch", 0);
    put_double("D:rec.PROC", 1);
    assert_true(get_double("D:rec") == 2);
    assert_int_equal(db_find_record("D:rec")->sevr, NO_ALARM);
}

/* ---- put-notify */
typedef struct notify_result {
    int calls, status;
} notify_result;

static void notify_done(void *user, int status)
{
    notify_result *r = user;
    r->calls++;
    r->status = status;
}

static int notify_called(void *arg)
{
    db_lock();
    int calls = ((notify_result *)arg)->calls;
    db_unlock();
    return calls > 0;
}

static void put_notify_synchronous(void **state)
{
    (void)state;
    make_record("ao", "N:ao", NULL);
    make_record("ai", "N:ai", NULL);
    init_db();
    notify_result r = {0};
    db_addr a = addr_of("N:ao");
    double v = 2.5;
    assert_null(db_put_notify_start(&a, DBR_DOUBLE, &v, 1, notify_done, &r));   /* done inside the call */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, DB_OK);
    assert_true(get_double("N:ao") == 2.5);
    notify_result bad = {0};
    db_addr stat = addr_of("N:ao.STAT");
    assert_null(db_put_notify_start(&stat, DBR_DOUBLE, &v, 1, notify_done, &bad));
    assert_int_equal(bad.status, DB_ERR_READ_ONLY);
    notify_result conv = {0};
    char text[DB_STRING_SIZE] = "abc";
    assert_null(db_put_notify_start(&a, DBR_STRING, text, 1, notify_done, &conv));
    assert_int_equal(conv.status, DB_ERR_CONVERT);
}

static void put_notify_waits_for_async_record(void **state)
{
    (void)state;
    make_record("ao", "N:motor", "DTYP", "Test Async", NULL);
    make_record("ao", "N:front", "FLNK", "N:motor", NULL);
    init_db();
    notify_result r = {0};
    db_addr a = addr_of("N:motor");
    double v = 10;
    db_put_notify *n = db_put_notify_start(&a, DBR_DOUBLE, &v, 1, notify_done, &r);
    assert_non_null(n);
    assert_true(notify_called(&r) == 0);                /* the move is still running */
    assert_int_equal(db_find_record("N:motor")->pact, 1);
    assert_true(wait_for(notify_called, &r, 5));
    assert_int_equal(r.status, DB_OK);
    assert_int_equal(db_find_record("N:motor")->pact, 0);
    /* Through a forward link: the put on N:front completes when N:motor has. */
    notify_result r2 = {0};
    db_addr front = addr_of("N:front");
    assert_non_null(db_put_notify_start(&front, DBR_DOUBLE, &v, 1, notify_done, &r2));
    assert_false(notify_called(&r2));
    assert_true(wait_for(notify_called, &r2, 5));
    assert_int_equal(r2.status, DB_OK);
    assert_int_equal(async_started, 2);
}

static void put_notify_second_waits_then_runs(void **state)
{
    (void)state;
    make_record("ao", "N:motor", "DTYP", "Test Async", NULL);
    init_db();
    notify_result r1 = {0}, r2 = {0};
    db_addr a = addr_of("N:motor");
    double v1 = 1, v2 = 2;
    assert_non_null(db_put_notify_start(&a, DBR_DOUBLE, &v1, 1, notify_done, &r1));
    assert_non_null(db_put_notify_start(&a, DBR_DOUBLE, &v2, 1, notify_done, &r2));
    assert_true(wait_for(notify_called, &r2, 5));
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(async_started, 2);                 /* the second put ran its own move */
    assert_true(get_double("N:motor") == 2);
}

static int record_idle(void *arg)
{
    db_lock();
    int idle = !((db_record *)arg)->pact;
    db_unlock();
    return idle;
}

static void put_notify_cancel_and_shutdown(void **state)
{
    (void)state;
    db_record *motor = make_record("ao", "N:motor", "DTYP", "Test Async", NULL);
    init_db();
    notify_result r = {0}, queued = {0};
    db_addr a = addr_of("N:motor");
    double v = 1, later = 5;
    assert_non_null(db_put_notify_start(&a, DBR_DOUBLE, &v, 1, notify_done, &r));
    assert_non_null(db_put_notify_start(&a, DBR_DOUBLE, &later, 1, notify_done, &queued));   /* waits */
    db_lock();                                          /* the client went away */
    assert_int_equal(db_put_notify_cancel(notify_done, &queued), 1);   /* waiting: never written */
    assert_int_equal(db_put_notify_cancel(notify_done, &r), 1);        /* under way: runs to its end */
    assert_int_equal(db_put_notify_cancel(notify_done, &r), 0);        /* nothing left to cancel */
    db_unlock();
    assert_true(wait_for(record_idle, motor, 5));
    assert_true(get_double("N:motor") == 1);
    assert_int_equal(r.calls, 0);
    assert_int_equal(queued.calls, 0);
    /* A move that never finishes: shutdown fails the pending put. */
    async_never_completes = 1;
    notify_result r2 = {0};
    assert_non_null(db_put_notify_start(&a, DBR_DOUBLE, &v, 1, notify_done, &r2));
    db_shutdown();
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.status, DB_ERR_FAILED);
    db_register_builtins();                             /* for the teardown's shutdown */
}

static int reached_3(void *arg) { return get_double(arg) >= 3; }
static int reached_1(void *arg) { return get_double(arg) >= 1; }

static int time_stamped(void *arg)
{
    db_lock();
    int stamped = ((db_record *)arg)->time.tv_sec > 0;
    db_unlock();
    return stamped;
}

static void periodic_ioint_and_event_scans(void **state)
{
    (void)state;
    make_record("calc", "P:fast", "CALC", "VAL+1", "SCAN", ".1 second", NULL);
    make_record("ai", "P:intr", "DTYP", "Test Intr", "SCAN", "I/O Intr", NULL);
    make_record("calc", "P:event", "CALC", "VAL+1", "SCAN", "Event", "EVNT", "5", NULL);
    make_record("calc", "P:other", "CALC", "VAL+1", "SCAN", "Event", "EVNT", "6", NULL);
    init_db();
    assert_true(wait_for(reached_3, "P:fast", 5));
    assert_int_equal(db_find_record("P:intr")->stat, STAT_UDF);
    db_record *intr = db_find_record("P:intr");
    assert_false(time_stamped(intr));                   /* I/O Intr: nothing until the driver says so */
    db_ioscan_request(test_ioscan);
    assert_true(wait_for(time_stamped, intr, 5));
    db_post_event(5);
    assert_true(wait_for(reached_1, "P:event", 5));
    assert_true(get_double("P:other") == 0);
    assert_int_equal(put_double("P:other.EVNT", 5), DB_OK);     /* moves to event 5 at run time */
    db_post_event(5);
    assert_true(wait_for(reached_1, "P:other", 5));
    /* Changing SCAN at run time moves the record between lists. */
    assert_int_equal(put_string("P:fast.SCAN", "Passive"), DB_OK);
    double now = get_double("P:fast");
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
    assert_true(get_double("P:fast") <= now + 1);
}

static void init_errors_name_the_record(void **state)
{
    (void)state;
    char err[512];
    /* (an input or output link naming no record here is a link to another IOC; a forward link must be local) */
    make_record("ai", "E:ai", "FLNK", "E:missing", NULL);
    assert_int_equal(db_init(err, sizeof err), DB_ERR_FAILED);
    assert_non_null(strstr(err, "E:ai"));
    assert_non_null(strstr(err, "E:missing"));
    assert_false(db_is_running());
    db_shutdown();
    db_register_builtins();
    make_record("ai", "E:intr", "SCAN", "I/O Intr", NULL);
    assert_int_equal(db_init(err, sizeof err), DB_ERR_FAILED);
    assert_non_null(strstr(err, "I/O Intr"));
    db_shutdown();
    db_register_builtins();
    make_record("ai", "E:dtyp", "DTYP", "No Such Driver", NULL);
    assert_int_equal(db_init(err, sizeof err), DB_ERR_FAILED);
    assert_non_null(strstr(err, "No Such Driver"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(pp_and_npp_links, setup, teardown_db),
        cmocka_unit_test_setup_teardown(maximize_severity, setup, teardown_db),
        cmocka_unit_test_setup_teardown(cp_input_processes_on_change, setup, teardown_db),
        cmocka_unit_test_setup_teardown(forward_links_chain_and_loop, setup, teardown_db),
        cmocka_unit_test_setup_teardown(disable_and_pini, setup, teardown_db),
        cmocka_unit_test_setup_teardown(put_notify_synchronous, setup, teardown_db),
        cmocka_unit_test_setup_teardown(put_notify_waits_for_async_record, setup, teardown_db),
        cmocka_unit_test_setup_teardown(put_notify_second_waits_then_runs, setup, teardown_db),
        cmocka_unit_test_setup_teardown(put_notify_cancel_and_shutdown, setup, teardown_db),
        cmocka_unit_test_setup_teardown(periodic_ioint_and_event_scans, setup, teardown_db),
        cmocka_unit_test_setup_teardown(init_errors_name_the_record, setup, teardown_db),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
