/* The simulators' HTTP server; see httpd.h. */
#include "sim/httpd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY (32u << 20)

struct sim_httpd {
    int fd;
    int port;
    sim_http_handler handler;
    void *ctx;
    pthread_mutex_t lock;
};

struct conn {
    struct sim_httpd *h;
    int fd;
};

const char *sim_http_header(const struct sim_http_request *req, const char *name)
{
    for (int i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    }
    return NULL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool sim_http_query(const struct sim_http_request *req, const char *name, char *buf, size_t len)
{
    size_t nlen = strlen(name);
    const char *p = req->query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t o = 0;
            for (const char *v = p + nlen + 1; v < p + plen && o + 1 < len; v++) {
                if (*v == '%' && v + 2 < p + plen + 1 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    buf[o++] = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 2;
                } else {
                    buf[o++] = *v == '+' ? ' ' : *v;
                }
            }
            buf[o] = '\0';
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

void sim_http_reply(struct sim_http_response *res, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    free(res->body);
    res->status = status;
    res->body = n >= 0 ? text : NULL;
    res->body_len = n >= 0 ? (size_t)n : 0;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 413:
        return "Payload Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

/* Parse one request from buf[0..len); returns bytes consumed, 0 if more data
 * is needed, -1 if malformed. */
static long parse_request(char *buf, size_t len, struct sim_http_request *req)
{
    char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return len > 65536 ? -1 : 0;
    size_t head_len = (size_t)(end - buf) + 4;
    /* Wait for the whole body before parsing: parsing writes NULs into the
     * header, so it must run only once per request. */
    for (const char *h = memmem(buf, head_len, "\r\n", 2); h && h < end;
         h = memmem(h + 2, (size_t)(end - h), "\r\n", 2)) {
        if (strncasecmp(h + 2, "Content-Length:", 15) == 0) {
            unsigned long want = strtoul(h + 17, NULL, 10);
            if (want <= MAX_BODY && len < head_len + want)
                return 0;
            break;
        }
    }
    char *line = buf;
    char *eol = memmem(line, head_len, "\r\n", 2);
    *eol = '\0';
    if (sscanf(line, "%15s %2047s", req->method, req->target) != 2)
        return -1;
    snprintf(req->path, sizeof req->path, "%s", req->target);
    char *q = strchr(req->path, '?');
    if (q)
        *q = '\0';
    q = strchr(req->target, '?');
    req->query = q ? q + 1 : "";
    req->nheaders = 0;
    size_t content_length = 0;
    for (char *h = eol + 2; h < end;) {
        char *he = memmem(h, (size_t)(end + 2 - h), "\r\n", 2);
        if (!he)
            break;
        *he = '\0';
        char *colon = strchr(h, ':');
        if (colon && req->nheaders < SIM_HTTP_MAX_HEADERS) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            snprintf(req->headers[req->nheaders].name, sizeof req->headers[0].name, "%s", h);
            snprintf(req->headers[req->nheaders].value, sizeof req->headers[0].value, "%s", v);
            if (strcasecmp(h, "Content-Length") == 0)
                content_length = strtoul(v, NULL, 10);
            if (strcasecmp(h, "Transfer-Encoding") == 0)
                return -1; /* our clients always send Content-Length */
            req->nheaders++;
        }
        h = he + 2;
    }
    if (content_length > MAX_BODY)
        return -1;
    if (len < head_len + content_length)
        return 0;
    req->body = malloc(content_length + 1);
    if (!req->body)
        return -1;
    memcpy(req->body, buf + head_len, content_length);
    req->body[content_length] = '\0';
    req->body_len = content_length;
    return (long)(head_len + content_length);
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    struct sim_http_request *req = calloc(1, sizeof *req);
    while (buf && req) {
        long used = 0;
        if (len)
            used = parse_request(buf, len, req);
        if (used < 0)
            break;
        if (used == 0) {
            if (len + 4096 > cap) {
                if (cap >= MAX_BODY + 65536)
                    break;
                char *nb = realloc(buf, cap * 2);
                if (!nb)
                    break;
                buf = nb;
                cap *= 2;
            }
            ssize_t r = recv(c->fd, buf + len, cap - len, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            len += (size_t)r;
            continue;
        }
        struct sim_http_response res = {.status = 200};
        snprintf(res.content_type, sizeof res.content_type, "application/json");
        pthread_mutex_lock(&c->h->lock);
        c->h->handler(c->h->ctx, req, &res);
        pthread_mutex_unlock(&c->h->lock);
        free(req->body);
        req->body = NULL;
        memmove(buf, buf + used, len - (size_t)used);
        len -= (size_t)used;
        if (res.delay_ms > 0) {
            struct timespec ts = {res.delay_ms / 1000, (res.delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (res.drop) {
            free(res.body);
            break;
        }
        char head[1024];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                         res.status, reason(res.status), res.content_type, res.body_len,
                         res.extra_headers);
        bool ok = send_all(c->fd, head, (size_t)n) &&
                  (!res.body_len || send_all(c->fd, res.body, res.body_len));
        free(res.body);
        if (!ok)
            break;
    }
    if (req)
        free(req->body);
    free(req);
    free(buf);
    close(c->fd);
    free(c);
    return NULL;
}

struct sim_httpd *sim_httpd_start(int port, sim_http_handler handler, void *ctx, char *err,
                                  size_t errlen)
{
    struct sim_httpd *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only, always */
    socklen_t alen = sizeof a;
    if (h->fd < 0 || bind(h->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(h->fd, 64) != 0 ||
        getsockname(h->fd, (struct sockaddr *)&a, &alen) != 0) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
        if (h->fd >= 0)
            close(h->fd);
        free(h);
        return NULL;
    }
    h->port = ntohs(a.sin_port);
    h->handler = handler;
    h->ctx = ctx;
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

int sim_httpd_port(const struct sim_httpd *h)
{
    return h->port;
}

void sim_httpd_run(struct sim_httpd *h, volatile sig_atomic_t *stop)
{
    while (!*stop) {
        struct pollfd p = {.fd = h->fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int fd = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        /* Header and body go out in two writes; without this, Nagle holds
         * the body until the client's delayed ACK (~40 ms per request). */
        int nodelay = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
        struct conn *c = malloc(sizeof *c);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (!c) {
            close(fd);
        } else {
            c->h = h;
            c->fd = fd;
            if (pthread_create(&t, &attr, conn_main, c) != 0) {
                close(fd);
                free(c);
            }
        }
        pthread_attr_destroy(&attr);
    }
}

void sim_httpd_close(struct sim_httpd *h)
{
    if (!h)
        return;
    close(h->fd);
    /* connection threads may still run; the process is about to exit */
}

/* Set by SIGTERM or SIGINT; at file scope because a signal handler can reach
 * nothing else. */
static volatile sig_atomic_t serve_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    serve_stop = 1;
}

int sim_httpd_serve(const char *who, int port, sim_http_handler handler, void *ctx,
                    const char *banner)
{
    char err[256];
    struct sim_httpd *h = sim_httpd_start(port, handler, ctx, err, sizeof err);
    if (!h) {
        fprintf(stderr, "%s: %s\n", who, err);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("http://127.0.0.1:%d\n", sim_httpd_port(h));
    fflush(stdout);
    if (banner)
        fprintf(stderr, "%s: %s\n", who, banner);
    sim_httpd_run(h, &serve_stop);
    sim_httpd_close(h);
    /* Connection threads may still be inside a handler, using the server
     * (sim_httpd_close cannot free it) and the simulator's state.  Both die
     * with the process.  exit() would run exit handlers under those threads'
     * feet, and under ASan report the state as leaked; _exit skips them. */
    fflush(stdout);
    _exit(0);
}
