/*
 * `diabridge decode dexcom-frame FILE`: a trace of Dexcom receiver USB
 * frames to JSON lines.
 *
 * Input: one frame per line, "out,HEX" (host → receiver) or "in,HEX"
 * (receiver → host), hex bytes with or without spaces.  That is what the
 * dexcom-usb source writes with trace-file=, what
 * `diabridge-sim dexcom-receiver --capture` replays, and the form of the
 * Dexcom Studio capture in tests/data/dexcom-usb.  Empty lines and lines
 * starting with '#' are skipped.
 *
 * Output, one JSON object per frame:
 *   - always: line (from 1), dir, len (bytes of the frame), code;
 *   - out: command (its name; "UNKNOWN" for commands diabridge never
 *     sends, such as the ones Dexcom Studio also uses), and for page
 *     requests record_type, partition, first_page or page, page_count;
 *   - in: response ("ACK", "NAK", …), reply_to (the command of the
 *     latest out line), payload_len and, for an ACK to a command diabridge
 *     uses, what the payload says: system_time and system_utc (the clock
 *     at face value), display_time_offset, battery_pct, battery_state,
 *     glucose_unit, clock_mode, transmitter_id, page_range [first, last]
 *     or page_range_empty, pages (the page numbers a READ_DATABASE_PAGES
 *     reply holds, null for a page whose header fails its CRC),
 *     page_header, firmware_version and product_name, partitions.
 * One {"error", "detail", "line"} per line that is not a whole checksummed
 * frame, or whose reply payload does not decode.
 */
#include "cli/codecs.h"

#include "core/err.h"
#include "core/hex.h"
#include "proto/dexcom_rx/dexcom_rx.h"

#include <jansson.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

/* JSON helpers that do nothing without an object: with out == NULL
 * (benchmarks) the frames are decoded all the same, but no JSON is built. */
static void put_int(json_t *o, const char *key, json_int_t v)
{
    if (o)
        json_object_set_new(o, key, json_integer(v));
}

static void put_str(json_t *o, const char *key, const char *v)
{
    if (o)
        json_object_set_new(o, key, json_string(v));
}

static void put_bool(json_t *o, const char *key, bool v)
{
    if (o)
        json_object_set_new(o, key, json_boolean(v));
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Hex digits (spaces and tabs between bytes allowed) to bytes.
 * DIA_ERR_NOT_MINE for anything else, DIA_ERR_IMPLAUSIBLE when longer than
 * any frame can be. */
static int unhex_line(const uint8_t *p, const uint8_t *end, uint8_t *buf, size_t cap, size_t *n)
{
    *n = 0;
    while (p < end) {
        if (*p == ' ' || *p == '\t' || *p == '\r') {
            p++;
            continue;
        }
        if (end - p < 2 || dia_hex_digit(p[0]) < 0 || dia_hex_digit(p[1]) < 0)
            return DIA_ERR_NOT_MINE;
        if (*n == cap)
            return DIA_ERR_IMPLAUSIBLE;
        buf[(*n)++] = (uint8_t)(dia_hex_digit(p[0]) << 4 | dia_hex_digit(p[1]));
        p += 2;
    }
    return *n > 0 ? DIA_OK : DIA_ERR_TRUNCATED;
}

static void put_partition(json_t *o, uint8_t type)
{
    put_int(o, "record_type", type);
    put_str(o, "partition", dexcom_rx_record_type_name(type));
}

/* The arguments of the requests that carry some (spec §1.5). */
static void describe_request(json_t *o, const struct dexcom_rx_frame *f)
{
    const uint8_t *p = f->payload;
    if (f->code == DEXCOM_RX_CMD_READ_PAGE_RANGE && f->payload_len == 1) {
        put_partition(o, p[0]);
    } else if (f->code == DEXCOM_RX_CMD_READ_PAGES && f->payload_len == 6) {
        put_partition(o, p[0]);
        put_int(o, "first_page", le32(p + 1));
        put_int(o, "page_count", p[5]);
    } else if (f->code == DEXCOM_RX_CMD_READ_PAGE_HEADER && f->payload_len == 5) {
        put_partition(o, p[0]);
        put_int(o, "page", le32(p + 1));
    }
}

static const char *unit_name(uint8_t unit)
{
    return unit == DEXCOM_RX_UNIT_MGDL ? "mg/dL" : unit == DEXCOM_RX_UNIT_MMOLL ? "mmol/L" : "none";
}

static void put_time(json_t *o, const char *key, uint32_t receiver_seconds)
{
    if (!o)
        return;
    time_t t = (time_t)dexcom_rx_to_unix(receiver_seconds);
    struct tm tm;
    char buf[32];
    if (gmtime_r(&t, &tm) && strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
        put_str(o, key, buf);
}

static int describe_pages(json_t *o, const struct dexcom_rx_frame *f)
{
    int n = dexcom_rx_pages_in_payload(f->payload_len);
    if (n < 0)
        return n;
    json_t *pages = o ? json_array() : NULL;
    for (int i = 0; i < n; i++) {
        struct dexcom_rx_page_header h;
        const uint8_t *pg = f->payload + (size_t)i * DEXCOM_RX_PAGE_SIZE;
        bool ok = dexcom_rx_page_header_parse(pg, DEXCOM_RX_PAGE_HEADER_SIZE, &h) == DIA_OK;
        if (i == 0 && ok)
            put_partition(o, h.record_type);
        if (pages)
            json_array_append_new(pages, ok ? json_integer(h.page_number) : json_null());
    }
    if (o)
        json_object_set_new(o, "pages", pages);
    return DIA_OK;
}

/* What an ACK's payload says, for the commands diabridge sends. */
static int describe_reply(json_t *o, uint8_t command, const struct dexcom_rx_frame *f)
{
    const uint8_t *p = f->payload;
    size_t n = f->payload_len;
    int rc = DIA_OK;
    switch (command) {
    case DEXCOM_RX_CMD_READ_SYSTEM_TIME: {
        uint32_t t;
        if ((rc = dexcom_rx_parse_system_time(p, n, &t)) == DIA_OK) {
            put_int(o, "system_time", t);
            put_time(o, "system_utc", t);
        }
        break;
    }
    case DEXCOM_RX_CMD_READ_DISPLAY_TIME_OFFSET: {
        int32_t off;
        if ((rc = dexcom_rx_parse_display_time_offset(p, n, &off)) == DIA_OK)
            put_int(o, "display_time_offset", off);
        break;
    }
    case DEXCOM_RX_CMD_READ_BATTERY_LEVEL: {
        uint32_t pct;
        if ((rc = dexcom_rx_parse_battery_level(p, n, &pct)) == DIA_OK)
            put_int(o, "battery_pct", pct);
        break;
    }
    case DEXCOM_RX_CMD_READ_BATTERY_STATE: {
        uint8_t st;
        if ((rc = dexcom_rx_parse_battery_state(p, n, &st)) == DIA_OK)
            put_str(o, "battery_state", dexcom_rx_battery_state_name(st));
        break;
    }
    case DEXCOM_RX_CMD_READ_GLUCOSE_UNIT: {
        uint8_t unit;
        if ((rc = dexcom_rx_parse_glucose_unit(p, n, &unit)) == DIA_OK)
            put_str(o, "glucose_unit", unit_name(unit));
        break;
    }
    case DEXCOM_RX_CMD_READ_CLOCK_MODE: {
        uint8_t mode;
        if ((rc = dexcom_rx_parse_clock_mode(p, n, &mode)) == DIA_OK)
            put_str(o, "clock_mode", mode == DEXCOM_RX_CLOCK_12H ? "12h" : "24h");
        break;
    }
    case DEXCOM_RX_CMD_READ_TRANSMITTER_ID: {
        char id[8];
        if ((rc = dexcom_rx_parse_transmitter_id(p, n, id)) == DIA_OK)
            put_str(o, "transmitter_id", id);
        break;
    }
    case DEXCOM_RX_CMD_READ_PAGE_RANGE: {
        struct dexcom_rx_page_range r;
        if ((rc = dexcom_rx_parse_page_range(p, n, &r)) != DIA_OK)
            break;
        if (r.empty) {
            put_bool(o, "page_range_empty", true);
        } else if (o) {
            json_t *a = json_array();
            json_array_append_new(a, json_integer(r.first));
            json_array_append_new(a, json_integer(r.last));
            json_object_set_new(o, "page_range", a);
        }
        break;
    }
    case DEXCOM_RX_CMD_READ_PAGES:
        rc = describe_pages(o, f);
        break;
    case DEXCOM_RX_CMD_READ_PAGE_HEADER: {
        struct dexcom_rx_page_header h;
        if ((rc = dexcom_rx_page_header_parse(p, n, &h)) != DIA_OK)
            break;
        json_t *hdr = o ? json_object() : NULL;
        put_partition(hdr, h.record_type);
        put_int(hdr, "revision", h.revision);
        put_int(hdr, "page_number", h.page_number);
        put_int(hdr, "first_record_index", h.first_record_index);
        put_int(hdr, "num_records", h.num_records);
        if (o)
            json_object_set_new(o, "page_header", hdr);
        break;
    }
    case DEXCOM_RX_CMD_READ_FIRMWARE_HEADER: {
        char v[64];
        if (dexcom_rx_xml_attr(p, n, "FirmwareHeader", "FirmwareVersion", v, sizeof v) == DIA_OK)
            put_str(o, "firmware_version", v);
        if (dexcom_rx_xml_attr(p, n, "FirmwareHeader", "ProductName", v, sizeof v) == DIA_OK)
            put_str(o, "product_name", v);
        break;
    }
    case DEXCOM_RX_CMD_READ_PARTITION_INFO: {
        struct dexcom_rx_partition_info pi;
        if ((rc = dexcom_rx_partition_info_parse(p, n, &pi)) == DIA_OK)
            put_int(o, "partitions", pi.count);
        break;
    }
    default:
        break; /* a command whose reply diabridge does not use */
    }
    return rc;
}

static void emit_error(int rc, long line, FILE *out, struct dia_decode_stats *stats)
{
    if (stats)
        stats->units_rejected++;
    if (!out)
        return;
    json_t *o = json_object();
    put_str(o, "error", dia_errname(rc));
    put_str(o, "detail", dia_strerror(rc));
    put_int(o, "line", line);
    json_dumpf(o, out, JSON_COMPACT);
    fputc('\n', out);
    json_decref(o);
}

struct trace {
    bool have_command;
    uint8_t command; /* of the latest out frame: what an in frame answers */
};

/* One line of the trace, without its newline. */
static void decode_line(struct trace *t, long line, const uint8_t *p, const uint8_t *end, FILE *out,
                        struct dia_decode_stats *stats)
{
    bool host;
    if (end - p >= 4 && memcmp(p, "out,", 4) == 0) {
        host = true;
        p += 4;
    } else if (end - p >= 3 && memcmp(p, "in,", 3) == 0) {
        host = false;
        p += 3;
    } else {
        emit_error(DIA_ERR_NOT_MINE, line, out, stats);
        return;
    }
    uint8_t buf[DEXCOM_RX_FRAME_MAX];
    size_t n = 0;
    struct dexcom_rx_frame f;
    int rc = unhex_line(p, end, buf, sizeof buf, &n);
    if (rc == DIA_OK)
        rc = dexcom_rx_frame_parse(buf, n, &f);
    if (rc == DIA_OK && f.frame_len != n)
        rc = DIA_ERR_IMPLAUSIBLE; /* bytes after the frame: not one frame per line */
    if (rc != DIA_OK) {
        if (host)
            t->have_command = false; /* whatever answers it, we cannot tell */
        emit_error(rc, line, out, stats);
        return;
    }
    json_t *o = out ? json_object() : NULL;
    put_int(o, "line", line);
    put_str(o, "dir", host ? "out" : "in");
    put_int(o, "len", (json_int_t)f.frame_len);
    put_int(o, "code", f.code);
    if (host) {
        t->have_command = true;
        t->command = f.code;
        put_str(o, "command", dexcom_rx_cmd_name(f.code));
        describe_request(o, &f);
    } else {
        put_str(o, "response", dexcom_rx_response_name(f.code));
        if (t->have_command)
            put_str(o, "reply_to", dexcom_rx_cmd_name(t->command));
        put_int(o, "payload_len", (json_int_t)f.payload_len);
        if (t->have_command && f.code == DEXCOM_RX_RESP_ACK)
            rc = describe_reply(o, t->command, &f);
    }
    if (rc != DIA_OK) {
        json_decref(o);
        emit_error(rc, line, out, stats);
        return;
    }
    if (stats) {
        stats->units_ok++;
        stats->records++;
    }
    if (o) {
        json_dumpf(o, out, JSON_COMPACT);
        fputc('\n', out);
        json_decref(o);
    }
}

static int dexcom_frame_decode(const uint8_t *data, size_t len, FILE *out,
                               struct dia_decode_stats *stats)
{
    if (!data && len > 0)
        return DIA_ERR_ARG;
    if (len == 0)
        return DIA_ERR_TRUNCATED;
    struct trace t = {0};
    const uint8_t *p = data, *end = data + len;
    for (long line = 1; p < end; line++) {
        const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const uint8_t *q = p;
        while (q < eol && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < eol && *q != '#')
            decode_line(&t, line, q, eol, out, stats);
        if (eol == end)
            break;
        p = eol + 1;
    }
    if (out)
        fflush(out);
    return DIA_OK;
}

const struct dia_codec dia_codec_dexcom_frame = {
    .name = "dexcom-frame",
    .description = "Dexcom receiver USB frames, one per line as in,HEX / out,HEX (trace-file=)",
    .decode = dexcom_frame_decode,
    .bench_sample = "dexcom-usb/g4-studio-capture-alexandre-normand.csv",
};
