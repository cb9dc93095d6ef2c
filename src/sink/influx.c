/*
 * Sink `influx`: InfluxDB over HTTP, line protocol (docs/sinks/influx.md).
 *
 * Endpoint styles (specs/smartpix-and-sinks.md §4.4), chosen with api=:
 *   v1  POST /write?db=&rp=&precision=ms           HTTP Basic username/password
 *   v2  POST /api/v2/write?org=&bucket=&precision=ms   Authorization: Token …
 *   v3  POST /api/v3/write_lp?db=&precision=millisecond  Authorization: Bearer …
 * (v1 spells the precisions n/ms, v2 ns/ms, v3 nanosecond/millisecond; v1.6
 * silently reads an unknown precision as ns, §4.2, so we never guess.)
 * 204 (any 2xx) is success.  Credentials travel in headers, never in the
 * URL, so they cannot leak into a log line.
 *
 * A batch (default 5,000 points, the size InfluxDB recommends) is encoded
 * once into one buffer, remembering where each record's line ends, and
 * sent gzip-compressed (Content-Encoding: gzip, §4.2).  The outcome:
 *   2xx                     every record acknowledged;
 *   400/413/422             something in the batch cannot be written (parse
 *                           error, field type conflict, beyond retention —
 *                           §4.2's "partial write" answers).  3.x lists the
 *                           refused lines (with accept_partial, its default,
 *                           it wrote the others), and the list is used when
 *                           every entry matches a line we sent.  1.x and 2.x
 *                           do not say which point, so the batch is split in
 *                           halves until every refused point is isolated; a
 *                           half whose sibling went through whole is known to
 *                           hold one and is split without being sent.  The
 *                           good records are acknowledged and the first
 *                           refused one returned as DIA_ERR_PERMANENT with the
 *                           server's message, which the supervisor
 *                           dead-letters; what was learned about the records
 *                           after it (written, or refused and why) is kept,
 *                           so the sends that follow settle them without
 *                           asking again.  Re-sending points a partial write
 *                           already stored is harmless: same series + time
 *                           overwrite.  A 400 that names no line (3.x: a bad
 *                           database name) is about a setting: DIA_ERR_CONFIG,
 *                           nothing set aside.  So is a server limit (3.x:
 *                           "would exceed" its tables/columns/databases limit,
 *                           422; 1.x: max-series/max-values "limit
 *                           exceeded"): the records are fine, the server's
 *                           catalog is full, and every later record of that
 *                           kind would fail alike — setting them aside would
 *                           quietly drop a stream of good data, while
 *                           stopping (30 min retries, a clear status) loses
 *                           nothing and resumes once a person raised the
 *                           limit or chose another database;
 *   401/403                 DIA_ERR_AUTH, with what to check;
 *   404                     DIA_ERR_CONFIG (no such database/bucket, or an
 *                           api= the server does not speak);
 *   5xx, 429, no answer     transient: the supervisor backs off and the
 *                           batch is sent again from the journal cursor.
 */
#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/driver.h"
#include "core/err.h"
#include "core/log.h"
#include "core/url.h"
#include "io/http.h"
#include "proto/influx_lp/influx_lp.h"
#include "sink/influx_map.h"

#define INFLUX_DEFAULT_BATCH "5000"
#define INFLUX_BODY_START    (256u * 1024u)
#define INFLUX_BODY_MAX      (512u * 1024u * 1024u)

enum influx_api { API_V1 = 1, API_V2, API_V3 };

struct influx_sink {
    struct dia_http *http;
    enum influx_api api;
    enum influx_schema schema;
    const char *measurement;
    bool gzip;
    long timeout_ms;
    struct dia_http_tls tls;
    char *write_url;   /* base + path + query (no secret in it) */
    char *auth_header; /* "Authorization: …" or NULL */
    char url_for_log[256];

    struct influx_lp lp; /* over body/body_cap */
    char *body;
    size_t body_cap;
    size_t *line_end; /* line_end[i]: body offset after record i's line */
    size_t line_cap;
    unsigned char *gz;
    size_t gz_cap;

    /* The outcome of each record of the batch being settled (settle()). */
    unsigned char *verdict; /* VERDICT_* */
    char **refusal;         /* the server's reason, for a refused record */
    size_t verdict_cap;
    /* What the last send learned about the records after the refused one
     * it reported: the next send starts there and settles them from here. */
    struct learned {
        int64_t seq;
        char *refusal; /* NULL: written */
    } * learned;
    size_t n_learned, next_learned;
};

enum { VERDICT_UNKNOWN = 0, VERDICT_WRITTEN, VERDICT_REFUSED };

/* post()'s answers besides DIA_OK and the DIA_ERR_* codes */
enum {
    WRITE_REFUSED = 1,   /* the batch holds a point the server will not take */
    WRITE_TOO_LARGE = 2, /* 413: smaller requests may go through */
};
static void forget_learned(struct influx_sink *s);

#define INFLUX_REASON_MAX 300
#define INFLUX_MAX_LISTED 100 /* InfluxDB 3 lists at most 100 refused lines */

static const struct dia_option_spec influx_options[] = {
    {.name = "api",
     .type = DIA_OPT_ENUM,
     .default_value = "v1",
     .choices = "v1|v2|v3",
     .help =
         "endpoint style: v1 (/write, InfluxDB 1.x), v2 (/api/v2/write), v3 (/api/v3/write_lp)"},
    {.name = "db", .type = DIA_OPT_STRING, .help = "database (v1 and v3)"},
    {.name = "rp",
     .type = DIA_OPT_STRING,
     .help = "retention policy (v1; default: the database's)"},
    {.name = "username", .type = DIA_OPT_STRING, .help = "user name (v1)"},
    {.name = "password", .type = DIA_OPT_SECRET, .help = "password (v1)"},
    {.name = "org", .type = DIA_OPT_STRING, .help = "organization (v2)"},
    {.name = "bucket", .type = DIA_OPT_STRING, .help = "bucket (v2)"},
    {.name = "token", .type = DIA_OPT_SECRET, .help = "API token (v2 and v3)"},
    {.name = "schema",
     .type = DIA_OPT_ENUM,
     .default_value = "diabridge",
     .choices = "diabridge|dexpy",
     .help = "diabridge: one measurement per kind; dexpy: dexpy's glucose points (cbg, direction)"},
    {.name = "measurement",
     .type = DIA_OPT_STRING,
     .default_value = "bg",
     .help = "measurement name for schema=dexpy"},
    {.name = "batch",
     .type = DIA_OPT_INT,
     .default_value = INFLUX_DEFAULT_BATCH,
     .min = 1,
     .max = 50000,
     .help = "points per write request"},
    {.name = "gzip", .type = DIA_OPT_BOOL, .default_value = "1", .help = "compress requests"},
    {.name = "timeout",
     .type = DIA_OPT_DURATION,
     .default_value = "30s",
     .min = 1,
     .max = 600,
     .help = "time allowed for one write request"},
    {.name = "insecure",
     .type = DIA_OPT_BOOL,
     .default_value = "0",
     .help = "do not verify the server's TLS certificate (self-signed set-ups only)"},
    {.name = "ca-file",
     .type = DIA_OPT_STRING,
     .help = "PEM file of the CA that signed the server"},
    {.name = "cert-file", .type = DIA_OPT_STRING, .help = "client certificate (PEM)"},
    {.name = "key-file", .type = DIA_OPT_STRING, .help = "client certificate key (PEM)"},
    {0},
};

/* ---- URL building ---------------------------------------------------------- */

struct text {
    char *s;
    size_t len, cap;
    bool oom;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    if (t->oom)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *ns = realloc(t->s, cap);
        if (!ns) {
            t->oom = true;
            return;
        }
        t->s = ns;
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void text_str(struct text *t, const char *s)
{
    text_add(t, s, strlen(s));
}

/* &key=percent-encoded-value (RFC 3986 unreserved characters kept) */
static void text_query(struct text *t, const char *key, const char *value)
{
    if (!value || !value[0])
        return;
    text_str(t, strchr(t->s ? t->s : "", '?') ? "&" : "?");
    text_str(t, key);
    text_add(t, "=", 1);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (isalnum(*p) || strchr("-._~", *p)) {
            text_add(t, (const char *)p, 1);
        } else {
            char esc[4];
            snprintf(esc, sizeof esc, "%%%02X", *p);
            text_add(t, esc, 3);
        }
    }
}

/* The server's base URL from the target: http(s)://host[:port][/prefix].
 * `influx://` (DESIGN §8's example) means http, `influxs://` https. */
static int base_url(struct dia_instance *in, struct text *t)
{
    const char *target = in->opts->target;
    if (!target || !target[0]) {
        dia_instance_error(in, "no server given; write influx+http://HOST:8086,db=NAME");
        return DIA_ERR_CONFIG;
    }
    const char *rest;
    if (strncmp(target, "http://", 7) == 0 || strncmp(target, "https://", 8) == 0) {
        rest = NULL;
        text_str(t, target);
    } else if (strncmp(target, "influx://", 9) == 0) {
        rest = target + 9;
        text_str(t, "http://");
    } else if (strncmp(target, "influxs://", 10) == 0) {
        rest = target + 10;
        text_str(t, "https://");
    } else {
        char shown[256];
        dia_url_display(target, shown, sizeof shown); /* user:password@ stays hidden */
        dia_instance_error(in, "the server \"%s\" is not an http:// or https:// URL", shown);
        return DIA_ERR_CONFIG;
    }
    if (rest)
        text_str(t, rest);
    if (t->oom)
        return DIA_ERR_NOMEM;
    while (t->len > 0 && t->s[t->len - 1] == '/')
        t->s[--t->len] = '\0';
    if (strpbrk(t->s, "?#")) {
        dia_instance_error(in, "the server URL must not contain ? or #; give db= etc. as options");
        return DIA_ERR_CONFIG;
    }
    struct dia_url u;
    char why[160];
    if (dia_url_split(t->s, &u, why, sizeof why) != DIA_OK) {
        dia_instance_error(in, "cannot read the server address: %s; write influx+http://HOST:8086",
                           why);
        return DIA_ERR_CONFIG;
    }
    return DIA_OK;
}

static const char *opt(struct dia_instance *in, const char *key)
{
    const char *v = dia_opt_str(in->opts, key, NULL);
    return v && v[0] ? v : NULL;
}

static int build_endpoint(struct dia_instance *in, struct influx_sink *s)
{
    struct text url = {0};
    int rc = base_url(in, &url);
    if (rc != DIA_OK) {
        free(url.s);
        return rc;
    }
    bool ns = s->schema == INFLUX_SCHEMA_DEXPY;
    const char *db = opt(in, "db"), *token = opt(in, "token");
    char auth[1024] = "";
    switch (s->api) {
    case API_V1: {
        if (!db) {
            dia_instance_error(in, "api=v1 needs db=DATABASE");
            rc = DIA_ERR_CONFIG;
            break;
        }
        text_str(&url, "/write");
        text_query(&url, "db", db);
        text_query(&url, "rp", opt(in, "rp"));
        text_query(&url, "precision", ns ? "n" : "ms");
        const char *user = opt(in, "username"), *pw = opt(in, "password");
        if (user || pw) {
            /* HTTP Basic (§4.2: verified on 1.6.7), so the password is not in the URL */
            char plain[512], b64[700];
            int n = snprintf(plain, sizeof plain, "%s:%s", user ? user : "", pw ? pw : "");
            if (n < 0 || (size_t)n >= sizeof plain) {
                dia_instance_error(in, "username and password are too long");
                rc = DIA_ERR_CONFIG;
                break;
            }
            EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)plain, n);
            snprintf(auth, sizeof auth, "Authorization: Basic %s", b64);
            memset(plain, 0, sizeof plain);
        }
        break;
    }
    case API_V2: {
        const char *org = opt(in, "org"), *bucket = opt(in, "bucket");
        if (!org || !bucket || !token) {
            dia_instance_error(in, "api=v2 needs org=, bucket= and token= (or token-file=)");
            rc = DIA_ERR_CONFIG;
            break;
        }
        text_str(&url, "/api/v2/write");
        text_query(&url, "org", org);
        text_query(&url, "bucket", bucket);
        text_query(&url, "precision", ns ? "ns" : "ms");
        snprintf(auth, sizeof auth, "Authorization: Token %s", token);
        break;
    }
    case API_V3:
        if (!db || !token) {
            dia_instance_error(in, "api=v3 needs db= and token= (or token-file=)");
            rc = DIA_ERR_CONFIG;
            break;
        }
        text_str(&url, "/api/v3/write_lp");
        text_query(&url, "db", db);
        text_query(&url, "precision", ns ? "nanosecond" : "millisecond");
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        break;
    }
    if (rc == DIA_OK && url.oom)
        rc = DIA_ERR_NOMEM;
    if (rc == DIA_OK && auth[0] && !(s->auth_header = strdup(auth)))
        rc = DIA_ERR_NOMEM;
    memset(auth, 0, sizeof auth);
    if (rc != DIA_OK) {
        free(url.s);
        return rc;
    }
    s->write_url = url.s;
    dia_http_url_for_log(s->write_url, s->url_for_log, sizeof s->url_for_log);
    return DIA_OK;
}

/* ---- open / close ------------------------------------------------------------ */

static void influx_close(struct dia_instance *in)
{
    struct influx_sink *s = in->priv;
    if (!s)
        return;
    dia_http_free(s->http);
    free(s->write_url);
    if (s->auth_header) {
        memset(s->auth_header, 0, strlen(s->auth_header));
        free(s->auth_header);
    }
    free(s->body);
    free(s->line_end);
    free(s->gz);
    for (size_t i = 0; i < s->verdict_cap; i++)
        free(s->refusal[i]);
    free(s->refusal);
    free(s->verdict);
    forget_learned(s);
    free(s);
    in->priv = NULL;
}

/* What open() takes from the options, without I/O: shared with the
 * start-up check. */
static int influx_configure(struct dia_instance *in, struct influx_sink *s)
{
    const char *api = dia_opt_str(in->opts, "api", "v1");
    s->api = strcmp(api, "v3") == 0 ? API_V3 : strcmp(api, "v2") == 0 ? API_V2 : API_V1;
    s->schema = strcmp(dia_opt_str(in->opts, "schema", "diabridge"), "dexpy") == 0
                    ? INFLUX_SCHEMA_DEXPY
                    : INFLUX_SCHEMA_DIABRIDGE;
    s->measurement = dia_opt_str(in->opts, "measurement", "bg");
    s->gzip = dia_opt_bool(in->opts, "gzip", true);
    s->timeout_ms = (long)dia_opt_duration(in->opts, "timeout", 30) * 1000L;
    s->tls.insecure = dia_opt_bool(in->opts, "insecure", false);
    s->tls.ca_file = opt(in, "ca-file");
    s->tls.cert_file = opt(in, "cert-file");
    s->tls.key_file = opt(in, "key-file");
    return build_endpoint(in, s);
}

static int influx_check(const struct dia_options *o, char *why, size_t why_len)
{
    /* open()'s own code, on a scratch instance that never runs */
    struct dia_instance scratch = {.opts = o};
    struct influx_sink *s = calloc(1, sizeof *s);
    if (!s)
        return DIA_ERR_NOMEM;
    scratch.priv = s;
    int rc = influx_configure(&scratch, s);
    if (rc != DIA_OK)
        snprintf(why, why_len, "%s", scratch.last_error);
    influx_close(&scratch);
    return rc;
}

static int influx_open(struct dia_instance *in)
{
    struct influx_sink *s = calloc(1, sizeof *s);
    if (!s)
        return DIA_ERR_NOMEM;
    in->priv = s;
    int rc = influx_configure(in, s);
    if (rc == DIA_OK)
        rc = dia_http_new(&s->http);
    if (rc == DIA_OK) {
        s->body_cap = INFLUX_BODY_START;
        s->body = malloc(s->body_cap);
        if (!s->body)
            rc = DIA_ERR_NOMEM;
        else
            influx_lp_init(&s->lp, s->body, s->body_cap);
    }
    if (rc != DIA_OK) {
        influx_close(in);
        return rc;
    }
    dia_info(in->name, "writing to %s (%s schema%s)", s->url_for_log,
             s->schema == INFLUX_SCHEMA_DEXPY ? "dexpy" : "diabridge", s->gzip ? ", gzip" : "");
    return DIA_OK;
}

/* ---- encoding ---------------------------------------------------------------- */

static int grow_body(struct influx_sink *s)
{
    if (s->body_cap >= INFLUX_BODY_MAX)
        return DIA_ERR_NOMEM;
    size_t cap = s->body_cap * 2;
    char *nb = realloc(s->body, cap);
    if (!nb)
        return DIA_ERR_NOMEM;
    size_t len = s->lp.len;
    s->body = nb;
    s->body_cap = cap;
    influx_lp_init(&s->lp, s->body, s->body_cap);
    s->lp.len = s->lp.line_start = len;
    return DIA_OK;
}

/* Encode recs[0..n) into the body.  *n_ok receives how many encoded; when a
 * record cannot be written at all, DIA_ERR_PERMANENT is returned with the
 * reason, and *n_ok is its index. */
static int encode_batch(struct dia_instance *in, struct influx_sink *s,
                        const struct dia_record *recs, size_t n, size_t *n_ok)
{
    if (n > s->line_cap) {
        size_t *nl = realloc(s->line_end, n * sizeof *nl);
        if (!nl)
            return DIA_ERR_NOMEM;
        s->line_end = nl;
        s->line_cap = n;
    }
    influx_lp_reset(&s->lp);
    for (size_t i = 0; i < n; i++) {
        int rc;
        while ((rc = influx_map_record(&s->lp, &recs[i], s->schema, s->measurement)) ==
               DIA_ERR_TRUNCATED) {
            if (grow_body(s) != DIA_OK)
                return DIA_ERR_NOMEM;
        }
        if (rc < 0) {
            *n_ok = i;
            dia_instance_error(in,
                               "%s record %s cannot be written as an InfluxDB point (it has no "
                               "value InfluxDB can store)",
                               dia_kind_name(recs[i].kind), recs[i].key);
            return DIA_ERR_PERMANENT;
        }
        s->line_end[i] = s->lp.len;
    }
    *n_ok = n;
    return DIA_OK;
}

static int gzip_range(struct influx_sink *s, const char *data, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* windowBits 15 + 16: a gzip wrapper, as Content-Encoding: gzip requires */
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return DIA_ERR_NOMEM;
    size_t bound = deflateBound(&z, (uLong)len) + 32;
    if (bound > s->gz_cap) {
        unsigned char *ng = realloc(s->gz, bound);
        if (!ng) {
            deflateEnd(&z);
            return DIA_ERR_NOMEM;
        }
        s->gz = ng;
        s->gz_cap = bound;
    }
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    z.next_out = s->gz;
    z.avail_out = (uInt)s->gz_cap;
    int zr = deflate(&z, Z_FINISH);
    *out_len = z.total_out;
    deflateEnd(&z);
    return zr == Z_STREAM_END ? DIA_OK : DIA_ERR_NOMEM;
}

/* ---- the write request ---------------------------------------------------------- */

/* The server's own words: {"error": …} (1.x, 3.x) or {"message": …} (2.x).
 * 3.x puts the reason for a refused line under "data" ({"error": "partial
 * write of line protocol occurred", "data": [{"original_line", "line_number",
 * "error_message"}…]}), and that reason is what a person needs, so it is
 * added; the list itself is handed back in *listed (a new reference) when
 * it is one.  *names_points tells whether the answer is about the lines sent
 * (a syntax error, a field type conflict, a time beyond retention) rather
 * than about the request itself; *limit whether it is about one of the
 * server's limits (too many tables, columns, series …). */
static void server_message(const struct dia_http_response *res, char *buf, size_t len,
                           bool *names_points, bool *limit, json_t **listed)
{
    buf[0] = '\0';
    *names_points = false;
    *listed = NULL;
    if (res->body && res->body_len) {
        json_t *j = json_loadb(res->body, res->body_len, 0, NULL);
        const char *m = NULL;
        if (j) {
            m = json_string_value(json_object_get(j, "error"));
            if (!m)
                m = json_string_value(json_object_get(j, "message"));
            json_t *data = json_object_get(j, "data");
            json_t *line = json_is_array(data) ? json_array_get(data, 0) : data;
            const char *why = json_string_value(json_object_get(line, "error_message"));
            if (m && why)
                snprintf(buf, len, "%s: %s", m, why);
            else if (m)
                snprintf(buf, len, "%s", m);
            *names_points = why != NULL;
            if (why && json_is_array(data))
                *listed = json_incref(data);
            json_decref(j);
        }
        if (!m)
            snprintf(buf, len, "%.*s", (int)(res->body_len < 300 ? res->body_len : 300), res->body);
    }
    /* one line, printable: it goes into logs and the status table */
    for (char *p = buf; *p; p++) {
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    }
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == ' ')
        buf[--n] = '\0';
    if (!buf[0])
        snprintf(buf, len, "no explanation given");
    /* 1.x and 2.x name the line or the partial write in their message */
    static const char *const point_words[] = {"unable to parse", "partial write",
                                              "field type conflict", "beyond retention"};
    for (size_t i = 0; i < sizeof point_words / sizeof point_words[0]; i++)
        if (strstr(buf, point_words[i]))
            *names_points = true;
    /* 3.x: "Update to schema would exceed number of tables limit of 2000
     * tables"; 1.x: "partial write: max-series-per-database limit exceeded";
     * InfluxDB Cloud: "service limit reached" */
    *limit = strstr(buf, "would exceed") || strstr(buf, "limit exceeded") ||
             strstr(buf, "service limit");
}

/* A transport failure, without the URL twice (dia_http's sentence starts
 * with it) and with what to check. */
static void transport_error(struct dia_instance *in, struct influx_sink *s, int rc,
                            const char *error)
{
    size_t ulen = strlen(s->url_for_log);
    const char *why = error;
    if (strncmp(why, s->url_for_log, ulen) == 0 && strncmp(why + ulen, ": ", 2) == 0)
        why += ulen + 2;
    const char *advice = "";
    bool tls = strncmp(s->write_url, "https:", 6) == 0;
    if (rc == DIA_ERR_TIMEOUT)
        advice = "; no answer within timeout=: the server is down, overloaded or unreachable; "
                 "retried by itself";
    else if (tls && (strstr(why, "SSL") || strstr(why, "TLS")) && !strstr(why, "ca-file"))
        advice = "; check that the server speaks HTTPS on this port (use http:// if it "
                 "serves plain HTTP)";
    else if (rc == DIA_ERR_TRANSIENT)
        advice = "; check that InfluxDB is running and listens there; retried by itself";
    dia_instance_error(in, "cannot write to InfluxDB at %s: %s%s", s->url_for_log, why, advice);
}

/* POST one stretch of line protocol.  Returns DIA_OK (2xx), WRITE_REFUSED
 * (a point was refused; reason holds the server's words, and *listed 3.x's
 * list of refused lines, when it gave one), WRITE_TOO_LARGE, or an error
 * with the instance's error set. */
static int post(struct dia_instance *in, struct influx_sink *s, const char *data, size_t len,
                char *reason, size_t reason_len, json_t **listed)
{
    *listed = NULL;
    const char *headers[4];
    size_t nh = 0;
    headers[nh++] = "Content-Type: text/plain; charset=utf-8";
    if (s->gzip)
        headers[nh++] = "Content-Encoding: gzip";
    if (s->auth_header)
        headers[nh++] = s->auth_header;
    headers[nh] = NULL;
    const void *body = data;
    size_t body_len = len;
    if (s->gzip) {
        int zrc = gzip_range(s, data, len, &body_len);
        if (zrc != DIA_OK)
            return zrc;
        body = s->gz;
    }
    struct dia_http_request req = {
        .method = "POST",
        .url = s->write_url,
        .headers = headers,
        .body = body,
        .body_len = body_len,
        .timeout_ms = s->timeout_ms,
        .tls = s->tls,
    };
    struct dia_http_response res = {0};
    int rc = dia_http_do(s->http, &req, &res);
    if (rc != DIA_OK) {
        transport_error(in, s, rc, res.error);
        if (rc == DIA_ERR_TIMEOUT)
            atomic_fetch_add(&in->counters.timeouts, 1);
        dia_http_response_free(&res);
        return rc;
    }
    long status = res.status;
    char msg[300];
    bool names_points, limit;
    json_t *lines = NULL;
    server_message(&res, msg, sizeof msg, &names_points, &limit, &lines);
    dia_http_response_free(&res);
    if (status >= 200 && status < 300) {
        json_decref(lines);
        return DIA_OK;
    }
    if (limit && (status == 400 || status == 413 || status == 422)) {
        json_decref(lines);
        dia_instance_error(in,
                           "InfluxDB at %s has reached one of its limits: raise it on the server "
                           "or write to another database; no record is set aside (HTTP %ld: %s)",
                           s->url_for_log, status, msg);
        return DIA_ERR_CONFIG;
    }
    switch (status) {
    case 400:
    case 422:
        if (!names_points) {
            /* e.g. 3.x's "invalid character in database name": splitting the
             * batch would set every record aside for a wrong setting */
            dia_instance_error(in,
                               "InfluxDB at %s refused the request (HTTP %ld: %s); check db=, "
                               "bucket=, org= and api=",
                               s->url_for_log, status, msg);
            json_decref(lines);
            return DIA_ERR_CONFIG;
        }
        snprintf(reason, reason_len, "InfluxDB refused a point (HTTP %ld): %s", status, msg);
        *listed = lines;
        return WRITE_REFUSED;
    case 413:
        json_decref(lines);
        snprintf(reason, reason_len, "InfluxDB refused the request as too large (HTTP 413): %s",
                 msg);
        return WRITE_TOO_LARGE;
    case 401:
        dia_instance_error(in, "InfluxDB at %s refused the credentials (HTTP 401: %s); check %s",
                           s->url_for_log, msg,
                           s->api == API_V1 ? "username and password" : "the token");
        json_decref(lines);
        return DIA_ERR_AUTH;
    case 403:
        dia_instance_error(in,
                           "InfluxDB at %s does not allow this user to write (HTTP 403: %s); "
                           "grant write access (GRANT WRITE ON <db> TO <user>) or use another "
                           "account",
                           s->url_for_log, msg);
        json_decref(lines);
        return DIA_ERR_AUTH;
    case 404:
        dia_instance_error(in,
                           "InfluxDB at %s answered 404 (%s): create the database or bucket, "
                           "or check db=/bucket= and api= (v1 for InfluxDB 1.x)",
                           s->url_for_log, msg);
        json_decref(lines);
        return DIA_ERR_CONFIG;
    default:
        break;
    }
    json_decref(lines);
    rc = dia_http_status_class(status);
    dia_instance_error(in, "InfluxDB at %s answered HTTP %ld: %s", s->url_for_log, status, msg);
    /* a 1.x "retention policy not found" and the like: a setting, not a point */
    if (rc == DIA_ERR_PERMANENT)
        rc = DIA_ERR_CONFIG;
    return rc;
}

/* ---- settling a batch: which records were written, which refused ------------ */

static void set_verdict(struct influx_sink *s, size_t i, int verdict, const char *reason)
{
    s->verdict[i] = (unsigned char)verdict;
    free(s->refusal[i]);
    s->refusal[i] = NULL;
    if (verdict == VERDICT_REFUSED)
        s->refusal[i] = strdup(reason); /* NULL when out of memory: "rejected" then */
}

static void set_written(struct influx_sink *s, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++)
        set_verdict(s, i, VERDICT_WRITTEN, NULL);
}

static size_t line_start(const struct influx_sink *s, size_t i)
{
    return i == 0 ? 0 : s->line_end[i - 1];
}

static int settle(struct dia_instance *in, struct influx_sink *s, size_t lo, size_t hi,
                  bool known_bad);

/*
 * 3.x said which lines of recs[lo..hi) it refused (line_number counts from 1
 * in the body sent; every record has at most one line).  Each entry must
 * name a line we sent, word for word, or the list is not trusted and the
 * range is split instead.  The lines it did not list were written — up to
 * the last listed one when the list may be cut at 100; what follows that is
 * settled afresh.
 */
static int apply_listed(struct dia_instance *in, struct influx_sink *s, size_t lo, size_t hi,
                        json_t *listed, const char *request_reason, bool *used)
{
    *used = false;
    size_t nlisted = json_array_size(listed);
    size_t nlines = 0;
    for (size_t i = lo; i < hi; i++)
        nlines += s->line_end[i] > line_start(s, i);
    /* line number → record index */
    size_t *rec_of_line = malloc((nlines + 1) * sizeof *rec_of_line);
    if (!rec_of_line)
        return DIA_ERR_NOMEM;
    size_t ln = 0;
    for (size_t i = lo; i < hi; i++)
        if (s->line_end[i] > line_start(s, i))
            rec_of_line[++ln] = i;
    size_t last_line = 0;
    bool ok = nlisted > 0;
    for (size_t k = 0; k < nlisted && ok; k++) {
        json_t *e = json_array_get(listed, k);
        json_int_t l = json_integer_value(json_object_get(e, "line_number"));
        const char *text = json_string_value(json_object_get(e, "original_line"));
        if (l < 1 || (size_t)l > nlines || !text) {
            ok = false;
            break;
        }
        size_t i = rec_of_line[l];
        size_t from = line_start(s, i), to = s->line_end[i];
        size_t tlen = to - from - (s->body[to - 1] == '\n');
        ok = strlen(text) == tlen && memcmp(text, s->body + from, tlen) == 0;
        if ((size_t)l > last_line)
            last_line = (size_t)l;
    }
    if (!ok) {
        free(rec_of_line);
        return DIA_OK; /* *used stays false: split instead */
    }
    *used = true;
    /* the unlisted lines up to the last listed one (all of them when the
     * list is complete) were written */
    size_t settled_hi = nlisted < INFLUX_MAX_LISTED ? hi : rec_of_line[last_line] + 1;
    set_written(s, lo, settled_hi);
    /* "partial write of line protocol occurred: " + this line's own reason */
    const char *colon = strstr(request_reason, "): ");
    for (size_t k = 0; k < nlisted; k++) {
        json_t *e = json_array_get(listed, k);
        size_t i = rec_of_line[json_integer_value(json_object_get(e, "line_number"))];
        const char *why = json_string_value(json_object_get(e, "error_message"));
        char reason[INFLUX_REASON_MAX];
        if (why && colon)
            snprintf(reason, sizeof reason, "%.*s): partial write of line protocol occurred: %s",
                     (int)(colon - request_reason), request_reason, why);
        else
            snprintf(reason, sizeof reason, "%s", request_reason);
        set_verdict(s, i, VERDICT_REFUSED, reason);
    }
    free(rec_of_line);
    return settled_hi < hi ? settle(in, s, settled_hi, hi, false) : DIA_OK;
}

/*
 * Find out what the server makes of recs[lo..hi) and note it in verdict[].
 * known_bad: the range holds a refused point for sure (its parent was
 * refused and the sibling before it went through whole), so sending it
 * whole would only be refused again; it is split at once, and a single
 * record is still sent alone to get the server's reason for it.  Returns
 * DIA_OK once every record of the range has a verdict, else the error that
 * stopped it (what was settled before stays noted).
 */
static int settle(struct dia_instance *in, struct influx_sink *s, size_t lo, size_t hi,
                  bool known_bad)
{
    size_t from = line_start(s, lo), to = s->line_end[hi - 1];
    if (to == from) { /* nothing this schema writes */
        set_written(s, lo, hi);
        return DIA_OK;
    }
    char reason[INFLUX_REASON_MAX] = "";
    int rc = WRITE_REFUSED;
    if (!known_bad || hi - lo == 1) {
        json_t *listed = NULL;
        rc = post(in, s, s->body + from, to - from, reason, sizeof reason, &listed);
        if (rc == DIA_OK) {
            set_written(s, lo, hi);
            return DIA_OK;
        }
        if (listed) {
            bool used;
            int lrc = apply_listed(in, s, lo, hi, listed, reason, &used);
            json_decref(listed);
            if (used || lrc != DIA_OK)
                return lrc;
        }
        if (rc != WRITE_REFUSED && rc != WRITE_TOO_LARGE)
            return rc;
        if (hi - lo == 1) {
            set_verdict(s, lo, VERDICT_REFUSED, reason);
            return DIA_OK;
        }
    }
    bool refused = rc == WRITE_REFUSED; /* not 413: a smaller request may simply fit */
    size_t mid = lo + (hi - lo) / 2;
    rc = settle(in, s, lo, mid, false);
    if (rc != DIA_OK)
        return rc;
    /* a refused range whose first half went through whole: the refused
     * point is in the second half */
    bool left_clean = true;
    for (size_t i = lo; i < mid && left_clean; i++)
        left_clean = s->verdict[i] == VERDICT_WRITTEN;
    return settle(in, s, mid, hi, refused && left_clean);
}

/* ---- send --------------------------------------------------------------------- */

static void forget_learned(struct influx_sink *s)
{
    for (size_t i = 0; i < s->n_learned; i++)
        free(s->learned[i].refusal);
    free(s->learned);
    s->learned = NULL;
    s->n_learned = s->next_learned = 0;
}

/*
 * Settle the start of recs from what the last send learned.  Returns
 * DIA_ERR_PERMANENT (with the server's reason as the instance's error) when
 * a record refused before comes up, else DIA_OK; *done is how many records
 * from the start were settled as written.  Anything unexpected — a record
 * that is not the next one learned about — ends the replay, and the rest is
 * sent as usual (re-sending a written point is harmless).
 */
static int replay_learned(struct dia_instance *in, struct influx_sink *s,
                          const struct dia_record *recs, size_t n, size_t *done)
{
    *done = 0;
    if (s->next_learned >= s->n_learned || n == 0)
        return DIA_OK;
    /* an older record first (a dead letter sent again): leave the lesson
     * for the send after it */
    if (recs[0].seq < s->learned[s->next_learned].seq)
        return DIA_OK;
    size_t i = 0;
    while (i < n && s->next_learned < s->n_learned &&
           s->learned[s->next_learned].seq == recs[i].seq) {
        struct learned *l = &s->learned[s->next_learned++];
        if (l->refusal) {
            dia_instance_error(in, "%s", l->refusal);
            *done = i;
            if (s->next_learned == s->n_learned)
                forget_learned(s);
            return DIA_ERR_PERMANENT;
        }
        i++;
    }
    *done = i;
    forget_learned(s); /* used up, or no longer what the journal holds */
    return DIA_OK;
}

/* Keep what settle() found out about recs[from..) — up to the first record
 * it did not get to — for the next send.  extra_refused: the record at the
 * end that could not even be encoded (its reason), or NULL. */
static void learn(struct influx_sink *s, const struct dia_record *recs, size_t from, size_t n_ok,
                  const char *extra_refused)
{
    forget_learned(s);
    size_t end = from;
    while (end < n_ok && s->verdict[end] != VERDICT_UNKNOWN)
        end++;
    bool extra = extra_refused && end == n_ok;
    size_t count = end - from + (extra ? 1 : 0);
    if (count == 0 || !(s->learned = calloc(count, sizeof *s->learned)))
        return; /* nothing to keep, or no memory: the next send asks again */
    for (size_t i = from; i < end; i++) {
        struct learned *l = &s->learned[s->n_learned++];
        l->seq = recs[i].seq;
        if (s->verdict[i] == VERDICT_REFUSED) {
            /* moved, not copied; a NULL reason (no memory) becomes generic */
            l->refusal = s->refusal[i] ? s->refusal[i] : strdup("refused by InfluxDB");
            s->refusal[i] = NULL;
            if (!l->refusal) {
                s->n_learned--; /* cannot keep it: stop the lesson here */
                break;
            }
        }
    }
    if (extra && s->n_learned == count - 1) {
        struct learned *l = &s->learned[s->n_learned];
        l->seq = recs[n_ok].seq;
        if ((l->refusal = strdup(extra_refused)))
            s->n_learned++;
    }
}

static int grow_verdicts(struct influx_sink *s, size_t n)
{
    if (n <= s->verdict_cap)
        return DIA_OK;
    unsigned char *v = realloc(s->verdict, n);
    if (!v)
        return DIA_ERR_NOMEM;
    s->verdict = v;
    char **r = realloc(s->refusal, n * sizeof *r);
    if (!r)
        return DIA_ERR_NOMEM;
    for (size_t i = s->verdict_cap; i < n; i++)
        r[i] = NULL;
    s->refusal = r;
    s->verdict_cap = n;
    return DIA_OK;
}

static int influx_send(struct dia_instance *in, const struct dia_record *recs, size_t n,
                       size_t *acked)
{
    struct influx_sink *s = in->priv;
    *acked = 0;
    size_t done = 0;
    int rc = replay_learned(in, s, recs, n, &done);
    *acked = done;
    if (rc != DIA_OK || done == n)
        return rc;
    recs += done;
    n -= done;

    size_t n_ok = 0;
    int enc = encode_batch(in, s, recs, n, &n_ok);
    if (enc == DIA_ERR_NOMEM || grow_verdicts(s, n) != DIA_OK)
        return DIA_ERR_NOMEM;
    char unencodable[INFLUX_REASON_MAX] = "";
    if (enc != DIA_OK)
        snprintf(unencodable, sizeof unencodable,
                 "%s record %s cannot be written as an InfluxDB point (it has no value InfluxDB "
                 "can store)",
                 dia_kind_name(recs[n_ok].kind), recs[n_ok].key);
    for (size_t i = 0; i < n_ok; i++)
        set_verdict(s, i, VERDICT_UNKNOWN, NULL);
    int net = n_ok > 0 ? settle(in, s, 0, n_ok, false) : DIA_OK;

    size_t i = 0;
    while (i < n_ok && s->verdict[i] == VERDICT_WRITTEN)
        i++;
    *acked = done + i;
    if (i < n_ok && s->verdict[i] == VERDICT_REFUSED) {
        dia_instance_error(in, "%s", s->refusal[i] ? s->refusal[i] : "refused by InfluxDB");
        learn(s, recs, i + 1, n_ok, enc != DIA_OK ? unencodable : NULL);
        rc = DIA_ERR_PERMANENT;
    } else if (i < n_ok) {
        rc = net; /* stopped by an outage, a timeout, credentials …: message set */
    } else if (enc != DIA_OK) {
        dia_instance_error(in, "%s", unencodable);
        rc = enc;
    } else {
        rc = DIA_OK;
    }
    for (size_t k = 0; k < n_ok; k++) {
        free(s->refusal[k]);
        s->refusal[k] = NULL;
    }
    return rc;
}

const struct dia_sink_driver dia_sink_influx = {
    .name = "influx",
    .description = "InfluxDB 1.x/2.x/3.x over HTTP (line protocol, gzip, batches)",
    .target_help = "http(s)://HOST:PORT of the server, e.g. influx+http://localhost:8086",
    .options = influx_options,
    .default_batch = 5000,
    .check = influx_check,
    .open = influx_open,
    .send = influx_send,
    .close = influx_close,
    /* rp= too: each retention policy keeps its own copy of the points */
    .destination_options = (const char *const[]){"db", "rp", "org", "bucket", NULL},
};
