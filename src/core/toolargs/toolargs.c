/* toolargs.c -- strict number parsing and path stems for the command-line tools (see toolargs.h). */
#include "core/toolargs/toolargs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int toolargs_double(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int toolargs_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

void toolargs_strip_extension(char *path)
{
    char *dot = strrchr(path, '.');
    if (dot && dot != path && !strchr(dot, '/')) *dot = '\0';
}
