/* source_common.c -- what every frame source shares: counting and logging rejected input (rate-limited,
 * so a publisher sending garbage at kHz cannot flood the log) and converting samples to 16 bits. */
#include "drivers/camera/camera_internal.h"

#include "core/base/base.h"

#include <stdarg.h>
#include <stdio.h>

int source_reject(frame_source *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->counters.last_error, sizeof s->counters.last_error, fmt, ap);
    va_end(ap);
    s->counters.rejected++;
    if (s->counters.rejected <= 10 || s->counters.rejected % 100 == 0)
        log_warn("camera", "%s source rejected a frame (%lu so far): %s", s->ops->kind, s->counters.rejected,
                 s->counters.last_error);
    return 0;
}

uint16_t source_clamp16(double v)
{
    return (uint16_t)(v < 0 || v != v ? 0 : v > 65535 ? 65535 : v + 0.5);
}
