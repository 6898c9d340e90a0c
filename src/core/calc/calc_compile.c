/* calc_compile.c -- infix CALC text to a postfix program: a recursive-descent parser, one function per
 * precedence level, emitting operations as it goes and tracking the stack depth the program needs.
 */
#include "core/calc/calc.h"
#include "core/calc/calc_internal.h"

#include <ctype.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct parser {
    const char *text, *p;
    calc_program *prog;
    calc_error *err;
    int depth, max_depth;
    int nesting;                 /* recursion depth of the parser, bounded so any text is safe */
    jmp_buf fail;
} parser;

static void fail_at(parser *ps, const char *where, const char *fmt, const char *detail)
{
    ps->err->position = (int)(where - ps->text);
    snprintf(ps->err->message, sizeof ps->err->message, fmt, detail);
    longjmp(ps->fail, 1);
}

/* "unexpected ')'", or the character's code when it is not printable. */
static void fail_unexpected(parser *ps, const char *where, const char *suffix)
{
    char what[64];
    unsigned char c = (unsigned char)*where;
    if (isprint(c)) snprintf(what, sizeof what, "unexpected '%c'%s", c, suffix);
    else snprintf(what, sizeof what, "unexpected character 0x%02x%s", c, suffix);
    fail_at(ps, where, "%s", what);
}

static void skip_blanks(parser *ps)
{
    while (isspace((unsigned char)*ps->p)) ps->p++;
}

/* Consumes the operator `op` (exact characters) or keyword `op` (letters, whole word) if next. */
static int accept(parser *ps, const char *op)
{
    skip_blanks(ps);
    size_t n = strlen(op);
    if (isalpha((unsigned char)op[0])) {
        if (strncasecmp(ps->p, op, n) != 0 || isalnum((unsigned char)ps->p[n]) || ps->p[n] == '_') return 0;
    } else if (strncmp(ps->p, op, n) != 0) {
        return 0;
    }
    ps->p += n;
    return 1;
}

static void expect(parser *ps, const char *op)
{
    if (!accept(ps, op)) fail_at(ps, ps->p, *ps->p ? "expected '%s'" : "expected '%s' at end of expression", op);
}

static int emit(parser *ps, int code, int arg, double value, int stack_change)
{
    calc_program *prog = ps->prog;
    if (prog->nops >= CALC_MAX_OPS) fail_at(ps, ps->p, "expression too long (more than %s operations)", "200");
    prog->ops[prog->nops] = (calc_op){(uint16_t)code, (uint16_t)arg, value};
    ps->depth += stack_change;
    if (ps->depth > ps->max_depth) ps->max_depth = ps->depth;
    if (ps->max_depth > CALC_MAX_STACK) fail_at(ps, ps->p, "expression too deeply nested%s", "");
    return prog->nops++;
}

static void parse_cond(parser *ps);

typedef struct func_def {
    const char *name;
    int code;
    int nargs;           /* -1: one or more */
} func_def;

static const func_def functions[] = {
    {"ABS", OP_ABS, 1}, {"SQRT", OP_SQRT, 1}, {"SQR", OP_SQRT, 1}, {"EXP", OP_EXP, 1}, {"LOG", OP_LOG10, 1},
    {"LN", OP_LN, 1}, {"LOGE", OP_LN, 1}, {"LOG2", OP_LOG2, 1}, {"SIN", OP_SIN, 1}, {"COS", OP_COS, 1},
    {"TAN", OP_TAN, 1}, {"ASIN", OP_ASIN, 1}, {"ACOS", OP_ACOS, 1}, {"ATAN", OP_ATAN, 1}, {"SINH", OP_SINH, 1},
    {"COSH", OP_COSH, 1}, {"TANH", OP_TANH, 1}, {"CEIL", OP_CEIL, 1}, {"FLOOR", OP_FLOOR, 1},
    {"NINT", OP_NINT, 1}, {"ISINF", OP_ISINF, 1}, {"ATAN2", OP_ATAN2, 2}, {"FMOD", OP_FMOD, 2},
    {"MIN", OP_MIN, -1}, {"MAX", OP_MAX, -1}, {"FINITE", OP_FINITE, -1}, {"ISNAN", OP_ISNAN, -1},
};

static const struct { const char *name; double value; } constants[] = {
    {"PI", M_PI}, {"D2R", M_PI / 180.0}, {"R2D", 180.0 / M_PI}, {"INF", INFINITY}, {"NAN", NAN},
};

static int input_index(const char *name, size_t len)
{
    if (len != 1) return -1;
    int c = toupper((unsigned char)name[0]);
    return c >= 'A' && c < 'A' + CALC_NINPUTS ? c - 'A' : -1;
}

static void parse_call(parser *ps, const func_def *f, const char *start)
{
    expect(ps, "(");
    int n = 0;
    if (!accept(ps, ")")) {
        do {
            parse_cond(ps);
            n++;
        } while (accept(ps, ","));
        expect(ps, ")");
    }
    if ((f->nargs >= 0 && n != f->nargs) || (f->nargs < 0 && n < 1)) {
        char what[48];
        snprintf(what, sizeof what, "%s takes %s argument%s", f->name,
                 f->nargs == 2 ? "2" : f->nargs == 1 ? "1" : "at least 1", f->nargs == 2 ? "s" : "");
        fail_at(ps, start, "%s", what);
    }
    emit(ps, f->code, n, 0, 1 - n);
}

static void parse_name(parser *ps)
{
    const char *start = ps->p;
    while (isalnum((unsigned char)*ps->p) || *ps->p == '_') ps->p++;
    size_t len = (size_t)(ps->p - start);
    int input = input_index(start, len);
    if (input >= 0) {
        ps->prog->inputs_used |= (uint16_t)(1u << input);
        emit(ps, OP_PUSH_INPUT, input, 0, 1);
        return;
    }
    char name[16];
    if (len >= sizeof name) fail_at(ps, start, "unknown name '%.15s...'", start);
    for (size_t i = 0; i < len; i++) name[i] = (char)toupper((unsigned char)start[i]);
    name[len] = 0;
    if (strcmp(name, "VAL") == 0) { emit(ps, OP_PUSH_VAL, 0, 0, 1); return; }
    if (strcmp(name, "RNDM") == 0) { emit(ps, OP_RANDOM, 0, 0, 1); return; }
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
        if (strcmp(name, constants[i].name) == 0) {
            emit(ps, OP_PUSH_CONST, 0, constants[i].value, 1);
            return;
        }
    }
    for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
        if (strcmp(name, functions[i].name) == 0) {
            parse_call(ps, &functions[i], start);
            return;
        }
    }
    fail_at(ps, start, "unknown name '%s'", name);
}

static void parse_primary(parser *ps)
{
    skip_blanks(ps);
    const char *start = ps->p;
    if (isdigit((unsigned char)*ps->p) || (*ps->p == '.' && isdigit((unsigned char)ps->p[1]))) {
        char *end;
        double v = (ps->p[0] == '0' && (ps->p[1] == 'x' || ps->p[1] == 'X')) ? (double)strtoull(ps->p, &end, 16)
                                                                            : strtod(ps->p, &end);
        ps->p = end;
        if (isalpha((unsigned char)*ps->p)) fail_at(ps, start, "malformed number '%.12s'", start);
        emit(ps, OP_PUSH_CONST, 0, v, 1);
    } else if (isalpha((unsigned char)*ps->p)) {
        parse_name(ps);
    } else if (accept(ps, "(")) {
        parse_cond(ps);
        expect(ps, ")");
    } else if (!*ps->p) {
        fail_at(ps, start, "expression ends where a value was expected%s", "");
    } else {
        fail_unexpected(ps, start, " where a value was expected");
    }
}

static void parse_unary(parser *ps);

static void parse_power(parser *ps)
{
    parse_primary(ps);
    if (accept(ps, "**") || accept(ps, "^")) {
        parse_unary(ps);                 /* right-associative */
        emit(ps, OP_POW, 0, 0, -1);
    }
}

static void enter(parser *ps)
{
    if (++ps->nesting > 4 * CALC_MAX_STACK) fail_at(ps, ps->p, "expression too deeply nested%s", "");
}

static void parse_unary(parser *ps)
{
    enter(ps);
    if (accept(ps, "-")) { parse_unary(ps); emit(ps, OP_NEG, 0, 0, 0); }
    else if (accept(ps, "+")) parse_unary(ps);
    else if (accept(ps, "!")) { parse_unary(ps); emit(ps, OP_NOT, 0, 0, 0); }
    else if (accept(ps, "~") || accept(ps, "NOT")) { parse_unary(ps); emit(ps, OP_BITNOT, 0, 0, 0); }
    else parse_power(ps);
    ps->nesting--;
}

/* A left-associative binary level: operators (longest first) mapped to op codes, over the next level. */
typedef struct binop {
    const char *text;
    int code;
} binop;

static void parse_binary(parser *ps, const binop *ops, void (*next)(parser *))
{
    next(ps);
    for (;;) {
        int code = -1;
        for (const binop *o = ops; o->text; o++) {
            /* "&" and "|" are bitwise only when not doubled: "&&" and "||" belong to lower levels. */
            int doubled = (o->text[0] == '&' || o->text[0] == '|') && !o->text[1] && (skip_blanks(ps), 1) &&
                          ps->p[0] == o->text[0] && ps->p[1] == o->text[0];
            if (!doubled && accept(ps, o->text)) {
                code = o->code;
                break;
            }
        }
        if (code < 0) return;
        next(ps);
        emit(ps, code, 0, 0, -1);
    }
}

#define LEVEL(fn, next, ...) \
    static void fn(parser *ps) \
    { \
        static const binop ops[] = {__VA_ARGS__, {NULL, 0}}; \
        parse_binary(ps, ops, next); \
    }

LEVEL(parse_mul, parse_unary, {"*", OP_MUL}, {"/", OP_DIV}, {"%", OP_MOD})
LEVEL(parse_add, parse_mul, {"+", OP_ADD}, {"-", OP_SUB})
LEVEL(parse_shift, parse_add, {">>>", OP_SHRL}, {">>", OP_SHR}, {"<<", OP_SHL})
LEVEL(parse_rel, parse_shift, {"<=", OP_LE}, {">=", OP_GE}, {"<", OP_LT}, {">", OP_GT})
LEVEL(parse_eq, parse_rel, {"==", OP_EQ}, {"!=", OP_NE}, {"=", OP_EQ}, {"#", OP_NE})
LEVEL(parse_band, parse_eq, {"AND", OP_BITAND}, {"&", OP_BITAND})
LEVEL(parse_bxor, parse_band, {"XOR", OP_BITXOR})
LEVEL(parse_bor, parse_bxor, {"OR", OP_BITOR}, {"|", OP_BITOR})
LEVEL(parse_land, parse_bor, {"&&", OP_AND})
LEVEL(parse_lor, parse_land, {"||", OP_OR})

static void parse_cond(parser *ps)
{
    enter(ps);
    parse_lor(ps);
    if (!accept(ps, "?")) {
        ps->nesting--;
        return;
    }
    int jump_false = emit(ps, OP_JUMP_FALSE, 0, 0, -1);
    int depth = ps->depth;
    parse_cond(ps);
    int jump_end = emit(ps, OP_JUMP, 0, 0, 0);
    ps->prog->ops[jump_false].arg = (uint16_t)ps->prog->nops;
    ps->depth = depth;
    if (accept(ps, ":")) parse_cond(ps);
    else emit(ps, OP_PUSH_VAL, 0, 0, 1);
    ps->prog->ops[jump_end].arg = (uint16_t)ps->prog->nops;
    ps->nesting--;
}

/* "X := expr" (X one of A..L) or an expression giving the result. Returns 1 for an assignment. */
static int parse_statement(parser *ps)
{
    skip_blanks(ps);
    const char *start = ps->p;
    if (input_index(start, 1) >= 0 && !isalnum((unsigned char)start[1]) && start[1] != '_') {
        const char *after = start + 1;
        while (isspace((unsigned char)*after)) after++;
        if (after[0] == ':' && after[1] == '=') {
            int input = input_index(start, 1);
            ps->p = after + 2;
            parse_cond(ps);
            emit(ps, OP_STORE_INPUT, input, 0, -1);
            ps->prog->inputs_set |= (uint16_t)(1u << input);
            return 1;
        }
    }
    parse_cond(ps);
    return 0;
}

int calc_compile(const char *text, calc_program *prog, calc_error *err)
{
    parser ps = {.text = text, .p = text, .prog = prog, .err = err};
    memset(prog, 0, sizeof *prog);
    memset(err, 0, sizeof *err);
    if (setjmp(ps.fail)) {
        memset(prog, 0, sizeof *prog);
        return -1;
    }
    int results = 0;
    const char *result_at = text;
    do {
        skip_blanks(&ps);
        const char *start = ps.p;
        if (!parse_statement(&ps)) {
            if (results++) fail_at(&ps, start, "only the last statement may give a value; assign the others%s", "");
            result_at = start;
        }
        skip_blanks(&ps);
    } while (accept(&ps, ";"));
    if (*ps.p) {
        fail_unexpected(&ps, ps.p, "");
    }
    if (!results) fail_at(&ps, result_at, "the expression gives no value%s", "");
    return 0;
}
