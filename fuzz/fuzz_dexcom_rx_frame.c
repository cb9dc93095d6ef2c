/*
 * libFuzzer target: Dexcom receiver framing and reply payloads.
 *
 * Arbitrary bytes go through the one-shot frame parser, the streaming
 * recognizer (fed in chunk sizes taken from the input itself), every small
 * reply parser and the XML scanners.  Invariants are checked with abort()
 * so the fuzzer reports them: a yielded frame always re-parses with a good
 * CRC, and its payload lies inside the recognizer's buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "proto/dexcom_rx/dexcom_rx.h"

static struct dexcom_rx_stream stream;
static struct dexcom_rx_partition_info pinfo;

static void payload_parsers(const uint8_t *p, size_t n)
{
    uint32_t u;
    int32_t s;
    uint8_t b;
    char id[8];
    struct dexcom_rx_page_range r;
    (void)dexcom_rx_parse_system_time(p, n, &u);
    (void)dexcom_rx_parse_display_time_offset(p, n, &s);
    (void)dexcom_rx_parse_battery_level(p, n, &u);
    (void)dexcom_rx_parse_battery_state(p, n, &b);
    (void)dexcom_rx_parse_glucose_unit(p, n, &b);
    (void)dexcom_rx_parse_clock_mode(p, n, &b);
    if (dexcom_rx_parse_transmitter_id(p, n, id) == DIA_OK && strlen(id) > 6)
        abort();
    if (dexcom_rx_parse_page_range(p, n, &r) == DIA_OK) {
        uint64_t total = 0;
        uint32_t page = r.first;
        uint8_t c;
        while ((c = dexcom_rx_page_range_chunk(&r, page, DEXCOM_RX_PAGES_PER_READ)) > 0) {
            total += c;
            if ((uint64_t)page + c > (uint64_t)r.last + 1)
                abort();
            page += c;
            if (page == 0) /* wrapped */
                break;
            if (total > 64) /* the range is sound; no need to walk 4 G pages */
                break;
        }
        if (r.empty && total != 0)
            abort();
    }
    char v[64];
    (void)dexcom_rx_xml_attr(p, n, "FirmwareHeader", "FirmwareVersion", v, sizeof v);
    if (dexcom_rx_partition_info_parse(p, n, &pinfo) == DIA_OK) {
        for (unsigned t = 0; t < 256; t++) {
            const struct dexcom_rx_partition *part = dexcom_rx_partition_find(&pinfo, (uint8_t)t);
            if (part && (part->record_length < 10 || part->record_length > 500))
                abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dexcom_rx_frame f;
    if (dexcom_rx_frame_parse(data, size, &f) == DIA_OK) {
        if (f.frame_len > size || f.payload_len + 6 != f.frame_len)
            abort();
        uint8_t resp;
        (void)dexcom_rx_reply_check(&f, &resp);
        payload_parsers(f.payload, f.payload_len);
    }
    (void)dexcom_rx_reply_parse(data, size, &f, NULL);
    payload_parsers(data, size);

    /* The recognizer, chunked by the input's own first byte. */
    dexcom_rx_stream_init(&stream);
    size_t chunk = size ? (size_t)(data[0] % 64) + 1 : 1;
    size_t pos = 0;
    while (pos < size) {
        size_t len = size - pos < chunk ? size - pos : chunk;
        const uint8_t *p = data + pos;
        pos += len;
        for (;;) {
            size_t used = 0;
            int rc = dexcom_rx_stream_feed(&stream, p, len, &used, &f);
            if (rc < 0 || used > len)
                abort();
            p += used;
            len -= used;
            if (rc == 0)
                break;
            if (f.payload < stream.buf || f.payload + f.payload_len > stream.buf + stream.len)
                abort();
            struct dexcom_rx_frame again;
            if (dexcom_rx_frame_parse(stream.buf, stream.len, &again) != DIA_OK)
                abort();
        }
    }
    return 0;
}
