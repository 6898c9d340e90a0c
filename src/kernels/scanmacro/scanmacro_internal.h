/* scanmacro_internal.h -- the loaded form of a scan engine description, shared by engines.c (which loads it) and
 * generate.c (which expands it). Not part of the public interface. */
#ifndef RELOC_MACROS_INTERNAL_H
#define RELOC_MACROS_INTERNAL_H

#include "kernels/scanmacro/scanmacro.h"

/* A template: lines, each expanded separately and ended with '\n'. */
typedef struct template_lines {
    char **line;
    int count;
} template_lines;

typedef struct scan_engine {
    char *name;
    char *motor_x, *motor_y, *detectors;
    double um_per_unit;
    int precision;
    template_lines absolute, relative, polygon_row, pre, post;
} scan_engine;

struct scan_engines {
    scan_engine *engine;
    int count;
};

#endif
