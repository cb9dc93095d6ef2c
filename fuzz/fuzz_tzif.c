/*
 * libFuzzer target: TZif zone files (RFC 8536) and the POSIX TZ footer.
 * A zone file is input from the file system; a damaged one must be refused,
 * never crash.  When a file parses, conversions around its transitions must
 * succeed or fail cleanly, and local→UTC→local must agree.
 */
#include <stdint.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dia_tz *tz = NULL;
    char err[256];
    if (dia_tz_from_tzif("Fuzz/Zone", data, size, &tz, err, sizeof err) != DIA_OK)
        return 0;
    static const int64_t probes[] = {
        -2208988800LL, 0, 954547200, 1711846800, 1729990800, 4102444800LL, 253402300799LL};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        int32_t off = 0;
        if (dia_tz_offset_at(tz, probes[i], &off) != DIA_OK)
            continue;
        if (off < -26 * 3600 || off > 26 * 3600)
            abort(); /* the parser must refuse such offsets */
        struct dia_civil local;
        dia_epoch_to_civil(probes[i] + off, &local);
        int64_t back = 0;
        unsigned flags = 0;
        if (dia_tz_local_to_utc(tz, &local, DIA_TZ_NEAREST, probes[i], &back, NULL, &flags) ==
                DIA_OK &&
            !(flags & DIA_TZ_NONEXISTENT) && back != probes[i])
            abort(); /* NEAREST with the true instant as hint must find it */
    }
    dia_tz_free(tz);
    return 0;
}
