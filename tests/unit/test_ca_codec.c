/* test_ca_codec.c -- unit tests of the CA wire codec and DBR layouts against the reference tables of
 * epics-facts.md (sizes and value offsets of db_access.h, header byte layout, padding, beacons). */
#include "unit.h"
#include <math.h>

#include "core/ca/ca_internal.h"

/* epics-facts.md §5.1/§5.2: dbr_size and value offset of every DBR type 0..38. */
static const struct { unsigned type; unsigned size, off; } reference[] = {
    { 0, 40, 0 }, { 1, 2, 0 }, { 2, 4, 0 }, { 3, 2, 0 }, { 4, 1, 0 }, { 5, 4, 0 }, { 6, 8, 0 },
    { 7, 44, 4 }, { 8, 6, 4 }, { 9, 8, 4 }, { 10, 6, 4 }, { 11, 6, 5 }, { 12, 8, 4 }, { 13, 16, 8 },
    { 14, 52, 12 }, { 15, 16, 14 }, { 16, 16, 12 }, { 17, 16, 14 }, { 18, 16, 15 }, { 19, 16, 12 }, { 20, 24, 16 },
    { 21, 44, 4 }, { 22, 26, 24 }, { 23, 44, 40 }, { 24, 424, 422 }, { 25, 20, 19 }, { 26, 40, 36 }, { 27, 72, 64 },
    { 28, 44, 4 }, { 29, 30, 28 }, { 30, 52, 48 }, { 31, 424, 422 }, { 32, 22, 21 }, { 33, 48, 44 }, { 34, 88, 80 },
    { 35, 2, 0 }, { 36, 2, 0 }, { 37, 48, 8 }, { 38, 40, 0 },
};

static void dbr_sizes_and_offsets_match_reference(void **state)
{
    (void)state;
    static const unsigned value_size[] = { 40, 2, 4, 2, 1, 4, 8 };
    for (size_t i = 0; i < sizeof reference / sizeof reference[0]; i++) {
        const ca_dbr_layout *l = ca_dbr_layout_of(reference[i].type);
        assert_non_null(l);
        assert_int_equal(l->size, reference[i].size);
        assert_int_equal(l->value_off, reference[i].off);
        if (reference[i].type < 35)
            assert_int_equal(ca_dbr_value_size(l->base), value_size[reference[i].type % 7]);
        /* array rule of §2.2: dbr_size + (n-1)*value_size */
        assert_int_equal(ca_dbr_bytes(reference[i].type, 5),
                         reference[i].size + 4 * ca_dbr_value_size(l->base));
    }
    assert_null(ca_dbr_layout_of(39));
    assert_null(ca_dbr_layout_of(0xFFFF));
}

static void padding_examples_from_reference(void **state)
{
    (void)state;
    /* §5.3 "Padding per message" */
    assert_int_equal(ca_pad8(ca_dbr_bytes(22, 1)), 32);
    assert_int_equal(ca_pad8(ca_dbr_bytes(29, 1)), 32);
    assert_int_equal(ca_pad8(ca_dbr_bytes(25, 1)), 24);
    assert_int_equal(ca_pad8(ca_dbr_bytes(32, 1)), 24);
    assert_int_equal(ca_pad8(ca_dbr_bytes(7, 1)), 48);
    assert_int_equal(ca_pad8(ca_dbr_bytes(14, 1)), 56);
    assert_int_equal(ca_pad8(ca_dbr_bytes(23, 1)), 48);
    assert_int_equal(ca_pad8(ca_dbr_bytes(30, 1)), 56);
    assert_int_equal(ca_pad8(0), 0);
    /* count 0: metadata only */
    assert_int_equal(ca_dbr_bytes(20, 0), 16);
}

static void header_standard_and_extended(void **state)
{
    (void)state;
    /* §2.1 "create resp": 00 12 00 00 00 06 00 01 00 00 00 2a 00 00 03 e9 */
    const uint8_t create_resp[16] = { 0x00, 0x12, 0x00, 0x00, 0x00, 0x06, 0x00, 0x01,
                                      0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x03, 0xe9 };
    uint8_t buf[24];
    ca_hdr h = { .cmd = 18, .dtype = 6, .count = 1, .p1 = 42, .p2 = 1001 };
    assert_int_equal(ca_hdr_encode(buf, &h), 16);
    assert_memory_equal(buf, create_resp, 16);

    ca_hdr d;
    assert_int_equal(ca_hdr_decode(create_resp, 15, 1, &d), 0);
    assert_int_equal(ca_hdr_decode(create_resp, 16, 1, &d), 16);
    assert_int_equal(d.cmd, 18);
    assert_int_equal(d.p2, 1001);

    /* Extended: postsize 0xFFFF, count 0, then size and count as uint32. */
    ca_hdr big = { .cmd = 1, .dtype = 5, .count = 1048576, .payload = 4194304, .p1 = 1, .p2 = 7 };
    assert_int_equal(ca_hdr_size(&big), 24);
    assert_int_equal(ca_hdr_encode(buf, &big), 24);
    assert_int_equal(buf[2], 0xFF);
    assert_int_equal(buf[3], 0xFF);
    assert_int_equal(buf[6], 0);
    assert_int_equal(buf[7], 0);
    assert_int_equal(ca_get32(buf + 16), 4194304);
    assert_int_equal(ca_get32(buf + 20), 1048576);
    assert_int_equal(ca_hdr_decode(buf, 20, 1, &d), 0);
    assert_int_equal(ca_hdr_decode(buf, 24, 1, &d), 24);
    assert_int_equal(d.payload, 4194304);
    assert_int_equal(d.count, 1048576);
    assert_int_equal(ca_hdr_decode(buf, 24, 0, &d), -1);
    /* count alone at 0xFFFF also needs the extended form */
    ca_hdr cnt = { .count = 0xFFFF, .payload = 8 };
    assert_int_equal(ca_hdr_size(&cnt), 24);
}

static void byte_queue_keeps_order(void **state)
{
    (void)state;
    ca_bytes q = { 0 };
    for (int i = 0; i < 1000; i++) {
        uint8_t b[3] = { (uint8_t)i, (uint8_t)(i >> 8), 0xAB };
        ca_bytes_append(&q, b, 3);
        if (i % 3 == 2)
            ca_bytes_consume(&q, 3);
    }
    assert_int_equal(q.len, (1000 - 333) * 3);
    ca_hdr h = { .cmd = 23 };
    ca_bytes_consume(&q, q.len);
    ca_bytes_message(&q, &h, "abc", 3);
    assert_int_equal(q.len, 24);            /* 16 + "abc" padded to 8 */
    assert_int_equal(ca_get16(q.data + q.head + 2), 8);
    assert_memory_equal(q.data + q.head + 16, "abc\0\0\0\0\0", 8);
    ca_bytes_free(&q);
}

static double be_double(const uint8_t *p)
{
    uint64_t u = (uint64_t)ca_get32(p) << 32 | ca_get32(p + 4);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static float be_float(const uint8_t *p)
{
    uint32_t u = ca_get32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static db_meta example_meta(void)
{
    db_meta m;
    memset(&m, 0, sizeof m);
    m.status = STAT_HIGH;
    m.severity = MINOR_ALARM;
    m.stamp.tv_sec = 631152000L + 1000;     /* 1000 s after the EPICS epoch */
    m.stamp.tv_nsec = 123456789;
    strcpy(m.units, "mm/s-long-units");     /* longer than the 8-byte units field */
    m.precision = 3;
    m.disp_hi = 10, m.disp_lo = -10, m.alarm_hi = 9, m.warn_hi = 8, m.warn_lo = -8, m.alarm_lo = -9;
    m.ctrl_hi = 5, m.ctrl_lo = -5;
    return m;
}

static void time_double_layout(void **state)
{
    (void)state;
    db_meta m = example_meta();
    uint8_t out[32] = { 0 };
    double v = 2.5;
    memcpy(out + 16, &v, 8);                /* host-order value as db_get leaves it */
    ca_dbr_encode(out, 20, &m, 1);
    assert_int_equal(ca_get16(out), STAT_HIGH);
    assert_int_equal(ca_get16(out + 2), MINOR_ALARM);
    assert_int_equal(ca_get32(out + 4), 1000);
    assert_int_equal(ca_get32(out + 8), 123456789);
    assert_true(be_double(out + 16) == 2.5);
}

static void ctrl_double_and_float_layout(void **state)
{
    (void)state;
    db_meta m = example_meta();
    uint8_t out[96] = { 0 };
    ca_dbr_encode(out, 34, &m, 0);
    assert_int_equal(ca_get16(out + 4), 3);                  /* precision */
    assert_memory_equal(out + 8, "mm/s-lo\0", 8);            /* units: 7 chars + NUL */
    const double want[8] = { 10, -10, 9, 8, -8, -9, 5, -5 }; /* lim6 then ctl2 */
    for (int i = 0; i < 8; i++)
        assert_true(be_double(out + 16 + 8 * i) == want[i]);

    memset(out, 0, sizeof out);
    ca_dbr_encode(out, 30, &m, 0);                           /* CTRL_FLOAT: ctl2@40, value@48 */
    for (int i = 0; i < 8; i++)
        assert_true(be_float(out + 16 + 4 * i) == (float)want[i]);
}

static void integer_limits_layouts(void **state)
{
    (void)state;
    db_meta m = example_meta();
    uint8_t out[64] = { 0 };
    ca_dbr_encode(out, 29, &m, 0);                           /* CTRL_SHORT: u@4, lim6@12, ctl2@24 */
    assert_memory_equal(out + 4, "mm/s-lo\0", 8);
    assert_int_equal((int16_t)ca_get16(out + 12), 10);
    assert_int_equal((int16_t)ca_get16(out + 22), -9);
    assert_int_equal((int16_t)ca_get16(out + 24), 5);
    assert_int_equal((int16_t)ca_get16(out + 26), -5);

    memset(out, 0, sizeof out);
    ca_dbr_encode(out, 33, &m, 0);                           /* CTRL_LONG: lim6@12 int32, ctl2@36 */
    assert_int_equal((int32_t)ca_get32(out + 12), 10);
    assert_int_equal((int32_t)ca_get32(out + 32), -9);
    assert_int_equal((int32_t)ca_get32(out + 36), 5);
    assert_int_equal((int32_t)ca_get32(out + 40), -5);

    memset(out, 0, sizeof out);
    ca_dbr_encode(out, 32, &m, 0);                           /* CTRL_CHAR: lim6@12 uint8, ctl2@18 */
    assert_int_equal(out[12], 10);
    assert_int_equal(out[13], 0);                            /* -10 clamps to 0 for an unsigned char */
    assert_int_equal(out[18], 5);
}

static void enum_strings_layout(void **state)
{
    (void)state;
    db_meta m = example_meta();
    m.nstrs = 20;                                            /* more than CA can carry */
    for (int i = 0; i < DB_ENUM_STRS; i++)
        snprintf(m.strs[i], sizeof m.strs[i], "state %d", i);
    uint8_t out[424] = { 0 };
    uint16_t v = 7;
    memcpy(out + 422, &v, 2);
    ca_dbr_encode(out, 31, &m, 1);
    assert_int_equal(ca_get16(out + 4), 16);                 /* no_str clipped to 16 */
    assert_string_equal((char *)out + 6, "state 0");
    assert_string_equal((char *)out + 6 + 15 * 26, "state 15");
    assert_int_equal(ca_get16(out + 422), 7);
}

static void stsack_string_layout(void **state)
{
    (void)state;
    db_meta m = example_meta();
    m.ackt = 1;
    m.acks = MAJOR_ALARM;
    uint8_t out[48] = { 0 };
    ca_dbr_encode(out, 37, &m, 1);
    assert_int_equal(ca_get16(out + 4), 1);
    assert_int_equal(ca_get16(out + 6), MAJOR_ALARM);
}

static void decode_put_values(void **state)
{
    (void)state;
    uint8_t payload[24] = { 0 };
    /* TIME_LONG with 3 elements: value at 12, big-endian */
    uint8_t tl[24] = { 0 };
    ca_put32(tl + 12, 7);
    ca_put32(tl + 16, (uint32_t)-3);
    ca_put32(tl + 20, 100000);
    ca_bytes room = { 0 };
    int32_t *v = ca_dbr_decode_values(tl, sizeof tl, 19, 3, &room);
    assert_non_null(v);
    assert_int_equal(v[0], 7);
    assert_int_equal(v[1], -3);
    assert_int_equal(v[2], 100000);
    assert_null(ca_dbr_decode_values(tl, sizeof tl, 19, 4, &room));  /* payload too short */
    assert_null(ca_dbr_decode_values(payload, sizeof payload, 39, 1, &room));
    /* an unterminated string is cut at 39 chars */
    uint8_t s[40];
    memset(s, 'x', sizeof s);
    char *str = ca_dbr_decode_values(s, sizeof s, 0, 1, &room);
    assert_int_equal(strlen(str), 39);
    /* libca trims a single string to strlen+1, padded to 8 */
    uint8_t shortstr[8] = "hello";
    str = ca_dbr_decode_values(shortstr, sizeof shortstr, 0, 1, &room);
    assert_string_equal(str, "hello");
    uint8_t sts[16] = { 0, 0, 0, 0, 'a', 'b', 0 };            /* STS_STRING trimmed: value at 4 */
    str = ca_dbr_decode_values(sts, sizeof sts, 7, 1, &room);
    assert_string_equal(str, "ab");
    assert_null(ca_dbr_decode_values(shortstr, sizeof shortstr, 0, 2, &room));   /* arrays are not trimmed */
    ca_bytes_free(&room);
}

static void native_types(void **state)
{
    (void)state;
    /* §5.1 "Native type advertised in CREATE_CHAN" */
    assert_int_equal(ca_native_type(DBF_STRING), DBR_STRING);
    assert_int_equal(ca_native_type(DBF_UCHAR), DBR_CHAR);
    assert_int_equal(ca_native_type(DBF_USHORT), DBR_LONG);
    assert_int_equal(ca_native_type(DBF_ULONG), DBR_DOUBLE);
    assert_int_equal(ca_native_type(DBF_INT64), DBR_DOUBLE);
    assert_int_equal(ca_native_type(DBF_MENU), DBR_ENUM);
    assert_int_equal(ca_native_type(DBF_INLINK), DBR_STRING);
    assert_int_equal(ca_native_type(DBF_FLOAT), DBR_FLOAT);
}

static void beacon_and_backoff(void **state)
{
    (void)state;
    uint8_t b[16];
    assert_int_equal(ca_beacon_encode(b, 5064, 3), 16);
    assert_int_equal(ca_get16(b), 13);
    assert_int_equal(ca_get16(b + 4), 13);       /* server minor */
    assert_int_equal(ca_get16(b + 6), 5064);     /* TCP port in count */
    assert_int_equal(ca_get32(b + 8), 3);
    assert_int_equal(ca_get32(b + 12), 0);
    double t = 0, sum = 0;
    double seen[12];
    for (int i = 0; i < 12; i++)
        sum += seen[i] = t = ca_beacon_next_interval(t, 15.0);
    assert_true(fabs(seen[0] - 0.02) < 1e-12);
    assert_true(fabs(seen[1] - 0.04) < 1e-12);
    assert_true(seen[11] == 15.0);
    assert_true(sum > 15.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dbr_sizes_and_offsets_match_reference),
        cmocka_unit_test(padding_examples_from_reference),
        cmocka_unit_test(header_standard_and_extended),
        cmocka_unit_test(byte_queue_keeps_order),
        cmocka_unit_test(time_double_layout),
        cmocka_unit_test(ctrl_double_and_float_layout),
        cmocka_unit_test(integer_limits_layouts),
        cmocka_unit_test(enum_strings_layout),
        cmocka_unit_test(stsack_string_layout),
        cmocka_unit_test(decode_put_values),
        cmocka_unit_test(native_types),
        cmocka_unit_test(beacon_and_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
