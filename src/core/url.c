/*
 * URL parts and display forms.  See url.h.
 */
#include "core/url.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

static bool is_scheme_char(char c)
{
    return isalnum((unsigned char)c) || c == '+' || c == '-' || c == '.';
}

/* Length of SCHEME when s[0..n) starts with SCHEME://, else 0 (RFC 3986:
 * a letter, then letters, digits, + - .). */
static size_t scheme_len(const char *s, size_t n)
{
    if (n == 0 || !isalpha((unsigned char)s[0]))
        return 0;
    size_t i = 1;
    while (i < n && is_scheme_char(s[i]))
        i++;
    return i + 3 <= n && memcmp(s + i, "://", 3) == 0 ? i : 0;
}

/* Length of the leading run of s[0..n) that holds none of stop. */
static size_t span_until(const char *s, size_t n, const char *stop)
{
    size_t i = 0;
    while (i < n && !strchr(stop, s[i]))
        i++;
    return i;
}

/* The last '@' of an authority ends its userinfo: a password may hold '@'. */
static const char *last_at(const char *s, size_t n)
{
    const char *at = NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '@')
            at = s + i;
    }
    return at;
}

static int refuse(char *why, size_t why_len, const char *reason)
{
    snprintf(why, why_len, "%s", reason);
    return DIA_ERR_CONFIG;
}

int dia_url_split(const char *url, struct dia_url *u, char *why, size_t why_len)
{
    memset(u, 0, sizeof *u);
    u->port = -1;
    size_t n = strlen(url);
    size_t sl = scheme_len(url, n);
    if (!sl)
        return refuse(why, why_len, "it does not start with SCHEME:// (such as https://)");
    u->scheme = url;
    u->scheme_len = sl;
    const char *auth = url + sl + 3;
    const char *rest = auth + span_until(auth, strlen(auth), "/?#");
    const char *at = last_at(auth, (size_t)(rest - auth));
    const char *hp = auth;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        u->user = auth;
        u->user_len = (size_t)((colon ? colon : at) - auth);
        if (colon) {
            u->password = colon + 1;
            u->password_len = (size_t)(at - colon - 1);
        }
        hp = at + 1;
    }
    const char *port = NULL;
    if (*hp == '[') {
        const char *close = memchr(hp, ']', (size_t)(rest - hp));
        if (!close)
            return refuse(why, why_len, "the ] that closes the IPv6 address is missing");
        u->host = hp + 1;
        u->host_len = (size_t)(close - hp - 1);
        if (close + 1 < rest) {
            if (close[1] != ':')
                return refuse(why, why_len, "only :PORT may follow the ] of an IPv6 address");
            port = close + 2;
        }
    } else {
        const char *colon = memchr(hp, ':', (size_t)(rest - hp));
        u->host = hp;
        u->host_len = (size_t)((colon ? colon : rest) - hp);
        if (colon)
            port = colon + 1;
    }
    if (u->host_len == 0)
        return refuse(why, why_len, "the host name is missing");
    for (size_t i = 0; i < u->host_len; i++) {
        unsigned char c = (unsigned char)u->host[i];
        if (c <= ' ' || c >= 0x7f || strchr("\"<>\\^`{|}", c))
            return refuse(why, why_len,
                          "the host name holds a space or a character no host name has");
    }
    if (port) {
        size_t plen = (size_t)(rest - port);
        long v = 0;
        bool ok = plen > 0 && plen <= 5;
        for (size_t i = 0; ok && i < plen; i++) {
            if (!isdigit((unsigned char)port[i]))
                ok = false;
            else
                v = v * 10 + (port[i] - '0');
        }
        if (!ok || v < 1 || v > 65535)
            return refuse(why, why_len, "the port must be a number from 1 to 65535");
        u->port = (int)v;
    }
    u->path = rest;
    u->path_len = span_until(rest, strlen(rest), "?#");
    const char *p = rest + u->path_len;
    if (*p == '?') {
        u->query = p + 1;
        u->query_len = span_until(u->query, strlen(u->query), "#");
        p = u->query + u->query_len;
    }
    if (*p == '#') {
        u->fragment = p + 1;
        u->fragment_len = strlen(u->fragment);
    }
    return DIA_OK;
}

bool dia_url_param_is_secret(const char *name, size_t len)
{
    static const char *const parts[] = {"token", "secret", "pass",    "pwd", "key",
                                        "auth",  "sig",    "session", "jwt", "cred"};
    if ((len == 1 && tolower((unsigned char)name[0]) == 'p') ||
        (len == 2 && strncasecmp(name, "pw", 2) == 0))
        return true;
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
        size_t pl = strlen(parts[k]);
        for (size_t i = 0; i + pl <= len; i++) {
            if (strncasecmp(name + i, parts[k], pl) == 0)
                return true;
        }
    }
    return false;
}

/* An output buffer that truncates: only pieces already judged safe are
 * put, so a cut never reveals anything. */
struct out {
    char *buf;
    size_t len, used;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len == 0)
        return;
    size_t room = o->len - 1 - o->used;
    if (n > room)
        n = room;
    memcpy(o->buf + o->used, s, n);
    o->used += n;
    o->buf[o->used] = '\0';
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* A path, with the one credential that travels in a path redacted:
 * Nightscout exchanges an access token for a bearer token at
 * /api/v2/authorization/request/TOKEN. */
static void put_path(struct out *o, const char *p, size_t n)
{
    static const char marker[] = "/authorization/request/";
    const size_t ml = sizeof marker - 1;
    for (size_t i = 0; i + ml <= n; i++) {
        if (strncasecmp(p + i, marker, ml) != 0)
            continue;
        put(o, p, i + ml);
        size_t tl = span_until(p + i + ml, n - i - ml, "/");
        if (tl > 0)
            put_str(o, DIA_REDACTED);
        put(o, p + i + ml + tl, n - i - ml - tl);
        return;
    }
    put(o, p, n);
}

/* The display form of s[0..n). */
static void display(const char *s, size_t n, struct out *o)
{
    size_t i = 0;
    size_t sl = scheme_len(s, n);
    if (sl) {
        put(o, s, sl + 3);
        const char *auth = s + sl + 3;
        size_t alen = span_until(auth, n - sl - 3, "/?#");
        const char *at = last_at(auth, alen);
        if (at) {
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            if (colon)
                put(o, auth, (size_t)(colon + 1 - auth)); /* the user name helps; keep it */
            put_str(o, DIA_REDACTED);
            put(o, at, (size_t)(auth + alen - at));
        } else {
            put(o, auth, alen);
        }
        i = sl + 3 + alen;
    }
    size_t plen = span_until(s + i, n - i, "?#");
    put_path(o, s + i, plen);
    i += plen;
    /* query and fragment, one parameter at a time */
    while (i < n) {
        put(o, s + i, 1); /* the separator: ? # & ; */
        i++;
        size_t tl = span_until(s + i, n - i, "?#&;");
        const char *eq = memchr(s + i, '=', tl);
        if (eq && dia_url_param_is_secret(s + i, (size_t)(eq - (s + i)))) {
            put(o, s + i, (size_t)(eq + 1 - (s + i)));
            put_str(o, DIA_REDACTED);
        } else {
            put(o, s + i, tl);
        }
        i += tl;
    }
}

void dia_url_display(const char *url, char *buf, size_t len)
{
    struct out o = {buf, len, 0};
    if (len)
        buf[0] = '\0';
    display(url, strlen(url), &o);
}

/* Where a URL quoted in a sentence ends. */
static bool ends_url(char c)
{
    return isspace((unsigned char)c) || strchr("\"'`<>()", c);
}

void dia_text_redact_urls(const char *text, char *buf, size_t len)
{
    struct out o = {buf, len, 0};
    if (len)
        buf[0] = '\0';
    size_t n = strlen(text), plain = 0, i = 0;
    while (i < n) {
        size_t sl = 0;
        if (i == 0 || !is_scheme_char(text[i - 1]))
            sl = scheme_len(text + i, n - i);
        if (!sl) {
            i++;
            continue;
        }
        put(&o, text + plain, i - plain);
        size_t end = i + sl + 3;
        while (end < n && !ends_url(text[end]))
            end++;
        display(text + i, end - i, &o);
        i = plain = end;
    }
    put(&o, text + plain, n - plain);
}
