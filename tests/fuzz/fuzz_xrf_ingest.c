/* fuzz_xrf_ingest.c -- libFuzzer harness for the XRF chunk ingest: arbitrary multipart messages (parts separated by
 * the bytes "|#|" in the input; messages by "|##|") reach xrf_ingest_handle after a valid scan start, so header
 * parsing, framing checks and chunk validation see hostile input without sockets. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/base/base.h"
#include "kernels/xrf/xrf.h"

#define MAX_FUZZ_PARTS 16

static xrf_ingest *ingest;

static void feed(const uint8_t *data, size_t size)
{
    const void *parts[MAX_FUZZ_PARTS];
    size_t sizes[MAX_FUZZ_PARTS];
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i + 3 <= size && n < MAX_FUZZ_PARTS - 1; i++)
        if (!memcmp(data + i, "|#|", 3)) {
            parts[n] = data + start;
            sizes[n++] = i - start;
            start = i + 3;
            i += 2;
        }
    parts[n] = data + start;
    sizes[n++] = size - start;
    xrf_ingest_handle(ingest, parts, sizes, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ingest) {
        log_set_level(LOG_ERROR);
        xrf_config cfg;
        char err[256];
        if (xrf_config_from_json(&cfg, "{\"elements\":[{\"symbol\":\"Fe\"},{\"symbol\":\"Ni\"}]}", err, sizeof err))
            return 0;
        ingest = xrf_ingest_new(&cfg, NULL, NULL, NULL, err, sizeof err);
        if (!ingest) return 0;
    }
    static const char start[] = "{\"type\":\"start\",\"scan\":1,\"width\":4,\"height\":3,\"direction\":\"ascending\","
                                "\"elements\":[\"Fe\",\"Ni\"]}";
    const void *part = start;
    size_t len = sizeof start - 1;
    xrf_ingest_handle(ingest, &part, &len, 1);
    size_t begin = 0;
    for (size_t i = 0; i + 4 <= size; i++)
        if (!memcmp(data + i, "|##|", 4)) {
            feed(data + begin, i - begin);
            begin = i + 4;
            i += 3;
        }
    feed(data + begin, size - begin);
    return 0;
}
