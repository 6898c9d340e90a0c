/* fuzz_db_text.c -- libFuzzer harness for text written into record fields (dbpf, autosave restore, CA puts
 * of strings): any text put to any kind of field -- number, menu, state, string, long string, array, link,
 * CALC expression -- is stored or refused, never crashes, and leaves the record processable. */
#include "core/db/db.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const channels[] = {
    "F:ai", "F:ai.SCAN", "F:ai.EGU", "F:ai.DESC$", "F:ai.INP", "F:ai.FLNK", "F:wf", "F:wfc", "F:mbbi",
    "F:mbbi.ZRST", "F:calc.CALC", "F:calc.INPA", "F:lsi.VAL$", "F:lsi", "F:bo", "F:li",
};

static void build_database(void)
{
    db_register_builtins();
    char err[256];
    db_create_record("ai", "F:ai", err, sizeof err);
    db_record *wf = db_create_record("waveform", "F:wf", err, sizeof err);
    db_set_field_text(wf, "NELM", "16", err, sizeof err);
    db_record *wfc = db_create_record("waveform", "F:wfc", err, sizeof err);
    db_set_field_text(wfc, "FTVL", "CHAR", err, sizeof err);
    db_set_field_text(wfc, "NELM", "32", err, sizeof err);
    db_create_record("mbbi", "F:mbbi", err, sizeof err);
    db_create_record("calc", "F:calc", err, sizeof err);
    db_create_record("lsi", "F:lsi", err, sizeof err);
    db_create_record("bo", "F:bo", err, sizeof err);
    db_create_record("longin", "F:li", err, sizeof err);
    if (db_init(err, sizeof err) != DB_OK) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        build_database();
        ready = 1;
    }
    if (size < 1) return 0;
    const char *channel = channels[data[0] % (sizeof channels / sizeof channels[0])];
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    db_addr addr;
    if (db_name_to_addr(channel, &addr) != DB_OK) abort();
    db_put_text(&addr, text);
    char back[512];
    db_get_text(&addr, back, sizeof back);
    db_addr proc;
    db_name_to_addr("F:calc.PROC", &proc);
    db_put_text(&proc, "1");
    free(text);
    return 0;
}
