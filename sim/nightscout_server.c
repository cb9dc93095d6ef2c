/*
 * `diabridge-sim nightscout`: a fake Nightscout (cgm-remote-monitor 15.0.7)
 * on loopback, for tests.  It keeps its documents in memory and implements
 * the behaviour an uploader depends on, as specs/smartpix-and-sinks.md
 * describes it:
 *
 * - Auth (§2.1, §2.5a): api-secret header or ?secret= equal to the SHA-1 or
 *   SHA-512 hex of API_SECRET (any case; the raw secret is refused), an
 *   access token as ?token=, or a Bearer JWT from
 *   GET /api/v2/authorization/request/<token>.  API v3 takes only the JWT.
 *   401 body {"status":401,"message":"Unauthorized","description":
 *   "Invalid/Missing"}.  After a wrong credential the next request waits
 *   5 s (--auth-fail-delay-ms).  Without credentials GETs are allowed
 *   (AUTH_DEFAULT_ROLES=readable) unless --default-roles denied.
 * - v1 entries (§2.2, §2.5a): the time key comes from dateString (its zone
 *   converted to UTC, and rewritten to UTC), else date, else now; sysTime
 *   and utcOffset are set by the server; dedup is updateOne({sysTime, type},
 *   $set) — a repeat merges.  Entries without type are always inserted.  A
 *   single object without date is answered 200 [] and dropped.
 * - v1 treatments (§2.3): created_at (or eventTime) converted to UTC, now
 *   when missing; numbers converted, zero carbs/insulin/percent… deleted;
 *   dedup replaceOne on identifier, else (created_at, eventType), where a
 *   missing eventType matches a missing eventType (MongoDB null matching).
 * - v1 devicestatus (§2.4): insertMany, no dedup.
 * - Body limits (§2.5a): 50 MiB for entries/treatments, 1 MiB for
 *   devicestatus, then 413 (--max-body, --max-body-devicestatus).
 * - API v3 (§2.5): POST /api/v3/{col} one document; requires date and app;
 *   identifier = UUIDv5("NightscoutRocks!", device_date[_eventType]) when
 *   absent; a known identifier becomes an update (200 isDeduplication), with
 *   date/utcOffset/app/device immutable (400 "Field X cannot be modified by
 *   the client"); new documents get 201.  Fallback dedup for documents sent
 *   without identifier: entries date+type, treatments created_at+eventType,
 *   devicestatus created_at+device.
 * - GET /api/v1/{entries,treatments,devicestatus}.json with count= (default
 *   10) and find[field]=v / find[field][$gte|$gt|$lte|$lt]=v; entries newest
 *   date first, and without a find on date only the last 4 days (§2.5a).
 *   GET /api/v3/{col}?limit=N answers {status, result}.
 *
 * For tests, outside Nightscout's API:
 *   /_sim/fault?mode=none|down|slow|500|401|413[&count=N][&ms=D]
 *       the next N requests to /api (0: until changed) fail that way; down
 *       closes the connection without an answer, slow answers after D ms.
 *   /_sim/reject?date=MS|none   refuse (400) any POST containing a document
 *       at that time, to test that one bad record is isolated.
 *   /_sim/stats                  document counts and request counters.
 *   /_sim/dump/<collection>      every stored document, in insertion order.
 */
#include <ctype.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/tz.h"
#include "sim/httpd.h"
#include "sim/sim.h"
#include "sink/nightscout_map.h"

enum { C_ENTRIES = 1, C_TREATMENTS, C_DEVICESTATUS, C_COUNT };
static const char *const coll_names[C_COUNT] = {"", "entries", "treatments", "devicestatus"};

enum fault { F_NONE, F_DOWN, F_SLOW, F_500, F_401, F_413 };
static const char *const fault_names[] = {"none", "down", "slow", "500", "401", "413"};

struct store {
    json_t *docs;   /* array, insertion order */
    json_t *by_key; /* dedup key → index */
    json_t *by_id;  /* identifier → index */
};

struct nsim {
    char sha1[41], sha512[129];
    bool has_secret;
    char token[128];
    char jwt[64];
    int64_t jwt_exp_ms;
    long jwt_lifetime_s;
    unsigned jwt_serial;
    long auth_fail_delay_ms;
    bool auth_fail_pending;
    bool default_readable;
    struct store st[C_COUNT];
    unsigned long next_id;
    enum fault fault;
    long fault_left; /* 0: until changed */
    long slow_ms;
    bool has_reject;
    int64_t reject_ms;
    size_t max_body, max_body_ds;
    unsigned long requests, posts, auth_failures, faults_served, too_large;
};

/* ---- small helpers ------------------------------------------------------ */

static void hexdigest(const EVP_MD *md, const char *text, char *out)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(text, strlen(text), d, &n, md, NULL);
    for (unsigned i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void reply_json(struct sim_http_response *res, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(body);
    res->status = status;
    res->body = text ? text : strdup("null");
    res->body_len = strlen(res->body);
}

static void reply_error(struct sim_http_response *res, int status, const char *message)
{
    reply_json(res, status, json_pack("{si ss}", "status", status, "message", message));
}

static void url_decode(const char *s, size_t n, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < len; i++) {
        if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char h[3] = {s[i + 1], s[i + 2], 0};
            out[o++] = (char)strtol(h, NULL, 16);
            i += 2;
        } else {
            out[o++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    out[o] = '\0';
}

/* Calls fn for every key=value of the query, decoded. */
static void each_param(const char *query, void (*fn)(void *, const char *, const char *), void *arg)
{
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        char key[256], val[1024];
        url_decode(p, eq ? (size_t)(eq - p) : len, key, sizeof key);
        if (eq)
            url_decode(eq + 1, len - (size_t)(eq + 1 - p), val, sizeof val);
        else
            val[0] = '\0';
        fn(arg, key, val);
        p = amp ? amp + 1 : NULL;
    }
}

/* "…Z" → 0, "…+01:00" / "…+0100" → 60; false when no zone is given. */
static bool zone_offset_min(const char *iso, int *minutes)
{
    size_t n = strlen(iso);
    if (n && (iso[n - 1] == 'Z' || iso[n - 1] == 'z')) {
        *minutes = 0;
        return true;
    }
    const char *t = strchr(iso, 'T');
    const char *z = t ? strpbrk(t, "+-") : NULL;
    int hh, mm;
    if (!z)
        return false;
    if (sscanf(z + 1, "%2d:%2d", &hh, &mm) != 2 && sscanf(z + 1, "%2d%2d", &hh, &mm) != 2)
        return false;
    *minutes = (z[0] == '-' ? -1 : 1) * (hh * 60 + mm);
    return true;
}

static void iso_utc(int64_t ms, char *buf, size_t len)
{
    dia_format_utc_ms(ms, buf, len);
}

/* ---- storage ------------------------------------------------------------ */

static json_t *store_get(struct store *s, json_t *index, const char *key)
{
    json_t *i = key ? json_object_get(index, key) : NULL;
    return i ? json_array_get(s->docs, (size_t)json_integer_value(i)) : NULL;
}

static void store_index(struct store *s, size_t at, const char *key, const char *id)
{
    if (key && !json_object_get(s->by_key, key))
        json_object_set_new(s->by_key, key, json_integer((json_int_t)at));
    if (id)
        json_object_set_new(s->by_id, id, json_integer((json_int_t)at));
}

static size_t store_insert(struct nsim *ns, struct store *s, json_t *doc)
{
    char oid[32];
    snprintf(oid, sizeof oid, "%024lx", ++ns->next_id);
    json_object_set_new(doc, "_id", json_string(oid));
    json_array_append(s->docs, doc);
    return json_array_size(s->docs) - 1;
}

/* ---- auth ---------------------------------------------------------------- */

enum auth { AUTH_NONE, AUTH_OK, AUTH_BAD };

static bool jwt_valid(struct nsim *ns, const char *bearer)
{
    return ns->jwt[0] && bearer && strcmp(bearer, ns->jwt) == 0 && dia_now_ms() < ns->jwt_exp_ms;
}

static enum auth check_auth(struct nsim *ns, const struct sim_http_request *req, bool v3)
{
    const char *authz = sim_http_header(req, "Authorization");
    const char *bearer = authz && strncasecmp(authz, "Bearer ", 7) == 0 ? authz + 7 : NULL;
    if (v3)
        return !authz ? AUTH_NONE : jwt_valid(ns, bearer) ? AUTH_OK : AUTH_BAD;
    char secret[256] = "", token[256] = "";
    const char *hdr = sim_http_header(req, "api-secret");
    if (hdr)
        snprintf(secret, sizeof secret, "%s", hdr);
    else
        sim_http_query(req, "secret", secret, sizeof secret);
    sim_http_query(req, "token", token, sizeof token);
    if (!secret[0] && !token[0] && !authz)
        return AUTH_NONE;
    if (secret[0] && ns->has_secret &&
        (strcasecmp(secret, ns->sha1) == 0 || strcasecmp(secret, ns->sha512) == 0))
        return AUTH_OK;
    /* an access token is also accepted in the api-secret header (§2.5a) */
    if (ns->token[0] && (strcmp(token, ns->token) == 0 || strcmp(secret, ns->token) == 0))
        return AUTH_OK;
    if (bearer && jwt_valid(ns, bearer))
        return AUTH_OK;
    return AUTH_BAD;
}

static void unauthorized(struct nsim *ns, struct sim_http_response *res)
{
    ns->auth_failures++;
    ns->auth_fail_pending = true;
    reply_json(res, 401,
               json_pack("{si ss ss}", "status", 401, "message", "Unauthorized", "description",
                         "Invalid/Missing"));
}

static void token_exchange(struct nsim *ns, const char *token, struct sim_http_response *res)
{
    if (!ns->token[0] || strcmp(token, ns->token) != 0) {
        unauthorized(ns, res);
        return;
    }
    int64_t now = dia_now_ms();
    snprintf(ns->jwt, sizeof ns->jwt, "simjwt.%u.%lld", ++ns->jwt_serial, (long long)now);
    ns->jwt_exp_ms = now + ns->jwt_lifetime_s * 1000;
    reply_json(res, 200,
               json_pack("{ss ss s[s] sI sI}", "token", ns->jwt, "sub", "uploader",
                         "permissionGroups", "*", "iat", (json_int_t)(now / 1000), "exp",
                         (json_int_t)(ns->jwt_exp_ms / 1000)));
}

/* ---- v1 ------------------------------------------------------------------ */

/* A document's time as the poison check sees it. */
static bool doc_time_ms(json_t *doc, int64_t *ms)
{
    json_t *d = json_object_get(doc, "date");
    if (json_is_number(d)) {
        *ms = (int64_t)json_number_value(d);
        return true;
    }
    const char *fields[] = {"dateString", "created_at"};
    for (int i = 0; i < 2; i++) {
        const char *s = json_string_value(json_object_get(doc, fields[i]));
        if (s && dia_parse_time_ms(s, ms) == DIA_OK)
            return true;
    }
    return false;
}

static bool poisoned(struct nsim *ns, json_t *docs)
{
    size_t i;
    json_t *d;
    int64_t ms;
    if (!ns->has_reject)
        return false;
    json_array_foreach(docs, i, d)
    {
        if (json_is_object(d) && doc_time_ms(d, &ms) && ms == ns->reject_ms)
            return true;
    }
    return false;
}

/* The v1 POST of each collection stores one document (an object) and returns
 * the stored document to echo back, borrowed. */
typedef json_t *(*v1_store_fn)(struct nsim *ns, struct store *s, json_t *doc);

static json_t *store_entry(struct nsim *ns, struct store *s, json_t *doc)
{
    int64_t ms = dia_now_ms();
    int offset = 0;
    const char *ds = json_string_value(json_object_get(doc, "dateString"));
    json_t *date = json_object_get(doc, "date");
    int64_t parsed;
    if (ds && dia_parse_time_ms(ds, &parsed) == DIA_OK) {
        ms = parsed;
        if (!zone_offset_min(ds, &offset))
            offset = 0;
        char utc[40];
        iso_utc(ms, utc, sizeof utc);
        json_object_set_new(doc, "dateString", json_string(utc));
    } else if (json_is_number(date)) {
        ms = (int64_t)json_number_value(date);
    }
    char systime[40];
    iso_utc(ms, systime, sizeof systime);
    json_object_set_new(doc, "sysTime", json_string(systime));
    json_object_set_new(doc, "utcOffset", json_integer(offset));
    json_object_set_new(doc, "mills", json_integer(ms));
    const char *type = json_string_value(json_object_get(doc, "type"));
    const char *id = json_string_value(json_object_get(doc, "identifier"));
    if (!type)
        return json_array_get(s->docs, store_insert(ns, s, doc));
    char key[160];
    snprintf(key, sizeof key, "%s|%s", systime, type);
    json_t *old = store_get(s, s->by_key, key);
    if (old) {
        json_object_update(old, doc); /* $set: merge */
        if (id)
            store_index(s, (size_t)json_integer_value(json_object_get(s->by_key, key)), NULL, id);
        return old;
    }
    size_t at = store_insert(ns, s, doc);
    store_index(s, at, key, id);
    return doc;
}

static const char *const treatment_numbers[] = {"glucose",      "carbs",    "insulin",  "duration",
                                                "percent",      "absolute", "relative", "targetTop",
                                                "targetBottom", "preBolus", NULL};
static const char *const deleted_when_zero[] = {"carbs",    "insulin",   "percent",      "relative",
                                                "preBolus", "targetTop", "targetBottom", NULL};

static void treatment_key(json_t *doc, char *key, size_t len)
{
    const char *et = json_string_value(json_object_get(doc, "eventType"));
    snprintf(key, len, "%s|%s", json_string_value(json_object_get(doc, "created_at")),
             et ? et : "\001null");
}

static void normalise_treatment(json_t *doc)
{
    const char *when = json_string_value(json_object_get(doc, "eventTime"));
    if (!when)
        when = json_string_value(json_object_get(doc, "created_at"));
    int64_t ms;
    int offset;
    if (!when || dia_parse_time_ms(when, &ms) != DIA_OK)
        ms = dia_now_ms();
    else if (zone_offset_min(when, &offset) && !json_object_get(doc, "utcOffset"))
        json_object_set_new(doc, "utcOffset", json_integer(offset));
    json_object_del(doc, "eventTime");
    char iso[40];
    iso_utc(ms, iso, sizeof iso);
    json_object_set_new(doc, "created_at", json_string(iso));
    for (int i = 0; treatment_numbers[i]; i++) {
        json_t *v = json_object_get(doc, treatment_numbers[i]);
        if (!v)
            continue;
        double x = json_is_number(v)   ? json_number_value(v)
                   : json_is_string(v) ? strtod(json_string_value(v), NULL)
                                       : 0;
        json_object_set_new(doc, treatment_numbers[i], json_real(x));
    }
    for (int i = 0; deleted_when_zero[i]; i++) {
        json_t *v = json_object_get(doc, deleted_when_zero[i]);
        if (v && json_is_number(v) && json_number_value(v) == 0)
            json_object_del(doc, deleted_when_zero[i]);
    }
    json_t *notes = json_object_get(doc, "notes");
    if (notes && json_is_string(notes) && !json_string_length(notes))
        json_object_del(doc, "notes");
    json_t *g = json_object_get(doc, "glucose");
    if (g && json_number_value(g) == 0) {
        json_object_del(doc, "glucose");
        json_object_del(doc, "glucoseType");
        json_object_del(doc, "units");
    }
    const char *et = json_string_value(json_object_get(doc, "eventType"));
    if (et && strcmp(et, "Announcement") == 0)
        json_object_set_new(doc, "isAnnouncement", json_true());
}

static json_t *store_treatment(struct nsim *ns, struct store *s, json_t *doc)
{
    normalise_treatment(doc);
    const char *id = json_string_value(json_object_get(doc, "identifier"));
    char key[200];
    treatment_key(doc, key, sizeof key);
    /* replaceOne: filter identifier first, else (created_at, eventType) */
    json_t *index = id ? s->by_id : s->by_key;
    const char *k = id ? id : key;
    json_t *at = json_object_get(index, k);
    if (at) {
        size_t pos = (size_t)json_integer_value(at);
        json_t *old = json_array_get(s->docs, pos);
        json_object_set(doc, "_id", json_object_get(old, "_id"));
        json_array_set(s->docs, pos, doc);
    } else {
        size_t pos = store_insert(ns, s, doc);
        store_index(s, pos, key, id);
    }
    return doc;
}

static json_t *store_devicestatus(struct nsim *ns, struct store *s, json_t *doc)
{
    if (!json_object_get(doc, "created_at")) {
        char iso[40];
        iso_utc(dia_now_ms(), iso, sizeof iso);
        json_object_set_new(doc, "created_at", json_string(iso));
    }
    const char *id = json_string_value(json_object_get(doc, "identifier"));
    store_index(s, store_insert(ns, s, doc), NULL, id);
    return doc;
}

static const v1_store_fn v1_store[C_COUNT] = {
    [C_ENTRIES] = store_entry,
    [C_TREATMENTS] = store_treatment,
    [C_DEVICESTATUS] = store_devicestatus,
};

/* POST /api/v1/<coll>: store each object in docs, in order, skipping anything
 * else, and answer with what was stored. */
static void post_v1(struct nsim *ns, int coll, json_t *docs, struct sim_http_response *res)
{
    struct store *s = &ns->st[coll];
    json_t *out = json_array();
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc)
    {
        if (json_is_object(doc))
            json_array_append(out, v1_store[coll](ns, s, doc));
    }
    reply_json(res, 200, out);
}

/* ---- queries ------------------------------------------------------------- */

struct filter {
    char field[64];
    char op[8]; /* "", "$gte", "$gt", "$lte", "$lt" */
    char value[256];
};

struct query {
    struct filter f[16];
    int nf;
    long count;
    bool has_date_find;
};

static void collect_param(void *arg, const char *key, const char *val)
{
    struct query *q = arg;
    if (strcmp(key, "count") == 0) {
        q->count = strtol(val, NULL, 10);
        return;
    }
    if (strncmp(key, "find[", 5) != 0 || q->nf >= 16)
        return;
    struct filter *f = &q->f[q->nf];
    if (sscanf(key, "find[%63[^]]][%7[^]]]", f->field, f->op) < 1)
        return;
    if (strncmp(key + 5 + strlen(f->field) + 1, "[", 1) != 0)
        f->op[0] = '\0';
    snprintf(f->value, sizeof f->value, "%s", val);
    if (strcmp(f->field, "date") == 0 || strcmp(f->field, "dateString") == 0)
        q->has_date_find = true;
    q->nf++;
}

static bool matches(json_t *doc, const struct filter *f)
{
    json_t *v = json_object_get(doc, f->field);
    if (!v)
        return false;
    int cmp;
    if (json_is_number(v)) {
        double a = json_number_value(v), b = strtod(f->value, NULL);
        cmp = a < b ? -1 : a > b ? 1 : 0;
    } else if (json_is_string(v)) {
        cmp = strcmp(json_string_value(v), f->value);
    } else {
        return false;
    }
    if (!f->op[0])
        return cmp == 0;
    if (strcmp(f->op, "$gte") == 0)
        return cmp >= 0;
    if (strcmp(f->op, "$gt") == 0)
        return cmp > 0;
    if (strcmp(f->op, "$lte") == 0)
        return cmp <= 0;
    if (strcmp(f->op, "$lt") == 0)
        return cmp < 0;
    return false;
}

static const char *sort_field;
static int newest_first(const void *a, const void *b)
{
    json_t *x = json_object_get(*(json_t *const *)a, sort_field);
    json_t *y = json_object_get(*(json_t *const *)b, sort_field);
    if (json_is_number(x) && json_is_number(y)) {
        double p = json_number_value(x), q = json_number_value(y);
        return p < q ? 1 : p > q ? -1 : 0;
    }
    const char *p = json_string_value(x), *q = json_string_value(y);
    return -strcmp(p ? p : "", q ? q : "");
}

static void get_v1(struct nsim *ns, int coll, const char *type, const struct sim_http_request *req,
                   struct sim_http_response *res)
{
    struct query q = {.count = 10};
    each_param(req->query, collect_param, &q);
    if (type && q.nf < 16) {
        struct filter *f = &q.f[q.nf++];
        snprintf(f->field, sizeof f->field, "type");
        f->op[0] = '\0';
        snprintf(f->value, sizeof f->value, "%s", type);
    }
    /* entries without a time find: only the last 4 days (§2.5a) */
    if (coll == C_ENTRIES && !q.has_date_find && q.nf < 16) {
        struct filter *f = &q.f[q.nf++];
        snprintf(f->field, sizeof f->field, "date");
        snprintf(f->op, sizeof f->op, "$gte");
        snprintf(f->value, sizeof f->value, "%lld", (long long)(dia_now_ms() - 4 * 86400000LL));
    }
    struct store *s = &ns->st[coll];
    size_t n = json_array_size(s->docs), m = 0;
    json_t **sel = malloc((n ? n : 1) * sizeof *sel);
    if (!sel) {
        reply_error(res, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(s->docs, i);
        bool ok = true;
        for (int k = 0; k < q.nf && ok; k++)
            ok = matches(d, &q.f[k]);
        if (ok)
            sel[m++] = d;
    }
    sort_field = coll == C_ENTRIES ? "date" : "created_at";
    qsort(sel, m, sizeof *sel, newest_first);
    json_t *out = json_array();
    for (size_t i = 0; i < m && (long)i < q.count; i++)
        json_array_append(out, sel[i]);
    free(sel);
    reply_json(res, 200, out);
}

/* ---- v3 ------------------------------------------------------------------ */

static void post_v3(struct nsim *ns, int coll, json_t *doc, struct sim_http_response *res)
{
    struct store *s = &ns->st[coll];
    if (!json_is_object(doc)) {
        reply_error(res, 400, "Bad or missing request body");
        return;
    }
    json_t *date = json_object_get(doc, "date");
    int64_t ms = 0;
    int offset = 0;
    bool zone = false;
    if (json_is_number(date)) {
        ms = (int64_t)json_number_value(date);
        if (ms < 100000000000LL)
            ms *= 1000; /* seconds */
    } else if (json_is_string(date) && dia_parse_time_ms(json_string_value(date), &ms) == DIA_OK) {
        zone = zone_offset_min(json_string_value(date), &offset);
    } else {
        reply_error(res, 400, "Bad or missing date field");
        return;
    }
    if (ms <= 946684800000LL) {
        reply_error(res, 400, "Bad or missing date field");
        return;
    }
    if (!json_is_string(json_object_get(doc, "app"))) {
        reply_error(res, 400, "Bad or missing app field");
        return;
    }
    json_object_set_new(doc, "date", json_integer(ms));
    if (!json_object_get(doc, "utcOffset"))
        json_object_set_new(doc, "utcOffset", json_integer(zone ? offset : 0));
    json_int_t utc_offset = json_integer_value(json_object_get(doc, "utcOffset"));
    if (utc_offset < -1440 || utc_offset > 1440) {
        reply_error(res, 400, "Bad or missing utcOffset field");
        return;
    }
    bool client_id = json_is_string(json_object_get(doc, "identifier"));
    if (!client_id) {
        char id[DIA_NS_UUID_LEN + 1];
        const char *dev = json_string_value(json_object_get(doc, "device"));
        dia_ns_identifier(dev ? dev : "", ms, json_string_value(json_object_get(doc, "eventType")),
                          id);
        json_object_set_new(doc, "identifier", json_string(id));
    }
    const char *id = json_string_value(json_object_get(doc, "identifier"));
    json_t *old = store_get(s, s->by_id, id);
    if (!old && !client_id) {
        /* fallback dedup for documents sent without identifier */
        size_t i;
        json_t *d;
        json_array_foreach(s->docs, i, d)
        {
            const char *a = coll == C_ENTRIES      ? "type"
                            : coll == C_TREATMENTS ? "eventType"
                                                   : "device";
            json_t *x = json_object_get(d, a), *y = json_object_get(doc, a);
            json_t *dd = json_object_get(d, "date");
            if (json_is_number(dd) && (int64_t)json_number_value(dd) == ms && x && y &&
                json_equal(x, y)) {
                old = d;
                break;
            }
        }
    }
    int64_t now = dia_now_ms();
    json_object_set_new(doc, "srvModified", json_integer(now));
    if (old) {
        static const char *const immutable[] = {"date", "utcOffset", "app", "device", NULL};
        for (int i = 0; immutable[i]; i++) {
            json_t *a = json_object_get(old, immutable[i]), *b = json_object_get(doc, immutable[i]);
            if (a && b && !json_equal(a, b)) {
                char msg[96];
                snprintf(msg, sizeof msg, "Field %s cannot be modified by the client",
                         immutable[i]);
                reply_error(res, 400, msg);
                return;
            }
        }
        json_object_set(doc, "srvCreated", json_object_get(old, "srvCreated"));
        json_object_set(doc, "_id", json_object_get(old, "_id"));
        json_object_update(old, doc);
        reply_json(res, 200,
                   json_pack("{si ss sb sI}", "status", 200, "identifier",
                             json_string_value(json_object_get(old, "identifier")),
                             "isDeduplication", 1, "lastModified", (json_int_t)now));
        return;
    }
    json_object_set_new(doc, "srvCreated", json_integer(now));
    if (coll != C_ENTRIES && !json_object_get(doc, "created_at")) {
        char iso[40];
        iso_utc(ms, iso, sizeof iso);
        json_object_set_new(doc, "created_at", json_string(iso));
    }
    size_t at = store_insert(ns, s, doc);
    store_index(s, at, NULL, id);
    snprintf(res->extra_headers, sizeof res->extra_headers, "Location: /api/v3/%s/%s\r\n",
             coll_names[coll], id);
    reply_json(
        res, 201,
        json_pack("{si ss sI}", "status", 201, "identifier", id, "lastModified", (json_int_t)now));
}

static void get_v3(struct nsim *ns, int coll, const struct sim_http_request *req,
                   struct sim_http_response *res)
{
    char buf[32];
    long limit = sim_http_query(req, "limit", buf, sizeof buf) ? strtol(buf, NULL, 10) : 100;
    json_t *out = json_array();
    struct store *s = &ns->st[coll];
    size_t n = json_array_size(s->docs);
    for (size_t i = n; i > 0 && (long)json_array_size(out) < limit; i--)
        json_array_append(out, json_array_get(s->docs, i - 1));
    reply_json(res, 200, json_pack("{si so}", "status", 200, "result", out));
}

/* ---- test controls ------------------------------------------------------- */

static void sim_control(struct nsim *ns, const struct sim_http_request *req,
                        struct sim_http_response *res)
{
    char buf[64];
    if (strcmp(req->path, "/_sim/fault") == 0) {
        if (sim_http_query(req, "mode", buf, sizeof buf)) {
            int f = -1;
            for (int i = 0; i <= F_413; i++)
                if (strcmp(buf, fault_names[i]) == 0)
                    f = i;
            if (f < 0) {
                reply_error(res, 400, "mode is none, down, slow, 500, 401 or 413");
                return;
            }
            ns->fault = (enum fault)f;
            ns->fault_left = sim_http_query(req, "count", buf, sizeof buf) ? atol(buf) : 0;
        }
        if (sim_http_query(req, "ms", buf, sizeof buf))
            ns->slow_ms = atol(buf);
        reply_json(res, 200,
                   json_pack("{ss si si}", "mode", fault_names[ns->fault], "count",
                             (int)ns->fault_left, "ms", (int)ns->slow_ms));
        return;
    }
    if (strcmp(req->path, "/_sim/reject") == 0) {
        if (sim_http_query(req, "date", buf, sizeof buf)) {
            ns->has_reject = strcmp(buf, "none") != 0;
            ns->reject_ms = strtoll(buf, NULL, 10);
        }
        reply_json(
            res, 200,
            json_pack("{sb sI}", "active", ns->has_reject, "date", (json_int_t)ns->reject_ms));
        return;
    }
    if (strcmp(req->path, "/_sim/stats") == 0) {
        reply_json(res, 200,
                   json_pack("{sI sI sI sI sI sI sI sI}", "too_large", (json_int_t)ns->too_large,
                             "entries", (json_int_t)json_array_size(ns->st[C_ENTRIES].docs),
                             "treatments", (json_int_t)json_array_size(ns->st[C_TREATMENTS].docs),
                             "devicestatus",
                             (json_int_t)json_array_size(ns->st[C_DEVICESTATUS].docs), "requests",
                             (json_int_t)ns->requests, "posts", (json_int_t)ns->posts,
                             "auth_failures", (json_int_t)ns->auth_failures, "faults_served",
                             (json_int_t)ns->faults_served));
        return;
    }
    for (int c = 1; c < C_COUNT; c++) {
        char path[64];
        snprintf(path, sizeof path, "/_sim/dump/%s", coll_names[c]);
        if (strcmp(req->path, path) == 0) {
            reply_json(res, 200, json_incref(ns->st[c].docs));
            return;
        }
    }
    reply_error(res, 404, "unknown /_sim control");
}

/* ---- dispatch ------------------------------------------------------------ */

/* "/api/v1/entries", "/api/v1/entries.json", "/api/v1/entries/sgv.json" */
static int v1_collection(const char *path, char *type, size_t tlen)
{
    type[0] = '\0';
    if (strncmp(path, "/api/v1/", 8) != 0)
        return 0;
    const char *p = path + 8;
    for (int c = 1; c < C_COUNT; c++) {
        size_t n = strlen(coll_names[c]);
        if (strncmp(p, coll_names[c], n) != 0)
            continue;
        const char *rest = p + n;
        if (!*rest || strcmp(rest, ".json") == 0 || strcmp(rest, "/") == 0)
            return c;
        if (c == C_ENTRIES && rest[0] == '/') {
            snprintf(type, tlen, "%.*s", (int)strcspn(rest + 1, "./"), rest + 1);
            return c;
        }
    }
    return 0;
}

static int v3_collection(const char *path)
{
    if (strncmp(path, "/api/v3/", 8) != 0)
        return 0;
    for (int c = 1; c < C_COUNT; c++)
        if (strcmp(path + 8, coll_names[c]) == 0)
            return c;
    return 0;
}

static void handle(void *ctx, const struct sim_http_request *req, struct sim_http_response *res)
{
    struct nsim *ns = ctx;
    if (strncmp(req->path, "/_sim/", 6) == 0) {
        sim_control(ns, req, res);
        return;
    }
    ns->requests++;
    if (ns->fault != F_NONE) {
        enum fault f = ns->fault;
        ns->faults_served++;
        if (ns->fault_left > 0 && --ns->fault_left == 0)
            ns->fault = F_NONE;
        switch (f) {
        case F_DOWN:
            res->drop = true;
            return;
        case F_SLOW:
            res->delay_ms = (int)ns->slow_ms;
            break;
        case F_500:
            reply_error(res, 500, "simulated server failure");
            return;
        case F_401:
            unauthorized(ns, res);
            return;
        case F_413:
            reply_error(res, 413, "request entity too large");
            return;
        default:
            break;
        }
    }
    if (ns->auth_fail_pending) {
        /* Nightscout's authFailDelay: the request after a failure waits */
        ns->auth_fail_pending = false;
        res->delay_ms += (int)ns->auth_fail_delay_ms;
    }
    bool post = strcmp(req->method, "POST") == 0;
    bool get = strcmp(req->method, "GET") == 0;
    if (get && (strcmp(req->path, "/api/v1/status.json") == 0 ||
                strcmp(req->path, "/api/v1/status") == 0)) {
        reply_json(res, 200,
                   json_pack("{ss ss sb}", "status", "ok", "version", "15.0.7-diabridge-sim",
                             "apiEnabled", 1));
        return;
    }
    if (get && strncmp(req->path, "/api/v2/authorization/request/", 30) == 0) {
        token_exchange(ns, req->path + 30, res);
        return;
    }
    char type[32];
    int c1 = v1_collection(req->path, type, sizeof type);
    int c3 = v3_collection(req->path);
    if (!c1 && !c3) {
        reply_error(res, 404, "Not Found");
        return;
    }
    enum auth a = check_auth(ns, req, c3 != 0);
    if (a == AUTH_BAD || (a == AUTH_NONE && (post || c3 || !ns->default_readable))) {
        unauthorized(ns, res);
        return;
    }
    if (get) {
        if (c3)
            get_v3(ns, c3, req, res);
        else
            get_v1(ns, c1, type[0] ? type : NULL, req, res);
        return;
    }
    if (!post) {
        reply_error(res, 405, "Method Not Allowed");
        return;
    }
    ns->posts++;
    size_t limit = c1 == C_DEVICESTATUS || c3 == C_DEVICESTATUS ? ns->max_body_ds : ns->max_body;
    if (req->body_len > limit) {
        ns->too_large++;
        reply_error(res, 413, "request entity too large");
        return;
    }
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    if (!body) {
        reply_error(res, 400, "Bad JSON");
        return;
    }
    json_t *docs = json_is_array(body) ? json_incref(body) : json_pack("[O]", body);
    if (poisoned(ns, docs)) {
        reply_error(res, 400, "simulated: this document is refused");
    } else if (c3) {
        post_v3(ns, c3, json_is_object(body) ? body : json_array_get(body, 0), res);
    } else if (c1 == C_ENTRIES && json_is_object(body) && !json_object_get(body, "date")) {
        reply_json(res, 200, json_array()); /* dropped silently, as 15.0.7 does */
    } else {
        post_v1(ns, c1, docs, res);
    }
    json_decref(docs);
    json_decref(body);
}

/* ---- main ------------------------------------------------------------------ */

static const char nightscout_usage[] =
    "[--port N] [--api-secret S] [--token T] [--auth-fail-delay-ms 5000]\n"
    "       [--jwt-lifetime SECONDS] [--fault none|down|slow|500|401|413] [--slow-ms 3000]\n"
    "       [--max-body BYTES] [--max-body-devicestatus BYTES] [--default-roles readable|denied]\n"
    "\n"
    "A fake Nightscout 15.0.7 on 127.0.0.1 with its dedup rules, auth and limits; prints\n"
    "its URL on the first line of stdout.  Test controls: /_sim/fault, /_sim/reject,\n"
    "/_sim/stats, /_sim/dump/COLLECTION (see sim/nightscout_server.c).";

static int nightscout_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"api-secret", required_argument, NULL, 's'},
        {"token", required_argument, NULL, 't'},
        {"auth-fail-delay-ms", required_argument, NULL, 'd'},
        {"jwt-lifetime", required_argument, NULL, 'j'},
        {"fault", required_argument, NULL, 'f'},
        {"slow-ms", required_argument, NULL, 'w'},
        {"max-body", required_argument, NULL, 'm'},
        {"max-body-devicestatus", required_argument, NULL, 'M'},
        {"default-roles", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    static struct nsim ns;
    ns.auth_fail_delay_ms = 5000;
    ns.jwt_lifetime_s = 8 * 3600;
    ns.slow_ms = 3000;
    ns.max_body = 52428800;
    ns.max_body_ds = 1048576;
    ns.default_readable = true;
    int port = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 's':
            if (strlen(optarg) < 12) {
                fprintf(stderr, "diabridge-sim nightscout: API_SECRET should be at least 12 "
                                "characters long (Nightscout refuses shorter ones)\n");
                return 2;
            }
            hexdigest(EVP_sha1(), optarg, ns.sha1);
            hexdigest(EVP_sha512(), optarg, ns.sha512);
            ns.has_secret = true;
            break;
        case 't':
            snprintf(ns.token, sizeof ns.token, "%s", optarg);
            break;
        case 'd':
            ns.auth_fail_delay_ms = atol(optarg);
            break;
        case 'j':
            ns.jwt_lifetime_s = atol(optarg);
            break;
        case 'f': {
            int f = -1;
            for (int i = 0; i <= F_413; i++)
                if (strcmp(optarg, fault_names[i]) == 0)
                    f = i;
            if (f < 0) {
                fprintf(stderr, "diabridge-sim nightscout: --fault is none, down, slow, 500, "
                                "401 or 413\n");
                return 2;
            }
            ns.fault = (enum fault)f;
            break;
        }
        case 'w':
            ns.slow_ms = atol(optarg);
            break;
        case 'm':
            ns.max_body = strtoul(optarg, NULL, 10);
            break;
        case 'M':
            ns.max_body_ds = strtoul(optarg, NULL, 10);
            break;
        case 'r':
            ns.default_readable = strcmp(optarg, "denied") != 0;
            break;
        default:
            fprintf(stderr, "usage: diabridge-sim nightscout %s\n", nightscout_usage);
            return 2;
        }
    }
    for (int c = 1; c < C_COUNT; c++) {
        ns.st[c].docs = json_array();
        ns.st[c].by_key = json_object();
        ns.st[c].by_id = json_object();
    }
    return sim_httpd_serve("diabridge-sim nightscout", port, handle, &ns, NULL);
}

const struct dia_simulator dia_sim_nightscout = {
    .name = "nightscout",
    .description = "fake Nightscout server (API v1/v3, dedup, auth, faults) on loopback",
    .usage = nightscout_usage,
    .main = nightscout_main,
};
