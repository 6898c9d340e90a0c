/* fuzz_dbparse.c -- libFuzzer harness for the text parsers of the IOC's start-up: macro expansion and
 * definitions, the .db parser and the substitution-file parser. Any input must give a result or an error
 * message, never a crash, leak or undefined behaviour. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dbload/dbload.h"
#include "core/macsub/macsub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char err[512];

    macsub_table *macros = macsub_create(NULL, 0);
    macsub_define(macros, "P", "F:");
    macsub_define(macros, "SELF", "$(SELF)");
    macsub_parse_defs(macros, text, err, sizeof err);
    free(macsub_expand(macros, text, err, sizeof err));

    dbload_db db = {0};
    dbload_parse_text(&db, text, "fuzz.db", macros, err, sizeof err);
    dbload_db_free(&db);

    dbload_substitutions tpl;
    dbload_parse_template_text(&tpl, text, "fuzz.substitutions", macros, err, sizeof err);
    dbload_template_free(&tpl);

    macsub_free(macros);
    free(text);
    return 0;
}
