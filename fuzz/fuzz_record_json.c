/*
 * libFuzzer target: the record's JSON form, which the journal reads back
 * and `export` prints.  Whatever parses must survive validation and a round
 * trip to JSON and back unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct dia_record r, again;
    if (dia_record_from_json_text(text, &r) == DIA_OK) {
        char why[128];
        (void)dia_record_validate(&r, why, sizeof why);
        char *out = dia_record_to_json_text(&r);
        if (out) {
            if (dia_record_from_json_text(out, &again) != DIA_OK)
                abort(); /* what we write we must read */
            char *out2 = dia_record_to_json_text(&again);
            if (!out2 || strcmp(out, out2) != 0)
                abort(); /* and the round trip is stable */
            free(out2);
            free(out);
        }
    }
    free(text);
    return 0;
}
