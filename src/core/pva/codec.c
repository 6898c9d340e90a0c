/* codec.c -- the pvAccess wire codec: message headers, primitive encodings (little endian out, either order
 * in), Size/String/Status/BitSet, received type descriptors with the per-connection introspection cache, and a
 * walk over received full values (pvRequest, auth data). Pure functions of buffers; no locks. */
#include "core/pva/pva_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"

#define MAX_TYPE_DEPTH   16
#define MAX_MEMBERS      256
#define MAX_CACHED_TYPES 1024

size_t pva_scalar_size(uint8_t code)
{
    switch (code) {
    case PVA_BOOL: case PVA_INT8: case PVA_UINT8: return 1;
    case PVA_INT16: case PVA_UINT16: return 2;
    case PVA_INT32: case PVA_UINT32: case PVA_FLOAT: return 4;
    case PVA_INT64: case PVA_UINT64: case PVA_DOUBLE: return 8;
    default: return 0;
    }
}

/* ---------------------------------------------------------------------------------------------------
 * Buffers and writing
 */
uint8_t *pva_buf_reserve(pva_buf *b, size_t n)
{
    if (b->head + b->len + n > b->cap) {
        if (b->head) {
            memmove(b->data, b->data + b->head, b->len);
            b->head = 0;
        }
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : 256;
            while (cap < b->len + n)
                cap *= 2;
            b->data = xrealloc(b->data, cap);
            b->cap = cap;
        }
    }
    uint8_t *p = b->data + b->head + b->len;
    b->len += n;
    return p;
}

void pva_buf_append(pva_buf *b, const void *src, size_t n)
{
    if (n)
        memcpy(pva_buf_reserve(b, n), src, n);
}

void pva_buf_consume(pva_buf *b, size_t n)
{
    b->head += n;
    b->len -= n;
    if (b->len == 0)
        b->head = 0;
}

void pva_buf_reset(pva_buf *b)
{
    b->head = b->len = 0;
}

void pva_buf_free(pva_buf *b)
{
    free(b->data);
    *b = (pva_buf){ 0 };
}

void pva_put8(pva_buf *b, uint8_t v) { *pva_buf_reserve(b, 1) = v; }

void pva_put16(pva_buf *b, uint16_t v)
{
    uint8_t *p = pva_buf_reserve(b, 2);
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void pva_put32(pva_buf *b, uint32_t v)
{
    uint8_t *p = pva_buf_reserve(b, 4);
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void pva_put64(pva_buf *b, uint64_t v)
{
    uint8_t *p = pva_buf_reserve(b, 8);
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void pva_put_double(pva_buf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    pva_put64(b, u);
}

void pva_put_size(pva_buf *b, size_t n)
{
    if (n < 254) {
        pva_put8(b, (uint8_t)n);
    } else {
        pva_put8(b, 254);
        pva_put32(b, (uint32_t)n);
    }
}

void pva_put_string_n(pva_buf *b, const char *s, size_t n)
{
    pva_put_size(b, n);
    pva_buf_append(b, s, n);
}

void pva_put_string(pva_buf *b, const char *s)
{
    pva_put_string_n(b, s, strlen(s));
}

void pva_put_status(pva_buf *b, int type, const char *message)
{
    if (type == PVA_OK && (!message || !*message)) {
        pva_put8(b, 0xFF);
        return;
    }
    pva_put8(b, (uint8_t)type);
    pva_put_string(b, message ? message : "");
    pva_put_string(b, "");
}

void pva_put_bitset(pva_buf *b, uint64_t mask)
{
    unsigned n = 0;
    while (n < 8 && (mask >> (8 * n)))
        n++;
    pva_put_size(b, n);
    if (n == 8)
        pva_put64(b, mask);     /* a full word, in the message order (LE) */
    else
        for (unsigned i = 0; i < n; i++)
            pva_put8(b, (uint8_t)(mask >> (8 * i)));
}

size_t pva_msg_begin(pva_buf *b, uint8_t cmd)
{
    size_t start = b->len;
    uint8_t *p = pva_buf_reserve(b, PVA_HDR_SIZE);
    p[0] = PVA_MAGIC;
    p[1] = PVA_VERSION;
    p[2] = PVA_FLAG_SERVER;
    p[3] = cmd;
    memset(p + 4, 0, 4);
    return start;
}

void pva_msg_end(pva_buf *b, size_t start)
{
    pva_msg_end_spliced(b, start, 0);
}

void pva_msg_end_spliced(pva_buf *b, size_t start, size_t spliced)
{
    uint32_t size = (uint32_t)(b->len - start - PVA_HDR_SIZE + spliced);
    uint8_t *p = b->data + b->head + start + 4;
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(size >> (8 * i));
}

void pva_put_control(pva_buf *b, uint8_t code, uint32_t data)
{
    size_t start = pva_msg_begin(b, code);
    b->data[b->head + start + 2] |= PVA_FLAG_CONTROL;
    pva_put32(b, data);
    b->len -= 4;                /* the data word sits in the size field */
    uint8_t *p = b->data + b->head + start + 4;
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(data >> (8 * i));
}

/* ---------------------------------------------------------------------------------------------------
 * Reading
 */
int pva_hdr_decode(const uint8_t *buf, pva_hdr *h)
{
    if (buf[0] != PVA_MAGIC || buf[1] == 0)
        return -1;
    h->flags = buf[2];
    h->cmd = buf[3];
    if (h->flags & PVA_FLAG_BE)
        h->size = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
    else
        h->size = (uint32_t)buf[7] << 24 | (uint32_t)buf[6] << 16 | (uint32_t)buf[5] << 8 | buf[4];
    return 0;
}

static const uint8_t *take(pva_reader *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

static uint64_t get_n(pva_reader *r, unsigned n)
{
    const uint8_t *p = take(r, n);
    uint64_t v = 0;
    if (!p)
        return 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[r->be ? n - 1 - i : i] << (8 * i);
    return v;
}

uint8_t pva_get8(pva_reader *r) { return (uint8_t)get_n(r, 1); }
uint16_t pva_get16(pva_reader *r) { return (uint16_t)get_n(r, 2); }
uint32_t pva_get32(pva_reader *r) { return (uint32_t)get_n(r, 4); }
uint64_t pva_get64(pva_reader *r) { return get_n(r, 8); }

double pva_get_double(pva_reader *r)
{
    uint64_t u = pva_get64(r);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

void pva_skip(pva_reader *r, size_t n)
{
    take(r, n);
}

long pva_get_size(pva_reader *r)
{
    uint8_t b = pva_get8(r);
    if (b == 0xFF)
        return -1;
    if (b < 254)
        return b;
    int32_t n = (int32_t)pva_get32(r);
    if (n < 0) {
        r->bad = 1;
        return 0;
    }
    return n;
}

void pva_get_string(pva_reader *r, char *out, size_t outlen)
{
    long n = pva_get_size(r);
    if (n < 0)
        n = 0;
    const uint8_t *p = take(r, (size_t)n);
    size_t k = p ? (size_t)n : 0;
    if (k >= outlen)
        k = outlen - 1;
    if (p)
        memcpy(out, p, k);
    out[k] = 0;
}

uint64_t pva_get_bitset(pva_reader *r)
{
    long n = pva_get_size(r);
    uint64_t mask = 0;
    if (n < 0)
        n = 0;
    long words = n / 8;
    for (long w = 0; w < words && !r->bad; w++) {
        uint64_t v = pva_get64(r);
        if (w == 0)
            mask = v;
    }
    for (long i = 0; i < n % 8 && !r->bad; i++) {
        uint8_t v = pva_get8(r);
        if (words == 0)
            mask |= (uint64_t)v << (8 * i);
    }
    return mask;
}

/* ---------------------------------------------------------------------------------------------------
 * Received type descriptors
 */
void pva_type_free(pva_type *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->nmembers; i++) {
        free(t->names[i]);
        pva_type_free(t->members[i]);
    }
    free(t->names);
    free(t->members);
    free(t->id);
    pva_type_free(t->element);
    free(t);
}

pva_type *pva_type_copy(const pva_type *t)
{
    if (!t)
        return NULL;
    pva_type *c = xcalloc(1, sizeof *c);
    c->code = t->code;
    c->id = t->id ? xstrdup(t->id) : NULL;
    c->nmembers = t->nmembers;
    if (t->nmembers) {
        c->names = xcalloc(t->nmembers, sizeof *c->names);
        c->members = xcalloc(t->nmembers, sizeof *c->members);
        for (uint32_t i = 0; i < t->nmembers; i++) {
            c->names[i] = xstrdup(t->names[i]);
            c->members[i] = pva_type_copy(t->members[i]);
        }
    }
    c->element = pva_type_copy(t->element);
    return c;
}

void pva_type_cache_free(pva_type_cache *cache)
{
    for (size_t i = 0; i < cache->n; i++)
        pva_type_free(cache->types[i]);
    free(cache->keys);
    free(cache->types);
    *cache = (pva_type_cache){ 0 };
}

static char *get_string_dup(pva_reader *r)
{
    long n = pva_get_size(r);
    if (n < 0)
        n = 0;
    const uint8_t *p = take(r, (size_t)n);
    char *s = xmalloc((size_t)(p ? n : 0) + 1);
    if (p)
        memcpy(s, p, (size_t)n);
    s[p ? n : 0] = 0;
    return s;
}

static int valid_scalar_code(uint8_t code)
{
    return pva_scalar_size(code) || code == PVA_STRING;
}

static pva_type *decode_type(pva_reader *r, pva_type_cache *cache, int depth);

/* Structure or union body: id, member count, name + type for each. */
static pva_type *decode_members(pva_reader *r, pva_type_cache *cache, uint8_t code, int depth)
{
    pva_type *t = xcalloc(1, sizeof *t);
    t->code = code;
    t->id = get_string_dup(r);
    long n = pva_get_size(r);
    if (n < 0 || n > MAX_MEMBERS) {
        r->bad = 1;
        return t;
    }
    t->names = xcalloc((size_t)n + 1, sizeof *t->names);
    t->members = xcalloc((size_t)n + 1, sizeof *t->members);
    for (long i = 0; i < n && !r->bad; i++) {
        t->names[i] = get_string_dup(r);
        t->members[i] = decode_type(r, cache, depth + 1);
        t->nmembers = (uint32_t)i + 1;
        if (!t->members[i])
            r->bad = 1;     /* a member must have a type */
    }
    return t;
}

static pva_type *decode_type(pva_reader *r, pva_type_cache *cache, int depth)
{
    if (depth > MAX_TYPE_DEPTH) {
        r->bad = 1;
        return NULL;
    }
    uint8_t code = pva_get8(r);
    if (r->bad || code == PVA_NULL_TYPE)
        return NULL;
    if (code == 0xFE) {                 /* reuse a cached type */
        uint16_t key = pva_get16(r);
        for (size_t i = 0; i < cache->n && !r->bad; i++)
            if (cache->keys[i] == key)
                return pva_type_copy(cache->types[i]);
        r->bad = 1;
        return NULL;
    }
    if (code == 0xFD) {                 /* define a cached type */
        uint16_t key = pva_get16(r);
        pva_type *t = decode_type(r, cache, depth + 1);
        if (r->bad || !t) {
            pva_type_free(t);
            r->bad = 1;
            return NULL;
        }
        size_t i = 0;
        while (i < cache->n && cache->keys[i] != key)
            i++;
        if (i == cache->n) {
            if (cache->n >= MAX_CACHED_TYPES) {
                pva_type_free(t);
                r->bad = 1;
                return NULL;
            }
            cache->keys = xrealloc(cache->keys, (cache->n + 1) * sizeof *cache->keys);
            cache->types = xrealloc(cache->types, (cache->n + 1) * sizeof *cache->types);
            cache->n++;
        } else {
            pva_type_free(cache->types[i]);
        }
        cache->keys[i] = key;
        cache->types[i] = pva_type_copy(t);
        return t;
    }
    uint8_t form = code & 0x18, base = code & ~0x18;
    if (form == 0x10 || form == 0x18) {
        r->bad = 1;                     /* bounded/fixed forms: never used by current peers */
        return NULL;
    }
    if (code == PVA_STRUCT || code == PVA_UNION)
        return decode_members(r, cache, code, depth);
    if (code == (PVA_STRUCT | PVA_ARRAY) || code == (PVA_UNION | PVA_ARRAY)) {
        uint8_t ecode = pva_get8(r);
        if (ecode != (code & ~PVA_ARRAY)) {
            r->bad = 1;
            return NULL;
        }
        pva_type *t = xcalloc(1, sizeof *t);
        t->code = code;
        t->element = decode_members(r, cache, ecode, depth + 1);
        return t;
    }
    if (code == PVA_ANY || code == (PVA_ANY | PVA_ARRAY) || valid_scalar_code(base)) {
        pva_type *t = xcalloc(1, sizeof *t);
        t->code = code;
        return t;
    }
    r->bad = 1;
    return NULL;
}

pva_type *pva_type_decode(pva_reader *r, pva_type_cache *cache)
{
    pva_type *t = decode_type(r, cache, 0);
    if (r->bad) {
        pva_type_free(t);
        return NULL;
    }
    return t;
}

/* ---------------------------------------------------------------------------------------------------
 * Walking received values
 */
static void scalar_text(pva_reader *r, uint8_t code, char *text, size_t len)
{
    switch (code) {
    case PVA_BOOL: snprintf(text, len, "%s", pva_get8(r) ? "true" : "false"); break;
    case PVA_INT8: snprintf(text, len, "%d", (int8_t)pva_get8(r)); break;
    case PVA_UINT8: snprintf(text, len, "%u", pva_get8(r)); break;
    case PVA_INT16: snprintf(text, len, "%d", (int16_t)pva_get16(r)); break;
    case PVA_UINT16: snprintf(text, len, "%u", pva_get16(r)); break;
    case PVA_INT32: snprintf(text, len, "%d", (int32_t)pva_get32(r)); break;
    case PVA_UINT32: snprintf(text, len, "%u", pva_get32(r)); break;
    case PVA_INT64: snprintf(text, len, "%lld", (long long)(int64_t)pva_get64(r)); break;
    case PVA_UINT64: snprintf(text, len, "%llu", (unsigned long long)pva_get64(r)); break;
    case PVA_FLOAT: {
        uint32_t u = pva_get32(r);
        float f;
        memcpy(&f, &u, 4);
        snprintf(text, len, "%.9g", f);
        break;
    }
    case PVA_DOUBLE: snprintf(text, len, "%.17g", pva_get_double(r)); break;
    default: pva_get_string(r, text, len); break;
    }
}

static void walk(pva_reader *r, const pva_type *t, pva_type_cache *cache, char *path, size_t plen,
                 pva_visit_fn visit, void *user, int depth);

static void walk_members(pva_reader *r, const pva_type *t, pva_type_cache *cache, char *path, size_t plen,
                         pva_visit_fn visit, void *user, int depth)
{
    if (t->code == PVA_UNION) {
        long sel = pva_get_size(r);
        if (sel >= 0 && (uint32_t)sel >= t->nmembers)
            r->bad = 1;
        else if (sel >= 0)
            walk(r, t->members[sel], cache, path, plen, visit, user, depth + 1);
        return;
    }
    if (t->nmembers == 0 && visit)
        visit(user, path, NULL);
    size_t base = strlen(path);
    for (uint32_t i = 0; i < t->nmembers && !r->bad; i++) {
        snprintf(path + base, plen - base, "%s%s", base ? "." : "", t->names[i]);
        walk(r, t->members[i], cache, path, plen, visit, user, depth + 1);
        path[base] = 0;
    }
}

static void walk(pva_reader *r, const pva_type *t, pva_type_cache *cache, char *path, size_t plen,
                 pva_visit_fn visit, void *user, int depth)
{
    if (r->bad || depth > 2 * MAX_TYPE_DEPTH) {
        r->bad = 1;
        return;
    }
    uint8_t code = t->code;
    if (code == PVA_STRUCT || code == PVA_UNION) {
        walk_members(r, t, cache, path, plen, visit, user, depth);
    } else if (code == PVA_ANY) {
        pva_type *inner = pva_type_decode(r, cache);
        if (inner)
            walk(r, inner, cache, path, plen, NULL, NULL, depth + 1);
        pva_type_free(inner);
    } else if (code & PVA_ARRAY) {
        long n = pva_get_size(r);
        uint8_t base = code & ~PVA_ARRAY;
        if (n < 0)
            n = 0;
        if (pva_scalar_size(base)) {
            pva_skip(r, (size_t)n * pva_scalar_size(base));
            return;
        }
        for (long i = 0; i < n && !r->bad; i++) {
            if (base == PVA_STRING) {
                long k = pva_get_size(r);
                pva_skip(r, k > 0 ? (size_t)k : 0);
            } else if (pva_get8(r)) {          /* element present */
                if (base == PVA_ANY) {
                    pva_type *inner = pva_type_decode(r, cache);
                    if (inner)
                        walk(r, inner, cache, path, plen, NULL, NULL, depth + 1);
                    pva_type_free(inner);
                } else {
                    walk_members(r, t->element, cache, path, plen, NULL, NULL, depth + 1);
                }
            }
        }
    } else {
        char text[256];
        scalar_text(r, code, text, sizeof text);
        if (visit && !r->bad)
            visit(user, path, text);
    }
}

void pva_value_walk(pva_reader *r, const pva_type *t, pva_type_cache *cache, pva_visit_fn visit, void *user)
{
    char path[512] = "";
    if (t)
        walk(r, t, cache, path, sizeof path, visit, user, 0);
}
