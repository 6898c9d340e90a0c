/* savefile.c -- the autosave file format: atomic writing and whole-file validation on reading (see
 * autosave.h). Knows nothing of the record database. */
#include "core/autosave/autosave.h"
#include "core/base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SAVE_HEADER "# reloc autosave 1\n"
#define END_MARKER "#END "

static uint64_t fnv1a(uint64_t hash, const char *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        hash ^= (unsigned char)bytes[i];
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

static const uint64_t FNV_BASIS = 0xcbf29ce484222325ULL;

void autosave_set_add(autosave_set *set, const char *channel, const char *value)
{
    set->entries = xrealloc(set->entries, (set->n + 1) * sizeof *set->entries);
    set->entries[set->n++] = (autosave_entry){xstrdup(channel), xstrdup(value)};
}

void autosave_set_free(autosave_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        free(set->entries[i].channel);
        free(set->entries[i].value);
    }
    free(set->entries);
    set->entries = NULL;
    set->n = 0;
}

/* One entry line: channel, blank, the value quoted with C escapes. */
static void format_entry(FILE *out, const autosave_entry *e)
{
    fprintf(out, "%s \"", e->channel);
    for (const unsigned char *p = (const unsigned char *)e->value; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", out);
        else if (*p == '\t') fputs("\\t", out);
        else if (*p < 0x20 || *p == 0x7f) fprintf(out, "\\x%02x", *p);
        else fputc(*p, out);
    }
    fputs("\"\n", out);
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int autosave_file_write(const char *path, const autosave_set *set, char *err, size_t errlen)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    fputs(SAVE_HEADER, out);
    for (size_t i = 0; i < set->n; i++) format_entry(out, &set->entries[i]);
    fflush(out);
    fprintf(out, END_MARKER "%zu fnv1a64=%016" PRIx64 "\n", set->n, fnv1a(FNV_BASIS, text, size));
    fclose(out);

    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", path) < 0) abort();
    int rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
    } else if (write_all(fd, text, size) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
    } else if (close(fd) < 0 || rename(tmp, path) < 0) {
        snprintf(err, errlen, "%s -> %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
    } else {
        /* The rename itself must reach the disk for the new file to survive a crash. */
        char *dircopy = xstrdup(path);
        int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dircopy);
        rc = 0;
    }
    free(tmp);
    free(text);
    return rc;
}

/* Parses `CHANNEL "value"` into set; returns NULL or the reason it is malformed. */
static const char *parse_entry(const char *line, autosave_set *set)
{
    size_t chlen = strcspn(line, " \t\"");
    if (chlen == 0 || line[chlen] != ' ' || line[chlen + 1] != '"') return "expected CHANNEL \"value\"";
    char *value = xmalloc(strlen(line) + 1), *out = value;
    const char *p = line + chlen + 2;
    const char *why = NULL;
    for (; *p && *p != '"'; p++) {
        if (*p != '\\') { *out++ = *p; continue; }
        char c = *++p;
        unsigned hex;
        if (c == 'n') *out++ = '\n';
        else if (c == 't') *out++ = '\t';
        else if (c == '"' || c == '\\') *out++ = c;
        else if (c == 'x' && sscanf(p + 1, "%2x", &hex) == 1 && p[1] && p[2]) { *out++ = (char)hex; p += 2; }
        else { why = "bad escape in value"; break; }
    }
    *out = '\0';
    if (!why && (*p != '"' || p[1] != '\0')) why = "value not terminated by a quote at the end of the line";
    if (!why) {
        char *channel = strndup(line, chlen);
        if (!channel) abort();
        autosave_set_add(set, channel, value);
        free(channel);
    }
    free(value);
    return why;
}

int autosave_file_read(const char *path, autosave_set *set, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return 1;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, ended = 0;
    uint64_t hash = FNV_BASIS;
    const char *why = NULL;
    while (!why && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (ended) { why = "data after the end marker"; break; }
        if (len == 0 || line[len - 1] != '\n') { why = "truncated line (no newline)"; break; }
        if (lineno == 1) {
            if (strcmp(line, SAVE_HEADER)) why = "not a reloc autosave file (bad header)";
        } else if (!strncmp(line, END_MARKER, strlen(END_MARKER))) {
            size_t count;
            uint64_t sum;
            if (sscanf(line, END_MARKER "%zu fnv1a64=%" SCNx64, &count, &sum) != 2) why = "malformed end marker";
            else if (count != set->n) why = "entry count in the end marker does not match";
            else if (sum != hash) why = "checksum mismatch (file corrupted)";
            ended = 1;
            continue;
        } else if (line[0] != '#') {
            line[len - 1] = '\0';
            why = parse_entry(line, set);
            line[len - 1] = '\n';
        }
        hash = fnv1a(hash, line, (size_t)len);
    }
    free(line);
    fclose(f);
    if (!why && !ended) {
        why = "truncated (no end marker)";
        lineno++;
    }
    if (!why) return 0;
    snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
    autosave_set_free(set);
    return -1;
}
