/* server.c -- the pvAccess server daemon: sockets, the event loop thread, beacons, start/stop and the report
 * pvasr asks for. Same structure as the CA server (core/ca/server.c).
 *
 * Thread model
 *   - ONE event loop thread ("pva-loop") owns every socket and every connection: it polls the listening TCP
 *     sockets, the UDP search sockets, all connections and a wake-up eventfd; it accepts, reads and executes
 *     requests (conn.c), answers searches (udp.c), sends beacons, encodes pending monitor updates
 *     (monitor.c), flushes output queues and periodically re-evaluates access rights.
 *   - Monitor callbacks and blocking-put completions run on db threads under the db lock. They only mark
 *     monitors pending or queue a short reply under the connection's lock, and wake the loop through the
 *     eventfd; they never touch a socket.
 *   - The shell thread talks to the loop only through `report` (pvasr) and the start/stop hooks.
 * Locks, in order: db lock -> connection lock; report.lock is never held with another lock.
 */
#include "core/pva/pva.h"
#include "core/pva/pva_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/access/access.h"
#include "core/base/base.h"
#include "core/ca/ca.h"

#define MAX_INTF 8
#define MAX_BEACON_DST 16
#define RIGHTS_SWEEP_PERIOD 1.0
#define BEACON_FAST_PERIOD 15.0
#define BEACON_SLOW_PERIOD 180.0
#define BEACON_FAST_COUNT 10

/* Written by start while the loop is not running; read-only afterwards. */
pva_guid pva_server_guid;
uint16_t pva_server_port;

static struct {
    /* Written by start/stop while the loop is not running; read-only for the loop. */
    pthread_t thread;
    int running;
    int wake_fd;
    int tcp_fd[MAX_INTF], udp_fd[MAX_INTF], nintf;
    int beacon_fd;
    struct sockaddr_in beacon_dst[MAX_BEACON_DST];
    int nbeacon;
    uint16_t udp_port;

    /* Loop thread only. */
    pva_conn **conns;
    unsigned nconns, conns_cap;
    double next_beacon, next_rights_sweep;
    unsigned beacons_sent;
    unsigned long access_gen;

    /* Set by any thread, cleared by the loop. */
    int stop;
    int wake_pending;
} srv = { .wake_fd = -1, .beacon_fd = -1 };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int requested, level;
    char *text;
} report = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL };

/* ---------------------------------------------------------------------------------------------------
 * Sockets
 */
static void wake_loop(pva_conn *c)
{
    (void)c;
    if (__atomic_exchange_n(&srv.wake_pending, 1, __ATOMIC_ACQ_REL) == 0) {
        uint64_t one = 1;
        ssize_t n = write(srv.wake_fd, &one, sizeof one);
        (void)n;
    }
}

static void make_guid(void)
{
    struct timespec t = time_wall();
    uint32_t words[3] = { (uint32_t)t.tv_sec, (uint32_t)t.tv_nsec, (uint32_t)getpid() };
    memcpy(pva_server_guid.b, words, sizeof words);
}

void pva_server_wake(void)
{
    if (__atomic_load_n(&srv.wake_fd, __ATOMIC_ACQUIRE) >= 0)
        wake_loop(NULL);
}

static int open_sockets(void)
{
    struct sockaddr_in intf[MAX_INTF];
    const char *list = ca_env_first("EPICS_PVAS_INTF_ADDR_LIST", NULL);
    srv.nintf = list ? ca_parse_addr_list(list, 0, intf, MAX_INTF) : 0;
    if (srv.nintf == 0) {
        intf[0] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
        srv.nintf = 1;
    }
    pva_server_port = (uint16_t)ca_env_long("EPICS_PVAS_SERVER_PORT", "EPICS_PVA_SERVER_PORT", 5075);
    srv.udp_port = (uint16_t)ca_env_long("EPICS_PVAS_BROADCAST_PORT", "EPICS_PVA_BROADCAST_PORT", 5076);
    int one = 1;
    for (int i = 0; i < srv.nintf; i++) {
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &intf[i].sin_addr, ip, sizeof ip);
        int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        intf[i].sin_port = htons(pva_server_port);
        if (bind(t, (struct sockaddr *)&intf[i], sizeof intf[i]) < 0 && i == 0) {
            /* As pvxs: a busy port is not fatal, a free one is advertised in search replies instead. */
            log_warn("pva", "TCP port %u on %s is busy (%s); using a free port", pva_server_port, ip,
                     strerror(errno));
            intf[i].sin_port = 0;
            if (bind(t, (struct sockaddr *)&intf[i], sizeof intf[i]) == 0) {
                struct sockaddr_in got;
                socklen_t len = sizeof got;
                getsockname(t, (struct sockaddr *)&got, &len);
                pva_server_port = ntohs(got.sin_port);
            }
        }
        if (listen(t, 128) < 0) {
            log_error("pva", "cannot listen on %s:%u: %s", ip, pva_server_port, strerror(errno));
            close(t);
            return -1;
        }
        int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        setsockopt(u, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(u, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        struct sockaddr_in ua = intf[i];
        ua.sin_port = htons(srv.udp_port);
        if (bind(u, (struct sockaddr *)&ua, sizeof ua) < 0) {
            log_error("pva", "cannot bind UDP %s:%u for searches: %s", ip, srv.udp_port, strerror(errno));
            close(t);
            close(u);
            return -1;
        }
        srv.tcp_fd[i] = t;
        srv.udp_fd[i] = u;
        log_info("pva", "pvAccess server listening on %s:%u (TCP), searches on UDP port %u", ip,
                 pva_server_port, srv.udp_port);
    }
    /* Beacons go only to the listed addresses (no automatic broadcast list: loopback rules). */
    srv.nbeacon = ca_parse_addr_list(ca_env_first("EPICS_PVAS_BEACON_ADDR_LIST", "EPICS_PVA_ADDR_LIST"),
                                     srv.udp_port, srv.beacon_dst, MAX_BEACON_DST);
    srv.beacon_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* The wake-up eventfd lives as long as the process: structured PVs may post while the server stops. */
    if (srv.wake_fd < 0)
        srv.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return 0;
}

static void close_sockets(void)
{
    for (int i = 0; i < srv.nintf; i++) {
        close(srv.tcp_fd[i]);
        close(srv.udp_fd[i]);
    }
    srv.nintf = 0;
    if (srv.beacon_fd >= 0)
        close(srv.beacon_fd);
    srv.beacon_fd = -1;
}

/* ---------------------------------------------------------------------------------------------------
 * Connections
 */
static void accept_conns(int lfd)
{
    for (;;) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        char name[64], ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
        snprintf(name, sizeof name, "%s:%u", ip, ntohs(peer.sin_port));
        if (srv.nconns >= pva_server_limits.max_clients) {
            log_warn("pva", "refusing client %s: %u clients connected (limit)", name, srv.nconns);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        if (srv.nconns == srv.conns_cap) {
            srv.conns_cap = srv.conns_cap ? srv.conns_cap * 2 : 64;
            srv.conns = xrealloc(srv.conns, srv.conns_cap * sizeof *srv.conns);
        }
        srv.conns[srv.nconns++] = pva_conn_new(name, ip, fd, wake_loop);
        log_debug("pva", "client %s connected", name);
    }
}

static void drop_conn(unsigned index, const char *why)
{
    pva_conn *c = srv.conns[index];
    int routine = !strcmp(why, "connection closed") || !strcmp(why, "server shutting down");
    log_msg(routine ? LOG_DEBUG : LOG_WARN, "pva", "client %s (%s@%s) disconnected: %s", c->peer, c->user,
            c->host, why);
    close(c->fd);
    pva_conn_free(c);
    srv.conns[index] = srv.conns[--srv.nconns];
}

static size_t queued_bytes(pva_conn *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->out.len;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* Sends what is queued, encoding pending monitor updates while there is room, until the socket would block. */
static int flush_conn(pva_conn *c)
{
    for (;;) {
        if (queued_bytes(c) < pva_server_limits.max_queue_bytes)
            pva_conn_refill(c);
        pthread_mutex_lock(&c->lock);
        if (c->out.len == 0) {
            pthread_mutex_unlock(&c->lock);
            return 0;
        }
        ssize_t n = send(c->fd, c->out.data + c->out.head, c->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            pva_buf_consume(&c->out, (size_t)n);
        pthread_mutex_unlock(&c->lock);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
}

static int read_conn(pva_conn *c)
{
    uint8_t buf[65536];
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        if (pva_conn_input(c, buf, (size_t)n) < 0)
            return -1;
        if (queued_bytes(c) >= pva_server_limits.max_queue_bytes)
            return 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------------
 * UDP
 */
static void serve_udp(int fd)
{
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

static void send_beacons(double now)
{
    if (now < srv.next_beacon)
        return;
    uint8_t msg[128];
    size_t n = pva_beacon_encode(msg, &pva_server_guid, (uint8_t)srv.beacons_sent, pva_server_port);
    for (int i = 0; i < srv.nbeacon; i++)
        sendto(srv.beacon_fd, msg, n, MSG_DONTWAIT, (struct sockaddr *)&srv.beacon_dst[i],
               sizeof srv.beacon_dst[i]);
    srv.beacons_sent++;
    srv.next_beacon = now + (srv.beacons_sent < BEACON_FAST_COUNT ? BEACON_FAST_PERIOD : BEACON_SLOW_PERIOD);
}

/* ---------------------------------------------------------------------------------------------------
 * Report (pvasr)
 */
static void build_report(int level)
{
    size_t cap = 4096, len = 0;
    char *t = xmalloc(cap);
#define OUT(...) do { \
        int k_ = snprintf(t + len, cap - len, __VA_ARGS__); \
        if (k_ > 0 && (size_t)k_ >= cap - len) { cap = (cap + (size_t)k_) * 2; t = xrealloc(t, cap); \
            k_ = snprintf(t + len, cap - len, __VA_ARGS__); } \
        if (k_ > 0) len += (size_t)k_; } while (0)
    OUT("pvAccess server: TCP port %u, UDP port %u, %u client(s) (limit %u), %u channels/client max, "
        "%zu bytes queued/client max\n", pva_server_port, srv.udp_port, srv.nconns, pva_server_limits.max_clients,
        pva_server_limits.max_channels, pva_server_limits.max_queue_bytes);
    for (unsigned i = 0; i < srv.nconns && level >= 1; i++) {
        pva_conn *c = srv.conns[i];
        pthread_mutex_lock(&c->lock);
        size_t queued = c->out.len;
        uint64_t sent = c->updates_sent;
        pthread_mutex_unlock(&c->lock);
        OUT("  %s %s '%s'@%s: %u channel(s), %u operation(s), %zu bytes queued, %llu updates sent\n", c->peer,
            c->method[0] ? c->method : "-", c->user, c->host, c->nchans, c->nops, queued,
            (unsigned long long)sent);
        for (uint32_t s = 0; s < c->chan_cap && level >= 2; s++)
            if (c->chans[s])
                OUT("    sid %u cid %u %s rights %s%s\n", c->chans[s]->sid, c->chans[s]->cid, c->chans[s]->name,
                    c->chans[s]->rights & ACCESS_READ ? "R" : "-", c->chans[s]->rights & ACCESS_WRITE ? "W" : "-");
    }
#undef OUT
    pthread_mutex_lock(&report.lock);
    report.text = t;
    report.requested = 0;
    pthread_cond_broadcast(&report.done);
    pthread_mutex_unlock(&report.lock);
}

/* ---------------------------------------------------------------------------------------------------
 * The loop
 */
static void sweep_rights(double now)
{
    if (now < srv.next_rights_sweep && access_generation() == srv.access_gen)
        return;
    srv.access_gen = access_generation();
    srv.next_rights_sweep = now + RIGHTS_SWEEP_PERIOD;
    for (unsigned i = 0; i < srv.nconns; i++)
        pva_conn_refresh_rights(srv.conns[i]);
}

static void *loop_main(void *arg)
{
    (void)arg;
    struct pollfd *pfd = NULL;
    size_t pfd_cap = 0;
    srv.next_beacon = time_monotonic();
    while (!__atomic_load_n(&srv.stop, __ATOMIC_ACQUIRE)) {
        size_t need = 1 + 2 * (size_t)srv.nintf + srv.nconns;
        if (need > pfd_cap) {
            pfd_cap = need * 2;
            pfd = xrealloc(pfd, pfd_cap * sizeof *pfd);
        }
        size_t n = 0;
        pfd[n++] = (struct pollfd){ .fd = srv.wake_fd, .events = POLLIN };
        for (int i = 0; i < srv.nintf; i++) {
            pfd[n++] = (struct pollfd){ .fd = srv.tcp_fd[i], .events = POLLIN };
            pfd[n++] = (struct pollfd){ .fd = srv.udp_fd[i], .events = POLLIN };
        }
        size_t first = n;
        for (unsigned i = 0; i < srv.nconns; i++) {
            size_t q = queued_bytes(srv.conns[i]);
            short ev = q < pva_server_limits.max_queue_bytes ? POLLIN : 0;
            if (q)
                ev |= POLLOUT;
            pfd[n++] = (struct pollfd){ .fd = srv.conns[i]->fd, .events = ev };
        }
        double now = time_monotonic();
        double wait = srv.next_beacon - now;
        if (srv.next_rights_sweep - now < wait)
            wait = srv.next_rights_sweep - now;
        int timeout = wait <= 0 ? 0 : (int)(wait * 1000) + 1;
        if (poll(pfd, n, timeout) < 0 && errno != EINTR) {
            log_error("pva", "poll failed: %s", strerror(errno));
            break;
        }
        if (pfd[0].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(srv.wake_fd, &v, sizeof v);
            (void)r;
        }
        __atomic_store_n(&srv.wake_pending, 0, __ATOMIC_RELEASE);
        for (int i = 0; i < srv.nintf; i++) {
            if (pfd[1 + 2 * i].revents & POLLIN)
                accept_conns(srv.tcp_fd[i]);
            if (pfd[2 + 2 * i].revents & POLLIN)
                serve_udp(srv.udp_fd[i]);
        }
        for (size_t k = n; k-- > first;) {
            unsigned i = (unsigned)(k - first);
            pva_conn *c = srv.conns[i];
            const char *why = NULL;
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR) && read_conn(c) < 0)
                why = c->closing ? "protocol error" : "connection closed";
            else if (c->in.len && queued_bytes(c) < pva_server_limits.max_queue_bytes &&
                     pva_conn_input(c, NULL, 0) < 0)
                why = "protocol error";
            if (flush_conn(c) < 0 && !why)
                why = "send failed";
            if (why)
                drop_conn(i, why);
        }
        /* Connections accepted above are past the polled range: their greeting goes out next round (their
         * queue is not empty, so they are polled for POLLOUT). */
        now = time_monotonic();
        send_beacons(now);
        sweep_rights(now);
        pthread_mutex_lock(&report.lock);
        int want = report.requested, level = report.level;
        pthread_mutex_unlock(&report.lock);
        if (want)
            build_report(level);
    }
    while (srv.nconns) {
        flush_conn(srv.conns[srv.nconns - 1]);
        drop_conn(srv.nconns - 1, "server shutting down");
    }
    free(pfd);
    free(srv.conns);
    srv.conns = NULL;
    srv.conns_cap = 0;
    return NULL;
}

void pva_server_start(void *user)
{
    (void)user;
    if (srv.running)
        return;
    make_guid();
    if (open_sockets() < 0) {
        close_sockets();
        log_error("pva", "pvAccess server not started");
        return;
    }
    srv.stop = 0;
    srv.wake_pending = 0;
    srv.beacons_sent = 0;
    srv.access_gen = access_generation();
    srv.next_rights_sweep = time_monotonic() + RIGHTS_SWEEP_PERIOD;
    if (pthread_create(&srv.thread, NULL, loop_main, NULL) != 0) {
        close_sockets();
        log_error("pva", "cannot start the pvAccess server thread");
        return;
    }
    srv.running = 1;
}

void pva_server_stop(void *user)
{
    (void)user;
    if (!srv.running)
        return;
    __atomic_store_n(&srv.stop, 1, __ATOMIC_RELEASE);
    wake_loop(NULL);
    pthread_join(srv.thread, NULL);
    close_sockets();
    srv.running = 0;
    log_info("pva", "pvAccess server stopped");
}

char *pva_server_report(int level)
{
    if (!srv.running)
        return NULL;
    pthread_mutex_lock(&report.lock);
    report.level = level;
    report.requested = 1;
    free(report.text);
    report.text = NULL;
    pthread_mutex_unlock(&report.lock);
    wake_loop(NULL);
    pthread_mutex_lock(&report.lock);
    while (!report.text)
        pthread_cond_wait(&report.done, &report.lock);
    char *text = report.text;
    report.text = NULL;
    pthread_mutex_unlock(&report.lock);
    return text;
}
