/* udp.c -- CA name resolution and beacons over UDP, as pure functions of datagrams: a search datagram in,
 * the reply datagram(s) out (one VERSION echoing the client's sequence number, then one SEARCH reply per
 * name reloc serves, split at the Ethernet-sized limit libca uses); the beacon message; the beacon
 * back-off schedule. server.c owns the sockets. */
#include "core/ca/ca_internal.h"

#include <string.h>

#define CA_UDP_MAX 1472     /* what fits one Ethernet frame; libca sends and expects at most this */

int ca_search_reply(const uint8_t *dgram, size_t len, uint16_t tcp_port, uint8_t *reply, size_t reply_cap,
                    size_t *reply_lens, int max_dgrams)
{
    uint32_t sequence = 0;
    int ndgrams = 0;
    size_t used = 0;        /* bytes of reply used by finished datagrams */
    size_t cur = 0;         /* bytes of the datagram being built (0: not started) */
    size_t off = 0;
    while (off + CA_HDR_SIZE <= len) {
        ca_hdr h;
        if (ca_hdr_decode(dgram + off, len - off, 0, &h) != CA_HDR_SIZE)
            break;
        const uint8_t *payload = dgram + off + CA_HDR_SIZE;
        if (h.payload > len - off - CA_HDR_SIZE)
            break;
        off += CA_HDR_SIZE + h.payload;
        if (h.cmd == CA_PROTO_VERSION) {
            sequence = h.p1;
            continue;
        }
        if (h.cmd != CA_PROTO_SEARCH)
            break;          /* rsrv ignores the rest of a datagram after anything else */
        if (h.count < 4 || h.payload == 0 || !memchr(payload, 0, h.payload))
            continue;
        db_addr addr;
        if (db_name_to_addr((const char *)payload, &addr) != DB_OK)
            continue;       /* UDP never says NOT_FOUND: other servers may own the name */
        size_t need = 2 * CA_HDR_SIZE + 8;
        if (cur && cur + CA_HDR_SIZE + 8 > CA_UDP_MAX) {
            reply_lens[ndgrams++] = cur;
            used += cur;
            cur = 0;
        }
        if (ndgrams == max_dgrams || used + cur + need > reply_cap)
            break;
        uint8_t *p = reply + used + cur;
        if (cur == 0) {
            ca_hdr v = { .cmd = CA_PROTO_VERSION, .dtype = 1, .count = CA_MINOR_VERSION, .p1 = sequence };
            cur += ca_hdr_encode(p, &v);
            p += CA_HDR_SIZE;
        }
        ca_hdr r = { .cmd = CA_PROTO_SEARCH, .payload = 8, .dtype = tcp_port, .p1 = 0xFFFFFFFFu, .p2 = h.p1 };
        ca_hdr_encode(p, &r);
        memset(p + CA_HDR_SIZE, 0, 8);
        ca_put16(p + CA_HDR_SIZE, CA_MINOR_VERSION);
        cur += CA_HDR_SIZE + 8;
    }
    if (cur && ndgrams < max_dgrams)
        reply_lens[ndgrams++] = cur;
    return ndgrams;
}

size_t ca_beacon_encode(uint8_t *out, uint16_t tcp_port, uint32_t counter)
{
    ca_hdr h = { .cmd = CA_PROTO_RSRV_IS_UP, .dtype = CA_MINOR_VERSION, .count = tcp_port, .p1 = counter };
    return ca_hdr_encode(out, &h);
}

double ca_beacon_next_interval(double current, double period)
{
    double next = current <= 0 ? 0.02 : current * 2;
    return next > period ? period : next;
}
