/* format.c -- printf/scanf-like converters of protocol strings (%f %d %x %s %{a|b} ...) and the named values
 * they read and write (stream_values). */
#include "drivers/stream/stream_internal.h"

#include "core/base/base.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *stream_strerror(int status)
{
    switch (status) {
    case STREAM_OK: return "ok";
    case STREAM_ERR_NO_PROTOCOL: return "no such protocol";
    case STREAM_ERR_FORMAT: return "no value for an output converter";
    case STREAM_ERR_MISMATCH: return "input mismatch";
    case STREAM_ERR_REPLY_TIMEOUT: return "reply timeout";
    case STREAM_ERR_READ_TIMEOUT: return "read timeout";
    case STREAM_ERR_WRITE: return "write failed";
    case STREAM_ERR_DISCONNECTED: return "disconnected";
    case STREAM_ERR_CLOSED: return "port closed";
    default: return "unknown error";
    }
}

/* ------------------------------------------------------------------------------------------------------
 * Values
 */
void stream_values_clear(stream_values *values)
{
    values->count = 0;
}

static stream_value *value_slot(stream_values *values, const char *name)
{
    for (int i = 0; i < values->count; i++)
        if (!strcmp(values->items[i].name, name))
            return &values->items[i];
    if (values->count == STREAM_MAX_VALUES)
        return NULL;
    stream_value *v = &values->items[values->count++];
    memset(v, 0, sizeof *v);
    str_copy(v->name, name, sizeof v->name);
    return v;
}

void stream_values_set_number(stream_values *values, const char *name, double number)
{
    stream_value *v = value_slot(values, name);
    if (!v)
        return;
    v->is_set = 1;
    v->number = number;
    snprintf(v->text, sizeof v->text, "%.17g", number);
}

void stream_values_set_text(stream_values *values, const char *name, const char *text)
{
    stream_value *v = value_slot(values, name);
    if (!v)
        return;
    v->is_set = 1;
    str_copy(v->text, text, sizeof v->text);
    v->number = strtod(text, NULL);
}

const stream_value *stream_values_get(const stream_values *values, const char *name)
{
    for (int i = 0; i < values->count; i++)
        if (!strcmp(values->items[i].name, name) && values->items[i].is_set)
            return &values->items[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------------------
 * Parsing a converter (after the '%')
 */
int converter_parse(const char *text, converter *conv, char *err, size_t errlen)
{
    const char *p = text;
    memset(conv, 0, sizeof *conv);
    conv->prec = -1;
    strcpy(conv->name, "value");
    if (*p == '(') {
        const char *close = strchr(p, ')');
        size_t n = close ? (size_t)(close - p - 1) : 0;
        if (!close || n == 0 || n >= sizeof conv->name) {
            snprintf(err, errlen, "bad value name in converter %%%s", text);
            return -1;
        }
        memcpy(conv->name, p + 1, n);
        conv->name[n] = '\0';
        p = close + 1;
    }
    for (;; p++) {
        unsigned f = *p == '*' ? CONV_SKIP : *p == '?' ? CONV_DEFAULT : *p == '-' ? CONV_LEFT :
                     *p == '+' ? CONV_PLUS : *p == ' ' ? CONV_SPACE : *p == '0' ? CONV_ZERO :
                     *p == '#' ? CONV_ALT : 0;
        if (!f)
            break;
        conv->flags |= f;
    }
    while (isdigit((unsigned char)*p))
        conv->width = conv->width * 10 + (*p++ - '0');
    if (*p == '.') {
        conv->prec = 0;
        for (p++; isdigit((unsigned char)*p); p++)
            conv->prec = conv->prec * 10 + (*p - '0');
    }
    if (conv->width > 255 || conv->prec > 64) {
        snprintf(err, errlen, "converter width or precision too large");
        return -1;
    }
    conv->conv = *p;
    if (*p && strchr("feEgGdiuoxXsc", *p))
        return (int)(p + 1 - text);
    if (*p == '[') {   /* %[set] / %[^set]: the set is kept as the single "choice"; ']' first is literal */
        const char *close = strchr(p + 2, ']');
        if (!close) {
            snprintf(err, errlen, "unterminated %%[...] converter");
            return -1;
        }
        conv->choices = xmalloc(sizeof *conv->choices);
        char *set = conv->choices[0] = xmalloc((size_t)(close - p));
        conv->nchoices = 1;
        for (const char *q = p + 1; q < close; q++) {   /* the string's escapes are still raw here */
            if (*q == '\\' && q + 1 < close) {
                q++;
                *set++ = *q == 'r' ? '\r' : *q == 'n' ? '\n' : *q == 't' ? '\t' : *q;
            } else {
                *set++ = *q;
            }
        }
        *set = '\0';
        return (int)(close + 1 - text);
    }
    if (*p != '{') {
        snprintf(err, errlen, "unsupported converter '%%%c'", *p ? *p : ' ');
        return -1;
    }
    const char *close = strchr(p, '}');
    if (!close) {
        snprintf(err, errlen, "unterminated %%{...} converter");
        return -1;
    }
    const char *start = p + 1;
    for (const char *q = start;; q++) {
        if (q == close || *q == '|') {
            conv->choices = xrealloc(conv->choices, sizeof *conv->choices * (size_t)(conv->nchoices + 1));
            conv->choices[conv->nchoices] = xmalloc((size_t)(q - start) + 1);
            memcpy(conv->choices[conv->nchoices], start, (size_t)(q - start));
            conv->choices[conv->nchoices++][q - start] = '\0';
            start = q + 1;
            if (q == close)
                break;
        }
    }
    return (int)(close + 1 - text);
}

void converter_free(converter *conv)
{
    for (int i = 0; i < conv->nchoices; i++)
        free(conv->choices[i]);
    free(conv->choices);
    conv->choices = NULL;
    conv->nchoices = 0;
}

/* Builds "%<flags><width>.<prec><length><conv>" for snprintf. */
static void printf_format(const converter *conv, const char *length, char conv_char, char *fmt, size_t cap)
{
    char flags[8];
    int n = 0;
    if (conv->flags & CONV_LEFT) flags[n++] = '-';
    if (conv->flags & CONV_PLUS) flags[n++] = '+';
    if (conv->flags & CONV_SPACE) flags[n++] = ' ';
    if (conv->flags & CONV_ZERO) flags[n++] = '0';
    if (conv->flags & CONV_ALT) flags[n++] = '#';
    flags[n] = '\0';
    char width[16] = "", prec[16] = "";
    if (conv->width)
        snprintf(width, sizeof width, "%d", conv->width);
    if (conv->prec >= 0)
        snprintf(prec, sizeof prec, ".%d", conv->prec);
    snprintf(fmt, cap, "%%%s%s%s%s%c", flags, width, prec, length, conv_char);
}

int converter_print(const converter *conv, const stream_values *values, char *out, size_t cap)
{
    const stream_value *v = stream_values_get(values, conv->name);
    if (!v)
        return -1;
    char fmt[48];
    switch (conv->conv) {
    case 'f': case 'e': case 'E': case 'g': case 'G':
        printf_format(conv, "", conv->conv, fmt, sizeof fmt);
        return snprintf(out, cap, fmt, v->number);
    case 'd': case 'i': case 'u': case 'o': case 'x': case 'X': {
        if (!isfinite(v->number) || fabs(v->number) > 9.2e18)
            return -1;
        printf_format(conv, "ll", conv->conv, fmt, sizeof fmt);
        return snprintf(out, cap, fmt, (long long)llround(v->number));
    }
    case 's': case '[':
        printf_format(conv, "", 's', fmt, sizeof fmt);
        return snprintf(out, cap, fmt, v->text);
    case 'c':
        return snprintf(out, cap, "%c", (char)(int)v->number);
    case '{': {
        long index = lround(v->number);
        if (index < 0 || index >= conv->nchoices)
            return -1;
        return snprintf(out, cap, "%s", conv->choices[index]);
    }
    default:
        return -1;
    }
}

/* ------------------------------------------------------------------------------------------------------
 * Scanning input for one converter
 */
static size_t skip_space(const char *in, size_t len)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)in[i]))
        i++;
    return i;
}

/* End of the text a %s (up to whitespace) or a %[set] / %[^set] converter takes from p. */
static char *span_end(const converter *conv, char *p)
{
    const char *set = conv->conv == '[' ? conv->choices[0] : NULL;
    int negate = set && set[0] == '^';
    while (*p && (set ? (strchr(set + negate, *p) != NULL) != negate : !isspace((unsigned char)*p)))
        p++;
    return p;
}

long converter_scan(const converter *conv, const char *in, size_t len, stream_values *values)
{
    size_t start = strchr("c{[", conv->conv) ? 0 : skip_space(in, len);
    size_t avail = len - start;
    if (conv->width && (size_t)conv->width < avail)
        avail = (size_t)conv->width;
    char buf[STREAM_STRING_SIZE];
    size_t n = avail < sizeof buf - 1 ? avail : sizeof buf - 1;
    memcpy(buf, in + start, n);
    buf[n] = '\0';
    char *end = buf;
    int store = !(conv->flags & CONV_SKIP);
    switch (conv->conv) {
    case 'f': case 'e': case 'E': case 'g': case 'G': {
        errno = 0;
        double d = strtod(buf, &end);
        if (end == buf || errno == ERANGE)
            return -1;
        if (store)
            stream_values_set_number(values, conv->name, d);
        break;
    }
    case 'd': case 'i': case 'u': case 'o': case 'x': case 'X': {
        int base = conv->conv == 'i' ? 0 : conv->conv == 'o' ? 8 : (conv->conv == 'x' || conv->conv == 'X') ? 16 : 10;
        errno = 0;
        long long l = strtoll(buf, &end, base);
        if (end == buf || errno == ERANGE)
            return -1;
        if (store)
            stream_values_set_number(values, conv->name, (double)l);
        break;
    }
    case 's': case '[':
        end = span_end(conv, buf);
        if (end == buf)
            return -1;
        *end = '\0';
        if (store)
            stream_values_set_text(values, conv->name, buf);
        break;
    case 'c': {
        size_t want = conv->width ? (size_t)conv->width : 1;
        if (n < want)
            return -1;
        buf[want] = '\0';
        end = buf + want;
        if (store)
            stream_values_set_text(values, conv->name, buf);
        break;
    }
    case '{': {
        int best = -1;
        size_t best_len = 0;
        for (int i = 0; i < conv->nchoices; i++) {   /* longest match wins: "On" vs "Onset" */
            size_t l = strlen(conv->choices[i]);
            if (l <= len && !memcmp(in, conv->choices[i], l) && (best < 0 || l > best_len)) {
                best = i;
                best_len = l;
            }
        }
        if (best < 0)
            return -1;
        if (store)
            stream_values_set_number(values, conv->name, best);
        return (long)best_len;
    }
    default:
        return -1;
    }
    return (long)(start + (size_t)(end - buf));
}
