/* port.c -- a TCP "port": one connection to host:port owned by its own I/O thread, which connects and
 * reconnects by itself (running the protocol file's @init after each connect) and executes callers' protocol
 * requests one at a time, in order. A request runs once or fails with a status; it is never retried.
 *
 * Threads and locks: port->lock guards the request queue, `connected` and `stop`. The socket fd is
 * touched only by the I/O thread. Callers block in stream_port_call on port->cond. */
#include "drivers/stream/stream.h"

#include "core/base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNECT_TIMEOUT   1.0
#define RETRY_MIN_SECONDS 0.1
#define RETRY_MAX_SECONDS 1.0

typedef struct request {
    const char *protocol;
    const char *const *args;
    int nargs;
    stream_values *values;
    char *err;
    size_t errlen;
    int status;
    int done;
    struct request *next;
} request;

struct stream_port {
    char name[64];
    char host[128];
    char service[16];
    const stream_file *file;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    request *head, *tail;           /* queue, guarded by lock */
    int connected;                  /* guarded by lock */
    int stop;                       /* guarded by lock */
    int fd;                         /* I/O thread only */
};

/* ------------------------------------------------------------------------------------------------------
 * Socket I/O for stream_run (I/O thread only)
 */
static int sock_write(void *ctx, const char *buf, size_t len)
{
    stream_port *port = ctx;
    while (len > 0) {
        if (port->fd < 0)
            return -1;
        ssize_t n = send(port->fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static long sock_read(void *ctx, char *buf, size_t cap, double timeout)
{
    stream_port *port = ctx;
    if (port->fd < 0)
        return -1;
    struct pollfd pfd = {.fd = port->fd, .events = POLLIN};
    int r;
    do
        r = poll(&pfd, 1, (int)(timeout * 1000.0 + 0.5));
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return 0;
    if (r < 0)
        return -1;
    ssize_t n = recv(port->fd, buf, cap, 0);
    return n > 0 ? (long)n : -1;
}

static void sock_close(void *ctx)
{
    stream_port *port = ctx;
    if (port->fd >= 0)
        close(port->fd);
    port->fd = -1;
}

static int sock_connect(stream_port *port, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(port->host, port->service, &hints, &res);
    if (gai) {
        snprintf(err, errlen, "cannot resolve %s: %s", port->host, gai_strerror(gai));
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    int rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc < 0 && errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int soerr = ETIMEDOUT;
        socklen_t len = sizeof soerr;
        if (poll(&pfd, 1, (int)(CONNECT_TIMEOUT * 1000)) == 1)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        rc = soerr ? -1 : 0;
        errno = soerr;
    }
    if (rc < 0) {
        snprintf(err, errlen, "connect to %s:%s: %s", port->host, port->service, strerror(errno));
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    port->fd = fd;
    return 0;
}

/* ------------------------------------------------------------------------------------------------------
 * The I/O thread
 */
static void finish(stream_port *port, request *req, int status)   /* [port->lock held] */
{
    req->status = status;
    req->done = 1;
    pthread_cond_broadcast(&port->cond);
}

static void fail_queued(stream_port *port, int status)   /* [port->lock held] */
{
    while (port->head) {
        request *req = port->head;
        port->head = req->next;
        snprintf(req->err, req->errlen, "port %s: %s", port->name, stream_strerror(status));
        finish(port, req, status);
    }
    port->tail = NULL;
}

static void wait_seconds(stream_port *port, double seconds)   /* [port->lock held] */
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until = time_add(until, seconds);
    pthread_cond_timedwait(&port->cond, &port->lock, &until);
}

static int try_connect(stream_port *port)
{
    char err[256];
    if (sock_connect(port, err, sizeof err) == 0 && stream_run_init(port->file, &(stream_io){
            .write = sock_write, .read = sock_read, .disconnect = sock_close, .ctx = port}, err, sizeof err) == 0)
        return 0;
    sock_close(port);
    log_debug("stream", "port %s: %s", port->name, err);
    return -1;
}

static void *io_thread(void *arg)
{
    stream_port *port = arg;
    stream_io io = {.write = sock_write, .read = sock_read, .disconnect = sock_close, .ctx = port};
    double retry = RETRY_MIN_SECONDS;
    int warned = 0;
    pthread_mutex_lock(&port->lock);
    while (!port->stop) {
        if (port->fd < 0) {
            pthread_mutex_unlock(&port->lock);
            int ok = try_connect(port) == 0;
            pthread_mutex_lock(&port->lock);
            if (!ok) {
                if (!warned)
                    log_warn("stream", "port %s: cannot connect to %s:%s; retrying", port->name, port->host,
                             port->service);
                warned = 1;
                fail_queued(port, STREAM_ERR_DISCONNECTED);
                wait_seconds(port, retry);
                retry = retry * 2 > RETRY_MAX_SECONDS ? RETRY_MAX_SECONDS : retry * 2;
                continue;
            }
            log_info("stream", "port %s: connected to %s:%s", port->name, port->host, port->service);
            port->connected = 1;
            warned = 0;
            retry = RETRY_MIN_SECONDS;
        }
        if (!port->head) {
            wait_seconds(port, 0.5);
            continue;
        }
        request *req = port->head;
        port->head = req->next;
        if (!port->head)
            port->tail = NULL;
        pthread_mutex_unlock(&port->lock);
        int rc = stream_run(port->file, req->protocol, req->args, req->nargs, req->values, &io, req->err,
                            req->errlen);
        int lost = rc == STREAM_ERR_DISCONNECTED || rc == STREAM_ERR_REPLY_TIMEOUT ||
                   rc == STREAM_ERR_READ_TIMEOUT || port->fd < 0;
        if (lost) {
            /* After a timeout a late reply could be read as the answer to the next request: start afresh. */
            log_warn("stream", "port %s: %s; reconnecting", port->name, req->err);
            sock_close(port);
        }
        pthread_mutex_lock(&port->lock);
        if (lost)
            port->connected = 0;
        finish(port, req, rc);
    }
    fail_queued(port, STREAM_ERR_CLOSED);
    pthread_mutex_unlock(&port->lock);
    sock_close(port);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------------
 * Public API
 */
stream_port *stream_port_create(const char *name, const char *host_port, const stream_file *file,
                                char *err, size_t errlen)
{
    const char *colon = strrchr(host_port, ':');
    char *end = NULL;
    long number = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == host_port || !end || *end || number <= 0 || number > 65535 ||
        (size_t)(colon - host_port) >= sizeof ((stream_port *)0)->host) {
        snprintf(err, errlen, "'%s' is not host:port", host_port);
        return NULL;
    }
    stream_port *port = xcalloc(1, sizeof *port);
    str_copy(port->name, name, sizeof port->name);
    memcpy(port->host, host_port, (size_t)(colon - host_port));
    snprintf(port->service, sizeof port->service, "%ld", number);
    port->file = file;
    port->fd = -1;
    pthread_mutex_init(&port->lock, NULL);
    pthread_cond_init(&port->cond, NULL);
    if (pthread_create(&port->thread, NULL, io_thread, port)) {
        snprintf(err, errlen, "cannot start the I/O thread of port %s", name);
        pthread_mutex_destroy(&port->lock);
        pthread_cond_destroy(&port->cond);
        free(port);
        return NULL;
    }
    return port;
}

void stream_port_destroy(stream_port *port)
{
    if (!port)
        return;
    pthread_mutex_lock(&port->lock);
    port->stop = 1;
    pthread_cond_broadcast(&port->cond);
    pthread_mutex_unlock(&port->lock);
    pthread_join(port->thread, NULL);
    pthread_mutex_destroy(&port->lock);
    pthread_cond_destroy(&port->cond);
    free(port);
}

int stream_port_call(stream_port *port, const char *protocol, const char *const *args, int nargs,
                     stream_values *values, char *err, size_t errlen)
{
    request req = {.protocol = protocol, .args = args, .nargs = nargs, .values = values, .err = err,
                   .errlen = errlen};
    pthread_mutex_lock(&port->lock);
    if (port->stop || !port->connected) {
        int status = port->stop ? STREAM_ERR_CLOSED : STREAM_ERR_DISCONNECTED;
        pthread_mutex_unlock(&port->lock);
        snprintf(err, errlen, "port %s: %s", port->name, stream_strerror(status));
        return status;
    }
    if (port->tail)
        port->tail->next = &req;
    else
        port->head = &req;
    port->tail = &req;
    pthread_cond_broadcast(&port->cond);
    while (!req.done)
        pthread_cond_wait(&port->cond, &port->lock);
    pthread_mutex_unlock(&port->lock);
    return req.status;
}

int stream_port_connected(stream_port *port)
{
    pthread_mutex_lock(&port->lock);
    int c = port->connected;
    pthread_mutex_unlock(&port->lock);
    return c;
}
