/* fuzz_pva_conn.c -- libFuzzer harness for the pvAccess server: arbitrary bytes go through the UDP search
 * decoder and, split at arbitrary points, into a TCP connection state machine (no sockets) on a small record
 * database: validation, type descriptors with cache markers, pvRequests, every operation and subcommand the
 * bytes happen to name, monitors drained as a client that keeps up would. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/base/base.h"
#include "core/db/db.h"
#include "core/dbload/dbload.h"
#include "core/pva/pva_internal.h"

static const char records[] =
    "record(ai, \"F:ai\") { field(EGU, \"mm\") field(PREC, \"3\") field(HOPR, \"10\") field(HIGH, \"5\") }\n"
    "record(ao, \"F:ao\") { field(DRVH, \"5\") field(DRVL, \"-5\") }\n"
    "record(mbbo, \"F:mbbo\") { field(ZRST, \"zero\") field(ONST, \"one\") }\n"
    "record(stringin, \"F:si\") { field(VAL, \"hello\") }\n"
    "record(longin, \"F:li\") { field(VAL, \"7\") }\n"
    "record(waveform, \"F:wf\") { field(FTVL, \"DOUBLE\") field(NELM, \"100\") }\n"
    "record(waveform, \"F:sw\") { field(FTVL, \"SHORT\") field(NELM, \"16\") }\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    db_register_builtins();
    dbload_db parsed = { 0 };
    char err[256];
    if (dbload_parse_text(&parsed, records, "fuzz", NULL, err, sizeof err) ||
        dbload_apply(&parsed, err, sizeof err) || db_init(err, sizeof err)) {
        fprintf(stderr, "fuzz set-up: %s\n", err);
        abort();
    }
    dbload_db_free(&parsed);
    /* Small limits so that the limit paths are reached by short inputs. */
    pva_server_limits.max_channels = 8;
    pva_server_limits.max_ops = 16;
    pva_server_limits.max_queue_bytes = 4096;
    pva_server_limits.max_message_bytes = 1u << 16;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t reply[2048];
    uint32_t ip = 0;
    uint16_t port = 0;
    pva_search_reply(data, size, &pva_server_guid, 5075, reply, sizeof reply, &ip, &port);

    pva_conn *c = pva_conn_new("fuzz:1", "127.0.0.1", -1, NULL);
    /* The first byte chooses how the stream is cut into reads (TCP gives no message boundaries). */
    size_t step = size ? (size_t)data[0] % 64 + 1 : 1;
    for (size_t off = 0; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        if (pva_conn_input(c, data + off, n) < 0)
            break;
        pva_conn_refill(c);
        pthread_mutex_lock(&c->lock);               /* a reader that keeps up */
        pva_conn_consume_locked(c, pva_conn_queued_locked(c));
        pthread_mutex_unlock(&c->lock);
    }
    pva_conn_free(c);
    return 0;
}
