/* test_ca_circuit.c -- the CA circuit state machine driven without sockets against a real record database:
 * handshake, channel creation and failure, reads, writes, put-notify, subscriptions with coalescing under a
 * small queue limit, flow control, limits, malformed input, and the regression inputs kept from fuzzing
 * (tests/fuzz/corpus_regressions/). */
#include "unit.h"
#include <dirent.h>

#include "core/access/access.h"
#include "core/base/base.h"
#include "core/ca/ca_internal.h"
#include "core/db/db.h"

typedef struct msg {
    ca_hdr h;
    uint8_t payload[512];
} msg;

/* Takes everything queued on the client and decodes up to max messages. */
static int drain(ca_client *c, msg *out, int max)
{
    int n = 0;
    ca_client_refill(c);
    pthread_mutex_lock(&c->lock);
    size_t off = c->out.head, end = c->out.head + c->out.len;
    while (off < end) {
        ca_hdr h;
        int hs = ca_hdr_decode(c->out.data + off, end - off, 1, &h);
        assert_true(hs > 0);
        assert_true(off + (size_t)hs + h.payload <= end);
        if (n < max) {
            out[n].h = h;
            memcpy(out[n].payload, c->out.data + off + hs, h.payload < 512 ? h.payload : 512);
        }
        n++;
        off += (size_t)hs + h.payload;
    }
    ca_bytes_consume(&c->out, c->out.len);
    pthread_mutex_unlock(&c->lock);
    return n;
}

static void send_msg(ca_client *c, uint16_t cmd, uint16_t dtype, uint32_t count, uint32_t p1, uint32_t p2,
                     const void *payload, size_t len, int expect_rc)
{
    ca_bytes b = { 0 };
    ca_hdr h = { .cmd = cmd, .dtype = dtype, .count = count, .p1 = p1, .p2 = p2 };
    ca_bytes_message(&b, &h, payload, len);
    assert_int_equal(ca_client_input(c, b.data + b.head, b.len), expect_rc);
    ca_bytes_free(&b);
}

static ca_client *new_client(void)
{
    ca_client *c = ca_client_new("test:1", -1, NULL);
    msg m[2];
    assert_int_equal(drain(c, m, 2), 1);
    assert_int_equal(m[0].h.cmd, CA_PROTO_VERSION);
    assert_int_equal(m[0].h.count, CA_MINOR_VERSION);
    send_msg(c, CA_PROTO_VERSION, 0, 13, 0, 0, NULL, 0, 0);
    send_msg(c, CA_PROTO_CLIENT_NAME, 0, 0, 0, 0, "alice", 6, 0);
    send_msg(c, CA_PROTO_HOST_NAME, 0, 0, 0, 0, "ws1", 4, 0);
    assert_int_equal(drain(c, m, 2), 0);
    return c;
}

/* Creates a channel and returns its SID. */
static uint32_t create(ca_client *c, const char *name, uint32_t cid)
{
    send_msg(c, CA_PROTO_CREATE_CHAN, 0, 0, cid, 13, name, strlen(name) + 1, 0);
    msg m[2];
    assert_int_equal(drain(c, m, 2), 2);
    assert_int_equal(m[0].h.cmd, CA_PROTO_ACCESS_RIGHTS);
    assert_int_equal(m[0].h.p1, cid);
    assert_int_equal(m[1].h.cmd, CA_PROTO_CREATE_CHAN);
    assert_int_equal(m[1].h.p1, cid);
    return m[1].h.p2;
}

static double be_double(const uint8_t *p)
{
    uint64_t u = (uint64_t)ca_get32(p) << 32 | ca_get32(p + 4);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static void put_double(ca_client *c, uint32_t sid, double v)
{
    uint8_t b[8];
    uint64_t u;
    memcpy(&u, &v, 8);
    ca_put32(b, (uint32_t)(u >> 32));
    ca_put32(b + 4, (uint32_t)u);
    send_msg(c, CA_PROTO_WRITE, DBR_DOUBLE, 1, sid, 0, b, 8, 0);
}

static void handshake_create_read_write(void **state)
{
    (void)state;
    ca_client *c = new_client();
    uint32_t sid = create(c, "F:ao", 42);
    msg m[8];

    send_msg(c, CA_PROTO_CREATE_CHAN, 0, 0, 43, 13, "F:none", 7, 0);
    assert_int_equal(drain(c, m, 8), 1);
    assert_int_equal(m[0].h.cmd, CA_PROTO_CREATE_CH_FAIL);
    assert_int_equal(m[0].h.p1, 43);

    put_double(c, sid, 2.5);
    assert_int_equal(drain(c, m, 8), 0);            /* WRITE: no reply on success */
    send_msg(c, CA_PROTO_READ_NOTIFY, DBR_DOUBLE, 1, sid, 7, NULL, 0, 0);
    assert_int_equal(drain(c, m, 8), 1);
    assert_int_equal(m[0].h.cmd, CA_PROTO_READ_NOTIFY);
    assert_int_equal(m[0].h.p1, ECA_NORMAL);
    assert_int_equal(m[0].h.p2, 7);
    assert_true(be_double(m[0].payload) == 2.5);

    /* a request split into single bytes gives the same result */
    ca_bytes b = { 0 };
    ca_hdr h = { .cmd = CA_PROTO_READ_NOTIFY, .dtype = DBR_DOUBLE, .count = 1, .p1 = sid, .p2 = 8 };
    ca_bytes_message(&b, &h, NULL, 0);
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(ca_client_input(c, b.data + b.head + i, 1), 0);
    ca_bytes_free(&b);
    assert_int_equal(drain(c, m, 8), 1);
    assert_int_equal(m[0].h.p2, 8);

    send_msg(c, CA_PROTO_CLEAR_CHANNEL, 0, 0, sid, 42, NULL, 0, 0);
    assert_int_equal(drain(c, m, 8), 1);
    assert_int_equal(m[0].h.cmd, CA_PROTO_CLEAR_CHANNEL);
    send_msg(c, CA_PROTO_READ_NOTIFY, DBR_DOUBLE, 1, sid, 9, NULL, 0, 0);
    assert_int_equal(drain(c, m, 8), 1);
    assert_int_equal(m[0].h.cmd, CA_PROTO_ERROR);
    assert_int_equal(m[0].h.p2, ECA_BADCHID);
    ca_client_free(c);
}

static void put_notify_completes(void **state)
{
    (void)state;
    ca_client *c = new_client();
    uint32_t sid = create(c, "F:ao", 1);
    uint8_t b[40] = "7.25";
    send_msg(c, CA_PROTO_WRITE_NOTIFY, DBR_STRING, 1, sid, 77, b, sizeof b, 0);
    msg m[4];
    assert_int_equal(drain(c, m, 4), 1);
    assert_int_equal(m[0].h.cmd, CA_PROTO_WRITE_NOTIFY);
    assert_int_equal(m[0].h.p1, ECA_NORMAL);
    assert_int_equal(m[0].h.p2, 77);
    send_msg(c, CA_PROTO_READ_NOTIFY, DBR_DOUBLE, 1, sid, 1, NULL, 0, 0);
    assert_int_equal(drain(c, m, 4), 1);
    assert_true(be_double(m[0].payload) == 7.25);
    ca_client_free(c);
}

static void slow_client_keeps_newest_value_per_subscription(void **state)
{
    (void)state;
    size_t saved = ca_server_limits.max_queue_bytes;
    ca_server_limits.max_queue_bytes = 200;          /* a few updates */
    ca_client *c = new_client();
    uint32_t sid = create(c, "F:ao", 1);
    put_double(c, sid, 0);
    uint8_t sub[16] = { 0 };
    ca_put16(sub + 12, DBE_VALUE);
    send_msg(c, CA_PROTO_EVENT_ADD, 20, 1, sid, 5, sub, sizeof sub, 0);

    db_addr addr;
    assert_int_equal(db_name_to_addr("F:ao", &addr), DB_OK);
    for (int i = 1; i <= 100; i++) {
        double v = i;
        assert_int_equal(db_put_field(&addr, DBR_DOUBLE, &v, 1), DB_OK);
        pthread_mutex_lock(&c->lock);
        assert_true(c->out.len <= 200 + 64);          /* bounded whatever the client does */
        pthread_mutex_unlock(&c->lock);
    }
    assert_true(c->updates_coalesced > 0);
    msg m[16];
    int n = drain(c, m, 16);
    assert_true(n >= 2 && n < 16);
    n += drain(c, m + n, 16 - n);                     /* the coalesced slot, refilled after the flush */
    assert_int_equal(m[n - 1].h.cmd, CA_PROTO_EVENT_ADD);
    assert_true(be_double(m[n - 1].payload + 16) == 100.0);   /* the newest value arrives last */
    for (int i = 1; i < n; i++)                       /* and values never go backwards */
        assert_true(be_double(m[i].payload + 16) > be_double(m[i - 1].payload + 16));

    /* EVENTS_OFF: nothing is sent, the newest value is kept; EVENTS_ON releases it */
    send_msg(c, CA_PROTO_EVENTS_OFF, 0, 0, 0, 0, NULL, 0, 0);
    for (int i = 101; i <= 110; i++) {
        double v = i;
        db_put_field(&addr, DBR_DOUBLE, &v, 1);
    }
    pthread_mutex_lock(&c->lock);
    assert_int_equal(c->out.len, 0);
    pthread_mutex_unlock(&c->lock);
    send_msg(c, CA_PROTO_EVENTS_ON, 0, 0, 0, 0, NULL, 0, 0);
    assert_int_equal(drain(c, m, 16), 1);
    assert_true(be_double(m[0].payload + 16) == 110.0);

    send_msg(c, CA_PROTO_EVENT_CANCEL, 20, 1, sid, 5, NULL, 0, 0);
    assert_int_equal(drain(c, m, 16), 1);
    assert_int_equal(m[0].h.cmd, CA_PROTO_EVENT_ADD);
    assert_int_equal(m[0].h.payload, 0);
    ca_client_free(c);
    ca_server_limits.max_queue_bytes = saved;
}

static void access_denied_write_has_no_effect(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(access_load_text("UAG(ops) { bob }\nASG(DEFAULT) { RULE(1, READ) RULE(1, WRITE) { UAG(ops) } }\n",
                                      "t.acf", err, sizeof err), 0);
    ca_client *c = new_client();                      /* user alice */
    send_msg(c, CA_PROTO_CREATE_CHAN, 0, 0, 3, 13, "F:ao", 5, 0);
    msg m[4];
    assert_int_equal(drain(c, m, 4), 2);
    assert_int_equal(m[0].h.p2, ACCESS_READ);
    uint32_t sid = m[1].h.p2;
    send_msg(c, CA_PROTO_READ_NOTIFY, DBR_DOUBLE, 1, sid, 1, NULL, 0, 0);
    drain(c, m, 4);
    double before = be_double(m[0].payload);
    put_double(c, sid, before + 1);
    assert_int_equal(drain(c, m, 4), 1);
    assert_int_equal(m[0].h.cmd, CA_PROTO_ERROR);
    assert_int_equal(m[0].h.p1, 3);
    assert_int_equal(m[0].h.p2, ECA_NOWTACCESS);
    send_msg(c, CA_PROTO_READ_NOTIFY, DBR_DOUBLE, 1, sid, 1, NULL, 0, 0);
    drain(c, m, 4);
    assert_true(be_double(m[0].payload) == before);
    /* rules change: the client is told */
    access_clear();
    ca_client_refresh_rights(c);
    assert_int_equal(drain(c, m, 4), 1);
    assert_int_equal(m[0].h.cmd, CA_PROTO_ACCESS_RIGHTS);
    assert_int_equal(m[0].h.p2, ACCESS_READ | ACCESS_WRITE);
    ca_client_free(c);
}

static void limits_and_malformed_input(void **state)
{
    (void)state;
    unsigned saved = ca_server_limits.max_channels;
    ca_server_limits.max_channels = 2;
    ca_client *c = new_client();
    create(c, "F:ao", 1);
    create(c, "F:ao", 2);
    send_msg(c, CA_PROTO_CREATE_CHAN, 0, 0, 3, 13, "F:ao", 5, 0);
    msg m[4];
    int n = drain(c, m, 4);
    assert_int_equal(m[n - 1].h.cmd, CA_PROTO_CREATE_CH_FAIL);
    ca_server_limits.max_channels = saved;

    /* misaligned message */
    uint8_t bad[16 + 5] = { 0, CA_PROTO_ECHO, 0, 5 };
    assert_int_equal(ca_client_input(c, bad, sizeof bad), -1);
    ca_client_free(c);

    /* oversized message: refused from its header, before the payload arrives */
    c = new_client();
    uint8_t big[24];
    ca_hdr h = { .cmd = CA_PROTO_WRITE, .payload = 0x7FFFFFF8u, .count = 1 };
    ca_hdr_encode(big, &h);
    assert_int_equal(ca_client_input(c, big, ca_hdr_size(&h)), -1);
    ca_client_free(c);

    /* unknown command: ERROR, then the circuit closes */
    c = new_client();
    send_msg(c, 99, 0, 0, 0, 0, NULL, 0, -1);
    assert_int_equal(drain(c, m, 4), 1);
    assert_int_equal(m[0].h.cmd, CA_PROTO_ERROR);
    ca_client_free(c);
}

/* Every input that once crashed or misbehaved in the fuzzer is replayed here. */
static void fuzz_regressions_replay(void **state)
{
    (void)state;
    const char *dir = getenv("RELOC_CA_REGRESSIONS");
    char path[1024];
    snprintf(path, sizeof path, "%s", dir ? dir : "tests/fuzz/corpus_regressions");
    DIR *d = opendir(path);
    if (!d)
        return;   /* run from another directory: the corpus is replayed by the fuzz target too */
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char file[2048];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        FILE *f = fopen(file, "rb");
        if (!f)
            continue;
        uint8_t buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        ca_client *c = ca_client_new("regression:1", -1, NULL);
        for (size_t off = 0; off < n; off += 7)
            if (ca_client_input(c, buf + off, n - off < 7 ? n - off : 7) < 0)
                break;
        msg m[4];
        drain(c, m, 4);
        ca_client_free(c);
    }
    closedir(d);
}

static int setup(void **state)
{
    (void)state;
    log_set_level(LOG_ERROR);
    db_register_builtins();
    char err[256];
    db_record *rec = db_create_record("ao", "F:ao", err, sizeof err);
    assert_non_null(rec);
    assert_int_equal(db_init(err, sizeof err), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    access_clear();
    db_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake_create_read_write),
        cmocka_unit_test(put_notify_completes),
        cmocka_unit_test(slow_client_keeps_newest_value_per_subscription),
        cmocka_unit_test(access_denied_write_has_no_effect),
        cmocka_unit_test(limits_and_malformed_input),
        cmocka_unit_test(fuzz_regressions_replay),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
