/* unit.h -- included first by every cmocka unit test: cmocka with the headers it needs before it, the libc headers
 * every test uses, and a scratch directory for tests that write files (created by the group setup
 * unit_scratch_setup, removed with everything in it by unit_scratch_teardown). */
#ifndef RELOC_UNIT_H
#define RELOC_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The scratch directory of this test binary ("" before unit_scratch_setup). */
static inline char *unit_dir(void)
{
    static char dir[64];
    return dir;
}

static inline int unit_scratch_setup(void **state)
{
    (void)state;
    snprintf(unit_dir(), 64, "/tmp/reloc-unit.XXXXXX");
    return mkdtemp(unit_dir()) ? 0 : -1;
}

static inline int unit_scratch_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", unit_dir());
    return system(cmd);
}

/* buf := the path of name inside the scratch directory. */
static inline const char *unit_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", unit_dir(), name);
    return buf;
}

/* Writes text to name in the scratch directory (its folders must exist); returns the path, valid until the next
 * call. */
static inline const char *unit_write_file(const char *name, const char *text)
{
    static char path[256];
    FILE *f = fopen(unit_path(path, sizeof path, name), "w");
    if (!f) fail_msg("cannot create %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

#endif
