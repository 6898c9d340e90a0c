/* test_calc.c -- the CALC expression engine: each expression's result is compared with the same
 * computation written in C (the reference), plus precedence, functions, assignments, the conditional
 * operator and syntax errors with their positions. */
#include "unit.h"
#include <math.h>

#include "core/calc/calc.h"

static double eval_with(const char *expr, double *args, double val)
{
    calc_program prog;
    calc_error err;
    if (calc_compile(expr, &prog, &err) != 0) fail_msg("'%s': %s at %d", expr, err.message, err.position);
    double r = NAN;
    assert_int_equal(calc_eval(&prog, args, val, &r), 0);
    return r;
}

static double eval(const char *expr)
{
    double args[CALC_NINPUTS] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    return eval_with(expr, args, 0);
}

static void check(const char *expr, double got, double want)
{
    if (!(fabs(got - want) <= 1e-12 * (1 + fabs(want)))) fail_msg("'%s' = %.17g, want %.17g", expr, got, want);
}
#define CHECK(expr, reference) check(expr, eval(expr), (reference))

static void arithmetic_and_precedence(void **state)
{
    (void)state;
    const double A = 1, B = 2, C = 3, D = 4, E = 5;
    CHECK("A+B*C", A + B * C);
    CHECK("(A+B)*C", (A + B) * C);
    CHECK("A-B-C", A - B - C);
    CHECK("D/B/B", D / B / B);
    CHECK("E%C", fmod(E, C));
    CHECK("B^C", pow(B, C));
    CHECK("B**C", pow(B, C));
    CHECK("B^C^B", pow(B, pow(C, B)));           /* right-associative */
    CHECK("-B^2", -pow(B, 2));
    CHECK("-A+-B", -A + -B);
    CHECK("a + b * c", A + B * C);                /* case-insensitive, blanks anywhere between tokens */
    CHECK("1.5e1 + .5", 15.5);
    CHECK("0x10 + 1", 17);
    CHECK("A<B && C>D", (A < B) && (C > D));
    CHECK("A<B || C>D", (A < B) || (C > D));
    CHECK("A+B == C", (A + B) == C);
    CHECK("A+B = C", (A + B) == C);
    CHECK("A # B", A != B);
    CHECK("A != A", 0);
    CHECK("!A", !A);
    CHECK("!(A>B)", !(A > B));
    CHECK("C >= C && C <= C", 1);
}

static void bitwise(void **state)
{
    (void)state;
    CHECK("12 & 10", 12 & 10);
    CHECK("12 AND 10", 12 & 10);
    CHECK("12 | 3", 12 | 3);
    CHECK("12 OR 3", 12 | 3);
    CHECK("12 XOR 10", 12 ^ 10);
    CHECK("~5", ~5);
    CHECK("NOT 5", ~5);
    CHECK("1 << 4", 1 << 4);
    CHECK("-16 >> 2", -16 >> 2);
    CHECK("-16 >>> 28", (double)(0xFFFFFFF0u >> 28));
    CHECK("1 | 2 && 0", (1 | 2) && 0);           /* bitwise binds tighter than logical */
    CHECK("6 & 3 == 2", 6 & (3 == 2));           /* as in C: equality binds tighter than & */
}

static void functions_and_constants(void **state)
{
    (void)state;
    const double A = 1, B = 2, C = 3;
    CHECK("ABS(-C)", fabs(-C));
    CHECK("SQRT(C)", sqrt(C));
    CHECK("SQR(C)", sqrt(C));
    CHECK("MIN(C,A,B)", 1);
    CHECK("MAX(A,C,B)", 3);
    CHECK("MAX(A)", A);
    CHECK("CEIL(2.1)", 3);
    CHECK("FLOOR(-2.1)", -3);
    CHECK("LOG(1000)", 3);
    CHECK("LN(C)", log(C));
    CHECK("EXP(B)", exp(B));
    CHECK("SIN(A)+COS(B)*TAN(C)", sin(A) + cos(B) * tan(C));
    CHECK("ASIN(0.5)+ACOS(0.5)+ATAN(B)", asin(0.5) + acos(0.5) + atan(B));
    CHECK("ATAN2(A,B)", atan2(A, B));
    CHECK("NINT(2.5)", 3);
    CHECK("NINT(-2.5)", -3);
    CHECK("NINT(2.4)", 2);
    CHECK("PI", M_PI);
    CHECK("90*D2R", M_PI / 2);
    CHECK("PI*R2D", 180);
    CHECK("FINITE(A,B)", 1);
    CHECK("FINITE(A,1/0)", 0);
    CHECK("ISNAN(NAN)", 1);
    CHECK("ISNAN(A,B)", 0);
    CHECK("ISINF(-1/0)", 1);
    double r = eval("RNDM");
    assert_true(r >= 0 && r < 1);
    assert_true(isnan(eval("SQRT(-1)")));
}

static void conditional_val_and_assignment(void **state)
{
    (void)state;
    double args[CALC_NINPUTS] = {1, 2, 3};
    assert_true(eval_with("A<B ? 10 : 20", args, 0) == 10);
    assert_true(eval_with("A>B ? 10 : 20", args, 0) == 20);
    assert_true(eval_with("A>B ? 10 : B>A ? 30 : 40", args, 0) == 30);   /* nests to the right */
    assert_true(eval_with("A>B ? 10", args, 7) == 7);                     /* no ':' keeps VAL */
    assert_true(eval_with("VAL+1", args, 41) == 42);
    /* Assignments write back into the inputs; the last statement gives the result. */
    assert_true(eval_with("A:=A+1; B:=A*10; A+B", args, 0) == 22);
    assert_true(args[0] == 2 && args[1] == 20);
    calc_program prog;
    calc_error err;
    assert_int_equal(calc_compile("C:=5;A+C", &prog, &err), 0);
    assert_true(prog.inputs_set == (1u << 2));
    assert_true(prog.inputs_used == ((1u << 0) | (1u << 2)));
}

static void expect_error(const char *expr, int position, const char *fragment)
{
    calc_program prog;
    calc_error err;
    assert_int_equal(calc_compile(expr, &prog, &err), -1);
    if (err.position != position || !strstr(err.message, fragment))
        fail_msg("'%s': got position %d '%s', want %d '%s'", expr, err.position, err.message, position, fragment);
    double r;
    assert_int_equal(calc_eval(&prog, (double[CALC_NINPUTS]){0}, 0, &r), -1);   /* failed programs do not run */
}

static void syntax_errors(void **state)
{
    (void)state;
    expect_error("A+", 2, "ends");
    expect_error("A+*B", 2, "'*'");
    expect_error("(A+B", 4, "')'");
    expect_error("A+B)", 3, "')'");
    expect_error("FOO(A)", 0, "FOO");
    expect_error("M+1", 0, "M");
    expect_error("ATAN2(A)", 0, "2 arguments");
    expect_error("MIN()", 0, "at least 1");
    expect_error("A+B; C", 5, "last statement");
    expect_error("A:=1", 0, "no value");
    expect_error("", 0, "ends");
    expect_error("1.5.2", 3, "'.'");
    expect_error("3x", 0, "malformed");
    expect_error("A+\x01", 2, "character 0x01");
    char deep[200];
    memset(deep, '(', 100);
    strcpy(deep + 100, "A");
    calc_program prog;
    calc_error err;
    assert_int_equal(calc_compile(deep, &prog, &err), -1);     /* too deep: refused, not a crash */
    static char huge[200001];
    memset(huge, '(', sizeof huge - 1);
    assert_int_equal(calc_compile(huge, &prog, &err), -1);
    memset(huge, '-', sizeof huge - 1);
    assert_int_equal(calc_compile(huge, &prog, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arithmetic_and_precedence),
        cmocka_unit_test(bitwise),
        cmocka_unit_test(functions_and_constants),
        cmocka_unit_test(conditional_val_and_assignment),
        cmocka_unit_test(syntax_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
