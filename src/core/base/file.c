/* file.c -- reading a whole file into memory, the one way every configuration, protocol, sample and page
 * reader of reloc does it: regular files only, bounded, with the reason in the error message. */
#include "core/base/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *file_read_all(const char *path, size_t max_bytes, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_set(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {   /* a FIFO or /dev/zero would never end */
        error_set(err, errlen, "%s: not a regular file", path);
        fclose(f);
        return NULL;
    }
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, size = 0;
    char *text = xmalloc(cap);
    size_t n;
    while ((n = fread(text + size, 1, cap - size - 1, f)) > 0) {
        size += n;
        if (max_bytes && size > max_bytes) break;
        if (size + 1 == cap) text = xrealloc(text, cap *= 2);
    }
    int failed = ferror(f);
    fclose(f);
    if (failed || (max_bytes && size > max_bytes)) {
        if (failed) error_set(err, errlen, "%s: read error", path);
        else error_set(err, errlen, "%s: larger than %zu bytes", path, max_bytes);
        free(text);
        return NULL;
    }
    text[size] = '\0';
    if (len) *len = size;
    return text;
}
