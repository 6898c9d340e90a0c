/* parse.c -- the .db file parser: macro expansion line by line, then records, aliases and includes into a
 * dbload_db parse tree (see dbload.h). Knows nothing of the record database. */
#include "core/dbload/dbload.h"
#include "core/dbload/dbload_internal.h"
#include "core/base/base.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DBLOAD_MAX_INCLUDE_DEPTH 16

typedef struct parser {
    dbload_db *db;
    const macsub_table *macros;
    char *err;
    size_t errlen;
} parser;

/* Appends one zeroed element to a growing array and returns it. */
static void *push(void *array_ptr, size_t *count, size_t elem_size)
{
    void **array = array_ptr;
    *array = xrealloc(*array, (*count + 1) * elem_size);
    char *elem = (char *)*array + *count * elem_size;
    memset(elem, 0, elem_size);
    (*count)++;
    return elem;
}

static const char *remember_file(dbload_db *db, const char *name)
{
    char **slot = push(&db->files, &db->nfiles, sizeof *db->files);
    *slot = xstrdup(name);
    return *slot;
}

char *dbload_find_file(const char *name, const char *dir)
{
    if (name[0] == '/') return access(name, R_OK) == 0 ? xstrdup(name) : NULL;
    char *candidate = NULL;
    if (dir) {
        if (asprintf(&candidate, "%s/%s", dir, name) < 0) abort();
        if (access(candidate, R_OK) == 0) return candidate;
        free(candidate);
    }
    if (access(name, R_OK) == 0) return xstrdup(name);
    const char *path = getenv("EPICS_DB_INCLUDE_PATH");
    while (path && *path) {
        size_t len = strcspn(path, ":");
        if (asprintf(&candidate, "%.*s/%s", (int)len, path, name) < 0) abort();
        if (len && access(candidate, R_OK) == 0) return candidate;
        free(candidate);
        path += len + (path[len] == ':');
    }
    return NULL;
}

/* Length of the part of a line before a '#' comment (a '#' inside a quoted string does not count). */
static size_t code_length(const char *line, size_t len)
{
    int quoted = 0;
    for (size_t i = 0; i < len; i++) {
        if (quoted && line[i] == '\\' && i + 1 < len) i++;
        else if (line[i] == '"') quoted = !quoted;
        else if (line[i] == '#' && !quoted) return i;
    }
    return len;
}

/* Expands macros line by line so that line numbers stay those of the file; comments are copied as written
 * (a macro in a comment is not an error). */
static char *expand_lines(parser *p, const char *file, const char *text)
{
    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);
    int line = 1;
    for (const char *s = text; *s; line++) {
        size_t len = strcspn(s, "\n"), code = code_length(s, len);
        char *raw = strndup(s, code);
        if (!raw) abort();
        char msg[256];
        char *expanded = strchr(raw, '$') ? macsub_expand(p->macros, raw, msg, sizeof msg) : xstrdup(raw);
        free(raw);
        if (!expanded) {
            snprintf(p->err, p->errlen, "%s:%d: %s", file, line, msg);
            fclose(f);
            free(out);
            return NULL;
        }
        fprintf(f, "%s%.*s\n", expanded, (int)(len - code), s + code);
        free(expanded);
        s += len + (s[len] == '\n');
    }
    fclose(f);
    return out;
}

static int parse_source(parser *p, const char *text, const char *file, const char *dir, int depth);

static int parse_include(parser *p, lexer *lx, const char *dir, int depth)
{
    int line = lx->tok_line;
    char *name = lex_take_value(lx, "a file name after include");
    if (!name) return -1;
    if (depth >= DBLOAD_MAX_INCLUDE_DEPTH) {
        snprintf(p->err, p->errlen, "%s:%d: includes nested too deeply at \"%s\" (recursive include?)", lx->file,
                 line, name);
        free(name);
        return -1;
    }
    char *path = dbload_find_file(name, dir);
    if (!path) {
        snprintf(p->err, p->errlen, "%s:%d: include file \"%s\" not found", lx->file, line, name);
        free(name);
        return -1;
    }
    free(name);
    char msg[512];
    char *text = lex_read_file(path, msg, sizeof msg);
    int rc = -1;
    if (!text) snprintf(p->err, p->errlen, "%s:%d: include: %s", lx->file, line, msg);
    if (text) {
        char *dircopy = xstrdup(path);
        rc = parse_source(p, text, remember_file(p->db, path), dirname(dircopy), depth + 1);
        free(dircopy);
        free(text);
    }
    free(path);
    return rc;
}

/* "( a , b )" -> two values; with b == NULL "( a )". */
static int parse_args(lexer *lx, const char *what, char **a, const char *a_what, char **b, const char *b_what)
{
    if (lex_expect(lx, '(', what) < 0) return -1;
    *a = lex_take_value(lx, a_what);
    if (!*a) return -1;
    if (b) {
        if (lex_expect(lx, ',', what) < 0 || !(*b = lex_take_value(lx, b_what))) {
            free(*a);
            *a = NULL;
            return -1;
        }
    }
    if (lex_expect(lx, ')', what) < 0) {
        free(*a);
        *a = NULL;
        if (b) { free(*b); *b = NULL; }
        return -1;
    }
    return 0;
}

static int parse_record_body(parser *p, lexer *lx, dbload_record *rec)
{
    while (!lex_is(lx, '}')) {
        if (lx->kind != TOK_WORD) {
            if (lx->kind == TOK_ERROR) return -1;
            if (lx->kind == TOK_EOF) return lex_error(lx, "missing '}' at end of record \"%s\"", rec->name);
            return lex_error(lx, "expected field, info or alias in record \"%s\"", rec->name);
        }
        char *keyword = xstrdup(lx->tok);
        int line = lx->tok_line;
        if (lex_next(lx) == TOK_ERROR) { free(keyword); return -1; }
        char *key = NULL, *value = NULL;
        int rc;
        dbload_item *item;
        if (!strcmp(keyword, "field")) {
            rc = parse_args(lx, "in field(NAME, value)", &key, "a field name", &value, "a field value");
            item = rc ? NULL : push(&rec->fields, &rec->nfields, sizeof *item);
        } else if (!strcmp(keyword, "info")) {
            rc = parse_args(lx, "in info(key, value)", &key, "an info name", &value, "an info value");
            item = rc ? NULL : push(&rec->infos, &rec->ninfos, sizeof *item);
        } else if (!strcmp(keyword, "alias")) {
            rc = parse_args(lx, "in alias(\"NAME\")", &value, "an alias name", NULL, NULL);
            item = rc ? NULL : push(&rec->aliases, &rec->naliases, sizeof *item);
        } else {
            snprintf(p->err, p->errlen, "%s:%d: unknown item \"%s\" in record \"%s\" (expected field, info or alias)",
                     lx->file, line, keyword, rec->name);
            rc = -1;
            item = NULL;
        }
        free(keyword);
        if (rc) return -1;
        *item = (dbload_item){.key = key, .value = value, .file = lx->file, .line = line};
    }
    return lex_next(lx) == TOK_ERROR ? -1 : 0;
}

static int parse_record(parser *p, lexer *lx, int line)
{
    char *type = NULL, *name = NULL;
    if (parse_args(lx, "in record(TYPE, \"NAME\")", &type, "a record type", &name, "a record name") < 0) return -1;
    dbload_record *rec = push(&p->db->records, &p->db->nrecords, sizeof *rec);
    rec->type = type;
    rec->name = name;
    rec->file = lx->file;
    rec->line = line;
    if (!lex_is(lx, '{')) return 0;               /* a record without a body */
    if (lex_next(lx) == TOK_ERROR) return -1;
    return parse_record_body(p, lx, rec);
}

static int parse_source(parser *p, const char *text, const char *file, const char *dir, int depth)
{
    char *expanded = expand_lines(p, file, text);
    if (!expanded) return -1;
    lexer lx;
    lex_init(&lx, file, expanded, p->err, p->errlen);
    int rc = 0;
    lex_next(&lx);
    while (rc == 0 && lx.kind != TOK_EOF) {
        if (lx.kind == TOK_ERROR) { rc = -1; break; }
        if (lx.kind != TOK_WORD) { rc = lex_error(&lx, "expected record, alias or include, found '%s'", lx.tok); break; }
        int line = lx.tok_line;
        char *keyword = xstrdup(lx.tok);
        if (lex_next(&lx) == TOK_ERROR) {
            rc = -1;
        } else if (!strcmp(keyword, "record") || !strcmp(keyword, "grecord")) {
            rc = parse_record(p, &lx, line);
        } else if (!strcmp(keyword, "alias")) {
            char *rec = NULL, *alias = NULL;
            rc = parse_args(&lx, "in alias(\"RECORD\", \"ALIAS\")", &rec, "a record name", &alias, "an alias name");
            if (rc == 0) {
                dbload_item *item = push(&p->db->aliases, &p->db->naliases, sizeof *item);
                *item = (dbload_item){.key = rec, .value = alias, .file = file, .line = line};
            }
        } else if (!strcmp(keyword, "include")) {
            rc = parse_include(p, &lx, dir, depth);
        } else {
            snprintf(p->err, p->errlen, "%s:%d: unknown keyword \"%s\" (expected record, grecord, alias or include)",
                     file, line, keyword);
            rc = -1;
        }
        free(keyword);
    }
    lex_free(&lx);
    free(expanded);
    return rc;
}

int dbload_parse_text(dbload_db *db, const char *text, const char *name, const macsub_table *macros, char *err,
                      size_t errlen)
{
    parser p = {.db = db, .macros = macros, .err = err, .errlen = errlen};
    return parse_source(&p, text, remember_file(db, name), NULL, 0);
}

int dbload_parse_file(dbload_db *db, const char *path, const macsub_table *macros, char *err, size_t errlen)
{
    char *found;
    char *text = lex_find_and_read(path, &found, err, errlen);
    if (!text) return -1;
    parser p = {.db = db, .macros = macros, .err = err, .errlen = errlen};
    char *dircopy = xstrdup(found);
    int rc = parse_source(&p, text, remember_file(db, found), dirname(dircopy), 0);
    free(dircopy);
    free(text);
    free(found);
    return rc;
}

static void free_items(dbload_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].key);
        free(items[i].value);
    }
    free(items);
}

void dbload_db_free(dbload_db *db)
{
    for (size_t i = 0; i < db->nrecords; i++) {
        dbload_record *r = &db->records[i];
        free(r->type);
        free(r->name);
        free_items(r->fields, r->nfields);
        free_items(r->infos, r->ninfos);
        free_items(r->aliases, r->naliases);
    }
    free(db->records);
    free_items(db->aliases, db->naliases);
    for (size_t i = 0; i < db->nfiles; i++) free(db->files[i]);
    free(db->files);
    memset(db, 0, sizeof *db);
}
