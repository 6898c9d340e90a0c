/* test_stream.c -- unit tests of src/drivers/stream: protocol file parsing, output formatting, input matching and
 * converters, handlers and timeouts, run against a scripted byte stream (no sockets). */
#include "unit.h"

#include "drivers/stream/stream.h"

/* A scripted device: what the protocol sent, and the chunks it will read (NULL chunk = a timeout). */
typedef struct fake_device {
    char sent[1024];
    size_t nsent;
    const char *replies[8];
    int nreplies, next;
    int lost;
} fake_device;

static int fake_write(void *ctx, const char *buf, size_t len)
{
    fake_device *d = ctx;
    if (d->lost)
        return -1;
    memcpy(d->sent + d->nsent, buf, len);
    d->nsent += len;
    d->sent[d->nsent] = '\0';
    return 0;
}

static long fake_read(void *ctx, char *buf, size_t cap, double timeout)
{
    fake_device *d = ctx;
    if (d->lost)
        return -1;
    if (timeout == 0.0 || d->next >= d->nreplies)
        return 0;   /* the pre-run drain, or nothing more to say: a timeout */
    const char *chunk = d->replies[d->next++];
    if (!chunk)
        return 0;
    size_t n = strlen(chunk) < cap ? strlen(chunk) : cap;
    memcpy(buf, chunk, n);
    return (long)n;
}

static void mark_closed(void *ctx)
{
    *(int *)ctx += 1;
}

static int count_write(void *ctx, const char *buf, size_t len)
{
    (void)buf;
    (void)len;
    *(int *)ctx += 1;
    return 0;
}

static long no_input(void *ctx, char *buf, size_t cap, double timeout)
{
    (void)ctx;
    (void)buf;
    (void)cap;
    (void)timeout;
    return 0;
}

static stream_io fake_io(fake_device *d)
{
    return (stream_io){.write = fake_write, .read = fake_read, .ctx = d};
}

static stream_file *parse_ok(const char *text)
{
    char err[256] = "";
    stream_file *f = stream_parse(text, "test.proto", err, sizeof err);
    if (!f)
        fail_msg("parse failed: %s", err);
    return f;
}

static const char motor_proto[] =
    "# a controller like the simulator\n"
    "Terminator = CR LF;\n"
    "ReplyTimeout = 1000;\n"
    "MovingBit = 0x01;\n"
    "Prefix = \"AX\";\n"
    "@mismatch { in \"ERR %(error)[^\\r]\"; }\n"
    "ack { in \"OK\"; }\n"
    "move { out \"\\$Prefix\\$1 MOVE %(position)d\"; ack; }\n"
    "speed { out \"\\$1 VEL %(velocity).3f ACC %(acceleration)e\"; ack; }\n"
    "poll { out \"\\$1 POS?\"; in \"\\$1 POS %(position)d\"; out \"\\$1 ST?\"; in \"\\$1 ST %(status)x\"; }\n"
    "mode { out \"MODE %{OFF|ON|AUTO}\"; in \"MODE %(echo){OFF|ON|AUTO}\"; }\n"
    "raw { Terminator = ETX; out STX \"A\" 0x42 \"\\x43\\067\"; in \"%*s %(word)s\"; }\n";

static void output_formats_and_arguments(void **state)
{
    (void)state;
    stream_file *f = parse_ok(motor_proto);
    fake_device d = {.replies = {"OK\r\n", "OK\r\n"}, .nreplies = 2};
    stream_io io = fake_io(&d);
    stream_values v = {0};
    const char *args[] = {"3"};
    char err[256];
    stream_values_set_number(&v, "position", -1234.4);
    assert_int_equal(stream_run(f, "move", args, 1, &v, &io, err, sizeof err), STREAM_OK);
    assert_string_equal(d.sent, "AX3 MOVE -1234\r\n");
    d.nsent = 0;
    stream_values_set_number(&v, "velocity", 2.5);
    stream_values_set_number(&v, "acceleration", 1500);
    assert_int_equal(stream_run(f, "speed", args, 1, &v, &io, err, sizeof err), STREAM_OK);
    assert_string_equal(d.sent, "3 VEL 2.500 ACC 1.500000e+03\r\n");
    stream_free(f);
}

static void input_converters_fill_named_values(void **state)
{
    (void)state;
    stream_file *f = parse_ok(motor_proto);
    /* The reply arrives split across reads, as TCP may deliver it. */
    fake_device d = {.replies = {"2 POS -5", "07\r\n2 ST 1", "C\r\n"}, .nreplies = 3};
    stream_io io = fake_io(&d);
    stream_values v = {0};
    const char *args[] = {"2"};
    char err[256];
    assert_int_equal(stream_run(f, "poll", args, 1, &v, &io, err, sizeof err), STREAM_OK);
    assert_string_equal(d.sent, "2 POS?\r\n2 ST?\r\n");
    assert_non_null(stream_values_get(&v, "position"));
    assert_true(stream_values_get(&v, "position")->number == -507.0);
    assert_true(stream_values_get(&v, "status")->number == 0x1c);
    assert_string_equal(stream_variable(f, "MovingBit"), "0x01");
    stream_free(f);
}

static void enum_converter_both_ways(void **state)
{
    (void)state;
    stream_file *f = parse_ok(motor_proto);
    fake_device d = {.replies = {"MODE AUTO\r\n"}, .nreplies = 1};
    stream_io io = fake_io(&d);
    stream_values v = {0};
    char err[256];
    stream_values_set_number(&v, "value", 1);
    assert_int_equal(stream_run(f, "mode", NULL, 0, &v, &io, err, sizeof err), STREAM_OK);
    assert_string_equal(d.sent, "MODE ON\r\n");
    assert_true(stream_values_get(&v, "echo")->number == 2.0);
    stream_values_set_number(&v, "value", 7);   /* no such state: nothing is sent */
    d.nsent = 0;
    d.sent[0] = '\0';
    assert_int_equal(stream_run(f, "mode", NULL, 0, &v, &io, err, sizeof err), STREAM_ERR_FORMAT);
    assert_string_equal(d.sent, "");
    stream_free(f);
}

static void bytes_escapes_and_skip(void **state)
{
    (void)state;
    stream_file *f = parse_ok(motor_proto);
    fake_device d = {.replies = {"ignored kept\x03"}, .nreplies = 1};
    stream_io io = fake_io(&d);
    stream_values v = {0};
    char err[256];
    assert_int_equal(stream_run(f, "raw", NULL, 0, &v, &io, err, sizeof err), STREAM_OK);
    assert_memory_equal(d.sent, "\x02" "ABC7\x03", 6);
    assert_string_equal(stream_values_get(&v, "word")->text, "kept");
    assert_int_equal(v.count, 1);   /* %*s stored nothing */
    stream_free(f);
}

static void mismatch_runs_handler_on_the_same_input(void **state)
{
    (void)state;
    stream_file *f = parse_ok(motor_proto);
    fake_device d = {.replies = {"ERR axis disabled\r\n"}, .nreplies = 1};
    stream_io io = fake_io(&d);
    stream_values v = {0};
    const char *args[] = {"1"};
    char err[256];
    stream_values_set_number(&v, "position", 5);
    assert_int_equal(stream_run(f, "move", args, 1, &v, &io, err, sizeof err), STREAM_ERR_MISMATCH);
    assert_non_null(strstr(err, "ERR axis disabled"));
    assert_string_equal(stream_values_get(&v, "error")->text, "axis disabled");
    stream_free(f);
}

static void garbage_number_is_a_mismatch(void **state)
{
    (void)state;
    stream_file *f = parse_ok(motor_proto);
    fake_device d = {.replies = {"1 POS #@!\r\n"}, .nreplies = 1};
    stream_io io = fake_io(&d);
    stream_values v = {0};
    const char *args[] = {"1"};
    char err[256];
    assert_int_equal(stream_run(f, "poll", args, 1, &v, &io, err, sizeof err), STREAM_ERR_MISMATCH);
    assert_null(stream_values_get(&v, "position"));
    /* Trailing input is an error unless ExtraInput = Ignore. */
    d = (fake_device){.replies = {"1 POS 12 extra\r\n"}, .nreplies = 1};
    assert_int_equal(stream_run(f, "poll", args, 1, &v, &io, err, sizeof err), STREAM_ERR_MISMATCH);
    stream_free(f);
}

static void timeouts_and_disconnects(void **state)
{
    (void)state;
    stream_file *f = parse_ok("Terminator = LF; ReplyTimeout = 50;\n"
                              "@replytimeout { out \"RESET\"; }\n"
                              "q { out \"Q\"; in \"A %d\"; }\n"
                              "r { InTerminator = \"\"; out \"R\"; in \"%(all)c\"; }\n");
    fake_device d = {.nreplies = 0};
    stream_io io = fake_io(&d);
    stream_values v = {0};
    char err[256];
    assert_int_equal(stream_run(f, "q", NULL, 0, &v, &io, err, sizeof err), STREAM_ERR_REPLY_TIMEOUT);
    assert_string_equal(d.sent, "Q\nRESET\n");   /* the handler ran */
    d = (fake_device){.replies = {"A 1", NULL}, .nreplies = 2};
    assert_int_equal(stream_run(f, "q", NULL, 0, &v, &io, err, sizeof err), STREAM_ERR_READ_TIMEOUT);
    /* Without an input terminator, a pause ends the input. */
    d = (fake_device){.replies = {"Z", NULL}, .nreplies = 2};
    assert_int_equal(stream_run(f, "r", NULL, 0, &v, &io, err, sizeof err), STREAM_OK);
    assert_string_equal(stream_values_get(&v, "all")->text, "Z");
    d = (fake_device){.lost = 1};
    assert_int_equal(stream_run(f, "q", NULL, 0, &v, &io, err, sizeof err), STREAM_ERR_DISCONNECTED);
    assert_int_equal(stream_run(f, "nope", NULL, 0, &v, &io, err, sizeof err), STREAM_ERR_NO_PROTOCOL);
    stream_free(f);
}

static void syntax_errors_name_the_line(void **state)
{
    (void)state;
    static const struct { const char *text; const char *expect; } cases[] = {
        {"a { out \"x\"; }\nb { bogus; }\n", "test.proto:2: unknown command or protocol 'bogus'"},
        {"a { out \"x\" }\n", "test.proto:1:"},
        {"a { out \"%q\"; }\n", "unsupported converter"},
        {"a { out \"\\$nope\"; }\n", "undefined variable $nope"},
        {"Terminator = FOO;\n", "not a byte name"},
        {"a { out \"x\"; }\na { out \"y\"; }\n", "defined twice"},
        {"ReplyTimeout = soon;\n", "non-negative number"},
        {"a { out \"unterminated; }\n", "unterminated"},
        {"@sometimes { out \"x\"; }\n", "unknown handler"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        stream_file *f = stream_parse(cases[i].text, "test.proto", err, sizeof err);
        assert_null(f);
        if (!strstr(err, cases[i].expect))
            fail_msg("case %zu: '%s' does not contain '%s'", i, err, cases[i].expect);
    }
}

static void init_handler_runs(void **state)
{
    (void)state;
    stream_file *f = parse_ok("Terminator = LF;\n@init { out \"*IDN?\"; in \"DEV %*d\"; }\n");
    fake_device d = {.replies = {"DEV 6\n"}, .nreplies = 1};
    stream_io io = fake_io(&d);
    char err[256];
    assert_int_equal(stream_run_init(f, &io, err, sizeof err), STREAM_OK);
    assert_string_equal(d.sent, "*IDN?\n");
    d = (fake_device){.replies = {"OTHER\n"}, .nreplies = 1};
    assert_int_equal(stream_run_init(f, &io, err, sizeof err), STREAM_ERR_MISMATCH);
    stream_free(f);
}

static void local_settings_and_handlers_override_global_ones(void **state)
{
    (void)state;
    stream_file *f = parse_ok("Terminator = LF;\n"
                              "@mismatch { out \"GLOBAL\"; }\n"
                              "hello { out \"HI\"; }\n"
                              "a { Terminator = CR; Axis = X1; hello; wait 1; out \"\\$Axis\"; in \"OK\";\n"
                              "    @mismatch { out \"LOCAL\"; } }\n"
                              "b { in \"OK\"; }\n"
                              "c { out \"BYE\"; disconnect; }\n");
    fake_device d = {.replies = {"NO\r"}, .nreplies = 1};
    stream_io io = fake_io(&d);
    stream_values v = {0};
    char err[256];
    /* a: its own terminator (CR), a local variable, a call of an earlier protocol, and its own handler */
    assert_int_equal(stream_run(f, "a", NULL, 0, &v, &io, err, sizeof err), STREAM_ERR_MISMATCH);
    assert_string_equal(d.sent, "HI\rX1\rLOCAL\r");
    d = (fake_device){.replies = {"NO\n"}, .nreplies = 1};
    /* b: the global terminator and handler */
    assert_int_equal(stream_run(f, "b", NULL, 0, &v, &io, err, sizeof err), STREAM_ERR_MISMATCH);
    assert_string_equal(d.sent, "GLOBAL\n");
    /* c: `disconnect;` closes the connection (the port reconnects afterwards) */
    int closed = 0;
    io = (stream_io){.write = count_write, .read = no_input, .disconnect = mark_closed, .ctx = &closed};
    assert_int_equal(stream_run(f, "c", NULL, 0, &v, &io, err, sizeof err), STREAM_OK);
    assert_int_equal(closed, 2);   /* one write, then the close */
    stream_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(output_formats_and_arguments),
        cmocka_unit_test(input_converters_fill_named_values),
        cmocka_unit_test(enum_converter_both_ways),
        cmocka_unit_test(bytes_escapes_and_skip),
        cmocka_unit_test(mismatch_runs_handler_on_the_same_input),
        cmocka_unit_test(garbage_number_is_a_mismatch),
        cmocka_unit_test(timeouts_and_disconnects),
        cmocka_unit_test(syntax_errors_name_the_line),
        cmocka_unit_test(init_handler_runs),
        cmocka_unit_test(local_settings_and_handlers_override_global_ones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
