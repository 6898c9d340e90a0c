/* dbload_internal.h -- (private to src/core/dbload) the lexer: tokens of the .db and substitution-file syntax.
 *
 * Tokens: bare words (letters, digits and any of _-+:.[]<>;/ *&|!~%@?^$, and macro references $(..)), quoted strings ("..." with C escapes
 * translated), the punctuation ( ) { } , = and end of input. '#' starts a comment to the end of the line.
 * Every token carries its line and column for error messages "file:line:col: ...".
 */
#ifndef RELOC_DBLOAD_INTERNAL_H
#define RELOC_DBLOAD_INTERNAL_H

#include <stddef.h>

typedef enum { TOK_EOF, TOK_WORD, TOK_STRING, TOK_PUNCT, TOK_ERROR } tok_kind;

typedef struct lexer {
    const char *file;          /* for messages */
    const char *text;
    size_t pos;
    int line, col;             /* of text[pos] */
    /* The current token (after lex_next). */
    tok_kind kind;
    char *tok;                 /* malloc'd text: word, unescaped string, or the punctuation character */
    int tok_line, tok_col;
    char *err;
    size_t errlen;
} lexer;

void lex_init(lexer *lx, const char *file, const char *text, char *err, size_t errlen);
void lex_free(lexer *lx);
/* Advances to the next token; TOK_ERROR leaves a "file:line:col: ..." message in err. */
tok_kind lex_next(lexer *lx);
/* 1 when the current token is the punctuation character c. */
int lex_is(const lexer *lx, char c);
/* Writes "file:line:col: <message>" about the current token into err; returns -1. */
int lex_error(lexer *lx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Expects punctuation c as the current token and advances; otherwise reports what was found. */
int lex_expect(lexer *lx, char c, const char *context);
/* Expects a word or string as the current token: returns a copy (caller frees) and advances. */
char *lex_take_value(lexer *lx, const char *what);

/* Reads a whole source file into a new NUL-terminated string; NULL with "path: reason" in err. */
char *lex_read_file(const char *path, char *err, size_t errlen);
/* Finds a top-level file as dbload_find_file(name, NULL) does and reads it; *found gets the path used (caller
 * frees). NULL with err when not found or unreadable. */
char *lex_find_and_read(const char *name, char **found, char *err, size_t errlen);

#endif
