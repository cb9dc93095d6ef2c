/*
 * InfluxDB line protocol encoder.  The format, its escaping rules and our
 * choices where the spec is silent are described in influx_lp.h
 * (specs/smartpix-and-sinks.md §4.3).
 */
#include "proto/influx_lp/influx_lp.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

enum { PHASE_IDLE = 0, PHASE_TAGS = 1, PHASE_FIELDS = 2 };

/* Which characters get a backslash in which position (§4.3). */
enum name_kind { NAME_MEASUREMENT, NAME_KEY_OR_TAG };

void influx_lp_init(struct influx_lp *lp, char *buf, size_t cap)
{
    memset(lp, 0, sizeof *lp);
    lp->buf = buf;
    lp->cap = cap;
}

void influx_lp_reset(struct influx_lp *lp)
{
    lp->len = 0;
    lp->line_start = 0;
    lp->phase = PHASE_IDLE;
    lp->err = DIA_OK;
}

static void fail(struct influx_lp *lp, int err)
{
    if (lp->err == DIA_OK)
        lp->err = err;
}

static void put(struct influx_lp *lp, const char *s, size_t n)
{
    if (lp->err != DIA_OK)
        return;
    if (lp->cap - lp->len < n) {
        fail(lp, DIA_ERR_TRUNCATED);
        return;
    }
    memcpy(lp->buf + lp->len, s, n);
    lp->len += n;
}

static void put_char(struct influx_lp *lp, char c)
{
    put(lp, &c, 1);
}

static void put_name(struct influx_lp *lp, const char *name, enum name_kind kind)
{
    if (!name || !name[0]) {
        fail(lp, DIA_ERR_ARG);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        unsigned char c = *p;
        if (c == '\\') {
            put_char(lp, '/'); /* see influx_lp.h: a literal `\` is ambiguous */
            continue;
        }
        if (c < 0x20 || c == 0x7f) {
            put_char(lp, '_');
            continue;
        }
        bool escape = c == ',' || c == ' ' || (kind == NAME_KEY_OR_TAG && c == '=');
        if (escape)
            put_char(lp, '\\');
        put_char(lp, (char)c);
    }
}

void influx_lp_begin(struct influx_lp *lp, const char *measurement)
{
    lp->line_start = lp->len;
    lp->phase = PHASE_TAGS;
    lp->err = DIA_OK;
    put_name(lp, measurement, NAME_MEASUREMENT);
}

void influx_lp_tag(struct influx_lp *lp, const char *key, const char *value)
{
    if (lp->phase != PHASE_TAGS) {
        fail(lp, DIA_ERR_ARG);
        return;
    }
    if (!value || !value[0])
        return;
    put_char(lp, ',');
    put_name(lp, key, NAME_KEY_OR_TAG);
    put_char(lp, '=');
    put_name(lp, value, NAME_KEY_OR_TAG);
}

static void field_key(struct influx_lp *lp, const char *key)
{
    if (lp->phase == PHASE_IDLE) {
        fail(lp, DIA_ERR_ARG);
        return;
    }
    put_char(lp, lp->phase == PHASE_TAGS ? ' ' : ',');
    lp->phase = PHASE_FIELDS;
    put_name(lp, key, NAME_KEY_OR_TAG);
    put_char(lp, '=');
}

void influx_lp_int(struct influx_lp *lp, const char *key, int64_t value)
{
    char num[32];
    int n = snprintf(num, sizeof num, "%" PRId64 "i", value);
    field_key(lp, key);
    put(lp, num, (size_t)n);
}

size_t influx_lp_format_float(char *out, size_t len, double v)
{
    if (!isfinite(v) || len < 32)
        return 0;
    char tmp[40];
    int n = 0;
    /* the shortest of 15, 16, 17 significant digits that reads back exactly */
    for (int digits = 15; digits <= 17; digits++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", digits, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    if (!strpbrk(tmp, ".e")) {
        if ((size_t)n + 3 > sizeof tmp)
            return 0;
        memcpy(tmp + n, ".0", 3);
        n += 2;
    }
    if ((size_t)n + 1 > len)
        return 0;
    memcpy(out, tmp, (size_t)n + 1);
    return (size_t)n;
}

void influx_lp_float(struct influx_lp *lp, const char *key, double value)
{
    char num[40];
    size_t n = influx_lp_format_float(num, sizeof num, value);
    if (n == 0) {
        fail(lp, DIA_ERR_ARG);
        return;
    }
    field_key(lp, key);
    put(lp, num, n);
}

void influx_lp_string(struct influx_lp *lp, const char *key, const char *value)
{
    field_key(lp, key);
    put_char(lp, '"');
    for (const char *p = value ? value : ""; *p; p++) {
        char c = *p;
        if (c == '\n' || c == '\r') {
            put_char(lp, ' ');
            continue;
        }
        if (c == '"' || c == '\\')
            put_char(lp, '\\');
        put_char(lp, c);
    }
    put_char(lp, '"');
}

void influx_lp_bool(struct influx_lp *lp, const char *key, bool value)
{
    field_key(lp, key);
    put(lp, value ? "true" : "false", value ? 4 : 5);
}

int influx_lp_end(struct influx_lp *lp, int64_t timestamp)
{
    if (lp->phase != PHASE_FIELDS)
        fail(lp, DIA_ERR_ARG); /* no field: InfluxDB rejects the point */
    char num[32];
    int n = snprintf(num, sizeof num, " %" PRId64 "\n", timestamp);
    put(lp, num, (size_t)n);
    int rc = lp->err;
    if (rc != DIA_OK)
        lp->len = lp->line_start;
    lp->line_start = lp->len;
    lp->phase = PHASE_IDLE;
    lp->err = DIA_OK;
    return rc;
}
