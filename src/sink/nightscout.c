/*
 * Sink `nightscout`: every record to a Nightscout site (cgm-remote-monitor),
 * exactly once, through outages and crashes.
 *
 *     nightscout+https://host[:port][/subpath],api-secret-file=/etc/diabridge/ns
 *     nightscout+https://host,token=uploader-0123456789abcdef,api=v3
 *
 * Protocol facts (specs/smartpix-and-sinks.md):
 * - Auth (§2.1, §2.5a): the api-secret header carries the SHA-1 hex of
 *   API_SECRET (the raw passphrase gets 401; dexpy's mistake, dexcom spec
 *   §3.5).  An access token goes as ?token= on v1; API v3 takes only a
 *   Bearer JWT, which GET /api/v2/authorization/request/<token> hands out
 *   for 8 h.  We renew it 10 minutes before it expires.
 * - After a wrong secret Nightscout delays the client's next request by 5 s
 *   (§2.5a): a 401/403 is DIA_ERR_AUTH, which the supervisor retries only
 *   after a long pause.
 * - v1 entries are deduplicated on (sysTime, type) and merged; treatments
 *   on identifier, else (created_at, eventType), and replaced (§2.2, §2.3):
 *   nightscout_map.c gives every record the same time, type and identifier
 *   on every send, so a re-send after a crash lands on the same documents.
 * - v1 devicestatus is a plain insert with no dedup (§2.4): before posting
 *   one we ask whether a document with its created_at and device is there.
 * - Bodies are always JSON arrays: a single object without `date` is
 *   answered 200 [] and dropped (§2.5a).  A 2xx whose body is not a JSON
 *   array is not Nightscout (a captive portal, a proxy page) and does not
 *   count as accepted.
 * - Body limits: 50 MiB for entries and treatments, 1 MiB for devicestatus
 *   (§2.5a).  A 400 or 413 for a batch is answered by halving it until the
 *   one refused record is found; that record is dead-lettered with the
 *   reason and the rest goes on, but only when the refusal is evidently
 *   about that record (judge_refusal: a proxy that refuses everything must
 *   not dead-letter everything).
 * - API v3 (§2.5) creates one document per POST; a repeat of an identifier
 *   is answered 200 isDeduplication.  Immutable fields are always sent with
 *   the same values.  A 2xx counts only with v3's JSON answer naming the
 *   stored identifier.
 * - The access token is a credential wherever it appears: in ?token= (the
 *   query, which no message shows) and in the path of the v3 token exchange,
 *   /api/v2/authorization/request/TOKEN, which a redirect echoes back in its
 *   Location.  Every URL and every error text we show passes ns_redact().
 *
 * The cursor advances only for the prefix of the batch Nightscout accepted
 * (send()'s *acked).  Records that came from a Nightscout source are never
 * sent back (they are acknowledged without sending).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/driver.h"
#include "core/err.h"
#include "core/log.h"
#include "core/url.h"
#include "io/http.h"
#include "sink/nightscout_map.h"

#define NS_JWT_RENEW_MS   (10 * 60 * 1000) /* renew this long before it expires */
#define NS_REDIRECTS      3
#define NS_JSON_FLAGS     (JSON_COMPACT | JSON_REAL_PRECISION(10))
#define NS_EXCERPT_MAX    100 /* characters of a server's answer quoted in a message */
#define NS_TOKEN_EXCHANGE "/api/v2/authorization/request/"
#define NS_BLOT           "…" /* what stands where a token was */
#define NS_CHECK_ADDRESS                                                                           \
    "check the address (http:// or https://, host, port, /subpath) and any proxy in front of "     \
    "Nightscout"

static const struct dia_option_spec nightscout_options[] = {
    {.name = "api-secret",
     .type = DIA_OPT_SECRET,
     .help = "the site's API_SECRET (the passphrase, or its SHA-1 as 40 hex digits)"},
    {.name = "token",
     .type = DIA_OPT_SECRET,
     .help = "an access token made in Admin Tools (needed for api=v3)"},
    {.name = "ca-file",
     .type = DIA_OPT_STRING,
     .help = "PEM file of a private certificate authority"},
    {.name = "insecure",
     .type = DIA_OPT_BOOL,
     .default_value = "0",
     .help = "do not verify the TLS certificate (self-signed set-ups only)"},
    {.name = "api",
     .type = DIA_OPT_ENUM,
     .default_value = "v1",
     .choices = "v1|v3",
     .help = "Nightscout API to use"},
    {.name = "batch",
     .type = DIA_OPT_INT,
     .default_value = "500",
     .min = 1,
     .max = 10000,
     .help = "records per request"},
    {.name = "timeout",
     .type = DIA_OPT_DURATION,
     .default_value = "60",
     .min = 1,
     .max = 3600,
     .help = "time allowed for one request"},
    {0},
};

struct ns_sink {
    struct dia_instance *in;
    struct dia_http *http;
    char base[1024]; /* scheme://host[:port][/subpath], no trailing slash */
    char secret_header[64];
    bool has_secret;
    char *token;           /* URL-encoded access token, or NULL */
    const char *token_raw; /* the token as configured (in->opts), for redaction */
    bool v3;
    struct dia_http_tls tls;
    long timeout_ms;
    char *bearer_header; /* "Authorization: Bearer <jwt>" */
    int64_t jwt_expires_ms;
    bool devicestatus_check_refused; /* the token may not read devicestatus */
    /* the batch being sent */
    const struct dia_record *recs;
    /* what this send() has seen, for judge_refusal() */
    bool accepted;        /* the site stored documents of ours */
    bool refusal_certain; /* the last refusal was about the documents themselves */
    long refusal_status;  /* HTTP status of the last refusal */
    char refusal_excerpt[NS_EXCERPT_MAX + 1];
};

/* ---- helpers ------------------------------------------------------------- */

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static char *url_encode(const char *s)
{
    char *out = malloc(strlen(s) * 3 + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            *o++ = (char)c;
        } else {
            sprintf(o, "%%%02X", c);
            o += 3;
        }
    }
    *o = '\0';
    return out;
}

/*
 * A short, printable excerpt of a response body for an error message:
 * Nightscout's "message" when it is Nightscout's error document, else the
 * text of the page (its <title> when it has one) with the HTML tags left
 * out, so that a proxy's page reads as a sentence: "400 The plain HTTP
 * request was sent to HTTPS port".
 */
static void body_excerpt(const struct dia_http_response *res, char *buf, size_t len)
{
    size_t n = 0;
    const char *msg = res->body ? res->body : "";
    json_t *j = json_loads(msg, JSON_DISABLE_EOF_CHECK, NULL);
    /* Nightscout errors: {"status":400,"message":"…"} */
    const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
    const char *title = m ? NULL : strcasestr(msg, "<title>");
    if (m)
        msg = m;
    else if (title)
        msg = title + strlen("<title>");
    bool in_tag = false, space = true;
    for (const char *p = msg; *p && n + 1 < len && n < NS_EXCERPT_MAX; p++) {
        unsigned char c = (unsigned char)*p;
        if (!m && c == '<') {
            if (title)
                break; /* the end of the title */
            in_tag = true;
            continue;
        }
        if (in_tag) {
            if (c == '>') {
                in_tag = false;
                c = ' ';
            } else {
                continue;
            }
        }
        if (!isprint(c) || c == ' ') {
            if (!space)
                buf[n++] = ' ';
            space = true;
            continue;
        }
        buf[n++] = (char)c;
        space = false;
    }
    while (n && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
    json_decref(j);
}

/* Overwrite every occurrence of needle in text with NS_BLOT (or, should
 * needle be shorter than that, with as many '*'): text never grows. */
static void blot(char *text, const char *needle)
{
    size_t nl = needle ? strlen(needle) : 0, bl = strlen(NS_BLOT);
    if (!nl)
        return;
    for (char *p = strstr(text, needle); p; p = strstr(p, needle)) {
        if (nl < bl) {
            memset(p, '*', nl);
            p += nl;
            continue;
        }
        memcpy(p, NS_BLOT, bl);
        memmove(p + bl, p + nl, strlen(p + nl) + 1);
        p += bl;
    }
}

/*
 * Take the access token out of a text that may quote a URL (an error, a
 * redirect target): the path segment after /api/v2/authorization/request/
 * whatever its spelling (a server may re-encode it), and the token itself
 * wherever else it stands.  The segment goes even when a cut text holds
 * only its beginning.
 */
static void ns_redact(const struct ns_sink *s, char *text)
{
    size_t pl = strlen(NS_TOKEN_EXCHANGE);
    for (char *p = strstr(text, NS_TOKEN_EXCHANGE); p; p = strstr(p, NS_TOKEN_EXCHANGE)) {
        p += pl;
        size_t seg = strcspn(p, "/?# \t\r\n\"'<>()");
        if (seg) {
            char saved = p[seg];
            p[seg] = '\0';
            char *copy = strdup(p);
            p[seg] = saved;
            if (copy) {
                blot(p, copy);
                explicit_bzero(copy, seg);
                free(copy);
            } else {
                memset(p, '*', seg); /* out of memory: still no token */
            }
        }
    }
    blot(text, s->token);
    blot(text, s->token_raw);
}

/* url as it may be shown: no userinfo, no query (dia_http_url_for_log),
 * no token (ns_redact); redacted before it is cut to fit buf. */
static void ns_url_for_log(const struct ns_sink *s, const char *url, char *buf, size_t len)
{
    size_t full = strlen(url) + 1;
    char *plain = malloc(full);
    if (!plain) {
        snprintf(buf, len, "another address");
        return;
    }
    dia_http_url_for_log(url, plain, full);
    ns_redact(s, plain);
    snprintf(buf, len, "%s", plain);
    free(plain);
}

/*
 * The site address a redirect points to: its Location without the path we
 * asked for (https://host/sub/api/v1/entries → https://host/sub), so that
 * the message can say what to configure.  false when the Location is not
 * the same request at another address.
 */
static bool redirected_site(const struct ns_sink *s, const char *location, const char *path,
                            char *buf, size_t len)
{
    size_t full = strlen(location) + 1;
    char *plain = malloc(full);
    if (!plain)
        return false;
    dia_http_url_for_log(location, plain, full);
    size_t n = strlen(plain), pl = strlen(path);
    bool same_request = strstr(plain, "://") && n > pl && strcmp(plain + n - pl, path) == 0;
    if (same_request) {
        plain[n - pl] = '\0';
        ns_redact(s, plain);
        snprintf(buf, len, "%s", plain);
    }
    explicit_bzero(plain, full);
    free(plain);
    return same_request;
}

/* scheme://host[:port][/path]?query, with ?token= for v1 */
static int build_url(struct ns_sink *s, const char *path, const char *query, char **out)
{
    const char *tok = !s->v3 && s->token ? s->token : NULL;
    size_t len =
        strlen(s->base) + strlen(path) + (query ? strlen(query) : 0) + (tok ? strlen(tok) : 0) + 16;
    char *u = malloc(len);
    if (!u)
        return DIA_ERR_NOMEM;
    snprintf(u, len, "%s%s%s%s%s%s%s", s->base, path, query || tok ? "?" : "", query ? query : "",
             query && tok ? "&" : "", tok ? "token=" : "", tok ? tok : "");
    *out = u;
    return DIA_OK;
}

/* A request, as classify() needs to know it. */
struct ns_call {
    const char *what; /* for messages: "posting entries" */
    const char *path; /* the path asked for, to recognise a redirect of the whole site */
    bool documents;   /* it carried documents, so a 400 may be Nightscout judging them */
};

/*
 * Classify a finished request and say in the instance's error what went
 * wrong and what to check.  Neither res->error nor any message carries the
 * token or the secret: URLs go through ns_url_for_log / ns_redact.
 */
static int classify(struct ns_sink *s, int rc, struct dia_http_response *res,
                    const struct ns_call *call)
{
    struct dia_instance *in = s->in;
    const char *what = call->what;
    ns_redact(s, res->error);
    if (rc == DIA_ERR_TIMEOUT) {
        atomic_fetch_add(&in->counters.timeouts, 1);
        dia_instance_error(in,
                           "%s: no answer within %ld s (%s); is the site up? A slow site may "
                           "need a longer timeout=",
                           what, s->timeout_ms / 1000, res->error[0] ? res->error : "timeout");
        return rc;
    }
    if (rc == DIA_ERR_TRANSIENT) {
        /* refused, reset, no such host: nothing answered at all */
        dia_instance_error(in,
                           "%s: the connection to the site failed (%s); check that the address is "
                           "right (host, port, http:// or https://) and that the site is up",
                           what, res->error[0] ? res->error : dia_strerror(rc));
        return rc;
    }
    if (rc != DIA_OK) {
        dia_instance_error(in, "%s: %s", what, res->error[0] ? res->error : dia_strerror(rc));
        return rc;
    }
    long st = res->status;
    if (st >= 200 && st < 300)
        return DIA_OK;
    char detail[NS_EXCERPT_MAX + 1];
    body_excerpt(res, detail, sizeof detail);
    ns_redact(s, detail);
    if (st == 401 || st == 403) {
        dia_instance_error(in,
                           "Nightscout rejected the secret/token (HTTP %ld on %s): check "
                           "api-secret= or token= and that the token's role may create "
                           "entries, treatments and devicestatus",
                           st, what);
        return DIA_ERR_AUTH;
    }
    if ((st == 400 || st == 413 || st == 422) && call->documents) {
        /* Possibly about these documents; judge_refusal() decides once the
         * batch is split down to one record. */
        s->refusal_certain = dia_ns_is_nightscout_error(res->body, res->body_len, st);
        s->refusal_status = st;
        snprintf(s->refusal_excerpt, sizeof s->refusal_excerpt, "%s", detail);
        dia_instance_error(in, "%s refused the record%s (HTTP %ld%s%s%s)",
                           s->refusal_certain ? "Nightscout" : "the site",
                           st == 413 ? " as too large" : "", st,
                           !detail[0]           ? ""
                           : s->refusal_certain ? ": \""
                                                : ", not a Nightscout answer: \"",
                           detail, detail[0] ? "\"" : "");
        return DIA_ERR_PERMANENT;
    }
    if (st == 400 || st == 413 || st == 422) {
        /* a request without documents (the token exchange, a query) */
        dia_instance_error(in, "%s: HTTP %ld%s%s%s; " NS_CHECK_ADDRESS, what, st,
                           detail[0] ? " (\"" : "", detail, detail[0] ? "\")" : "");
        return DIA_ERR_CONFIG;
    }
    if (st >= 300 && st < 400) {
        char where[200] = "another address", site[200];
        if (res->location && redirected_site(s, res->location, call->path, site, sizeof site)) {
            dia_instance_error(in,
                               "%s: HTTP %ld redirect to %s, not followed (the secret must not "
                               "go to another address); if the site moved, put nightscout+%s "
                               "in the configuration",
                               what, st, site, site);
            return DIA_ERR_CONFIG;
        }
        if (res->location)
            ns_url_for_log(s, res->location, where, sizeof where);
        dia_instance_error(in,
                           "%s: HTTP %ld redirect to %s, not followed (the secret must not go "
                           "to another address); check the address in the configuration",
                           what, st, where);
        return DIA_ERR_CONFIG;
    }
    if (st == 404 || st == 405) {
        dia_instance_error(in,
                           "%s: HTTP %ld: this address does not look like a Nightscout site; "
                           "check the URL (and its /subpath, if the site has one)",
                           what, st);
        return DIA_ERR_CONFIG;
    }
    dia_instance_error(in, "%s: Nightscout answered HTTP %ld%s%s; will retry", what, st,
                       detail[0] ? ": " : "", detail);
    return DIA_ERR_TRANSIENT;
}

/* One request with our auth headers.  *res must be freed by the caller. */
static int request(struct ns_sink *s, const char *method, const char *path, const char *query,
                   const char *body, struct dia_http_response *res)
{
    char *url = NULL;
    int rc = build_url(s, path, query, &url);
    if (rc != DIA_OK) {
        memset(res, 0, sizeof *res);
        return rc;
    }
    const char *headers[5];
    int nh = 0;
    headers[nh++] = "Content-Type: application/json";
    headers[nh++] = "Accept: application/json";
    if (s->has_secret && !s->v3)
        headers[nh++] = s->secret_header;
    if (s->v3 && s->bearer_header)
        headers[nh++] = s->bearer_header;
    headers[nh] = NULL;
    struct dia_http_request req = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .timeout_ms = s->timeout_ms,
        .tls = s->tls,
        .max_same_host_redirects = NS_REDIRECTS,
    };
    rc = dia_http_do(s->http, &req, res);
    free(url);
    return rc;
}

/* POST a JSON value to a v1 collection; DIA_OK only for 2xx with a JSON array. */
static int post_v1(struct ns_sink *s, enum dia_ns_collection coll, json_t *body)
{
    char path[64];
    snprintf(path, sizeof path, "/api/v1/%s", dia_ns_collection_name(coll));
    char *text = json_dumps(body, NS_JSON_FLAGS);
    if (!text)
        return DIA_ERR_NOMEM;
    struct dia_http_response res;
    int rc = request(s, "POST", path, NULL, text, &res);
    free(text);
    char what[96];
    snprintf(what, sizeof what, "posting %s", dia_ns_collection_name(coll));
    struct ns_call call = {.what = what, .path = path, .documents = true};
    rc = classify(s, rc, &res, &call);
    if (rc == DIA_OK) {
        json_t *j = json_loadb(res.body, res.body_len, 0, NULL);
        if (!json_is_array(j)) {
            dia_instance_error(s->in,
                               "%s: the answer was not Nightscout's (no JSON list of stored "
                               "documents); is a proxy or login page in the way?",
                               what);
            rc = DIA_ERR_TRANSIENT;
        } else {
            s->accepted = true;
        }
        json_decref(j);
    }
    dia_http_response_free(&res);
    return rc;
}

/*
 * Whether Nightscout already holds this devicestatus (a re-send after a
 * crash): v1 would store it twice (§2.4).  1 = present, 0 = absent, or an
 * error.  A token that may not read devicestatus cannot check; then we post
 * without checking and say so once.
 */
static int devicestatus_present(struct ns_sink *s, json_t *doc)
{
    if (s->devicestatus_check_refused)
        return 0;
    char *when = url_encode(json_string_value(json_object_get(doc, "created_at")));
    char *dev = url_encode(json_string_value(json_object_get(doc, "device")));
    if (!when || !dev) {
        free(when);
        free(dev);
        return DIA_ERR_NOMEM;
    }
    size_t qlen = strlen(when) + strlen(dev) + 128;
    char *query = malloc(qlen);
    if (!query) {
        free(when);
        free(dev);
        return DIA_ERR_NOMEM;
    }
    snprintf(query, qlen, "find%%5Bcreated_at%%5D=%s&find%%5Bdevice%%5D=%s&count=1", when, dev);
    free(when);
    free(dev);
    struct dia_http_response res;
    int rc = request(s, "GET", "/api/v1/devicestatus.json", query, NULL, &res);
    free(query);
    if (rc == DIA_OK && (res.status == 401 || res.status == 403)) {
        dia_warn(s->in->name,
                 "this token may not read devicestatus, so a device status re-sent after a "
                 "crash may appear twice in Nightscout (give the token api:devicestatus:read)");
        s->devicestatus_check_refused = true;
        dia_http_response_free(&res);
        return 0;
    }
    struct ns_call call = {.what = "checking devicestatus", .path = "/api/v1/devicestatus.json"};
    rc = classify(s, rc, &res, &call);
    if (rc == DIA_OK) {
        json_t *j = json_loadb(res.body, res.body_len, 0, NULL);
        if (!json_is_array(j)) {
            dia_instance_error(s->in, "checking devicestatus: the answer was not Nightscout's");
            rc = DIA_ERR_TRANSIENT;
        } else {
            rc = json_array_size(j) > 0 ? 1 : 0;
        }
        json_decref(j);
    }
    dia_http_response_free(&res);
    return rc;
}

/* ---- API v1 ------------------------------------------------------------- */

/* Send records [lo, hi): entries and treatments as one array each, device
 * statuses one by one after checking they are not there yet. */
static int post_range_v1(void *ctx, size_t lo, size_t hi)
{
    struct ns_sink *s = ctx;
    json_t *arrays[DIA_NS_COLLECTIONS] = {0};
    int rc = DIA_OK;
    for (int c = 0; c < DIA_NS_COLLECTIONS; c++) {
        if (!(arrays[c] = json_array())) {
            rc = DIA_ERR_NOMEM;
            goto out;
        }
    }
    for (size_t i = lo; i < hi; i++) {
        if (dia_ns_from_nightscout(&s->recs[i]))
            continue;
        struct dia_ns_doc docs[DIA_NS_MAX_DOCS];
        int n = dia_ns_documents(&s->recs[i], docs);
        if (n < 0) {
            rc = n;
            goto out;
        }
        for (int k = 0; k < n; k++)
            json_array_append(arrays[docs[k].coll], docs[k].doc);
        dia_ns_docs_free(docs, n);
    }
    if (json_array_size(arrays[DIA_NS_ENTRIES]) &&
        (rc = post_v1(s, DIA_NS_ENTRIES, arrays[DIA_NS_ENTRIES])) != DIA_OK)
        goto out;
    if (json_array_size(arrays[DIA_NS_TREATMENTS]) &&
        (rc = post_v1(s, DIA_NS_TREATMENTS, arrays[DIA_NS_TREATMENTS])) != DIA_OK)
        goto out;
    size_t i;
    json_t *doc;
    json_array_foreach(arrays[DIA_NS_DEVICESTATUS], i, doc)
    {
        int present = devicestatus_present(s, doc);
        if (present < 0) {
            rc = present;
            goto out;
        }
        if (present)
            continue;
        json_t *one = json_pack("[O]", doc);
        if (!one) {
            rc = DIA_ERR_NOMEM;
            goto out;
        }
        rc = post_v1(s, DIA_NS_DEVICESTATUS, one);
        json_decref(one);
        if (rc != DIA_OK)
            goto out;
    }
out:
    for (int c = 0; c < DIA_NS_COLLECTIONS; c++)
        json_decref(arrays[c]);
    return rc;
}

/* ---- API v3 ------------------------------------------------------------- */

/* Exchange the access token for a JWT (§2.1), unless ours is still good. */
static int ensure_jwt(struct ns_sink *s)
{
    if (s->bearer_header && dia_now_ms() < s->jwt_expires_ms - NS_JWT_RENEW_MS)
        return DIA_OK;
    wipe_free(s->bearer_header);
    s->bearer_header = NULL;
    size_t plen = strlen(s->token) + 64;
    char *path = malloc(plen);
    if (!path)
        return DIA_ERR_NOMEM;
    snprintf(path, plen, NS_TOKEN_EXCHANGE "%s", s->token);
    struct dia_http_response res;
    int rc = request(s, "GET", path, NULL, NULL, &res);
    /* the path holds the token: classify() takes it out of res.error and
     * of a redirect's Location before it shows either */
    struct ns_call call = {.what = "exchanging the access token", .path = path};
    rc = classify(s, rc, &res, &call);
    wipe_free(path);
    if (rc == DIA_OK) {
        json_t *j = json_loadb(res.body, res.body_len, 0, NULL);
        const char *jwt = json_string_value(json_object_get(j, "token"));
        json_t *exp = json_object_get(j, "exp");
        if (!jwt || !json_is_integer(exp)) {
            dia_instance_error(s->in, "exchanging the access token: the answer has no token and "
                                      "exp; is a proxy or login page in the way, or is this "
                                      "Nightscout older than 13?");
            rc = DIA_ERR_TRANSIENT;
        } else {
            size_t hl = strlen(jwt) + 32;
            s->bearer_header = malloc(hl);
            if (!s->bearer_header) {
                rc = DIA_ERR_NOMEM;
            } else {
                snprintf(s->bearer_header, hl, "Authorization: Bearer %s", jwt);
                s->jwt_expires_ms = (int64_t)json_integer_value(exp) * 1000;
                dia_debug(s->in->name, "got an API token valid for %lld s",
                          (long long)((s->jwt_expires_ms - dia_now_ms()) / 1000));
            }
        }
        json_decref(j);
    }
    /* the JWT is a credential: do not leave it in freed memory */
    if (res.body)
        explicit_bzero(res.body, res.body_len);
    dia_http_response_free(&res);
    return rc;
}

static int post_v3(struct ns_sink *s, enum dia_ns_collection coll, json_t *doc)
{
    char path[64], what[96];
    snprintf(path, sizeof path, "/api/v3/%s", dia_ns_collection_name(coll));
    snprintf(what, sizeof what, "posting %s (API v3)", dia_ns_collection_name(coll));
    int rc = dia_ns_to_v3(doc, coll);
    if (rc != DIA_OK) {
        dia_instance_error(s->in, "cannot give a %s document the fields API v3 requires",
                           dia_ns_collection_name(coll));
        s->refusal_certain = true; /* our own judgement: no server involved */
        return DIA_ERR_PERMANENT;
    }
    char *text = json_dumps(doc, NS_JSON_FLAGS);
    if (!text)
        return DIA_ERR_NOMEM;
    for (int attempt = 0;; attempt++) {
        rc = ensure_jwt(s);
        if (rc != DIA_OK)
            break;
        struct dia_http_response res;
        rc = request(s, "POST", path, NULL, text, &res);
        bool expired = rc == DIA_OK && res.status == 401 && attempt == 0;
        struct ns_call call = {.what = what, .path = path, .documents = true};
        rc = classify(s, rc, &res, &call);
        if (rc == DIA_OK && !dia_ns_v3_stored(res.body, res.body_len, res.status)) {
            /* v1 has its JSON list, v3 its {status, identifier}: a 2xx
             * without it came from something else (a captive portal, a
             * proxy's page), and nothing may be stored */
            dia_instance_error(s->in,
                               "%s: the answer was not Nightscout's (no identifier of a stored "
                               "document); is a proxy or login page in the way?",
                               what);
            rc = DIA_ERR_TRANSIENT;
        } else if (rc == DIA_OK) {
            s->accepted = true;
        }
        dia_http_response_free(&res);
        if (!expired)
            break;
        /* the JWT may have expired early (server restart, new key): once more */
        wipe_free(s->bearer_header);
        s->bearer_header = NULL;
    }
    free(text);
    return rc;
}

static int send_v3(struct ns_sink *s, const struct dia_record *recs, size_t n, size_t *acked)
{
    for (size_t i = 0; i < n; i++) {
        if (dia_instance_stopping(s->in))
            return DIA_ERR_STOPPING;
        if (!dia_ns_from_nightscout(&recs[i])) {
            struct dia_ns_doc docs[DIA_NS_MAX_DOCS];
            int nd = dia_ns_documents(&recs[i], docs);
            if (nd < 0)
                return nd;
            int rc = DIA_OK;
            for (int k = 0; k < nd && rc == DIA_OK; k++)
                rc = post_v3(s, docs[k].coll, docs[k].doc);
            dia_ns_docs_free(docs, nd);
            if (rc != DIA_OK)
                return rc;
        }
        *acked = i + 1;
    }
    return DIA_OK;
}

/* ---- refusals ------------------------------------------------------------- */

/*
 * A 400 (or 413, 422) to a POST of documents, split down to record `bad`:
 * is it Nightscout refusing that record, to be dead-lettered, or something
 * in the way refusing everything, such as nginx's "The plain HTTP request
 * was sent to HTTPS port" page for an http:// address?  Dead-lettering is
 * final for the user (the record never reaches Nightscout unless someone
 * retries it by hand), so it needs evidence that the refusal is about this
 * record:
 *   - the answer is Nightscout's own error document (a JSON object with
 *     the status and a message, dia_ns_is_nightscout_error): Nightscout
 *     read the documents and judged them; or
 *   - the same site stored other documents of ours during this delivery:
 *     it accepts documents, so it is this one it refuses.  When nothing was
 *     stored yet (the bad record came first), the next records are tried
 *     alone until one gets an answer; they are sent again in order later,
 *     which deduplication absorbs.
 * Without either, the site refuses whatever we send: a configuration error
 * that says what to check, retried slowly, with nothing dead-lettered.
 */
static int judge_refusal(struct ns_sink *s, const struct dia_record *recs, size_t n, size_t bad)
{
    if (s->refusal_certain || s->accepted)
        return DIA_ERR_PERMANENT;
    char reason[sizeof s->in->last_error], excerpt[sizeof s->refusal_excerpt];
    long status = s->refusal_status;
    snprintf(reason, sizeof reason, "%s", s->in->last_error);
    snprintf(excerpt, sizeof excerpt, "%s", s->refusal_excerpt);
    for (size_t i = bad + 1; i < n && !s->accepted; i++) {
        if (dia_instance_stopping(s->in))
            return DIA_ERR_STOPPING;
        size_t acked = 0;
        /* a record with no Nightscout form sends nothing and answers DIA_OK */
        int rc = s->v3 ? send_v3(s, recs + i, 1, &acked) : post_range_v1(s, i, i + 1);
        if (rc == DIA_ERR_PERMANENT)
            break; /* refused as well; refusal_certain says by whom */
        if (rc != DIA_OK)
            return rc; /* the site failed otherwise; that error stands */
    }
    if (s->accepted || s->refusal_certain) {
        dia_instance_error(s->in, "%s", reason);
        return DIA_ERR_PERMANENT;
    }
    dia_instance_error(
        s->in,
        "every request is refused (HTTP %ld, not by Nightscout: \"%.64s\"); " NS_CHECK_ADDRESS
        "; no record was dead-lettered",
        status, excerpt);
    return DIA_ERR_CONFIG;
}

/* ---- driver methods ------------------------------------------------------- */

static bool loopback_host(const char *url)
{
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    return strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost", 9) == 0 ||
           strncmp(h, "[::1]", 5) == 0;
}

static void ns_free(struct ns_sink *s)
{
    if (!s)
        return;
    dia_http_free(s->http);
    wipe_free(s->token);
    wipe_free(s->bearer_header);
    explicit_bzero(s->secret_header, sizeof s->secret_header);
    free(s);
}

/*
 * The site's address and the credentials the options must hold: pure, so
 * that the start-up check and open() share it.  base gets
 * scheme://host[:port][/subpath] without a trailing slash.
 */
static int ns_settings(const struct dia_options *o, char *base, size_t base_len, char *why,
                       size_t why_len)
{
    const char *target = o->target;
    struct dia_url u;
    char url_why[160];
    if (!target) {
        snprintf(why, why_len, "give the Nightscout address as nightscout+https://HOST[/subpath]");
        return DIA_ERR_CONFIG;
    }
    if (dia_url_split(target, &u, url_why, sizeof url_why) != DIA_OK) {
        snprintf(why, why_len,
                 "cannot read the Nightscout address: %s; write "
                 "nightscout+https://HOST[:PORT][/subpath]",
                 url_why);
        return DIA_ERR_CONFIG;
    }
    bool https = u.scheme_len == 5 && strncmp(u.scheme, "https", 5) == 0;
    bool http = u.scheme_len == 4 && strncmp(u.scheme, "http", 4) == 0;
    if (!https && !http) {
        snprintf(why, why_len,
                 "the Nightscout address must start with https:// (or http://), as in "
                 "nightscout+https://HOST[/subpath]");
        return DIA_ERR_CONFIG;
    }
    if (u.query || u.fragment) {
        /* Nightscout's links carry ?token=…; the query would be dropped */
        snprintf(why, why_len,
                 "the Nightscout address must not contain ?… or #…: give an access token as "
                 "token-file= (or token=), and the address as https://HOST[/subpath]");
        return DIA_ERR_CONFIG;
    }
    size_t tl = strlen(target);
    while (tl && target[tl - 1] == '/')
        tl--;
    if (tl >= base_len) {
        snprintf(why, why_len, "the Nightscout address is too long");
        return DIA_ERR_CONFIG;
    }
    memcpy(base, target, tl);
    base[tl] = '\0';
    const char *secret = dia_opt_str(o, "api-secret", NULL);
    const char *token = dia_opt_str(o, "token", NULL);
    if ((!secret || !secret[0]) && (!token || !token[0])) {
        snprintf(why, why_len,
                 "Nightscout needs api-secret= (or api-secret-file=) or token= (or token-file=) "
                 "to accept uploads");
        return DIA_ERR_CONFIG;
    }
    if (strcmp(dia_opt_str(o, "api", "v1"), "v3") == 0 && (!token || !token[0])) {
        snprintf(why, why_len,
                 "Nightscout API v3 accepts only access tokens: give token= (made in Admin "
                 "Tools) or use api=v1 with api-secret=");
        return DIA_ERR_CONFIG;
    }
    return DIA_OK;
}

static int ns_check(const struct dia_options *o, char *why, size_t why_len)
{
    char base[sizeof((struct ns_sink *)0)->base];
    return ns_settings(o, base, sizeof base, why, why_len);
}

static int ns_open(struct dia_instance *in)
{
    struct ns_sink *s = calloc(1, sizeof *s);
    if (!s)
        return DIA_ERR_NOMEM;
    s->in = in;
    char why[400];
    if (ns_settings(in->opts, s->base, sizeof s->base, why, sizeof why) != DIA_OK) {
        dia_instance_error(in, "%s", why);
        ns_free(s);
        return DIA_ERR_CONFIG;
    }
    const char *secret = dia_opt_str(in->opts, "api-secret", NULL);
    const char *token = dia_opt_str(in->opts, "token", NULL);
    s->v3 = strcmp(dia_opt_str(in->opts, "api", "v1"), "v3") == 0;
    if (secret && secret[0]) {
        char hash[41];
        if (dia_ns_secret_hash(secret, hash) != DIA_OK) {
            ns_free(s);
            return DIA_ERR_NOMEM;
        }
        snprintf(s->secret_header, sizeof s->secret_header, "api-secret: %s", hash);
        explicit_bzero(hash, sizeof hash);
        s->has_secret = true;
        if (strlen(secret) < 12 && strlen(secret) != 40)
            dia_warn(in->name, "the api-secret is shorter than 12 characters; Nightscout refuses "
                               "such an API_SECRET, so it is probably not the right one");
    }
    if (token && token[0]) {
        s->token_raw = token;
        s->token = url_encode(token);
        if (!s->token) {
            ns_free(s);
            return DIA_ERR_NOMEM;
        }
    }
    s->tls.insecure = dia_opt_bool(in->opts, "insecure", false);
    s->tls.ca_file = dia_opt_str(in->opts, "ca-file", NULL);
    s->timeout_ms = (long)dia_opt_duration(in->opts, "timeout", 60) * 1000;
    char where[200];
    dia_http_url_for_log(s->base, where, sizeof where);
    if (s->tls.insecure)
        dia_warn(in->name,
                 "insecure: the TLS certificate of %s is NOT verified; anyone in the path can "
                 "read the secret and your data. Use ca-file= for a private CA instead",
                 where);
    if (strncmp(s->base, "http://", 7) == 0 && !loopback_host(s->base))
        dia_warn(in->name, "%s is plain http: the secret and your data travel unencrypted", where);
    if (dia_http_new(&s->http) != DIA_OK) {
        ns_free(s);
        return DIA_ERR_NOMEM;
    }
    dia_info(in->name, "uploading to %s with API %s (%s)", where, s->v3 ? "v3" : "v1",
             s->has_secret && s->token ? "api-secret and token"
             : s->has_secret           ? "api-secret"
                                       : "token");
    in->priv = s;
    return DIA_OK;
}

static int ns_send(struct dia_instance *in, const struct dia_record *recs, size_t n, size_t *acked)
{
    struct ns_sink *s = in->priv;
    *acked = 0;
    s->recs = recs;
    s->accepted = s->refusal_certain = false;
    s->refusal_status = 0;
    s->refusal_excerpt[0] = '\0';
    int rc =
        s->v3 ? send_v3(s, recs, n, acked) : dia_ns_deliver_split(post_range_v1, s, 0, n, acked);
    if (rc == DIA_ERR_PERMANENT && *acked < n)
        rc = judge_refusal(s, recs, n, *acked);
    s->recs = NULL;
    if (rc == DIA_ERR_STOPPING)
        rc = DIA_ERR_TRANSIENT;
    return rc;
}

static void ns_close(struct dia_instance *in)
{
    ns_free(in->priv);
    in->priv = NULL;
}

const struct dia_sink_driver dia_sink_nightscout = {
    .name = "nightscout",
    .description = "Nightscout (cgm-remote-monitor): entries, treatments and devicestatus",
    .target_help = "https://HOST[:PORT][/SUBPATH] of the Nightscout site",
    .options = nightscout_options,
    .default_batch = 500,
    .check = ns_check,
    .open = ns_open,
    .send = ns_send,
    .close = ns_close,
    /* None: api=v1 and api=v3 are two ways into the same site's
     * collections, so switching keeps the cursor; the site is the target. */
    .destination_options = NULL,
};
