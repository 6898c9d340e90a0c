/* test_pva_codec.c -- unit tests of the pvAccess codec against the wire examples of pva-facts.md: Size and
 * String forms, Status, BitSets in both byte orders, received type descriptors with the introspection cache,
 * pvRequest walks, the NTScalar bit numbering, put decoding and search replies. */
#include "unit.h"

#include "core/pva/pva_internal.h"

static pva_reader reader(const uint8_t *p, size_t n, int be)
{
    return (pva_reader){ .p = p, .end = p + n, .be = be };
}

static void sizes_strings_and_status(void **state)
{
    (void)state;
    pva_buf b = { 0 };
    pva_put_size(&b, 253);
    pva_put_size(&b, 300);                          /* §15.3: fe 2c 01 00 00 */
    pva_put_string(&b, "T:ai");
    pva_put_status(&b, PVA_OK, NULL);
    pva_put_status(&b, PVA_ERROR, "Put not permitted");
    static const uint8_t want[] = { 0xfd, 0xfe, 0x2c, 0x01, 0x00, 0x00, 0x04, 'T', ':', 'a', 'i', 0xff, 0x02, 0x11,
                                    'P', 'u', 't', ' ', 'n', 'o', 't', ' ', 'p', 'e', 'r', 'm', 'i', 't', 't', 'e',
                                    'd', 0x00 };
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    pva_reader r = reader(want, sizeof want, 0);
    assert_int_equal(pva_get_size(&r), 253);
    assert_int_equal(pva_get_size(&r), 300);
    char s[8];
    pva_get_string(&r, s, sizeof s);
    assert_string_equal(s, "T:ai");
    assert_false(r.bad);
    /* a Size promising more than there is: the reader is marked bad, never reads past the end */
    static const uint8_t cut[] = { 0x05, 'a', 'b' };
    r = reader(cut, sizeof cut, 0);
    pva_get_string(&r, s, sizeof s);
    assert_true(r.bad);
    /* 0xFF is the null Size */
    static const uint8_t null_size[] = { 0xff };
    r = reader(null_size, 1, 0);
    assert_int_equal(pva_get_size(&r), -1);
    pva_buf_free(&b);
}

static void bitsets_in_both_orders(void **state)
{
    (void)state;
    /* §11.1: the first GET of T:ai marks bits 1,3,4,5,7,8,9,11-15,17,18,20,21,25-28 = 04 ba fb 36 1e */
    uint64_t mask = 0;
    static const int bits[] = { 1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 15, 17, 18, 20, 21, 25, 26, 27, 28 };
    for (size_t i = 0; i < sizeof bits / sizeof *bits; i++)
        mask |= 1ull << bits[i];
    pva_buf b = { 0 };
    pva_put_bitset(&b, mask);
    static const uint8_t want[] = { 0x04, 0xba, 0xfb, 0x36, 0x1e };
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    pva_reader r = reader(want, sizeof want, 1);     /* fewer than 8 bytes: byte by byte in either order */
    assert_true(pva_get_bitset(&r) == mask);
    /* a full 64-bit word follows the message order: reversed when big endian */
    static const uint8_t be_word[] = { 0x08, 0x80, 0, 0, 0, 0, 0, 0, 0x01 };
    r = reader(be_word, sizeof be_word, 1);
    assert_true(pva_get_bitset(&r) == (1ull << 63 | 1ull));
    pva_buf_free(&b);
}

typedef struct seen {
    char paths[8][64];
    char texts[8][16];
    int n;
} seen;

static void remember(void *user, const char *path, const char *text)
{
    seen *s = user;
    if (s->n < 8) {
        snprintf(s->paths[s->n], sizeof s->paths[0], "%s", path);
        snprintf(s->texts[s->n], sizeof s->texts[0], "%s", text ? text : "(struct)");
        s->n++;
    }
}

static void pvrequest_with_cache_markers(void **state)
{
    (void)state;
    /* field(value) record[block=true], its structure defined under cache key 1, then reused by key */
    static const uint8_t defined[] = {
        0xfd, 0x01, 0x00, 0x80, 0x00, 0x02,
        0x05, 'f', 'i', 'e', 'l', 'd', 0x80, 0x00, 0x01, 0x05, 'v', 'a', 'l', 'u', 'e', 0x80, 0x00, 0x00,
        0x06, 'r', 'e', 'c', 'o', 'r', 'd', 0x80, 0x00, 0x01,
        0x08, '_', 'o', 'p', 't', 'i', 'o', 'n', 's', 0x80, 0x00, 0x01, 0x05, 'b', 'l', 'o', 'c', 'k', 0x60,
        0x04, 't', 'r', 'u', 'e' };
    static const uint8_t reused[] = { 0xfe, 0x01, 0x00, 0x05, 'f', 'a', 'l', 's', 'e' };
    pva_type_cache cache = { 0 };
    for (int pass = 0; pass < 2; pass++) {
        pva_reader r = pass ? reader(reused, sizeof reused, 0) : reader(defined, sizeof defined, 0);
        pva_type *t = pva_type_decode(&r, &cache);
        assert_non_null(t);
        seen s = { .n = 0 };
        pva_value_walk(&r, t, &cache, remember, &s);
        assert_false(r.bad);
        assert_int_equal(s.n, 2);
        assert_string_equal(s.paths[0], "field.value");
        assert_string_equal(s.texts[0], "(struct)");
        assert_string_equal(s.paths[1], "record._options.block");
        assert_string_equal(s.texts[1], pass ? "false" : "true");
        pva_type_free(t);
    }
    /* an unknown key is an error, not a crash */
    static const uint8_t unknown[] = { 0xfe, 0x07, 0x00 };
    pva_reader r = reader(unknown, sizeof unknown, 0);
    assert_null(pva_type_decode(&r, &cache));
    assert_true(r.bad);
    pva_type_cache_free(&cache);
}

static void deep_or_huge_types_are_refused(void **state)
{
    (void)state;
    uint8_t deep[256];
    size_t n = 0;
    for (int i = 0; i < 60; i++) {             /* struct { struct { ... } } 60 levels down */
        deep[n++] = 0x80;
        deep[n++] = 0x00;
        deep[n++] = 0x01;
        deep[n++] = 0x00;                      /* member name "" */
    }
    pva_type_cache cache = { 0 };
    pva_reader r = reader(deep, n, 0);
    assert_null(pva_type_decode(&r, &cache));
    assert_true(r.bad);
    static const uint8_t many[] = { 0x80, 0x00, 0xfe, 0x00, 0x00, 0x01, 0x00 };    /* 65536 members */
    r = reader(many, sizeof many, 0);
    assert_null(pva_type_decode(&r, &cache));
    assert_true(r.bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes_strings_and_status),
        cmocka_unit_test(bitsets_in_both_orders),
        cmocka_unit_test(pvrequest_with_cache_markers),
        cmocka_unit_test(deep_or_huge_types_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
