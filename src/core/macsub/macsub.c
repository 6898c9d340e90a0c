/* macsub.c -- macro tables and $(NAME) / ${NAME} / $(NAME=default) expansion (see macro.h).
 * Expansion writes into an open_memstream buffer and recurses into names, defaults and values; a stack of
 * the names being expanded catches self-reference, a depth limit catches everything else. */
#include "core/macsub/macsub.h"
#include "core/base/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MACRO_MAX_DEPTH 64

typedef struct macsub_def {
    char *name;
    char *value;
    struct macsub_def *next;
} macsub_def;

struct macsub_table {
    const macsub_table *parent;
    int use_env;
    macsub_def *defs;
};

macsub_table *macsub_create(const macsub_table *parent, int use_env)
{
    macsub_table *t = xcalloc(1, sizeof *t);
    t->parent = parent;
    t->use_env = use_env;
    return t;
}

void macsub_free(macsub_table *table)
{
    if (!table) return;
    macsub_def *d = table->defs;
    while (d) {
        macsub_def *next = d->next;
        free(d->name);
        free(d->value);
        free(d);
        d = next;
    }
    free(table);
}

void macsub_define(macsub_table *table, const char *name, const char *value)
{
    for (macsub_def *d = table->defs; d; d = d->next) {
        if (!strcmp(d->name, name)) {
            free(d->value);
            d->value = xstrdup(value);
            return;
        }
    }
    macsub_def *d = xmalloc(sizeof *d);
    d->name = xstrdup(name);
    d->value = xstrdup(value);
    d->next = table->defs;
    table->defs = d;
}

const char *macsub_lookup(const macsub_table *table, const char *name)
{
    int use_env = 0;
    for (const macsub_table *t = table; t; t = t->parent) {
        for (const macsub_def *d = t->defs; d; d = d->next)
            if (!strcmp(d->name, name)) return d->value;
        use_env |= t->use_env;
    }
    return use_env ? getenv(name) : NULL;
}

/* ---- definitions "A=1,B='x'" ---- */

static const char *skip_blanks(const char *p)
{
    while (*p == ' ' || *p == '\t') p++;
    return p;
}

/* Reads one name or value up to an unquoted stop character; quotes and backslashes are removed, blanks
 * outside quotes are trimmed at both ends. Returns the position of the stop character (or the end). */
static const char *read_def_part(const char *p, const char *stops, char **out, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t size = 0, keep = 0;   /* keep: length up to the last character that must not be trimmed */
    FILE *f = open_memstream(&buf, &size);
    p = skip_blanks(p);
    while (*p && !strchr(stops, *p)) {
        if (*p == '"' || *p == '\'') {
            char quote = *p++;
            while (*p && *p != quote) {
                if (*p == '\\' && p[1]) p++;
                fputc(*p++, f);
            }
            if (!*p) {
                fclose(f);
                free(buf);
                snprintf(err, errlen, "unterminated %c quote in macro definitions", quote);
                return NULL;
            }
            p++;
            fflush(f);
            keep = size;
        } else {
            if (*p == '\\' && p[1]) p++;
            fputc(*p, f);
            fflush(f);
            if (*p != ' ' && *p != '\t') keep = size;
            p++;
        }
    }
    fclose(f);
    buf[keep] = '\0';
    *out = buf;
    return p;
}

int macsub_parse_defs(macsub_table *table, const char *defs, char *err, size_t errlen)
{
    const char *p = defs ? defs : "";
    while (*skip_blanks(p)) {
        char *name = NULL, *value = NULL;
        p = read_def_part(p, ",=", &name, err, errlen);
        if (!p) return -1;
        if (!*name) {
            free(name);
            if (*p == ',') { p++; continue; }    /* tolerate empty items: "A=1,,B=2" */
            snprintf(err, errlen, "macro definition without a name in \"%s\"", defs);
            return -1;
        }
        if (*p != '=') {
            snprintf(err, errlen, "macro definition \"%s\" has no '=' value", name);
            free(name);
            return -1;
        }
        p = read_def_part(p + 1, ",", &value, err, errlen);
        if (!p) { free(name); return -1; }
        macsub_define(table, name, value);
        free(name);
        free(value);
        if (*p == ',') p++;
    }
    return 0;
}

/* ---- expansion ---- */

typedef struct expansion {
    const macsub_table *table;
    const char *active[MACRO_MAX_DEPTH];   /* names being expanded, innermost last */
    int nactive;
    char *err;
    size_t errlen;
} expansion;

static int expand_into(expansion *x, const char *text, size_t len, FILE *out, int depth);

static int fail(expansion *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(expansion *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, x->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Expands text[0..len) into a new string (NULL on error). */
static char *expand_to_string(expansion *x, const char *text, size_t len, int depth)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    int rc = expand_into(x, text, len, f, depth);
    fclose(f);
    if (rc < 0) { free(buf); return NULL; }
    return buf;
}

/* Finds the bracket closing the reference that starts after `open`; returns its offset or -1. Brackets of
 * nested references are counted so that "$(A$(B))" closes at the last ')'. */
static long find_close(const char *text, size_t len, size_t start)
{
    int nest = 1;
    for (size_t i = start; i < len; i++) {
        if (text[i] == '\\' && i + 1 < len) { i++; continue; }
        if (text[i] == '(' || text[i] == '{') nest++;
        else if ((text[i] == ')' || text[i] == '}') && --nest == 0) return (long)i;
    }
    return -1;
}

/* Expands the body of one reference, "NAME" or "NAME=default", into out. */
static int expand_reference(expansion *x, const char *body, size_t len, FILE *out, int depth)
{
    size_t eq = len;
    int nest = 0;
    for (size_t i = 0; i < len; i++) {
        if (body[i] == '\\' && i + 1 < len) { i++; continue; }
        if (body[i] == '(' || body[i] == '{') nest++;
        else if (body[i] == ')' || body[i] == '}') nest--;
        else if (body[i] == '=' && nest == 0) { eq = i; break; }
    }
    char *name = expand_to_string(x, body, eq, depth + 1);
    if (!name) return -1;
    int rc = 0;
    const char *value = macsub_lookup(x->table, name);
    if (value) {
        for (int i = 0; i < x->nactive; i++)
            if (!strcmp(x->active[i], name)) { rc = fail(x, "macro $(%s) refers to itself", name); goto done; }
        if (x->nactive == MACRO_MAX_DEPTH) { rc = fail(x, "macros nested too deeply at $(%s)", name); goto done; }
        x->active[x->nactive++] = name;
        rc = expand_into(x, value, strlen(value), out, depth + 1);
        x->nactive--;
    } else if (eq < len) {
        rc = expand_into(x, body + eq + 1, len - eq - 1, out, depth + 1);
    } else {
        rc = fail(x, "undefined macro $(%s)", name);
    }
done:
    free(name);
    return rc;
}

static int expand_into(expansion *x, const char *text, size_t len, FILE *out, int depth)
{
    if (depth > MACRO_MAX_DEPTH) return fail(x, "macros nested too deeply");
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '\\' && i + 1 < len) {
            if (text[i + 1] != '$') fputc('\\', out);
            fputc(text[++i], out);
        } else if (c == '$' && i + 1 < len && (text[i + 1] == '(' || text[i + 1] == '{')) {
            long close = find_close(text, len, i + 2);
            if (close < 0) return fail(x, "unterminated macro reference \"%.*s\"", (int)(len - i), text + i);
            if (expand_reference(x, text + i + 2, (size_t)close - i - 2, out, depth) < 0) return -1;
            i = (size_t)close;
        } else {
            fputc(c, out);
        }
    }
    return 0;
}

char *macsub_expand(const macsub_table *table, const char *text, char *err, size_t errlen)
{
    expansion x = {.table = table, .err = err, .errlen = errlen};
    return expand_to_string(&x, text, strlen(text), 0);
}
