/* access_calc.c -- CALC conditions of access security rules, compiled and evaluated with the record
 * database's CALC engine (src/core/calc), so that ACF files use exactly the calc record's language. */
#include "core/access/access_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"
#include "core/calc/calc.h"

void *access_calc_compile(const char *expression, char *err, size_t errlen)
{
    calc_program *prog = xmalloc(sizeof *prog);
    calc_error cerr;
    if (calc_compile(expression, prog, &cerr) == 0)
        return prog;
    snprintf(err, errlen, "CALC(\"%s\"): %s at position %d", expression, cerr.message, cerr.position);
    free(prog);
    return NULL;
}

double access_calc_eval(void *program, const double *inputs)
{
    double args[CALC_NINPUTS], result = 0;
    memcpy(args, inputs, sizeof args);
    return calc_eval(program, args, 0, &result) == 0 ? result : 0;
}

void access_calc_free(void *program) { free(program); }
