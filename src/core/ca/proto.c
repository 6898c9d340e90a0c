/* proto.c -- the CA wire codec: big-endian integers, the 16-byte header and its 24-byte extended form,
 * 8-byte padding, and the growable byte queues circuits read into and reply from. No sockets, no db. */
#include "core/ca/ca_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"

void ca_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void ca_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint16_t ca_get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

uint32_t ca_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int ca_hdr_decode(const uint8_t *buf, size_t len, int allow_extended, ca_hdr *h)
{
    if (len < CA_HDR_SIZE)
        return 0;
    h->cmd = ca_get16(buf);
    h->payload = ca_get16(buf + 2);
    h->dtype = ca_get16(buf + 4);
    h->count = ca_get16(buf + 6);
    h->p1 = ca_get32(buf + 8);
    h->p2 = ca_get32(buf + 12);
    if (h->payload != 0xFFFF)
        return CA_HDR_SIZE;
    if (!allow_extended)
        return -1;
    if (len < CA_EXT_HDR_SIZE)
        return 0;
    h->payload = ca_get32(buf + 16);
    h->count = ca_get32(buf + 20);
    return CA_EXT_HDR_SIZE;
}

size_t ca_hdr_size(const ca_hdr *h)
{
    return (h->payload >= 0xFFFF || h->count >= 0xFFFF) ? CA_EXT_HDR_SIZE : CA_HDR_SIZE;
}

size_t ca_hdr_encode(uint8_t *out, const ca_hdr *h)
{
    int extended = ca_hdr_size(h) == CA_EXT_HDR_SIZE;
    ca_put16(out, h->cmd);
    ca_put16(out + 2, extended ? 0xFFFF : (uint16_t)h->payload);
    ca_put16(out + 4, h->dtype);
    ca_put16(out + 6, extended ? 0 : (uint16_t)h->count);
    ca_put32(out + 8, h->p1);
    ca_put32(out + 12, h->p2);
    if (!extended)
        return CA_HDR_SIZE;
    ca_put32(out + 16, h->payload);
    ca_put32(out + 20, h->count);
    return CA_EXT_HDR_SIZE;
}

/* Room for n more bytes at the tail (not cleared). */
static uint8_t *grow(ca_bytes *q, size_t n)
{
    if (q->head > 0 && q->head + q->len + n > q->cap) {
        memmove(q->data, q->data + q->head, q->len);
        q->head = 0;
    }
    if (q->len + n > q->cap) {
        size_t cap = q->cap ? q->cap : 4096;
        while (cap < q->len + n)
            cap *= 2;
        q->data = xrealloc(q->data, cap);
        q->cap = cap;
    }
    return q->data + q->head + q->len;
}

uint8_t *ca_bytes_reserve(ca_bytes *q, size_t n)
{
    uint8_t *p = grow(q, n);
    memset(p, 0, n);
    return p;
}

uint8_t *ca_bytes_room(ca_bytes *q, size_t n)
{
    return grow(q, n);
}

void ca_bytes_commit(ca_bytes *q, size_t n) { q->len += n; }

void ca_bytes_append(ca_bytes *q, const void *src, size_t n)
{
    memcpy(grow(q, n), src, n);
    ca_bytes_commit(q, n);
}

void ca_bytes_consume(ca_bytes *q, size_t n)
{
    q->head += n;
    q->len -= n;
    if (q->len == 0)
        q->head = 0;
    /* A queue that once held a huge array should not pin that memory for ever; one that carries camera frames
     * (up to 4 Mi elements of 4 bytes, as rsrv keeps its EPICS_CA_MAX_ARRAY_BYTES buffers) keeps its buffer
     * rather than mapping and faulting in megabytes again for every frame. */
    if (q->len == 0 && q->cap > CA_BYTES_KEEP) {
        free(q->data);
        q->data = NULL;
        q->cap = 0;
    }
}

void ca_bytes_free(ca_bytes *q)
{
    free(q->data);
    memset(q, 0, sizeof *q);
}

void ca_bytes_message(ca_bytes *q, const ca_hdr *h, const void *payload, size_t payload_unpadded)
{
    ca_hdr copy = *h;
    copy.payload = (uint32_t)ca_pad8(payload_unpadded);
    size_t hs = ca_hdr_size(&copy);
    uint8_t *p = ca_bytes_reserve(q, hs + copy.payload);
    ca_hdr_encode(p, &copy);
    if (payload_unpadded)
        memcpy(p + hs, payload, payload_unpadded);
    ca_bytes_commit(q, hs + copy.payload);
}
