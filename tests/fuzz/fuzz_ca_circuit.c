/* fuzz_ca_circuit.c -- libFuzzer harness for the CA server: arbitrary bytes go through the UDP search decoder
 * and, split at arbitrary points, into a TCP circuit state machine (no sockets) connected to a small record
 * database, exercising every command, DBR type and count the bytes happen to name. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/access/access.h"
#include "core/base/base.h"
#include "core/ca/ca_internal.h"
#include "core/db/db.h"

static void load(const char *type, const char *name, const char *const *fields)
{
    char err[256];
    db_record *rec = db_create_record(type, name, err, sizeof err);
    if (!rec) {
        fprintf(stderr, "fuzz set-up: %s\n", err);
        abort();
    }
    for (int i = 0; fields && fields[i]; i += 2)
        if (db_set_field_text(rec, fields[i], fields[i + 1], err, sizeof err)) {
            fprintf(stderr, "fuzz set-up: %s.%s: %s\n", name, fields[i], err);
            abort();
        }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    db_register_builtins();
    load("ai", "F:ai", (const char *const[]){ "EGU", "mm", "PREC", "3", "HOPR", "10", NULL });
    load("ao", "F:ao", (const char *const[]){ "DRVH", "5", "DRVL", "-5", NULL });
    load("longin", "F:li", (const char *const[]){ "EGU", "counts", "HOPR", "100", NULL });
    load("stringin", "F:si", (const char *const[]){ "VAL", "hello", NULL });
    load("waveform", "F:wf", (const char *const[]){ "FTVL", "DOUBLE", "NELM", "100", NULL });
    load("waveform", "F:cw", (const char *const[]){ "FTVL", "CHAR", "NELM", "64", NULL });
    char err[256];
    if (db_init(err, sizeof err)) {
        fprintf(stderr, "fuzz set-up: %s\n", err);
        abort();
    }
    /* Small limits so that the limit paths are reached by short inputs. */
    ca_server_limits.max_channels = 8;
    ca_server_limits.max_queue_bytes = 4096;
    ca_server_limits.max_message_bytes = 1u << 16;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t reply[4096];
    size_t lens[4];
    ca_search_reply(data, size, 5064, reply, sizeof reply, lens, 4);

    ca_client *c = ca_client_new("fuzz:1", -1, NULL);
    /* The first byte chooses how the stream is cut into reads (TCP gives no message boundaries). */
    size_t step = size ? (size_t)data[0] % 64 + 1 : 1;
    for (size_t off = 0; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        if (ca_client_input(c, data + off, n) < 0)
            break;
        ca_client_refill(c);                        /* a reader that keeps up */
        pthread_mutex_lock(&c->lock);
        ca_bytes_consume(&c->out, c->out.len);
        pthread_mutex_unlock(&c->lock);
    }
    ca_client_free(c);
    return 0;
}
