/*
 * `diabridge decode dexcom-page FILE`: Dexcom receiver database pages to
 * JSON lines.
 *
 * Input is either raw 528-byte pages back to back (what READ_DATABASE_PAGES
 * returns after the frame is stripped) or the same bytes as hex text,
 * whitespace allowed (ecc1's fixtures, captures pasted from a log).  A file
 * made only of hex digits and whitespace is read as hex.
 *
 * Output, one JSON object per line:
 *   - one per record: partition, record_type, revision, page (position of
 *     the page in the file, from 0), page_number (the receiver's), index
 *     (within the page), record_index (receiver-global), kind, the raw
 *     system_time and display_time, system_utc (the system clock read as
 *     UTC; the daemon corrects it with the offset it measures, DESIGN §4),
 *     display_local (naive wall time), then the kind's fields;
 *   - one {"error", "detail", "page", "index"} per rejected page (no index)
 *     or record.
 * Glucose is either "mgdl" or "special" + "special_condition", never both.
 * The record length comes from the codec's built-in table (there is no
 * partition-info XML in a page file).
 */
#include "cli/codecs.h"

#include "core/err.h"
#include "core/hex.h"
#include "proto/dexcom_rx/dexcom_rx.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void set_iso(json_t *o, const char *key, uint32_t secs, bool utc)
{
    time_t t = (time_t)dexcom_rx_to_unix(secs);
    struct tm tm;
    char buf[32];
    if (!gmtime_r(&t, &tm))
        return;
    strftime(buf, sizeof buf, utc ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%dT%H:%M:%S", &tm);
    json_object_set_new(o, key, json_string(buf));
}

static void set_int(json_t *o, const char *key, json_int_t v)
{
    json_object_set_new(o, key, json_integer(v));
}

static void set_str(json_t *o, const char *key, const char *v)
{
    json_object_set_new(o, key, json_string(v));
}

static void set_bool(json_t *o, const char *key, bool v)
{
    json_object_set_new(o, key, json_boolean(v));
}

static void set_hex(json_t *o, const char *key, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char buf[2 * DEXCOM_RX_PAGE_DATA_SIZE + 1];
    if (n > DEXCOM_RX_PAGE_DATA_SIZE)
        n = DEXCOM_RX_PAGE_DATA_SIZE;
    for (size_t i = 0; i < n; i++) {
        buf[2 * i] = digits[p[i] >> 4];
        buf[2 * i + 1] = digits[p[i] & 15];
    }
    buf[2 * n] = '\0';
    set_str(o, key, buf);
}

static void emit(json_t *o, FILE *out, struct dia_decode_stats *stats)
{
    if (out) {
        json_dumpf(o, out, JSON_COMPACT);
        fputc('\n', out);
    }
    json_decref(o);
    if (stats)
        stats->records++;
}

static void emit_error(int rc, long page, long index, FILE *out, struct dia_decode_stats *stats)
{
    if (!out) {
        if (stats)
            stats->units_rejected++;
        return;
    }
    json_t *o = json_object();
    set_str(o, "error", dia_errname(rc));
    set_str(o, "detail", dia_strerror(rc));
    set_int(o, "page", page);
    if (index >= 0)
        set_int(o, "index", index);
    if (out) {
        json_dumpf(o, out, JSON_COMPACT);
        fputc('\n', out);
    }
    json_decref(o);
    if (stats)
        stats->units_rejected++;
}

static void add_egv(json_t *o, const struct dexcom_rx_egv *e)
{
    if (e->cls == DEXCOM_RX_EGV_GLUCOSE) {
        set_int(o, "mgdl", e->mgdl);
        if (e->below_range)
            set_bool(o, "below_display_range", true);
        if (e->above_range)
            set_bool(o, "above_display_range", true);
    } else {
        set_int(o, "special", e->special);
        set_str(o, "special_condition", dexcom_rx_special_name(e->special));
        set_str(o, "special_display", dexcom_rx_special_display(e->special));
    }
    set_int(o, "trend", e->trend);
    set_str(o, "trend_name", dexcom_rx_trend_name(e->trend));
    set_int(o, "noise", e->noise);
    set_str(o, "noise_name", dexcom_rx_noise_name(e->noise));
    set_bool(o, "display_only", e->display_only);
    set_bool(o, "backfilled", e->backfilled);
    set_bool(o, "computed_on_transmitter", e->computed_on_transmitter);
    set_int(o, "raw_glucose", e->raw_glucose);
    set_int(o, "raw_trend_noise", e->raw_trend_noise);
    set_int(o, "measured_system_time", e->measured_system_time);
    set_iso(o, "measured_utc", e->measured_system_time, true);
    if (e->has_g5_fields) {
        set_int(o, "transmitter_time", e->transmitter_time);
        set_int(o, "raw_filtered_rate", e->raw_filtered_rate);
        set_int(o, "raw_algorithm_state", e->algorithm_state);
    }
    if (e->has_predicted) {
        set_int(o, "raw_predicted", e->raw_predicted);
        if (e->predicted_available)
            set_int(o, "predicted_mgdl", e->predicted_mgdl);
        set_bool(o, "predicted_urgent_low_soon", e->predicted_urgent_low_soon);
    }
}

static void add_fields(json_t *o, const struct dexcom_rx_record *r)
{
    switch (r->kind) {
    case DEXCOM_RX_KIND_EGV:
        add_egv(o, &r->u.egv);
        break;
    case DEXCOM_RX_KIND_SENSOR:
        set_int(o, "unfiltered", r->u.sensor.unfiltered);
        set_int(o, "filtered", r->u.sensor.filtered);
        set_int(o, "rssi", r->u.sensor.rssi);
        set_int(o, "raw_byte17", r->u.sensor.raw_byte17);
        break;
    case DEXCOM_RX_KIND_METER:
        set_int(o, "mgdl", r->u.meter.mgdl);
        set_int(o, "meter_time", r->u.meter.meter_time);
        set_iso(o, "meter_utc", r->u.meter.meter_time, true);
        if (r->u.meter.has_g5_fields) {
            set_int(o, "raw_entry_type", r->u.meter.entry_type);
            set_int(o, "meter_transmitter_time", r->u.meter.meter_transmitter_time);
        }
        break;
    case DEXCOM_RX_KIND_USER_EVENT: {
        const struct dexcom_rx_user_event *ev = &r->u.event;
        set_int(o, "event_type", ev->type);
        set_str(o, "event_type_name", dexcom_rx_event_type_name(ev->type));
        set_int(o, "event_subtype", ev->subtype);
        set_str(o, "event_subtype_name", dexcom_rx_event_subtype_name(ev->type, ev->subtype));
        set_int(o, "event_time", ev->event_time);
        set_iso(o, "event_local", ev->event_time, false);
        set_int(o, "value", ev->value);
        if (ev->type == DEXCOM_RX_EVENT_CARBS)
            set_int(o, "carbs_g", ev->value);
        else if (ev->type == DEXCOM_RX_EVENT_INSULIN)
            json_object_set_new(o, "insulin_units", json_real(ev->value / 100.0));
        else if (ev->type == DEXCOM_RX_EVENT_EXERCISE)
            set_int(o, "exercise_minutes", ev->value);
        break;
    }
    case DEXCOM_RX_KIND_INSERTION: {
        const struct dexcom_rx_insertion *in = &r->u.insertion;
        if (in->has_insertion_time) {
            set_int(o, "insertion_time", in->insertion_time);
            set_iso(o, "insertion_utc", in->insertion_time, true);
        }
        set_int(o, "session_state", in->session_state);
        set_str(o, "session_state_name", dexcom_rx_session_state_name(in->session_state));
        if (in->has_g5_fields) {
            set_int(o, "raw_number", in->number);
            set_str(o, "transmitter_id", in->transmitter_id);
        }
        break;
    }
    case DEXCOM_RX_KIND_CAL_SET: {
        const struct dexcom_rx_cal_set *c = &r->u.cal;
        json_object_set_new(o, "slope", json_real(c->slope));
        json_object_set_new(o, "intercept", json_real(c->intercept));
        json_object_set_new(o, "scale", json_real(c->scale));
        json_object_set_new(o, "decay", json_real(c->decay));
        set_hex(o, "raw_unknown", c->raw_unknown, sizeof c->raw_unknown);
        json_t *subs = json_array();
        for (unsigned i = 0; i < c->n_sub; i++) {
            json_t *s = json_object();
            set_int(s, "entered_time", c->sub[i].entered_time);
            set_iso(s, "entered_utc", c->sub[i].entered_time, true);
            set_int(s, "meter_mgdl", c->sub[i].meter_mgdl);
            set_int(s, "sensor_raw", c->sub[i].sensor_raw);
            set_int(s, "applied_time", c->sub[i].applied_time);
            set_iso(s, "applied_utc", c->sub[i].applied_time, true);
            set_int(s, "raw_byte16", c->sub[i].raw_byte16);
            json_array_append_new(subs, s);
        }
        json_object_set_new(o, "calibrations", subs);
        break;
    }
    case DEXCOM_RX_KIND_USER_SETTINGS: {
        const struct dexcom_rx_user_settings *s = &r->u.settings;
        set_int(o, "system_time_offset", s->system_time_offset);
        set_int(o, "display_time_offset", s->display_time_offset);
        set_int(o, "enable_flags", s->enable_flags);
        if (r->revision == 3)
            set_int(o, "raw_transmitter", s->raw_transmitter);
        else
            set_str(o, "transmitter_id", s->transmitter_id);
        break;
    }
    case DEXCOM_RX_KIND_XML:
        json_object_set_new(o, "xml",
                            json_stringn_nocheck((const char *)r->u.xml.text, r->u.xml.len));
        break;
    case DEXCOM_RX_KIND_RAW:
        set_hex(o, "raw_hex", r->raw + 8, r->raw_len - 10u);
        break;
    }
}

static void emit_record(const struct dexcom_rx_page *pg, long file_page, uint32_t i,
                        const struct dexcom_rx_record *r, FILE *out, struct dia_decode_stats *stats)
{
    if (!out) { /* counting only (benchmarks): the codec's cost, not JSON's */
        if (stats)
            stats->records++;
        return;
    }
    json_t *o = json_object();
    set_str(o, "partition", dexcom_rx_record_type_name(r->record_type));
    set_int(o, "record_type", r->record_type);
    set_int(o, "revision", r->revision);
    set_int(o, "page", file_page);
    set_int(o, "page_number", pg->hdr.page_number);
    set_int(o, "index", i);
    set_int(o, "record_index", r->index);
    set_str(o, "kind", dexcom_rx_kind_name(r->kind));
    set_int(o, "system_time", r->system_time);
    set_int(o, "display_time", r->display_time);
    set_iso(o, "system_utc", r->system_time, true);
    set_iso(o, "display_local", r->display_time, false);
    add_fields(o, r);
    emit(o, out, stats);
}

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Hex text to bytes in a new buffer (*out).  Returns 1 when the input was
 * hex, 0 when it is not (read it as binary), or DIA_ERR_NOMEM. */
static int unhex(const uint8_t *data, size_t len, uint8_t **out, size_t *out_len)
{
    size_t digits = 0;
    for (size_t i = 0; i < len; i++) {
        if (dia_hex_digit(data[i]) >= 0)
            digits++;
        else if (!is_space(data[i]))
            return 0;
    }
    if (digits == 0 || digits % 2 != 0)
        return 0;
    uint8_t *buf = malloc(digits / 2);
    if (!buf)
        return DIA_ERR_NOMEM;
    size_t n = 0;
    int hi = -1;
    for (size_t i = 0; i < len; i++) {
        int v = dia_hex_digit(data[i]);
        if (v < 0)
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            buf[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    *out = buf;
    *out_len = n;
    return 1;
}

static int decode_pages(const uint8_t *data, size_t len, FILE *out, struct dia_decode_stats *stats)
{
    long file_page = 0;
    for (size_t off = 0; off < len; off += DEXCOM_RX_PAGE_SIZE, file_page++) {
        struct dexcom_rx_page pg;
        int rc = dexcom_rx_page_open(data + off, len - off, 0, &pg);
        if (rc != DIA_OK) {
            emit_error(rc, file_page, -1, out, stats);
            continue;
        }
        if (stats)
            stats->units_ok++;
        for (uint32_t i = 0; i < pg.hdr.num_records; i++) {
            struct dexcom_rx_record r;
            rc = dexcom_rx_page_record(&pg, i, &r);
            if (rc != DIA_OK) {
                emit_error(rc, file_page, (long)i, out, stats);
                continue;
            }
            if (stats)
                stats->units_ok++;
            emit_record(&pg, file_page, i, &r, out, stats);
        }
    }
    return DIA_OK;
}

/* A file that is not pages at all: say what it is and what is expected,
 * on stderr, for the person running `decode` (out == NULL: a benchmark). */
static int not_pages(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int not_pages(FILE *out, const char *fmt, ...)
{
    if (out) {
        va_list ap;
        va_start(ap, fmt);
        fputs("diabridge decode dexcom-page: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputs("; expected Dexcom receiver database pages: raw 528-byte pages back to back (as "
              "READ_DATABASE_PAGES returns them), or the same bytes as hex text (whitespace "
              "allowed)\n",
              stderr);
        va_end(ap);
    }
    return DIA_ERR_NOT_MINE;
}

/* Raw pages always hold bytes outside printable ASCII (the header's zero
 * fields, CRCs); a file of nothing else was meant as text. */
static bool is_text(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((data[i] < 0x20 || data[i] > 0x7E) && !is_space(data[i]))
            return false;
    return true;
}

/* Where hex text goes wrong: the first character that is neither a hex
 * digit nor whitespace, as line and column (from 1). */
static int not_hex(FILE *out, const uint8_t *data, size_t len)
{
    size_t line = 1, col = 1, digits = 0;
    for (size_t i = 0; i < len; i++, col++) {
        if (data[i] == '\n') {
            line++;
            col = 0;
        } else if (dia_hex_digit(data[i]) >= 0) {
            digits++;
        } else if (!is_space(data[i])) {
            return not_pages(out, "this text is not hex: '%c' at line %zu, column %zu",
                             (char)data[i], line, col);
        }
    }
    if (digits == 0)
        return not_pages(out, "the file holds only blank lines");
    return not_pages(out, "this hex text has an odd number of digits (%zu)", digits);
}

static int dexcom_page_decode(const uint8_t *data, size_t len, FILE *out,
                              struct dia_decode_stats *stats)
{
    if (!data && len > 0)
        return DIA_ERR_ARG;
    if (len == 0)
        return not_pages(out, "the file is empty");
    size_t n = 0;
    uint8_t *bytes = NULL;
    int rc = unhex(data, len, &bytes, &n);
    if (rc < 0)
        return rc;
    if (rc == 0 && is_text(data, len))
        return not_hex(out, data, len);
    if ((rc == 1 ? n : len) < DEXCOM_RX_PAGE_SIZE) {
        free(bytes);
        return not_pages(out, "the %s %zu bytes, less than one page",
                         rc == 1 ? "hex holds" : "file holds", rc == 1 ? n : len);
    }
    if (rc == 1) {
        rc = decode_pages(bytes, n, out, stats);
        free(bytes);
    } else {
        rc = decode_pages(data, len, out, stats);
    }
    if (out)
        fflush(out);
    return rc;
}

const struct dia_codec dia_codec_dexcom_page = {
    .name = "dexcom-page",
    .description = "Dexcom receiver database pages (raw 528-byte pages or hex text)",
    .decode = dexcom_page_decode,
    .bench_sample = "dexcom-usb/bench-pages.bin",
};
