/* server.c -- the pvAccess server daemon on the shared event loop (core/netloop): what pvAccess adds to it --
 * connections (conn.c) as the loop's connections, search replies, beacons, access-rights sweeps -- start/stop
 * and the report pvasr asks for. Same structure as the CA server (core/ca/server.c).
 *
 * Thread model
 *   - ONE event loop thread (netloop) owns every socket and every connection: it accepts, reads and executes
 *     requests (conn.c), answers searches (udp.c), sends beacons, encodes pending monitor updates (monitor.c)
 *     while a client's queue has room, flushes, and re-evaluates access rights (the callbacks below run on it).
 *   - Monitor callbacks and blocking-put completions run on db threads under the db lock; structured PVs are
 *     posted from driver threads (source.c). They only mark monitors pending or queue a short reply under the
 *     connection's lock and wake the loop; they never touch a socket.
 *   - The shell thread talks to the loop only through netloop_report (pvasr) and the start/stop hooks.
 * Locks, in order: db lock -> connection lock -> source lock; wake_lock (guards `loop` against a post while the
 * server stops) is taken alone.
 */
#include "core/pva/pva.h"
#include "core/pva/pva_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/access/access.h"
#include "core/base/base.h"
#include "core/ca/ca.h"
#include "core/netloop/netloop.h"

#define MAX_BEACON_DST 16
#define RIGHTS_SWEEP_PERIOD 1.0
#define BEACON_FAST_PERIOD 15.0
#define BEACON_SLOW_PERIOD 180.0
#define BEACON_FAST_COUNT 10

/* guid: written by start while the loop is not running. port: written by the loop thread in its first round,
 * before it accepts anybody; 0 until then (source.c: "the server has not started"). */
pva_guid pva_server_guid;
uint16_t pva_server_port;

static struct {
    /* Written by start/stop while the loop is not running (loop also under wake_lock); read-only for the loop. */
    netloop *loop;
    int beacon_fd;
    struct sockaddr_in beacon_dst[MAX_BEACON_DST];
    int nbeacon;

    /* Loop thread only. */
    double next_beacon, next_rights_sweep;
    unsigned beacons_sent;
    unsigned long access_gen;
} srv = { .beacon_fd = -1 };

static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;

void pva_server_wake(void)
{
    pthread_mutex_lock(&wake_lock);
    if (srv.loop)
        netloop_wake(srv.loop);
    pthread_mutex_unlock(&wake_lock);
}

static void wake_loop(pva_conn *c)
{
    if (c->server_data)     /* NULL while the connection is being created: its greeting is polled for */
        netloop_wake(c->server_data);
}

static void make_guid(void)
{
    struct timespec t = time_wall();
    uint32_t words[3] = { (uint32_t)t.tv_sec, (uint32_t)t.tv_nsec, (uint32_t)getpid() };
    memcpy(pva_server_guid.b, words, sizeof words);
}

/* ---------------------------------------------------------------------------------------------------
 * Connections as the loop's
 */
static void *conn_open(netloop *loop, const char *peer, const char *ip, int fd)
{
    pva_conn *c = pva_conn_new(peer, ip, fd, wake_loop);
    c->server_data = loop;
    return c;
}

static int conn_input(void *c, const uint8_t *data, size_t len) { return pva_conn_input(c, data, len); }
static int conn_pending_input(void *c) { return ((pva_conn *)c)->in.len > 0; }
static int conn_closing(void *c) { return ((pva_conn *)c)->closing; }
static void conn_refill(void *c) { pva_conn_refill(c); }
static pthread_mutex_t *conn_lock(void *c) { return &((pva_conn *)c)->lock; }
static void conn_close(void *c) { pva_conn_free(c); }

/* A client reading what we send is alive too (a slow image viewer whose queue is full is not read from). */
static void conn_consume(void *conn, size_t n)
{
    pva_conn *c = conn;
    pva_conn_consume_locked(c, n);
    c->last_alive = time_monotonic();
}

/* As pvxs: a client silent for EPICS_PVA_CONN_TMO x 4/3 (clients echo every 15 s) is gone. */
static int conn_expired(void *conn, double now)
{
    return now - ((pva_conn *)conn)->last_alive > pva_server_limits.idle_timeout;
}
static int conn_peek(void *conn, struct iovec iov[NETLOOP_MAX_IOV])
{
    return pva_conn_peek_locked(conn, iov);
}

static void conn_describe(void *conn, char *buf, size_t len)
{
    pva_conn *c = conn;
    snprintf(buf, len, "%s (%s '%s'@%s)", c->peer, c->method[0] ? c->method : "-", c->user, c->host);
}

/* ---------------------------------------------------------------------------------------------------
 * UDP
 */
static void serve_udp(netloop *loop, int fd)
{
    (void)loop;
    uint8_t dgram[8192], reply[8192];
    for (int rounds = 0; rounds < 64; rounds++) {
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(fd, dgram, sizeof dgram, MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
        if (n < 0)
            return;
        uint32_t ip = from.sin_addr.s_addr;
        uint16_t port = ntohs(from.sin_port);
        size_t len = pva_search_reply(dgram, (size_t)n, &pva_server_guid, pva_server_port, reply, sizeof reply,
                                      &ip, &port);
        if (!len)
            continue;
        struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = ip, .sin_port = htons(port) };
        sendto(fd, reply, len, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
    }
}

/* Beacons (first at start, every 15 s for the first ten, then every 180 s, as pvxs) and access-rights sweeps
 * (every second, and at once when the rules changed). */
static double periodic(netloop *loop, double now, void *const *conns, unsigned nconns)
{
    pva_server_port = netloop_tcp_port(loop);     /* known from the first call on, before any client */
    if (now >= srv.next_rights_sweep || access_generation() != srv.access_gen) {
        srv.access_gen = access_generation();
        srv.next_rights_sweep = now + RIGHTS_SWEEP_PERIOD;
        for (unsigned i = 0; i < nconns; i++)
            pva_conn_refresh_rights(conns[i]);
    }
    if (now >= srv.next_beacon) {
        uint8_t msg[128];
        size_t len = pva_beacon_encode(msg, &pva_server_guid, (uint8_t)srv.beacons_sent, pva_server_port);
        for (int i = 0; i < srv.nbeacon; i++)
            sendto(srv.beacon_fd, msg, len, MSG_DONTWAIT, (struct sockaddr *)&srv.beacon_dst[i],
                   sizeof srv.beacon_dst[i]);
        srv.beacons_sent++;
        srv.next_beacon = now + (srv.beacons_sent < BEACON_FAST_COUNT ? BEACON_FAST_PERIOD : BEACON_SLOW_PERIOD);
    }
    return srv.next_beacon < srv.next_rights_sweep ? srv.next_beacon : srv.next_rights_sweep;
}

/* ---------------------------------------------------------------------------------------------------
 * Report (pvasr)
 */
static void build_report(netloop *loop, netloop_text *t, int level, void *const *conns, unsigned n)
{
    (void)loop;
    netloop_printf(t, "pvAccess server: TCP port %u, %u client(s) (limit %u), %u channels/client max, "
                   "%zu bytes queued/client max\n", pva_server_port, n, pva_server_limits.max_clients,
                   pva_server_limits.max_channels, pva_server_limits.max_queue_bytes);
    for (unsigned i = 0; i < n && level >= 1; i++) {
        pva_conn *c = conns[i];
        pthread_mutex_lock(&c->lock);
        size_t queued = pva_conn_queued_locked(c);
        uint64_t sent = c->updates_sent;
        pthread_mutex_unlock(&c->lock);
        netloop_printf(t, "  %s %s '%s'@%s: %u channel(s), %u operation(s), %zu bytes queued, %llu updates sent\n",
                       c->peer, c->method[0] ? c->method : "-", c->user, c->host, c->nchans, c->nops, queued,
                       (unsigned long long)sent);
        for (uint32_t s = 0; s < c->chan_cap && level >= 2; s++)
            if (c->chans[s])
                netloop_printf(t, "    sid %u cid %u %s rights %s%s\n", c->chans[s]->sid, c->chans[s]->cid,
                               c->chans[s]->name, c->chans[s]->rights & ACCESS_READ ? "R" : "-",
                               c->chans[s]->rights & ACCESS_WRITE ? "W" : "-");
    }
}

static const netloop_ops pva_ops = {
    .module = "pva", .what = "pvAccess",
    .open = conn_open, .input = conn_input, .pending_input = conn_pending_input, .closing = conn_closing,
    .refill = conn_refill, .out_lock = conn_lock, .out_peek = conn_peek, .out_consume = conn_consume,
    .describe = conn_describe, .expired = conn_expired, .close = conn_close,
    .datagrams = serve_udp, .periodic = periodic, .report = build_report,
};

void pva_server_start(void *user)
{
    (void)user;
    if (srv.loop)
        return;
    make_guid();
    uint16_t udp_port = (uint16_t)ca_env_long("EPICS_PVAS_BROADCAST_PORT", "EPICS_PVA_BROADCAST_PORT", 5076);
    /* Beacons go only to the listed addresses (no automatic broadcast list: loopback rules). */
    srv.nbeacon = ca_parse_addr_list(ca_env_first("EPICS_PVAS_BEACON_ADDR_LIST", "EPICS_PVA_ADDR_LIST"), udp_port,
                                     srv.beacon_dst, MAX_BEACON_DST);
    srv.beacon_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    srv.beacons_sent = 0;
    srv.next_beacon = time_monotonic();
    srv.access_gen = access_generation();
    srv.next_rights_sweep = time_monotonic() + RIGHTS_SWEEP_PERIOD;
    netloop_config cfg = {
        .intf_list = ca_env_first("EPICS_PVAS_INTF_ADDR_LIST", NULL),
        .tcp_port = (uint16_t)ca_env_long("EPICS_PVAS_SERVER_PORT", "EPICS_PVA_SERVER_PORT", 5075),
        .udp_port = udp_port, .max_clients = &pva_server_limits.max_clients,
        .max_queue_bytes = &pva_server_limits.max_queue_bytes };
    pthread_mutex_lock(&wake_lock);
    srv.loop = netloop_start(&pva_ops, &cfg);
    pthread_mutex_unlock(&wake_lock);
    if (!srv.loop) {
        close(srv.beacon_fd);
        srv.beacon_fd = -1;
    }
}

void pva_server_stop(void *user)
{
    (void)user;
    if (!srv.loop)
        return;
    netloop *loop = srv.loop;
    pthread_mutex_lock(&wake_lock);
    srv.loop = NULL;        /* structured PVs posted from now on wake nobody */
    pthread_mutex_unlock(&wake_lock);
    netloop_stop(loop);
    close(srv.beacon_fd);
    srv.beacon_fd = -1;
}

char *pva_server_report(int level)
{
    return srv.loop ? netloop_report(srv.loop, level) : NULL;
}
