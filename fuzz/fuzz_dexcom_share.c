/*
 * libFuzzer target: Dexcom Share replies.
 *
 * Arbitrary bytes go through every Share parser: the reading-array parser
 * (jansson walk plus proto/dexcom_share's dates, trends and plausibility),
 * the UUID and fault body parsers, the log snippet, and the pure date,
 * trend and UUID parsers on the raw bytes.  Invariants are checked with
 * abort() so the fuzzer reports them: an accepted reading is always
 * plausible, an accepted UUID is never all zeros, a snippet is printable
 * and never holds a long hex run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/record.h"
#include "proto/dexcom_share/dexcom_share.h"
#include "source/dexcom_share.h"

#define NOW_MS 1780000000000LL

static struct dexcom_share_reading readings[DEXCOM_SHARE_MAX_COUNT];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t n = 0;
    struct dexcom_share_parse_stats st;
    char why[200];
    if (dexcom_share_parse_readings(text, size, NOW_MS, readings, DEXCOM_SHARE_MAX_COUNT, &n, &st,
                                    why, sizeof why) == DIA_OK) {
        if (n != st.ok || n > DEXCOM_SHARE_MAX_COUNT)
            abort();
        for (size_t i = 0; i < n; i++) {
            const struct dexcom_share_reading *r = &readings[i];
            if (dexcom_share_value_check(r->mgdl) != DIA_OK ||
                dexcom_share_time_check(r->wt_ms, NOW_MS) != DIA_OK)
                abort();
            if (r->trend != DIA_ABSENT && (r->trend < 0 || r->trend > 9))
                abort();
            if (r->offset_min < -16 * 60 || r->offset_min > 16 * 60)
                abort();
            if (memchr(r->dt_text, '\0', sizeof r->dt_text) == NULL)
                abort();
        }
    }
    char id[DEXCOM_SHARE_UUID_LEN + 1];
    if (dexcom_share_parse_uuid_body(text, size, id) == DIA_OK &&
        strcmp(id, "00000000-0000-0000-0000-000000000000") == 0)
        abort();
    if (dexcom_share_uuid_parse(text, size, id) == DIA_OK && strlen(id) != DEXCOM_SHARE_UUID_LEN)
        abort();
    struct dexcom_share_fault_info fi;
    if (dexcom_share_parse_fault(text, size, &fi) == DIA_OK && fi.kind == DEXCOM_SHARE_FAULT_NONE)
        abort();

    char snip[80];
    dexcom_share_snippet(text, size, snip, sizeof snip);
    size_t run = 0;
    for (const char *p = snip; *p; p++) {
        if ((unsigned char)*p < 0x20)
            abort();
        bool hex = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
                   (*p >= 'A' && *p <= 'F') || *p == '-';
        run = hex ? run + 1 : 0;
        if (run >= 16)
            abort();
    }

    struct dexcom_share_date d;
    if (dexcom_share_date_parse(text, size, &d) == DIA_OK &&
        (d.utc_ms < 0 || d.offset_min < -16 * 60 || d.offset_min > 16 * 60))
        abort();
    int trend;
    if (dexcom_share_trend_from_name(text, size, &trend) == DIA_OK && (trend < 0 || trend > 9))
        abort();
    return 0;
}
