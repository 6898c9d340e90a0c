/* calc_internal.h -- the operation codes of compiled CALC programs, shared by the compiler and the evaluator
 * (private to src/core/calc). */
#ifndef RELOC_CALC_INTERNAL_H
#define RELOC_CALC_INTERNAL_H

enum {
    OP_PUSH_CONST, OP_PUSH_INPUT, OP_PUSH_VAL, OP_STORE_INPUT, OP_RANDOM,
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD, OP_POW, OP_NEG,
    OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE, OP_AND, OP_OR, OP_NOT,
    OP_BITAND, OP_BITOR, OP_BITXOR, OP_BITNOT, OP_SHL, OP_SHR, OP_SHRL,
    OP_JUMP_FALSE, OP_JUMP,
    OP_ABS, OP_SQRT, OP_EXP, OP_LOG10, OP_LN, OP_LOG2, OP_SIN, OP_COS, OP_TAN, OP_ASIN, OP_ACOS, OP_ATAN,
    OP_SINH, OP_COSH, OP_TANH, OP_CEIL, OP_FLOOR, OP_NINT, OP_ISINF, OP_ATAN2, OP_FMOD,
    OP_MIN, OP_MAX, OP_FINITE, OP_ISNAN
};

#endif
