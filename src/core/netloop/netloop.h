/* netloop.h -- the event loop of a server daemon that listens on TCP and answers searches on UDP: the Channel
 * Access server (core/ca) and the pvAccess server (core/pva) each run one.
 *
 * The loop owns the sockets and the connections: ONE thread polls the listening TCP sockets (one per interface
 * of the interface list; a busy port falls back to a free one), the UDP search sockets (bound with
 * SO_REUSEPORT to the search port of each interface), every connection and a wake-up eventfd. It accepts (up
 * to the client limit), reads and hands bytes to the protocol (ops->input), flushes each connection's output
 * queue (asking the protocol to encode pending updates while the queue is below the per-client limit, and
 * stopping to read a client whose queue is full), drops connections that closed, broke the protocol or stayed
 * silent too long (with a log line naming them), and calls ops->periodic (beacons, access-rights sweeps) when it asked to be.
 * Other threads only call netloop_wake (db callbacks that queued output) and netloop_report (the shell).
 *
 * Connections are opaque to the loop; the protocol's ops say how to feed them, reach their output queue (under
 * the lock ops->out_lock gives) and free them.
 */
#ifndef RELOC_NETLOOP_H
#define RELOC_NETLOOP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define NETLOOP_MAX_IOV 3

typedef struct netloop netloop;

/* Report text, built by the loop thread. */
typedef struct netloop_text {
    char *text;
    size_t len, cap;
} netloop_text;
void netloop_printf(netloop_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct netloop_ops {
    const char *module;                                 /* log module name: "ca", "pva" */
    const char *what;                                   /* "CA", "pvAccess": log lines */
    /* A new connection on socket fd from peer ("ip:port"); the loop owns the socket. */
    void *(*open)(netloop *loop, const char *peer, const char *ip, int fd);
    /* Bytes received (NULL, 0: run what is buffered); -1 when the connection must close. */
    int (*input)(void *conn, const uint8_t *data, size_t len);
    /* Optional: where the protocol wants the next bytes received (*room bytes at most); the loop receives
     * straight into it and passes that pointer to input, so a large message is not copied out of a bounce
     * buffer. NULL: the loop's own buffer. */
    uint8_t *(*input_room)(void *conn, size_t *room);
    int (*pending_input)(void *conn);                   /* bytes received and not yet executed */
    int (*closing)(void *conn);                         /* closing because of a protocol error */
    void (*refill)(void *conn);                         /* encode pending updates (takes its own locks) */
    pthread_mutex_t *(*out_lock)(void *conn);
    /* [out_lock] The queued output, in order, as at most NETLOOP_MAX_IOV pieces (a protocol may send a shared
     * encoding from where it lies instead of copying it into the queue); their count. */
    int (*out_peek)(void *conn, struct iovec iov[NETLOOP_MAX_IOV]);
    void (*out_consume)(void *conn, size_t n);            /* [out_lock] n bytes were sent */
    void (*shutdown)(void *conn);                       /* server stopping: queue the goodbyes (or NULL) */
    void (*describe)(void *conn, char *buf, size_t len);    /* "peer (user@host)" for log lines */
    /* Optional: the peer has been silent too long at monotonic time now; the loop then drops it (logged). */
    int (*expired)(void *conn, double now);
    void (*close)(void *conn);                          /* free it (the loop closes the socket) */
    void (*datagrams)(netloop *loop, int fd);           /* a UDP search socket is readable */
    /* Called after every round (and at start) with the connections: beacons, rights sweeps. Returns when it
     * wants to be called at the latest (the poll timeout). */
    double (*periodic)(netloop *loop, double now, void *const *conns, unsigned n);
    /* The report at level over the current connections (loop thread). */
    void (*report)(netloop *loop, netloop_text *t, int level, void *const *conns, unsigned n);
} netloop_ops;

typedef struct netloop_config {
    const char *intf_list;          /* "ip ip ..." to bind, NULL or empty: every interface */
    uint16_t tcp_port, udp_port;    /* wanted TCP port; UDP search port */
    const unsigned *max_clients;    /* limits, read at every use (shell commands may change them) */
    const size_t *max_queue_bytes;
} netloop_config;

/* Opens the sockets and starts the thread; NULL (logged) when it could not. */
netloop *netloop_start(const netloop_ops *ops, const netloop_config *cfg);
/* Stops the thread: ops->shutdown, a last flush and close for every connection. Frees the loop. */
void netloop_stop(netloop *loop);
/* The TCP port listened on (the wanted one, or the free one taken instead). */
uint16_t netloop_tcp_port(const netloop *loop);
/* Any thread: have the loop look at its connections' queues soon. */
void netloop_wake(netloop *loop);
/* Any thread but the loop's: the text ops->report writes at level (the caller frees it). */
char *netloop_report(netloop *loop, int level);

/* The servers' shell commands share these. "xxsr [level]": prints report(level), or not_running. */
int netloop_report_cmd(int argc, char **argv, char *(*report)(int level), const char *not_running, char *err,
                       size_t errlen);
/* "xxSetLimits CLIENTS CHANNELS QUEUED_BYTES": positive numbers into the three limits. */
int netloop_limits_cmd(char **argv, unsigned *clients, unsigned *channels, size_t *queued, char *err, size_t errlen);

#endif
