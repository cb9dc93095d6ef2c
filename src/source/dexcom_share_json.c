/*
 * Dexcom Share JSON (see dexcom_share.h).  Facts from
 * shared/specs/dexcom-receiver-usb-and-share.md ("spec"):
 *
 *   - A read answers a JSON array, newest first, of
 *     {"WT","ST","DT","Value","Trend"}; WT is the timestamp to publish
 *     (bridge and xDrip do), DT carries the phone's UTC offset; extra keys
 *     may appear (xDrip's test has "extraString") and are ignored (§4.2).
 *   - Value is an int in mg/dL (§4.2).  A real number with no fraction is
 *     accepted (dexpy turned it into a float); a fraction, a string, null or
 *     a value outside 39–401 is rejected, never rounded: a wrong reading is
 *     worse than a missing one.
 *   - Trend is a number before Nov 2021 and a name since (§4.2).
 *   - Logins answer a JSON string holding a UUID; errors are HTTP 500 with
 *     {"Code","Message","SubCode","TypeName"}; SubCode is opaque (XML in
 *     2025 cassettes, JSON text in a 2025-11 report), so it is ignored (§4.3).
 */
#include "source/dexcom_share.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/record.h"

static bool is_idchar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '-';
}

void dexcom_share_snippet(const char *body, size_t len, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return;
    size_t o = 0;
    for (size_t i = 0; body && i < len && o + 1 < outlen;) {
        size_t run = 0;
        while (i + run < len && is_idchar(body[i + run]))
            run++;
        if (run >= 16) {
            const char *mark = "<id>";
            for (size_t k = 0; mark[k] && o + 1 < outlen; k++)
                out[o++] = mark[k];
            i += run;
            continue;
        }
        if (run > 0) {
            for (size_t k = 0; k < run && o + 1 < outlen; k++)
                out[o++] = body[i + k];
            i += run;
            continue;
        }
        unsigned char c = (unsigned char)body[i++];
        out[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[o] = '\0';
}

static void say(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || whylen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* A date field: DIA_OK and *d, DIA_ERR_NOT_MINE when absent (absent_ok). */
static int date_field(const json_t *obj, const char *key, struct dexcom_share_date *d,
                      const char **text_out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return DIA_ERR_TRUNCATED;
    if (!json_is_string(v))
        return DIA_ERR_NOT_MINE;
    const char *text = json_string_value(v);
    if (text_out)
        *text_out = text;
    return dexcom_share_date_parse(text, json_string_length(v), d);
}

/* One reading object.  Returns DIA_OK, DIA_ERR_IMPLAUSIBLE or another
 * negative code for a malformed element. */
static int parse_reading(const json_t *obj, int64_t now_ms, struct dexcom_share_reading *r,
                         char *why, size_t whylen)
{
    memset(r, 0, sizeof *r);
    r->st_ms = INT64_MIN;
    r->dt_ms = INT64_MIN;
    r->trend = DIA_ABSENT;
    if (!json_is_object(obj)) {
        say(why, whylen, "a reading is not a JSON object");
        return DIA_ERR_NOT_MINE;
    }
    struct dexcom_share_date wt, st, dt;
    const char *wt_text = NULL, *dt_text = NULL;
    int rc = date_field(obj, "WT", &wt, &wt_text);
    if (rc != DIA_OK) {
        say(why, whylen, "a reading has %s WT", rc == DIA_ERR_TRUNCATED ? "no" : "an unreadable");
        return rc == DIA_ERR_IMPLAUSIBLE ? rc : DIA_ERR_NOT_MINE;
    }
    r->wt_ms = wt.utc_ms;
    rc = date_field(obj, "ST", &st, NULL);
    if (rc == DIA_OK)
        r->st_ms = st.utc_ms;
    else if (rc != DIA_ERR_TRUNCATED) {
        say(why, whylen, "a reading has an unreadable ST");
        return rc == DIA_ERR_IMPLAUSIBLE ? rc : DIA_ERR_NOT_MINE;
    }
    rc = date_field(obj, "DT", &dt, &dt_text);
    if (rc == DIA_OK) {
        r->dt_ms = dt.utc_ms;
        r->has_offset = dt.has_offset;
        r->offset_min = dt.offset_min;
    } else if (rc != DIA_ERR_TRUNCATED) {
        say(why, whylen, "a reading has an unreadable DT");
        return rc == DIA_ERR_IMPLAUSIBLE ? rc : DIA_ERR_NOT_MINE;
    }
    snprintf(r->dt_text, sizeof r->dt_text, "%s", dt_text ? dt_text : wt_text);

    const json_t *value = json_object_get(obj, "Value");
    long long mgdl;
    if (json_is_integer(value)) {
        mgdl = json_integer_value(value);
    } else if (json_is_real(value)) {
        double d = json_real_value(value);
        if (!(d >= -1e9 && d <= 1e9) || d != (double)(long long)d) {
            say(why, whylen, "a reading's Value %.3g is not a whole number of mg/dL", d);
            return DIA_ERR_IMPLAUSIBLE;
        }
        mgdl = (long long)d;
    } else {
        say(why, whylen, "a reading has %s Value", value ? "a non-numeric" : "no");
        return DIA_ERR_NOT_MINE;
    }

    const json_t *trend = json_object_get(obj, "Trend");
    int t = 0;
    if (json_is_integer(trend)) {
        rc = dexcom_share_trend_from_number(json_integer_value(trend), &t);
    } else if (json_is_string(trend)) {
        rc = dexcom_share_trend_from_name(json_string_value(trend), json_string_length(trend), &t);
    } else if (!trend || json_is_null(trend)) {
        rc = DIA_OK;
        t = DIA_ABSENT;
    } else {
        rc = DIA_ERR_NOT_MINE;
    }
    if (rc != DIA_OK) {
        char snip[40];
        if (json_is_string(trend))
            dexcom_share_snippet(json_string_value(trend), json_string_length(trend), snip,
                                 sizeof snip);
        else
            snprintf(snip, sizeof snip, "%s",
                     json_is_integer(trend) ? "a number out of range" : "not a name");
        say(why, whylen, "a reading has an unknown Trend (%s)", snip);
        return rc == DIA_ERR_IMPLAUSIBLE ? rc : DIA_ERR_NOT_MINE;
    }
    r->trend = t;

    if (dexcom_share_value_check(mgdl) != DIA_OK) {
        say(why, whylen, "a reading's Value %lld mg/dL is outside %d-%d", mgdl,
            DEXCOM_SHARE_MGDL_MIN, DEXCOM_SHARE_MGDL_MAX);
        return DIA_ERR_IMPLAUSIBLE;
    }
    if (dexcom_share_time_check(r->wt_ms, now_ms) != DIA_OK) {
        say(why, whylen,
            "a reading's time WT %lld is before 2015 or more than 5 minutes ahead of this "
            "machine's clock",
            (long long)r->wt_ms);
        return DIA_ERR_IMPLAUSIBLE;
    }
    r->mgdl = (int32_t)mgdl;
    return DIA_OK;
}

int dexcom_share_parse_reading_text(const char *text, size_t len, int64_t now_ms,
                                    struct dexcom_share_reading *out, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *obj = json_loadb(text, len, 0, &jerr);
    if (!obj) {
        say(why, whylen, "not JSON");
        return DIA_ERR_NOT_MINE;
    }
    int rc = parse_reading(obj, now_ms, out, why, whylen);
    json_decref(obj);
    return rc;
}

int dexcom_share_parse_readings(const char *body, size_t len, int64_t now_ms,
                                struct dexcom_share_reading *out, size_t max, size_t *n,
                                struct dexcom_share_parse_stats *st, char *why, size_t whylen)
{
    *n = 0;
    memset(st, 0, sizeof *st);
    if (why && whylen)
        why[0] = '\0';
    json_error_t jerr;
    json_t *root = body ? json_loadb(body, len, 0, &jerr) : NULL;
    if (!json_is_array(root)) {
        char snip[80];
        dexcom_share_snippet(body, len, snip, sizeof snip);
        say(why, whylen, "expected a JSON array of readings, got \"%s\"", snip);
        json_decref(root);
        return DIA_ERR_NOT_MINE;
    }
    size_t i;
    json_t *el;
    json_array_foreach(root, i, el)
    {
        struct dexcom_share_reading r;
        char reason[160];
        int rc = parse_reading(el, now_ms, &r, reason, sizeof reason);
        if (rc == DIA_OK && *n >= max) {
            rc = DIA_ERR_ARG;
            snprintf(reason, sizeof reason, "more than %zu readings in one reply", max);
        }
        if (rc == DIA_OK) {
            out[(*n)++] = r;
            st->ok++;
            continue;
        }
        if (rc == DIA_ERR_IMPLAUSIBLE)
            st->implausible++;
        else
            st->malformed++;
        if (why && whylen && !why[0])
            say(why, whylen, "reading %zu: %s", i, reason);
    }
    json_decref(root);
    return DIA_OK;
}

int dexcom_share_parse_uuid_body(const char *body, size_t len, char out[DEXCOM_SHARE_UUID_LEN + 1])
{
    json_error_t jerr;
    json_t *v = body ? json_loadb(body, len, JSON_DECODE_ANY, &jerr) : NULL;
    int rc = DIA_ERR_NOT_MINE;
    if (json_is_string(v))
        rc = dexcom_share_uuid_parse(json_string_value(v), json_string_length(v), out);
    json_decref(v);
    return rc == DIA_ERR_TRUNCATED ? DIA_ERR_NOT_MINE : rc;
}

int dexcom_share_parse_fault(const char *body, size_t len, struct dexcom_share_fault_info *f)
{
    memset(f, 0, sizeof *f);
    json_error_t jerr;
    json_t *root = body ? json_loadb(body, len, 0, &jerr) : NULL;
    const json_t *code = json_object_get(root, "Code");
    if (!json_is_string(code) || json_string_length(code) == 0) {
        json_decref(root);
        return DIA_ERR_NOT_MINE;
    }
    dexcom_share_snippet(json_string_value(code), json_string_length(code), f->code,
                         sizeof f->code);
    const json_t *msg = json_object_get(root, "Message");
    if (json_is_string(msg))
        dexcom_share_snippet(json_string_value(msg), json_string_length(msg), f->message,
                             sizeof f->message);
    f->kind = dexcom_share_fault_classify(json_string_value(code),
                                          json_is_string(msg) ? json_string_value(msg) : NULL);
    json_decref(root);
    return DIA_OK;
}
