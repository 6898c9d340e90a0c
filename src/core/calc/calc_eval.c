/* calc_eval.c -- runs a compiled CALC program on a fixed-size stack (no allocation). */
#include "core/calc/calc.h"
#include "core/calc/calc_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* Bitwise operands: doubles to 32-bit integers as EPICS does, without undefined conversions. */
static uint32_t to_bits(double v)
{
    if (isnan(v)) return 0;
    if (v >= 9.2e18) return UINT32_MAX;
    if (v <= -9.2e18) return 0x80000000u;
    return (uint32_t)(int64_t)v;
}

static double from_bits(uint32_t b)
{
    return (double)(int32_t)b;
}

static double unary(int code, double x)
{
    switch (code) {
    case OP_NEG: return -x;
    case OP_NOT: return x == 0;
    case OP_BITNOT: return from_bits(~to_bits(x));
    case OP_ABS: return fabs(x);
    case OP_SQRT: return sqrt(x);
    case OP_EXP: return exp(x);
    case OP_LOG10: return log10(x);
    case OP_LN: return log(x);
    case OP_LOG2: return log2(x);
    case OP_SIN: return sin(x);
    case OP_COS: return cos(x);
    case OP_TAN: return tan(x);
    case OP_ASIN: return asin(x);
    case OP_ACOS: return acos(x);
    case OP_ATAN: return atan(x);
    case OP_SINH: return sinh(x);
    case OP_COSH: return cosh(x);
    case OP_TANH: return tanh(x);
    case OP_CEIL: return ceil(x);
    case OP_FLOOR: return floor(x);
    case OP_NINT: return x >= 0 ? floor(x + 0.5) : ceil(x - 0.5);
    case OP_ISINF: return isinf(x) != 0;
    default: return NAN;
    }
}

static double binary(int code, double a, double b)
{
    switch (code) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_MOD: return fmod(a, b);
    case OP_FMOD: return fmod(a, b);
    case OP_POW: return pow(a, b);
    case OP_ATAN2: return atan2(a, b);
    case OP_LT: return a < b;
    case OP_LE: return a <= b;
    case OP_GT: return a > b;
    case OP_GE: return a >= b;
    case OP_EQ: return a == b;
    case OP_NE: return a != b;
    case OP_AND: return a != 0 && b != 0;
    case OP_OR: return a != 0 || b != 0;
    case OP_BITAND: return from_bits(to_bits(a) & to_bits(b));
    case OP_BITOR: return from_bits(to_bits(a) | to_bits(b));
    case OP_BITXOR: return from_bits(to_bits(a) ^ to_bits(b));
    case OP_SHL: return from_bits(to_bits(a) << (to_bits(b) & 31));
    case OP_SHR: return (double)((int32_t)to_bits(a) >> (to_bits(b) & 31));
    case OP_SHRL: return (double)(to_bits(a) >> (to_bits(b) & 31));
    default: return NAN;
    }
}

/* MIN, MAX, FINITE, ISNAN over the top n stack entries. */
static double variadic(int code, const double *x, int n)
{
    double r = x[0];
    for (int i = 1; i < n; i++) {
        if (code == OP_MIN && (x[i] < r || isnan(x[i]))) r = x[i];
        if (code == OP_MAX && (x[i] > r || isnan(x[i]))) r = x[i];
    }
    if (code == OP_FINITE) {
        for (int i = 0; i < n; i++) if (!isfinite(x[i])) return 0;
        return 1;
    }
    if (code == OP_ISNAN) {
        for (int i = 0; i < n; i++) if (isnan(x[i])) return 1;
        return 0;
    }
    return r;
}

int calc_eval(const calc_program *prog, double args[CALC_NINPUTS], double val, double *result)
{
    double stack[CALC_MAX_STACK];
    int sp = 0;
    if (prog->nops == 0) return -1;
    for (int pc = 0; pc < prog->nops; pc++) {
        const calc_op *op = &prog->ops[pc];
        switch (op->code) {
        case OP_PUSH_CONST: stack[sp++] = op->value; break;
        case OP_PUSH_INPUT: stack[sp++] = args[op->arg]; break;
        case OP_PUSH_VAL: stack[sp++] = val; break;
        case OP_RANDOM: stack[sp++] = (double)random() / ((double)RAND_MAX + 1.0); break;
        case OP_STORE_INPUT: args[op->arg] = stack[--sp]; break;
        case OP_JUMP_FALSE:
            if (stack[--sp] == 0) pc = op->arg - 1;
            break;
        case OP_JUMP: pc = op->arg - 1; break;
        case OP_MIN: case OP_MAX: case OP_FINITE: case OP_ISNAN:
            sp -= op->arg;
            stack[sp] = variadic(op->code, &stack[sp], op->arg);
            sp++;
            break;
        case OP_NEG: case OP_NOT: case OP_BITNOT: case OP_ABS: case OP_SQRT: case OP_EXP: case OP_LOG10:
        case OP_LN: case OP_LOG2: case OP_SIN: case OP_COS: case OP_TAN: case OP_ASIN: case OP_ACOS:
        case OP_ATAN: case OP_SINH: case OP_COSH: case OP_TANH: case OP_CEIL: case OP_FLOOR: case OP_NINT:
        case OP_ISINF:
            stack[sp - 1] = unary(op->code, stack[sp - 1]);
            break;
        default:
            sp--;
            stack[sp - 1] = binary(op->code, stack[sp - 1], stack[sp]);
            break;
        }
    }
    *result = stack[sp - 1];
    return 0;
}
