/* pva_internal.h -- internal interfaces between the files of the pvAccess server (not for other concerns).
 *
 *   codec.c    wire codec: headers, byte order, Size/String/Status/BitSet, received type descriptors (with the
 *              per-connection introspection cache) and a walk over received values (pvRequest, auth data)
 *   nt.c       the Normative Type a channel is served as (NTScalar, NTEnum, NTScalarArray, as QSRV does): type
 *              tree (its builder also serves ndarray.c), descriptor, value encoding from the record database,
 *              decoding of put values
 *   conn.c     one TCP connection as a socket-free state machine (bytes in, bytes queued out): validation,
 *              channels, GET/PUT/PROCESS/GET_FIELD operations
 *   monitor.c  MONITOR operations: db callbacks mark changed fields, the loop encodes the newest value when
 *              the client's window and queue allow (flow control, pipelining)
 *   source.c   structured PVs beside the records (pva.h): registry, newest value shared by reference count
 *   ndarray.c  NTNDArray and NTTable: type descriptors and values of the structured PVs
 *   udp.c      SEARCH replies and beacons as pure functions of datagrams
 *   server.c   the event loop thread: sockets, accept, flush, limits, beacons, start/stop, pvasr
 *   commands.c shell commands and registration
 */
#ifndef RELOC_PVA_INTERNAL_H
#define RELOC_PVA_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/db/db.h"
#include "core/pva/pva.h"

/* ---------------------------------------------------------------------------------------------------
 * Protocol constants
 */
#define PVA_MAGIC       0xCA
#define PVA_VERSION     2
#define PVA_HDR_SIZE    8

#define PVA_FLAG_CONTROL 0x01u
#define PVA_FLAG_SEGMENT 0x30u
#define PVA_FLAG_SERVER  0x40u
#define PVA_FLAG_BE      0x80u

enum {
    PVA_CMD_BEACON = 0x00, PVA_CMD_VALIDATION = 0x01, PVA_CMD_ECHO = 0x02, PVA_CMD_SEARCH = 0x03,
    PVA_CMD_SEARCH_RESPONSE = 0x04, PVA_CMD_AUTHNZ = 0x05, PVA_CMD_CREATE_CHANNEL = 0x07,
    PVA_CMD_DESTROY_CHANNEL = 0x08, PVA_CMD_VALIDATED = 0x09, PVA_CMD_GET = 0x0A, PVA_CMD_PUT = 0x0B,
    PVA_CMD_PUT_GET = 0x0C, PVA_CMD_MONITOR = 0x0D, PVA_CMD_ARRAY = 0x0E, PVA_CMD_DESTROY_REQUEST = 0x0F,
    PVA_CMD_PROCESS = 0x10, PVA_CMD_GET_FIELD = 0x11, PVA_CMD_MESSAGE = 0x12, PVA_CMD_RPC = 0x14,
    PVA_CMD_CANCEL_REQUEST = 0x15, PVA_CMD_ORIGIN_TAG = 0x16
};
enum { PVA_CTRL_SET_BYTE_ORDER = 0x02 };

/* Operation subcommand bits. */
#define PVA_SUB_PROCESS 0x04u   /* MONITOR: with GET = start, alone = stop */
#define PVA_SUB_INIT    0x08u
#define PVA_SUB_DESTROY 0x10u
#define PVA_SUB_GET     0x40u
#define PVA_SUB_ACK     0x80u   /* MONITOR pipeline ack; INIT|ACK = pipelined INIT */

enum { PVA_OK = 0, PVA_WARNING = 1, PVA_ERROR = 2, PVA_FATAL = 3 };

/* Type codes */
enum {
    PVA_BOOL = 0x00, PVA_INT8 = 0x20, PVA_INT16 = 0x21, PVA_INT32 = 0x22, PVA_INT64 = 0x23, PVA_UINT8 = 0x24,
    PVA_UINT16 = 0x25, PVA_UINT32 = 0x26, PVA_UINT64 = 0x27, PVA_FLOAT = 0x42, PVA_DOUBLE = 0x43,
    PVA_STRING = 0x60, PVA_STRUCT = 0x80, PVA_UNION = 0x81, PVA_ANY = 0x82, PVA_ARRAY = 0x08,
    PVA_NULL_TYPE = 0xFF
};

/* Bytes of one element of a scalar type code (0 for strings and non-scalars). */
size_t pva_scalar_size(uint8_t code);

/* ---------------------------------------------------------------------------------------------------
 * codec.c -- writing (always little endian, as announced by SET_BYTE_ORDER)
 */
/* A growable byte buffer: data[head, head+len) is pending. Owner and lock: whoever embeds it. */
typedef struct pva_buf {
    uint8_t *data;
    size_t head, len, cap;
} pva_buf;

uint8_t *pva_buf_reserve(pva_buf *b, size_t n);     /* n bytes at the tail, counted as written */
void pva_buf_append(pva_buf *b, const void *src, size_t n);
void pva_buf_consume(pva_buf *b, size_t n);
void pva_buf_reset(pva_buf *b);
void pva_buf_free(pva_buf *b);

void pva_put8(pva_buf *b, uint8_t v);
void pva_put16(pva_buf *b, uint16_t v);
void pva_put32(pva_buf *b, uint32_t v);
void pva_put64(pva_buf *b, uint64_t v);
void pva_put_double(pva_buf *b, double v);
void pva_put_size(pva_buf *b, size_t n);
void pva_put_string(pva_buf *b, const char *s);
void pva_put_string_n(pva_buf *b, const char *s, size_t n);
/* Status: OK alone is the single byte 0xFF; otherwise type, message, empty stack trace. */
void pva_put_status(pva_buf *b, int type, const char *message);
/* BitSet of the 64 bits of mask (leaves numbered depth first). */
void pva_put_bitset(pva_buf *b, uint64_t mask);
/* Starts a message (header with size 0); pva_msg_end fills the size. Returns the message's offset. */
size_t pva_msg_begin(pva_buf *b, uint8_t cmd);
void pva_msg_end(pva_buf *b, size_t start);
/* The same for a message whose payload has `spliced` more bytes sent from elsewhere (conn.c). */
void pva_msg_end_spliced(pva_buf *b, size_t start, size_t spliced);
/* A control message (8 bytes, no payload). */
void pva_put_control(pva_buf *b, uint8_t code, uint32_t data);

/* ---------------------------------------------------------------------------------------------------
 * codec.c -- reading, in the byte order of the message's header. Every reader sets `bad` instead of
 * reading past the end; callers check it once at the end.
 */
typedef struct pva_reader {
    const uint8_t *p, *end;
    int be;                 /* big-endian message */
    int bad;
} pva_reader;

typedef struct pva_hdr {
    uint8_t flags, cmd;
    uint32_t size;          /* payload bytes, or the data word of a control message */
} pva_hdr;

/* Decodes the 8-byte header at buf: 0 ok, -1 bad magic/version. */
int pva_hdr_decode(const uint8_t *buf, pva_hdr *h);

uint8_t pva_get8(pva_reader *r);
uint16_t pva_get16(pva_reader *r);
uint32_t pva_get32(pva_reader *r);
uint64_t pva_get64(pva_reader *r);
double pva_get_double(pva_reader *r);
/* Size: -1 for the null form (0xFF). */
long pva_get_size(pva_reader *r);
/* A String into out (truncated to outlen-1, NUL-terminated); the full length is consumed. */
void pva_get_string(pva_reader *r, char *out, size_t outlen);
/* A BitSet; bits beyond 63 are dropped. */
uint64_t pva_get_bitset(pva_reader *r);
void pva_skip(pva_reader *r, size_t n);

/* A received type descriptor. Types are owned by whoever decoded them (pva_type_free). */
typedef struct pva_type {
    uint8_t code;
    char *id;
    uint32_t nmembers;
    char **names;
    struct pva_type **members;
    struct pva_type *element;           /* struct[] / union[]: the element structure or union */
} pva_type;

/* The receive side of the introspection cache of one connection (keys from 0xFD definitions). */
typedef struct pva_type_cache {
    uint16_t *keys;
    pva_type **types;
    size_t n;
} pva_type_cache;

/* Decodes a type descriptor (with cache markers). NULL for the null type or on error (r->bad set then). */
pva_type *pva_type_decode(pva_reader *r, pva_type_cache *cache);
pva_type *pva_type_copy(const pva_type *t);
void pva_type_free(pva_type *t);
void pva_type_cache_free(pva_type_cache *cache);

/* Walks a full value of type t: visit(user, path, text) for every scalar leaf (text = its value as text) and
 * every empty structure (text = NULL); path is the dotted member path from the root. */
typedef void (*pva_visit_fn)(void *user, const char *path, const char *text);
void pva_value_walk(pva_reader *r, const pva_type *t, pva_type_cache *cache, pva_visit_fn visit, void *user);

/* ---------------------------------------------------------------------------------------------------
 * nt.c -- the type a channel is served as
 */
#define PVA_MAX_NODES 64

enum pva_role {
    ROLE_STRUCT, ROLE_VALUE, ROLE_ENUM_INDEX, ROLE_ENUM_CHOICES, ROLE_SEVERITY, ROLE_STATUS, ROLE_MESSAGE,
    ROLE_SECONDS, ROLE_NANOS, ROLE_USERTAG, ROLE_DISP_LOW, ROLE_DISP_HIGH, ROLE_DESCRIPTION, ROLE_UNITS,
    ROLE_PRECISION, ROLE_FORM_INDEX, ROLE_FORM_CHOICES, ROLE_CTRL_LOW, ROLE_CTRL_HIGH, ROLE_MIN_STEP,
    ROLE_VA_ACTIVE, ROLE_VA_LOLO, ROLE_VA_LOW, ROLE_VA_HIGH, ROLE_VA_HIHI, ROLE_VA_LOLO_SEV, ROLE_VA_LOW_SEV,
    ROLE_VA_HIGH_SEV, ROLE_VA_HIHI_SEV, ROLE_VA_HYST
};

/* One node of a served structure, numbered depth first (the node's index is its BitSet bit). */
typedef struct pva_node {
    const char *name, *id;
    uint8_t code;
    uint8_t role;
    uint8_t parent;
    uint8_t end;            /* one past the node's last descendant */
} pva_node;

typedef struct pva_nt {
    pva_node nodes[PVA_MAX_NODES];
    unsigned n;
    uint8_t value_code;     /* type code of value (or of its elements) */
    dbr_value_type dbr;     /* how value is read from / written to db */
    int is_enum, is_array;
    uint64_t value_bits;    /* value (with index for enums) */
    uint64_t alarm_bits, time_bits, property_bits;   /* property: display, control, valueAlarm, enum choices */
    uint64_t served_bits;   /* leaves the server fills (as QSRV2 marks them); the others are never sent */
} pva_nt;

/* Building a tree, depth first: open/close bracket a structure, a union or a structure array, whose members
 * follow. The members of unions and structure arrays describe their type only (they are not fields of the
 * BitSet numbering), so the bit functions below serve trees without them (the records' types); ndarray.c
 * builds the structured PVs' types with them. Returns the node's index. */
typedef struct pva_builder {
    pva_nt *nt;
    uint8_t stack[8];
    int depth;
} pva_builder;
unsigned pva_build_add(pva_builder *b, const char *name, const char *id, uint8_t code, uint8_t role);
unsigned pva_build_open(pva_builder *b, const char *name, const char *id, uint8_t code);
void pva_build_close(pva_builder *b);
/* alarm_t "alarm" and time_t `name`, as every Normative Type has them. */
unsigned pva_build_alarm(pva_builder *b);
unsigned pva_build_time(pva_builder *b, const char *name);

/* The served type of a channel. */
void pva_nt_build(const db_addr *addr, pva_nt *nt);
/* Type descriptor (full, no cache markers). */
void pva_nt_put_type(pva_buf *b, const pva_nt *nt);
/* Bits of the nodes under (and including) node i. */
uint64_t pva_nt_subtree(const pva_nt *nt, unsigned i);
/* [db locked] BitSet `mask` and the marked fields of the channel's current value (only leaves). Returns 0,
 * or -1 (with *err) when the record could not be read. */
int pva_nt_put_value_locked(pva_buf *b, const pva_nt *nt, const db_addr *addr, uint64_t mask);
/* Decodes a client's BitSet + partial value against nt. When the value was marked, its elements are left in
 * `values` (host order, type nt->dbr; DB_STRING_SIZE bytes per string) and *nelem is their count; *nelem is
 * -1 when the value was not marked. Returns 0, or -1 when the data does not match the type. */
int pva_nt_decode_put(pva_reader *r, const pva_nt *nt, pva_buf *values, long *nelem);
/* Marks the nodes a pvRequest field path ("value", "alarm.severity") names; 0 when none. */
uint64_t pva_nt_select(const pva_nt *nt, const char *path);

/* ---------------------------------------------------------------------------------------------------
 * source.c -- structured PVs
 */
typedef struct pva_value pva_value;     /* one encoded full value, shared */

struct pva_source {
    char name[DB_NAME_SIZE + 8];
    pva_buf type;                       /* its type descriptor; written before iocInit, read-only afterwards */
    uint64_t leaf_bits;                 /* BitSet of its leaves (updates mark leaves only, as pvxs does) */
    int ncols;                          /* NTTable: column count and labels */
    char **labels;
    int nmembers;                       /* structure of scalars: its members' type codes */
    uint8_t *member_codes;
    pthread_mutex_t lock;               /* guards latest and seq */
    pva_value *latest;
    uint64_t seq;                       /* values posted */
    struct pva_source *next;
};

pva_source *pva_source_find(const char *name);
pva_source *pva_source_new(const char *name, char *err, size_t errlen);
/* Once its type is written: numbers its fields (at most 64) for the BitSets of its updates. */
void pva_source_type_done(pva_source *s);
/* db_at_exit: frees every source. */
void pva_sources_free(void *user);
/* Makes the encoded full value the source's newest one and wakes the server. Takes value's bytes over (value
 * is left empty): the encoding is the one every client is sent from. */
void pva_source_publish(pva_source *s, pva_buf *value);
/* The newest value with a reference taken (NULL before the first post), and its sequence number. */
pva_value *pva_source_latest(pva_source *s, uint64_t *seq);
uint64_t pva_source_seq(pva_source *s);
void pva_value_unref(pva_value *v);
const uint8_t *pva_value_bytes(const pva_value *v, size_t *len);

/* ---------------------------------------------------------------------------------------------------
 * Limits (commands.c: environment and pvasSetLimits; conn.c and server.c obey them)
 */
typedef struct pva_limits {
    unsigned max_clients;
    unsigned max_channels;      /* per client */
    unsigned max_ops;           /* per client */
    size_t max_queue_bytes;     /* per client: beyond this monitors wait (newest value kept) and reads stop */
    size_t max_message_bytes;   /* largest message accepted */
    double idle_timeout;        /* s: a client that sent nothing and read nothing for this long is dropped */
} pva_limits;
extern pva_limits pva_server_limits;

/* ---------------------------------------------------------------------------------------------------
 * conn.c / monitor.c -- one TCP connection
 */
typedef struct pva_conn pva_conn;
typedef struct pva_chan pva_chan;
typedef struct pva_op pva_op;

struct pva_chan {
    uint32_t cid, sid;
    char name[DB_NAME_SIZE + 8];
    db_addr addr;
    pva_nt nt;
    pva_source *src;            /* a structured PV (then addr and nt are unused) */
    unsigned rights;            /* ACCESS_READ | ACCESS_WRITE; loop thread */
};

/* Monitor state shared with db callbacks: guarded by the connection's lock. */
typedef struct pva_mon {
    db_subscription *dbsub;         /* loop thread */
    int started;
    int pipeline;
    int64_t window;                 /* pipelined: updates the client can still take */
    int first_pending;              /* the initial complete update is owed */
    uint64_t changed, overrun;      /* fields changed since the last update; changed more than once */
    int on_pending_list;
    pva_op *next_pending;
    uint64_t sent_seq;              /* structured PVs: the value sequence number last sent (loop thread) */
} pva_mon;

struct pva_op {
    uint32_t ioid;
    uint8_t cmd;
    pva_chan *chan;             /* NULL once the channel is gone (an op never outlives it) */
    uint64_t mask;              /* fields the pvRequest selected */
    int process;                /* -1 default rule, 0 never, 1 always */
    int block;                  /* PUT: reply when processing completes */
    int put_pending;            /* PUT with block: waiting for completion (db lock) */
    pva_mon mon;
    pva_conn *conn;
};

typedef void (*pva_wake_fn)(pva_conn *c);

struct pva_conn {
    /* Set at creation, read-only afterwards. */
    char peer[64];              /* "ip:port" for log lines */
    char host[64];              /* peer IP: the host access security sees */
    int fd;                     /* server.c's; -1 without a socket */
    pva_wake_fn wake;
    void *server_data;          /* server.c's (its event loop) */

    /* Loop thread only. */
    pva_buf in;
    pva_buf values;             /* decoded put values */
    pva_buf seg;                /* a segmented message being reassembled */
    int in_segment;
    pva_type_cache cache;
    int validated;
    char method[16], user[64];  /* auth method and the user access security sees */
    pva_chan **chans;           /* by SID - 1 */
    uint32_t chan_cap, nchans;
    pva_op **ops;               /* live operations, unordered */
    uint32_t nops, ops_cap;
    int closing;                /* fatal protocol error: flush, then close */
    double last_alive;          /* monotonic time it last sent us bytes or read some of ours */

    /* Guarded by lock (taken after the db lock, never before it). The output queue is `out`, except that a
     * structured PV's value (a camera frame) goes out of the shared encoding without a copy: the first
     * splice_at bytes of out, then the value's bytes from splice_sent on, then the rest of out. At most one
     * value is spliced at a time (monitor.c attaches one only to an empty queue). */
    pthread_mutex_t lock;
    pva_buf out;
    pva_value *splice;          /* a reference held until its last byte is sent; NULL: out alone */
    size_t splice_at, splice_sent;
    size_t reply_was;           /* queued bytes when the reply being built began */
    pva_op *pending_head, *pending_tail;   /* monitors with something to send */
    uint64_t updates_sent;
};

pva_conn *pva_conn_new(const char *peer, const char *host, int fd, pva_wake_fn wake);
/* Feeds received bytes; executes every complete message. 0, or -1 when the connection must close (already
 * logged with the peer). */
int pva_conn_input(pva_conn *c, const uint8_t *data, size_t len);
/* Recomputes access rights of every channel (ACF reloaded, CALC inputs changed). */
void pva_conn_refresh_rights(pva_conn *c);
/* Unsubscribes, cancels pending puts, frees everything; the socket is the caller's. */
void pva_conn_free(pva_conn *c);
/* [db locked] BitSet and marked fields of the channel's value (a structured PV: its newest value whole, *seq
 * its number). 0, or -1 when there is nothing to send (unreadable record, no value posted yet). */
int pva_chan_put_value_locked(pva_buf *b, pva_chan *ch, uint64_t mask, uint64_t *seq);
/* [conn lock] A MONITOR update of a structured PV's newest value (*seq its number) spliced into the empty
 * output queue. 0, or -1 when no value was posted yet. */
int pva_conn_splice_update_locked(pva_conn *c, pva_op *op, uint64_t *seq);
/* Ops of one connection. */
void pva_op_free(pva_conn *c, pva_op *op);
/* [conn lock] Bytes queued for the client (out and the rest of a spliced value). */
size_t pva_conn_queued_locked(const pva_conn *c);
/* [conn lock] Queued output grew from empty (was: what was queued before): wake the loop. */
void pva_conn_wake_locked(pva_conn *c, size_t was);
/* [conn lock] Up to 3 pieces of the queued output in order (the loop sends them with one sendmsg); their count. */
int pva_conn_peek_locked(const pva_conn *c, struct iovec iov[3]);
/* [conn lock] n bytes of the queued output were sent. */
void pva_conn_consume_locked(pva_conn *c, size_t n);

/* monitor.c */
/* INIT of a MONITOR: subscribes; returns 0 or -1 (status already queued). */
int pva_mon_init(pva_conn *c, pva_op *op, const char *queue_size);
/* start/stop/ack subcommands. */
void pva_mon_exec(pva_conn *c, pva_op *op, uint8_t sub, pva_reader *r);
void pva_mon_free(pva_conn *c, pva_op *op);
/* After output was flushed: encodes the newest value of monitors with something to send, while the queue has
 * room and their window allows. Takes the db lock, then the connection lock. */
void pva_conn_refill(pva_conn *c);

/* ---------------------------------------------------------------------------------------------------
 * udp.c
 */
typedef struct pva_guid { uint8_t b[12]; } pva_guid;
/* Reply datagram to a search datagram (0: none owed). reply_to gets the address to send it to (port in the
 * body, address of the sender unless the body names one). */
size_t pva_search_reply(const uint8_t *dgram, size_t len, const pva_guid *guid, uint16_t tcp_port,
                        uint8_t *reply, size_t cap, uint32_t *reply_ip, uint16_t *reply_port);
/* Answers a SEARCH received on a TCP connection into out (the body's names, in the connection's order). */
void pva_search_reply_tcp(pva_reader *r, const pva_guid *guid, uint16_t tcp_port, pva_buf *out);
size_t pva_beacon_encode(uint8_t *out, const pva_guid *guid, uint8_t seq, uint16_t tcp_port);

/* server.c */
extern pva_guid pva_server_guid;
extern uint16_t pva_server_port;
void pva_server_start(void *user);
/* Any thread: makes the loop look at structured PVs' new values. */
void pva_server_wake(void);
void pva_server_stop(void *user);
char *pva_server_report(int level);

#endif
