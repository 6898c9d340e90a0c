/* server.c -- the CA server daemon on the shared event loop (core/netloop): what Channel Access adds to it --
 * circuits as the loop's connections, name resolution, beacons, access-rights sweeps -- start/stop and the
 * report casr asks for (config.c reads the environment, commands.c holds the shell commands).
 *
 * Thread model
 *   - ONE event loop thread (netloop) owns every socket and every client: it accepts, reads and executes
 *     requests (circuit.c), answers searches (udp.c), sends beacons, flushes output queues and periodically
 *     re-evaluates access rights (the callbacks below run on it).
 *   - Monitor callbacks and put-notify completions run on db threads under the db lock. They only encode
 *     into a client's bounded output queue under that client's lock (monitor.c) and wake the loop
 *     (netloop_wake); they never touch a socket, so a slow client never holds up the db lock.
 *   - The shell thread talks to the loop only through netloop_report (casr) and the start/stop hooks.
 * Locks, in order: db lock -> client lock.
 */
#include "core/ca/ca.h"
#include "core/ca/ca_internal.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/access/access.h"
#include "core/base/base.h"
#include "core/netloop/netloop.h"

#define MAX_INTF 8
#define MAX_BEACON_DST 16
#define RIGHTS_SWEEP_PERIOD 1.0

static struct {
    /* Written by start/stop (shell or db thread) while the loop is not running; read-only for the loop. */
    netloop *loop;
    int beacon_fd;
    struct sockaddr_in beacon_dst[MAX_BEACON_DST];
    int nbeacon;
    struct in_addr ignore[MAX_BEACON_DST];
    int nignore;
    double beacon_period;

    /* Loop thread only. */
    double beacon_interval, next_beacon, next_rights_sweep;
    uint32_t beacon_counter;
    unsigned long access_gen;
} srv = { .beacon_fd = -1 };

/* ---------------------------------------------------------------------------------------------------
 * Circuits as the loop's connections
 */
static void wake_loop(ca_client *c)
{
    if (c->server_data)     /* NULL while the connection is being created: its greeting is polled for */
        netloop_wake(c->server_data);
}

static void *conn_open(netloop *loop, const char *peer, const char *ip, int fd)
{
    (void)ip;
    ca_client *c = ca_client_new(peer, fd, wake_loop);
    c->server_data = loop;
    return c;
}

static int conn_input(void *c, const uint8_t *data, size_t len) { return ca_client_input(c, data, len); }
static uint8_t *conn_input_room(void *c, size_t *room) { return ca_client_input_room(c, room); }
static int conn_pending_input(void *c) { return ((ca_client *)c)->in.len > 0; }
static int conn_closing(void *c) { return ((ca_client *)c)->closing; }
static pthread_mutex_t *conn_lock(void *c) { return &((ca_client *)c)->lock; }
static void conn_close(void *c) { ca_client_free(c); }
static void conn_shutdown(void *c) { ca_client_disconnect_all(c); }

static void conn_refill(void *conn) { ca_client_refill(conn); }

static int conn_peek(void *conn, struct iovec iov[NETLOOP_MAX_IOV])
{
    ca_client *c = conn;
    iov[0] = (struct iovec){ c->out.data + c->out.head, c->out.len };
    return 1;
}

static void conn_consume(void *c, size_t n) { ca_bytes_consume(&((ca_client *)c)->out, n); }

static void conn_describe(void *conn, char *buf, size_t len)
{
    ca_client *c = conn;
    snprintf(buf, len, "%s (%s@%s)", c->peer, c->user, c->host);
}

/* ---------------------------------------------------------------------------------------------------
 * Beacon destinations
 */
static void open_beacons(void)
{
    struct sockaddr_in intf[MAX_INTF];
    const char *list = ca_env_first("EPICS_CAS_INTF_ADDR_LIST", NULL);
    int nintf = list ? ca_parse_addr_list(list, 0, intf, MAX_INTF) : 0;
    int any = nintf == 0;
    /* Beacons: the explicit list, plus interface broadcast addresses only when auto is on. */
    uint16_t bport = (uint16_t)ca_env_long("EPICS_CAS_BEACON_PORT", "EPICS_CA_REPEATER_PORT", 5065);
    srv.nbeacon = ca_parse_addr_list(ca_env_first("EPICS_CAS_BEACON_ADDR_LIST", NULL), bport, srv.beacon_dst,
                                  MAX_BEACON_DST);
    if (ca_env_yes("EPICS_CAS_AUTO_BEACON_ADDR_LIST", 1)) {
        struct ifaddrs *ifs = NULL;
        if (getifaddrs(&ifs) == 0) {
            for (struct ifaddrs *a = ifs; a && srv.nbeacon < MAX_BEACON_DST; a = a->ifa_next) {
                if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET || !(a->ifa_flags & IFF_BROADCAST) ||
                    !a->ifa_broadaddr)
                    continue;
                const struct sockaddr_in *ia = (const struct sockaddr_in *)a->ifa_addr;
                int listed = any;
                for (int i = 0; i < nintf && !listed; i++)
                    listed = intf[i].sin_addr.s_addr == ia->sin_addr.s_addr;
                if (!listed)
                    continue;
                struct sockaddr_in b = *(const struct sockaddr_in *)a->ifa_broadaddr;
                b.sin_port = htons(bport);
                srv.beacon_dst[srv.nbeacon++] = b;
            }
            freeifaddrs(ifs);
        }
    }
    srv.beacon_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    srv.beacon_period = 15.0;
    const char *bp = ca_env_first("EPICS_CAS_BEACON_PERIOD", "EPICS_CA_BEACON_PERIOD");
    if (bp && atof(bp) > 0)
        srv.beacon_period = atof(bp);

    struct sockaddr_in ign[MAX_BEACON_DST];
    srv.nignore = ca_parse_addr_list(ca_env_first("EPICS_CAS_IGNORE_ADDR_LIST", NULL), 0, ign, MAX_BEACON_DST);
    for (int i = 0; i < srv.nignore; i++)
        srv.ignore[i] = ign[i].sin_addr;
}

/* ---------------------------------------------------------------------------------------------------
 * UDP, beacons, rights
 */
static void serve_udp(netloop *loop, int fd)
{
    uint8_t dgram[8192], reply[8192];
    size_t lens[8];
    for (int rounds = 0; rounds < 64; rounds++) {
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(fd, dgram, sizeof dgram, MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
        if (n < 0)
            return;
        int ignored = 0;
        for (int i = 0; i < srv.nignore; i++)
            ignored |= srv.ignore[i].s_addr == from.sin_addr.s_addr;
        if (ignored)
            continue;
        int nd = ca_search_reply(dgram, (size_t)n, netloop_tcp_port(loop), reply, sizeof reply, lens, 8);
        size_t off = 0;
        for (int i = 0; i < nd; i++) {
            sendto(fd, reply + off, lens[i], MSG_DONTWAIT, (struct sockaddr *)&from, flen);
            off += lens[i];
        }
    }
}

/* The loop's periodic work: beacons (back-off to the period) and access-rights sweeps (every second, and at
 * once when the rules or their CALC inputs changed). */
static double periodic(netloop *loop, double now, void *const *conns, unsigned nconns)
{
    if (now >= srv.next_rights_sweep || access_generation() != srv.access_gen) {
        db_lock();
        access_refresh_inputs();
        db_unlock();
        srv.access_gen = access_generation();
        srv.next_rights_sweep = now + RIGHTS_SWEEP_PERIOD;
        for (unsigned i = 0; i < nconns; i++)
            ca_client_refresh_rights(conns[i]);
    }
    if (now >= srv.next_beacon) {
        uint8_t msg[CA_HDR_SIZE];
        size_t n = ca_beacon_encode(msg, netloop_tcp_port(loop), srv.beacon_counter++);
        for (int i = 0; i < srv.nbeacon; i++)
            sendto(srv.beacon_fd, msg, n, MSG_DONTWAIT, (struct sockaddr *)&srv.beacon_dst[i],
                   sizeof srv.beacon_dst[i]);
        srv.beacon_interval = ca_beacon_next_interval(srv.beacon_interval, srv.beacon_period);
        srv.next_beacon = now + srv.beacon_interval;
    }
    return srv.next_beacon < srv.next_rights_sweep ? srv.next_beacon : srv.next_rights_sweep;
}

/* ---------------------------------------------------------------------------------------------------
 * Report (casr)
 */
static void build_report(netloop *loop, netloop_text *t, int level, void *const *conns, unsigned n)
{
    netloop_printf(t, "Channel Access server: TCP port %u, %u client(s) (limit %u), %u channels/client max, "
                   "%zu bytes queued/client max\n", netloop_tcp_port(loop), n, ca_server_limits.max_clients,
                   ca_server_limits.max_channels, ca_server_limits.max_queue_bytes);
    for (unsigned i = 0; i < n && level >= 1; i++) {
        ca_client *c = conns[i];
        pthread_mutex_lock(&c->lock);
        size_t queued = c->out.len;
        uint64_t sent = c->updates_sent, coalesced = c->updates_coalesced;
        int off = c->events_off;
        pthread_mutex_unlock(&c->lock);
        netloop_printf(t, "  %s %s@%s minor %u prio %u: %u channel(s), %zu bytes queued, %llu updates sent, "
                       "%llu coalesced%s\n", c->peer, c->user, c->host, c->minor, c->priority, c->nchans, queued,
                       (unsigned long long)sent, (unsigned long long)coalesced, off ? ", events off" : "");
        for (uint32_t s = 0; s < c->chan_cap && level >= 2; s++)
            if (c->chans[s])
                netloop_printf(t, "    sid %u cid %u %s rights %s%s\n", s, c->chans[s]->cid, c->chans[s]->name,
                               c->chans[s]->rights & ACCESS_READ ? "R" : "-",
                               c->chans[s]->rights & ACCESS_WRITE ? "W" : "-");
    }
}

/* ---------------------------------------------------------------------------------------------------
 * Start, stop
 */
static const netloop_ops ca_ops = {
    .module = "ca", .what = "CA",
    .open = conn_open, .input = conn_input, .input_room = conn_input_room,
    .pending_input = conn_pending_input, .closing = conn_closing,
    .refill = conn_refill, .out_lock = conn_lock, .out_peek = conn_peek, .out_consume = conn_consume,
    .shutdown = conn_shutdown, .describe = conn_describe, .close = conn_close,
    .datagrams = serve_udp, .periodic = periodic, .report = build_report,
};

void ca_server_start(void *user)
{
    (void)user;
    if (srv.loop)
        return;
    uint16_t port = (uint16_t)ca_env_long("EPICS_CAS_SERVER_PORT", "EPICS_CA_SERVER_PORT", 5064);
    open_beacons();
    srv.next_beacon = time_monotonic();
    srv.beacon_interval = 0;
    srv.access_gen = access_generation();
    srv.next_rights_sweep = time_monotonic() + RIGHTS_SWEEP_PERIOD;
    netloop_config cfg = { .intf_list = ca_env_first("EPICS_CAS_INTF_ADDR_LIST", NULL), .tcp_port = port,
                           .udp_port = port, .max_clients = &ca_server_limits.max_clients,
                           .max_queue_bytes = &ca_server_limits.max_queue_bytes };
    srv.loop = netloop_start(&ca_ops, &cfg);
    if (!srv.loop) {
        close(srv.beacon_fd);
        srv.beacon_fd = -1;
    }
}

void ca_server_stop(void *user)
{
    (void)user;
    if (!srv.loop)
        return;
    netloop_stop(srv.loop);
    srv.loop = NULL;
    close(srv.beacon_fd);
    srv.beacon_fd = -1;
}

char *ca_server_report(int level)
{
    return srv.loop ? netloop_report(srv.loop, level) : NULL;
}
