/*
 * `diabridge-sim influx-server`: a fake InfluxDB 2.x or 3.x on loopback, so
 * the influx sink's v2 and v3 endpoints are tested end to end (Debian
 * packages only InfluxDB 1.x, which tests/integration/influx_test.sh uses).
 *
 * What it does, and where each behaviour comes from (InfluxData's pages;
 * the 3.x answers also from influxdb3_server/src/http.rs in InfluxDB's
 * repository):
 *
 * --version 2 (InfluxDB OSS 2.x)
 *   POST /api/v2/write?org=&bucket=&precision=ns|us|ms|s (default ns)
 *     https://docs.influxdata.com/influxdb/v2/api/write-data/
 *     https://docs.influxdata.com/influxdb/v2/api/quick-start/
 *   - Authorization: Token T, the scheme 2.x documents for API tokens; any
 *     other header → 401 {"code":"unauthorized","message":…}.
 *   - no org → 400; an unknown org or bucket → 404 {"code":"not found",
 *     "message":"bucket \"x\" not found"} (that exact body is in a recorded
 *     2.x answer, rdrr.io influxdbclient tests/testthat/…/write-00506d-POST.R).
 *   - one malformed line → 400 {"code":"invalid","message":"unable to parse
 *     '<line>': <reason>"} and nothing is written ("the first rejected point
 *     causes InfluxDB to reject the entire batch",
 *     https://docs.influxdata.com/influxdb/v2/write-data/troubleshoot/).
 *   - a field whose type differs from the type already stored → the other
 *     points are written and 422 {"code":"unprocessable entity","message":
 *     "failure writing points to database: partial write: field type
 *     conflict: …"} (the 2.5+ troubleshooting page: 422, partial ingest,
 *     https://docs.influxdata.com/influxdb/v2.5/write-data/troubleshoot/).
 *   - 204 with no body on success.
 *
 * --version 3 (InfluxDB 3 Core/Enterprise)
 *   POST /api/v3/write_lp?db=&precision=auto|nanosecond|microsecond|
 *        millisecond|second&accept_partial=&no_sync=
 *     https://docs.influxdata.com/influxdb3/core/write-data/http-api/v3-write-lp/
 *     (precision defaults to auto: the unit is guessed from the magnitude;
 *     the API reference's table also lists ns/us/ms/s as spellings, and so
 *     they are accepted here too,
 *     https://docs.influxdata.com/influxdb3/core/api/write-data/)
 *   POST /api/v2/write?bucket=&precision=ns|us|ms|s: the v2 compatibility
 *     endpoint InfluxDB 3 also serves; bucket is the database, org is
 *     ignored, Token and Bearer are equivalent
 *     (https://docs.influxdata.com/influxdb3/core/write-data/http-api/compatibility-apis/).
 *   - Authorization: Bearer T, Token T or Basic (any user, the token as
 *     password) (https://docs.influxdata.com/influxdb3/core/api/authentication/);
 *     a wrong or missing token → 401 with an empty body; another scheme →
 *     400 {"error":"Authorization header was malformed, …"}.
 *   - no db → 400 "missing query parameter 'db'"; a db name that is not
 *     ASCII letters, digits, `_`, `-` (starting with a letter or digit) →
 *     400 {"error":"invalid character in database name: …"}.  Databases
 *     and tables are created by the first write (schema-on-write,
 *     https://docs.influxdata.com/influxdb3/core/get-started/write/).
 *   - accept_partial=true (the default): good lines are written, bad ones
 *     (syntax, a field type conflict, a tag and a field of the same name)
 *     are listed: 400 {"error":"partial write of line protocol occurred",
 *     "data":[{"original_line","line_number","error_message"}…]};
 *     accept_partial=false: nothing is written, 400 {"error":"parsing failed
 *     for write_lp endpoint","data":{…the first…}} (both bodies are the
 *     v3-write-lp page's examples).  The body must be UTF-8.
 *   - 204 with no body on success.
 *
 * Messages not quoted above (a missing bucket, an empty body, a bad
 * precision) are close to InfluxDB's but not copied from a capture; the
 * status codes are what matter to the sink.
 *
 * Both: Content-Encoding gzip or identity; every line is checked by a
 * strict line-protocol parser (below: the project has only an encoder),
 * and a point is identified by database + measurement + tag set + time, so
 * writing it again overwrites its fields (InfluxDB's rule) instead of
 * adding a point.  The parser is stricter than InfluxDB in one way: exactly
 * one space separates the parts of a line, so sloppy output from our
 * encoder shows up here first.
 *
 * Scenarios (--scenario, or at run time /_sim/scenario): normal; outage
 * (503 with Retry-After, as an overloaded or restarting server answers);
 * auth-failure (every write gets the version's 401, as after the token was
 * revoked); slow (the write is stored, then the answer waits --slow-ms, so
 * a client timeout re-sends points the server already has).
 *
 * For tests, outside InfluxDB's API (the token is not needed):
 *   GET /_sim/points[?db=NAME]  every stored point, one JSON object per line:
 *       {"db","measurement","tags":{},"fields":{},"types":{},"time_ns":"…",
 *        "writes":N}  (time_ns is a string: jq would round it as a number)
 *   GET /_sim/stats             counters, as JSON
 *   GET /_sim/scenario?name=NAME[&count=N][&ms=D]  switch scenario; count:
 *       for the next N write requests only (0: until changed).
 *   GET /_sim/limit?tables=N    3.x: refuse (422, "would exceed number of
 *       tables limit") a write that would give a database more than N tables,
 *       as InfluxDB 3's catalog limit does; 0: no limit.
 * The token never appears in anything the simulator prints or answers.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#include "core/clock.h"
#include "sim/httpd.h"
#include "sim/sim.h"

#define MAX_INFLATED    (64u << 20)
#define MAX_LINE_ERRORS 100 /* InfluxDB 3 lists at most 100 rejected lines */
#define NAME_MAX_LEN    256
#define STRING_MAX_LEN  65536 /* InfluxDB's limit for a string field */

/* InfluxDB's representable time range, in ns (models.MinNanoTime/MaxNanoTime) */
#define MIN_TIME_NS (-9223372036854775807LL + 1)
#define MAX_TIME_NS (9223372036854775807LL - 1)

enum scenario { SC_NORMAL, SC_OUTAGE, SC_AUTH_FAILURE, SC_SLOW, SC_COUNT };
static const char *const scenario_names[SC_COUNT] = {"normal", "outage", "auth-failure", "slow"};

struct isim {
    int version; /* 2 or 3 */
    char token[512];
    char org[128];
    json_t *buckets; /* v2: known bucket names */
    json_t *points;  /* stored points, in first-write order */
    json_t *index;   /* "db \x1f series \x1f time" → position in points */
    json_t *schema;  /* "db \x1f measurement \x1f column" → "tag" or a field type */
    enum scenario scenario;
    long scenario_left; /* write requests left in this scenario; 0: until changed */
    long slow_ms;
    unsigned long requests, writes_ok, writes_refused, lines_rejected, auth_failures, faults_served,
        rewrites;
    long max_tables; /* v3, /_sim/limit?tables=N: the catalog's table limit; 0: none */
};

/* ---- answers ---------------------------------------------------------------- */

static void reply_json(struct sim_http_response *res, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    res->status = status;
    free(res->body);
    res->body = text ? text : strdup("{}");
    res->body_len = strlen(res->body);
}

static void reply_text(struct sim_http_response *res, int status, const char *text)
{
    snprintf(res->content_type, sizeof res->content_type, "text/plain; charset=utf-8");
    sim_http_reply(res, status, "%s", text);
}

static void reply_empty(struct sim_http_response *res, int status)
{
    free(res->body);
    res->body = NULL;
    res->body_len = 0;
    res->status = status;
}

/* 2.x errors: {"code": "...", "message": "..."} */
static void v2_error(struct sim_http_response *res, int status, const char *code,
                     const char *message)
{
    reply_json(res, status, json_pack("{ss ss}", "code", code, "message", message));
}

/* 3.x errors: {"error": "...", "data": null} */
static void v3_error(struct sim_http_response *res, int status, const char *message)
{
    reply_json(res, status, json_pack("{ss sn}", "error", message, "data"));
}

/* ---- line protocol ------------------------------------------------------------ */

struct lp_line {
    char measurement[NAME_MAX_LEN];
    json_t *tags;   /* key → value */
    json_t *fields; /* key → value */
    json_t *types;  /* field key → "float" | "integer" | "unsigned" | "string" | "boolean" */
    bool has_time;
    int64_t time;
};

static void lp_line_clear(struct lp_line *l)
{
    json_decref(l->tags);
    json_decref(l->fields);
    json_decref(l->types);
    memset(l, 0, sizeof *l);
}

/* Reads a measurement, tag key, tag value or field key up to an unescaped
 * character of `stops`.  A backslash escapes a character of `escapable`;
 * before anything else it is a literal backslash (InfluxDB's rule). */
static bool lp_name(const char **p, const char *end, const char *stops, const char *escapable,
                    char *out, const char **why)
{
    size_t n = 0;
    const char *s = *p;
    while (s < end && !strchr(stops, *s)) {
        char c = *s++;
        if (c == '\\' && s < end && strchr(escapable, *s))
            c = *s++;
        if (n + 1 >= NAME_MAX_LEN) {
            *why = "name too long";
            return false;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    *p = s;
    return true;
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* -?[0-9]+ into an int64 */
static bool parse_int64(const char *s, size_t n, int64_t *v)
{
    const char *digits = s[0] == '-' ? s + 1 : s;
    if (!all_digits(digits, n - (size_t)(digits - s)) || n > 24)
        return false;
    char buf[32];
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    long long x = strtoll(buf, NULL, 10);
    if (errno == ERANGE)
        return false;
    *v = x;
    return true;
}

/* [-]digits[.digits][(e|E)[+|-]digits], or [-].digits…: what InfluxDB
 * accepts as a float; never NaN or an infinity. */
static bool parse_float(const char *s, size_t n, double *v)
{
    size_t i = 0, mant = 0;
    if (i < n && s[i] == '-')
        i++;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, mant++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, mant++;
    }
    if (mant == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t exp = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, exp++;
        if (exp == 0)
            return false;
    }
    if (i != n || n > 64)
        return false;
    char buf[72];
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    double x = strtod(buf, NULL);
    if (errno == ERANGE && (x == HUGE_VAL || x == -HUGE_VAL))
        return false;
    *v = x;
    return true;
}

static bool is_bool_word(const char *s, size_t n, bool *v)
{
    static const char *const yes[] = {"t", "T", "true", "True", "TRUE"};
    static const char *const no[] = {"f", "F", "false", "False", "FALSE"};
    for (int i = 0; i < 5; i++) {
        if (strlen(yes[i]) == n && memcmp(s, yes[i], n) == 0) {
            *v = true;
            return true;
        }
        if (strlen(no[i]) == n && memcmp(s, no[i], n) == 0) {
            *v = false;
            return true;
        }
    }
    return false;
}

/* One field value at *p; sets the value and its type name in the line. */
static bool lp_value(const char **p, const char *end, struct lp_line *l, const char *key,
                     const char **why)
{
    const char *s = *p;
    if (s < end && *s == '"') {
        char *buf = malloc(STRING_MAX_LEN + 1);
        size_t n = 0;
        bool closed = false;
        if (!buf) {
            *why = "out of memory";
            return false;
        }
        for (s++; s < end; s++) {
            char c = *s;
            if (c == '"') {
                closed = true;
                s++;
                break;
            }
            if (c == '\\' && s + 1 < end && (s[1] == '"' || s[1] == '\\'))
                c = *++s;
            if (n >= STRING_MAX_LEN) {
                free(buf);
                *why = "string field too long";
                return false;
            }
            buf[n++] = c;
        }
        if (!closed) {
            free(buf);
            *why = "unbalanced quotes";
            return false;
        }
        json_object_set_new(l->fields, key, json_stringn(buf, n));
        json_object_set_new(l->types, key, json_string("string"));
        free(buf);
        *p = s;
        return true;
    }
    const char *start = s;
    while (s < end && *s != ',' && *s != ' ')
        s++;
    size_t n = (size_t)(s - start);
    *p = s;
    bool b;
    int64_t i;
    double f;
    if (n == 0) {
        *why = "missing field value";
        return false;
    }
    if (is_bool_word(start, n, &b)) {
        json_object_set_new(l->fields, key, json_boolean(b));
        json_object_set_new(l->types, key, json_string("boolean"));
    } else if (start[n - 1] == 'i') {
        if (!parse_int64(start, n - 1, &i)) {
            *why = "invalid integer";
            return false;
        }
        json_object_set_new(l->fields, key, json_integer(i));
        json_object_set_new(l->types, key, json_string("integer"));
    } else if (start[n - 1] == 'u') {
        if (!all_digits(start, n - 1) || !parse_int64(start, n - 1, &i)) {
            *why = "invalid unsigned integer"; /* beyond 2^63 too: rare, refused here */
            return false;
        }
        json_object_set_new(l->fields, key, json_integer(i));
        json_object_set_new(l->types, key, json_string("unsigned"));
    } else if (parse_float(start, n, &f)) {
        json_object_set_new(l->fields, key, json_real(f));
        json_object_set_new(l->types, key, json_string("float"));
    } else {
        *why = "invalid number";
        return false;
    }
    return true;
}

/* measurement[,tag=value…] field=value[,field=value…][ timestamp] */
static bool lp_parse(const char *s, size_t len, struct lp_line *l, const char **why)
{
    const char *end = s + len;
    const char *p = s;
    char key[NAME_MAX_LEN], value[NAME_MAX_LEN];
    memset(l, 0, sizeof *l);
    l->tags = json_object();
    l->fields = json_object();
    l->types = json_object();
    if (!lp_name(&p, end, ", ", ", ", l->measurement, why))
        return false;
    if (!l->measurement[0]) {
        *why = "missing measurement";
        return false;
    }
    while (p < end && *p == ',') {
        p++;
        if (!lp_name(&p, end, "=, ", ",= ", key, why))
            return false;
        if (!key[0]) {
            *why = "missing tag key";
            return false;
        }
        if (p >= end || *p != '=') {
            *why = "missing tag value";
            return false;
        }
        p++;
        if (!lp_name(&p, end, ", ", ",= ", value, why))
            return false;
        if (!value[0]) {
            *why = "missing tag value";
            return false;
        }
        if (json_object_get(l->tags, key)) {
            *why = "duplicate tags";
            return false;
        }
        json_object_set_new(l->tags, key, json_string(value));
    }
    if (p >= end || *p != ' ') {
        *why = "missing fields";
        return false;
    }
    p++;
    for (;;) {
        if (!lp_name(&p, end, "=, ", ",= ", key, why))
            return false;
        if (!key[0] || p >= end || *p != '=') {
            *why = key[0] ? "missing field value" : "missing field key";
            return false;
        }
        p++;
        if (json_object_get(l->fields, key)) {
            *why = "duplicate field"; /* InfluxDB keeps one; a client bug either way */
            return false;
        }
        if (!lp_value(&p, end, l, key, why))
            return false;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        break;
    }
    if (p < end) {
        if (*p != ' ' || p + 1 >= end) {
            *why = "invalid field format";
            return false;
        }
        p++;
        if (!parse_int64(p, (size_t)(end - p), &l->time)) {
            *why = "bad timestamp";
            return false;
        }
        l->has_time = true;
    }
    return true;
}

/* ---- precision and time -------------------------------------------------------- */

enum precision { P_AUTO = 0, P_NS = 1, P_US = 1000, P_MS = 1000000, P_S = 1000000000 };

static bool precision_v2(const char *v, enum precision *p)
{
    static const struct {
        const char *name;
        enum precision p;
    } t[] = {{"ns", P_NS}, {"us", P_US}, {"ms", P_MS}, {"s", P_S}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(v, t[i].name) == 0) {
            *p = t[i].p;
            return true;
        }
    return false;
}

static bool precision_v3(const char *v, enum precision *p)
{
    static const struct {
        const char *name;
        enum precision p;
    } t[] = {{"auto", P_AUTO},      {"nanosecond", P_NS}, {"microsecond", P_US},
             {"millisecond", P_MS}, {"second", P_S},      {"ns", P_NS},
             {"us", P_US},          {"ms", P_MS},         {"s", P_S}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(v, t[i].name) == 0) {
            *p = t[i].p;
            return true;
        }
    return false;
}

/* The line's time in ns; false when it cannot be represented. */
static bool time_ns_of(const struct lp_line *l, enum precision prec, int64_t *ns)
{
    if (!l->has_time) {
        *ns = dia_now_ms() * 1000000LL; /* the server's clock, as InfluxDB does */
        return true;
    }
    int64_t t = l->time, mult = prec;
    if (prec == P_AUTO) {
        /* InfluxDB 3's guess from the magnitude (v3-write-lp page) */
        int64_t a = t < 0 ? -t : t;
        mult = a < 5000000000LL         ? P_S
               : a < 5000000000000LL    ? P_MS
               : a < 5000000000000000LL ? P_US
                                        : P_NS;
    }
    int64_t r;
    if (__builtin_mul_overflow(t, mult, &r) || r < MIN_TIME_NS || r > MAX_TIME_NS)
        return false;
    *ns = r;
    return true;
}

/* ---- storing points ------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "db \x1f measurement \x1f k=v \x1f k=v … \x1f time": a point's identity */
static char *point_key(const char *db, const struct lp_line *l, int64_t ns)
{
    size_t n = json_object_size(l->tags), i = 0;
    const char **keys = calloc(n ? n : 1, sizeof *keys);
    const char *k;
    json_t *v;
    json_object_foreach(l->tags, k, v) keys[i++] = k;
    qsort(keys, n, sizeof *keys, cmp_str);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    fprintf(f, "%s\x1f%s", db, l->measurement);
    for (i = 0; i < n; i++)
        fprintf(f, "\x1f%s=%s", keys[i], json_string_value(json_object_get(l->tags, keys[i])));
    fprintf(f, "\x1f%" PRId64, ns);
    fclose(f);
    free(keys);
    return out;
}

static char *column_key(const char *db, const char *measurement, const char *column)
{
    char *k = NULL;
    if (asprintf(&k, "%s\x1f%s\x1f%s", db, measurement, column) < 0)
        return NULL;
    return k;
}

/* How many tables (measurements) db would have with pending's additions. */
static size_t count_tables(struct isim *is, json_t *pending, const char *db)
{
    json_t *seen = json_object();
    size_t dblen = strlen(db);
    json_t *maps[2] = {is->schema, pending};
    for (int m = 0; m < 2; m++) {
        const char *key;
        json_t *v;
        json_object_foreach(maps[m], key, v)
        {
            if (strncmp(key, db, dblen) != 0 || key[dblen] != '\x1f')
                continue;
            const char *meas = key + dblen + 1, *end = strchr(meas, '\x1f');
            char name[NAME_MAX_LEN];
            snprintf(name, sizeof name, "%.*s", (int)(end ? end - meas : (long)strlen(meas)), meas);
            json_object_set_new(seen, name, json_true());
        }
    }
    size_t n = json_object_size(seen);
    json_decref(seen);
    return n;
}

/* The column's kind so far: the stored schema, then this request's pending
 * additions (which become the schema only if the request writes them). */
static const char *column_kind(struct isim *is, json_t *pending, const char *ck)
{
    json_t *k = json_object_get(pending, ck);
    if (!k)
        k = json_object_get(is->schema, ck);
    return json_string_value(k);
}

/* Checks l against the schema (and pending); on success adds its columns to
 * pending.  Returns false with the version's message in why. */
static bool schema_check(struct isim *is, json_t *pending, const char *db, const struct lp_line *l,
                         char *why, size_t len)
{
    json_t *add = json_object();
    const char *key;
    json_t *v;
    bool ok = true;
    json_object_foreach(l->tags, key, v)
    {
        char *ck = column_key(db, l->measurement, key);
        const char *was = column_kind(is, pending, ck);
        if (was && strcmp(was, "tag") != 0 && is->version == 3) {
            snprintf(why, len, "column '%s' is a field, it cannot also be a tag", key);
            ok = false;
        }
        if (!was)
            json_object_set_new(add, ck, json_string("tag"));
        free(ck);
    }
    json_object_foreach(l->types, key, v)
    {
        if (!ok)
            break;
        const char *type = json_string_value(v);
        char *ck = column_key(db, l->measurement, key);
        const char *was = column_kind(is, pending, ck);
        if (!was && json_object_get(l->tags, key) && is->version == 3) {
            snprintf(why, len, "column '%s' is a tag in this line, it cannot also be a field", key);
            ok = false;
        } else if (was && strcmp(was, "tag") == 0 && is->version == 3) {
            snprintf(why, len, "column '%s' is a tag, it cannot also be a field", key);
            ok = false;
        } else if (was && strcmp(was, "tag") != 0 && strcmp(was, type) != 0) {
            if (is->version == 3)
                snprintf(why, len,
                         "invalid column type for column '%s', expected "
                         "iox::column_type::field::%s, got iox::column_type::field::%s",
                         key, was, type);
            else
                snprintf(why, len,
                         "field type conflict: input field \"%s\" on measurement \"%s\" is "
                         "type %s, already exists as type %s",
                         key, l->measurement, type, was);
            ok = false;
        } else if (!was) {
            json_object_set_new(add, ck, json_string(type));
        }
        free(ck);
    }
    if (ok)
        json_object_update(pending, add);
    json_decref(add);
    return ok;
}

static void store_point(struct isim *is, const char *db, const struct lp_line *l, int64_t ns)
{
    char *k = point_key(db, l, ns);
    json_t *at = json_object_get(is->index, k);
    if (at) {
        /* same series and time: the fields are overwritten, not a new point */
        json_t *old = json_array_get(is->points, (size_t)json_integer_value(at));
        json_object_update(json_object_get(old, "fields"), l->fields);
        json_object_update(json_object_get(old, "types"), l->types);
        json_object_set_new(old, "writes",
                            json_integer(json_integer_value(json_object_get(old, "writes")) + 1));
        is->rewrites++;
    } else {
        char t[32];
        snprintf(t, sizeof t, "%" PRId64, ns);
        json_array_append_new(is->points,
                              json_pack("{ss ss sO sO sO ss si}", "db", db, "measurement",
                                        l->measurement, "tags", l->tags, "fields", l->fields,
                                        "types", l->types, "time_ns", t, "writes", 1));
        json_object_set_new(is->index, k,
                            json_integer((json_int_t)json_array_size(is->points) - 1));
    }
    free(k);
}

/* ---- the write itself ------------------------------------------------------------ */

static bool gunzip(const char *in, size_t in_len, char **out, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) /* gzip wrapper only */
        return false;
    size_t cap = in_len * 4 + 4096, len = 0;
    char *buf = malloc(cap + 1);
    int zr = Z_OK;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)in_len;
    while (buf && zr == Z_OK) {
        if (len == cap) {
            char *nb = cap >= MAX_INFLATED ? NULL : realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        z.next_out = (Bytef *)buf + len;
        z.avail_out = (uInt)(cap - len);
        zr = inflate(&z, Z_NO_FLUSH);
        len = cap - z.avail_out;
        /* a gzip stream may hold several members (RFC 1952); go on after each */
        if (zr == Z_STREAM_END && z.avail_in > 0)
            zr = inflateReset(&z);
    }
    inflateEnd(&z);
    if (!buf || zr != Z_STREAM_END) {
        free(buf);
        return false;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return true;
}

static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t more;
        if (c < 0x80)
            more = 0;
        else if (c >= 0xc2 && c <= 0xdf)
            more = 1;
        else if ((c & 0xf0) == 0xe0)
            more = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            more = 3;
        else
            return false;
        if (more > n - i - 1)
            return false;
        for (size_t j = 1; j <= more; j++)
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
        i += more + 1;
    }
    return true;
}

struct write_req {
    const char *db;
    enum precision precision;
    bool accept_partial; /* v3 only; v2 refuses the whole batch on a syntax error */
};

/* Parses, checks and stores the lines of body; answers as the version does. */
static void do_write(struct isim *is, const struct write_req *w, char *body, size_t len,
                     struct sim_http_response *res)
{
    json_t *rejected = json_array(); /* v3 shape: {original_line, line_number, error_message} */
    struct lp_line *lines = NULL;
    int64_t *times = NULL;
    size_t nlines = 0, cap = 0;
    char first_v2[600] = "";
    json_t *pending = json_object();
    unsigned long line_no = 0;
    bool syntax_error = false;

    for (char *p = body, *end = body + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        line_no++;
        char *s = p;
        size_t n = (size_t)(eol - p);
        p = nl ? nl + 1 : end;
        while (n && (*s == ' ' || *s == '\t')) /* leading white space is skipped */
            s++, n--;
        if (n == 0 || *s == '#')
            continue; /* empty lines and comments */
        if (nlines == cap) {
            cap = cap ? cap * 2 : 256;
            struct lp_line *grown_lines = realloc(lines, cap * sizeof *lines);
            int64_t *grown_times = grown_lines ? realloc(times, cap * sizeof *times) : NULL;
            if (grown_lines)
                lines = grown_lines;
            if (!grown_times) {
                fprintf(stderr, "diabridge-sim influx-server: out of memory\n");
                _exit(1);
            }
            times = grown_times;
        }
        struct lp_line *l = &lines[nlines];
        const char *why = NULL;
        char msg[512];
        bool ok = lp_parse(s, n, l, &why);
        if (ok && !time_ns_of(l, w->precision, &times[nlines])) {
            ok = false;
            why = "time outside range";
        }
        if (ok) {
            msg[0] = '\0';
            ok = schema_check(is, pending, w->db, l, msg, sizeof msg);
            if (!ok && is->version == 2 && !first_v2[0])
                snprintf(first_v2, sizeof first_v2, "%s", msg);
        } else {
            syntax_error = true;
            snprintf(msg, sizeof msg, "%s", why);
            if (is->version == 2 && !first_v2[0])
                snprintf(first_v2, sizeof first_v2, "unable to parse '%.*s': %s",
                         (int)(n < 300 ? n : 300), s, why);
        }
        if (!ok) {
            if (json_array_size(rejected) < MAX_LINE_ERRORS)
                json_array_append_new(rejected,
                                      json_pack("{ss% sI ss}", "original_line", s, n, "line_number",
                                                (json_int_t)line_no, "error_message", msg));
            is->lines_rejected++;
            lp_line_clear(l);
            continue;
        }
        nlines++;
    }

    /* InfluxDB 3's catalog limit: a write that would create a table beyond
     * it is refused whole, 422 {"error": "Update to schema would exceed
     * number of tables limit of N tables", "data": null} (influxdb3_server
     * answers CatalogError::TooManyTables so) */
    bool over_limit = is->version == 3 && is->max_tables > 0 &&
                      count_tables(is, pending, w->db) > (size_t)is->max_tables;
    bool write_any;
    if (is->version == 2)
        write_any = !syntax_error; /* a syntax error refuses the batch; conflicts are partial */
    else
        write_any = !over_limit && (json_array_size(rejected) == 0 || w->accept_partial);
    if (write_any) {
        json_object_update(is->schema, pending);
        for (size_t i = 0; i < nlines; i++)
            store_point(is, w->db, &lines[i], times[i]);
    }
    for (size_t i = 0; i < nlines; i++)
        lp_line_clear(&lines[i]);
    free(lines);
    free(times);
    json_decref(pending);

    size_t nrej = json_array_size(rejected);
    if (over_limit) {
        is->writes_refused++;
        char m[160];
        snprintf(m, sizeof m, "Update to schema would exceed number of tables limit of %ld tables",
                 is->max_tables);
        v3_error(res, 422, m);
    } else if (nrej == 0 && nlines > 0) {
        is->writes_ok++;
        reply_empty(res, 204);
    } else if (nrej == 0) {
        is->writes_refused++;
        if (is->version == 2)
            v2_error(res, 400, "invalid", "writing requires points");
        else
            reply_text(res, 400, "no lines to write in the request body");
    } else if (is->version == 2) {
        is->writes_refused++;
        if (syntax_error) {
            v2_error(res, 400, "invalid", first_v2);
        } else {
            char m[800];
            snprintf(m, sizeof m,
                     "failure writing points to database: partial write: %s dropped=%zu", first_v2,
                     nrej);
            v2_error(res, 422, "unprocessable entity", m);
        }
    } else {
        is->writes_refused++;
        if (w->accept_partial)
            reply_json(res, 400,
                       json_pack("{ss so}", "error", "partial write of line protocol occurred",
                                 "data", json_incref(rejected)));
        else
            reply_json(res, 400,
                       json_pack("{ss sO}", "error", "parsing failed for write_lp endpoint", "data",
                                 json_array_get(rejected, 0)));
    }
    json_decref(rejected);
}

/* ---- authentication ---------------------------------------------------------------- */

enum auth { AUTH_OK, AUTH_BAD, AUTH_MALFORMED };

static enum auth check_auth(struct isim *is, const struct sim_http_request *req)
{
    const char *h = sim_http_header(req, "Authorization");
    if (!h)
        return AUTH_BAD;
    const char *sp = strchr(h, ' ');
    if (!sp || sp == h || !sp[1] || strchr(sp + 1, ' '))
        return is->version == 3 ? AUTH_MALFORMED : AUTH_BAD;
    size_t scheme_len = (size_t)(sp - h);
    const char *cred = sp + 1;
    bool token_scheme = scheme_len == 5 && strncmp(h, "Token", 5) == 0;
    bool bearer = scheme_len == 6 && strncmp(h, "Bearer", 6) == 0;
    bool basic = scheme_len == 5 && strncmp(h, "Basic", 5) == 0;
    if (is->version == 2)
        return token_scheme && strcmp(cred, is->token) == 0 ? AUTH_OK : AUTH_BAD;
    if (!token_scheme && !bearer && !basic)
        return AUTH_MALFORMED;
    if (basic) {
        /* user:token, base64; InfluxDB 3 ignores the user */
        unsigned char plain[600];
        size_t clen = strlen(cred);
        if (clen > 780)
            return AUTH_MALFORMED;
        int n = EVP_DecodeBlock(plain, (const unsigned char *)cred, (int)clen);
        if (n < 0)
            return AUTH_MALFORMED;
        plain[n] = '\0'; /* '=' padding decodes to NULs, which end the string early */
        const char *colon = strrchr((char *)plain, ':');
        return colon && strcmp(colon + 1, is->token) == 0 ? AUTH_OK : AUTH_BAD;
    }
    return strcmp(cred, is->token) == 0 ? AUTH_OK : AUTH_BAD;
}

static void unauthorized(struct isim *is, struct sim_http_response *res)
{
    is->auth_failures++;
    if (is->version == 2)
        v2_error(res, 401, "unauthorized", "unauthorized access");
    else
        reply_empty(res, 401); /* 3.x answers 401 with no body */
}

/* ---- the endpoints ---------------------------------------------------------------- */

/* InfluxDB 3's database names: ASCII letters, digits, `_` and `-`, starting
 * with a letter or digit (validate_db_name in influxdb3_server). */
static const char *db_name_problem(const char *name)
{
    if (!name[0])
        return "db name cannot be empty";
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
          (name[0] >= '0' && name[0] <= '9')))
        return "db name did not start with a number or letter";
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return "invalid character in database name: must be ASCII, containing only "
                   "letters, numbers, underscores, or hyphens";
    }
    return NULL;
}

/* The request body as line protocol text (gunzipped when it says so), or an
 * answer already given. */
static bool read_body(struct isim *is, const struct sim_http_request *req,
                      struct sim_http_response *res, char **text, size_t *len)
{
    const char *enc = sim_http_header(req, "Content-Encoding");
    if (enc && strcasecmp(enc, "gzip") == 0) {
        if (!gunzip(req->body, req->body_len, text, len)) {
            if (is->version == 2)
                v2_error(res, 400, "invalid", "unable to decode gzip body");
            else
                reply_text(res, 400, "error decoding gzip stream: invalid gzip header");
            return false;
        }
        return true;
    }
    if (enc && strcasecmp(enc, "identity") != 0) {
        char m[160];
        snprintf(m, sizeof m, "unacceptable content-encoding: %.100s", enc);
        if (is->version == 2)
            v2_error(res, 400, "invalid", m);
        else
            reply_text(res, 400, m);
        return false;
    }
    *text = malloc(req->body_len + 1);
    if (!*text) {
        reply_text(res, 500, "out of memory");
        return false;
    }
    memcpy(*text, req->body, req->body_len);
    (*text)[req->body_len] = '\0';
    *len = req->body_len;
    return true;
}

static bool bool_param(const struct sim_http_request *req, const char *name, bool dflt, bool *v,
                       struct sim_http_response *res)
{
    char buf[16];
    if (!sim_http_query(req, name, buf, sizeof buf)) {
        *v = dflt;
        return true;
    }
    if (strcmp(buf, "true") == 0 || strcmp(buf, "false") == 0) {
        *v = buf[0] == 't';
        return true;
    }
    char m[120];
    snprintf(m, sizeof m, "serde error: %s: provided string was not `true` or `false`", name);
    reply_text(res, 400, m);
    return false;
}

/* 2.x: POST /api/v2/write?org=&bucket=&precision= */
static void write_v2(struct isim *is, const struct sim_http_request *req,
                     struct sim_http_response *res)
{
    char org[256], bucket[256], prec[32], m[400];
    if (!sim_http_query(req, "org", org, sizeof org) &&
        !sim_http_query(req, "orgID", org, sizeof org)) {
        v2_error(res, 400, "invalid", "Please provide either orgID or org");
        return;
    }
    if (strcmp(org, is->org) != 0) {
        snprintf(m, sizeof m, "organization name \"%s\" not found", org);
        v2_error(res, 404, "not found", m);
        return;
    }
    if (!sim_http_query(req, "bucket", bucket, sizeof bucket) || !bucket[0]) {
        v2_error(res, 400, "invalid", "Please provide bucket");
        return;
    }
    if (!json_object_get(is->buckets, bucket)) {
        snprintf(m, sizeof m, "bucket \"%s\" not found", bucket);
        v2_error(res, 404, "not found", m);
        return;
    }
    struct write_req w = {.db = bucket, .precision = P_NS};
    if (sim_http_query(req, "precision", prec, sizeof prec) && !precision_v2(prec, &w.precision)) {
        v2_error(res, 400, "invalid",
                 "invalid precision; valid precision units are ns, us, ms, and s");
        return;
    }
    char *text;
    size_t len;
    if (!read_body(is, req, res, &text, &len))
        return;
    do_write(is, &w, text, len, res);
    free(text);
}

/* 3.x: POST /api/v3/write_lp?db=&precision=&accept_partial=&no_sync=, and
 * the v2 compatibility POST /api/v2/write?bucket=&precision= */
static void write_v3(struct isim *is, const struct sim_http_request *req, bool v2_compat,
                     struct sim_http_response *res)
{
    char db[256], prec[32];
    struct write_req w = {.db = db, .precision = P_AUTO, .accept_partial = true};
    if (v2_compat) {
        if (!sim_http_query(req, "bucket", db, sizeof db)) {
            v3_error(res, 400, "missing query parameter 'bucket'");
            return;
        }
    } else if (!sim_http_query(req, "db", db, sizeof db)) {
        reply_text(res, 400, "missing query parameter 'db'");
        return;
    }
    const char *problem = db_name_problem(db);
    if (problem) {
        v3_error(res, 400, problem);
        return;
    }
    if (sim_http_query(req, "precision", prec, sizeof prec) &&
        !(v2_compat ? precision_v2(prec, &w.precision) : precision_v3(prec, &w.precision))) {
        char m[200];
        snprintf(m, sizeof m,
                 "serde error: unknown variant `%.32s`, expected one of `auto`, `nanosecond`, "
                 "`microsecond`, `millisecond`, `second`",
                 prec);
        reply_text(res, 400, m);
        return;
    }
    bool no_sync;
    if (!v2_compat && (!bool_param(req, "accept_partial", true, &w.accept_partial, res) ||
                       !bool_param(req, "no_sync", false, &no_sync, res)))
        return;
    char *text;
    size_t len;
    if (!read_body(is, req, res, &text, &len))
        return;
    if (!valid_utf8((const unsigned char *)text, len)) {
        reply_text(res, 400, "body content is not valid utf8");
        free(text);
        return;
    }
    do_write(is, &w, text, len, res);
    free(text);
}

/* ---- test controls ------------------------------------------------------------------ */

static void sim_control(struct isim *is, const struct sim_http_request *req,
                        struct sim_http_response *res)
{
    char buf[128];
    if (strcmp(req->path, "/_sim/scenario") == 0) {
        if (sim_http_query(req, "name", buf, sizeof buf)) {
            int sc = -1;
            for (int i = 0; i < SC_COUNT; i++)
                if (strcmp(buf, scenario_names[i]) == 0)
                    sc = i;
            if (sc < 0) {
                reply_text(res, 400, "name is normal, outage, auth-failure or slow");
                return;
            }
            is->scenario = (enum scenario)sc;
            is->scenario_left = sim_http_query(req, "count", buf, sizeof buf) ? atol(buf) : 0;
        }
        if (sim_http_query(req, "ms", buf, sizeof buf))
            is->slow_ms = atol(buf);
        reply_json(res, 200,
                   json_pack("{ss sI sI}", "scenario", scenario_names[is->scenario], "count",
                             (json_int_t)is->scenario_left, "ms", (json_int_t)is->slow_ms));
        return;
    }
    if (strcmp(req->path, "/_sim/limit") == 0) {
        if (sim_http_query(req, "tables", buf, sizeof buf))
            is->max_tables = atol(buf);
        reply_json(res, 200, json_pack("{sI}", "tables", (json_int_t)is->max_tables));
        return;
    }
    if (strcmp(req->path, "/_sim/stats") == 0) {
        reply_json(res, 200,
                   json_pack("{si ss sI sI sI sI sI sI sI sI}", "version", is->version, "scenario",
                             scenario_names[is->scenario], "points",
                             (json_int_t)json_array_size(is->points), "requests",
                             (json_int_t)is->requests, "writes_ok", (json_int_t)is->writes_ok,
                             "writes_refused", (json_int_t)is->writes_refused, "lines_rejected",
                             (json_int_t)is->lines_rejected, "auth_failures",
                             (json_int_t)is->auth_failures, "faults_served",
                             (json_int_t)is->faults_served, "rewrites", (json_int_t)is->rewrites));
        return;
    }
    if (strcmp(req->path, "/_sim/points") == 0) {
        char db[256];
        bool one_db = sim_http_query(req, "db", db, sizeof db);
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        size_t i;
        json_t *pt;
        json_array_foreach(is->points, i, pt)
        {
            if (one_db && strcmp(json_string_value(json_object_get(pt, "db")), db) != 0)
                continue;
            char *line = json_dumps(pt, JSON_COMPACT | JSON_REAL_PRECISION(15));
            if (line)
                fprintf(f, "%s\n", line);
            free(line);
        }
        fclose(f);
        snprintf(res->content_type, sizeof res->content_type, "application/x-ndjson");
        free(res->body);
        res->body = out;
        res->body_len = len;
        res->status = 200;
        return;
    }
    reply_text(res, 404, "unknown /_sim control: scenario, limit, stats or points");
}

/* ---- dispatch ------------------------------------------------------------------------ */

static void handle(void *ctx, const struct sim_http_request *req, struct sim_http_response *res)
{
    struct isim *is = ctx;
    if (strncmp(req->path, "/_sim/", 6) == 0) {
        sim_control(is, req, res);
        return;
    }
    is->requests++;
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (strcmp(req->path, "/ping") == 0) {
        reply_empty(res, 204);
        return;
    }
    if (get && strcmp(req->path, "/health") == 0) {
        if (is->version == 2)
            reply_json(res, 200,
                       json_pack("{ss ss ss}", "name", "influxdb", "message",
                                 "ready for queries and writes", "status", "pass"));
        else
            reply_text(res, 200, "OK");
        return;
    }
    bool v2_path = strcmp(req->path, "/api/v2/write") == 0;
    bool v3_path = is->version == 3 && strcmp(req->path, "/api/v3/write_lp") == 0;
    if (!v2_path && !v3_path) {
        if (is->version == 2)
            v2_error(res, 404, "not found", "path not found");
        else
            reply_text(res, 404, "not found");
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        if (is->version == 2)
            v2_error(res, 405, "method not allowed", "method not allowed");
        else
            v3_error(res, 405, "unsupported method");
        return;
    }

    enum scenario sc = is->scenario;
    if (sc != SC_NORMAL) {
        is->faults_served++;
        if (is->scenario_left > 0 && --is->scenario_left == 0)
            is->scenario = SC_NORMAL;
    }
    if (sc == SC_OUTAGE) {
        snprintf(res->extra_headers, sizeof res->extra_headers, "Retry-After: 1\r\n");
        if (is->version == 2)
            v2_error(res, 503, "unavailable", "simulated outage: the server is not ready");
        else
            reply_text(res, 503, "this service is overloaded, please try again later");
        return;
    }
    if (sc == SC_AUTH_FAILURE) {
        unauthorized(is, res);
        return;
    }
    switch (check_auth(is, req)) {
    case AUTH_OK:
        break;
    case AUTH_MALFORMED:
        is->auth_failures++;
        v3_error(res, 400,
                 "Authorization header was malformed, the request was not in the form of "
                 "'Authorization: <auth-scheme> <token>', supported auth-schemes are Bearer, "
                 "Token and Basic");
        return;
    case AUTH_BAD:
        unauthorized(is, res);
        return;
    }
    if (is->version == 2)
        write_v2(is, req, res);
    else
        write_v3(is, req, v2_path, res);
    if (sc == SC_SLOW)
        res->delay_ms = (int)is->slow_ms; /* stored already; only the answer is late */
}

/* ---- main ------------------------------------------------------------------------------ */

static const char influx_usage[] =
    "[--port N] [--version 2|3] [--token T] [--org NAME] [--bucket NAME]...\n"
    "       [--scenario normal|outage|auth-failure|slow] [--count N] [--slow-ms 3000]\n"
    "\n"
    "A fake InfluxDB 2.x (--version 2, the default) or 3.x (--version 3) on 127.0.0.1\n"
    "that checks every line it is sent and keeps the points; prints its URL on the\n"
    "first line of stdout.  2.x knows one organization (--org, default diabridge) and\n"
    "the buckets named with --bucket (default diabridge); 3.x creates databases as\n"
    "they are written.  --count N: the scenario lasts N write requests.  Test\n"
    "controls: /_sim/points[?db=], /_sim/stats, /_sim/scenario?name=&count=&ms=\n"
    "(see sim/influx_server.c).";

static int influx_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"version", required_argument, NULL, 'v'},
        {"token", required_argument, NULL, 't'},
        {"org", required_argument, NULL, 'o'},
        {"bucket", required_argument, NULL, 'b'},
        {"scenario", required_argument, NULL, 's'},
        {"count", required_argument, NULL, 'c'},
        {"slow-ms", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    static struct isim is;
    is.version = 2;
    is.slow_ms = 3000;
    snprintf(is.token, sizeof is.token, "diabridge-sim-token");
    snprintf(is.org, sizeof is.org, "diabridge");
    is.buckets = json_object();
    int port = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'v':
            is.version = atoi(optarg);
            if (is.version != 2 && is.version != 3) {
                fprintf(stderr, "diabridge-sim influx-server: --version is 2 or 3\n");
                return 2;
            }
            break;
        case 't':
            if (!optarg[0] || strlen(optarg) >= sizeof is.token || strchr(optarg, ' ')) {
                fprintf(stderr,
                        "diabridge-sim influx-server: --token must be 1 to %zu "
                        "characters without spaces\n",
                        sizeof is.token - 1);
                return 2;
            }
            snprintf(is.token, sizeof is.token, "%s", optarg);
            break;
        case 'o':
            snprintf(is.org, sizeof is.org, "%s", optarg);
            break;
        case 'b':
            json_object_set_new(is.buckets, optarg, json_true());
            break;
        case 's': {
            int sc = -1;
            for (int i = 0; i < SC_COUNT; i++)
                if (strcmp(optarg, scenario_names[i]) == 0)
                    sc = i;
            if (sc < 0) {
                fprintf(stderr, "diabridge-sim influx-server: --scenario is normal, outage, "
                                "auth-failure or slow\n");
                return 2;
            }
            is.scenario = (enum scenario)sc;
            break;
        }
        case 'c':
            is.scenario_left = atol(optarg);
            break;
        case 'w':
            is.slow_ms = atol(optarg);
            break;
        default:
            fprintf(stderr, "usage: diabridge-sim influx-server %s\n", influx_usage);
            return 2;
        }
    }
    if (json_object_size(is.buckets) == 0)
        json_object_set_new(is.buckets, "diabridge", json_true());
    is.points = json_array();
    is.index = json_object();
    is.schema = json_object();
    return sim_httpd_serve("diabridge-sim influx-server", port, handle, &is, NULL);
}

const struct dia_simulator dia_sim_influx_server = {
    .name = "influx-server",
    .description = "fake InfluxDB 2.x/3.x write API (line protocol checked, faults) on loopback",
    .usage = influx_usage,
    .main = influx_main,
};
