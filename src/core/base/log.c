/* log.c -- the process-wide log: level threshold and formatted, timestamped lines on stderr.
 * The threshold is an atomic int, so no lock is needed; each line goes out in a single write(). */
#include "core/base/base.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static atomic_int threshold = -1;   /* -1: not yet read from RELOC_LOG_LEVEL */

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

int log_level_from_name(const char *name)
{
    if (!name) return -1;
    if (!strcasecmp(name, "debug")) return LOG_DEBUG;
    if (!strcasecmp(name, "info")) return LOG_INFO;
    if (!strcasecmp(name, "warn") || !strcasecmp(name, "warning")) return LOG_WARN;
    if (!strcasecmp(name, "error")) return LOG_ERROR;
    return -1;
}

log_level log_get_level(void)
{
    int level = atomic_load(&threshold);
    if (level < 0) {
        level = log_level_from_name(getenv("RELOC_LOG_LEVEL"));
        if (level < 0) level = LOG_INFO;
        atomic_store(&threshold, level);
    }
    return (log_level)level;
}

void log_set_level(log_level level) { atomic_store(&threshold, (int)level); }

void log_msg(log_level level, const char *module, const char *fmt, ...)
{
    if (level < log_get_level()) return;
    char line[2048];
    struct timespec now = time_wall();
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     now.tv_nsec / 1000000, level_names[level], module ? module : "-");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m
                                                                              : sizeof line - (size_t)n - 2));
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}
