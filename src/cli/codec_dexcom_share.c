/*
 * `diabridge decode dexcom-share FILE`: Dexcom Share server answers to JSON
 * lines, through the parser the dexcom-share source uses
 * (source/dexcom_share_json.c over proto/dexcom_share).
 *
 * Input is either one answer body as the server sends it (a JSON array of
 * readings, a JSON string holding an id, or a fault object), or a VCR.py
 * cassette (YAML, the form of the recordings in tests/data/dexcom-share),
 * whose response bodies are decoded in turn.
 *
 * Output, one JSON object per line, each with `body` (which answer in the
 * file, from 0):
 *   - per reading: index (in the answer; 0 is the newest), mgdl, trend (the
 *     number, as in docs/DATA_FORMAT.md) and trend_name, wt_ms and wt_utc
 *     (the time that is published), st_ms, dt_ms, utc_offset_min (when DT
 *     carried one), dt (DT exactly as sent);
 *   - per login answer: "login": "id".  The id itself is not printed: an
 *     account or session id is a credential;
 *   - per fault: fault (the server's Code), fault_class (session, auth,
 *     lockout, argument, other) and message (ids replaced by <id>);
 *   - {"error", "detail", "body"} for an answer that is none of these, and
 *     one per answer with readings that were skipped (with their count).
 */
#include "cli/codecs.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/record.h"
#include "source/dexcom_share.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void emit(json_t *o, FILE *out)
{
    json_dumpf(o, out, JSON_COMPACT);
    fputc('\n', out);
    json_decref(o);
}

static void emit_error(FILE *out, struct dia_decode_stats *stats, long body, int rc,
                       const char *detail, size_t count)
{
    if (stats)
        stats->units_rejected += count ? count : 1;
    if (!out)
        return;
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(dia_errname(rc)));
    json_object_set_new(o, "detail", json_string(detail ? detail : dia_strerror(rc)));
    json_object_set_new(o, "body", json_integer(body));
    if (count)
        json_object_set_new(o, "count", json_integer((json_int_t)count));
    emit(o, out);
}

static void set_utc_ms(json_t *o, const char *key, int64_t ms)
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    char buf[40];
    if (!gmtime_r(&t, &tm))
        return;
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms - (int64_t)t * 1000));
    json_object_set_new(o, key, json_string(buf));
}

static void emit_reading(FILE *out, long body, size_t index, const struct dexcom_share_reading *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "body", json_integer(body));
    json_object_set_new(o, "index", json_integer((json_int_t)index));
    json_object_set_new(o, "mgdl", json_integer(r->mgdl));
    if (r->trend != DIA_ABSENT) {
        json_object_set_new(o, "trend", json_integer(r->trend));
        json_object_set_new(o, "trend_name", json_string(dia_trend_name(r->trend)));
    }
    json_object_set_new(o, "wt_ms", json_integer(r->wt_ms));
    set_utc_ms(o, "wt_utc", r->wt_ms);
    if (r->st_ms != INT64_MIN)
        json_object_set_new(o, "st_ms", json_integer(r->st_ms));
    if (r->dt_ms != INT64_MIN)
        json_object_set_new(o, "dt_ms", json_integer(r->dt_ms));
    if (r->has_offset)
        json_object_set_new(o, "utc_offset_min", json_integer(r->offset_min));
    json_object_set_new(o, "dt", json_string(r->dt_text));
    emit(o, out);
}

/* An array of n readings has at least n '{': enough room for all of them. */
static size_t max_readings(const char *body, size_t len)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += body[i] == '{';
    return n;
}

static int decode_body(const char *body, size_t len, long index, int64_t now_ms, FILE *out,
                       struct dia_decode_stats *stats)
{
    size_t max = max_readings(body, len), n = 0;
    struct dexcom_share_reading *readings = malloc(max * sizeof *readings);
    if (!readings)
        return DIA_ERR_NOMEM;
    struct dexcom_share_parse_stats st = {0};
    char why[200] = "";
    int rc =
        dexcom_share_parse_readings(body, len, now_ms, readings, max, &n, &st, why, sizeof why);
    if (rc == DIA_OK) {
        if (stats) {
            stats->units_ok += n;
            stats->records += n;
        }
        for (size_t i = 0; out && i < n; i++)
            emit_reading(out, index, i, &readings[i]);
        if (st.malformed + st.implausible > 0)
            emit_error(out, stats, index, st.implausible ? DIA_ERR_IMPLAUSIBLE : DIA_ERR_TRUNCATED,
                       why, st.malformed + st.implausible);
        free(readings);
        return DIA_OK;
    }
    free(readings);

    struct dexcom_share_fault_info fault;
    if (dexcom_share_parse_fault(body, len, &fault) == DIA_OK) {
        if (stats) {
            stats->units_ok++;
            stats->records++;
        }
        if (out) {
            json_t *o = json_object();
            json_object_set_new(o, "body", json_integer(index));
            json_object_set_new(o, "fault", json_string(fault.code));
            json_object_set_new(o, "fault_class", json_string(dexcom_share_fault_name(fault.kind)));
            json_object_set_new(o, "message", json_string(fault.message));
            emit(o, out);
        }
        return DIA_OK;
    }

    char id[DEXCOM_SHARE_UUID_LEN + 1];
    rc = dexcom_share_parse_uuid_body(body, len, id);
    if (rc == DIA_OK) {
        if (stats) {
            stats->units_ok++;
            stats->records++;
        }
        if (out) {
            json_t *o = json_object();
            json_object_set_new(o, "body", json_integer(index));
            json_object_set_new(o, "login", json_string("id"));
            emit(o, out);
        }
    } else if (rc == DIA_ERR_IMPLAUSIBLE) {
        emit_error(out, stats, index, rc,
                   "an all-zero id: the server's answer to a failed login, never a session", 0);
    } else {
        emit_error(out, stats, index, DIA_ERR_NOT_MINE,
                   "neither readings, nor a login id, nor a Share fault", 0);
    }
    return DIA_OK;
}

/*
 * A YAML single-quoted scalar whose text starts at *p (just after the
 * opening quote), as VCR.py writes response bodies: '' is a quote, and a
 * line break with the indentation around it folds into one space (an
 * empty line into a newline).  The text goes to buf; *p moves past the
 * closing quote.  DIA_ERR_TRUNCATED when the quote is never closed.
 */
static int yaml_single_quoted(const char **p, const char *end, char *buf, size_t *n)
{
    const char *s = *p;
    *n = 0;
    while (s < end) {
        if (*s == '\'') {
            if (s + 1 < end && s[1] == '\'') {
                buf[(*n)++] = '\'';
                s += 2;
                continue;
            }
            *p = s + 1;
            return DIA_OK;
        }
        if (*s == '\n' || *s == '\r') {
            while (*n > 0 && (buf[*n - 1] == ' ' || buf[*n - 1] == '\t'))
                (*n)--;
            int breaks = 0;
            while (s < end && (*s == '\n' || *s == '\r' || *s == ' ' || *s == '\t'))
                breaks += *s++ == '\n';
            buf[(*n)++] = breaks > 1 ? '\n' : ' ';
            continue;
        }
        buf[(*n)++] = *s++;
    }
    return DIA_ERR_TRUNCATED;
}

static int decode_cassette(const char *text, size_t len, int64_t now_ms, FILE *out,
                           struct dia_decode_stats *stats)
{
    static const char marker[] = "string: '";
    const char *p = text, *end = text + len;
    char *buf = malloc(len + 1); /* no body is longer than the file */
    if (!buf)
        return DIA_ERR_NOMEM;
    long bodies = 0;
    int rc = DIA_OK;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *q = p;
        while (q < end && q != eol && (*q == ' ' || *q == '\t'))
            q++;
        if ((size_t)(end - q) >= sizeof marker - 1 && memcmp(q, marker, sizeof marker - 1) == 0) {
            q += sizeof marker - 1;
            size_t n = 0;
            if (yaml_single_quoted(&q, end, buf, &n) != DIA_OK) {
                emit_error(out, stats, bodies, DIA_ERR_TRUNCATED, "a quoted body is never closed",
                           0);
                break;
            }
            rc = decode_body(buf, n, bodies++, now_ms, out, stats);
            if (rc != DIA_OK)
                break;
            eol = memchr(q, '\n', (size_t)(end - q));
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    free(buf);
    if (rc == DIA_OK && bodies == 0)
        rc = DIA_ERR_NOT_MINE; /* neither an answer nor a cassette */
    return rc;
}

static int dexcom_share_decode(const uint8_t *data, size_t len, FILE *out,
                               struct dia_decode_stats *stats)
{
    if (!data && len > 0)
        return DIA_ERR_ARG;
    if (len == 0)
        return DIA_ERR_TRUNCATED;
    const char *text = (const char *)data;
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    /* Reading times are checked against now (a day in the future at most),
     * as the source does. */
    int64_t now_ms = dia_now_ms();
    int rc;
    if (i < len && (text[i] == '[' || text[i] == '{' || text[i] == '"'))
        rc = decode_body(text, len, 0, now_ms, out, stats);
    else
        rc = decode_cassette(text, len, now_ms, out, stats);
    if (out)
        fflush(out);
    return rc;
}

const struct dia_codec dia_codec_dexcom_share = {
    .name = "dexcom-share",
    .description = "Dexcom Share server answers (a response body, or a VCR.py cassette of them)",
    .decode = dexcom_share_decode,
    .bench_sample = "dexcom-share/pydexcom-cassettes/latest-glucose-maxcount1-minutes1440.yaml",
};
