/* test_web_http.c -- the web view's HTTP plumbing (src/live/web/http.c): requests arriving in pieces, with a
 * form body, pipelined, malformed or oversized; form numbers; and the per-browser output buffer that never
 * grows past its limit and never holds half a response, written to a real socket pair. */
#include "unit.h"
#include <sys/socket.h>
#include <unistd.h>

#include "live/web/web_internal.h"

static void request_in_pieces(void **state)
{
    (void)state;
    const char *text = "GET /frame.jpg?frame=12 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    web_request rq;
    for (size_t n = 0; n < strlen(text); n++) assert_int_equal(web_parse_request(text, n, &rq), 0);
    assert_int_equal(web_parse_request(text, strlen(text), &rq), (long)strlen(text));
    assert_string_equal(rq.method, "GET");
    assert_string_equal(rq.path, "/frame.jpg");
    assert_string_equal(rq.query, "frame=12");
    assert_string_equal(rq.body, "");
}

static void post_body_and_pipelining(void **state)
{
    (void)state;
    const char *text = "POST /move HTTP/1.1\r\ncontent-length: 13\r\n\r\nx=1.5&y=-2e1"
                       "GET / HTTP/1.1\r\n\r\n";
    web_request rq;
    /* The body is 13 bytes but only 12 are before the next request's "G": it must be taken as body. */
    long used = web_parse_request(text, strlen(text), &rq);
    assert_int_equal(used, (long)(strstr(text, "x=") - text) + 13);
    assert_string_equal(rq.body, "x=1.5&y=-2e1G");
    const char *second = "GET / HTTP/1.1\r\n\r\n";
    assert_int_equal(web_parse_request(second, strlen(second), &rq), (long)strlen(second));
    assert_string_equal(rq.path, "/");
    /* Incomplete body: wait for more. */
    const char *partial = "POST /move HTTP/1.1\r\nContent-Length: 9\r\n\r\nx=1";
    assert_int_equal(web_parse_request(partial, strlen(partial), &rq), 0);
}

static void malformed_and_oversized(void **state)
{
    (void)state;
    web_request rq;
    const char *bad[] = {"GARBAGE\r\n\r\n", "GET noslash HTTP/1.1\r\n\r\n", "GET / FTP/1.0\r\n\r\n",
                         "POST /move HTTP/1.1\r\nContent-Length: 100000\r\n\r\n",
                         "POST /move HTTP/1.1\r\nContent-Length: -5\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (web_parse_request(bad[i], strlen(bad[i]), &rq) != -1) fail_msg("accepted: %s", bad[i]);
    static char huge[WEB_MAX_REQUEST + 10];
    memset(huge, 'a', sizeof huge);
    memcpy(huge, "GET /", 5);
    assert_int_equal(web_parse_request(huge, sizeof huge, &rq), -1);
}

/* A POST is the page's own only when Host is this server and neither Origin nor Sec-Fetch-Site names another site. */
static void same_origin_rule(void **state)
{
    (void)state;
    struct { const char *headers; int ok; } cases[] = {
        {"Host: 127.0.0.1:8080\r\n", 1},                                     /* a script: no Origin */
        {"Host: 127.0.0.1:8080\r\nOrigin: http://127.0.0.1:8080\r\nSec-Fetch-Site: same-origin\r\n", 1},
        {"Host: localhost:8080\r\norigin:   http://localhost:8080  \r\n", 1},
        {"Host: 127.0.0.1:8080\r\nOrigin: http://evil.example\r\n", 0},
        {"Host: 127.0.0.1:8080\r\nOrigin: http://127.0.0.1:9999\r\n", 0},
        {"Host: evil.example:8080\r\nOrigin: http://evil.example:8080\r\n", 0},   /* DNS rebinding */
        {"Host: 127.0.0.1:8080\r\nSec-Fetch-Site: cross-site\r\n", 0},
        {"", 0},                                                              /* no Host at all */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512], why[256] = "";
        snprintf(text, sizeof text, "POST /move HTTP/1.1\r\n%s\r\n", cases[i].headers);
        web_request rq;
        assert_int_equal(web_parse_request(text, strlen(text), &rq), (long)strlen(text));
        int ok = web_same_origin(&rq, why, sizeof why) == 0;
        if (ok != cases[i].ok) fail_msg("case %zu (%s): %s", i, cases[i].headers, ok ? "accepted" : why);
    }
}

static void form_numbers(void **state)
{
    (void)state;
    double v = 0;
    assert_int_equal(web_form_double("x=1.5&y=-2e1", "y", &v), 0);
    assert_true(v == -20.0);
    assert_int_equal(web_form_double("xx=3&x=4", "x", &v), 0);
    assert_true(v == 4.0);
    assert_int_equal(web_form_double("x=1", "y", &v), -1);
    assert_int_equal(web_form_double("x=nan", "x", &v), -1);
    assert_int_equal(web_form_double("x=inf", "x", &v), -1);
    assert_int_equal(web_form_double("x=12abc", "x", &v), -1);
    assert_int_equal(web_form_double("x=", "x", &v), -1);
}

static void output_limit_and_partial_writes(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    int small = 4096;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    web_outbuf out = {.limit = 100000};
    static char body[60000];
    memset(body, 'j', sizeof body);
    assert_int_equal(web_out_response(&out, 200, "image/jpeg", body, sizeof body), 0);
    size_t queued = out.len;
    /* A second response would pass the limit: refused whole, nothing of it queued. */
    assert_int_equal(web_out_response(&out, 200, "image/jpeg", body, sizeof body), -1);
    assert_int_equal(out.len, queued);
    /* The peer reads nothing: flushing writes what fits and does not block. */
    assert_int_equal(web_out_flush(&out, fds[0]), 0);
    assert_true(out.sent > 0 && out.sent < out.len);
    /* Once the peer has read everything, the room is back. */
    static char sink[200000];
    size_t got = 0;
    while (out.sent < out.len) {
        ssize_t n = read(fds[1], sink + got, sizeof sink - got);
        assert_true(n > 0);
        got += (size_t)n;
        assert_int_equal(web_out_flush(&out, fds[0]), 0);
    }
    while (got < queued) {
        ssize_t n = read(fds[1], sink + got, sizeof sink - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_int_equal(got, queued);
    assert_non_null(strstr(sink, "Content-Length: 60000\r\n"));
    assert_int_equal(web_out_response(&out, 200, "image/jpeg", body, sizeof body), 0);
    /* A vanished peer is an error, not a signal. */
    close(fds[1]);
    assert_int_equal(web_out_flush(&out, fds[0]), -1);
    web_out_free(&out);
    close(fds[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_in_pieces),
        cmocka_unit_test(post_body_and_pipelining),
        cmocka_unit_test(malformed_and_oversized),
        cmocka_unit_test(same_origin_rule),
        cmocka_unit_test(form_numbers),
        cmocka_unit_test(output_limit_and_partial_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
