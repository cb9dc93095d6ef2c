/*
 * Source `dexcom-share`: a Dexcom Share follower that survives expiring
 * sessions, outages and wrong passwords.
 *
 * Protocol (shared/specs/dexcom-receiver-usb-and-share.md, "spec"):
 *   - Hosts and application ids per region, spec §4.1: us → share2.dexcom.com,
 *     ous → shareous1.dexcom.com (both d89443d2-…), jp → share.dexcom.jp
 *     (d8665ade-…), under /ShareWebServices/Services/.  url= and
 *     application-id= override them (tests, and the day Dexcom moves hosts).
 *   - Login, spec §4.1: General/AuthenticatePublisherAccount {accountName,
 *     password, applicationId} → the account id (a UUID that never changes:
 *     kept in the journal's source state so later starts skip this step),
 *     then General/LoginPublisherAccountById {accountId, password,
 *     applicationId} → the session id.  An all-zero UUID is a failure
 *     (dexpy used the legacy by-name login's zero UUID forever, §3.3 #1).
 *   - Reads, spec §4.1: Publisher/ReadPublisherLatestGlucoseValues
 *     ?sessionId=…&minutes=1..1440&maxCount=1..288, body {}; JSON array,
 *     newest first.  WT is the time we publish, DT's ±hhmm the UTC offset
 *     (§4.2).  Parsing is in dexcom_share_json.c and proto/dexcom_share.
 *   - Faults, spec §4.3: SessionIdNotFound / SessionNotValid → log in again
 *     (step 2 only) once and retry once (dexpy never did, §3.3 #2);
 *     AccountPasswordInvalid and the SSO_* authentication failures → stop;
 *     SSO_AuthenticateMaxAttemptsExceeded → the account is locked: hours.
 *   - Session life, spec §4.4: about 24 h; renewed here every 8 h as xDrip
 *     does.  Cadence, spec §4.4: about 5 min + 20 s after the last WT, then
 *     a few retries 60 s apart, never faster than once a minute.
 *   - Outages, spec §4.4: 5xx or nothing new; the readings appear later, so
 *     after start-up or any gap we ask for the whole missing window (up to
 *     24 h / 288) in one call.  Once an hour the whole 24 h is read again so
 *     readings the phone uploaded late are picked up too.  Re-reads are free:
 *     record keys come from the account and WT only (DESIGN §3).
 *
 * Pacing during outages.  A 5xx, a timeout, a DNS or TLS failure, an
 * unreadable reply: the poll fails with DIA_ERR_TRANSIENT / DIA_ERR_TIMEOUT,
 * and because the driver table says retries_in_place the supervisor keeps
 * this driver open (and its session) and polls again when share_poll says:
 * 1, 2, 4, then every 5 minutes, each plus up to a quarter more as jitter
 * so that many followers behind one outage spread out.  Every poll makes
 * at most one request while the server fails (a poll stops at the first
 * failed request), so Share sees at most one request a minute during an
 * outage and no login at all while the session lives.  open() makes no
 * request: the first poll logs in, so an outage at start-up is paced the
 * same way.  Only what needs a person (a rejected password, a lock-out, a
 * wrong address, a redirect) goes back to the supervisor, which then waits
 * 30 minutes, or until the time this driver names (wrong passwords below).
 *
 * Wrong passwords.  Dexcom answers a wrong password — and a right password
 * on the wrong region's server — with the same HTTP 500 fault, and every
 * failed login counts toward a lock-out (spec §3.6, §4.3).  So a rejected
 * login is never retried quickly: open() (the gate below) and poll() (the
 * login) return DIA_ERR_AUTH with dia_instance.retry_at_ms set to the time
 * the gate opens again (auth-retry=, 1 h by default), and the supervisor
 * waits until then: exactly one open(), hence at most one login, per wait,
 * and one message, which names the time.  The failure is also written to
 * the journal, with a 16-bit salted fingerprint of the settings, so that a
 * restarted daemon does not try the same password again before auth-retry=
 * has passed unless the settings changed.  (Sixteen bits are enough to
 * notice a change and far too few to help anyone guess the password from
 * the journal.)  A lock-out is kept the same way for SHARE_LOCKOUT_MS,
 * whatever the password.
 *
 * Consolidation (DESIGN §6): record.sensor is sensor= (or patient=) named
 * by proto/dexcom/sensor_group.c, the rule dexcom-usb follows too: a
 * transmitter id, bare or not, becomes "dexcom:<ID>", the group a receiver
 * of that transmitter uses by itself, so the journal merges the two.  Share
 * does not tell which transmitter a reading came from, so without sensor=
 * the group is the account's own id.  device_id is a short hash of the
 * Dexcom account id rather than the id itself, which need not travel to
 * every sink.
 *
 * Test clock: time-scale=N with time-anchor=MS (only with a loopback url=)
 * runs this driver's clock N times faster than the wall clock from MS on,
 * matching `diabridge-sim share-server --speed N --anchor MS`, so that
 * hours of a scenario take seconds.  Every interval above is in that clock.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>

#include "core/clock.h"
#include "core/driver.h"
#include "core/err.h"
#include "core/journal.h"
#include "core/log.h"
#include "core/options.h"
#include "core/record.h"
#include "io/http.h"
#include "proto/dexcom/sensor_group.h"
#include "source/dexcom_share.h"

#define SHARE_DRIVER       "dexcom-share"
#define SHARE_SERVICE_PATH "/ShareWebServices/Services/"
#define SHARE_APP_ID_US    "d89443d2-327c-4a6f-89e5-496bbb0317db" /* spec §4.1, US and OUS */
#define SHARE_APP_ID_JP    "d8665ade-9673-4e27-9ff6-92db4ce13d13" /* spec §4.1, pydexcom #71 */

#define MINUTE_MS            (60LL * 1000)
#define SHARE_READING_MS     (5 * MINUTE_MS) /* one CGM reading every 5 min */
#define SHARE_GRACE_MS       (20LL * 1000)   /* upload latency allowance (spec §4.4: 15–30 s) */
#define SHARE_RETRY_MS       (60LL * 1000)   /* while a reading is late (spec §4.4: 30–60 s) */
#define SHARE_MIN_INTERVAL   (60LL * 1000)   /* never faster (spec §4.4) */
#define SHARE_LATE_RETRIES   4               /* then fall back to the 5-minute rhythm */
#define SHARE_SESSION_RENEW  (8 * 60 * MINUTE_MS) /* xDrip's SESSION_ID_VALIDITY_TIME */
#define SHARE_FULL_REREAD_MS (60 * MINUTE_MS)     /* pick up late uploads */
#define SHARE_LOCKOUT_MS     (6 * 60 * MINUTE_MS) /* "back off for hours" (spec §4.3) */
#define SHARE_BACKOFF_MAX_MS (5 * MINUTE_MS)      /* outage retries: the reading rhythm */
#define SHARE_RENEW_RETRY_MS (30 * MINUTE_MS)     /* a failed renewal: the old session lives on */
#define SHARE_RELOGIN_PAUSE  (30 * MINUTE_MS)     /* a fresh session refused: first pause */
#define SHARE_WINDOW_MARGIN  10                   /* minutes read before the newest WT */
#define SHARE_FEW_MINUTES    10                   /* the smallest window */

static const struct dia_option_spec share_options[] = {
    {.name = "username",
     .type = DIA_OPT_STRING,
     .required = true,
     .help = "the Dexcom account that shares (the publisher): user name, e-mail or phone"},
    {.name = "password",
     .type = DIA_OPT_SECRET,
     .required = true,
     .help = "its password (better: password-file=PATH or password-env=VARIABLE)"},
    {.name = "url",
     .type = DIA_OPT_STRING,
     .help = "server address instead of the region's (https://…; http only on loopback)"},
    {.name = "application-id",
     .type = DIA_OPT_STRING,
     .help = "application id instead of the region's (a UUID)"},
    {.name = "sensor",
     .type = DIA_OPT_STRING,
     .help = "consolidation group: the transmitter id or patient name the receiver source uses"},
    {.name = "patient", .type = DIA_OPT_STRING, .help = "same as sensor="},
    {.name = "auth-retry",
     .type = DIA_OPT_DURATION,
     .default_value = "1h",
     .min = 30 * 60,
     .max = 7 * 86400,
     .help = "after a rejected password, wait this long before trying the same settings again"},
    {.name = "timeout",
     .type = DIA_OPT_DURATION,
     .default_value = "30s",
     .min = 5,
     .max = 300,
     .help = "longest wait for one answer from the server"},
    {.name = "time-scale",
     .type = DIA_OPT_INT,
     .default_value = "1",
     .min = 1,
     .max = 100000,
     .help = "tests only (loopback url=): run the driver's clock this many times faster"},
    {.name = "time-anchor",
     .type = DIA_OPT_INT,
     .default_value = "0",
     .min = 0,
     .max = 4102444800000LL,
     .help = "tests only: the Unix ms from which time-scale applies (the simulator's --anchor)"},
    {0},
};

struct share {
    struct dia_http *http;
    char base[512]; /* ends in '/' */
    char base_log[256];
    char app_id[DEXCOM_SHARE_UUID_LEN + 1];
    const char *username, *password; /* owned by the options */
    char sensor[40];
    char device_id[40];
    char account_id[DEXCOM_SHARE_UUID_LEN + 1];
    char session_id[DEXCOM_SHARE_UUID_LEN + 1];
    int64_t session_ms;    /* driver clock at login */
    int64_t last_wt_ms;    /* newest WT committed to the journal; 0 none */
    int64_t pending_wt_ms; /* newest WT in the batch last polled */
    int64_t last_full_ms;  /* driver clock of the last whole-window read */
    int late_polls;        /* polls since the next reading was due */
    int failures_in_a_row; /* failed polls since the last good one (outage back-off) */
    unsigned jitter_seed;
    int64_t renew_retry_ms; /* driver clock: no renewal before this after one failed */
    /* Sessions refused right after the login (see poll_once): no login for a
     * refused session before relogin_at_ms (driver clock; 0: at once), and
     * the pause that follows the next such refusal. */
    int64_t relogin_at_ms;
    int64_t relogin_pause_ms;
    bool announced;      /* "following …" logged */
    uint64_t account_fp; /* who we log in as, where */
    long long time_scale;
    int64_t time_anchor;
    int64_t auth_retry_ms;
    long timeout_ms;
    bool account_saved; /* the journal holds account_id */
    bool custom_url;    /* url= given: a wrong address is the user's to fix */
};

/* ---- the driver's clock ---------------------------------------------------- */

static int64_t share_now(const struct share *s)
{
    int64_t wall = dia_now_ms();
    if (s->time_scale <= 1)
        return wall;
    return s->time_anchor + (wall - s->time_anchor) * s->time_scale;
}

static int64_t share_to_wall(const struct share *s, int64_t t)
{
    if (s->time_scale <= 1)
        return t;
    return s->time_anchor + (t - s->time_anchor + s->time_scale - 1) / s->time_scale;
}

static void format_local(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M %Z", &tm))
        snprintf(buf, len, "%" PRId64, ms);
}

/* ---- fingerprints and persisted state ---------------------------------------- */

static uint64_t fnv1a(uint64_t h, const char *text)
{
    /* FNV-1a 64 over the text and its terminating NUL, so that fields
     * cannot run into each other. */
    for (const unsigned char *p = (const unsigned char *)text;; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
        if (!*p)
            break;
    }
    return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL

static int state_get(struct dia_instance *src, const char *key, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!src->journal)
        return 0;
    int rc = dia_journal_state_get(src->journal, src->name, key, buf, len);
    if (rc < 0)
        dia_warn(src->name, "cannot read %s from the journal: %s", key,
                 dia_journal_errmsg(src->journal));
    return rc;
}

static int64_t state_get_i64(struct dia_instance *src, const char *key)
{
    char buf[32];
    if (state_get(src, key, buf, sizeof buf) != 1)
        return 0;
    char *end;
    long long v = strtoll(buf, &end, 10);
    return end != buf && !*end ? v : 0;
}

static void state_set(struct dia_instance *src, const char *key, const char *value)
{
    if (src->journal && dia_journal_state_set(src->journal, src->name, key, value) != DIA_OK)
        dia_warn(src->name, "cannot write %s to the journal: %s", key,
                 dia_journal_errmsg(src->journal));
}

static void state_set_i64(struct dia_instance *src, const char *key, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    state_set(src, key, buf);
}

/* The salted 16-bit fingerprint of everything a login depends on. */
static unsigned settings_fp(struct dia_instance *src, const struct share *s, bool create_salt)
{
    char salt[24];
    if (state_get(src, "auth_salt", salt, sizeof salt) != 1 || !salt[0]) {
        if (!create_salt)
            return 0x10000; /* no salt: cannot match any stored fingerprint */
        uint64_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            r = (uint64_t)dia_now_ms() ^ (uint64_t)(uintptr_t)s;
        snprintf(salt, sizeof salt, "%016" PRIx64, r);
        state_set(src, "auth_salt", salt);
    }
    uint64_t h = fnv1a(FNV_OFFSET, salt);
    h = fnv1a(h, s->username);
    h = fnv1a(h, s->base);
    h = fnv1a(h, s->app_id);
    h = fnv1a(h, s->password);
    return (unsigned)((h ^ (h >> 16) ^ (h >> 32) ^ (h >> 48)) & 0xffff);
}

/* ---- errors ------------------------------------------------------------------ */

/*
 * A rejected password, now (rejected_now) or earlier (the gate).  The
 * sentence says when the same settings are tried again, and the supervisor
 * is told that time (retry_at_ms) so that it neither wakes earlier nor
 * announces a wait of its own.  "Restart to try at once" holds only for
 * changed settings (the gate lets a new fingerprint through), so it says so.
 */
static int auth_refusal(struct dia_instance *src, struct share *s, int64_t retry_ms,
                        bool rejected_now)
{
    char when[48];
    src->retry_at_ms = share_to_wall(s, retry_ms);
    format_local(src->retry_at_ms, when, sizeof when);
    dia_instance_error(src,
                       "Dexcom Share rejected %s: wrong password or wrong region (check "
                       "username, password, us/ous/jp). Next try at %s, as failed logins lead "
                       "to a lock-out; to try at once, change the settings and restart diabridge",
                       rejected_now ? "the login" : "these settings earlier", when);
    return DIA_ERR_AUTH;
}

static int auth_rejected(struct dia_instance *src, struct share *s, const char *code)
{
    int64_t now = share_now(s);
    unsigned fp = settings_fp(src, s, true);
    state_set_i64(src, "auth_failed_ms", now);
    state_set_i64(src, "auth_settings", fp);
    dia_err(src->name, "login rejected by %s (%s)", s->base_log, code);
    return auth_refusal(src, s, now + s->auth_retry_ms, true);
}

static int locked_out(struct dia_instance *src, struct share *s, int64_t until_ms, bool earlier)
{
    char until[48];
    src->retry_at_ms = share_to_wall(s, until_ms); /* whatever the password: see login_gate */
    format_local(src->retry_at_ms, until, sizeof until);
    dia_instance_error(src,
                       "Dexcom locked this account after too many failed logins%s. diabridge "
                       "waits until %s; check the password in the Dexcom app meanwhile",
                       earlier ? " (reported earlier)" : "", until);
    return DIA_ERR_AUTH;
}

/* Before any network traffic: is a login allowed now? */
static int login_gate(struct dia_instance *src, struct share *s)
{
    int64_t now = share_now(s);
    int64_t lock_until = state_get_i64(src, "lockout_until_ms");
    char who[24], fp[24];
    snprintf(fp, sizeof fp, "%016" PRIx64, s->account_fp);
    if (lock_until > now && state_get(src, "lockout_account", who, sizeof who) == 1 &&
        strcmp(who, fp) == 0)
        return locked_out(src, s, lock_until, true);
    int64_t failed = state_get_i64(src, "auth_failed_ms");
    if (failed > 0 && now < failed + s->auth_retry_ms && now >= failed) {
        unsigned stored = (unsigned)state_get_i64(src, "auth_settings");
        if (settings_fp(src, s, false) == stored)
            return auth_refusal(src, s, failed + s->auth_retry_ms, false);
        dia_info(src->name, "settings changed since the rejected login; trying again");
    }
    return DIA_OK;
}

/* ---- HTTP -------------------------------------------------------------------- */

struct reply {
    struct dia_http_response res;
    struct dexcom_share_fault_info fault; /* kind NONE unless the server sent one */
};

/*
 * POST one request.  Returns DIA_OK when a 200 arrived; DIA_ERR_DEVICE when
 * the server answered a Share fault (in r->fault) or HTTP 400; otherwise a
 * classified transport/HTTP error with last_error set.
 */
static int share_post(struct dia_instance *src, struct share *s, const char *what,
                      const char *path_query, const char *body, struct reply *r)
{
    memset(r, 0, sizeof *r);
    char url[1024];
    snprintf(url, sizeof url, "%s%s", s->base, path_query);
    static const char *const headers[] = {"Content-Type: application/json",
                                          "Accept: application/json", NULL};
    struct dia_http_request req = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = strlen(body),
        .timeout_ms = s->timeout_ms,
    };
    int rc = dia_http_do(s->http, &req, &r->res);
    explicit_bzero(url, sizeof url); /* the query holds the session id */
    if (rc != DIA_OK) {
        if (rc == DIA_ERR_TIMEOUT)
            atomic_fetch_add(&src->counters.timeouts, 1);
        /* A name that does not resolve is a network outage for the region's
         * own host, but most likely a typo in a url= the user wrote.  Still
         * retried: the network may be what is down.  (http.c passes on
         * curl's wording, "Couldn't resolve host name" or, in newer
         * versions, "Could not resolve hostname".) */
        if (s->custom_url && strcasestr(r->res.error, "resolve host"))
            dia_instance_error(src,
                               "cannot find the server of url= (%s): its name is unknown to DNS; "
                               "check url= for a typo (or remove it to use the region's "
                               "server); retrying later",
                               s->base_log);
        else
            dia_instance_error(src, "cannot reach Dexcom Share (%s): %s; retrying later", what,
                               r->res.error);
        /* TLS trouble (DIA_ERR_CONFIG from http.c; the URL itself was checked
         * at start) is usually a captive portal or a wrong clock: retry. */
        return rc == DIA_ERR_NOMEM ? rc : rc == DIA_ERR_TIMEOUT ? rc : DIA_ERR_TRANSIENT;
    }
    if (r->res.status == 200)
        return DIA_OK;
    if (dexcom_share_parse_fault(r->res.body, r->res.body_len, &r->fault) == DIA_OK) {
        dia_debug(src->name, "%s: HTTP %ld fault %s (%s): %s", what, r->res.status, r->fault.code,
                  dexcom_share_fault_name(r->fault.kind), r->fault.message);
        return DIA_ERR_DEVICE;
    }
    char snip[80];
    dexcom_share_snippet(r->res.body, r->res.body_len, snip, sizeof snip);
    if (r->res.status == 400)
        return DIA_ERR_DEVICE; /* a session id the server does not take (spec §4.3) */
    if (r->res.status >= 300 && r->res.status < 400) {
        /* Share's API never redirects; a server that does is not Share at
         * this address (an http:// address answered by an https redirect,
         * a moved host).  Following it would send the password elsewhere
         * (io/http.c follows same-origin redirects only, and we ask for
         * none), and retrying cannot help: a person must fix the address. */
        char to[96] = "elsewhere";
        if (r->res.location)
            dia_http_url_for_log(r->res.location, to, sizeof to);
        /* the advice first: the addresses may be long */
        dia_instance_error(src,
                           "wrong server address? Check %s. %s answered %s with HTTP %ld, a "
                           "redirect to %s, which diabridge does not follow",
                           s->custom_url ? "url= (or remove it to use the region's server)"
                                         : "the region (us, ous or jp); if Dexcom has moved "
                                           "Share, url= can name the new server",
                           s->base_log, what, r->res.status, to);
        return DIA_ERR_CONFIG;
    }
    if (r->res.status == 404 || r->res.status == 405) {
        dia_instance_error(src,
                           "Dexcom Share answered HTTP %ld to %s at %s: the server address is "
                           "wrong; check the region or url=",
                           r->res.status, what, s->base_log);
        return DIA_ERR_CONFIG;
    }
    dia_instance_error(src, "Dexcom Share server error: HTTP %ld to %s (\"%s\"); retrying later",
                       r->res.status, what, snip);
    return DIA_ERR_TRANSIENT;
}

static void reply_free(struct reply *r)
{
    if (r->res.body)
        explicit_bzero(r->res.body, r->res.body_len);
    dia_http_response_free(&r->res);
}

/* A fault during a login step, turned into the error the supervisor needs. */
static int login_fault(struct dia_instance *src, struct share *s, const char *what,
                       const struct reply *r)
{
    switch (r->fault.kind) {
    case DEXCOM_SHARE_FAULT_AUTH:
        return auth_rejected(src, s, r->fault.code);
    case DEXCOM_SHARE_FAULT_LOCKOUT: {
        int64_t until = share_now(s) + SHARE_LOCKOUT_MS;
        char fp[24];
        snprintf(fp, sizeof fp, "%016" PRIx64, s->account_fp);
        state_set_i64(src, "lockout_until_ms", until);
        state_set(src, "lockout_account", fp);
        dia_err(src->name, "Dexcom reports %s: the account is locked", r->fault.code);
        return locked_out(src, s, until, false);
    }
    case DEXCOM_SHARE_FAULT_ARGUMENT:
        dia_instance_error(src,
                           "Dexcom Share refused the %s request as invalid (%s: %s); check "
                           "username and application-id",
                           what, r->fault.code, r->fault.message);
        return DIA_ERR_CONFIG;
    default:
        if (r->fault.kind == DEXCOM_SHARE_FAULT_NONE)
            dia_instance_error(src, "Dexcom Share answered HTTP %ld to %s; retrying later",
                               r->res.status, what);
        else
            dia_instance_error(src, "Dexcom Share error %s during %s (%s); retrying later",
                               r->fault.code, what, r->fault.message);
        return DIA_ERR_TRANSIENT;
    }
}

/* A login request carrying the password; the body is wiped after use. */
static int login_request(struct dia_instance *src, struct share *s, const char *what,
                         const char *path, const char *id_key, const char *id_value,
                         char out[DEXCOM_SHARE_UUID_LEN + 1])
{
    json_t *o = json_pack("{ss ss ss}", id_key, id_value, "password", s->password, "applicationId",
                          s->app_id);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o); /* jansson keeps no copy once dumped */
    if (!body) {
        dia_instance_error(src, "out of memory");
        return DIA_ERR_NOMEM;
    }
    struct reply r;
    int rc = share_post(src, s, what, path, body, &r);
    explicit_bzero(body, strlen(body));
    free(body);
    if (rc == DIA_ERR_DEVICE)
        rc = login_fault(src, s, what, &r);
    if (rc == DIA_OK) {
        int prc = dexcom_share_parse_uuid_body(r.res.body, r.res.body_len, out);
        if (prc != DIA_OK) {
            char snip[64];
            dexcom_share_snippet(r.res.body, r.res.body_len, snip, sizeof snip);
            if (prc == DIA_ERR_IMPLAUSIBLE) {
                atomic_fetch_add(&src->counters.implausible, 1);
                dia_instance_error(src,
                                   "Dexcom Share answered %s with the all-zero id, which is "
                                   "never a valid login; retrying later",
                                   what);
            } else {
                atomic_fetch_add(&src->counters.decode_errors, 1);
                dia_instance_error(src,
                                   "Dexcom Share answered %s with \"%s\" instead of an id; "
                                   "retrying later",
                                   what, snip);
            }
            dia_warn(src->name, "%s", src->last_error);
            rc = DIA_ERR_TRANSIENT;
        } else {
            atomic_fetch_add(&src->counters.frames_ok, 1);
        }
    }
    reply_free(&r);
    return rc;
}

static void set_device_id(struct share *s)
{
    uint64_t h = fnv1a(FNV_OFFSET, s->account_id);
    snprintf(s->device_id, sizeof s->device_id, "share-%012" PRIx64,
             (uint64_t)(h & 0xffffffffffffULL));
}

/* Step 1 (when the account id is not known yet) and step 2 (spec §4.1). */
static int share_login(struct dia_instance *src, struct share *s)
{
    int rc;
    s->session_id[0] = '\0';
    if (!s->account_id[0]) {
        char id[DEXCOM_SHARE_UUID_LEN + 1];
        rc = login_request(src, s, "AuthenticatePublisherAccount",
                           "General/AuthenticatePublisherAccount", "accountName", s->username, id);
        if (rc != DIA_OK)
            return rc;
        memcpy(s->account_id, id, sizeof id);
        s->account_saved = false;
        set_device_id(s);
        char fp[24];
        snprintf(fp, sizeof fp, "%016" PRIx64, s->account_fp);
        state_set(src, "account_id", s->account_id);
        state_set(src, "account_for", fp);
        s->account_saved = true;
    }
    char session[DEXCOM_SHARE_UUID_LEN + 1];
    rc = login_request(src, s, "LoginPublisherAccountById", "General/LoginPublisherAccountById",
                       "accountId", s->account_id, session);
    if (rc != DIA_OK)
        return rc;
    memcpy(s->session_id, session, sizeof session);
    explicit_bzero(session, sizeof session);
    s->session_ms = share_now(s);
    if (state_get_i64(src, "auth_failed_ms") != 0)
        state_set(src, "auth_failed_ms", "0");
    dia_info(src->name, "logged in to %s", s->base_log);
    return DIA_OK;
}

/* ---- configuration ------------------------------------------------------------- */

static bool is_loopback_url(const char *url)
{
    const char *h = strstr(url, "://");
    if (!h)
        return false;
    h += 3;
    static const char *const hosts[] = {"127.0.0.1", "localhost", "[::1]"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        size_t n = strlen(hosts[i]);
        if (strncasecmp(h, hosts[i], n) == 0 && (h[n] == ':' || h[n] == '/' || h[n] == '\0'))
            return true;
    }
    return false;
}

static int configure(struct dia_instance *src, struct share *s)
{
    const char *region = src->opts->target;
    const char *url = dia_opt_str(src->opts, "url", NULL);
    const char *host = NULL, *app = SHARE_APP_ID_US;
    if (region && region[0]) {
        if (strcasecmp(region, "us") == 0) {
            host = "https://share2.dexcom.com";
        } else if (strcasecmp(region, "ous") == 0 || strcasecmp(region, "eu") == 0) {
            host = "https://shareous1.dexcom.com";
        } else if (strcasecmp(region, "jp") == 0) {
            host = "https://share.dexcom.jp";
            app = SHARE_APP_ID_JP;
        } else {
            dia_instance_error(src,
                               "unknown region \"%s\": use dexcom-share:us (USA), :ous (outside "
                               "the USA) or :jp (Japan)",
                               region);
            return DIA_ERR_CONFIG;
        }
    } else if (!url) {
        dia_instance_error(src, "no region: use dexcom-share:us (USA), :ous (outside the USA) or "
                                ":jp (Japan)");
        return DIA_ERR_CONFIG;
    }
    if (url) {
        bool https = strncasecmp(url, "https://", 8) == 0;
        bool http = strncasecmp(url, "http://", 7) == 0;
        if (!https && !(http && is_loopback_url(url))) {
            dia_instance_error(src, "url= must start with https:// (the password travels in the "
                                    "request; plain http is allowed only on this machine)");
            return DIA_ERR_CONFIG;
        }
        host = url;
        s->custom_url = true;
    }
    /* A bare server address gets the service path; a full one is kept. */
    const char *path = strstr(host, "://") + 3;
    path += strcspn(path, "/");
    size_t hl = strlen(host);
    if (strchr(host, '?') || strchr(host, '#') ||
        hl + sizeof SHARE_SERVICE_PATH >= sizeof s->base) {
        dia_instance_error(src, "url= must be a plain server address such as https://host");
        return DIA_ERR_CONFIG;
    }
    if (!path[0] || strcmp(path, "/") == 0)
        snprintf(s->base, sizeof s->base, "%.*s%s", (int)(path - host), host, SHARE_SERVICE_PATH);
    else
        snprintf(s->base, sizeof s->base, "%s%s", host, host[hl - 1] == '/' ? "" : "/");
    dia_http_url_for_log(s->base, s->base_log, sizeof s->base_log);

    const char *app_opt = dia_opt_str(src->opts, "application-id", NULL);
    if (app_opt) {
        if (dexcom_share_uuid_parse(app_opt, strlen(app_opt), s->app_id) != DIA_OK) {
            dia_instance_error(src, "application-id= must be a UUID such as %s", SHARE_APP_ID_US);
            return DIA_ERR_CONFIG;
        }
    } else {
        snprintf(s->app_id, sizeof s->app_id, "%s", app);
    }

    s->username = dia_opt_str(src->opts, "username", "");
    s->password = dia_opt_str(src->opts, "password", "");
    if (!s->username[0] || !s->password[0]) {
        dia_instance_error(src, "username= and password= must not be empty");
        return DIA_ERR_CONFIG;
    }
    const char *sensor = dia_opt_str(src->opts, "sensor", NULL);
    const char *patient = dia_opt_str(src->opts, "patient", NULL);
    if (sensor && patient && strcmp(sensor, patient) != 0) {
        dia_instance_error(src, "sensor= and patient= name the same thing; give one of them");
        return DIA_ERR_CONFIG;
    }
    if (!sensor)
        sensor = patient;
    /* A transmitter id names the group its receiver uses (sensor_group.h). */
    if (sensor &&
        (!sensor[0] || dexcom_sensor_group(sensor, NULL, s->sensor, sizeof s->sensor) != DIA_OK)) {
        dia_instance_error(src, "sensor= must be 1 to %zu characters", sizeof s->sensor - 1);
        return DIA_ERR_CONFIG;
    }

    s->time_scale = dia_opt_int(src->opts, "time-scale", 1);
    s->time_anchor = dia_opt_int(src->opts, "time-anchor", 0);
    if (s->time_scale > 1 && !(url && is_loopback_url(url))) {
        dia_instance_error(src, "time-scale= is for tests against a simulator on this machine "
                                "(url=http://127.0.0.1:…) only");
        return DIA_ERR_CONFIG;
    }
    s->auth_retry_ms = dia_opt_duration(src->opts, "auth-retry", 3600) * 1000;
    s->timeout_ms = (long)dia_opt_duration(src->opts, "timeout", 30) * 1000;

    uint64_t h = fnv1a(FNV_OFFSET, s->username);
    h = fnv1a(h, s->base);
    s->account_fp = fnv1a(h, s->app_id);
    return DIA_OK;
}

/* ---- driver methods ------------------------------------------------------------- */

static void share_free(struct share *s)
{
    if (!s)
        return;
    dia_http_free(s->http);
    explicit_bzero(s, sizeof *s);
    free(s);
}

/* The start-up check: open()'s own configure(), which is pure, on a
 * scratch instance that never runs. */
static int share_check(const struct dia_options *opts, char *why, size_t why_len)
{
    struct dia_instance scratch = {.opts = opts};
    struct share *s = calloc(1, sizeof *s);
    if (!s)
        return DIA_ERR_NOMEM;
    int rc = configure(&scratch, s);
    if (rc != DIA_OK)
        snprintf(why, why_len, "%s", scratch.last_error);
    share_free(s);
    return rc;
}

static int share_open(struct dia_instance *src)
{
    struct share *s = calloc(1, sizeof *s);
    if (!s) {
        dia_instance_error(src, "out of memory");
        return DIA_ERR_NOMEM;
    }
    int rc = configure(src, s);
    if (rc != DIA_OK)
        goto fail;

    /* The cached account id, when it belongs to these settings (spec §4.1). */
    char fp[24], stored_fp[24], id[64];
    snprintf(fp, sizeof fp, "%016" PRIx64, s->account_fp);
    if (state_get(src, "account_for", stored_fp, sizeof stored_fp) == 1 &&
        strcmp(stored_fp, fp) == 0 && state_get(src, "account_id", id, sizeof id) == 1 &&
        dexcom_share_uuid_parse(id, strlen(id), s->account_id) == DIA_OK) {
        s->account_saved = true;
        set_device_id(s);
    }
    s->last_wt_ms = state_get_i64(src, "last_wt_ms");
    /* Stored by a version that accepted readings up to a day ahead, or
     * before this machine's clock was set back: polling would wait for that
     * time.  Treated as unknown: the first read covers the last 24 h, and
     * its newest reading replaces the stored one. */
    if (s->last_wt_ms > share_now(s) + DEXCOM_SHARE_FUTURE_MS) {
        char when[48];
        format_local(share_to_wall(s, s->last_wt_ms), when, sizeof when);
        dia_warn(src->name,
                 "the newest reading stored, %s, lies in the future of this machine's clock; "
                 "reading the last 24 h again",
                 when);
        s->last_wt_ms = 0;
    }
    s->pending_wt_ms = s->last_wt_ms;

    rc = login_gate(src, s);
    if (rc != DIA_OK)
        goto fail;
    rc = dia_http_new(&s->http);
    if (rc != DIA_OK) {
        dia_instance_error(src, "cannot set up HTTP: %s", dia_strerror(rc));
        goto fail;
    }
    /* No login here: the first poll logs in, so that a server that is down
     * at start-up gets the paced retries of share_poll rather than the
     * supervisor's quick reopen (see "Pacing during outages" above). */
    uint32_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = (uint32_t)dia_now_ms() ^ (uint32_t)(uintptr_t)s;
    s->jitter_seed = seed;
    src->priv = s;
    return DIA_OK;
fail:
    share_free(s);
    return rc;
}

/* One read; *retry_login set when the session was refused. */
static int read_window(struct dia_instance *src, struct share *s, int minutes, int count,
                       struct reply *r, bool *session_refused)
{
    char pq[256];
    snprintf(pq, sizeof pq,
             "Publisher/ReadPublisherLatestGlucoseValues?sessionId=%s&minutes=%d&maxCount=%d",
             s->session_id, minutes, count);
    int rc = share_post(src, s, "ReadPublisherLatestGlucoseValues", pq, "{}", r);
    explicit_bzero(pq, sizeof pq);
    *session_refused = false;
    if (rc != DIA_ERR_DEVICE)
        return rc;
    if (r->fault.kind == DEXCOM_SHARE_FAULT_SESSION ||
        (r->fault.kind == DEXCOM_SHARE_FAULT_NONE && r->res.status == 400)) {
        *session_refused = true;
        return DIA_ERR_DEVICE;
    }
    return login_fault(src, s, "ReadPublisherLatestGlucoseValues", r);
}

static int64_t next_poll(struct share *s, int64_t now, bool got_new)
{
    if (got_new)
        s->late_polls = 0;
    int64_t next;
    if (s->last_wt_ms <= 0 && s->pending_wt_ms <= 0) {
        next = now + SHARE_READING_MS;
    } else {
        int64_t newest = s->pending_wt_ms > s->last_wt_ms ? s->pending_wt_ms : s->last_wt_ms;
        /* A reading accepted slightly ahead of our clock (at most
         * DEXCOM_SHARE_FUTURE_MS) must not push the next poll further out:
         * the rhythm is taken from now at the latest. */
        if (newest > now)
            newest = now;
        int64_t due = newest + SHARE_READING_MS + SHARE_GRACE_MS;
        if (due > now) {
            next = due;
        } else if (s->late_polls < SHARE_LATE_RETRIES) {
            s->late_polls++;
            next = now + SHARE_RETRY_MS;
        } else {
            /* No reading for a while (sensor warm-up, phone away): keep the
             * 5-minute rhythm of the readings that will come back. */
            int64_t k = (now - due) / SHARE_READING_MS + 1;
            next = due + k * SHARE_READING_MS;
        }
    }
    if (next < now + SHARE_MIN_INTERVAL)
        next = now + SHARE_MIN_INTERVAL;
    return next;
}

/* After the first login of this run: say what is followed, and as which group. */
static void announce(struct dia_instance *src, struct share *s)
{
    if (s->announced)
        return;
    s->announced = true;
    if (!s->sensor[0])
        snprintf(s->sensor, sizeof s->sensor, "%s", s->device_id);
    dia_info(src->name, "following %s as %s (sensor group \"%s\"), newest reading so far %s",
             s->base_log, s->device_id, s->sensor,
             s->last_wt_ms ? "known" : "none: reading the last 24 h");
}

/*
 * One poll's requests.  While the server fails, the first failed request
 * ends the poll, so a poll costs one request then.  *next_at is the next
 * poll's time in the driver's clock, set on success.
 */
static int poll_once(struct dia_instance *src, struct share *s, struct dia_batch *out,
                     int64_t *next_at)
{
    int64_t now = share_now(s);

    bool renew =
        s->session_id[0] && now - s->session_ms >= SHARE_SESSION_RENEW && now >= s->renew_retry_ms;
    bool fresh = false; /* the session comes from a login in this poll */
    if (!s->session_id[0] || renew) {
        char old[DEXCOM_SHARE_UUID_LEN + 1];
        memcpy(old, s->session_id, sizeof old);
        int64_t old_ms = s->session_ms;
        int rc = share_login(src, s);
        if (rc != DIA_OK && old[0] && (rc == DIA_ERR_TRANSIENT || rc == DIA_ERR_TIMEOUT)) {
            /* Renewal failed for a passing reason: the old session may
             * still work.  Read with it from the next poll on (this one
             * has had its request) and renew again later. */
            dia_warn(src->name, "session renewal failed (%s); keeping the current session",
                     src->last_error);
            memcpy(s->session_id, old, sizeof old);
            s->session_ms = old_ms;
            s->renew_retry_ms = now + SHARE_RENEW_RETRY_MS;
        }
        explicit_bzero(old, sizeof old);
        if (rc != DIA_OK)
            return rc;
        fresh = true;
        announce(src, s);
    }

    /* The window: everything since the newest reading we hold (the whole
     * gap after start-up or an outage), the whole 24 h once an hour. */
    int minutes = DEXCOM_SHARE_MAX_MINUTES, count = DEXCOM_SHARE_MAX_COUNT;
    bool full = s->last_wt_ms <= 0 || now - s->last_full_ms >= SHARE_FULL_REREAD_MS;
    if (!full) {
        int64_t behind = (now - s->last_wt_ms + MINUTE_MS - 1) / MINUTE_MS;
        if (behind < 0)
            behind = 0;
        behind += SHARE_WINDOW_MARGIN;
        if (behind < SHARE_FEW_MINUTES)
            behind = SHARE_FEW_MINUTES;
        if (behind > DEXCOM_SHARE_MAX_MINUTES)
            behind = DEXCOM_SHARE_MAX_MINUTES;
        minutes = (int)behind;
        count = minutes / 5 + 2;
        if (count > DEXCOM_SHARE_MAX_COUNT)
            count = DEXCOM_SHARE_MAX_COUNT;
    }

    /*
     * Expired or unknown session: log in again once, read again once (spec
     * §4.4); dexpy never did and went silent (spec §3.3 #2).  But a server
     * that refuses even the session it has just handed out (HTTP 400 or a
     * session fault for everything) would otherwise get a successful login
     * with every poll, forever.  The rule: one login per refused session;
     * when the session from that login is refused too, no login for
     * SHARE_RELOGIN_PAUSE (30 min), doubling with each such refusal up to
     * SHARE_SESSION_RENEW (8 h), while the polls go on reading with the
     * session held at the outage pace.  The first good read ends this.
     */
    struct reply r;
    bool refused;
    int rc = read_window(src, s, minutes, count, &r, &refused);
    if (refused && !fresh && now >= s->relogin_at_ms) {
        reply_free(&r);
        dia_info(src->name, "session expired (%s); logging in again",
                 r.fault.code[0] ? r.fault.code : "HTTP 400");
        rc = share_login(src, s);
        if (rc != DIA_OK)
            return rc; /* a passing failure: the next poll logs in */
        fresh = true;
        rc = read_window(src, s, minutes, count, &r, &refused);
    }
    if (refused) {
        const char *what = r.fault.code[0] ? r.fault.code : "HTTP 400";
        if (fresh) {
            s->relogin_pause_ms =
                s->relogin_pause_ms ? s->relogin_pause_ms * 2 : SHARE_RELOGIN_PAUSE;
            if (s->relogin_pause_ms > SHARE_SESSION_RENEW)
                s->relogin_pause_ms = SHARE_SESSION_RENEW;
            s->relogin_at_ms = now + s->relogin_pause_ms;
        }
        char when[48];
        format_local(share_to_wall(s, s->relogin_at_ms), when, sizeof when);
        dia_instance_error(src,
                           "Dexcom Share %s (%s); reading again later, with no new login "
                           "before %s",
                           fresh ? "refused a session right after the login"
                                 : "still refuses the session",
                           what, when);
        rc = DIA_ERR_TRANSIENT;
    }
    if (rc != DIA_OK) {
        reply_free(&r);
        return rc;
    }
    s->relogin_at_ms = 0;
    s->relogin_pause_ms = 0;
    int64_t parse_now = share_now(s); /* after the reply: see below */

    struct dexcom_share_reading *readings = calloc(DEXCOM_SHARE_MAX_COUNT, sizeof *readings);
    if (!readings) {
        reply_free(&r);
        dia_instance_error(src, "out of memory");
        return DIA_ERR_NOMEM;
    }
    size_t n = 0;
    struct dexcom_share_parse_stats st;
    char why[200];
    /* Reading times are judged against the clock after the reply arrived:
     * a reply can hold a reading taken while it was on its way (and under
     * time-scale= a slow reply spans simulated minutes). */
    rc = dexcom_share_parse_readings(r.res.body, r.res.body_len, parse_now, readings,
                                     DEXCOM_SHARE_MAX_COUNT, &n, &st, why, sizeof why);
    reply_free(&r);
    if (rc != DIA_OK) {
        atomic_fetch_add(&src->counters.decode_errors, 1);
        dia_instance_error(src, "Dexcom Share sent a reply diabridge cannot read: %s", why);
        dia_warn(src->name, "%s", src->last_error);
        free(readings);
        return DIA_ERR_TRANSIENT;
    }
    atomic_fetch_add(&src->counters.frames_ok, 1);
    if (st.malformed)
        atomic_fetch_add(&src->counters.decode_errors, st.malformed);
    if (st.implausible)
        atomic_fetch_add(&src->counters.implausible, st.implausible);
    if (st.malformed || st.implausible)
        dia_warn(src->name,
                 "skipped %zu unreadable and %zu implausible readings (implausible: a value "
                 "outside %d-%d mg/dL, or a time before 2015 or more than %lld minutes ahead of "
                 "this machine's clock: then check its clock and the phone's); first: %s",
                 st.malformed, st.implausible, DEXCOM_SHARE_MGDL_MIN, DEXCOM_SHARE_MGDL_MAX,
                 DEXCOM_SHARE_FUTURE_MS / MINUTE_MS, why);

    announce(src, s); /* the group is known from the first login on */
    int64_t received = dia_now_ms();
    int64_t newest = s->last_wt_ms;
    for (size_t i = 0; i < n; i++) {
        const struct dexcom_share_reading *g = &readings[i];
        struct dia_record *rec = dia_batch_add(out, DIA_KIND_GLUCOSE);
        if (!rec) {
            free(readings);
            dia_instance_error(src, "out of memory");
            return DIA_ERR_NOMEM;
        }
        rec->origin = DIA_ORIGIN_CLOUD;
        rec->t_utc_ms = g->wt_ms;
        snprintf(rec->device_time, sizeof rec->device_time, "%s", g->dt_text);
        rec->utc_offset_min = g->has_offset ? g->offset_min : DIA_ABSENT;
        rec->received_ms = received;
        snprintf(rec->driver, sizeof rec->driver, SHARE_DRIVER);
        snprintf(rec->device_id, sizeof rec->device_id, "%s", s->device_id);
        snprintf(rec->sensor, sizeof rec->sensor, "%s", s->sensor);
        rec->u.glucose.mgdl = g->mgdl;
        rec->u.glucose.trend = g->trend;
        dia_record_set_key(rec, "wt:%" PRId64, g->wt_ms);
        if (g->wt_ms > newest)
            newest = g->wt_ms;
    }
    free(readings);
    if (full)
        s->last_full_ms = now;
    bool got_new = newest > s->last_wt_ms;
    s->pending_wt_ms = newest;
    if (got_new) {
        char buf[32];
        snprintf(buf, sizeof buf, "%" PRId64, newest);
        int src_rc = dia_batch_set_state(out, "last_wt_ms", buf);
        if (src_rc != DIA_OK) {
            dia_instance_error(src, "out of memory");
            return src_rc;
        }
    }
    dia_debug(src->name, "read %d min / %d: %zu readings", minutes, count, n);
    *next_at = next_poll(s, now, got_new);
    return DIA_OK;
}

/*
 * The pause after a passing failure (5xx, timeout, DNS, TLS, an unreadable
 * reply): 1, 2, 4, then 5 minutes, each plus up to a quarter more.  The
 * jitter only lengthens it, so the one-minute floor holds.  In the driver's
 * clock, so that tests with time-scale= see the same pacing in simulated
 * minutes.
 */
static int64_t failure_backoff(struct share *s)
{
    int64_t base = SHARE_MIN_INTERVAL;
    for (int i = 1; i < s->failures_in_a_row && base < SHARE_BACKOFF_MAX_MS; i++)
        base *= 2;
    if (base > SHARE_BACKOFF_MAX_MS)
        base = SHARE_BACKOFF_MAX_MS;
    return base + (int64_t)(rand_r(&s->jitter_seed) % (unsigned)(base / 4 + 1));
}

static int share_poll(struct dia_instance *src, struct dia_batch *out, int64_t *next_ms)
{
    struct share *s = src->priv;
    int64_t next_at = 0;
    int rc = poll_once(src, s, out, &next_at);
    if (rc == DIA_OK) {
        if (s->failures_in_a_row)
            dia_info(src->name, "Dexcom Share answers again after %d failed tries",
                     s->failures_in_a_row);
        s->failures_in_a_row = 0;
        *next_ms = share_to_wall(s, next_at);
    } else if (rc == DIA_ERR_TRANSIENT || rc == DIA_ERR_TIMEOUT) {
        /* The supervisor keeps us open (retries_in_place) and comes back
         * then; the session, if any, stays. */
        s->failures_in_a_row++;
        *next_ms = share_to_wall(s, share_now(s) + failure_backoff(s));
    }
    return rc;
}

static void share_committed(struct dia_instance *src, const struct dia_batch *batch)
{
    (void)batch;
    struct share *s = src->priv;
    s->last_wt_ms = s->pending_wt_ms;
}

static void share_close(struct dia_instance *src)
{
    share_free(src->priv);
    src->priv = NULL;
}

const struct dia_source_driver dia_source_dexcom_share = {
    .name = SHARE_DRIVER,
    .description = "Dexcom Share cloud (follows the readings the Dexcom app uploads)",
    .target_help = "us | ous | jp (the Dexcom server region; \"eu\" means ous)",
    .options = share_options,
    .check = share_check,
    .open = share_open,
    .poll = share_poll,
    .committed = share_committed,
    .close = share_close,
    .retries_in_place = true,
};
