/* lexer.c -- tokenizer shared by the .db parser and the substitution-file parser (see dbload_internal.h). */
#include "core/dbload/dbload_internal.h"
#include "core/dbload/dbload.h"
#include "core/base/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char punctuation[] = "(){},=";

static int is_bare(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("_-+:.[]<>;/*&|!~%@?^$", c));
}

void lex_init(lexer *lx, const char *file, const char *text, char *err, size_t errlen)
{
    memset(lx, 0, sizeof *lx);
    lx->file = file;
    lx->text = text;
    lx->line = 1;
    lx->col = 1;
    lx->err = err;
    lx->errlen = errlen;
}

void lex_free(lexer *lx)
{
    free(lx->tok);
    lx->tok = NULL;
}

static char peek(const lexer *lx, size_t ahead) { return lx->text[lx->pos + ahead]; }

static void advance(lexer *lx)
{
    if (lx->text[lx->pos] == '\n') { lx->line++; lx->col = 1; }
    else lx->col++;
    lx->pos++;
}

int lex_error(lexer *lx, const char *fmt, ...)
{
    int n = snprintf(lx->err, lx->errlen, "%s:%d:%d: ", lx->file, lx->tok_line, lx->tok_col);
    if (n < 0 || (size_t)n >= lx->errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lx->err + n, lx->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Translates the escape after a backslash (lx at the character after '\'); appends the byte to out. */
static void lex_escape(lexer *lx, FILE *out)
{
    static const char from[] = "abfnrtv", to[] = "\a\b\f\n\r\t\v";
    char c = peek(lx, 0);
    const char *simple = c ? strchr(from, c) : NULL;
    if (simple) { fputc(to[simple - from], out); advance(lx); return; }
    if (c == 'x' && hex_digit(peek(lx, 1)) >= 0) {
        advance(lx);
        int v = 0;
        for (int i = 0; i < 2 && hex_digit(peek(lx, 0)) >= 0; i++, advance(lx)) v = v * 16 + hex_digit(peek(lx, 0));
        fputc(v, out);
        return;
    }
    if (c >= '0' && c <= '7') {
        int v = 0;
        for (int i = 0; i < 3 && peek(lx, 0) >= '0' && peek(lx, 0) <= '7'; i++, advance(lx)) v = v * 8 + peek(lx, 0) - '0';
        fputc(v & 0xff, out);
        return;
    }
    fputc(c, out);   /* \\ \" \' \? and anything else: the character itself */
    advance(lx);
}

static tok_kind lex_string(lexer *lx)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    advance(lx);                                   /* opening quote */
    for (;;) {
        char c = peek(lx, 0);
        if (c == '"') { advance(lx); break; }
        if (c == '\0' || c == '\n') {
            fclose(out);
            free(buf);
            lex_error(lx, "unterminated string");
            return lx->kind = TOK_ERROR;
        }
        advance(lx);
        if (c == '\\' && peek(lx, 0) && peek(lx, 0) != '\n') lex_escape(lx, out);
        else fputc(c, out);
    }
    fclose(out);
    lx->tok = buf;
    return lx->kind = TOK_STRING;
}

tok_kind lex_next(lexer *lx)
{
    free(lx->tok);
    lx->tok = NULL;
    for (;;) {                                      /* blanks and comments */
        char c = peek(lx, 0);
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') advance(lx);
        else if (c == '#') while (peek(lx, 0) && peek(lx, 0) != '\n') advance(lx);
        else break;
    }
    lx->tok_line = lx->line;
    lx->tok_col = lx->col;
    char c = peek(lx, 0);
    if (c == '\0') return lx->kind = TOK_EOF;
    if (c == '"') return lex_string(lx);
    if (strchr(punctuation, c)) {
        lx->tok = xmalloc(2);
        lx->tok[0] = c;
        lx->tok[1] = '\0';
        advance(lx);
        return lx->kind = TOK_PUNCT;
    }
    if (!is_bare(c)) {
        lex_error(lx, "unexpected character '%c'", c);
        return lx->kind = TOK_ERROR;
    }
    size_t start = lx->pos;
    while (is_bare(peek(lx, 0))) {
        /* A macro reference left for later expansion (substitution files) stays inside the word. */
        if (peek(lx, 0) == '$' && (peek(lx, 1) == '(' || peek(lx, 1) == '{')) {
            int nest = 0;
            advance(lx);
            do {
                char m = peek(lx, 0);
                if (m == '(' || m == '{') nest++;
                else if (m == ')' || m == '}') nest--;
                advance(lx);
            } while (nest > 0 && peek(lx, 0) && peek(lx, 0) != '\n');
            continue;
        }
        advance(lx);
    }
    lx->tok = strndup(lx->text + start, lx->pos - start);
    if (!lx->tok) abort();
    return lx->kind = TOK_WORD;
}

int lex_is(const lexer *lx, char c) { return lx->kind == TOK_PUNCT && lx->tok[0] == c; }

static const char *describe(const lexer *lx)
{
    switch (lx->kind) {
    case TOK_EOF: return "end of file";
    case TOK_STRING: return "a string";
    default: return lx->tok ? lx->tok : "?";
    }
}

int lex_expect(lexer *lx, char c, const char *context)
{
    if (lx->kind == TOK_ERROR) return -1;
    if (!lex_is(lx, c)) return lex_error(lx, "expected '%c' %s, found '%s'", c, context, describe(lx));
    return lex_next(lx) == TOK_ERROR ? -1 : 0;
}

char *lex_take_value(lexer *lx, const char *what)
{
    if (lx->kind == TOK_ERROR) return NULL;
    if (lx->kind != TOK_WORD && lx->kind != TOK_STRING) {
        lex_error(lx, "expected %s, found '%s'", what, describe(lx));
        return NULL;
    }
    char *value = lx->tok;
    lx->tok = NULL;
    if (lex_next(lx) == TOK_ERROR) { free(value); return NULL; }
    return value;
}

char *lex_read_file(const char *path, char *err, size_t errlen)
{
    size_t size;
    char *buf = file_read_all(path, 0, &size, err, errlen);
    if (buf && memchr(buf, '\0', size)) {
        snprintf(err, errlen, "%s: binary file (NUL byte)", path);
        free(buf);
        return NULL;
    }
    return buf;
}

char *lex_find_and_read(const char *name, char **found, char *err, size_t errlen)
{
    *found = dbload_find_file(name, NULL);
    if (!*found) {
        snprintf(err, errlen, "%s: file not found (searched the current directory and EPICS_DB_INCLUDE_PATH)",
                 name);
        return NULL;
    }
    char *text = lex_read_file(*found, err, errlen);
    if (!text) {
        free(*found);
        *found = NULL;
    }
    return text;
}
