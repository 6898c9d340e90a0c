/* access_internal.h -- CALC conditions of access security rules (private to src/core/access): compiles an expression
 * over the inputs A..L of an ASG with the record database's CALC engine and evaluates it. */
#ifndef RELOC_ACCESS_INTERNAL_H
#define RELOC_ACCESS_INTERNAL_H

#include <stddef.h>

/* NULL with a message in err when the expression does not compile. */
void *access_calc_compile(const char *expression, char *err, size_t errlen);
/* Value of the expression for inputs[0..11] = A..L. */
double access_calc_eval(void *program, const double *inputs);
void access_calc_free(void *program);

#endif
