/* test_db_core.c -- record database core: creating records and setting fields from text (with the
 * errors a .db author sees), channel names, conversions between field and client types, puts from
 * clients (PROC, DISP, read-only fields), monitors, and repeated init/shutdown. */
#include "db_test_util.h"

#include <math.h>

static void create_and_set_fields(void **state)
{
    (void)state;
    char err[256];
    db_record *rec = make_record("ai", "T:ai", "DESC", "temperature", "SCAN", ".5 second", "PREC", "3",
                                 "EGU", "degC", "HOPR", "100", NULL);
    assert_non_null(rec);
    assert_ptr_equal(db_create_record("ai", "T:ai", err, sizeof err), rec);   /* same type: same record */
    assert_null(db_create_record("ao", "T:ai", err, sizeof err));
    assert_non_null(strstr(err, "already exists"));
    assert_null(db_create_record("nosuchtype", "T:x", err, sizeof err));
    assert_non_null(strstr(err, "nosuchtype"));
    assert_null(db_create_record("ai", "bad name", err, sizeof err));
    assert_null(db_create_record("ai", "T:a.b", err, sizeof err));

    assert_int_equal(db_set_field_text(rec, "NOPE", "1", err, sizeof err), DB_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "NOPE"));
    assert_int_equal(db_set_field_text(rec, "SCAN", "2 seconds", err, sizeof err), DB_ERR_CONVERT);
    assert_non_null(strstr(err, "\"2 second\""));       /* the message lists the valid choices */
    assert_int_equal(db_set_field_text(rec, "HOPR", "1.5x", err, sizeof err), DB_ERR_CONVERT);
    assert_int_equal(db_set_field_text(rec, "DESC", "0123456789012345678901234567890123456789X", err, sizeof err),
                     DB_ERR_CONVERT);
    assert_int_equal(db_set_field_text(rec, "INP", "OTHER.VAL PP XX", err, sizeof err), DB_ERR_SYNTAX);
    assert_non_null(strstr(err, "XX"));
    assert_int_equal(db_set_field_text(rec, "NAME", "x", err, sizeof err), DB_ERR_READ_ONLY);

    assert_int_equal(db_add_alias(rec, "T:alias", err, sizeof err), DB_OK);
    assert_ptr_equal(db_find_record("T:alias"), rec);
    make_record("ao", "T:ao", NULL);
    assert_int_equal(db_add_alias(rec, "T:ao", err, sizeof err), DB_ERR_SYNTAX);
    db_add_info(rec, "autosaveFields", "VAL EGU");
    db_add_info(rec, "autosaveFields", "VAL");
    assert_string_equal(db_get_info(rec, "autosaveFields"), "VAL");
    assert_null(db_get_info(rec, "missing"));

    init_db();
    char buf[DB_STRING_SIZE];
    assert_string_equal(get_string("T:ai.DESC", buf), "temperature");
    assert_string_equal(get_string("T:alias.SCAN", buf), ".5 second");
    assert_string_equal(get_string("T:ai.RTYP", buf), "ai");
    assert_int_equal(rec->scan, DB_SCAN_0_5S);
    assert_null(db_create_record("ai", "T:late", err, sizeof err));    /* no records after iocInit */
    db_addr a;
    assert_int_equal(db_name_to_addr("T:ai.NOPE", &a), DB_ERR_NOT_FOUND);
    assert_int_equal(db_name_to_addr("T:missing", &a), DB_ERR_NOT_FOUND);
}

/* Arrays convert in bulk: every element as the scalar rules say (clamped to the type's range, truncated
 * toward zero; NaN read as an integer is 0), past one conversion block, into any alignment; a put of NaN or
 * Inf into an integer array is refused whole; the same type is an exact copy. */
enum { BULK_N = 15, BULK_REPEAT = 700, BULK_LEN = BULK_N * BULK_REPEAT };

static const double bulk_in[BULK_N] = {NAN, INFINITY, -INFINITY, 1e10, -1e10, 3.7, -3.7, 255.9, -128.5, 65535.5,
                                       0.0, 2147483647.0, -2147483648.0, 40000.25, -40000.75};

static double *bulk_values(int finite)
{
    double *v = test_malloc(sizeof(double) * BULK_LEN);
    for (int i = 0; i < BULK_LEN; i++) v[i] = finite && !isfinite(bulk_in[i % BULK_N]) ? 7.0 : bulk_in[i % BULK_N];
    return v;
}

/* Reads name as doubles and compares with want (element i against want[i % BULK_N]; 7 where not finite). */
static void expect_array(const char *name, const double *want)
{
    db_addr a = addr_of(name);
    double *back = test_malloc(sizeof(double) * BULK_LEN);
    long n = BULK_LEN;
    assert_int_equal(db_get(&a, DBR_DOUBLE, back, &n), DB_OK);
    assert_int_equal(n, BULK_LEN);
    for (int i = 0; i < BULK_LEN; i++)
        assert_true(back[i] == (isfinite(bulk_in[i % BULK_N]) ? want[i % BULK_N] : 7.0));
    test_free(back);
}

static void conversions_arrays_in_bulk(void **state)
{
    (void)state;
    static const double want16[BULK_N] = {0, 0, 0, 32767, -32768, 3, -3, 255, -128, 32767, 0, 32767, -32768,
                                          32767, -32768};
    static const double want8[BULK_N] = {0, 0, 0, 255, 0, 3, 0, 255, 0, 255, 0, 255, 0, 255, 0};
    static const double want32[BULK_N] = {0, 0, 0, 2147483647.0, -2147483648.0, 3, -3, 255, -128, 65535, 0,
                                          2147483647.0, -2147483648.0, 40000, -40000};
    char nelm[16];
    snprintf(nelm, sizeof nelm, "%d", BULK_LEN);
    make_record("waveform", "C:s16", "FTVL", "SHORT", "NELM", nelm, NULL);
    make_record("waveform", "C:u8", "FTVL", "UCHAR", "NELM", nelm, NULL);
    make_record("waveform", "C:l32", "FTVL", "LONG", "NELM", nelm, NULL);
    make_record("waveform", "C:f64", "FTVL", "DOUBLE", "NELM", nelm, NULL);
    make_record("waveform", "C:f32", "FTVL", "FLOAT", "NELM", nelm, NULL);
    init_db();
    double *finite = bulk_values(1), *raw = bulk_values(0);
    db_lock();
    static const char *const integer_arrays[] = {"C:s16", "C:u8", "C:l32"};
    static const double *const wants[] = {want16, want8, want32};
    for (int k = 0; k < 3; k++) {
        db_addr a = addr_of(integer_arrays[k]);
        assert_int_equal(db_put(&a, DBR_DOUBLE, finite, BULK_LEN), DB_OK);
        expect_array(integer_arrays[k], wants[k]);
        assert_int_equal(db_put(&a, DBR_DOUBLE, raw, BULK_LEN), DB_ERR_CONVERT);     /* NaN/Inf: refused */
        expect_array(integer_arrays[k], wants[k]);                                     /* and nothing kept */
    }

    /* reads convert everything: NaN as 0, infinities clamped, into an odd address as a CA reply may be */
    db_addr f64 = addr_of("C:f64");
    assert_int_equal(db_put(&f64, DBR_DOUBLE, raw, BULK_LEN), DB_OK);
    uint8_t *odd = test_malloc(BULK_LEN + 1);
    long n = BULK_LEN;
    assert_int_equal(db_get(&f64, DBR_CHAR, odd + 1, &n), DB_OK);
    static const uint8_t read8[BULK_N] = {0, 255, 0, 255, 0, 3, 0, 255, 0, 255, 0, 255, 0, 255, 0};
    for (int i = 0; i < BULK_LEN; i++) assert_int_equal(odd[i + 1], read8[i % BULK_N]);

    /* floating point keeps NaN and the infinities; the same type gives the exact bits back */
    db_addr f32 = addr_of("C:f32");
    double *back = test_malloc(sizeof(double) * BULK_LEN);
    assert_int_equal(db_put(&f32, DBR_DOUBLE, raw, BULK_LEN), DB_OK);
    assert_int_equal(db_get(&f32, DBR_DOUBLE, back, &n), DB_OK);
    for (int i = 0; i < BULK_LEN; i++)
        assert_true(isnan(raw[i]) ? isnan(back[i]) : back[i] == (double)(float)raw[i]);
    assert_int_equal(db_get(&f64, DBR_DOUBLE, back, &n), DB_OK);
    assert_memory_equal(back, raw, sizeof(double) * BULK_LEN);
    db_unlock();
    test_free(finite);
    test_free(raw);
    test_free(odd);
    test_free(back);
}

static int collect_names(db_record *rec, void *user)
{
    char *out = user;
    strcat(out, rec->name);
    strcat(out, " ");
    return 0;
}

static void foreach_in_name_order(void **state)
{
    (void)state;
    make_record("ai", "c", NULL);
    make_record("ai", "a", NULL);
    make_record("longin", "b", NULL);
    char names[64] = "";
    db_foreach_record(collect_names, names);
    assert_string_equal(names, "a b c ");
    const db_record_type *t = db_find_record_type("ai");
    assert_non_null(t);
    int saw_val = 0, saw_flnk = 0;
    for (size_t i = 0; i < db_field_count(t); i++) {
        saw_val |= strcmp(db_field_at(t, i)->name, "VAL") == 0;
        saw_flnk |= strcmp(db_field_at(t, i)->name, "FLNK") == 0;
    }
    assert_true(saw_val && saw_flnk);
}

static void conversions_numeric(void **state)
{
    (void)state;
    make_record("ai", "C:ai", "PREC", "2", NULL);
    make_record("longin", "C:li", NULL);
    make_record("int64in", "C:q", NULL);
    init_db();
    db_addr a = addr_of("C:ai");
    assert_int_equal(a.type, DBF_DOUBLE);
    assert_int_equal(a.max_elements, 1);
    db_lock();
    double d = 3.14159;
    assert_int_equal(db_put(&a, DBR_DOUBLE, &d, 1), DB_OK);
    char s[DB_STRING_SIZE];
    long n = 1;
    assert_int_equal(db_get(&a, DBR_STRING, s, &n), DB_OK);
    assert_string_equal(s, "3.14");                     /* PREC 2 */
    int16_t sh;
    assert_int_equal(db_get(&a, DBR_SHORT, &sh, &n), DB_OK);
    assert_int_equal(sh, 3);
    float f;
    assert_int_equal(db_get(&a, DBR_FLOAT, &f, &n), DB_OK);
    assert_float_equal(f, 3.14159f, 1e-6);
    int32_t l;
    uint8_t c;
    uint16_t e;
    assert_int_equal(db_get(&a, DBR_LONG, &l, &n), DB_OK);
    assert_int_equal(db_get(&a, DBR_CHAR, &c, &n), DB_OK);
    assert_int_equal(db_get(&a, DBR_ENUM, &e, &n), DB_OK);
    assert_int_equal(l, 3);
    assert_int_equal(c, 3);
    assert_int_equal(e, 3);
    /* Text in: numbers, hex for integers, bad text refused without changing the value. */
    assert_int_equal(db_put(&a, DBR_STRING, "  -2.5e1 ", 1), DB_OK);
    assert_int_equal(db_get(&a, DBR_DOUBLE, &d, &n), DB_OK);
    assert_true(d == -25.0);
    assert_int_equal(db_put(&a, DBR_STRING, "abc", 1), DB_ERR_CONVERT);
    assert_int_equal(db_put(&a, DBR_STRING, "", 1), DB_ERR_CONVERT);
    assert_int_equal(db_get(&a, DBR_DOUBLE, &d, &n), DB_OK);
    assert_true(d == -25.0);
    db_addr li = addr_of("C:li");
    assert_int_equal(db_put(&li, DBR_STRING, "0x1F", 1), DB_OK);
    assert_int_equal(db_get(&li, DBR_LONG, &l, &n), DB_OK);
    assert_int_equal(l, 31);
    assert_int_equal(db_put(&li, DBR_STRING, "2.0", 1), DB_OK);     /* caput "2.0" to a long works */
    assert_int_equal(db_get(&li, DBR_LONG, &l, &n), DB_OK);
    assert_int_equal(l, 2);
    d = 1e12;                                                        /* out of range: clamped */
    assert_int_equal(db_put(&li, DBR_DOUBLE, &d, 1), DB_OK);
    assert_int_equal(db_get(&li, DBR_LONG, &l, &n), DB_OK);
    assert_int_equal(l, INT32_MAX);
    assert_int_equal(db_get(&li, DBR_SHORT, &sh, &n), DB_OK);
    assert_int_equal(sh, INT16_MAX);
    /* 64-bit integers keep all their digits through text. */
    db_addr q = addr_of("C:q");
    assert_int_equal(db_put(&q, DBR_STRING, "9007199254740993", 1), DB_OK);
    assert_int_equal(db_get(&q, DBR_STRING, s, &n), DB_OK);
    assert_string_equal(s, "9007199254740993");
    assert_int_equal(db_get(&q, DBR_DOUBLE + 1, s, &n), DB_ERR_BAD_TYPE);
    db_unlock();
}

/* A put of NaN or Inf into an integer or menu field is refused and the field keeps its value (it was stored as 0
 * or clamped: a raw motor target or a menu choice the client never meant); a VAL set at load defines the record. */
static void non_finite_puts_and_load_time_val(void **state)
{
    (void)state;
    make_record("longout", "N:lo", "VAL", "5", NULL);
    make_record("ao", "N:unset", NULL);
    init_db();
    db_record *lo = db_find_record("N:lo");
    assert_int_equal(lo->udf, 0);                                   /* field(VAL, "5") defines it */
    assert_int_equal(db_find_record("N:unset")->udf, 1);
    db_addr a = addr_of("N:lo");
    db_addr scan = addr_of("N:lo.SCAN");
    db_lock();
    const double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(db_put(&a, DBR_DOUBLE, &bad[i], 1), DB_ERR_CONVERT);
        assert_int_equal(db_put(&scan, DBR_DOUBLE, &bad[i], 1), DB_ERR_CONVERT);
    }
    assert_int_equal(db_put(&a, DBR_STRING, "NaN", 1), DB_ERR_CONVERT);
    assert_int_equal(db_put(&a, DBR_STRING, "-inf", 1), DB_ERR_CONVERT);
    int32_t l;
    long n = 1;
    assert_int_equal(db_get(&a, DBR_LONG, &l, &n), DB_OK);
    assert_int_equal(l, 5);
    assert_int_equal(lo->scan, DB_SCAN_PASSIVE);
    db_unlock();
}

/* Writes 7 as each client type and reads it back as each client type, into fields of several types. */
static void conversions_every_client_type(void **state)
{
    (void)state;
    make_record("ai", "X:ai", NULL);
    make_record("longin", "X:li", NULL);
    make_record("stringin", "X:si", NULL);
    make_record("mbbi", "X:mb", NULL);
    static const char *ftvl[] = {"STRING", "CHAR", "UCHAR", "SHORT", "USHORT", "LONG", "ULONG", "INT64",
                                 "UINT64", "FLOAT", "DOUBLE", "ENUM"};
    char names[12][16];
    for (int i = 0; i < 12; i++) {
        snprintf(names[i], sizeof names[i], "X:wf%d", i);
        make_record("waveform", names[i], "FTVL", ftvl[i], "NELM", "2", NULL);
    }
    init_db();
    const char *channels[] = {"X:ai", "X:li", "X:si", "X:mb", "X:ai.PHAS", names[0], names[1], names[2],
                              names[3], names[4], names[5], names[6], names[7], names[8], names[9], names[10],
                              names[11]};
    union { char s[DB_STRING_SIZE]; int16_t sh; float f; uint16_t e; uint8_t c; int32_t l; double d; } in, out;
    db_lock();
    for (size_t k = 0; k < sizeof channels / sizeof channels[0]; k++) {
        db_addr a = addr_of(channels[k]);
        for (int t = DBR_STRING; t <= DBR_DOUBLE; t++) {
            memset(&in, 0, sizeof in);
            switch (t) {
            case DBR_STRING: strcpy(in.s, "7"); break;
            case DBR_SHORT: in.sh = 7; break;
            case DBR_FLOAT: in.f = 7; break;
            case DBR_ENUM: in.e = 7; break;
            case DBR_CHAR: in.c = 7; break;
            case DBR_LONG: in.l = 7; break;
            default: in.d = 7; break;
            }
            int status = db_put(&a, (dbr_value_type)t, &in, 1);
            if (status != DB_OK) fail_msg("%s put as type %d: %s", channels[k], t, db_strerror(status));
            for (int u = DBR_STRING; u <= DBR_DOUBLE; u++) {
                long n = 1;
                memset(&out, 0, sizeof out);
                status = db_get(&a, (dbr_value_type)u, &out, &n);
                int ok = status == DB_OK && n == 1;
                switch (u) {
                case DBR_STRING: ok = ok && strcmp(out.s, "7") == 0; break;
                case DBR_SHORT: ok = ok && out.sh == 7; break;
                case DBR_FLOAT: ok = ok && out.f == 7; break;
                case DBR_ENUM: ok = ok && out.e == 7; break;
                case DBR_CHAR: ok = ok && out.c == 7; break;
                case DBR_LONG: ok = ok && out.l == 7; break;
                default: ok = ok && out.d == 7; break;
                }
                if (!ok) fail_msg("%s put as type %d, read as type %d: status %d", channels[k], t, u, status);
            }
        }
    }
    db_unlock();
}

static void conversions_menus_and_strings(void **state)
{
    (void)state;
    make_record("ai", "M:ai", NULL);
    make_record("stringin", "M:si", NULL);
    init_db();
    db_addr scan = addr_of("M:ai.SCAN");
    assert_int_equal(scan.type, DBF_MENU);
    db_lock();
    assert_int_equal(db_put(&scan, DBR_STRING, "1 second", 1), DB_OK);
    uint16_t e;
    long n = 1;
    assert_int_equal(db_get(&scan, DBR_ENUM, &e, &n), DB_OK);
    assert_int_equal(e, DB_SCAN_1S);
    assert_int_equal(db_put(&scan, DBR_STRING, "3", 1), DB_OK);     /* index as text */
    char s[DB_STRING_SIZE];
    assert_int_equal(db_get(&scan, DBR_STRING, s, &n), DB_OK);
    assert_string_equal(s, "10 second");
    assert_int_equal(db_put(&scan, DBR_STRING, "Sometimes", 1), DB_ERR_CONVERT);
    e = 42;
    assert_int_equal(db_put(&scan, DBR_ENUM, &e, 1), DB_ERR_CONVERT);
    assert_int_equal(db_get(&scan, DBR_STRING, s, &n), DB_OK);
    assert_string_equal(s, "10 second");
    db_meta meta;
    db_get_meta(&scan, &meta);
    assert_int_equal(meta.nstrs, 10);
    assert_string_equal(meta.strs[2], "I/O Intr");
    assert_string_equal(meta.class_name, "ai");
    /* stringin VAL: numbers become text, text that is a number reads as a number */
    db_addr si = addr_of("M:si");
    double d = 2.5;
    assert_int_equal(db_put(&si, DBR_DOUBLE, &d, 1), DB_OK);
    assert_int_equal(db_get(&si, DBR_STRING, s, &n), DB_OK);
    assert_string_equal(s, "2.5");
    assert_int_equal(db_put(&si, DBR_STRING, "12", 1), DB_OK);
    int32_t l;
    assert_int_equal(db_get(&si, DBR_LONG, &l, &n), DB_OK);
    assert_int_equal(l, 12);
    assert_int_equal(db_put(&si, DBR_STRING, "twelve", 1), DB_OK);
    assert_int_equal(db_get(&si, DBR_LONG, &l, &n), DB_ERR_CONVERT);
    /* Long strings: DESC$ is a CHAR array holding the whole text. */
    db_addr desc = addr_of("M:ai.DESC$");
    assert_int_equal(desc.type, DBF_CHAR);
    assert_int_equal(desc.max_elements, DB_DESC_SIZE);
    const char *text = "a description of forty characters, yes!";
    assert_int_equal(db_put(&desc, DBR_CHAR, text, (long)strlen(text) + 1), DB_OK);
    char big[DB_DESC_SIZE];
    n = 0;
    assert_int_equal(db_get(&desc, DBR_CHAR, big, &n), DB_OK);
    assert_int_equal(n, (long)strlen(text) + 1);
    assert_string_equal(big, text);
    assert_int_equal(db_current_elements(&desc), (long)strlen(text) + 1);
    db_unlock();
}

/* Raises and clears an INVALID alarm (UDF through a NaN value) so that ACKS latches it. */
static void make_alarm(db_record *ai)
{
    put_double("P:ai", NAN);
    assert_int_equal(ai->sevr, INVALID_ALARM);
    put_double("P:ai", 1);
    assert_int_equal(ai->sevr, NO_ALARM);
}

static void client_puts(void **state)
{
    (void)state;
    db_record *ai = make_record("ai", "P:ai", NULL);
    init_db();
    assert_int_equal(ai->udf, 1);
    assert_int_equal(ai->sevr, INVALID_ALARM);
    assert_int_equal(put_double("P:ai", 4.0), DB_OK);                 /* processes: UDF alarm cleared */
    assert_int_equal(ai->udf, 0);
    assert_int_equal(ai->sevr, NO_ALARM);
    assert_true(ai->time.tv_sec > 0);
    assert_int_equal(put_double("P:ai.STAT", 1), DB_ERR_READ_ONLY);
    assert_int_equal(put_double("P:ai.RTYP", 1), DB_ERR_READ_ONLY);
    assert_int_equal(put_double("P:ai.DISP", 1), DB_OK);
    assert_int_equal(put_double("P:ai", 5.0), DB_ERR_DISABLED);
    assert_true(get_double("P:ai") == 4.0);
    assert_int_equal(put_double("P:ai.DISP", 0), DB_OK);               /* DISP itself stays writable */
    assert_int_equal(put_double("P:ai", 5.0), DB_OK);
    assert_true(get_double("P:ai") == 5.0);
    db_addr a = addr_of("P:ai");
    assert_int_equal(db_put_text(&a, "6.5"), DB_OK);
    char text[64];
    assert_int_equal(db_get_text(&a, text, sizeof text), DB_OK);
    assert_string_equal(text, "6.5");
    assert_int_equal(db_put_text(&a, "oops"), DB_ERR_CONVERT);
    /* Alarm acknowledgement: ACKS holds the highest unacknowledged severity until a client acknowledges. */
    make_alarm(ai);
    assert_int_equal(ai->acks, INVALID_ALARM);
    assert_int_equal(put_string("P:ai.ACKS", "MINOR"), DB_OK);       /* too low: still unacknowledged */
    assert_int_equal(ai->acks, INVALID_ALARM);
    assert_int_equal(put_string("P:ai.ACKS", "INVALID"), DB_OK);
    assert_int_equal(ai->acks, NO_ALARM);
}

static void monitors_and_deadbands(void **state)
{
    (void)state;
    make_record("ai", "D:ai", "MDEL", "1", "ADEL", "5", NULL);
    init_db();
    db_addr a = addr_of("D:ai");
    event_log log = {0};
    db_subscription *sub = db_subscribe(&a, DBE_VALUE | DBE_LOG | DBE_ALARM, log_event, &log);
    put_double("D:ai", 0.5);          /* UDF alarm clears: alarm event; 0.5 is within both deadbands */
    assert_int_equal(log.count, 1);
    assert_int_equal(log.masks[0], DBE_ALARM);
    put_double("D:ai", 1.6);          /* beyond MDEL only */
    assert_int_equal(log.count, 2);
    assert_int_equal(log.masks[1], DBE_VALUE);
    assert_true(log.values[1] == 1.6);
    put_double("D:ai", 2.0);          /* within MDEL of 1.6 */
    assert_int_equal(log.count, 2);
    put_double("D:ai", 6.0);          /* beyond both */
    assert_int_equal(log.count, 3);
    assert_int_equal(log.masks[2], DBE_VALUE | DBE_LOG);
    db_unsubscribe(sub);
    put_double("D:ai", 100.0);
    assert_int_equal(log.count, 3);
    /* A property field posts DBE_PROPERTY to its own subscribers. */
    db_addr egu = addr_of("D:ai.EGU");
    event_log plog = {0};
    db_subscribe(&egu, DBE_PROPERTY, log_event, &plog);
    put_string("D:ai.EGU", "mm");
    assert_int_equal(plog.count, 1);
    assert_true(plog.masks[0] & DBE_PROPERTY);
}

static void init_twice_in_one_process(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        if (round) db_register_builtins();
        make_record("ai", "R:ai", "SCAN", ".1 second", NULL);
        init_db();
        assert_true(db_is_running());
        put_double("R:ai", round);
        assert_true(get_double("R:ai") == round);
        db_shutdown();
        assert_false(db_is_running());
        assert_null(db_find_record("R:ai"));
    }
    db_register_builtins();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_and_set_fields, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(foreach_in_name_order, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(conversions_numeric, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(conversions_arrays_in_bulk, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(conversions_every_client_type, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(conversions_menus_and_strings, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(non_finite_puts_and_load_time_val, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(client_puts, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(monitors_and_deadbands, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(init_twice_in_one_process, setup_db, teardown_db),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
