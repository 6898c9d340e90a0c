/* server.c -- the CA server daemon: sockets, the event loop thread, beacons, start/stop and the report casr
 * asks for (config.c reads the environment, commands.c holds the shell commands).
 *
 * Thread model
 *   - ONE event loop thread ("ca-loop") owns every socket and every client: it polls the listening TCP
 *     sockets, the UDP search sockets, all circuits and a wake-up eventfd; it accepts, reads and executes
 *     requests (circuit.c), answers searches (udp.c), sends beacons, flushes output queues and periodically
 *     re-evaluates access rights.
 *   - Monitor callbacks and put-notify completions run on db threads under the db lock. They only encode
 *     into a client's bounded output queue under that client's lock (monitor.c) and wake the loop through
 *     the eventfd; they never touch a socket, so a slow client never holds up the db lock.
 *   - The shell thread talks to the loop only through `report` (casr) and the start/stop hooks.
 * Locks, in order: db lock -> client lock; report.lock is never held with another lock.
 */
#include "core/ca/ca.h"
#include "core/ca/ca_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/access/access.h"
#include "core/base/base.h"

#define MAX_INTF 8
#define MAX_BEACON_DST 16
#define RIGHTS_SWEEP_PERIOD 1.0

static struct {
    /* Written by start/stop (shell or db thread) while the loop is not running; read-only for the loop. */
    pthread_t thread;
    int running;
    int wake_fd;
    int tcp_fd[MAX_INTF], udp_fd[MAX_INTF], nintf;
    int beacon_fd;
    struct sockaddr_in beacon_dst[MAX_BEACON_DST];
    int nbeacon;
    struct in_addr ignore[MAX_BEACON_DST];
    int nignore;
    uint16_t port;
    double beacon_period;

    /* Loop thread only. */
    ca_client **clients;
    unsigned nclients, clients_cap;
    double beacon_interval, next_beacon, next_rights_sweep;
    uint32_t beacon_counter;
    unsigned long access_gen;

    /* Set by any thread, cleared by the loop. */
    int stop;
    int wake_pending;
} srv = { .wake_fd = -1, .beacon_fd = -1 };

/* casr: the shell asks, the loop writes the text. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int requested, level;
    char *text;
} report = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL };

/* ---------------------------------------------------------------------------------------------------
 * Sockets
 */
static void wake_loop(ca_client *c)
{
    (void)c;
    if (__atomic_exchange_n(&srv.wake_pending, 1, __ATOMIC_ACQ_REL) == 0) {
        uint64_t one = 1;
        ssize_t n = write(srv.wake_fd, &one, sizeof one);
        (void)n;    /* the counter saturating means a wake-up is pending anyway */
    }
}

static int open_sockets(void)
{
    struct sockaddr_in intf[MAX_INTF];
    const char *list = ca_env_first("EPICS_CAS_INTF_ADDR_LIST", NULL);
    srv.nintf = list ? ca_parse_addr_list(list, 0, intf, MAX_INTF) : 0;
    if (srv.nintf == 0) {
        intf[0] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
        srv.nintf = 1;
    }
    uint16_t want = (uint16_t)ca_env_long("EPICS_CAS_SERVER_PORT", "EPICS_CA_SERVER_PORT", 5064);
    srv.port = want;
    int one = 1;
    for (int i = 0; i < srv.nintf; i++) {
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &intf[i].sin_addr, ip, sizeof ip);
        int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        intf[i].sin_port = htons(srv.port);
        if (bind(t, (struct sockaddr *)&intf[i], sizeof intf[i]) < 0 && i == 0) {
            log_warn("ca", "TCP port %u on %s is busy (%s); using a free port", srv.port, ip, strerror(errno));
            intf[i].sin_port = 0;
            if (bind(t, (struct sockaddr *)&intf[i], sizeof intf[i]) == 0) {
                struct sockaddr_in got;
                socklen_t len = sizeof got;
                getsockname(t, (struct sockaddr *)&got, &len);
                srv.port = ntohs(got.sin_port);
            }
        }
        if (listen(t, 128) < 0) {
            log_error("ca", "cannot listen on %s:%u: %s", ip, srv.port, strerror(errno));
            close(t);
            return -1;
        }
        int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        setsockopt(u, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(u, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        struct sockaddr_in ua = intf[i];
        ua.sin_port = htons(want);
        if (bind(u, (struct sockaddr *)&ua, sizeof ua) < 0) {
            log_error("ca", "cannot bind UDP %s:%u for name resolution: %s", ip, want, strerror(errno));
            close(t);
            close(u);
            return -1;
        }
        srv.tcp_fd[i] = t;
        srv.udp_fd[i] = u;
        log_info("ca", "CA server listening on %s:%u (TCP), searches on UDP port %u", ip, srv.port, want);
    }

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
                int listed = intf[0].sin_addr.s_addr == htonl(INADDR_ANY);
                for (int i = 0; i < srv.nintf && !listed; i++)
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
    if (srv.wake_fd >= 0)
        close(srv.wake_fd);
    srv.beacon_fd = srv.wake_fd = -1;
}

/* ---------------------------------------------------------------------------------------------------
 * Clients
 */
static void accept_clients(int lfd)
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
        if (srv.nclients >= ca_server_limits.max_clients) {
            log_warn("ca", "refusing client %s: %u clients connected (limit)", name, srv.nclients);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        if (srv.nclients == srv.clients_cap) {
            srv.clients_cap = srv.clients_cap ? srv.clients_cap * 2 : 64;
            srv.clients = xrealloc(srv.clients, srv.clients_cap * sizeof *srv.clients);
        }
        srv.clients[srv.nclients++] = ca_client_new(name, fd, wake_loop);
        log_debug("ca", "client %s connected", name);
    }
}

static void drop_client(unsigned index, const char *why)
{
    ca_client *c = srv.clients[index];
    /* A client closing its circuit is routine (every caget does it): only a circuit we close is news. */
    int routine = !strcmp(why, "connection closed") || !strcmp(why, "server shutting down");
    log_msg(routine ? LOG_DEBUG : LOG_WARN, "ca", "client %s (%s@%s) disconnected: %s", c->peer, c->user, c->host, why);
    close(c->fd);
    ca_client_free(c);
    srv.clients[index] = srv.clients[--srv.nclients];
}

/* Sends what is queued (refilling from coalesced monitors) until the socket would block. */
static int flush_client(ca_client *c)
{
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        if (c->out.len < ca_server_limits.max_queue_bytes)
            ca_client_refill_locked(c);
        if (c->out.len == 0)
            break;
        ssize_t n = send(c->fd, c->out.data + c->out.head, c->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            ca_bytes_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        rc = -1;
        break;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static size_t queued_bytes(ca_client *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->out.len;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* Reads what the socket has and executes it; -1 when the circuit is gone. */
static int read_client(ca_client *c)
{
    uint8_t buf[65536];
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        if (ca_client_input(c, buf, (size_t)n) < 0)
            return -1;
        if (queued_bytes(c) >= ca_server_limits.max_queue_bytes)
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
        int nd = ca_search_reply(dgram, (size_t)n, srv.port, reply, sizeof reply, lens, 8);
        size_t off = 0;
        for (int i = 0; i < nd; i++) {
            sendto(fd, reply + off, lens[i], MSG_DONTWAIT, (struct sockaddr *)&from, flen);
            off += lens[i];
        }
    }
}

static void send_beacons(double now)
{
    if (now < srv.next_beacon)
        return;
    uint8_t msg[CA_HDR_SIZE];
    size_t n = ca_beacon_encode(msg, srv.port, srv.beacon_counter++);
    for (int i = 0; i < srv.nbeacon; i++)
        sendto(srv.beacon_fd, msg, n, MSG_DONTWAIT, (struct sockaddr *)&srv.beacon_dst[i],
               sizeof srv.beacon_dst[i]);
    srv.beacon_interval = ca_beacon_next_interval(srv.beacon_interval, srv.beacon_period);
    srv.next_beacon = now + srv.beacon_interval;
}

/* ---------------------------------------------------------------------------------------------------
 * Report (casr)
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
    OUT("Channel Access server: TCP port %u, %u client(s) (limit %u), %u channels/client max, "
        "%zu bytes queued/client max\n", srv.port, srv.nclients, ca_server_limits.max_clients,
        ca_server_limits.max_channels, ca_server_limits.max_queue_bytes);
    for (unsigned i = 0; i < srv.nclients && level >= 1; i++) {
        ca_client *c = srv.clients[i];
        pthread_mutex_lock(&c->lock);
        size_t queued = c->out.len;
        uint64_t sent = c->updates_sent, coalesced = c->updates_coalesced;
        int off = c->events_off;
        pthread_mutex_unlock(&c->lock);
        OUT("  %s %s@%s minor %u prio %u: %u channel(s), %zu bytes queued, %llu updates sent, "
            "%llu coalesced%s\n", c->peer, c->user, c->host, c->minor, c->priority, c->nchans, queued,
            (unsigned long long)sent, (unsigned long long)coalesced, off ? ", events off" : "");
        for (uint32_t s = 0; s < c->chan_cap && level >= 2; s++)
            if (c->chans[s])
                OUT("    sid %u cid %u %s rights %s%s\n", s, c->chans[s]->cid, c->chans[s]->name,
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
    db_lock();
    access_refresh_inputs();
    db_unlock();
    srv.access_gen = access_generation();
    srv.next_rights_sweep = now + RIGHTS_SWEEP_PERIOD;
    for (unsigned i = 0; i < srv.nclients; i++)
        ca_client_refresh_rights(srv.clients[i]);
}

static void *loop_main(void *arg)
{
    (void)arg;
    struct pollfd *pfd = NULL;
    size_t pfd_cap = 0;
    srv.next_beacon = time_monotonic();
    srv.beacon_interval = 0;
    while (!__atomic_load_n(&srv.stop, __ATOMIC_ACQUIRE)) {
        size_t need = 1 + 2 * (size_t)srv.nintf + srv.nclients;
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
        size_t first_client = n;
        for (unsigned i = 0; i < srv.nclients; i++) {
            size_t q = queued_bytes(srv.clients[i]);
            short ev = q < ca_server_limits.max_queue_bytes ? POLLIN : 0;
            if (q)
                ev |= POLLOUT;
            pfd[n++] = (struct pollfd){ .fd = srv.clients[i]->fd, .events = ev };
        }
        double now = time_monotonic();
        double wait = srv.next_beacon - now;
        if (srv.next_rights_sweep - now < wait)
            wait = srv.next_rights_sweep - now;
        int timeout = wait <= 0 ? 0 : (int)(wait * 1000) + 1;
        if (poll(pfd, n, timeout) < 0 && errno != EINTR) {
            log_error("ca", "poll failed: %s", strerror(errno));
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
                accept_clients(srv.tcp_fd[i]);
            if (pfd[2 + 2 * i].revents & POLLIN)
                serve_udp(srv.udp_fd[i]);
        }
        /* Clients accepted above are past the polled range; they are served from the next round. */
        for (size_t k = n; k-- > first_client;) {
            unsigned i = (unsigned)(k - first_client);
            ca_client *c = srv.clients[i];
            const char *why = NULL;
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR) && read_client(c) < 0)
                why = c->closing ? "protocol error" : "connection closed";
            else if (c->in.len && queued_bytes(c) < ca_server_limits.max_queue_bytes &&
                     ca_client_input(c, NULL, 0) < 0)
                why = "protocol error";
            if (flush_client(c) < 0 && !why)
                why = "send failed";
            if (why)
                drop_client(i, why);
        }
        now = time_monotonic();
        send_beacons(now);
        sweep_rights(now);
        pthread_mutex_lock(&report.lock);
        int want = report.requested, level = report.level;
        pthread_mutex_unlock(&report.lock);
        if (want)
            build_report(level);
    }
    /* Shutdown: tell every client its channels are gone, give the kernel what is queued, close. */
    while (srv.nclients) {
        ca_client *c = srv.clients[srv.nclients - 1];
        ca_client_disconnect_all(c);
        flush_client(c);
        drop_client(srv.nclients - 1, "server shutting down");
    }
    free(pfd);
    free(srv.clients);
    srv.clients = NULL;
    srv.clients_cap = 0;
    return NULL;
}

void ca_server_start(void *user)
{
    (void)user;
    if (srv.running)
        return;
    if (open_sockets() < 0) {
        close_sockets();
        log_error("ca", "Channel Access server not started");
        return;
    }
    srv.stop = 0;
    srv.access_gen = access_generation();
    srv.next_rights_sweep = time_monotonic() + RIGHTS_SWEEP_PERIOD;
    if (pthread_create(&srv.thread, NULL, loop_main, NULL) != 0) {
        close_sockets();
        log_error("ca", "cannot start the CA server thread");
        return;
    }
    srv.running = 1;
}

void ca_server_stop(void *user)
{
    (void)user;
    if (!srv.running)
        return;
    __atomic_store_n(&srv.stop, 1, __ATOMIC_RELEASE);
    wake_loop(NULL);
    pthread_join(srv.thread, NULL);
    close_sockets();
    srv.running = 0;
    log_info("ca", "Channel Access server stopped");
}

char *ca_server_report(int level)
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
