/*
 * URLs in driver targets: their parts, and the form in which a person may
 * see them.
 *
 * A target can carry a credential: `mqtt://user:password@broker`, or a
 * parameter such as `https://ns.example.org/?token=…` copied from a
 * Nightscout link.  Everything that shows a target or a URL to a person
 * (option descriptions, error messages, the log, `status`) goes through
 * dia_url_display(), which keeps what helps to find a mistake (scheme, user
 * name, host, port, path, harmless parameters) and replaces the rest with
 * <redacted>:
 *
 *   - the password of `user:password@`; userinfo without a colon is
 *     redacted whole, since a bare `TOKEN@host` is a credential too;
 *   - the value of every query or fragment parameter whose name looks like
 *     a credential (dia_url_param_is_secret);
 *   - the path segment after `/authorization/request/`, where Nightscout
 *     takes an access token in the path.
 *
 * Everything here is pure: no I/O, no allocation.
 */
#ifndef DIA_CORE_URL_H
#define DIA_CORE_URL_H

#include <stdbool.h>
#include <stddef.h>

#define DIA_REDACTED "<redacted>"

/* SCHEME://[USER[:PASSWORD]@]HOST[:PORT][/PATH][?QUERY][#FRAGMENT]; every
 * part points into the URL it was split from. */
struct dia_url {
    const char *scheme; /* "https" */
    size_t scheme_len;
    const char *user; /* NULL: no userinfo */
    size_t user_len;
    const char *password; /* NULL: the userinfo has no ':' */
    size_t password_len;
    const char *host; /* without the [] of an IPv6 literal */
    size_t host_len;
    int port;         /* -1: not given */
    const char *path; /* "" or starting with '/' */
    size_t path_len;
    const char *query; /* after '?'; NULL: none */
    size_t query_len;
    const char *fragment; /* after '#'; NULL: none */
    size_t fragment_len;
};

/*
 * Split url into its parts.  DIA_ERR_CONFIG when it is not of the shape
 * above (no SCHEME://, no host, a port that is not 1..65535, a space in the
 * host); then why holds a reason that never quotes the URL, so it may be
 * printed whatever the URL holds.
 */
int dia_url_split(const char *url, struct dia_url *u, char *why, size_t why_len);

/*
 * Whether a query parameter of this name carries a credential: its name
 * contains (ignoring case) token, secret, pass, pwd, key, auth, sig,
 * session, jwt or cred, or is p or pw (InfluxDB 1.x's ?u=&p=).  Redacting a
 * harmless parameter costs little; showing a secret cannot be undone.
 */
bool dia_url_param_is_secret(const char *name, size_t len);

/* The display form of url (see above), truncated to fit buf.  Works on
 * anything, URL-shaped or not: a malformed URL is still redacted. */
void dia_url_display(const char *url, char *buf, size_t len);

/* text with every SCHEME://… inside it in display form: a safety net for
 * free-form sentences (errors) that may quote a URL. */
void dia_text_redact_urls(const char *text, char *buf, size_t len);

#endif
