#include "cli/codecs.h"

#include <string.h>

/*
 * The codec list.  Adding a codec: define `const struct dia_codec
 * dia_codec_<x>` in its own src/cli/codec_<x>.c and add one line here.
 */
#define DIA_CODEC_LIST(X)                                                                          \
    X(dexcom_page)                                                                                 \
    X(dexcom_frame)                                                                                \
    X(dexcom_share)

#define DIA_CODEC_DECLARE(id) extern const struct dia_codec dia_codec_##id;
#define DIA_CODEC_ENTRY(id)   &dia_codec_##id,
DIA_CODEC_LIST(DIA_CODEC_DECLARE)

const struct dia_codec *const dia_codecs[] = {DIA_CODEC_LIST(DIA_CODEC_ENTRY) NULL};
const size_t dia_codec_count = sizeof(dia_codecs) / sizeof(dia_codecs[0]) - 1;

const struct dia_codec *dia_codec_find(const char *name)
{
    for (size_t i = 0; i < dia_codec_count; i++) {
        if (strcmp(dia_codecs[i]->name, name) == 0)
            return dia_codecs[i];
    }
    return NULL;
}
