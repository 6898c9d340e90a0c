/* test_stagemap.c -- unit tests of the pure parts of src/live/stagemap: how a move is planned from the motors'
 * positions and soft limits at the moment of the move (coarse motors, or the piezo stages on them when the
 * target is within their range; refused outside the limits, for a non-finite target or without motors), and
 * x,y pair arrays. The motors are soft records standing for the motor records' RBV, HLM and LLM fields. */
#include "db_test_util.h"

#include <math.h>

#include "core/base/base.h"
#include "live/stagemap/stagemap_internal.h"

static stagemap map;
static char err[256];

/* Motor `name` (a soft record per field) at position rbv with soft limits llm..hlm, um_per_egu per EGU. */
static void make_axis(stage_axis *a, const char *name, double rbv, double llm, double hlm, double um_per_egu)
{
    const char *fields[] = {"rbv", "llm", "hlm"};
    double values[] = {rbv, llm, hlm};
    for (int i = 0; i < 3; i++) {
        char rec[DB_NAME_SIZE], value[32];
        snprintf(rec, sizeof rec, "%s_%s", name, fields[i]);
        snprintf(value, sizeof value, "%.17g", values[i]);
        make_record("ao", rec, "VAL", value, NULL);
    }
    str_copy(a->record, name, sizeof a->record);
    a->um_per_egu = um_per_egu;
    a->valid = 1;
}

/* Resolves the axes' addresses once the records exist (after iocInit, as stagemapConfigure's hook does). */
static void resolve(stage_axis *a)
{
    char ch[DB_NAME_SIZE + 8];
    snprintf(ch, sizeof ch, "%s_rbv", a->record);
    a->rbv = addr_of(ch);
    snprintf(ch, sizeof ch, "%s_llm", a->record);
    a->llm = addr_of(ch);
    snprintf(ch, sizeof ch, "%s_hlm", a->record);
    a->hlm = addr_of(ch);
}

static int plan(double x, double y, int axes[2], double egu[2])
{
    const double target[2] = {x, y};
    err[0] = '\0';
    db_lock();
    int rc = stagemap_plan_move(&map, target, axes, egu, err, sizeof err);
    db_unlock();
    return rc;
}

/* Coarse stages in mm at (1.2, -0.5) mm with limits -9.5..9.5 mm; with_piezo adds piezo stages in um at
 * (3, -4) um with limits 0..100 um. */
static void stage(int with_piezo)
{
    memset(&map, 0, sizeof map);
    make_axis(&map.axis[0], "X:samx", 1.2, -9.5, 9.5, 1000.0);
    make_axis(&map.axis[1], "X:samy", -0.5, -9.5, 9.5, 1000.0);
    if (with_piezo) {
        make_axis(&map.axis[2], "X:pssx", 3.0, 0.0, 100.0, 1.0);
        make_axis(&map.axis[3], "X:pssy", -4.0, -50.0, 50.0, 1.0);
    }
    init_db();
    for (int i = 0; i < (with_piezo ? 4 : 2); i++) resolve(&map.axis[i]);
}

static void coarse_move_within_the_limits(void **state)
{
    (void)state;
    stage(0);
    int axes[2];
    double egu[2];
    assert_int_equal(plan(2500.0, -7000.0, axes, egu), 0);
    assert_int_equal(axes[0], 0);
    assert_int_equal(axes[1], 1);
    assert_true(fabs(egu[0] - 2.5) < 1e-12 && fabs(egu[1] + 7.0) < 1e-12);   /* um -> the motors' mm */
}

static void move_outside_the_soft_limits_is_refused(void **state)
{
    (void)state;
    stage(0);
    int axes[2];
    double egu[2];
    assert_int_equal(plan(0.0, 9600.0, axes, egu), -1);
    assert_non_null(strstr(err, "X:samy"));
    assert_non_null(strstr(err, "9600.000"));
    assert_non_null(strstr(err, "-9500.000..9500.000"));
}

static void non_finite_targets_and_missing_motors_are_refused(void **state)
{
    (void)state;
    stage(0);
    int axes[2];
    double egu[2];
    assert_int_equal(plan(NAN, 0.0, axes, egu), -1);
    assert_non_null(strstr(err, "finite"));
    assert_int_equal(plan(0.0, INFINITY, axes, egu), -1);
    map.axis[1].valid = 0;
    assert_int_equal(plan(0.0, 0.0, axes, egu), -1);
    assert_non_null(strstr(err, "motors unavailable"));
}

static void small_move_goes_to_the_piezo_large_one_to_the_coarse_motors(void **state)
{
    (void)state;
    stage(1);
    int axes[2];
    double egu[2];
    /* The stage is at coarse + piezo = (1203, -504) um. 20 um further on x and 10 um back on y stays
     * within the piezo ranges: the piezo moves to (23, -14) um, the coarse motors stay. */
    assert_int_equal(plan(1223.0, -514.0, axes, egu), 0);
    assert_int_equal(axes[0], 2);
    assert_int_equal(axes[1], 3);
    assert_true(fabs(egu[0] - 23.0) < 1e-9 && fabs(egu[1] + 14.0) < 1e-9);
    /* 200 um is beyond the x piezo's 100 um: the coarse motors move, keeping the piezo offsets. */
    assert_int_equal(plan(1403.0, -504.0, axes, egu), 0);
    assert_int_equal(axes[0], 0);
    assert_int_equal(axes[1], 1);
    assert_true(fabs(egu[0] - 1.4) < 1e-9 && fabs(egu[1] + 0.5) < 1e-9);
    /* The plan uses the positions at the moment of the move: once the piezo is at 23 um, going back to
     * x = 1203 um means the piezo to 3 um, and 1223 um leaves it where it is. */
    double moved = 23.0;
    db_addr a = addr_of("X:pssx_rbv");
    assert_int_equal(db_put_field(&a, DBR_DOUBLE, &moved, 1), DB_OK);
    assert_int_equal(plan(1203.0, -504.0, axes, egu), 0);
    assert_int_equal(axes[0], 2);
    assert_true(fabs(egu[0] - 3.0) < 1e-9);
    assert_int_equal(plan(1223.0, -504.0, axes, egu), 0);
    assert_true(fabs(egu[0] - 23.0) < 1e-9);
}

static void pairs_are_copied_and_odd_counts_refused(void **state)
{
    (void)state;
    double values[7] = {1, 2, 3, 4, 5, 6, 7}, pairs[2][2];
    param_write w = {.name = "Fid:Pixel", .array = values, .array_type = DBR_DOUBLE, .nelem = 6};
    assert_int_equal(stagemap_copy_pairs(&w, pairs, 2, err, sizeof err), 2);    /* at most max pairs */
    assert_true(pairs[0][0] == 1 && pairs[0][1] == 2 && pairs[1][0] == 3 && pairs[1][1] == 4);
    w.nelem = 7;
    assert_int_equal(stagemap_copy_pairs(&w, pairs, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "Fid:Pixel"));
    assert_non_null(strstr(err, "pairs"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(coarse_move_within_the_limits, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(move_outside_the_soft_limits_is_refused, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(non_finite_targets_and_missing_motors_are_refused, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(small_move_goes_to_the_piezo_large_one_to_the_coarse_motors, setup_db,
                                        teardown_db),
        cmocka_unit_test(pairs_are_copied_and_odd_counts_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
