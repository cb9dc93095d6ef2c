/*
 * libcurl behind a small, synchronous interface.  See http.h.
 *
 * Redirects: libcurl's own FOLLOWLOCATION would happily follow a Location
 * to another host, handing it our api-secret header.  We follow by hand,
 * only when scheme, host and port stay the same.
 */
#include "io/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

struct dia_http {
    CURL *curl;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int dia_http_new(struct dia_http **out)
{
    pthread_once(&global_once, global_init);
    struct dia_http *h = calloc(1, sizeof *h);
    if (!h || !(h->curl = curl_easy_init())) {
        free(h);
        return DIA_ERR_NOMEM;
    }
    *out = h;
    return DIA_OK;
}

void dia_http_free(struct dia_http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    free(h);
}

void dia_http_response_free(struct dia_http_response *res)
{
    free(res->body);
    free(res->location);
    res->body = NULL;
    res->location = NULL;
    res->body_len = 0;
}

struct grow {
    char *buf;
    size_t len, cap;
    bool oom;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct grow *g = arg;
    size_t add = size * n;
    /* A server that streams gigabytes at us is not an API we talk to. */
    if (g->len + add + 1 > (64u << 20))
        return 0;
    if (g->len + add + 1 > g->cap) {
        size_t cap = g->cap ? g->cap : 4096;
        while (cap < g->len + add + 1)
            cap *= 2;
        char *nb = realloc(g->buf, cap);
        if (!nb) {
            g->oom = true;
            return 0;
        }
        g->buf = nb;
        g->cap = cap;
    }
    memcpy(g->buf + g->len, data, add);
    g->len += add;
    g->buf[g->len] = '\0';
    return add;
}

void dia_http_url_for_log(const char *url, char *buf, size_t len)
{
    const char *scheme_end = strstr(url, "://");
    const char *host = scheme_end ? scheme_end + 3 : url;
    const char *path = host + strcspn(host, "/?#");
    const char *at = memchr(host, '@', (size_t)(path - host));
    if (at)
        host = at + 1;
    size_t path_len = strcspn(path, "?#");
    snprintf(buf, len, "%.*s%.*s%.*s", scheme_end ? (int)(scheme_end + 3 - url) : 0, url,
             (int)(path - host), host, (int)path_len, path);
}

/* scheme://host:port prefix, for the same-origin redirect check */
static size_t origin_len(const char *url)
{
    const char *s = strstr(url, "://");
    if (!s)
        return 0;
    return (size_t)(s + 3 - url) + strcspn(s + 3, "/?#");
}

static bool same_origin(const char *a, const char *b)
{
    size_t la = origin_len(a), lb = origin_len(b);
    return la && la == lb && strncasecmp(a, b, la) == 0;
}

int dia_http_status_class(long status)
{
    if (status >= 200 && status < 300)
        return DIA_OK;
    if (status == 401 || status == 403)
        return DIA_ERR_AUTH;
    if (status == 408 || status == 425 || status == 429 || status >= 500)
        return DIA_ERR_TRANSIENT;
    if (status >= 400 && status < 500)
        return DIA_ERR_PERMANENT;
    return DIA_ERR_TRANSIENT;
}

static int classify_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return DIA_ERR_TIMEOUT;
    case CURLE_OUT_OF_MEMORY:
        return DIA_ERR_NOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
        return DIA_ERR_CONFIG;
    default:
        return DIA_ERR_TRANSIENT;
    }
}

static int do_once(struct dia_http *h, const struct dia_http_request *req, const char *url,
                   struct dia_http_response *res)
{
    CURL *c = h->curl;
    curl_easy_reset(c);
    struct grow body = {0};
    struct curl_slist *headers = NULL;
    for (const char *const *hp = req->headers; hp && *hp; hp++) {
        struct curl_slist *n = curl_slist_append(headers, *hp);
        if (!n) {
            curl_slist_free_all(headers);
            return DIA_ERR_NOMEM;
        }
        headers = n;
    }
    /* No "Expect: 100-continue" round trip for our small POSTs. */
    struct curl_slist *n = curl_slist_append(headers, "Expect:");
    if (n)
        headers = n;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* we are multi-threaded */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 30000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "diabridge/" DIA_VERSION);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, ""); /* whatever libcurl can decode */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, req->tls.insecure ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, req->tls.insecure ? 0L : 2L);
    if (req->tls.ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, req->tls.ca_file);
    if (req->tls.cert_file)
        curl_easy_setopt(c, CURLOPT_SSLCERT, req->tls.cert_file);
    if (req->tls.key_file)
        curl_easy_setopt(c, CURLOPT_SSLKEY, req->tls.key_file);
    const char *method = req->method ? req->method : "GET";
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (req->body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);

    CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    res->body = body.buf ? body.buf : strdup("");
    res->body_len = body.len;
    if (body.oom || !res->body)
        return DIA_ERR_NOMEM;
    char where[160];
    dia_http_url_for_log(url, where, sizeof where);
    if (cc != CURLE_OK) {
        /* curl's message may quote the URL; print only our redacted form */
        const char *why = curl_easy_strerror(cc);
        if (cc == CURLE_PEER_FAILED_VERIFICATION)
            snprintf(res->error, sizeof res->error,
                     "%s: the server's TLS certificate could not be verified (set ca-file= for a "
                     "private CA)",
                     where);
        else
            snprintf(res->error, sizeof res->error, "%s: %s", where, why);
        return classify_curl(cc);
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
    if (res->status >= 300 && res->status < 400) {
        char *loc = NULL;
        curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc);
        if (loc)
            res->location = strdup(loc);
    }
    if (res->status >= 400)
        snprintf(res->error, sizeof res->error, "%s: HTTP %ld", where, res->status);
    return DIA_OK;
}

int dia_http_do(struct dia_http *h, const struct dia_http_request *req,
                struct dia_http_response *res)
{
    memset(res, 0, sizeof *res);
    char *url = strdup(req->url);
    if (!url)
        return DIA_ERR_NOMEM;
    int rc;
    for (int hops = 0;; hops++) {
        rc = do_once(h, req, url, res);
        if (rc != DIA_OK || !res->location || hops >= req->max_same_host_redirects)
            break;
        if (!same_origin(url, res->location)) {
            char where[160];
            dia_http_url_for_log(res->location, where, sizeof where);
            snprintf(res->error, sizeof res->error,
                     "HTTP %ld redirect to another host (%s) not followed", res->status, where);
            break;
        }
        free(url);
        url = res->location;
        res->location = NULL;
        dia_http_response_free(res);
        memset(res, 0, sizeof *res);
    }
    free(url);
    return rc;
}
