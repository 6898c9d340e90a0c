/* ca_internal.h -- internal interfaces between the files of the CA server (not for other concerns).
 *
 *   proto.c    wire codec: 16/24-byte headers, padding, big-endian helpers, growable byte queues
 *   dbr.c      DBR types 0..38: sizes, layouts, encoding values + metadata from db, decoding puts
 *   circuit.c  one TCP virtual circuit as a socket-free state machine (bytes in, bytes queued out)
 *   monitor.c  subscriptions: db callbacks, bounded per-client queue with per-subscription coalescing
 *   udp.c      name resolution (SEARCH) and beacons
 *   server.c   the daemon on the shared event loop (core/netloop): beacons, searches, rights sweeps, start/stop, casr
 */
#ifndef RELOC_CA_PRIVATE_H
#define RELOC_CA_PRIVATE_H

#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ca/ca.h"
#include "core/db/db.h"

/* ---------------------------------------------------------------------------------------------------
 * Protocol constants
 */
#define CA_MINOR_VERSION 13
#define CA_HDR_SIZE      16
#define CA_EXT_HDR_SIZE  24

enum {
    CA_PROTO_VERSION = 0, CA_PROTO_EVENT_ADD = 1, CA_PROTO_EVENT_CANCEL = 2, CA_PROTO_READ = 3,
    CA_PROTO_WRITE = 4, CA_PROTO_SEARCH = 6, CA_PROTO_EVENTS_OFF = 8, CA_PROTO_EVENTS_ON = 9,
    CA_PROTO_READ_SYNC = 10, CA_PROTO_ERROR = 11, CA_PROTO_CLEAR_CHANNEL = 12, CA_PROTO_RSRV_IS_UP = 13,
    CA_PROTO_NOT_FOUND = 14, CA_PROTO_READ_NOTIFY = 15, CA_PROTO_CREATE_CHAN = 18,
    CA_PROTO_WRITE_NOTIFY = 19, CA_PROTO_CLIENT_NAME = 20, CA_PROTO_HOST_NAME = 21,
    CA_PROTO_ACCESS_RIGHTS = 22, CA_PROTO_ECHO = 23, CA_PROTO_CREATE_CH_FAIL = 26,
    CA_PROTO_SERVER_DISCONN = 27
};

#define CA_SEARCH_DONT_REPLY 5
#define CA_SEARCH_DO_REPLY   10

/* ECA status codes the server emits. */
enum {
    ECA_NORMAL = 1, ECA_ALLOCMEM = 48, ECA_TOLARGE = 72, ECA_BADTYPE = 114, ECA_INTERNAL = 142,
    ECA_GETFAIL = 152, ECA_PUTFAIL = 160, ECA_BADCOUNT = 176, ECA_BADMONID = 242, ECA_DEFUNCT = 278,
    ECA_PUTCBINPROG = 362, ECA_NORDACCESS = 368, ECA_NOWTACCESS = 376, ECA_NOCONVERT = 400, ECA_BADCHID = 410,
    ECA_16KARRAYCLIENT = 464
};

/* ---------------------------------------------------------------------------------------------------
 * proto.c -- header codec and byte queues
 */
typedef struct ca_hdr {
    uint16_t cmd;
    uint16_t dtype;
    uint32_t payload;       /* payload bytes (padded) */
    uint32_t count;
    uint32_t p1, p2;
} ca_hdr;

static inline size_t ca_pad8(size_t n) { return (n + 7) & ~(size_t)7; }

void ca_put16(uint8_t *p, uint16_t v);
void ca_put32(uint8_t *p, uint32_t v);
uint16_t ca_get16(const uint8_t *p);
uint32_t ca_get32(const uint8_t *p);

/* Decodes a header from len bytes. Returns the header size (16 or 24), 0 when more bytes are needed, or -1
 * when extended is not allowed (client minor < 9) but the header asks for it. */
int ca_hdr_decode(const uint8_t *buf, size_t len, int allow_extended, ca_hdr *h);
/* Size of the header encoding h (24 when payload or count needs the extended form). */
size_t ca_hdr_size(const ca_hdr *h);
/* Writes h (16 or 24 bytes, see ca_hdr_size) and returns the size written. */
size_t ca_hdr_encode(uint8_t *out, const ca_hdr *h);

/* A byte queue: data[head, head+len) is pending. Owner and lock: whoever embeds it. */
typedef struct ca_bytes {
    uint8_t *data;
    size_t head, len, cap;
} ca_bytes;

/* Returns a zeroed area of n bytes at the tail; call ca_bytes_commit(q, n) once it is written. */
uint8_t *ca_bytes_reserve(ca_bytes *q, size_t n);
/* The same area, not cleared (the caller writes every byte of it). */
uint8_t *ca_bytes_room(ca_bytes *q, size_t n);
/* Capacity an emptied queue keeps (larger buffers are freed once empty). */
#define CA_BYTES_KEEP ((size_t)32 << 20)
void ca_bytes_commit(ca_bytes *q, size_t n);
void ca_bytes_append(ca_bytes *q, const void *src, size_t n);
void ca_bytes_consume(ca_bytes *q, size_t n);
void ca_bytes_free(ca_bytes *q);
/* Appends a message: header h (payload size taken from h) followed by the payload (zero-padded). */
void ca_bytes_message(ca_bytes *q, const ca_hdr *h, const void *payload, size_t payload_unpadded);

/* ---------------------------------------------------------------------------------------------------
 * dbr.c -- DBR types
 */
#define CA_DBR_LAST 38
enum { DBR_PUT_ACKT = 35, DBR_PUT_ACKS = 36, DBR_STSACK_STRING = 37, DBR_CLASS_NAME = 38 };

typedef struct ca_dbr_layout {
    uint16_t size;          /* sizeof the struct with one element */
    uint16_t value_off;     /* where element 0 lives */
    uint8_t base;           /* dbr_value_type of the elements */
} ca_dbr_layout;

/* NULL for types outside 0..38. */
const ca_dbr_layout *ca_dbr_layout_of(unsigned type);
size_t ca_dbr_value_size(dbr_value_type base);
/* Bytes (unpadded) for count elements: size + (count-1)*value_size; count 0 = metadata only. */
size_t ca_dbr_bytes(unsigned type, uint32_t count);
/* CA native type of a field as advertised in CREATE_CHAN. */
dbr_value_type ca_native_type(dbf_type type);

/* Fills the metadata part of a DBR structure (big-endian) and byte-swaps `count` host-order elements
 * already stored at out + value_off. */
void ca_dbr_encode(uint8_t *out, unsigned type, const db_meta *meta, uint32_t count);
/* [locked] Reads a channel into out (ca_dbr_bytes(type, count) long, every byte written: metadata and elements
 * past the channel's current count are zero): values through db_get, the metadata through db_get_meta.
 * Returns ECA_NORMAL or ECA_GETFAIL / ECA_BADTYPE (out then undefined). */
int ca_dbr_read(const db_addr *addr, unsigned type, uint32_t count, uint8_t *out);
/* Converts the value part of a client's DBR payload (any type 0..36) into host order in place and returns a
 * pointer to the first element; NULL if the payload is too short for count elements. A single string sent
 * shorter than its 40 bytes (as libca does) is widened into `room`. */
void *ca_dbr_decode_values(uint8_t *payload, size_t len, unsigned type, uint32_t count, ca_bytes *room);

/* ---------------------------------------------------------------------------------------------------
 * Limits (config.c reads them from the environment, casSetLimits overrides them; circuits obey them)
 */
typedef struct ca_limits {
    unsigned max_clients;
    unsigned max_channels;      /* per client */
    size_t max_queue_bytes;     /* per client: queued output beyond this coalesces monitors / stops reading */
    size_t max_message_bytes;   /* largest payload accepted or sent */
} ca_limits;
extern ca_limits ca_server_limits;

/* ---------------------------------------------------------------------------------------------------
 * config.c -- the environment
 */
/* Limits from RELOC_CAS_MAX_CLIENTS, RELOC_CAS_MAX_CHANNELS, RELOC_CAS_MAX_QUEUE_BYTES and
 * EPICS_CA_MAX_ARRAY_BYTES. */
void ca_limits_from_env(void);

/* ---------------------------------------------------------------------------------------------------
 * server.c -- the daemon (on core/netloop)
 */
/* db hooks: start the loop at the end of iocInit; stop it (clients dropped) at db_shutdown. */
void ca_server_start(void *user);
void ca_server_stop(void *user);
/* casr: the loop's report at level 0 (summary), 1 (clients) or 2 (channels) (the caller frees it); NULL when
 * the server is not running. */
char *ca_server_report(int level);

/* ---------------------------------------------------------------------------------------------------
 * circuit.c / monitor.c -- one TCP circuit
 */
typedef struct ca_client ca_client;
typedef struct ca_channel ca_channel;
typedef struct ca_sub ca_sub;
typedef struct ca_putn ca_putn;

struct ca_sub {                     /* one EVENT_ADD */
    ca_channel *chan;
    uint32_t subid;
    uint16_t dtype;
    uint32_t count;
    uint16_t mask;
    db_subscription *dbsub;
    /* Guarded by the client's lock: an update waits for room in the queue (encoded when it is queued). */
    int on_pending_list;
    ca_sub *next_pending;
    ca_sub *next;                   /* in chan->subs; loop thread only */
};

struct ca_putn {                    /* one WRITE_NOTIFY in progress */
    ca_channel *chan;
    uint32_t ioid;
    uint16_t dtype;
    uint32_t count;
    ca_putn *next;
};

struct ca_channel {
    uint32_t cid, sid;
    char name[DB_NAME_SIZE + 8];
    db_addr addr;
    unsigned rights;                /* bit0 read, bit1 write; loop thread */
    ca_client *client;
    ca_sub *subs;                   /* loop thread */
    ca_putn *putns;                 /* pending WRITE_NOTIFYs: db lock */
};

/* Called (with the client lock held) when output appears in an empty queue: wakes the event loop. */
typedef void (*ca_wake_fn)(ca_client *client);

struct ca_client {
    /* Set at creation, read-only afterwards. */
    char peer[64];                  /* "ip:port" for log lines */
    int fd;                         /* owned by server.c; -1 when driven without a socket */
    ca_wake_fn wake;
    void *server_data;

    /* Loop thread only. */
    ca_bytes in;
    ca_bytes put_room;              /* widened short string puts */
    uint16_t minor, priority;
    char user[64], host[128];
    ca_channel **chans;             /* indexed by SID; chan_cap entries, the first sids_used ever issued */
    uint32_t chan_cap, nchans, sids_used;
    uint32_t *free_sids, nfree_sids; /* SIDs freed by CLEAR_CHANNEL, reused first (a stack of chan_cap) */
    int closing;                    /* a fatal protocol error: flush, then close */
    ca_client *next;                /* server's list */

    /* Guarded by lock (taken after the db lock, never before it). */
    pthread_mutex_t lock;
    ca_bytes out;
    ca_sub *pending_head, *pending_tail;
    int events_off;
    uint64_t updates_sent, updates_coalesced;
};

ca_client *ca_client_new(const char *peer, int fd, ca_wake_fn wake);
/* Feeds bytes received on the circuit; processes every complete message. Returns 0, or -1 when the circuit
 * must be closed (malformed or oversized input; already logged with the peer). */
int ca_client_input(ca_client *c, const uint8_t *data, size_t len);
/* Where the next bytes received should go (*room bytes): the tail of the input queue, sized to the rest of a
 * large message being received so that it arrives in place and leaves the queue empty once executed. Bytes
 * received there are then passed to ca_client_input with that pointer (taken, not copied). */
uint8_t *ca_client_input_room(ca_client *c, size_t *room);
/* Queues SERVER_DISCONN for every channel (server shutdown). */
void ca_client_disconnect_all(ca_client *c);
/* Recomputes access rights of every channel and pushes ACCESS_RIGHTS for those that changed. */
void ca_client_refresh_rights(ca_client *c);
/* Cancels subscriptions and put-notifies, frees everything. The socket is the caller's. */
void ca_client_free(ca_client *c);
/* [client lock] Queues a reply message (header + payload). */
void ca_client_queue_locked(ca_client *c, const ca_hdr *h, const void *payload, size_t len);

/* monitor.c */
int ca_sub_start(ca_client *c, ca_channel *ch, const ca_hdr *h, uint16_t mask);
void ca_sub_free(ca_sub *s);
/* After output was flushed or events were turned on (takes the db lock, then the client's): encodes the
 * pending subscriptions' current values into the queue while there is room. */
void ca_client_refill(ca_client *c);

/* Scratch buffer for encoding replies, not cleared. Guarded by the db lock (every user holds it). */
uint8_t *ca_scratch_locked(size_t n);
/* [db locked, q's lock] Queues the message msg (n bytes) encoded in the scratch buffer: a large one into an
 * empty queue by exchanging the two buffers (no copy of a camera frame; the scratch buffer takes the queue's
 * old one and the shared update is gone), otherwise by copying. */
void ca_scratch_queue_locked(ca_bytes *q, const uint8_t *msg, size_t n);
#define CA_SCRATCH_HANDOVER ((size_t)64 << 10)
/* [db locked] The scratch buffer is about to be overwritten: a monitor update kept there is gone. */
void ca_scratch_reused_locked(void);
/* [db locked] Encodes a READ_NOTIFY reply or EVENT_ADD update (cmd) of the channel into the scratch buffer:
 * P1 = ECA status (no read access, conversion failure, too large), P2 = p2. Returns the message size. */
size_t ca_encode_value_locked(ca_channel *ch, uint16_t cmd, uint16_t dtype, uint32_t count, uint32_t p2,
                              uint8_t **msg);

/* ---------------------------------------------------------------------------------------------------
 * udp.c -- name resolution and beacons
 */
/* Parses a search datagram from a client and builds the reply datagram(s) into reply (one or more
 * datagrams, each reply_lens[i] bytes). Returns the number of datagrams (0: nothing to send). tcp_port and
 * the names known come from db. */
int ca_search_reply(const uint8_t *dgram, size_t len, uint16_t tcp_port, uint8_t *reply, size_t reply_cap,
                    size_t *reply_lens, int max_dgrams);
size_t ca_beacon_encode(uint8_t *out, uint16_t tcp_port, uint32_t counter);

/* Beacon schedule: first 0.02 s, doubling up to period. */
double ca_beacon_next_interval(double current, double period);

#endif
