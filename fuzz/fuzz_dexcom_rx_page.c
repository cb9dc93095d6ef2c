/*
 * libFuzzer target: Dexcom receiver database pages and records.
 *
 * The first input byte picks a record length (0 = the built-in table), the
 * rest is treated as one or more 528-byte pages and also as a single
 * record of every known (type, revision).  Every record of every page that
 * opens is decoded.  Invariants: a record is never decoded into a value
 * unless its CRC matched; a glucose reading is never a special value and
 * never above the plausible maximum; its measurement time lies in the
 * window around the record's own time that the codec promises.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "proto/dexcom_rx/dexcom_rx.h"

static void check_record(int rc, const uint8_t *rec, size_t len, const struct dexcom_rx_record *r)
{
    if (rc != DIA_OK)
        return;
    if (len < 10 || dexcom_rx_crc16(rec, len - 2) != (uint16_t)(rec[len - 2] | rec[len - 1] << 8))
        abort();
    if (r->kind == DEXCOM_RX_KIND_EGV) {
        const struct dexcom_rx_egv *e = &r->u.egv;
        if (e->cls == DEXCOM_RX_EGV_GLUCOSE &&
            (e->mgdl < DEXCOM_RX_SPECIAL_LIMIT || e->mgdl > DEXCOM_RX_GLUCOSE_MAX_PLAUSIBLE))
            abort();
        if (e->cls == DEXCOM_RX_EGV_SPECIAL && (e->mgdl != 0 || e->special >= 13))
            abort();
        int64_t measured = e->measured_system_time, written = r->system_time;
        if (measured > written + DEXCOM_RX_MEASURED_AFTER_WRITE_MAX_S ||
            measured < written - DEXCOM_RX_MEASURED_BEFORE_WRITE_MAX_S)
            abort();
    }
    if (r->kind == DEXCOM_RX_KIND_CAL_SET && r->u.cal.n_sub > DEXCOM_RX_CAL_SUB_MAX)
        abort();
    if (r->kind == DEXCOM_RX_KIND_XML && r->u.xml.len + 10 > len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint16_t record_length = data[0] < 16 ? 0 : (uint16_t)(data[0] * 2);
    const uint8_t *p = data + 1;
    size_t n = size - 1;

    (void)dexcom_rx_pages_in_payload(n);
    struct dexcom_rx_page_header h;
    (void)dexcom_rx_page_header_parse(p, n, &h);

    for (size_t off = 0; off < n; off += DEXCOM_RX_PAGE_SIZE) {
        struct dexcom_rx_page pg;
        if (dexcom_rx_page_open(p + off, n - off, record_length, &pg) != DIA_OK)
            continue;
        if ((uint64_t)pg.hdr.num_records * pg.record_length > DEXCOM_RX_PAGE_DATA_SIZE)
            abort();
        for (uint32_t i = 0; i < pg.hdr.num_records; i++) {
            struct dexcom_rx_record r;
            int rc = dexcom_rx_page_record(&pg, i, &r);
            check_record(rc, pg.data + (size_t)i * pg.record_length, pg.record_length, &r);
        }
    }

    /* The whole input as one record of each partition and revision. */
    if (n <= DEXCOM_RX_PAGE_DATA_SIZE) {
        static const uint8_t types[] = {0, 3, 4, 5, 6, 7, 8, 10, 11, 12, 18, 42};
        for (size_t t = 0; t < sizeof types; t++) {
            for (uint8_t rev = 0; rev <= 7; rev++) {
                struct dexcom_rx_record r;
                int rc = dexcom_rx_record_decode(p, n, types[t], rev, &r);
                check_record(rc, p, n, &r);
            }
        }
    }
    return 0;
}
