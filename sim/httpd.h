/*
 * A small HTTP/1.1 server for simulators (Dexcom Share, Nightscout): loopback
 * only, a thread per connection, keep-alive, Content-Length bodies.  Handlers
 * run one at a time (under the server's lock), so simulator state needs no
 * locking of its own.  Not for production use: it exists so the daemon's
 * real HTTP client code can be exercised end to end in tests.
 */
#ifndef DIA_SIM_HTTPD_H
#define DIA_SIM_HTTPD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#define SIM_HTTP_MAX_HEADERS 48

struct sim_http_request {
    char method[16];
    char target[2048]; /* path and query as received */
    char path[2048];   /* without the query */
    const char *query; /* after '?', or "" */
    struct {
        char name[64];
        char value[1024];
    } headers[SIM_HTTP_MAX_HEADERS];
    int nheaders;
    char *body; /* NUL-terminated */
    size_t body_len;
};

struct sim_http_response {
    int status;            /* default 200 */
    char content_type[64]; /* default application/json */
    char *body;            /* malloc'd by the handler; freed by the server */
    size_t body_len;
    char extra_headers[512]; /* "Name: value\r\n…" */
    int delay_ms;            /* sleep before answering (slow-server faults) */
    bool drop;               /* close the connection without answering */
};

typedef void (*sim_http_handler)(void *ctx, const struct sim_http_request *req,
                                 struct sim_http_response *res);

struct sim_httpd;

/* Listen on 127.0.0.1:port (0: any free port).  Returns NULL on failure with
 * a message in err. */
struct sim_httpd *sim_httpd_start(int port, sim_http_handler handler, void *ctx, char *err,
                                  size_t errlen);
int sim_httpd_port(const struct sim_httpd *h);
/* Serve until *stop becomes nonzero (checked every 200 ms). */
void sim_httpd_run(struct sim_httpd *h, volatile sig_atomic_t *stop);
void sim_httpd_close(struct sim_httpd *h);

/* A simulator's whole serving life: listen on 127.0.0.1:port, print the URL on
 * stdout (tests read the port from it), then banner (if not NULL) on stderr
 * after "WHO: ", and serve until SIGTERM or SIGINT.  If it cannot listen it
 * prints "WHO: why" on stderr and returns 1, for main to return.  Otherwise
 * it never returns: the process ends with _exit(0) (see httpd.c for why). */
int sim_httpd_serve(const char *who, int port, sim_http_handler handler, void *ctx,
                    const char *banner);

/* Case-insensitive header lookup; NULL when absent. */
const char *sim_http_header(const struct sim_http_request *req, const char *name);
/* URL-decoded query parameter; true when present. */
bool sim_http_query(const struct sim_http_request *req, const char *name, char *buf, size_t len);
/* Set a response body (copied) with a printf format. */
void sim_http_reply(struct sim_http_response *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
