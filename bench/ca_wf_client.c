/* ca_wf_client.c -- the C writer and C reader of bench_ca.py's waveform row: plain Channel Access over a TCP
 * socket (no libca), so that the client costs the same against any CA server and is not what is measured.
 *
 *   ca_wf_client write PORT NAME DBRTYPE COUNT SECONDS   puts COUNT elements (zeros, plain WRITE, pipelined)
 *                                                        as fast as the circuit takes them, for SECONDS
 *   ca_wf_client read PORT NAME DBRTYPE SECONDS          subscribes (count 0: the current length) and prints
 *                                                        "updates bytes seconds" received in SECONDS
 * Built by bench_ca.py with gcc -O2; not part of libreloc. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { EVENT_ADD = 1, WRITE = 4, VERSION = 0, CREATE_CHAN = 18, CLIENT_NAME = 20, HOST_NAME = 21 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xFFFF); }
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t get32(const uint8_t *p) { return get16(p) << 16 | get16(p + 2); }

/* A header (extended form when needed) into out; returns its size. */
static size_t header(uint8_t *out, unsigned cmd, unsigned dtype, uint32_t count, uint32_t p1, uint32_t p2,
                     uint32_t payload)
{
    int ext = payload >= 0xFFFF || count >= 0xFFFF;
    put16(out, cmd);
    put16(out + 2, ext ? 0xFFFF : payload);
    put16(out + 4, dtype);
    put16(out + 6, ext ? 0 : count);
    put32(out + 8, p1);
    put32(out + 12, p2);
    if (!ext)
        return 16;
    put32(out + 16, payload);
    put32(out + 20, count);
    return 24;
}

static void send_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t k = send(fd, p, n, 0);
        if (k <= 0) {
            perror("send");
            exit(1);
        }
        p += k;
        n -= (size_t)k;
    }
}

static void recv_all(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0) {
            fprintf(stderr, "recv: circuit closed\n");
            exit(1);
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Next message: header fields and payload into *payload (grown as needed). Returns the command. */
static unsigned next_message(int fd, uint8_t **payload, size_t *cap, uint32_t *count, uint32_t *p2, uint32_t *len)
{
    uint8_t h[24];
    recv_all(fd, h, 16);
    uint32_t size = get16(h + 2);
    *count = get16(h + 6);
    if (size == 0xFFFF) {
        recv_all(fd, h + 16, 8);
        size = get32(h + 16);
        *count = get32(h + 20);
    }
    *p2 = get32(h + 12);
    if (size > *cap) {
        *payload = realloc(*payload, size);
        *cap = size;
    }
    recv_all(fd, *payload, size);
    *len = size;
    return get16(h);
}

/* Connects, announces itself and creates channel NAME; returns the socket and the SID in *sid. */
static int open_channel(int port, const char *name, uint32_t *sid)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint8_t msg[256] = { 0 };
    size_t n = header(msg, VERSION, 0, 13, 0, 0, 0);
    n += header(msg + n, CLIENT_NAME, 0, 0, 0, 0, 8);
    memcpy(msg + n, "bench", 6);
    n += 8;
    n += header(msg + n, HOST_NAME, 0, 0, 0, 0, 8);
    memcpy(msg + n, "bench", 6);
    n += 8;
    size_t len = (strlen(name) + 1 + 7) & ~(size_t)7;
    n += header(msg + n, CREATE_CHAN, 0, 0, 1, 13, (uint32_t)len);
    memcpy(msg + n, name, strlen(name));
    n += len;
    send_all(fd, msg, n);
    uint8_t *payload = NULL;
    size_t cap = 0;
    uint32_t count, p2, plen;
    while (next_message(fd, &payload, &cap, &count, &p2, &plen) != CREATE_CHAN)
        ;
    *sid = p2;
    free(payload);
    return fd;
}

static int writer(int port, const char *name, unsigned dtype, uint32_t count, double seconds)
{
    static const size_t sizes[] = { 40, 2, 4, 2, 1, 4, 8 };
    if (dtype > 6)
        return 2;
    uint32_t sid;
    int fd = open_channel(port, name, &sid);
    size_t bytes = (sizes[dtype] * count + 7) & ~(size_t)7;
    uint8_t *msg = calloc(1, 24 + bytes);
    size_t hs = header(msg, WRITE, dtype, count, sid, 1, (uint32_t)bytes);
    double end = now() + seconds;
    long sent = 0;
    while (now() < end) {
        send_all(fd, msg, hs + bytes);
        sent++;
    }
    printf("%ld\n", sent);
    close(fd);
    free(msg);
    return 0;
}

static int reader(int port, const char *name, unsigned dtype, double seconds)
{
    uint32_t sid;
    int fd = open_channel(port, name, &sid);
    uint8_t msg[40] = { 0 };
    size_t n = header(msg, EVENT_ADD, dtype, 0, sid, 7, 16);
    put16(msg + n + 12, 1 | 4);              /* DBE_VALUE | DBE_ALARM */
    send_all(fd, msg, n + 16);
    uint8_t *payload = NULL;
    size_t cap = 0;
    uint32_t count, p2, len;
    while (next_message(fd, &payload, &cap, &count, &p2, &len) != EVENT_ADD)   /* the initial value */
        ;
    long updates = 0;
    double bytes = 0, start = now(), end = start + seconds, t;
    while ((t = now()) < end) {
        if (next_message(fd, &payload, &cap, &count, &p2, &len) == EVENT_ADD && count > 0) {
            updates++;
            bytes += len;
        }
    }
    printf("%ld %.0f %.6f\n", updates, bytes, t - start);
    close(fd);
    free(payload);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "write") == 0)
        return writer(atoi(argv[2]), argv[3], (unsigned)atoi(argv[4]), (uint32_t)atol(argv[5]), atof(argv[6]));
    if (argc == 6 && strcmp(argv[1], "read") == 0)
        return reader(atoi(argv[2]), argv[3], (unsigned)atoi(argv[4]), atof(argv[5]));
    fprintf(stderr, "usage: ca_wf_client write PORT NAME DBRTYPE COUNT SECONDS | read PORT NAME DBRTYPE SECONDS\n");
    return 2;
}
