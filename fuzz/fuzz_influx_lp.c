/*
 * libFuzzer target: the InfluxDB line protocol encoder.
 *
 * The input is cut at NUL bytes into a measurement, a tag key, a tag value,
 * a field key and a string value; the rest of the bytes give an integer and
 * a float.  Whatever the encoder accepts must parse back, with a small
 * independent parser written from the rules of specs/smartpix-and-sinks.md
 * §4.3, into exactly those values (after the substitutions influx_lp.h
 * documents); whatever it refuses must leave no partial line behind.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "proto/influx_lp/influx_lp.h"

#define PART 256

/* What the encoder promises a name becomes (influx_lp.h). */
static void expected_name(const char *in, char *out)
{
    size_t i = 0;
    for (; in[i]; i++) {
        unsigned char c = (unsigned char)in[i];
        out[i] = c == '\\' ? '/' : (c < 0x20 || c == 0x7f) ? '_' : (char)c;
    }
    out[i] = '\0';
}

static void expected_string(const char *in, char *out)
{
    size_t i = 0;
    for (; in[i]; i++)
        out[i] = (in[i] == '\n' || in[i] == '\r') ? ' ' : in[i];
    out[i] = '\0';
}

/* Read a name up to an unescaped character in stops; `\` escapes the next. */
static const char *read_name(const char *p, const char *stops, char *out, size_t cap)
{
    size_t n = 0;
    while (*p && !strchr(stops, *p)) {
        if (*p == '\\' && p[1])
            p++;
        if (n + 1 >= cap)
            abort();
        out[n++] = *p++;
    }
    out[n] = '\0';
    return p;
}

static void check(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char part[5][PART];
    size_t at = 0;
    for (int k = 0; k < 5; k++) {
        size_t n = 0;
        while (at < size && data[at] != 0 && n + 1 < PART)
            part[k][n++] = (char)data[at++];
        part[k][n] = '\0';
        while (at < size && data[at] != 0)
            at++; /* too long: the rest of this part is dropped */
        if (at < size)
            at++;
    }
    int64_t ival = 0;
    double fval = 0;
    if (size - at >= sizeof ival) {
        memcpy(&ival, data + at, sizeof ival);
        at += sizeof ival;
    }
    if (size - at >= sizeof fval)
        memcpy(&fval, data + at, sizeof fval);

    static char buf[8192];
    struct influx_lp lp;
    influx_lp_init(&lp, buf, sizeof buf);
    influx_lp_begin(&lp, part[0]);
    influx_lp_tag(&lp, part[1], part[2]);
    influx_lp_string(&lp, part[3], part[4]);
    influx_lp_int(&lp, "i", ival);
    influx_lp_float(&lp, "f", fval);
    int rc = influx_lp_end(&lp, 1700000000000LL);

    bool tag_given = part[2][0] != '\0';
    bool valid = part[0][0] && part[3][0] && (!tag_given || part[1][0]) && isfinite(fval);
    if (!valid) {
        check(rc == DIA_ERR_ARG && lp.len == 0);
        return 0;
    }
    check(rc == DIA_OK);
    check(lp.len > 0 && buf[lp.len - 1] == '\n' && memchr(buf, '\n', lp.len) == buf + lp.len - 1);
    buf[lp.len] = '\0';

    char got[PART * 2], want[PART];
    const char *p = read_name(buf, ", ", got, sizeof got);
    expected_name(part[0], want);
    check(strcmp(got, want) == 0);
    if (tag_given) {
        check(*p == ',');
        p = read_name(p + 1, "=", got, sizeof got);
        expected_name(part[1], want);
        check(strcmp(got, want) == 0 && *p == '=');
        p = read_name(p + 1, ", ", got, sizeof got);
        expected_name(part[2], want);
        check(strcmp(got, want) == 0);
    }
    check(*p == ' ');
    p = read_name(p + 1, "=", got, sizeof got);
    expected_name(part[3], want);
    check(strcmp(got, want) == 0 && p[0] == '=' && p[1] == '"');
    p += 2;
    size_t n = 0;
    while (*p && *p != '"') {
        if (*p == '\\') {
            check(p[1] == '"' || p[1] == '\\'); /* only these are escaped */
            p++;
        }
        got[n++] = *p++;
    }
    got[n] = '\0';
    expected_string(part[4], want);
    check(*p == '"' && strcmp(got, want) == 0);
    p++;
    char *end;
    check(strncmp(p, ",i=", 3) == 0);
    long long iv = strtoll(p + 3, &end, 10);
    check(iv == ival && *end == 'i');
    check(strncmp(end + 1, ",f=", 3) == 0);
    double fv = strtod(end + 4, &end);
    check(fv == fval || (fv == 0 && fval == 0));
    check(strcmp(end, " 1700000000000\n") == 0);
    return 0;
}
