/* base.h -- what every concern of reloc uses: logging, time, checked allocation (huge pages for large arrays),
 * bounded strings, whole files.
 *
 * Logging: one line per event on stderr, "2026-11-21T13:45:01.123Z LEVEL [module] text". The level
 * threshold comes from RELOC_LOG_LEVEL (debug, info, warn, error; default info) and can be changed at
 * run time. Logging is thread-safe; a line is written with one write() so lines never interleave.
 */
#ifndef RELOC_BASE_H
#define RELOC_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

void log_set_level(log_level level);
log_level log_get_level(void);
/* Parses "debug", "info", "warn"/"warning", "error"; returns -1 for anything else. */
int log_level_from_name(const char *name);
void log_msg(log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(mod, ...) log_msg(LOG_DEBUG, mod, __VA_ARGS__)
#define log_info(mod, ...)  log_msg(LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...)  log_msg(LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_msg(LOG_ERROR, mod, __VA_ARGS__)

/* Time. Monotonic seconds for intervals and rates; wall-clock for time stamps; CPU seconds of the whole process
 * (all its threads) or of the calling thread, for the work itself on a shared machine. */
double time_monotonic(void);
double time_process_cpu(void);
double time_thread_cpu(void);
struct timespec time_wall(void);
/* Adds seconds (may be fractional) to a timespec, normalizing nanoseconds. */
struct timespec time_add(struct timespec t, double seconds);

/* Before a function whose loops are worth an AVX2 build besides the baseline x86-64 one; the loader picks the one
 * the CPU runs. GCC only: clang 14 (the fuzz build) names an exported clone's resolver "f.ifunc", which other files
 * cannot link to, so there the baseline build alone is made. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RELOC_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
/* Loops that also gain from AVX-512 and from FMA (results may differ in the last bit from the baseline build, but
 * every caller on one machine runs the same clone). */
#define RELOC_AVX512_AVX2_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
/* Whether this CPU runs the x86-64-v4 (AVX-512) clone, for loops that pick their vector width by it. */
#define RELOC_RUNS_AVX512_CLONE() __builtin_cpu_supports("x86-64-v4")
#else
#define RELOC_AVX2_CLONES
#define RELOC_AVX512_AVX2_CLONES
#define RELOC_RUNS_AVX512_CLONE() 0
#endif

/* Allocation that never returns NULL: out of memory logs and aborts, since no caller can recover. */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);

/* For arrays of several MB (the kernels' maps, result and scratch arrays): like xmalloc, contents undefined,
 * released with free(). From 2 MiB on, the array starts on a 2 MiB boundary, its size is rounded up to whole 2 MiB
 * and it is offered to transparent huge pages (madvise MADV_HUGEPAGE, which the kernel's "madvise" THP mode waits
 * for): the first touch of each 2 MiB then takes one page fault instead of 512, and those faults were a third of the
 * run time of a kernel writing tens of MB of fresh maps. Where huge pages are refused (THP "never", a kernel without
 * them) the same memory is used with normal pages. It comes from the C allocator (posix_memalign), so that free()
 * releases it and the sanitizers still catch overruns and leaks. An array that must start zeroed and is filled
 * over time is better left to xcalloc, whose zero pages cost nothing until touched. */
void *xmalloc_large(size_t size);

/* Formats an error message into err (when err is not NULL) and returns -1, so that a failing function can
 * say `return error_set(err, errlen, "...", ...);`. */
int error_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Micrometres per unit of a length given as an EPICS EGU string ("mm", "um", "µm", "micron(s)", "nm", "cm",
 * "m"; case-insensitive); 0 when the string is not a length unit reloc knows. */
double um_per_length_unit(const char *egu);

/* For hand-written parsers of configuration files: skips white space and '#' comments (to the end of the line),
 * adding the newlines passed to *line; returns where the next token starts. */
const char *skip_blanks_and_comments(const char *p, int *line);

/* Reads a whole regular file: returns its bytes followed by a NUL (the caller frees them) and their count in *len
 * (when len is not NULL); max_bytes 0 means no limit. NULL with "cannot open PATH: reason", "PATH: not a regular
 * file" (a FIFO or /dev/zero would never end), "PATH: larger than N bytes" or "PATH: read error" in err. */
char *file_read_all(const char *path, size_t max_bytes, size_t *len, char *err, size_t errlen);

/* Copies at most dst_size-1 bytes and always terminates; returns strlen(src) (truncation if >= dst_size). */
size_t str_copy(char *dst, const char *src, size_t dst_size);

#endif
