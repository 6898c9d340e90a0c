/* util.c -- time helpers, checked allocation (large arrays on huge pages) and bounded string copy (see base.h). */
#include "core/base/base.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

static double clock_seconds(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

double time_monotonic(void) { return clock_seconds(CLOCK_MONOTONIC); }

double time_process_cpu(void) { return clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }

double time_thread_cpu(void) { return clock_seconds(CLOCK_THREAD_CPUTIME_ID); }

struct timespec time_wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return t;
}

struct timespec time_add(struct timespec t, double seconds)
{
    long long ns = (long long)t.tv_nsec + (long long)(seconds * 1e9);
    t.tv_sec += (time_t)(ns / 1000000000LL);
    ns %= 1000000000LL;
    if (ns < 0) { ns += 1000000000LL; t.tv_sec -= 1; }
    t.tv_nsec = (long)ns;
    return t;
}

static void *checked(void *p, size_t size)
{
    if (!p && size) {
        log_error("base", "out of memory allocating %zu bytes", size);
        abort();
    }
    return p;
}

void *xmalloc(size_t size) { return checked(malloc(size ? size : 1), size); }
void *xcalloc(size_t count, size_t size) { return checked(calloc(count ? count : 1, size ? size : 1), count * size); }
void *xrealloc(void *ptr, size_t size) { return checked(realloc(ptr, size ? size : 1), size); }
char *xstrdup(const char *s) { return checked(strdup(s), strlen(s) + 1); }

/* A transparent huge page on x86-64 (and arm64 with 4 KiB pages). */
#define HUGE_PAGE_BYTES ((size_t)2 << 20)

void *xmalloc_large(size_t size)
{
    if (size < HUGE_PAGE_BYTES) return xmalloc(size);
    if (size > SIZE_MAX - HUGE_PAGE_BYTES) return checked(NULL, size);
    size_t whole_pages = (size + HUGE_PAGE_BYTES - 1) & ~(HUGE_PAGE_BYTES - 1);
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE_BYTES, whole_pages) != 0) return checked(NULL, size);
    (void)madvise(p, whole_pages, MADV_HUGEPAGE);   /* refused: normal pages, which work as well */
    return p;
}

size_t str_copy(char *dst, const char *src, size_t dst_size)
{
    size_t len = strlen(src);
    if (dst_size) {
        size_t n = len < dst_size - 1 ? len : dst_size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

int error_set(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *skip_blanks_and_comments(const char *p, int *line)
{
    for (;;) {
        while (isspace((unsigned char)*p)) {
            if (*p == '\n') (*line)++;
            p++;
        }
        if (*p != '#') return p;
        while (*p && *p != '\n') p++;
    }
}

double um_per_length_unit(const char *egu)
{
    static const struct { const char *name; double um; } units[] = {
        {"um", 1}, {"\xc2\xb5m", 1}, {"micron", 1}, {"microns", 1}, {"mm", 1e3}, {"nm", 1e-3}, {"m", 1e6}, {"cm", 1e4},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(egu, units[i].name) == 0) return units[i].um;
    return 0;
}
