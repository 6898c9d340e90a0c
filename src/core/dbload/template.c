/* template.c -- the substitution-file parser of dbLoadTemplate: global { }, file "x.db" { pattern {..} {..} }
 * and file "x.db" { { P=a } } blocks into a list of (db file, macro table) instances (see dbload.h). */
#include "core/dbload/dbload.h"
#include "core/dbload/dbload_internal.h"
#include "core/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct definitions {   /* name=value pairs in the order written */
    char **names, **values;
    size_t n;
} definitions;

static void defs_add(definitions *d, char *name, char *value)
{
    d->names = xrealloc(d->names, (d->n + 1) * sizeof *d->names);
    d->values = xrealloc(d->values, (d->n + 1) * sizeof *d->values);
    d->names[d->n] = name;
    d->values[d->n] = value;
    d->n++;
}

static void defs_clear(definitions *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->names[i]);
        free(d->values[i]);
    }
    free(d->names);
    free(d->values);
    memset(d, 0, sizeof *d);
}

typedef struct tparser {
    dbload_substitutions *tpl;
    const macsub_table *parent;
    lexer *lx;
    definitions globals;
} tparser;

/* Skips an optional ',' between items. */
static int skip_comma(lexer *lx)
{
    if (lex_is(lx, ',') && lex_next(lx) == TOK_ERROR) return -1;
    return 0;
}

/* "{ A=1, B="x" }" (the '{' is current) into d. */
static int parse_definitions(lexer *lx, definitions *d)
{
    if (lex_expect(lx, '{', "to open macro definitions") < 0) return -1;
    while (!lex_is(lx, '}')) {
        char *name = lex_take_value(lx, "a macro name");
        if (!name) return -1;
        if (lex_expect(lx, '=', "after the macro name") < 0) { free(name); return -1; }
        char *value = lex_take_value(lx, "a macro value");
        if (!value) { free(name); return -1; }
        defs_add(d, name, value);
        if (skip_comma(lx) < 0) return -1;
    }
    return lex_next(lx) == TOK_ERROR ? -1 : 0;
}

/* "{ a, b, c }" (the '{' is current) into a list of values. */
static int parse_list(lexer *lx, char ***items, size_t *n, const char *what)
{
    if (lex_expect(lx, '{', "to open a list") < 0) return -1;
    while (!lex_is(lx, '}')) {
        char *value = lex_take_value(lx, what);
        if (!value) return -1;
        *items = xrealloc(*items, (*n + 1) * sizeof **items);
        (*items)[(*n)++] = value;
        if (skip_comma(lx) < 0) return -1;
    }
    return lex_next(lx) == TOK_ERROR ? -1 : 0;
}

static void free_list(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++) free(items[i]);
    free(items);
}

static void add_instance(tparser *tp, const char *dbfile, int line, const definitions *own)
{
    dbload_substitutions *tpl = tp->tpl;
    tpl->instances = xrealloc(tpl->instances, (tpl->ninstances + 1) * sizeof *tpl->instances);
    dbload_instance *in = &tpl->instances[tpl->ninstances++];
    in->dbfile = xstrdup(dbfile);
    in->file = tpl->file;
    in->line = line;
    in->macros = macsub_create(tp->parent, 0);
    for (size_t i = 0; i < tp->globals.n; i++) macsub_define(in->macros, tp->globals.names[i], tp->globals.values[i]);
    for (size_t i = 0; i < own->n; i++) macsub_define(in->macros, own->names[i], own->values[i]);
}

/* pattern { A, B } { a1, b1 } { a2, b2 } ... (the word "pattern" consumed). */
static int parse_pattern(tparser *tp, const char *dbfile)
{
    lexer *lx = tp->lx;
    char **names = NULL;
    size_t nnames = 0;
    int rc = parse_list(lx, &names, &nnames, "a macro name");
    while (rc == 0 && lex_is(lx, '{')) {
        int line = lx->tok_line;
        char **values = NULL;
        size_t nvalues = 0;
        rc = parse_list(lx, &values, &nvalues, "a macro value");
        if (rc == 0 && nvalues != nnames) {
            snprintf(lx->err, lx->errlen, "%s:%d: pattern row has %zu values for %zu macro names", lx->file, line,
                     nvalues, nnames);
            rc = -1;
        }
        if (rc == 0) {
            definitions row = {0};
            for (size_t i = 0; i < nnames; i++) defs_add(&row, xstrdup(names[i]), xstrdup(values[i]));
            add_instance(tp, dbfile, line, &row);
            defs_clear(&row);
        }
        free_list(values, nvalues);
        if (rc == 0) rc = skip_comma(lx);
    }
    free_list(names, nnames);
    return rc;
}

/* file "x.db" { ... } (the word "file" consumed). */
static int parse_file_block(tparser *tp)
{
    lexer *lx = tp->lx;
    char *dbfile = lex_take_value(lx, "a .db file name after file");
    if (!dbfile) return -1;
    int rc = lex_expect(lx, '{', "after the file name");
    while (rc == 0 && !lex_is(lx, '}')) {
        if (lx->kind == TOK_WORD && !strcmp(lx->tok, "pattern")) {
            rc = lex_next(lx) == TOK_ERROR ? -1 : parse_pattern(tp, dbfile);
        } else if (lex_is(lx, '{')) {
            int line = lx->tok_line;
            definitions own = {0};
            rc = parse_definitions(lx, &own);
            if (rc == 0) add_instance(tp, dbfile, line, &own);
            defs_clear(&own);
        } else if (lx->kind == TOK_EOF) {
            rc = lex_error(lx, "missing '}' at end of file block \"%s\"", dbfile);
        } else {
            rc = lx->kind == TOK_ERROR ? -1 : lex_error(lx, "expected pattern or '{' in file block \"%s\"", dbfile);
        }
    }
    if (rc == 0) rc = lex_next(lx) == TOK_ERROR ? -1 : 0;
    free(dbfile);
    return rc;
}

int dbload_parse_template_text(dbload_substitutions *tpl, const char *text, const char *name,
                               const macsub_table *parent, char *err, size_t errlen)
{
    memset(tpl, 0, sizeof *tpl);
    tpl->file = xstrdup(name);
    lexer lx;
    lex_init(&lx, tpl->file, text, err, errlen);
    tparser tp = {.tpl = tpl, .parent = parent, .lx = &lx};
    int rc = 0;
    lex_next(&lx);
    while (rc == 0 && lx.kind != TOK_EOF) {
        if (lx.kind == TOK_ERROR) { rc = -1; break; }
        if (lx.kind == TOK_WORD && !strcmp(lx.tok, "file")) {
            rc = lex_next(&lx) == TOK_ERROR ? -1 : parse_file_block(&tp);
        } else if (lx.kind == TOK_WORD && !strcmp(lx.tok, "global")) {
            rc = lex_next(&lx) == TOK_ERROR ? -1 : parse_definitions(&lx, &tp.globals);
        } else {
            rc = lex_error(&lx, "expected file or global, found '%s'", lx.tok ? lx.tok : "?");
        }
    }
    lex_free(&lx);
    defs_clear(&tp.globals);
    return rc;
}

int dbload_parse_template(dbload_substitutions *tpl, const char *path, const macsub_table *parent, char *err,
                          size_t errlen)
{
    memset(tpl, 0, sizeof *tpl);
    char *found;
    char *text = lex_find_and_read(path, &found, err, errlen);
    if (!text) return -1;
    int rc = dbload_parse_template_text(tpl, text, found, parent, err, errlen);
    free(text);
    free(found);
    return rc;
}

void dbload_template_free(dbload_substitutions *tpl)
{
    for (size_t i = 0; i < tpl->ninstances; i++) {
        free(tpl->instances[i].dbfile);
        macsub_free(tpl->instances[i].macros);
    }
    free(tpl->instances);
    free(tpl->file);
    memset(tpl, 0, sizeof *tpl);
}
