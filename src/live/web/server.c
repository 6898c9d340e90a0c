/* server.c -- the web view's HTTP server: st.cmd commands, start/stop with the IOC, and the server thread's
 * poll() loop over the listening socket, the wake eventfd and every browser connection.
 *
 * Routes: GET / (the page), GET /frame.jpg (newest JPEG), GET /events (server-sent events: "state" with the
 * parts of the state that changed, "frame" when a new JPEG is ready), POST /move (x, y in um, absolute unless
 * relative=1; answered when the motors are done, with their verdict: 200, or 4xx and the reason), POST /stop
 * (every stage motor, no enable needed). POSTs must come from the page itself (web_same_origin).
 *
 * Connections that send nothing complete for WEB_IDLE_S seconds (idle keep-alive, half-sent headers) are
 * closed; a request waiting for its move is not idle.
 *
 * Many browsers: each connection has its own bounded output buffer and is written without blocking. An event
 * that does not fit is dropped for that browser only (a stream that missed state gets the whole state again
 * once it drains); a browser that takes nothing for WEB_STALL_S seconds is disconnected. The IOC never waits.
 *
 * Ownership: the single server (there is one web view per IOC) is configured by st.cmd commands before
 * iocInit; afterwards only the server thread touches its clients and sockets.
 */
#include "live/web/web.h"
#include "live/web/web_internal.h"

#include "core/base/base.h"
#include "drivers/camera/camera.h"
#include "core/db/db.h"
#include "core/shell/shell.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define WEB_MAX_CLIENTS 64
#define WEB_OUT_LIMIT (4u << 20)   /* per browser: a few JPEGs and events */
#define WEB_STALL_S 10.0
#define WEB_IDLE_S 5.0

typedef struct web_client {
    int fd;
    char in[WEB_MAX_REQUEST];
    size_t inlen;
    web_outbuf out;
    int events;        /* this connection is an event stream */
    int needs_state;   /* missed a state event: send the whole state when there is room */
    int closing;       /* close once the output is written */
    int awaiting_move; /* its POST /move is answered when the move ends */
    double last_progress;
    double last_request;   /* accepted, or its last complete request */
} web_client;

/* The web view's move in flight: written by the move's completion (any thread, db lock held), read by the
 * server thread, guarded by `lock`. */
typedef struct web_move {
    pthread_mutex_t lock;
    int finished, ok;
    char message[256];
} web_move;

typedef struct web_server {
    char address[128], camera_port[64], page_dir[1024], prefix[DB_NAME_SIZE];
    int listen_fd, wake_fd;
    pthread_t thread;
    atomic_int stop;
    int running;
    frame_consumer *frames;        /* the camera's frames, taken by the live thread */
    web_live *live;
    web_state *state;
    web_client *clients[WEB_MAX_CLIENTS];
    int nclients, nwatchers;
    cJSON *last_state;
    uint64_t last_frame;
    web_move move;
    web_client *move_client;   /* [server thread] the client whose POST /move is in flight, if still connected */
    char move_target[128];
} web_server;

static web_server *server;

/* ---- publishing the server's own status in db/web.db's records --------------------------------------- */

static void put_status(const char *suffix, const char *text)
{
    char name[DB_LINK_SIZE];
    db_addr addr;
    snprintf(name, sizeof name, "%s%s", server->prefix, suffix);
    if (db_name_to_addr(name, &addr) != DB_OK || db_put_text(&addr, text) != DB_OK)
        log_warn("web", "cannot write %s (is web.db loaded with this prefix?)", name);
}

static void count_watchers(void)
{
    int n = 0;
    for (int i = 0; i < server->nclients; i++) n += server->clients[i]->events;
    if (n == server->nwatchers) return;
    server->nwatchers = n;
    web_live_set_watchers(server->live, n);
    char text[16];
    snprintf(text, sizeof text, "%d", n);
    put_status("Clients", text);
}

/* ---- sending ------------------------------------------------------------------------------------------- */

static int send_event(web_client *c, const char *name, const char *json)
{
    return web_out_printf(&c->out, "event: %s\ndata: %s\n\n", name, json);
}

static void send_full_state(web_client *c)
{
    if (!server->last_state) return;
    char *text = cJSON_PrintUnformatted(server->last_state);
    c->needs_state = send_event(c, "state", text) < 0;
    free(text);
}

/* Sends every stream the top-level keys of the state that changed since the last call. */
static void broadcast_state(void)
{
    web_geometry view;
    int have_frame = web_live_geometry(server->live, &view) == 0;
    cJSON *now = web_state_json(server->state, have_frame ? &view : NULL), *delta = cJSON_CreateObject();
    for (cJSON *item = now->child; item; item = item->next) {
        cJSON *before = server->last_state ? cJSON_GetObjectItemCaseSensitive(server->last_state, item->string) : NULL;
        if (!before || !cJSON_Compare(before, item, 1))
            cJSON_AddItemToObject(delta, item->string, cJSON_Duplicate(item, 1));
    }
    cJSON_Delete(server->last_state);
    server->last_state = now;
    if (delta->child) {
        char *text = cJSON_PrintUnformatted(delta);
        for (int i = 0; i < server->nclients; i++) {
            web_client *c = server->clients[i];
            if (c->events && !c->needs_state) c->needs_state = send_event(c, "state", text) < 0;
        }
        free(text);
    }
    cJSON_Delete(delta);
}

static void broadcast_frame(void)
{
    char text[512];
    uint64_t id;
    if (web_live_describe(server->live, text, sizeof text, &id) < 0 || id == server->last_frame) return;
    server->last_frame = id;
    for (int i = 0; i < server->nclients; i++)
        if (server->clients[i]->events) send_event(server->clients[i], "frame", text);   /* dropped if full */
}

/* ---- requests ------------------------------------------------------------------------------------------ */

/* A response that does not fit the client's output buffer: it asked for more than it reads. */
static void respond(web_client *c, int status, const char *type, const void *body, size_t len)
{
    if (web_out_response(&c->out, status, type, body, len) == 0) return;
    if (!c->closing) log_warn("web", "a browser asked for more than it reads: disconnected after what it has");
    c->closing = 1;
}

static void respond_text(web_client *c, int status, const char *type, const char *text)
{
    respond(c, status, type, text, strlen(text));
}

static void serve_page(web_client *c)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/index.html", server->page_dir);
    char err[1200];
    size_t size;
    char *page = file_read_all(path, WEB_OUT_LIMIT - 1, &size, err, sizeof err);
    if (!page) {
        log_error("web", "%s", err);
        respond_text(c, 503, "text/plain", "the page is missing on the server\n");
        return;
    }
    respond(c, 200, "text/html; charset=utf-8", page, size);
    free(page);
}

static void serve_frame(web_client *c)
{
    size_t size;
    unsigned char *jpeg = web_live_copy_jpeg(server->live, &size);
    if (!jpeg) {
        respond_text(c, 503, "text/plain", "no frame yet (is the camera acquiring?)\n");
        return;
    }
    respond(c, 200, "image/jpeg", jpeg, size);
    free(jpeg);
}

static void start_events(web_client *c)
{
    web_out_printf(&c->out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
                            "Connection: keep-alive\r\n\r\nretry: 1000\n\n");
    c->events = 1;
    send_full_state(c);
    char text[512];
    uint64_t id;
    if (web_live_describe(server->live, text, sizeof text, &id) == 0) send_event(c, "frame", text);
    count_watchers();
}

static void respond_verdict(web_client *c, int status, const char *message)
{
    char json[1024];
    cJSON *reply = cJSON_CreateObject();
    cJSON_AddBoolToObject(reply, "ok", status == 200);
    cJSON_AddStringToObject(reply, "message", message);
    cJSON_PrintPreallocated(reply, json, sizeof json, 0);
    cJSON_Delete(reply);
    respond_text(c, status, "application/json", json);
}

/* [db locked, any thread] The web view's move ended: hand the verdict to the server thread. */
static void move_done(void *user, int ok, const char *message)
{
    web_server *srv = user;
    pthread_mutex_lock(&srv->move.lock);
    srv->move.finished = 1;
    srv->move.ok = ok;
    str_copy(srv->move.message, message, sizeof srv->move.message);
    pthread_mutex_unlock(&srv->move.lock);
    uint64_t one = 1;
    if (write(srv->wake_fd, &one, sizeof one) < 0) log_debug("web", "wake: counter full");
}

/* Server thread: answers the POST /move whose move ended. */
static void answer_move(void)
{
    pthread_mutex_lock(&server->move.lock);
    int finished = server->move.finished, ok = server->move.ok;
    char message[256];
    str_copy(message, server->move.message, sizeof message);
    server->move.finished = 0;
    pthread_mutex_unlock(&server->move.lock);
    if (!finished) return;
    char text[600];
    if (ok) snprintf(text, sizeof text, "at %s", server->move_target);
    else snprintf(text, sizeof text, "the move to %s failed: %s", server->move_target, message);
    if (!ok) log_warn("web", "%s", text);
    if (server->move_client) {
        server->move_client->awaiting_move = 0;
        server->move_client->last_request = time_monotonic();
        respond_verdict(server->move_client, ok ? 200 : 409, text);
    }
    server->move_client = NULL;
}

/* A POST that is not the page's own is refused (403). */
static int refuse_cross_origin(web_client *c, const web_request *rq)
{
    char why[300];
    if (web_same_origin(rq, why, sizeof why) == 0) return 0;
    log_warn("web", "POST %s refused: %s", rq->path, why);
    respond_verdict(c, 403, why);
    return 1;
}

static void serve_move(web_client *c, const web_request *rq)
{
    if (refuse_cross_origin(c, rq)) return;
    const char *form = rq->body[0] ? rq->body : rq->query;
    double x, y, relative = 0;
    char msg[256];
    if (web_form_double(form, "x", &x) < 0 || web_form_double(form, "y", &y) < 0) {
        respond_verdict(c, 400, "x and y (um) are required numbers");
        return;
    }
    if (strstr(form, "relative=") && (web_form_double(form, "relative", &relative) < 0 || (relative != 0 && relative != 1))) {
        respond_verdict(c, 400, "relative must be 0 or 1");
        return;
    }
    int status = web_state_move(server->state, x, y, relative != 0, move_done, server, msg, sizeof msg);
    if (status) {
        log_warn("web", "move refused: %s", msg);
        respond_verdict(c, status, msg);
        return;
    }
    str_copy(server->move_target, msg + strlen("moving to "), sizeof server->move_target);
    server->move_client = c;
    c->awaiting_move = 1;
    answer_move();   /* the motors may have answered at once */
}

static void serve_stop(web_client *c, const web_request *rq)
{
    if (refuse_cross_origin(c, rq)) return;
    char msg[300];
    int status = web_state_stop_motors(server->state, msg, sizeof msg);
    respond_verdict(c, status ? status : 200, msg);
}

static void handle_request(web_client *c, const web_request *rq)
{
    int get = !strcmp(rq->method, "GET"), post = !strcmp(rq->method, "POST");
    if (get && (!strcmp(rq->path, "/") || !strcmp(rq->path, "/index.html"))) serve_page(c);
    else if (get && !strcmp(rq->path, "/frame.jpg")) serve_frame(c);
    else if (get && !strcmp(rq->path, "/events")) start_events(c);
    else if (post && !strcmp(rq->path, "/move")) serve_move(c, rq);
    else if (post && !strcmp(rq->path, "/stop")) serve_stop(c, rq);
    else if (!get && !post) respond_text(c, 405, "text/plain", "only GET and POST\n");
    else respond_text(c, 404, "text/plain", "not found\n");
}

static void read_requests(web_client *c)
{
    ssize_t n = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        c->closing = 2;   /* peer gone: nothing more to write */
        return;
    }
    if (n < 0) return;
    c->inlen += (size_t)n;
    while (!c->events && !c->closing && !c->awaiting_move) {   /* an event stream takes no further requests */
        web_request rq;
        long used = web_parse_request(c->in, c->inlen, &rq);
        if (used == 0) break;
        if (used < 0) {
            respond_text(c, 400, "text/plain", "malformed or oversized request\n");
            c->closing = 1;
            break;
        }
        c->last_request = time_monotonic();
        handle_request(c, &rq);
        memmove(c->in, c->in + used, c->inlen - (size_t)used);
        c->inlen -= (size_t)used;
    }
    if (c->events) c->inlen = 0;
}

/* ---- connections --------------------------------------------------------------------------------------- */

static void accept_clients(void)
{
    for (;;) {
        int fd = accept4(server->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (server->nclients == WEB_MAX_CLIENTS) {
            log_warn("web", "%d browsers connected already: one more refused", WEB_MAX_CLIENTS);
            close(fd);
            continue;
        }
        web_client *c = xcalloc(1, sizeof *c);
        c->fd = fd;
        c->out.limit = WEB_OUT_LIMIT;
        c->last_progress = c->last_request = time_monotonic();
        server->clients[server->nclients++] = c;
    }
}

static void drop_client(int i)
{
    web_client *c = server->clients[i];
    if (server->move_client == c) server->move_client = NULL;   /* its move goes on; nobody to answer */
    close(c->fd);
    web_out_free(&c->out);
    free(c);
    server->clients[i] = server->clients[--server->nclients];
}

static void service_clients(const struct pollfd *pfd)
{
    double now = time_monotonic();
    for (int i = server->nclients - 1; i >= 0; i--) {
        web_client *c = server->clients[i];
        if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) read_requests(c);
        size_t pending = c->out.len - c->out.sent;
        if (c->closing != 2 && web_out_flush(&c->out, c->fd) < 0) c->closing = 2;
        if (c->out.len - c->out.sent < pending || c->out.len == c->out.sent) c->last_progress = now;
        if (c->needs_state && c->out.len == c->out.sent) send_full_state(c);
        int stalled = now - c->last_progress > WEB_STALL_S;
        if (stalled) log_warn("web", "a browser took nothing for %.0f s: disconnected", WEB_STALL_S);
        int idle = !c->events && !c->awaiting_move && c->out.sent == c->out.len && now - c->last_request > WEB_IDLE_S;
        if (idle && c->inlen) log_info("web", "a connection sent half a request and nothing more for %.0f s: closed", WEB_IDLE_S);
        if (c->closing == 2 || stalled || idle || (c->closing && c->out.sent == c->out.len)) drop_client(i);
    }
    count_watchers();
}

static void *server_thread(void *arg)
{
    struct pollfd pfd[WEB_MAX_CLIENTS + 2];
    while (!atomic_load(&server->stop)) {
        int n = server->nclients;
        for (int i = 0; i < n; i++) {
            web_client *c = server->clients[i];
            pfd[i] = (struct pollfd){c->fd, POLLIN | (c->out.sent < c->out.len ? POLLOUT : 0), 0};
        }
        pfd[n] = (struct pollfd){server->wake_fd, POLLIN, 0};
        pfd[n + 1] = (struct pollfd){server->listen_fd, POLLIN, 0};
        if (poll(pfd, (nfds_t)n + 2, 1000) < 0 && errno != EINTR) {
            log_error("web", "poll: %s", strerror(errno));
            break;
        }
        if (pfd[n].revents & POLLIN) {
            uint64_t count;
            if (read(server->wake_fd, &count, sizeof count) < 0) count = 0;
        }
        answer_move();
        if (web_state_take_changed(server->state)) broadcast_state();
        broadcast_frame();
        service_clients(pfd);
        if (pfd[n + 1].revents & POLLIN) accept_clients();
    }
    return NULL;
}

/* ---- lifecycle ----------------------------------------------------------------------------------------- */

static int open_listener(const char *address, char *bound, size_t boundlen)
{
    char host[128];
    const char *colon = strrchr(address, ':');
    if (!colon || (size_t)(colon - address) >= sizeof host) return -1;
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = '\0';
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 32) < 0) {
        freeaddrinfo(ai);
        if (fd >= 0) close(fd);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
    snprintf(bound, boundlen, "%s:%d", ip, ntohs(sa.sin_port));
    return fd;
}

static void web_start(void *user)
{
    if (!server) return;
    char bound[160], text[200];
    server->listen_fd = open_listener(server->address, bound, sizeof bound);
    if (server->listen_fd < 0) {
        log_error("web", "cannot listen on %s: %s (the web view is off)", server->address, strerror(errno));
        put_status("URL", "off: cannot listen");
        return;
    }
    server->live = web_live_start(server->frames, server->wake_fd);
    if (!server->live) {
        log_error("web", "cannot start the JPEG thread (the web view is off)");
        close(server->listen_fd);
        return;
    }
    web_state_start(server->state);
    if (pthread_create(&server->thread, NULL, server_thread, NULL) != 0) {
        log_error("web", "cannot start the server thread");
        web_live_stop(server->live);
        close(server->listen_fd);
        return;
    }
    server->running = 1;
    snprintf(text, sizeof text, "%s", strrchr(bound, ':') + 1);
    put_status("Port", text);
    snprintf(text, sizeof text, "http://%s/", bound);
    put_status("URL", text);
    log_info("web", "web live view at %s", text);
}

static void web_stop(void *user)
{
    if (!server) return;
    if (server->running) {
        atomic_store(&server->stop, 1);
        uint64_t one = 1;
        if (write(server->wake_fd, &one, sizeof one) < 0) log_debug("web", "wake on stop failed");
        pthread_join(server->thread, NULL);
        while (server->nclients) drop_client(server->nclients - 1);
        web_live_stop(server->live);
        close(server->listen_fd);
        server->running = 0;
    }
    web_state_unsubscribe(server->state);   /* records still exist in db_shutdown's first hooks */
}

/* After pending put-notifies have failed: no move can complete any more, so the server can go. */
static void web_exit(void *user)
{
    if (!server) return;
    web_state_free(server->state);
    cJSON_Delete(server->last_state);
    pthread_mutex_destroy(&server->move.lock);
    close(server->wake_fd);
    free(server);
    server = NULL;
}

/* ---- st.cmd commands ----------------------------------------------------------------------------------- */

static int configure_cmd(int argc, char **argv, char *err, size_t errlen)
{
    if (server) return error_set(err, errlen, "the web server is configured already");
    if (db_is_running()) return error_set(err, errlen, "webServerConfigure belongs before iocInit");
    camera *cam = camera_find(argv[2]);
    if (!cam) return error_set(err, errlen, "no camera port %s (cameraConfigure first)", argv[2]);
    if (!strchr(argv[1], ':')) return error_set(err, errlen, "address \"%s\" is not host:port", argv[1]);
    if (strlen(argv[1]) >= sizeof server->address || strlen(argv[3]) >= sizeof server->page_dir ||
        strlen(argv[4]) >= sizeof server->prefix)
        return error_set(err, errlen, "argument too long");
    frame_consumer *frames = frame_ring_add_consumer(camera_ring(cam), "web", FRAMES_NEWEST);
    if (!frames) return error_set(err, errlen, "camera %s is acquiring already", argv[2]);
    int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) return error_set(err, errlen, "eventfd: %s", strerror(errno));
    server = xcalloc(1, sizeof *server);
    server->frames = frames;
    str_copy(server->address, argv[1], sizeof server->address);
    str_copy(server->camera_port, argv[2], sizeof server->camera_port);
    str_copy(server->page_dir, argv[3], sizeof server->page_dir);
    str_copy(server->prefix, argv[4], sizeof server->prefix);
    server->wake_fd = wake_fd;
    server->listen_fd = -1;
    server->state = web_state_create(wake_fd);
    pthread_mutex_init(&server->move.lock, NULL);
    return 0;
}

/* webServerStage, webServerBeam, webServerMoveEnable, webServerParticles, webServerShow: name channels before
 * iocInit. */
static int channels_cmd(int argc, char **argv, char *err, size_t errlen)
{
    if (!server) return error_set(err, errlen, "webServerConfigure first");
    if (db_is_running()) return error_set(err, errlen, "%s belongs before iocInit", argv[0]);
    if (!strcmp(argv[0], "webServerStage") && argc != 3 && argc != 5)
        return error_set(err, errlen, "give both piezos or none");
    if (!strcmp(argv[0], "webServerStage"))
        web_state_set_stage(server->state, argv[1], argv[2], argc == 5 ? argv[3] : NULL, argc == 5 ? argv[4] : NULL);
    else if (!strcmp(argv[0], "webServerBeam")) web_state_set_beam(server->state, argv[1], argv[2]);
    else if (!strcmp(argv[0], "webServerMoveEnable")) web_state_set_enable(server->state, argv[1]);
    else if (!strcmp(argv[0], "webServerParticles")) web_state_set_particles(server->state, argv[1], argv[2]);
    else web_state_add_show(server->state, argv[1], argv[2]);
    return 0;
}

void web_register(void)
{
    shell_register("webServerConfigure", "webServerConfigure(ADDRESS, CAMERA_PORT, PAGE_DIR, PV_PREFIX)", 4, 4,
                   configure_cmd);
    shell_register("webServerStage", "webServerStage(X_MOTOR, Y_MOTOR [, X_PIEZO, Y_PIEZO])", 2, 4, channels_cmd);
    shell_register("webServerBeam", "webServerBeam(X_CHANNEL, Y_CHANNEL)", 2, 2, channels_cmd);
    shell_register("webServerMoveEnable", "webServerMoveEnable(CHANNEL)", 1, 1, channels_cmd);
    shell_register("webServerParticles", "webServerParticles(X_ARRAY, Y_ARRAY)", 2, 2, channels_cmd);
    shell_register("webServerShow", "webServerShow(LABEL, CHANNEL)", 2, 2, channels_cmd);
    db_at_init(web_start, NULL);
    db_at_shutdown(web_stop, NULL);
    db_at_exit(web_exit, NULL);
}
