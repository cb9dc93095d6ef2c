/*
 * Dexcom receiver USB framing: requests, replies, the streaming recognizer
 * and the small reply payloads.
 *
 * Frame layout, the same in both directions (spec §1.3):
 *
 *   offset 0    u8   SOF = 0x01
 *   offset 1    u16  total length L, counting SOF, this field, the code,
 *                    the payload and the CRC (so L ≥ 6)
 *   offset 3    u8   command (host→receiver) or response code (receiver→host)
 *   offset 4    …    payload, L − 6 bytes
 *   offset L−2  u16  CRC-16/XMODEM over bytes [0, L−2)
 *
 * Confirmed examples (spec §1.3, crc-and-packet-vectors.json): PING is
 * 01 06 00 0A 5E 65; READ_DATABASE_PAGE_RANGE(EGV) is 01 07 00 10 04 8B B8;
 * an ACK without payload is 01 06 00 01 35 D4.
 *
 * Response codes (spec §1.4): 1 ACK; 2 NAK, 3 INVALID_COMMAND,
 * 4 INVALID_PARAM, 5 INCOMPLETE_PACKET_RECEIVED, 6 RECEIVER_ERROR,
 * 7 INVALID_MODE and anything else are failures.  Only ACKs have been seen
 * in a capture; what payload a NAK carries is unverified, so we keep the
 * code and never read its payload.
 *
 * Size: Dexcom Studio asks for 4 pages at once and receives a 2118-byte
 * reply (spec §1.3), above the 1590-byte cap other readers enforce.  We
 * accept frames up to DEXCOM_RX_FRAME_MAX (4096); the length field is a
 * u16, and a value above our cap in a byte stream is almost certainly a
 * 0x01 in garbage, so the recognizer treats it as a false start.
 *
 * Recognizer policy: bytes before a SOF are dropped and counted; a
 * candidate whose length field is out of range, or whose CRC fails, loses
 * only its SOF byte and the scan resumes at the next 0x01 (gpsd's way), so
 * a stray 0x01 in garbage cannot swallow the real reply behind it.  We
 * never yield a frame found inside a candidate that is still incomplete:
 * a 4-page reply carries 2112 bytes of record data, which can contain a
 * byte run that looks like a whole checksummed frame, and taking that for
 * the reply would be far worse than waiting.  The price is that a false
 * SOF with a plausible length (the ACK byte 0x01 of a corrupted reply, for
 * one) holds the recognizer until the caller's timeout calls
 * dexcom_rx_stream_reset(); every reader flushes before each request
 * anyway (spec §1.3).
 *
 * Commands (spec §1.5): only the reads the daemon needs can be built.
 * Writes, RESET_RECEIVER, ERASE_DATABASE and SHUTDOWN_RECEIVER are not in
 * the allow-list, so no caller can send them through this codec by mistake.
 *
 * Payloads of the small replies (spec §1.5, checked against the G4
 * capture): system time u32 seconds since 2009-01-01; display time offset
 * i32 seconds (−25161 in the capture); battery level u32 percent; battery
 * state u8 1..4; glucose unit u8 0/1/2; clock mode u8 0 = 24 h, 1 = 12 h;
 * transmitter id 5 ASCII characters on G4, 6 on G5/G6.
 *
 * Page range (spec §1.5 command 16, §2.1): two u32, first and last page,
 * both inclusive.  FFFFFFFF FFFFFFFF means the partition is empty.  Other
 * readers compute the end as `if start != end or not end: end += 1` and so
 * read nothing when first == last != 0 (spec §2.1, §3.2); here the count is
 * simply last − first + 1.
 */
#include "proto/dexcom_rx/dexcom_rx.h"

#include "core/err.h"
#include "proto/dexcom_rx/internal.h"

#include <string.h>

struct cmd_row {
    uint8_t code;
    const char *name;
};

/* The allow-list: every command this codec will build. */
static const struct cmd_row cmd_table[] = {
    {DEXCOM_RX_CMD_PING, "PING"},
    {DEXCOM_RX_CMD_READ_FIRMWARE_HEADER, "READ_FIRMWARE_HEADER"},
    {DEXCOM_RX_CMD_READ_PARTITION_INFO, "READ_DATABASE_PARTITION_INFO"},
    {DEXCOM_RX_CMD_READ_PAGE_RANGE, "READ_DATABASE_PAGE_RANGE"},
    {DEXCOM_RX_CMD_READ_PAGES, "READ_DATABASE_PAGES"},
    {DEXCOM_RX_CMD_READ_PAGE_HEADER, "READ_DATABASE_PAGE_HEADER"},
    {DEXCOM_RX_CMD_READ_TRANSMITTER_ID, "READ_TRANSMITTER_ID"},
    {DEXCOM_RX_CMD_READ_LANGUAGE, "READ_LANGUAGE"},
    {DEXCOM_RX_CMD_READ_DISPLAY_TIME_OFFSET, "READ_DISPLAY_TIME_OFFSET"},
    {DEXCOM_RX_CMD_READ_RTC, "READ_RTC"},
    {DEXCOM_RX_CMD_READ_BATTERY_LEVEL, "READ_BATTERY_LEVEL"},
    {DEXCOM_RX_CMD_READ_SYSTEM_TIME, "READ_SYSTEM_TIME"},
    {DEXCOM_RX_CMD_READ_SYSTEM_TIME_OFFSET, "READ_SYSTEM_TIME_OFFSET"},
    {DEXCOM_RX_CMD_READ_GLUCOSE_UNIT, "READ_GLUCOSE_UNIT"},
    {DEXCOM_RX_CMD_READ_BLINDED_MODE, "READ_BLINDED_MODE"},
    {DEXCOM_RX_CMD_READ_CLOCK_MODE, "READ_CLOCK_MODE"},
    {DEXCOM_RX_CMD_READ_BATTERY_STATE, "READ_BATTERY_STATE"},
};

/* Commands whose request carries a payload, and its exact size. */
static size_t cmd_payload_size(uint8_t cmd)
{
    switch (cmd) {
    case DEXCOM_RX_CMD_READ_PAGE_RANGE:
        return 1; /* u8 record type */
    case DEXCOM_RX_CMD_READ_PAGES:
        return 6; /* u8 type, u32 first page, u8 count */
    case DEXCOM_RX_CMD_READ_PAGE_HEADER:
        return 5; /* u8 type, u32 page */
    default:
        return 0;
    }
}

bool dexcom_rx_cmd_is_allowed(uint8_t cmd)
{
    for (size_t i = 0; i < sizeof cmd_table / sizeof cmd_table[0]; i++) {
        if (cmd_table[i].code == cmd)
            return true;
    }
    return false;
}

const char *dexcom_rx_cmd_name(uint8_t cmd)
{
    for (size_t i = 0; i < sizeof cmd_table / sizeof cmd_table[0]; i++) {
        if (cmd_table[i].code == cmd)
            return cmd_table[i].name;
    }
    return "UNKNOWN";
}

const char *dexcom_rx_response_name(uint8_t code)
{
    static const char *const names[] = {
        "NULL",
        "ACK",
        "NAK",
        "INVALID_COMMAND",
        "INVALID_PARAM",
        "INCOMPLETE_PACKET_RECEIVED",
        "RECEIVER_ERROR",
        "INVALID_MODE",
    };
    return code < sizeof names / sizeof names[0] ? names[code] : "UNKNOWN";
}

int dexcom_rx_request(uint8_t *buf, size_t cap, uint8_t cmd, const uint8_t *payload,
                      size_t payload_len)
{
    if (!buf || !dexcom_rx_cmd_is_allowed(cmd) || payload_len != cmd_payload_size(cmd) ||
        (payload_len > 0 && !payload))
        return DIA_ERR_ARG;
    size_t total = DEXCOM_RX_FRAME_MIN + payload_len;
    if (cap < total)
        return DIA_ERR_ARG;
    buf[0] = DEXCOM_RX_SOF;
    dexcom_rx_put16(buf + 1, (uint16_t)total);
    buf[3] = cmd;
    if (payload_len > 0)
        memcpy(buf + 4, payload, payload_len);
    dexcom_rx_put16(buf + total - 2, dexcom_rx_crc16(buf, total - 2));
    return (int)total;
}

int dexcom_rx_request_simple(uint8_t *buf, size_t cap, enum dexcom_rx_cmd cmd)
{
    return dexcom_rx_request(buf, cap, (uint8_t)cmd, NULL, 0);
}

int dexcom_rx_request_page_range(uint8_t *buf, size_t cap, uint8_t record_type)
{
    return dexcom_rx_request(buf, cap, DEXCOM_RX_CMD_READ_PAGE_RANGE, &record_type, 1);
}

int dexcom_rx_request_read_pages(uint8_t *buf, size_t cap, uint8_t record_type, uint32_t first_page,
                                 uint8_t count)
{
    if (count == 0 || count > DEXCOM_RX_PAGES_PER_READ)
        return DIA_ERR_ARG;
    uint8_t p[6];
    p[0] = record_type;
    dexcom_rx_put32(p + 1, first_page);
    p[5] = count;
    return dexcom_rx_request(buf, cap, DEXCOM_RX_CMD_READ_PAGES, p, sizeof p);
}

int dexcom_rx_request_page_header(uint8_t *buf, size_t cap, uint8_t record_type, uint32_t page)
{
    uint8_t p[5];
    p[0] = record_type;
    dexcom_rx_put32(p + 1, page);
    return dexcom_rx_request(buf, cap, DEXCOM_RX_CMD_READ_PAGE_HEADER, p, sizeof p);
}

int dexcom_rx_frame_parse(const uint8_t *buf, size_t len, struct dexcom_rx_frame *out)
{
    if (!buf || !out)
        return DIA_ERR_ARG;
    if (len < 1 || buf[0] != DEXCOM_RX_SOF)
        return DIA_ERR_NOT_MINE;
    if (len < 3)
        return DIA_ERR_TRUNCATED;
    size_t total = dexcom_rx_le16(buf + 1);
    if (total < DEXCOM_RX_FRAME_MIN)
        return DIA_ERR_NOT_MINE;
    if (len < total)
        return DIA_ERR_TRUNCATED;
    if (dexcom_rx_crc16(buf, total - 2) != dexcom_rx_le16(buf + total - 2))
        return DIA_ERR_CRC;
    out->code = buf[3];
    out->payload = buf + 4;
    out->payload_len = total - DEXCOM_RX_FRAME_MIN;
    out->frame_len = total;
    return DIA_OK;
}

int dexcom_rx_reply_check(const struct dexcom_rx_frame *frame, uint8_t *response)
{
    if (!frame)
        return DIA_ERR_ARG;
    if (response)
        *response = frame->code;
    return frame->code == DEXCOM_RX_RESP_ACK ? DIA_OK : DIA_ERR_DEVICE;
}

int dexcom_rx_reply_parse(const uint8_t *buf, size_t len, struct dexcom_rx_frame *out,
                          uint8_t *response)
{
    int rc = dexcom_rx_frame_parse(buf, len, out);
    if (rc != DIA_OK)
        return rc;
    /* A reply buffer holds exactly one frame; trailing bytes mean we have
     * mis-framed something, and a reading taken from it is not trusted. */
    if (out->frame_len != len)
        return DIA_ERR_IMPLAUSIBLE;
    return dexcom_rx_reply_check(out, response);
}

/* ------------------------------------------------------------------ */
/* Streaming recognizer                                                */
/* ------------------------------------------------------------------ */

void dexcom_rx_stream_init(struct dexcom_rx_stream *s)
{
    memset(s, 0, sizeof *s);
}

void dexcom_rx_stream_reset(struct dexcom_rx_stream *s)
{
    s->len = 0;
    s->have_frame = false;
}

/* Drop n bytes from the front of the buffer, then everything up to the
 * next SOF (counted as garbage). */
static void stream_drop(struct dexcom_rx_stream *s, size_t n)
{
    size_t start = n;
    while (start < s->len && s->buf[start] != DEXCOM_RX_SOF) {
        start++;
        s->garbage_bytes++;
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
}

/* Look at the buffered bytes: 1 if they begin with a complete good frame
 * (returned in *frame), 0 if more bytes are needed.  Bad candidates are
 * dropped one SOF at a time, so a stray 0x01 cannot swallow a real frame
 * that follows it. */
static int stream_scan(struct dexcom_rx_stream *s, struct dexcom_rx_frame *frame)
{
    for (;;) {
        if (s->len < 3)
            return 0;
        size_t total = dexcom_rx_le16(s->buf + 1);
        if (total < DEXCOM_RX_FRAME_MIN || total > DEXCOM_RX_FRAME_MAX) {
            s->garbage_bytes++; /* the false SOF itself */
            stream_drop(s, 1);
            continue;
        }
        if (s->len < total)
            return 0;
        if (dexcom_rx_frame_parse(s->buf, total, frame) == DIA_OK) {
            s->have_frame = true;
            s->frames++;
            return 1;
        }
        s->crc_errors++;
        stream_drop(s, 1);
    }
}

int dexcom_rx_stream_feed(struct dexcom_rx_stream *s, const uint8_t *data, size_t len, size_t *used,
                          struct dexcom_rx_frame *frame)
{
    if (!s || !used || !frame || (len > 0 && !data))
        return DIA_ERR_ARG;
    *used = 0;
    if (s->have_frame) {
        /* The previous call handed out a frame at the front of buf. */
        size_t total = dexcom_rx_le16(s->buf + 1);
        s->have_frame = false;
        stream_drop(s, total);
    }
    if (stream_scan(s, frame))
        return 1;
    size_t i = 0;
    while (i < len) {
        if (s->len == 0) {
            /* Hunting for SOF: skip garbage without copying it. */
            if (data[i] != DEXCOM_RX_SOF) {
                s->garbage_bytes++;
                i++;
                continue;
            }
        }
        /* Copy as much as fits, but never past the end of the frame being
         * assembled once its length is known, so that a yielded frame is
         * followed only by bytes still in `data`. */
        size_t want = sizeof s->buf - s->len;
        if (s->len >= 3) {
            size_t total = dexcom_rx_le16(s->buf + 1);
            if (total >= DEXCOM_RX_FRAME_MIN && total <= DEXCOM_RX_FRAME_MAX && total > s->len)
                want = total - s->len;
        } else {
            want = 3 - s->len;
        }
        size_t n = len - i < want ? len - i : want;
        memcpy(s->buf + s->len, data + i, n);
        s->len += n;
        i += n;
        if (stream_scan(s, frame)) {
            *used = i;
            return 1;
        }
    }
    *used = i;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Small payloads                                                      */
/* ------------------------------------------------------------------ */

static int exact_len(const uint8_t *p, size_t len, size_t want)
{
    if (!p && len > 0)
        return DIA_ERR_ARG;
    if (len < want)
        return DIA_ERR_TRUNCATED;
    if (len > want)
        return DIA_ERR_IMPLAUSIBLE;
    return DIA_OK;
}

int dexcom_rx_parse_system_time(const uint8_t *p, size_t len, uint32_t *seconds)
{
    int rc = exact_len(p, len, 4);
    if (rc != DIA_OK)
        return rc;
    uint32_t v = dexcom_rx_le32(p);
    /* FFFFFFFF is erased flash, not a clock. */
    if (v == 0xFFFFFFFFu)
        return DIA_ERR_IMPLAUSIBLE;
    *seconds = v;
    return DIA_OK;
}

int dexcom_rx_parse_display_time_offset(const uint8_t *p, size_t len, int32_t *seconds)
{
    int rc = exact_len(p, len, 4);
    if (rc != DIA_OK)
        return rc;
    *seconds = dexcom_rx_le32s(p);
    return DIA_OK;
}

int dexcom_rx_parse_battery_level(const uint8_t *p, size_t len, uint32_t *percent)
{
    int rc = exact_len(p, len, 4);
    if (rc != DIA_OK)
        return rc;
    uint32_t v = dexcom_rx_le32(p);
    if (v > 100)
        return DIA_ERR_IMPLAUSIBLE;
    *percent = v;
    return DIA_OK;
}

static int parse_u8_in(const uint8_t *p, size_t len, uint8_t lo, uint8_t hi, uint8_t *out)
{
    int rc = exact_len(p, len, 1);
    if (rc != DIA_OK)
        return rc;
    if (p[0] < lo || p[0] > hi)
        return DIA_ERR_IMPLAUSIBLE;
    *out = p[0];
    return DIA_OK;
}

int dexcom_rx_parse_battery_state(const uint8_t *p, size_t len, uint8_t *state)
{
    return parse_u8_in(p, len, DEXCOM_RX_BATTERY_CHARGING, DEXCOM_RX_BATTERY_BAD, state);
}

int dexcom_rx_parse_glucose_unit(const uint8_t *p, size_t len, uint8_t *unit)
{
    return parse_u8_in(p, len, DEXCOM_RX_UNIT_NONE, DEXCOM_RX_UNIT_MMOLL, unit);
}

int dexcom_rx_parse_clock_mode(const uint8_t *p, size_t len, uint8_t *mode)
{
    return parse_u8_in(p, len, DEXCOM_RX_CLOCK_24H, DEXCOM_RX_CLOCK_12H, mode);
}

const char *dexcom_rx_battery_state_name(uint8_t state)
{
    switch (state) {
    case DEXCOM_RX_BATTERY_CHARGING:
        return "CHARGING";
    case DEXCOM_RX_BATTERY_NOT_CHARGING:
        return "NOT_CHARGING";
    case DEXCOM_RX_BATTERY_NTC_FAULT:
        return "NTC_FAULT";
    case DEXCOM_RX_BATTERY_BAD:
        return "BAD_BATTERY";
    default:
        return "UNKNOWN";
    }
}

static bool is_alnum(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

int dexcom_rx_parse_transmitter_id(const uint8_t *p, size_t len, char out[8])
{
    if (!p || !out)
        return DIA_ERR_ARG;
    /* Some firmware may pad with NULs; stop at the first. */
    size_t n = 0;
    while (n < len && p[n] != 0)
        n++;
    for (size_t i = n; i < len; i++) {
        if (p[i] != 0)
            return DIA_ERR_IMPLAUSIBLE;
    }
    if (n < 5)
        return n == len ? DIA_ERR_TRUNCATED : DIA_ERR_IMPLAUSIBLE;
    if (n > 6)
        return DIA_ERR_IMPLAUSIBLE;
    for (size_t i = 0; i < n; i++) {
        if (!is_alnum(p[i]))
            return DIA_ERR_IMPLAUSIBLE;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return DIA_OK;
}

/* ------------------------------------------------------------------ */
/* Page range                                                          */
/* ------------------------------------------------------------------ */

int dexcom_rx_parse_page_range(const uint8_t *p, size_t len, struct dexcom_rx_page_range *out)
{
    int rc = exact_len(p, len, 8);
    if (rc != DIA_OK)
        return rc;
    uint32_t first = dexcom_rx_le32(p);
    uint32_t last = dexcom_rx_le32(p + 4);
    if (first == DEXCOM_RX_PAGE_NONE && last == DEXCOM_RX_PAGE_NONE) {
        out->first = out->last = DEXCOM_RX_PAGE_NONE;
        out->empty = true;
        return DIA_OK;
    }
    if (first == DEXCOM_RX_PAGE_NONE || last == DEXCOM_RX_PAGE_NONE || first > last)
        return DIA_ERR_IMPLAUSIBLE;
    out->first = first;
    out->last = last;
    out->empty = false;
    return DIA_OK;
}

uint64_t dexcom_rx_page_range_count(const struct dexcom_rx_page_range *r)
{
    if (!r || r->empty || r->first > r->last)
        return 0;
    return (uint64_t)r->last - r->first + 1;
}

uint8_t dexcom_rx_page_range_chunk(const struct dexcom_rx_page_range *r, uint32_t from, uint8_t max)
{
    if (!r || r->empty || from < r->first || from > r->last || max == 0)
        return 0;
    uint64_t left = (uint64_t)r->last - from + 1;
    return left < max ? (uint8_t)left : max;
}

/* ------------------------------------------------------------------ */
/* Time (spec §2.3)                                                    */
/* ------------------------------------------------------------------ */

int64_t dexcom_rx_to_unix(uint32_t receiver_seconds)
{
    return DEXCOM_RX_EPOCH_UNIX + (int64_t)receiver_seconds;
}

int64_t dexcom_rx_clock_offset(int64_t host_unix_now, uint32_t receiver_system_time)
{
    return host_unix_now - dexcom_rx_to_unix(receiver_system_time);
}

int64_t dexcom_rx_system_to_utc(uint32_t system_time, int64_t clock_offset)
{
    return dexcom_rx_to_unix(system_time) + clock_offset;
}
