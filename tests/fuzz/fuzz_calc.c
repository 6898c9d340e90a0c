/* fuzz_calc.c -- libFuzzer harness for the CALC compiler and evaluator: any text must either compile to a
 * program that evaluates without touching memory outside its stack, or be refused with a position inside
 * the text. */
#include "core/calc/calc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    calc_program prog;
    calc_error err;
    if (calc_compile(text, &prog, &err) == 0) {
        double args[CALC_NINPUTS] = {1, -2, 3.5, 0, 1e300, -1e-300, 7, 8, 9, 10, 11, 12};
        double result;
        if (calc_eval(&prog, args, 0.5, &result) != 0) abort();
    } else if (err.position < 0 || (size_t)err.position > strlen(text) || !err.message[0]) {
        abort();
    }
    free(text);
    return 0;
}
