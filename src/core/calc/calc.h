/* calc.h -- the EPICS CALC expression language: compile infix text once to a postfix program, then
 * evaluate it as often as needed without allocating.
 *
 * Language (case-insensitive, as in EPICS Base calc/calcout records):
 *   operands   A..L (inputs), VAL (the record's current value), numbers (1, 2.5, 1e-3, 0x1F), PI, D2R,
 *              R2D, INF, NAN, RNDM (uniform 0..1)
 *   operators  from lowest to highest precedence:
 *              ?:  ||  &&  | OR  XOR  & AND  == = != #  < <= > >=  << >> >>>  + -  * / %
 *              unary - + ! ~ NOT,  ^ ** (power, right-associative: 2^3^2 = 2^9; -2^2 = -4)
 *              "c ? x" without ":" leaves VAL unchanged when c is false.
 *   functions  ABS SQR SQRT EXP LOG (base 10) LN LOGE LOG2 SIN COS TAN ASIN ACOS ATAN SINH COSH TANH CEIL
 *              FLOOR NINT ISINF, ATAN2(y, x) FMOD(a, b), and with any number of arguments MIN MAX FINITE
 *              ISNAN (FINITE: all finite; ISNAN: any NaN)
 *   statements "A := A + 1; B := 2; A + B": assignments to A..L, separated by ';'; the last statement
 *              gives the result.
 *   Comparisons and logical operators give 1 or 0; bitwise operators work on 32-bit integers.
 *
 * Thread safety: a compiled program is read-only during evaluation; evaluation uses only the stack.
 */
#ifndef RELOC_CALC_H
#define RELOC_CALC_H

#include <stdint.h>

#define CALC_NINPUTS   12    /* A .. L */
#define CALC_MAX_OPS   200   /* postfix operations in one program */
#define CALC_MAX_STACK 40    /* evaluation stack depth */

typedef struct calc_op {
    uint16_t code;
    uint16_t arg;            /* input index, argument count or jump target */
    double value;            /* constant */
} calc_op;

typedef struct calc_program {
    calc_op ops[CALC_MAX_OPS];
    int nops;
    uint16_t inputs_used;    /* bit i: the expression reads input i */
    uint16_t inputs_set;     /* bit i: the expression assigns input i */
} calc_program;

typedef struct calc_error {
    int position;            /* 0-based offset of the offending character in the text */
    char message[96];
} calc_error;

/* Compiles text; returns 0, or -1 with err filled ("unexpected ')'", "unknown name 'FOO'" ...). */
int calc_compile(const char *text, calc_program *prog, calc_error *err);
/* Evaluates with inputs A..L in args (assignments write back into args) and the record's VAL. Returns 0
 * with *result, or -1 when the program is empty. */
int calc_eval(const calc_program *prog, double args[CALC_NINPUTS], double val, double *result);

#endif
