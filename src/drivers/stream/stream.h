/* stream.h -- protocol files in a StreamDevice-like syntax, and TCP "ports" that run them.
 *
 * A protocol file (protocols/<x>.proto) says how to talk to a device, so that a new controller needs a new file,
 * not new C. Syntax (see ../shared/reference/epics-facts.md section 10): `#` comments; `name = value;`
 * variables (system ones: Terminator, InTerminator, OutTerminator, ReplyTimeout, ReadTimeout, WriteTimeout,
 * LockTimeout, MaxInput, ExtraInput); `name { commands }` protocols; handlers `@mismatch`, `@replytimeout`,
 * `@readtimeout`, `@writetimeout` (global or inside a protocol) and a global `@init` run by a port after every
 * connect. Commands: `out "...";`, `in "...";`, `wait ms;`, `disconnect;`, or the name of an earlier protocol.
 * Strings take escapes \r \n \t \e \\ \xHH \ddd \? (any byte in input) \_ (whitespace), `\$1`..`\$9` protocol
 * arguments, `\$name` variables; outside quotes byte names (CR LF NUL ETX ...) and numbers are bytes.
 * Converters: %[(name)][flags][width][.prec] with f e g d i u o x X s c, %[set] %[^set], %{a|b|c}; flags `*` (skip the input),
 * `?` (keep default on input failure), `-+ 0#`. `(name)` selects the value the converter reads or writes in the
 * call's stream_values; without it the value is called "value". `%%` is a literal %.
 *
 * Threads: a stream_file is immutable after loading and may be shared by any threads. A stream_port owns one
 * I/O thread that owns the socket; callers hand it requests through stream_port_call, which blocks the caller
 * (never call it with the db lock held).
 */
#ifndef RELOC_STREAM_H
#define RELOC_STREAM_H

#include <stddef.h>

/* Results of running a protocol. */
enum {
    STREAM_OK = 0,
    STREAM_ERR_NO_PROTOCOL = -1,   /* no protocol of that name in the file */
    STREAM_ERR_FORMAT = -2,        /* an out converter had no value to print */
    STREAM_ERR_MISMATCH = -3,      /* input did not match the in format */
    STREAM_ERR_REPLY_TIMEOUT = -4, /* no reply within ReplyTimeout */
    STREAM_ERR_READ_TIMEOUT = -5,  /* input stopped before the terminator (ReadTimeout) */
    STREAM_ERR_WRITE = -6,         /* could not send */
    STREAM_ERR_DISCONNECTED = -7,  /* not connected, or the connection dropped during the call */
    STREAM_ERR_CLOSED = -8         /* the port is being destroyed */
};
const char *stream_strerror(int status);

/* ------------------------------------------------------------------------------------------------------
 * Protocol files
 */
typedef struct stream_file stream_file;

/* Parses protocol text; name is used in messages. NULL with "name:line: message" in err on a syntax error. */
stream_file *stream_parse(const char *text, const char *name, char *err, size_t errlen);
/* Loads a file: a name without '/' is searched in the colon-separated STREAM_PROTOCOL_PATH (default ".") */
stream_file *stream_load(const char *path, char *err, size_t errlen);
void stream_free(stream_file *file);
int stream_has_protocol(const stream_file *file, const char *protocol);
/* The text of a global variable as written (e.g. "0x02" for `HighLimitBit = 0x02;`), or NULL. */
const char *stream_variable(const stream_file *file, const char *name);

/* ------------------------------------------------------------------------------------------------------
 * Values exchanged with a protocol run: out converters read them, in converters set them.
 */
#define STREAM_MAX_VALUES  16
#define STREAM_NAME_SIZE   32
#define STREAM_STRING_SIZE 128

typedef struct stream_value {
    char name[STREAM_NAME_SIZE];
    int is_set;
    double number;                  /* numeric converters (and %{} index) */
    char text[STREAM_STRING_SIZE];  /* %s / %c input; numbers printed by %s output */
} stream_value;

typedef struct stream_values {
    int count;
    stream_value items[STREAM_MAX_VALUES];
} stream_values;

void stream_values_clear(stream_values *values);
void stream_values_set_number(stream_values *values, const char *name, double number);
void stream_values_set_text(stream_values *values, const char *name, const char *text);
/* NULL when the value was never set. */
const stream_value *stream_values_get(const stream_values *values, const char *name);

/* ------------------------------------------------------------------------------------------------------
 * Running a protocol over any byte stream (the port's socket, or a test double)
 */
typedef struct stream_io {
    /* Sends all len bytes; 0 or -1 (connection lost). */
    int (*write)(void *ctx, const char *buf, size_t len);
    /* Waits up to timeout seconds for input; returns bytes read (> 0), 0 on timeout, -1 when the
     * connection is lost. */
    long (*read)(void *ctx, char *buf, size_t cap, double timeout);
    /* `disconnect;` command: closes the connection (may be NULL). */
    void (*disconnect)(void *ctx);
    void *ctx;
} stream_io;

/* Runs protocol `name` with arguments args[0..nargs-1] as $1..; handlers run on errors as the file says.
 * err gets a one-line description of a failure (including the offending input). */
int stream_run(const stream_file *file, const char *name, const char *const *args, int nargs,
               stream_values *values, const stream_io *io, char *err, size_t errlen);
/* Runs the file's global @init handler (STREAM_OK when there is none). */
int stream_run_init(const stream_file *file, const stream_io *io, char *err, size_t errlen);

/* ------------------------------------------------------------------------------------------------------
 * Ports: a TCP connection to host:port with its own I/O thread, connecting and reconnecting by itself
 * (running @init after each connect). A request is executed once or failed with a status: requests are never
 * retried, and those made while the port is disconnected fail at once with STREAM_ERR_DISCONNECTED. A reply
 * timeout closes the connection (so a late reply cannot be taken for the answer to the next command) and
 * the port reconnects.
 */
typedef struct stream_port stream_port;

stream_port *stream_port_create(const char *name, const char *host_port, const stream_file *file,
                                char *err, size_t errlen);
/* Stops the I/O thread; pending calls return STREAM_ERR_CLOSED. */
void stream_port_destroy(stream_port *port);
int stream_port_call(stream_port *port, const char *protocol, const char *const *args, int nargs,
                     stream_values *values, char *err, size_t errlen);
int stream_port_connected(stream_port *port);

#endif
