/* http.c -- the HTTP/1.1 subset the web view needs: parsing one request (GET or POST with a small form body
 * and the headers a POST is checked by), the same-origin rule for POSTs, and per-client output buffers with a
 * hard size limit, written without blocking. */
#include "live/web/web_internal.h"

#include "core/base/base.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

static const char *find_header_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++)
        if (!memcmp(buf + i, "\r\n\r\n", 4)) return buf + i + 4;
    return NULL;
}

/* Copies the value of header `name` (case-insensitive, blanks trimmed) into out; "" when absent. */
static void header_value(const char *headers, const char *end, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    out[0] = '\0';
    for (const char *p = headers; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) break;
        if ((size_t)(eol - p) > n && p[n] == ':' && !strncasecmp(p, name, n)) {
            const char *v = p + n + 1, *e = eol;
            while (v < e && (*v == ' ' || *v == '\t')) v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) e--;
            size_t len = (size_t)(e - v) < outlen - 1 ? (size_t)(e - v) : outlen - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return;
        }
        p = eol + 1;
    }
}

long web_parse_request(const char *buf, size_t len, web_request *rq)
{
    const char *body = find_header_end(buf, len < WEB_MAX_REQUEST ? len : WEB_MAX_REQUEST);
    if (!body) return len >= WEB_MAX_REQUEST ? -1 : 0;
    char length[32];
    header_value(buf, body, "Content-Length", length, sizeof length);
    char *end;
    long body_len = length[0] ? strtol(length, &end, 10) : 0;
    if (body_len < 0 || body_len >= (long)sizeof rq->body || (length[0] && *end)) return -1;
    size_t total = (size_t)(body - buf) + (size_t)body_len;
    if (total > len) return total > WEB_MAX_REQUEST ? -1 : 0;

    /* The request line, as a string of its own: buf is not NUL-terminated. */
    char line[1024], target[sizeof rq->path + sizeof rq->query], version[16];
    const char *eol = memchr(buf, '\r', (size_t)(body - buf));
    if ((size_t)(eol - buf) >= sizeof line) return -1;
    memcpy(line, buf, (size_t)(eol - buf));
    line[eol - buf] = '\0';
    if (sscanf(line, "%7s %767s %15s", rq->method, target, version) != 3 || target[0] != '/' ||
        (strcmp(version, "HTTP/1.1") && strcmp(version, "HTTP/1.0")))
        return -1;
    char *q = strchr(target, '?');
    if (q) *q++ = '\0';
    if (strlen(target) >= sizeof rq->path || (q && strlen(q) >= sizeof rq->query)) return -1;
    str_copy(rq->path, target, sizeof rq->path);
    str_copy(rq->query, q ? q : "", sizeof rq->query);
    memcpy(rq->body, body, (size_t)body_len);
    rq->body[body_len] = '\0';
    header_value(buf, body, "Host", rq->host, sizeof rq->host);
    header_value(buf, body, "Origin", rq->origin, sizeof rq->origin);
    header_value(buf, body, "Sec-Fetch-Site", rq->fetch_site, sizeof rq->fetch_site);
    return (long)total;
}

/* Host without its port ("127.0.0.1:8080" -> "127.0.0.1"; "[::1]:80" -> "::1"). */
static void host_name(const char *host, char *out, size_t outlen)
{
    const char *start = host, *end;
    if (*host == '[') start = host + 1, end = strchr(start, ']');
    else end = strrchr(host, ':');
    if (!end) end = host + strlen(host);
    size_t len = (size_t)(end - start) < outlen - 1 ? (size_t)(end - start) : outlen - 1;
    memcpy(out, start, len);
    out[len] = '\0';
}

static int host_is_ours(const char *host)
{
    char name[128], me[128] = "";
    struct in_addr v4;
    struct in6_addr v6;
    host_name(host, name, sizeof name);
    if (inet_pton(AF_INET, name, &v4) == 1 || inet_pton(AF_INET6, name, &v6) == 1) return 1;
    if (!strcasecmp(name, "localhost")) return 1;
    gethostname(me, sizeof me - 1);
    size_t n = strlen(me);
    return n > 0 && !strncasecmp(name, me, n) && (name[n] == '\0' || name[n] == '.');
}

int web_same_origin(const web_request *rq, char *why, size_t whylen)
{
    if (!rq->host[0]) return error_set(why, whylen, "a Host header is required");
    if (!host_is_ours(rq->host))
        return error_set(why, whylen, "Host \"%s\" is not this server (an IP address, localhost or its name)", rq->host);
    if (rq->fetch_site[0] && strcmp(rq->fetch_site, "same-origin") && strcmp(rq->fetch_site, "none"))
        return error_set(why, whylen, "cross-site request (Sec-Fetch-Site: %s)", rq->fetch_site);
    if (rq->origin[0]) {
        const char *scheme = "http://";
        if (strncmp(rq->origin, scheme, strlen(scheme)) || strcasecmp(rq->origin + strlen(scheme), rq->host))
            return error_set(why, whylen, "cross-origin request from %s", rq->origin);
    }
    return 0;
}

int web_form_double(const char *form, const char *name, double *out)
{
    size_t n = strlen(name);
    for (const char *p = form; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, name, n) || p[n] != '=') continue;
        char *end;
        errno = 0;
        double v = strtod(p + n + 1, &end);
        if (end == p + n + 1 || (*end && *end != '&') || errno || !isfinite(v)) return -1;
        *out = v;
        return 0;
    }
    return -1;
}

int web_out_append(web_outbuf *out, const void *data, size_t len)
{
    if (out->sent > 0) {   /* reuse the space already written out */
        memmove(out->data, out->data + out->sent, out->len - out->sent);
        out->len -= out->sent;
        out->sent = 0;
    }
    if (out->len + len > out->limit) return -1;
    out->data = xrealloc(out->data, out->len + len);
    memcpy(out->data + out->len, data, len);
    out->len += len;
    return 0;
}

int web_out_printf(web_outbuf *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    int rc = web_out_append(out, text, (size_t)n);
    free(text);
    return rc;
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 408: return "Request Timeout";
    default: return "Service Unavailable";
    }
}

int web_out_response(web_outbuf *out, int status, const char *content_type, const void *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n\r\n",
                     status, status_text(status), content_type, len);
    if (n < 0 || (size_t)n >= sizeof head) return -1;
    if (out->len - out->sent + (size_t)n + len > out->limit) return -1;   /* never half a response */
    web_out_append(out, head, (size_t)n);
    return web_out_append(out, body, len);
}

int web_out_flush(web_outbuf *out, int fd)
{
    while (out->sent < out->len) {
        ssize_t n = send(fd, out->data + out->sent, out->len - out->sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            out->sent += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n < 0 && errno == EINTR) continue;
        return -1;
    }
    return 0;
}

void web_out_free(web_outbuf *out)
{
    free(out->data);
    out->data = NULL;
    out->len = out->sent = 0;
}
