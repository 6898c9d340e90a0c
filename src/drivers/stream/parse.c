/* parse.c -- reads protocol files (StreamDevice-like syntax, see stream.h) into the compiled form of
 * internal.h: a tokenizer, variables and system settings, protocols, handlers and command strings. */
#include "drivers/stream/stream_internal.h"

#include "core/base/base.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

#define TOKEN_MAX 2048

typedef enum { TOK_EOF, TOK_WORD, TOK_STRING, TOK_VAR, TOK_HANDLER, TOK_PUNCT } tok_kind;

typedef struct token {
    tok_kind kind;
    char text[TOKEN_MAX];   /* word, raw string contents (escapes kept), variable or handler name */
    char punct;
    int line;
} token;

typedef struct parser {
    const char *p;
    int line;
    const char *fname;
    char *err;
    size_t errlen;
    int failed;
    token tok;                      /* current token */
    stream_file *file;
    variable *locals;               /* variables of the protocol being parsed */
    int nlocals;
} parser;

static void fail(parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(parser *ps, const char *fmt, ...)
{
    if (ps->failed)
        return;
    ps->failed = 1;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(ps->err, ps->errlen, "%s:%d: %s", ps->fname, ps->tok.line ? ps->tok.line : ps->line, msg);
}

/* ------------------------------------------------------------------------------------------------------
 * Tokens
 */
static int is_word_char(int c)
{
    return isalnum(c) || c == '_' || c == '.' || c == '-' || c == '+';
}

static void next_token(parser *ps)
{
    token *t = &ps->tok;
    ps->p = skip_blanks_and_comments(ps->p, &ps->line);
    t->line = ps->line;
    t->text[0] = '\0';
    char c = *ps->p;
    if (!c) {
        t->kind = TOK_EOF;
        return;
    }
    if (c == '"' || c == '\'') {
        size_t n = 0;
        ps->p++;
        while (*ps->p && *ps->p != c) {
            if (*ps->p == '\\' && ps->p[1]) {
                if (n + 2 >= TOKEN_MAX)
                    break;
                t->text[n++] = *ps->p++;
            }
            if (*ps->p == '\n')
                ps->line++;
            if (n + 1 >= TOKEN_MAX)
                break;
            t->text[n++] = *ps->p++;
        }
        t->text[n] = '\0';
        if (*ps->p != c) {
            t->kind = TOK_EOF;
            fail(ps, "unterminated or too long string");
            return;
        }
        ps->p++;
        t->kind = TOK_STRING;
        return;
    }
    if (c == '$' || c == '@') {
        ps->p++;
        int braced = c == '$' && *ps->p == '{';
        if (braced)
            ps->p++;
        size_t n = 0;
        while ((isalnum((unsigned char)*ps->p) || *ps->p == '_') && n + 1 < 64)
            t->text[n++] = *ps->p++;
        t->text[n] = '\0';
        if (braced && *ps->p++ != '}')
            fail(ps, "missing '}' after ${%s", t->text);
        if (!n)
            fail(ps, "'%c' without a name", c);
        t->kind = c == '$' ? TOK_VAR : TOK_HANDLER;
        return;
    }
    if (strchr("{};=(),", c)) {
        t->kind = TOK_PUNCT;
        t->punct = c;
        ps->p++;
        return;
    }
    if (is_word_char((unsigned char)c)) {
        size_t n = 0;
        while (is_word_char((unsigned char)*ps->p) && n + 1 < 64)
            t->text[n++] = *ps->p++;
        t->text[n] = '\0';
        t->kind = TOK_WORD;
        return;
    }
    t->kind = TOK_EOF;
    fail(ps, "unexpected character '%c'", c);
}

static int is_punct(const parser *ps, char c)
{
    return ps->tok.kind == TOK_PUNCT && ps->tok.punct == c;
}

static void expect_punct(parser *ps, char c)
{
    if (!is_punct(ps, c))
        fail(ps, "expected '%c'", c);
    else
        next_token(ps);
}

/* ------------------------------------------------------------------------------------------------------
 * Segment lists
 */
static segment *add_segment(seg_list *list, seg_kind kind)
{
    list->items = xrealloc(list->items, sizeof *list->items * (size_t)(list->count + 1));
    segment *s = &list->items[list->count++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    return s;
}

static void add_bytes(seg_list *list, const char *bytes, size_t len)
{
    if (!len)
        return;
    segment *last = list->count ? &list->items[list->count - 1] : NULL;
    if (!last || last->kind != SEG_LITERAL)
        last = add_segment(list, SEG_LITERAL);
    last->bytes = xrealloc(last->bytes, last->len + len + 1);
    memcpy(last->bytes + last->len, bytes, len);
    last->len += len;
    last->bytes[last->len] = '\0';
}

static void copy_segments(seg_list *dst, const seg_list *src)
{
    for (int i = 0; i < src->count; i++) {
        const segment *s = &src->items[i];
        if (s->kind == SEG_LITERAL) {
            add_bytes(dst, s->bytes, s->len);
            continue;
        }
        segment *d = add_segment(dst, s->kind);
        d->arg = s->arg;
        if (s->kind == SEG_CONVERTER) {
            d->conv = s->conv;
            d->conv.choices = NULL;
            d->conv.nchoices = 0;
            for (int k = 0; k < s->conv.nchoices; k++) {
                d->conv.choices = xrealloc(d->conv.choices, sizeof(char *) * (size_t)(k + 1));
                d->conv.choices[k] = xstrdup(s->conv.choices[k]);
                d->conv.nchoices++;
            }
        }
    }
}

static void free_segments(seg_list *list)
{
    for (int i = 0; i < list->count; i++) {
        free(list->items[i].bytes);
        converter_free(&list->items[i].conv);
    }
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static void free_variables(variable *vars, int count)
{
    for (int i = 0; i < count; i++) {
        free(vars[i].name);
        free(vars[i].text);
        free_segments(&vars[i].value);
    }
    free(vars);
}

static const struct { const char *name; char byte; } byte_names[] = {
    {"NUL", 0}, {"SOH", 1}, {"STX", 2}, {"ETX", 3}, {"EOT", 4}, {"ENQ", 5}, {"ACK", 6}, {"BEL", 7},
    {"BS", 8}, {"HT", 9}, {"TAB", 9}, {"LF", 10}, {"NL", 10}, {"VT", 11}, {"FF", 12}, {"NP", 12},
    {"CR", 13}, {"SO", 14}, {"SI", 15}, {"DLE", 16}, {"DC1", 17}, {"DC2", 18}, {"DC3", 19}, {"DC4", 20},
    {"NAK", 21}, {"SYN", 22}, {"ETB", 23}, {"CAN", 24}, {"EM", 25}, {"SUB", 26}, {"ESC", 27}, {"FS", 28},
    {"GS", 29}, {"RS", 30}, {"US", 31}, {"DEL", 127},
};

static const variable *find_variable(const parser *ps, const char *name)
{
    for (int i = ps->nlocals - 1; i >= 0; i--)
        if (!strcasecmp(ps->locals[i].name, name))
            return &ps->locals[i];
    for (int i = ps->file->nvariables - 1; i >= 0; i--)
        if (!strcasecmp(ps->file->variables[i].name, name))
            return &ps->file->variables[i];
    return NULL;
}

/* A variable or argument reference: "$1" is an argument, "$name" expands the variable. */
static void add_reference(parser *ps, seg_list *list, const char *name)
{
    if (isdigit((unsigned char)name[0]) && !name[1]) {
        add_segment(list, SEG_ARG)->arg = name[0] - '0';
        return;
    }
    const variable *v = find_variable(ps, name);
    if (!v)
        fail(ps, "undefined variable $%s", name);
    else
        copy_segments(list, &v->value);
}

/* Decodes the contents of a quoted string: escapes, converters, references. */
static void add_string(parser *ps, seg_list *list, const char *s)
{
    while (*s && !ps->failed) {
        char c = *s++;
        if (c == '%') {
            if (*s == '%') {
                add_bytes(list, "%", 1);
                s++;
                continue;
            }
            char msg[160];
            segment *seg = add_segment(list, SEG_CONVERTER);
            int used = converter_parse(s, &seg->conv, msg, sizeof msg);
            if (used < 0) {
                fail(ps, "%s", msg);
                return;
            }
            s += used;
            continue;
        }
        if (c != '\\') {
            add_bytes(list, &c, 1);
            continue;
        }
        char e = *s++;
        char byte;
        switch (e) {
        case 'r': byte = '\r'; break;
        case 'n': byte = '\n'; break;
        case 't': byte = '\t'; break;
        case 'e': byte = 27; break;
        case 'a': byte = 7; break;
        case '?': add_segment(list, SEG_ANY_BYTE); continue;
        case '_': add_segment(list, SEG_WHITESPACE); continue;
        case 'x': {
            int v = 0, n = 0;
            while (n < 2 && isxdigit((unsigned char)*s)) {
                v = v * 16 + (isdigit((unsigned char)*s) ? *s - '0' : (tolower((unsigned char)*s) - 'a' + 10));
                s++;
                n++;
            }
            if (!n) {
                fail(ps, "\\x needs hex digits");
                return;
            }
            byte = (char)v;
            break;
        }
        case '$': {
            char name[64];
            size_t n = 0;
            int braced = *s == '{';
            if (braced)
                s++;
            if (isdigit((unsigned char)*s))
                name[n++] = *s++;
            else
                while ((isalnum((unsigned char)*s) || *s == '_') && n + 1 < sizeof name)
                    name[n++] = *s++;
            name[n] = '\0';
            if (braced && *s++ != '}') {
                fail(ps, "missing '}' in \\${%s", name);
                return;
            }
            if (!n) {
                fail(ps, "'\\$' without a name");
                return;
            }
            add_reference(ps, list, name);
            continue;
        }
        case '\0':
            fail(ps, "string ends with a backslash");
            return;
        default:
            if (isdigit((unsigned char)e)) {   /* \ddd decimal, \0ooo octal */
                int octal = e == '0';
                int v = octal ? 0 : e - '0', n = 0;
                while (n < 3 && isdigit((unsigned char)*s) && !(octal && *s > '7')) {
                    v = v * (octal ? 8 : 10) + (*s++ - '0');
                    n++;
                }
                if (v > 255) {
                    fail(ps, "byte value %d out of range", v);
                    return;
                }
                byte = (char)v;
            } else {
                byte = e;   /* \\ \" \' \% and any other character stand for themselves */
            }
        }
        add_bytes(list, &byte, 1);
    }
}

/* A bare word inside a value: a byte name (CR) or a byte value (13, 0x0d). In a variable assignment
 * (lenient) any other word stands for its own text, e.g. `Axis = X1;` or `Count = 1000;`. */
static void add_word(parser *ps, seg_list *list, const char *word, int lenient)
{
    for (size_t i = 0; i < sizeof byte_names / sizeof byte_names[0]; i++) {
        if (!strcasecmp(word, byte_names[i].name)) {
            add_bytes(list, &byte_names[i].byte, 1);
            return;
        }
    }
    char *end;
    errno = 0;
    long v = strtol(word, &end, 0);
    if ((*end || errno || v < 0 || v > 255) && lenient) {
        add_bytes(list, word, strlen(word));
        return;
    }
    if (*end || errno || v < 0 || v > 255) {
        fail(ps, "'%s' is not a byte name or byte value", word);
        return;
    }
    char byte = (char)v;
    add_bytes(list, &byte, 1);
}

/* Items up to ';': strings, byte words and references. raw (assignments only) gets the text of a
 * single-token value; lenient accepts words that are not bytes (see add_word). */
static void parse_items(parser *ps, seg_list *list, char *raw, size_t rawlen, int lenient)
{
    int ntokens = 0;
    if (raw)
        raw[0] = '\0';
    while (!ps->failed && !is_punct(ps, ';')) {
        if (raw && ntokens == 0)
            str_copy(raw, ps->tok.text, rawlen);
        switch (ps->tok.kind) {
        case TOK_STRING: add_string(ps, list, ps->tok.text); break;
        case TOK_WORD: add_word(ps, list, ps->tok.text, lenient); break;
        case TOK_VAR: add_reference(ps, list, ps->tok.text); break;
        default: fail(ps, "expected a string, byte or variable before ';'"); return;
        }
        ntokens++;
        next_token(ps);
    }
    if (raw && ntokens != 1)
        raw[0] = '\0';
    expect_punct(ps, ';');
}

/* ------------------------------------------------------------------------------------------------------
 * Variables and system settings
 */
static int literal_only(const seg_list *list, char *out, size_t cap, size_t *len)
{
    *len = 0;
    for (int i = 0; i < list->count; i++) {
        if (list->items[i].kind != SEG_LITERAL || *len + list->items[i].len > cap)
            return -1;
        memcpy(out + *len, list->items[i].bytes, list->items[i].len);
        *len += list->items[i].len;
    }
    return 0;
}

/* Applies a system variable to settings; returns 1 if name was one, 0 if not, -1 after fail(). */
static int apply_setting(parser *ps, settings *set, const char *name, const seg_list *value, const char *raw)
{
    static const char *const terminators[] = {"Terminator", "InTerminator", "OutTerminator"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(name, terminators[i]))
            continue;
        char bytes[8];
        size_t len;
        if (literal_only(value, bytes, sizeof bytes, &len) < 0) {
            fail(ps, "%s must be at most 8 plain bytes", name);
            return -1;
        }
        if (i != 2) { memcpy(set->in_term, bytes, len); set->in_term_len = len; }
        if (i != 1) { memcpy(set->out_term, bytes, len); set->out_term_len = len; }
        return 1;
    }
    if (!strcasecmp(name, "ExtraInput")) {
        if (strcasecmp(raw, "Error") && strcasecmp(raw, "Ignore")) {
            fail(ps, "ExtraInput must be Error or Ignore");
            return -1;
        }
        set->extra_input_ignore = !strcasecmp(raw, "Ignore");
        return 1;
    }
    static const char *const numeric[] = {"ReplyTimeout", "ReadTimeout", "WriteTimeout", "LockTimeout",
                                          "MaxInput", "PollPeriod", "Separator"};
    int which = -1;
    for (int i = 0; i < 7; i++)
        if (!strcasecmp(name, numeric[i]))
            which = i;
    if (which < 0)
        return 0;
    if (which == 6)
        return 1;   /* Separator: arrays are not supported, accepted for compatibility */
    char *end;
    double v = strtod(raw, &end);
    if (!raw[0] || *end || v < 0) {
        fail(ps, "%s needs a non-negative number", name);
        return -1;
    }
    if (which == 0) set->reply_timeout = v / 1000.0;
    else if (which == 1) set->read_timeout = v / 1000.0;
    else if (which == 2) set->write_timeout = v / 1000.0;
    else if (which == 4) set->max_input = (long)v;
    return 1;
}

static void parse_assignment(parser *ps, const char *name, settings *set, int global)
{
    seg_list value = {0};
    char raw[TOKEN_MAX];
    parse_items(ps, &value, raw, sizeof raw, !strcasestr(name, "Terminator"));
    if (ps->failed || apply_setting(ps, set, name, &value, raw) != 0) {
        free_segments(&value);
        return;
    }
    variable **vars = global ? &ps->file->variables : &ps->locals;
    int *n = global ? &ps->file->nvariables : &ps->nlocals;
    *vars = xrealloc(*vars, sizeof **vars * (size_t)(*n + 1));
    variable *v = &(*vars)[(*n)++];
    v->name = xstrdup(name);
    v->value = value;
    if (!raw[0]) {   /* several items: the text is the bytes they make, when they are plain */
        size_t len;
        if (literal_only(&value, raw, sizeof raw - 1, &len) < 0)
            len = 0;
        raw[len] = '\0';
    }
    v->text = xstrdup(raw);
}

/* ------------------------------------------------------------------------------------------------------
 * Protocols, commands, handlers
 */
static int find_protocol(const stream_file *file, const char *name)
{
    for (int i = 0; i < file->nprotocols; i++)
        if (!strcasecmp(file->protocols[i].name, name))
            return i;
    return -1;
}

static command *add_command(cmd_list *list, cmd_kind kind)
{
    list->items = xrealloc(list->items, sizeof *list->items * (size_t)(list->count + 1));
    command *c = &list->items[list->count++];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    return c;
}

static void free_commands(cmd_list *list)
{
    for (int i = 0; i < list->count; i++)
        free_segments(&list->items[i].format);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

/* One command whose first word has been read (ps->tok is the token after it). */
static void parse_command(parser *ps, cmd_list *list, const char *word)
{
    if (!strcasecmp(word, "out") || !strcasecmp(word, "in")) {
        command *c = add_command(list, tolower((unsigned char)word[0]) == 'o' ? CMD_OUT : CMD_IN);
        parse_items(ps, &c->format, NULL, 0, 0);
        return;
    }
    if (!strcasecmp(word, "wait")) {
        char *end;
        double ms = strtod(ps->tok.text, &end);
        if (ps->tok.kind != TOK_WORD || *end || ms < 0) {
            fail(ps, "wait needs milliseconds");
            return;
        }
        add_command(list, CMD_WAIT)->wait_seconds = ms / 1000.0;
        next_token(ps);
        expect_punct(ps, ';');
        return;
    }
    if (!strcasecmp(word, "disconnect")) {
        add_command(list, CMD_DISCONNECT);
        expect_punct(ps, ';');
        return;
    }
    int callee = find_protocol(ps->file, word);
    if (callee < 0) {
        fail(ps, "unknown command or protocol '%s'", word);
        return;
    }
    add_command(list, CMD_CALL)->callee = callee;
    expect_punct(ps, ';');
}

static int handler_index(const char *name)
{
    static const char *const names[HANDLER_COUNT] = {"mismatch", "replytimeout", "readtimeout",
                                                     "writetimeout", "init"};
    for (int i = 0; i < HANDLER_COUNT; i++)
        if (!strcasecmp(name, names[i]))
            return i;
    return -1;
}

/* Parses "{ commands }" into a new handler body owned by the file. */
static const cmd_list *parse_handler(parser *ps)
{
    cmd_list *body = xcalloc(1, sizeof *body);
    ps->file->handler_pool = xrealloc(ps->file->handler_pool,
                                      sizeof(cmd_list *) * (size_t)(ps->file->nhandlers + 1));
    ps->file->handler_pool[ps->file->nhandlers++] = body;
    expect_punct(ps, '{');
    while (!ps->failed && !is_punct(ps, '}')) {
        if (ps->tok.kind != TOK_WORD) {
            fail(ps, "expected a command in handler");
            break;
        }
        char word[64];
        str_copy(word, ps->tok.text, sizeof word);
        next_token(ps);
        parse_command(ps, body, word);
    }
    expect_punct(ps, '}');
    return body;
}

static void parse_protocol(parser *ps, const char *name)
{
    if (find_protocol(ps->file, name) >= 0) {
        fail(ps, "protocol '%s' defined twice", name);
        return;
    }
    protocol p = {.name = xstrdup(name), .settings = ps->file->globals};
    memcpy(p.handlers, ps->file->global_handlers, sizeof p.handlers);
    expect_punct(ps, '{');
    while (!ps->failed && !is_punct(ps, '}')) {
        if (ps->tok.kind == TOK_HANDLER) {
            int h = handler_index(ps->tok.text);
            if (h < 0 || h == HANDLER_INIT) {
                fail(ps, "unknown handler @%s in a protocol", ps->tok.text);
                break;
            }
            next_token(ps);
            p.handlers[h] = parse_handler(ps);
            continue;
        }
        if (ps->tok.kind != TOK_WORD) {
            fail(ps, "expected a command or assignment");
            break;
        }
        char word[64];
        str_copy(word, ps->tok.text, sizeof word);
        next_token(ps);
        if (is_punct(ps, '=')) {
            next_token(ps);
            parse_assignment(ps, word, &p.settings, 0);
        } else {
            parse_command(ps, &p.commands, word);
        }
    }
    expect_punct(ps, '}');
    free_variables(ps->locals, ps->nlocals);
    ps->locals = NULL;
    ps->nlocals = 0;
    stream_file *f = ps->file;
    f->protocols = xrealloc(f->protocols, sizeof *f->protocols * (size_t)(f->nprotocols + 1));
    f->protocols[f->nprotocols++] = p;
}

stream_file *stream_parse(const char *text, const char *name, char *err, size_t errlen)
{
    stream_file *file = xcalloc(1, sizeof *file);
    file->name = xstrdup(name);
    file->globals = (settings){.reply_timeout = 1.0, .read_timeout = 0.1, .write_timeout = 0.1};
    parser ps = {.p = text, .line = 1, .fname = name, .err = err, .errlen = errlen, .file = file};
    next_token(&ps);
    while (!ps.failed && ps.tok.kind != TOK_EOF) {
        if (ps.tok.kind == TOK_HANDLER) {
            int h = handler_index(ps.tok.text);
            if (h < 0) {
                fail(&ps, "unknown handler @%s", ps.tok.text);
                break;
            }
            next_token(&ps);
            file->global_handlers[h] = parse_handler(&ps);
            continue;
        }
        if (ps.tok.kind != TOK_WORD) {
            fail(&ps, "expected a protocol name or a variable assignment");
            break;
        }
        char word[64];
        str_copy(word, ps.tok.text, sizeof word);
        next_token(&ps);
        if (is_punct(&ps, '=')) {
            next_token(&ps);
            parse_assignment(&ps, word, &file->globals, 1);
        } else if (is_punct(&ps, '{')) {
            parse_protocol(&ps, word);
        } else {
            fail(&ps, "expected '=' or '{' after '%s'", word);
        }
    }
    if (ps.failed) {
        free_variables(ps.locals, ps.nlocals);
        stream_free(file);
        return NULL;
    }
    return file;
}

void stream_free(stream_file *file)
{
    if (!file)
        return;
    for (int i = 0; i < file->nprotocols; i++) {
        free(file->protocols[i].name);
        free_commands(&file->protocols[i].commands);
    }
    free(file->protocols);
    free_variables(file->variables, file->nvariables);
    for (int i = 0; i < file->nhandlers; i++) {
        free_commands(file->handler_pool[i]);
        free(file->handler_pool[i]);
    }
    free(file->handler_pool);
    free(file->name);
    free(file);
}

stream_file *stream_load(const char *path, char *err, size_t errlen)
{
    char full[1024];
    int found = 0;
    if (strchr(path, '/')) {
        str_copy(full, path, sizeof full);
        found = access(full, R_OK) == 0;
    } else {
        const char *search = getenv("STREAM_PROTOCOL_PATH");
        char dirs[2048];
        str_copy(dirs, search && *search ? search : ".", sizeof dirs);
        char *save = NULL;
        for (char *dir = strtok_r(dirs, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
            snprintf(full, sizeof full, "%s/%s", dir, path);
            found = access(full, R_OK) == 0;
        }
    }
    if (!found) {
        snprintf(err, errlen, "cannot open protocol file %s (STREAM_PROTOCOL_PATH=%s)", path,
                 getenv("STREAM_PROTOCOL_PATH") ? getenv("STREAM_PROTOCOL_PATH") : "");
        return NULL;
    }
    char *text = file_read_all(full, 0, NULL, err, errlen);
    if (!text) return NULL;
    stream_file *file = stream_parse(text, full, err, errlen);
    free(text);
    return file;
}

int stream_has_protocol(const stream_file *file, const char *name)
{
    return find_protocol(file, name) >= 0;
}

const char *stream_variable(const stream_file *file, const char *name)
{
    for (int i = file->nvariables - 1; i >= 0; i--)
        if (!strcasecmp(file->variables[i].name, name))
            return file->variables[i].text;
    return NULL;
}
