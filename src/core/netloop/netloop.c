/* netloop.c -- the event loop of the CA and pvAccess server daemons (netloop.h): sockets, the loop thread,
 * accepting, reading, flushing, dropping connections, and the report request from the shell.
 *
 * Thread model: the loop thread owns the sockets and the connection list. Other threads touch a loop only
 * through `wake_pending` + the eventfd (netloop_wake) and `report` (its own lock, never held with another).
 */
#include "core/netloop/netloop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/base/base.h"
#include "core/ca/ca.h"
#include "core/shell/shell.h"

#define MAX_INTF 8
/* Bytes the kernel may hold not yet sent per connection (bytes in flight are not limited by it). The rest of the
 * output waits in the protocol's queue, where a slow client's next camera frame is chosen only when the kernel
 * can take it, instead of the kernel's send buffer (4 MB by default) holding a frame that is stale by the time
 * the client reads it. Enough to keep a fast link busy between two rounds of the loop. */
#define NOTSENT_LOWAT (256 * 1024)

struct netloop {
    /* Written before the thread starts; read-only afterwards. */
    const netloop_ops *ops;
    netloop_config cfg;
    pthread_t thread;
    int wake_fd;
    int tcp_fd[MAX_INTF], udp_fd[MAX_INTF], nintf;     /* nintf: sockets opened */
    uint16_t port;

    /* Loop thread only. */
    void **conns;
    int *fds;
    unsigned nconns, cap;
    double next_periodic;

    /* Any thread. */
    int stop;
    int wake_pending;

    struct {
        pthread_mutex_t lock;
        pthread_cond_t done;
        int requested, level;
        char *text;
    } report;
};

void netloop_printf(netloop_text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->text ? t->text + t->len : NULL, t->text ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0)
            return;
        if (t->text && (size_t)k < t->cap - t->len) {
            t->len += (size_t)k;
            return;
        }
        t->cap = (t->cap + (size_t)k + 1) * 2;
        t->text = xrealloc(t->text, t->cap);
        t->text[t->len] = 0;
    }
}

/* ---------------------------------------------------------------------------------------------------
 * Sockets
 */
void netloop_wake(netloop *l)
{
    if (__atomic_exchange_n(&l->wake_pending, 1, __ATOMIC_ACQ_REL) == 0) {
        uint64_t one = 1;
        ssize_t n = write(l->wake_fd, &one, sizeof one);
        (void)n;    /* a saturated counter means a wake-up is pending anyway */
    }
}

static int open_sockets(netloop *l)
{
    const char *module = l->ops->module;
    struct sockaddr_in intf[MAX_INTF];
    int nintf = l->cfg.intf_list ? ca_parse_addr_list(l->cfg.intf_list, 0, intf, MAX_INTF) : 0;
    if (nintf == 0) {
        intf[0] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
        nintf = 1;
    }
    l->port = l->cfg.tcp_port;
    int one = 1;
    for (int i = 0; i < nintf; i++) {
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &intf[i].sin_addr, ip, sizeof ip);
        int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        intf[i].sin_port = htons(l->port);
        if (bind(t, (struct sockaddr *)&intf[i], sizeof intf[i]) < 0 && i == 0) {
            log_warn(module, "TCP port %u on %s is busy (%s); using a free port", l->port, ip, strerror(errno));
            intf[i].sin_port = 0;
            if (bind(t, (struct sockaddr *)&intf[i], sizeof intf[i]) == 0) {
                struct sockaddr_in got;
                socklen_t len = sizeof got;
                getsockname(t, (struct sockaddr *)&got, &len);
                l->port = ntohs(got.sin_port);
            }
        }
        if (listen(t, 128) < 0) {
            log_error(module, "cannot listen on %s:%u: %s", ip, l->port, strerror(errno));
            close(t);
            return -1;
        }
        int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        setsockopt(u, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(u, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        struct sockaddr_in ua = intf[i];
        ua.sin_port = htons(l->cfg.udp_port);
        if (bind(u, (struct sockaddr *)&ua, sizeof ua) < 0) {
            log_error(module, "cannot bind UDP %s:%u for name resolution: %s", ip, l->cfg.udp_port,
                      strerror(errno));
            close(t);
            close(u);
            return -1;
        }
        l->tcp_fd[i] = t;
        l->udp_fd[i] = u;
        l->nintf = i + 1;
        log_info(module, "%s server listening on %s:%u (TCP), searches on UDP port %u", l->ops->what, ip, l->port,
                 l->cfg.udp_port);
    }
    return 0;
}

static void close_sockets(netloop *l, int opened)
{
    for (int i = 0; i < opened; i++) {
        close(l->tcp_fd[i]);
        close(l->udp_fd[i]);
    }
    if (l->wake_fd >= 0)
        close(l->wake_fd);
}

/* ---------------------------------------------------------------------------------------------------
 * Connections
 */
static void accept_conns(netloop *l, int lfd)
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
        if (l->nconns >= *l->cfg.max_clients) {
            log_warn(l->ops->module, "refusing client %s: %u clients connected (limit)", name, l->nconns);
            close(fd);
            continue;
        }
        int one = 1, lowat = NOTSENT_LOWAT;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
        if (l->nconns == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 64;
            l->conns = xrealloc(l->conns, l->cap * sizeof *l->conns);
            l->fds = xrealloc(l->fds, l->cap * sizeof *l->fds);
        }
        l->conns[l->nconns] = l->ops->open(l, name, ip, fd);
        l->fds[l->nconns++] = fd;
        log_debug(l->ops->module, "client %s connected", name);
    }
}

static void drop_conn(netloop *l, unsigned index, const char *why)
{
    void *c = l->conns[index];
    char desc[256];
    l->ops->describe(c, desc, sizeof desc);
    /* A client closing its connection is routine (every caget does it): only a connection we close is news. */
    int routine = !strcmp(why, "connection closed") || !strcmp(why, "server shutting down");
    log_msg(routine ? LOG_DEBUG : LOG_WARN, l->ops->module, "client %s disconnected: %s", desc, why);
    close(l->fds[index]);
    l->ops->close(c);
    l->nconns--;
    l->conns[index] = l->conns[l->nconns];
    l->fds[index] = l->fds[l->nconns];
}

/* [out_lock] The queued output as iov[*niov]; its length. */
static size_t peek(netloop *l, void *c, struct iovec iov[NETLOOP_MAX_IOV], int *niov)
{
    *niov = l->ops->out_peek(c, iov);
    size_t n = 0;
    for (int i = 0; i < *niov; i++)
        n += iov[i].iov_len;
    return n;
}

static size_t queued_bytes(netloop *l, void *c)
{
    pthread_mutex_t *m = l->ops->out_lock(c);
    pthread_mutex_lock(m);
    struct iovec iov[NETLOOP_MAX_IOV];
    int niov;
    size_t n = peek(l, c, iov, &niov);
    pthread_mutex_unlock(m);
    return n;
}

/* Sends what is queued (encoding pending updates while there is room) until the socket would block. */
static int flush_conn(netloop *l, void *c, int fd)
{
    for (;;) {
        if (queued_bytes(l, c) < *l->cfg.max_queue_bytes)
            l->ops->refill(c);
        pthread_mutex_t *m = l->ops->out_lock(c);
        pthread_mutex_lock(m);
        struct iovec iov[NETLOOP_MAX_IOV];
        int niov;
        size_t len = peek(l, c, iov, &niov);
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)niov };
        ssize_t n = len ? sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;
        if (n > 0)
            l->ops->out_consume(c, (size_t)n);
        pthread_mutex_unlock(m);
        if (len == 0)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
}

/* Reads what the socket has and executes it; -1 when the connection is gone. */
static int read_conn(netloop *l, void *c, int fd)
{
    uint8_t buf[65536];
    size_t budget = 16 * sizeof buf;        /* per round of the loop: a fast writer does not starve the others */
    while (budget > 0) {
        size_t room = sizeof buf;
        uint8_t *into = l->ops->input_room ? l->ops->input_room(c, &room) : buf;
        if (room > budget)
            room = budget;
        ssize_t n = recv(fd, into, room, MSG_DONTWAIT);
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        budget -= (size_t)n;
        if (l->ops->input(c, into, (size_t)n) < 0)
            return -1;
        /* Replies to a pipelined batch leave while the rest is read: the client works on them meanwhile
         * instead of waiting for the whole batch. */
        if (queued_bytes(l, c) >= sizeof buf && flush_conn(l, c, fd) < 0)
            return -1;
        if (queued_bytes(l, c) >= *l->cfg.max_queue_bytes)
            return 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------------
 * The loop
 */
static void serve_report(netloop *l)
{
    pthread_mutex_lock(&l->report.lock);
    int want = l->report.requested, level = l->report.level;
    pthread_mutex_unlock(&l->report.lock);
    if (!want)
        return;
    netloop_text t = { 0 };
    l->ops->report(l, &t, level, l->conns, l->nconns);
    netloop_printf(&t, "%s", "");      /* never NULL */
    pthread_mutex_lock(&l->report.lock);
    l->report.text = t.text;
    l->report.requested = 0;
    pthread_cond_broadcast(&l->report.done);
    pthread_mutex_unlock(&l->report.lock);
}

static void *loop_main(void *arg)
{
    netloop *l = arg;
    struct pollfd *pfd = NULL;
    size_t pfd_cap = 0;
    size_t max_queue;
    l->next_periodic = l->ops->periodic(l, time_monotonic(), l->conns, l->nconns);
    while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
        max_queue = *l->cfg.max_queue_bytes;
        size_t need = 1 + 2 * (size_t)l->nintf + l->nconns;
        if (need > pfd_cap) {
            pfd_cap = need * 2;
            pfd = xrealloc(pfd, pfd_cap * sizeof *pfd);
        }
        size_t n = 0;
        pfd[n++] = (struct pollfd){ .fd = l->wake_fd, .events = POLLIN };
        for (int i = 0; i < l->nintf; i++) {
            pfd[n++] = (struct pollfd){ .fd = l->tcp_fd[i], .events = POLLIN };
            pfd[n++] = (struct pollfd){ .fd = l->udp_fd[i], .events = POLLIN };
        }
        size_t first = n;
        for (unsigned i = 0; i < l->nconns; i++) {
            size_t q = queued_bytes(l, l->conns[i]);
            short ev = q < max_queue ? POLLIN : 0;
            if (q)
                ev |= POLLOUT;
            pfd[n++] = (struct pollfd){ .fd = l->fds[i], .events = ev };
        }
        double wait = l->next_periodic - time_monotonic();
        int timeout = wait <= 0 ? 0 : (int)(wait * 1000) + 1;
        if (poll(pfd, n, timeout) < 0 && errno != EINTR) {
            log_error(l->ops->module, "poll failed: %s", strerror(errno));
            break;
        }
        if (pfd[0].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(l->wake_fd, &v, sizeof v);
            (void)r;
        }
        __atomic_store_n(&l->wake_pending, 0, __ATOMIC_RELEASE);
        for (int i = 0; i < l->nintf; i++) {
            if (pfd[1 + 2 * i].revents & POLLIN)
                accept_conns(l, l->tcp_fd[i]);
            if (pfd[2 + 2 * i].revents & POLLIN)
                l->ops->datagrams(l, l->udp_fd[i]);
        }
        /* Connections accepted above are past the polled range; they are served from the next round (their
         * greeting makes them poll for POLLOUT). */
        double now = time_monotonic();
        for (size_t k = n; k-- > first;) {
            unsigned i = (unsigned)(k - first);
            void *c = l->conns[i];
            int fd = l->fds[i];
            const char *why = NULL;
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR) && read_conn(l, c, fd) < 0)
                why = l->ops->closing(c) ? "protocol error" : "connection closed";
            else if (l->ops->pending_input(c) && queued_bytes(l, c) < max_queue && l->ops->input(c, NULL, 0) < 0)
                why = "protocol error";
            if (flush_conn(l, c, fd) < 0 && !why)
                why = "send failed";
            if (!why && l->ops->expired && l->ops->expired(c, now))
                why = "silent for too long (inactivity timeout)";
            if (why)
                drop_conn(l, i, why);
        }
        l->next_periodic = l->ops->periodic(l, time_monotonic(), l->conns, l->nconns);
        serve_report(l);
    }
    /* Shutdown: the protocol's goodbyes, what is queued given to the kernel, then close. */
    while (l->nconns) {
        void *c = l->conns[l->nconns - 1];
        if (l->ops->shutdown)
            l->ops->shutdown(c);
        flush_conn(l, c, l->fds[l->nconns - 1]);
        drop_conn(l, l->nconns - 1, "server shutting down");
    }
    free(pfd);
    return NULL;
}

netloop *netloop_start(const netloop_ops *ops, const netloop_config *cfg)
{
    netloop *l = xcalloc(1, sizeof *l);
    l->ops = ops;
    l->cfg = *cfg;
    pthread_mutex_init(&l->report.lock, NULL);
    pthread_cond_init(&l->report.done, NULL);
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->wake_fd < 0 || open_sockets(l) < 0 || pthread_create(&l->thread, NULL, loop_main, l) != 0) {
        close_sockets(l, l->nintf);
        log_error(ops->module, "%s server not started", ops->what);
        free(l);
        return NULL;
    }
    return l;
}

void netloop_stop(netloop *l)
{
    __atomic_store_n(&l->stop, 1, __ATOMIC_RELEASE);
    netloop_wake(l);
    pthread_join(l->thread, NULL);
    close_sockets(l, l->nintf);
    free(l->conns);
    free(l->fds);
    free(l->report.text);
    pthread_mutex_destroy(&l->report.lock);
    pthread_cond_destroy(&l->report.done);
    log_info(l->ops->module, "%s server stopped", l->ops->what);
    free(l);
}

uint16_t netloop_tcp_port(const netloop *l)
{
    return l->port;
}

char *netloop_report(netloop *l, int level)
{
    pthread_mutex_lock(&l->report.lock);
    l->report.level = level;
    l->report.requested = 1;
    free(l->report.text);
    l->report.text = NULL;
    pthread_mutex_unlock(&l->report.lock);
    netloop_wake(l);
    pthread_mutex_lock(&l->report.lock);
    while (!l->report.text)
        pthread_cond_wait(&l->report.done, &l->report.lock);
    char *text = l->report.text;
    l->report.text = NULL;
    pthread_mutex_unlock(&l->report.lock);
    return text;
}

/* ---------------------------------------------------------------------------------------------------
 * Shell commands of the servers
 */
int netloop_report_cmd(int argc, char **argv, char *(*report)(int level), const char *not_running, char *err,
                       size_t errlen)
{
    long level = 0;
    if (argc > 1 && shell_arg_long(argv[1], "level", &level, err, errlen))
        return -1;
    char *text = report((int)level);
    fputs(text ? text : not_running, stdout);
    fflush(stdout);
    free(text);
    return 0;
}

int netloop_limits_cmd(char **argv, unsigned *clients, unsigned *channels, size_t *queued, char *err, size_t errlen)
{
    long v[3];
    const char *what[3] = { "max_clients", "max_channels", "max_queue_bytes" };
    for (int i = 0; i < 3; i++)
        if (shell_arg_long(argv[i + 1], what[i], &v[i], err, errlen))
            return -1;
        else if (v[i] <= 0)
            return error_set(err, errlen, "%s must be positive", what[i]);
    *clients = (unsigned)v[0];
    *channels = (unsigned)v[1];
    *queued = (size_t)v[2];
    return 0;
}
