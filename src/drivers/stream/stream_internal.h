/* stream_internal.h -- the compiled form of a protocol file, shared by parse.c (builds it), format.c (converters)
 * and run.c (executes it). Private to src/drivers/stream. */
#ifndef RELOC_STREAM_INTERNAL_H
#define RELOC_STREAM_INTERNAL_H

#include "drivers/stream/stream.h"

#include <stddef.h>

/* Converter flags */
#define CONV_SKIP    0x01u   /* '*': parse input, store nothing */
#define CONV_DEFAULT 0x02u   /* '?': on input failure keep the value and go on */
#define CONV_LEFT    0x04u   /* '-' */
#define CONV_PLUS    0x08u   /* '+' */
#define CONV_SPACE   0x10u   /* ' ' */
#define CONV_ZERO    0x20u   /* '0' */
#define CONV_ALT     0x40u   /* '#' */

typedef struct converter {
    char conv;                          /* f e g d i u o x X s c { */
    char name[STREAM_NAME_SIZE];        /* value it reads/writes ("value" when not given) */
    unsigned flags;
    int width;                          /* 0: none */
    int prec;                           /* -1: none */
    int nchoices;                       /* %{a|b}: alternatives */
    char **choices;
} converter;

typedef enum { SEG_LITERAL, SEG_ARG, SEG_CONVERTER, SEG_ANY_BYTE, SEG_WHITESPACE } seg_kind;

typedef struct segment {
    seg_kind kind;
    char *bytes;                        /* SEG_LITERAL */
    size_t len;
    int arg;                            /* SEG_ARG: 0..9 */
    converter conv;                     /* SEG_CONVERTER */
} segment;

typedef struct seg_list {
    segment *items;
    int count;
} seg_list;

typedef enum { CMD_OUT, CMD_IN, CMD_WAIT, CMD_DISCONNECT, CMD_CALL } cmd_kind;

typedef struct command {
    cmd_kind kind;
    seg_list format;                    /* out/in */
    double wait_seconds;                /* wait */
    int callee;                         /* call: index of an earlier protocol */
} command;

typedef struct cmd_list {
    command *items;
    int count;
} cmd_list;

typedef struct settings {
    char in_term[8], out_term[8];
    size_t in_term_len, out_term_len;
    double reply_timeout, read_timeout, write_timeout;   /* seconds */
    long max_input;                                       /* 0: unlimited */
    int extra_input_ignore;
} settings;

enum { HANDLER_MISMATCH, HANDLER_REPLY_TIMEOUT, HANDLER_READ_TIMEOUT, HANDLER_WRITE_TIMEOUT, HANDLER_INIT,
       HANDLER_COUNT };

typedef struct protocol {
    char *name;
    cmd_list commands;
    settings settings;
    const cmd_list *handlers[HANDLER_COUNT];   /* local, else the global one in force at its definition */
} protocol;

typedef struct variable {
    char *name;
    char *text;                          /* value as written (single token) or the bytes it denotes */
    seg_list value;                      /* bytes/arguments it expands to */
} variable;

struct stream_file {
    char *name;
    protocol *protocols;
    int nprotocols;
    variable *variables;                 /* global ones */
    int nvariables;
    cmd_list **handler_pool;             /* every handler body, owned here */
    int nhandlers;
    const cmd_list *global_handlers[HANDLER_COUNT];
    settings globals;
};

/* format.c: converters */
/* Prints one converter's value into out (capacity cap); returns length or -1 when the value is missing. */
int converter_print(const converter *conv, const stream_values *values, char *out, size_t cap);
/* Parses input at in[0..len) for one converter; returns bytes consumed or -1 on mismatch. */
long converter_scan(const converter *conv, const char *in, size_t len, stream_values *values);
/* Parses the converter starting after '%' in text; returns chars consumed, or -1 with err. */
int converter_parse(const char *text, converter *conv, char *err, size_t errlen);
void converter_free(converter *conv);

#endif
