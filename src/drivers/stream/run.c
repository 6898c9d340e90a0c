/* run.c -- executes a compiled protocol over a stream_io: formats output, reads terminated input with the
 * reply/read timeouts, matches it against in-formats, and runs exception handlers. */
#include "drivers/stream/stream_internal.h"

#include "core/base/base.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define IO_BUFFER 4096

typedef struct run_state {
    const stream_file *file;
    const protocol *proto;          /* settings and handlers in force */
    const char *const *args;
    int nargs;
    stream_values *values;
    const stream_io *io;
    char pending[IO_BUFFER];        /* input read but not consumed yet */
    size_t npending;
    char line[IO_BUFFER];           /* the last input line, for messages and @mismatch re-parsing */
    size_t line_len;
    char *err;
    size_t errlen;
} run_state;

static const char *argument(const run_state *st, int n)
{
    if (n == 0)
        return st->proto->name;
    return n <= st->nargs && st->args[n - 1] ? st->args[n - 1] : "";
}

/* Printable copy of input for messages. */
static void quote_input(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (isprint(c))
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o] = '\0';
}

static int do_out(run_state *st, const seg_list *format)
{
    char buf[IO_BUFFER];
    size_t len = 0;
    for (int i = 0; i < format->count; i++) {
        const segment *s = &format->items[i];
        const char *piece = NULL;
        size_t plen = 0;
        char conv[256];
        switch (s->kind) {
        case SEG_LITERAL: piece = s->bytes; plen = s->len; break;
        case SEG_ARG: piece = argument(st, s->arg); plen = strlen(piece); break;
        case SEG_WHITESPACE: piece = " "; plen = 1; break;
        case SEG_ANY_BYTE: break;
        case SEG_CONVERTER: {
            int n = converter_print(&s->conv, st->values, conv, sizeof conv);
            if (n < 0 || (size_t)n >= sizeof conv) {
                const stream_value *v = stream_values_get(st->values, s->conv.name);
                if (v)
                    snprintf(st->err, st->errlen, "%s: %s = %g cannot be sent (format '%%%c')", st->proto->name,
                             s->conv.name, v->number, s->conv.conv);
                else
                    snprintf(st->err, st->errlen, "%s: no value '%s' to send", st->proto->name, s->conv.name);
                return STREAM_ERR_FORMAT;
            }
            piece = conv;
            plen = (size_t)n;
            break;
        }
        }
        if (len + plen + sizeof st->proto->settings.out_term >= sizeof buf) {
            snprintf(st->err, st->errlen, "%s: output too long", st->proto->name);
            return STREAM_ERR_FORMAT;
        }
        if (plen)
            memcpy(buf + len, piece, plen);
        len += plen;
    }
    const settings *set = &st->proto->settings;
    memcpy(buf + len, set->out_term, set->out_term_len);
    len += set->out_term_len;
    if (st->io->write(st->io->ctx, buf, len) < 0) {
        snprintf(st->err, st->errlen, "%s: connection lost while sending", st->proto->name);
        return STREAM_ERR_DISCONNECTED;
    }
    return STREAM_OK;
}

static void take_line(run_state *st, size_t len, size_t consumed)
{
    memcpy(st->line, st->pending, len);
    st->line_len = len;
    st->line[len] = '\0';
    memmove(st->pending, st->pending + consumed, st->npending - consumed);
    st->npending -= consumed;
}

/* Reads one input: up to InTerminator, or MaxInput bytes, or (without InTerminator) until ReadTimeout. */
static int read_input(run_state *st)
{
    const settings *set = &st->proto->settings;
    int got_any = st->npending > 0;
    for (;;) {
        if (set->in_term_len && st->npending >= set->in_term_len) {
            char *hit = memmem(st->pending, st->npending, set->in_term, set->in_term_len);
            if (hit) {
                size_t len = (size_t)(hit - st->pending);
                take_line(st, len, len + set->in_term_len);
                return STREAM_OK;
            }
        }
        size_t limit = set->max_input > 0 && (size_t)set->max_input < sizeof st->pending - 1 ?
                       (size_t)set->max_input : sizeof st->pending - 1;
        if (st->npending >= limit) {
            take_line(st, limit, limit);
            return STREAM_OK;
        }
        double timeout = got_any ? set->read_timeout : set->reply_timeout;
        long n = st->io->read(st->io->ctx, st->pending + st->npending, limit - st->npending, timeout);
        if (n < 0) {
            snprintf(st->err, st->errlen, "%s: connection lost while reading", st->proto->name);
            return STREAM_ERR_DISCONNECTED;
        }
        if (n == 0) {
            if (!got_any) {
                snprintf(st->err, st->errlen, "%s: no reply within %.0f ms", st->proto->name,
                         set->reply_timeout * 1000.0);
                return STREAM_ERR_REPLY_TIMEOUT;
            }
            if (!set->in_term_len) {
                take_line(st, st->npending, st->npending);
                return STREAM_OK;
            }
            char shown[256];
            quote_input(st->pending, st->npending, shown, sizeof shown);
            snprintf(st->err, st->errlen, "%s: input '%s' stopped before the terminator", st->proto->name, shown);
            return STREAM_ERR_READ_TIMEOUT;
        }
        st->npending += (size_t)n;
        got_any = 1;
    }
}

/* Matches st->line against an in-format, storing converted values. */
static int match_input(run_state *st, const seg_list *format)
{
    const char *in = st->line;
    size_t len = st->line_len, pos = 0;
    for (int i = 0; i < format->count; i++) {
        const segment *s = &format->items[i];
        const char *want = NULL;
        size_t wlen = 0;
        switch (s->kind) {
        case SEG_LITERAL: want = s->bytes; wlen = s->len; break;
        case SEG_ARG: want = argument(st, s->arg); wlen = strlen(want); break;
        case SEG_ANY_BYTE:
            if (pos >= len)
                goto mismatch;
            pos++;
            continue;
        case SEG_WHITESPACE:
            while (pos < len && isspace((unsigned char)in[pos]))
                pos++;
            continue;
        case SEG_CONVERTER: {
            long n = converter_scan(&s->conv, in + pos, len - pos, st->values);
            if (n < 0) {
                if (s->conv.flags & CONV_DEFAULT)
                    continue;
                goto mismatch;
            }
            pos += (size_t)n;
            continue;
        }
        }
        if (len - pos < wlen || memcmp(in + pos, want, wlen))
            goto mismatch;
        pos += wlen;
    }
    if (pos == len || st->proto->settings.extra_input_ignore)
        return STREAM_OK;
mismatch:;
    char shown[256];
    quote_input(in, len, shown, sizeof shown);
    snprintf(st->err, st->errlen, "%s: input '%s' does not match (at byte %zu)", st->proto->name, shown, pos);
    return STREAM_ERR_MISMATCH;
}

static void sleep_seconds(double s)
{
    struct timespec t = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}

/* Runs commands; with reparse, a first `in` matches the saved line instead of reading (@mismatch). */
static int run_commands(run_state *st, const cmd_list *list, int reparse, int depth)
{
    for (int i = 0; i < list->count; i++) {
        const command *c = &list->items[i];
        int rc = STREAM_OK;
        switch (c->kind) {
        case CMD_OUT: rc = do_out(st, &c->format); break;
        case CMD_IN:
            if (!(reparse && i == 0))
                rc = read_input(st);
            if (rc == STREAM_OK)
                rc = match_input(st, &c->format);
            break;
        case CMD_WAIT: sleep_seconds(c->wait_seconds); break;
        case CMD_DISCONNECT:
            if (st->io->disconnect)
                st->io->disconnect(st->io->ctx);
            break;
        case CMD_CALL:
            if (depth > 8) {
                snprintf(st->err, st->errlen, "%s: protocol calls nested too deep", st->proto->name);
                return STREAM_ERR_FORMAT;
            }
            rc = run_commands(st, &st->file->protocols[c->callee].commands, 0, depth + 1);
            break;
        }
        if (rc != STREAM_OK)
            return rc;
    }
    return STREAM_OK;
}

static int run_protocol(run_state *st, const cmd_list *commands)
{
    /* Input left over from an earlier exchange (a late reply) must not be taken as this one's. */
    char discard[IO_BUFFER];
    long n;
    while ((n = st->io->read(st->io->ctx, discard, sizeof discard, 0.0)) > 0)
        ;
    if (n < 0) {
        snprintf(st->err, st->errlen, "%s: not connected", st->proto->name);
        return STREAM_ERR_DISCONNECTED;
    }
    int rc = run_commands(st, commands, 0, 0);
    int handler = rc == STREAM_ERR_MISMATCH ? HANDLER_MISMATCH :
                  rc == STREAM_ERR_REPLY_TIMEOUT ? HANDLER_REPLY_TIMEOUT :
                  rc == STREAM_ERR_READ_TIMEOUT ? HANDLER_READ_TIMEOUT :
                  rc == STREAM_ERR_WRITE ? HANDLER_WRITE_TIMEOUT : -1;
    if (handler >= 0 && st->proto->handlers[handler]) {
        char saved[256];
        str_copy(saved, st->err, sizeof saved);
        run_commands(st, st->proto->handlers[handler], handler == HANDLER_MISMATCH, 0);
        str_copy(st->err, saved, st->errlen);   /* the protocol still failed; report the first cause */
    }
    return rc;
}

static int execute(const stream_file *file, const protocol *proto, const cmd_list *commands,
                   const char *const *args, int nargs, stream_values *values, const stream_io *io,
                   char *err, size_t errlen)
{
    static __thread run_state st;   /* large buffers kept off the stack; one run per thread at a time */
    st = (run_state){.file = file, .proto = proto, .args = args, .nargs = nargs, .values = values, .io = io,
                     .err = err, .errlen = errlen};
    return run_protocol(&st, commands);
}

int stream_run(const stream_file *file, const char *name, const char *const *args, int nargs,
               stream_values *values, const stream_io *io, char *err, size_t errlen)
{
    for (int i = 0; i < file->nprotocols; i++)
        if (!strcasecmp(file->protocols[i].name, name))
            return execute(file, &file->protocols[i], &file->protocols[i].commands, args, nargs, values, io,
                           err, errlen);
    snprintf(err, errlen, "no protocol '%s' in %s", name, file->name);
    return STREAM_ERR_NO_PROTOCOL;
}

int stream_run_init(const stream_file *file, const stream_io *io, char *err, size_t errlen)
{
    const cmd_list *init = file->global_handlers[HANDLER_INIT];
    if (!init)
        return STREAM_OK;
    stream_values scratch = {0};
    protocol pseudo = {.name = (char *)"@init", .settings = file->globals};
    memcpy(pseudo.handlers, file->global_handlers, sizeof pseudo.handlers);
    return execute(file, &pseudo, init, NULL, 0, &scratch, io, err, errlen);
}
