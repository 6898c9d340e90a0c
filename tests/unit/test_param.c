/* test_param.c -- unit tests of src/core/param with the real record database: a driver's parameter table,
 * output records handing values to the driver (accepted; refused, with WRITE/INVALID and the old value kept;
 * completed later, for a put with completion), I/O Intr inputs following param_post, arrays, and outputs
 * showing the driver's value from iocInit on. */
#include "db_test_util.h"

#include "core/base/base.h"
#include "core/param/param.h"

#include <math.h>

typedef struct fake_driver {
    int writes;
    long last;
    int refuse;        /* refuse every write with a message */
    int async;         /* accept, complete with param_write_done */
} fake_driver;

static fake_driver driver;
static param_port *port;

#define TEST_PARAMS(X) X(P_VALUE, "Value", PARAM_INT) X(P_GAIN, "Gain", PARAM_DOUBLE) X(P_NAME, "Name", PARAM_STRING)
enum { TEST_PARAMS(PARAM_ENUM) P_SAMPLES, P_COUNT };
static const param_def defs[] = {TEST_PARAMS(PARAM_DEF)};

static int driver_write(void *user, const param_write *w, char *err, size_t errlen)
{
    fake_driver *d = user;
    d->writes++;
    if (d->refuse) return error_set(err, errlen, "%s %ld refused by the driver", w->name, w->ival);
    d->last = w->ival;
    return d->async ? PARAM_ASYNC : 0;
}

static int setup(void **state)
{
    setup_db(state);
    param_register();          /* the db forgets device supports at shutdown (the shell logs the repeat) */
    memset(&driver, 0, sizeof driver);
    port = param_port_create("P1", driver_write, &driver);
    param_create_table(port, defs, sizeof defs / sizeof defs[0]);
    return param_create_array(port, "Samples", DBR_DOUBLE, 8) == P_SAMPLES ? 0 : -1;
}

static int teardown(void **state)
{
    teardown_db(state);
    param_port_destroy(port);
    return 0;
}

static void load_records(void)
{
    make_record("longout", "T:set", "DTYP", "reloc param", "OUT", "@P1 Value", NULL);
    make_record("longin", "T:rbv", "DTYP", "reloc param", "INP", "@P1 Value", "SCAN", "I/O Intr", NULL);
    make_record("ai", "T:gain", "DTYP", "reloc param", "INP", "@P1 Gain", "SCAN", "I/O Intr", NULL);
    make_record("stringin", "T:name", "DTYP", "reloc param", "INP", "@P1 Name", "SCAN", "I/O Intr", NULL);
    make_record("waveform", "T:samples", "DTYP", "reloc param", "INP", "@P1 Samples", "SCAN", "I/O Intr",
                "FTVL", "DOUBLE", "NELM", "8", NULL);
    init_db();
}

static void table_creates_parameters_in_order(void **state)
{
    (void)state;
    assert_int_equal(param_index(port, "Value"), P_VALUE);
    assert_int_equal(param_index(port, "Gain"), P_GAIN);
    assert_int_equal(param_index(port, "Name"), P_NAME);
    assert_int_equal(param_index(port, "Samples"), P_SAMPLES);
    assert_int_equal(param_index(port, "Nothing"), -1);
    assert_int_equal(param_create(port, "Value", PARAM_DOUBLE), -1);          /* names are unique */
    assert_null(param_port_create("P1", driver_write, &driver));             /* so are ports */
    assert_ptr_equal(param_port_find("P1"), port);
}

typedef struct completion {
    int calls;
    int status;
} completion;

static void completed(void *user, int status)
{
    completion *c = user;
    c->status = status;
    c->calls++;
}

static int has_completed(void *arg)
{
    return ((completion *)arg)->calls > 0;
}

/* A put with completion of value to T:set, as caput -c makes it; returns its completion status. */
static int put_and_wait(long value)
{
    completion done = {0, 0};
    db_addr a = addr_of("T:set");
    db_put_notify_start(&a, DBR_LONG, &value, 1, completed, &done);     /* NULL: done already called */
    if (!wait_for(has_completed, &done, 5.0)) fail_msg("put-notify did not complete");
    return done.status;
}

static void accepted_write_reaches_the_driver_and_the_parameter(void **state)
{
    (void)state;
    load_records();
    assert_int_equal(put_double("T:set", 5), DB_OK);
    assert_int_equal(driver.writes, 1);
    assert_int_equal(driver.last, 5);
    assert_int_equal(param_get_int(port, P_VALUE), 5);
    assert_true(get_double("T:set.SEVR") == NO_ALARM);
}

static void refused_write_alarms_and_keeps_the_old_value(void **state)
{
    (void)state;
    load_records();
    assert_int_equal(put_and_wait(5), DB_OK);
    driver.refuse = 1;
    assert_int_not_equal(put_and_wait(7), DB_OK);                              /* the client's put fails */
    assert_int_equal(param_get_int(port, P_VALUE), 5);                         /* nothing kept the refused 7 */
    assert_true(get_double("T:set") == 5);                  /* the record is back to what the driver accepted */
    assert_true(param_write_refused(port, P_VALUE));
    assert_true(get_double("T:set.SEVR") == INVALID_ALARM);
    assert_true(get_double("T:set.STAT") == STAT_WRITE);
    driver.refuse = 0;
    assert_int_equal(put_and_wait(8), DB_OK);                                  /* and the alarm clears */
    assert_true(get_double("T:set.SEVR") == NO_ALARM);
    assert_false(param_write_refused(port, P_VALUE));
}

/* NaN and Inf never reach the driver: the put fails, the record keeps the accepted value, the driver can ask. */
static void non_finite_write_never_reaches_the_driver(void **state)
{
    (void)state;
    make_record("ao", "T:gainset", "DTYP", "reloc param", "OUT", "@P1 Gain", NULL);
    make_record("ao", "T:valueset", "DTYP", "reloc param", "OUT", "@P1 Value", NULL);   /* an ao on an int */
    load_records();
    assert_int_equal(put_double("T:gainset", 2.5), DB_OK);
    int writes = driver.writes;
    assert_int_equal(put_double("T:gainset", NAN), DB_OK);       /* the store works; the processing refuses */
    assert_int_equal(put_double("T:valueset", INFINITY), DB_OK);
    assert_int_equal(driver.writes, writes);
    assert_true(get_double("T:gainset") == 2.5);
    assert_true(param_get_double(port, P_GAIN) == 2.5);
    assert_true(param_write_refused(port, P_GAIN) && param_write_refused(port, P_VALUE));
    assert_true(get_double("T:gainset.SEVR") == INVALID_ALARM);
}

static int value_is_42(void *arg)
{
    (void)arg;
    char buf[DB_STRING_SIZE];
    return get_double("T:rbv") == 42 && get_double("T:gain") == 2.5 &&
           strcmp(get_string("T:name", buf), "camera one") == 0;
}

static void io_intr_inputs_follow_param_post(void **state)
{
    (void)state;
    load_records();
    param_set_int(port, P_VALUE, 42);
    param_set_double(port, P_GAIN, 2.5);
    param_set_string(port, P_NAME, "camera one");
    assert_false(get_double("T:rbv") == 42);                                   /* set is not yet posted */
    param_post(port);
    assert_true(wait_for(value_is_42, NULL, 5.0));
}

static int three_samples(void *arg)
{
    (void)arg;
    db_addr a = addr_of("T:samples");
    db_lock();
    long n = db_current_elements(&a);
    db_unlock();
    return n == 3;
}

static void arrays_keep_at_most_their_capacity(void **state)
{
    (void)state;
    load_records();
    const double ten[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    param_set_array(port, P_SAMPLES, ten, 10);
    assert_int_equal(param_array_length(port, P_SAMPLES), 8);
    double back[10] = {0};
    assert_int_equal(param_get_array(port, P_SAMPLES, back, 10), 8);
    assert_memory_equal(back, ten, 8 * sizeof(double));
    param_set_array(port, P_SAMPLES, ten, 3);
    param_post(port);
    assert_true(wait_for(three_samples, NULL, 5.0));
}

static void output_shows_the_driver_value_from_init(void **state)
{
    (void)state;
    param_set_int(port, P_VALUE, 17);
    load_records();
    assert_true(get_double("T:set") == 17);
    assert_int_equal(driver.writes, 0);                                        /* not written back */
}

static void asynchronous_write_completes_the_put_when_the_driver_says_so(void **state)
{
    (void)state;
    load_records();
    driver.async = 1;
    for (int status = 0; status >= -1; status--) {
        completion done = {0, 0};
        long value = 3 - status;
        db_addr a = addr_of("T:set");
        assert_non_null(db_put_notify_start(&a, DBR_LONG, &value, 1, completed, &done));
        assert_false(wait_for(has_completed, &done, 0.2));                   /* the operation is under way */
        param_write_done(port, P_VALUE, status);
        assert_true(wait_for(has_completed, &done, 5.0));
        assert_int_equal(done.calls, 1);
        if (status == 0) assert_int_equal(done.status, DB_OK);               /* success ... */
        else assert_int_not_equal(done.status, DB_OK);                        /* ... or failure, as the driver says */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(table_creates_parameters_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(accepted_write_reaches_the_driver_and_the_parameter, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_write_alarms_and_keeps_the_old_value, setup, teardown),
        cmocka_unit_test_setup_teardown(non_finite_write_never_reaches_the_driver, setup, teardown),
        cmocka_unit_test_setup_teardown(io_intr_inputs_follow_param_post, setup, teardown),
        cmocka_unit_test_setup_teardown(arrays_keep_at_most_their_capacity, setup, teardown),
        cmocka_unit_test_setup_teardown(output_shows_the_driver_value_from_init, setup, teardown),
        cmocka_unit_test_setup_teardown(asynchronous_write_completes_the_put_when_the_driver_says_so, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
