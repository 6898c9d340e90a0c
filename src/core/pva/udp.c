/* udp.c -- pvAccess name resolution and beacons as pure functions: a SEARCH (from a UDP datagram or a TCP
 * connection) in, the SEARCH_RESPONSE naming the CIDs of the channels reloc serves out (nothing for unknown
 * names unless the client insists with flag 0x01); the BEACON message. server.c owns the sockets. */
#include "core/pva/pva_internal.h"

#include <string.h>

#define SEARCH_MUST_REPLY 0x01u
#define MAX_SEARCH_NAMES  1024

/* The 16-byte "use the sender's address" form (::ffff:0.0.0.0). */
static void put_any_address(pva_buf *b)
{
    uint8_t *p = pva_buf_reserve(b, 16);
    memset(p, 0, 16);
    p[10] = p[11] = 0xFF;
}

/* Parses the SEARCH body after the reply port; writes the response body (without header) to out. Returns
 * whether a reply is owed. */
static int search_body(pva_reader *r, uint32_t seq, int must_reply, const pva_guid *guid, uint16_t tcp_port,
                       pva_buf *out)
{
    long nproto = pva_get_size(r);
    int tcp = nproto == 0;      /* a discovery ping names no protocol */
    for (long i = 0; i < nproto && !r->bad && i < 16; i++) {
        char proto[16];
        pva_get_string(r, proto, sizeof proto);
        tcp |= !strcmp(proto, "tcp");
    }
    unsigned nchan = pva_get16(r);
    if (r->bad || nchan > MAX_SEARCH_NAMES)
        return 0;
    uint32_t found[MAX_SEARCH_NAMES];
    unsigned nfound = 0;
    for (unsigned i = 0; i < nchan && !r->bad; i++) {
        uint32_t cid = pva_get32(r);
        char name[DB_NAME_SIZE + 16];
        pva_get_string(r, name, sizeof name);
        db_addr addr;
        if (!r->bad && tcp && (db_name_to_addr(name, &addr) == DB_OK || pva_source_find(name)))
            found[nfound++] = cid;
    }
    if (r->bad || (!nfound && !must_reply))
        return 0;
    pva_buf_append(out, guid->b, sizeof guid->b);
    pva_put32(out, seq);
    put_any_address(out);
    pva_put16(out, tcp_port);
    pva_put_string(out, "tcp");
    pva_put8(out, nfound > 0);
    pva_put16(out, (uint16_t)nfound);
    for (unsigned i = 0; i < nfound; i++)
        pva_put32(out, found[i]);
    return 1;
}

size_t pva_search_reply(const uint8_t *dgram, size_t len, const pva_guid *guid, uint16_t tcp_port,
                        uint8_t *reply, size_t cap, uint32_t *reply_ip, uint16_t *reply_port)
{
    size_t off = 0;
    while (off + PVA_HDR_SIZE <= len) {
        pva_hdr h;
        if (pva_hdr_decode(dgram + off, &h) < 0 || h.size > len - off - PVA_HDR_SIZE)
            return 0;
        const uint8_t *body = dgram + off + PVA_HDR_SIZE;
        off += PVA_HDR_SIZE + h.size;
        if (h.cmd != PVA_CMD_SEARCH || (h.flags & (PVA_FLAG_CONTROL | PVA_FLAG_SEGMENT | PVA_FLAG_SERVER)))
            continue;   /* ORIGIN_TAG and the rest carry nothing to answer */
        pva_reader r = { .p = body, .end = body + h.size, .be = (h.flags & PVA_FLAG_BE) != 0 };
        uint32_t seq = pva_get32(&r);
        uint8_t flags = pva_get8(&r);
        pva_skip(&r, 3);
        const uint8_t *addr = r.p;
        pva_skip(&r, 16);
        uint16_t port = pva_get16(&r);
        if (r.bad)
            return 0;
        /* Reply to the address in the body when it names an IPv4 one, else to the sender. */
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF };
        if (!memcmp(addr, mapped, 12) && memcmp(addr + 12, "\0\0\0\0", 4))
            memcpy(reply_ip, addr + 12, 4);
        if (port)
            *reply_port = port;
        pva_buf body_out = { 0 };
        int owed = search_body(&r, seq, flags & SEARCH_MUST_REPLY, guid, tcp_port, &body_out);
        size_t n = 0;
        if (owed && PVA_HDR_SIZE + body_out.len <= cap) {
            pva_buf msg = { 0 };
            size_t m = pva_msg_begin(&msg, PVA_CMD_SEARCH_RESPONSE);
            pva_buf_append(&msg, body_out.data + body_out.head, body_out.len);
            pva_msg_end(&msg, m);
            memcpy(reply, msg.data + msg.head, msg.len);
            n = msg.len;
            pva_buf_free(&msg);
        }
        pva_buf_free(&body_out);
        return n;       /* one search per datagram is what clients send */
    }
    return 0;
}

void pva_search_reply_tcp(pva_reader *r, const pva_guid *guid, uint16_t tcp_port, pva_buf *out)
{
    uint32_t seq = pva_get32(r);
    uint8_t flags = pva_get8(r);
    pva_skip(r, 3 + 16 + 2);
    if (r->bad)
        return;
    pva_buf body = { 0 };
    if (search_body(r, seq, flags & SEARCH_MUST_REPLY, guid, tcp_port, &body)) {
        size_t m = pva_msg_begin(out, PVA_CMD_SEARCH_RESPONSE);
        pva_buf_append(out, body.data + body.head, body.len);
        pva_msg_end(out, m);
    }
    pva_buf_free(&body);
}

size_t pva_beacon_encode(uint8_t *out, const pva_guid *guid, uint8_t seq, uint16_t tcp_port)
{
    pva_buf b = { 0 };
    size_t m = pva_msg_begin(&b, PVA_CMD_BEACON);
    pva_buf_append(&b, guid->b, sizeof guid->b);
    pva_put8(&b, 0);            /* flags */
    pva_put8(&b, seq);
    pva_put16(&b, 1);           /* change count: the set of records is fixed after iocInit */
    put_any_address(&b);
    pva_put16(&b, tcp_port);
    pva_put_string(&b, "tcp");
    pva_put8(&b, PVA_NULL_TYPE);    /* no server status */
    pva_msg_end(&b, m);
    size_t n = b.len;
    memcpy(out, b.data + b.head, n);
    pva_buf_free(&b);
    return n;
}
