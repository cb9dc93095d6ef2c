/*
 * HTTP(S) client transport (libcurl), shared by every source and sink that
 * talks to a web API: Dexcom Share, Nightscout, InfluxDB.
 *
 * One dia_http per worker thread (it keeps the connection alive between
 * requests).  TLS verification is on unless the caller sets insecure.
 * Nothing here logs; errors come back as a classified code plus a sentence
 * that never contains the URL's query string or userinfo (tokens live
 * there), nor any request header.
 */
#ifndef DIA_IO_HTTP_H
#define DIA_IO_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct dia_http_tls {
    bool insecure;         /* skip certificate verification (self-signed set-ups) */
    const char *ca_file;   /* PEM bundle for a private CA; NULL: the system's */
    const char *cert_file; /* client certificate (PEM), optional */
    const char *key_file;  /* its key (PEM), optional */
};

struct dia_http_request {
    const char *method; /* "GET", "POST", "PUT", "DELETE" */
    const char *url;
    const char *const *headers; /* "Name: value" strings, NULL-terminated; may be NULL */
    const void *body;
    size_t body_len;
    long timeout_ms;         /* whole request; 0: 30 s */
    long connect_timeout_ms; /* 0: 10 s */
    struct dia_http_tls tls;
    int max_same_host_redirects; /* follow 3xx only to the same scheme+host+port */
};

struct dia_http_response {
    long status; /* HTTP status, 0 when no response arrived */
    char *body;  /* NUL-terminated, malloc'd (may contain NULs before the end) */
    size_t body_len;
    char *location; /* Location header of a 3xx that was not followed, malloc'd */
    char error[400];
};

struct dia_http;

int dia_http_new(struct dia_http **out);
void dia_http_free(struct dia_http *h);

/*
 * Perform a request.  DIA_OK when a response arrived (any status: inspect
 * res->status, or use dia_http_status_class); otherwise
 *   DIA_ERR_TIMEOUT     no answer in time,
 *   DIA_ERR_TRANSIENT   DNS failure, connection refused or reset,
 *   DIA_ERR_CONFIG      TLS verification failed or a bad URL (a person must act),
 *   DIA_ERR_NOMEM.
 * res must be released with dia_http_response_free in every case.
 */
int dia_http_do(struct dia_http *h, const struct dia_http_request *req,
                struct dia_http_response *res);
void dia_http_response_free(struct dia_http_response *res);

/* 2xx → DIA_OK; 401/403 → DIA_ERR_AUTH; 408/425/429/5xx → DIA_ERR_TRANSIENT;
 * other 4xx → DIA_ERR_PERMANENT; anything else → DIA_ERR_TRANSIENT. */
int dia_http_status_class(long status);

/* The URL as it may appear in logs: scheme://host[:port]/path, without
 * userinfo and query string. */
void dia_http_url_for_log(const char *url, char *buf, size_t len);

#endif
