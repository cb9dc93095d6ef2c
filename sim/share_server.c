/*
 * diabridge-sim share-server: a Dexcom Share server on loopback.
 *
 * It answers the three calls a follower makes, in the shapes recorded in
 * tests/data/dexcom-share (pydexcom cassettes, 2025) and described in
 * shared/specs/dexcom-receiver-usb-and-share.md §4:
 *
 *   POST …/General/AuthenticatePublisherAccount {accountName,password,applicationId}
 *        → 200 "<account id>" | 500 {"Code":"AccountPasswordInvalid",…}
 *   POST …/General/LoginPublisherAccountById {accountId,password,applicationId}
 *        → 200 "<session id>" | 500 AccountPasswordInvalid
 *   POST …/General/LoginPublisherAccountByName (legacy)
 *        → 200 "00000000-0000-0000-0000-000000000000" whatever is sent (§4.1)
 *   POST …/Publisher/ReadPublisherLatestGlucoseValues?sessionId=&minutes=&maxCount=
 *        → 200 [{"WT","ST","DT","Value","Trend"}…] newest first
 *        | 500 SessionIdNotFound / SessionNotValid | 400 for a non-UUID id (§4.3)
 *
 * Readings come from the deterministic patient model (src/source/sim_patient.h):
 * one every five minutes, stamped 13.817 s into the slot (real WTs are not
 * aligned), from two days before start-up on (--patient-start MS instead:
 * with the same --seed, --patient-start and UTC offset as `dexcom-receiver`
 * the two simulate the same person, reading for reading).  Failed password checks
 * count toward a lock-out as Dexcom's do: after --lockout-after failures in
 * a row the account answers SSO_AuthenticateMaxAttemptsExceeded.
 *
 * Scenarios: normal; session-expiry (sessions die after --expire-minutes,
 * default 30); wrong-password (every password is wrong); lockout (the
 * account is locked from the start); outage (from --outage-start minutes
 * after start for --outage-hours, every call gets a Cloudflare-style 5xx,
 * then service resumes with the readings of the outage available); numeric-
 * trend (the pre-2021 format: "/Date(…)/" and numeric Trend, §4.2); slow
 * (every answer waits --delay-ms, default 2000); future-reading (a phone
 * with a wrong clock: every answer also holds one reading stamped
 * --future-minutes, default 1200, after start-up, while that lies ahead);
 * session-refused (logins work, every read answers SessionNotValid); redirect
 * (every call answers HTTP 301 to another host, as a moved or mistyped
 * address might).
 *
 * Cassettes: --cassette FILE (repeatable) serves recorded exchanges instead
 * of the patient: pydexcom's VCR.py cassettes (tests/data/dexcom-share,
 * spec §5).  Each request gets the first recording not yet served with the
 * same method and path (the query is not compared: the daemon asks for
 * other windows than pydexcom did), so recorded answers come in their
 * recorded order per call, across the files in the order given.  Where the
 * recording shows a request body or a sessionId, what arrives is compared
 * with it and a difference is counted (cassette_mismatches in /_sim/stats;
 * never printed, as bodies carry passwords).  Once a call's recordings are
 * used up it answers 503.
 *
 * The clock: simulated time = anchor + (wall − anchor) × speed, so with
 * --speed 1200 three simulated hours take nine seconds.  The daemon's
 * dexcom-share source takes the same time-scale= and time-anchor=.
 *
 * For tests: GET /_sim/stats (request and login counters, the clock, the
 * outage window, the requests and logins during it and the shortest pause
 * between two of them) and GET /_sim/readings?since_ms=&until_ms= (the readings
 * the server holds, oldest first: the ground truth to compare a journal to).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/err.h"
#include "proto/dexcom_share/dexcom_share.h"
#include "sim/httpd.h"
#include "sim/sim.h"
#include "source/sim_patient.h"

#define MINUTE_MS    60000LL
#define HISTORY_MS   (2 * 24 * 60 * MINUTE_MS)
#define WT_OFFSET_MS 13817 /* into the 5-minute slot, like the cassettes' WTs */
#define SERVICE_PATH "/ShareWebServices/Services/"
#define MAX_SESSIONS 64
#define APP_ID_US    "d89443d2-327c-4a6f-89e5-496bbb0317db"
#define APP_ID_JP    "d8665ade-9673-4e27-9ff6-92db4ce13d13"

enum scenario {
    SC_NORMAL,
    SC_SESSION_EXPIRY,
    SC_WRONG_PASSWORD,
    SC_LOCKOUT,
    SC_OUTAGE,
    SC_NUMERIC_TREND,
    SC_SLOW,
    SC_FUTURE_READING,
    SC_SESSION_REFUSED,
    SC_REDIRECT,
};
static const char *const scenario_names[] = {
    "normal",        "session-expiry", "wrong-password", "lockout",         "outage",
    "numeric-trend", "slow",           "future-reading", "session-refused", "redirect",
};
#define MAX_CASSETTES 16

/* One recorded exchange of a cassette. */
struct recorded {
    char method[16];
    char path[256];   /* the URI's path: no scheme, host or query */
    char session[64]; /* the URI's sessionId; "" when absent (the recorder removes expired ones) */
    char *request_body; /* NULL when the recording has none */
    int status;
    char *response_body;
    bool served;
};

struct reading {
    int64_t wt_ms;
    int32_t mgdl;
    int32_t trend;
};

struct session {
    char id[DEXCOM_SHARE_UUID_LEN + 1];
    int64_t created_ms; /* simulated */
};

struct share_sim {
    enum scenario scenario;
    long long speed;
    int64_t anchor_ms;
    const char *username, *password;
    char account_id[DEXCOM_SHARE_UUID_LEN + 1];
    int utc_offset_min;
    int64_t expire_ms;
    int64_t outage_start_ms, outage_end_ms; /* simulated; 0 when no outage */
    int delay_ms;
    int lockout_after;
    int64_t future_wt_ms; /* future-reading: the misdated reading's WT */

    struct recorded *cassette; /* --cassette: the recordings, in order */
    size_t ncassette;

    struct dia_sim_patient patient;
    int64_t first_ms;
    struct reading *readings;
    size_t n, cap;

    struct session sessions[MAX_SESSIONS];
    unsigned session_serial;
    int failures_in_a_row;
    bool locked;

    struct {
        unsigned long authenticate, login_by_id, login_by_name, reads, password_attempts,
            password_failures, lockout_answers, session_faults, outage_answers, bad_requests,
            outage_logins, future_served, cassette_served, cassette_unmatched, cassette_mismatches;
        /* simulated ms: the shortest pause between two requests during the
         * outage (meaningful once there were two), and the last one's time */
        int64_t outage_min_gap_ms, outage_last_ms;
    } stats;
};

static int64_t sim_now(const struct share_sim *s)
{
    return s->anchor_ms + (dia_now_ms() - s->anchor_ms) * s->speed;
}

/* Generate readings up to simulated time `until`. */
static void generate(struct share_sim *s, int64_t until)
{
    for (;;) {
        int64_t next_t = s->first_ms + dia_sim_patient_index(&s->patient) * DIA_SIM_STEP_MS;
        if (next_t + WT_OFFSET_MS > until)
            return;
        struct dia_sim_slot slot;
        dia_sim_patient_step(&s->patient, &slot);
        for (int i = 0; i < slot.n; i++) {
            if (slot.ev[i].kind != DIA_SIM_GLUCOSE)
                continue;
            if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 1024;
                struct reading *nr = realloc(s->readings, cap * sizeof *nr);
                if (!nr)
                    return;
                s->readings = nr;
                s->cap = cap;
            }
            s->readings[s->n++] = (struct reading){
                .wt_ms = slot.t_ms + WT_OFFSET_MS,
                .mgdl = slot.ev[i].u.glucose.mgdl,
                .trend = slot.ev[i].u.glucose.trend,
            };
        }
    }
}

static void uuid_from(uint64_t a, uint64_t b, char out[DEXCOM_SHARE_UUID_LEN + 1])
{
    a = a * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
    b = b * 0xbf58476d1ce4e5b9ULL + a;
    snprintf(out, DEXCOM_SHARE_UUID_LEN + 1,
             "%08" PRIx32 "-%04" PRIx32 "-4%03" PRIx32 "-a%03" PRIx32 "-%012" PRIx64,
             (uint32_t)(a >> 32), (uint32_t)(a >> 16) & 0xffff, (uint32_t)a & 0xfff,
             (uint32_t)(b >> 52) & 0xfff, (uint64_t)(b & 0xffffffffffffULL));
}

/* ---- replies ----------------------------------------------------------------- */

/* The fault body shape of the cassettes (spec §4.3). */
static void fault(struct sim_http_response *res, const char *code, const char *message,
                  const char *type_string)
{
    sim_http_reply(
        res, 500,
        "{\"Code\":\"%s\",\"Message\":\"%s\",\"SubCode\":\"<OnlineException "
        "ErrorCode=\\\"%s\\\" TypeString=\\\"%s\\\" />\",\"TypeName\":\"FaultException\"}",
        code, message, code, type_string);
}

static void uuid_reply(struct sim_http_response *res, const char *id)
{
    sim_http_reply(res, 200, "\"%s\"", id);
}

static bool in_outage(const struct share_sim *s, int64_t now)
{
    return s->outage_end_ms > 0 && now >= s->outage_start_ms && now < s->outage_end_ms;
}

/* One password check, with Dexcom's lock-out. */
static bool check_password(struct share_sim *s, const char *password, struct sim_http_response *res)
{
    s->stats.password_attempts++;
    if (s->locked) {
        s->stats.lockout_answers++;
        fault(res, "SSO_AuthenticateMaxAttemptsExceeded",
              "Publisher account is locked: maximum authentication attempts exceeded",
              "Authentication");
        return false;
    }
    bool ok = s->scenario != SC_WRONG_PASSWORD && password && strcmp(password, s->password) == 0;
    if (ok) {
        s->failures_in_a_row = 0;
        return true;
    }
    s->stats.password_failures++;
    if (++s->failures_in_a_row >= s->lockout_after)
        s->locked = true;
    fault(res, "AccountPasswordInvalid", "Publisher account password failed", "InvalidArgument");
    return false;
}

static json_t *body_json(const struct sim_http_request *req)
{
    json_error_t e;
    return json_loadb(req->body ? req->body : "", req->body_len, 0, &e);
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static bool known_app(const char *app)
{
    return app && (strcmp(app, APP_ID_US) == 0 || strcmp(app, APP_ID_JP) == 0);
}

static void authenticate(struct share_sim *s, const struct sim_http_request *req,
                         struct sim_http_response *res)
{
    s->stats.authenticate++;
    json_t *b = body_json(req);
    const char *name = jstr(b, "accountName");
    if (!known_app(jstr(b, "applicationId"))) {
        fault(res, "InvalidArgument", "Invalid applicationId UUID", "InvalidArgument");
    } else if (!name || strcmp(name, s->username) != 0) {
        /* Dexcom does not tell an unknown account from a bad password */
        s->stats.password_attempts++;
        s->stats.password_failures++;
        fault(res, "AccountPasswordInvalid", "Publisher account password failed",
              "InvalidArgument");
    } else if (check_password(s, jstr(b, "password"), res)) {
        uuid_reply(res, s->account_id);
    }
    json_decref(b);
}

static void login_by_id(struct share_sim *s, const struct sim_http_request *req,
                        struct sim_http_response *res, int64_t now)
{
    s->stats.login_by_id++;
    json_t *b = body_json(req);
    const char *id = jstr(b, "accountId");
    if (!known_app(jstr(b, "applicationId"))) {
        fault(res, "InvalidArgument", "Invalid applicationId UUID", "InvalidArgument");
    } else if (!id || strcasecmp(id, s->account_id) != 0) {
        s->stats.password_attempts++;
        s->stats.password_failures++;
        fault(res, "AccountPasswordInvalid", "Publisher account password failed",
              "InvalidArgument");
    } else if (check_password(s, jstr(b, "password"), res)) {
        struct session *slot = &s->sessions[s->session_serial % MAX_SESSIONS];
        s->session_serial++;
        uuid_from(s->session_serial, (uint64_t)now, slot->id);
        slot->created_ms = now;
        uuid_reply(res, slot->id);
    }
    json_decref(b);
}

static void format_date(char *buf, size_t len, bool legacy, int64_t ms, bool offset, int off_min)
{
    char tz[16] = "";
    if (offset)
        snprintf(tz, sizeof tz, "%c%02d%02d", off_min < 0 ? '-' : '+', abs(off_min) / 60,
                 abs(off_min) % 60);
    snprintf(buf, len, legacy ? "/Date(%" PRId64 "%s)/" : "Date(%" PRId64 "%s)", ms, tz);
}

static const char *const trend_names[] = {
    "None",          "DoubleUp",   "SingleUp",   "FortyFiveUp",   "Flat",
    "FortyFiveDown", "SingleDown", "DoubleDown", "NotComputable", "RateOutOfRange",
};

static void read_values(struct share_sim *s, const struct sim_http_request *req,
                        struct sim_http_response *res, int64_t now)
{
    s->stats.reads++;
    char sid[64] = "", buf[32];
    if (!sim_http_query(req, "sessionId", sid, sizeof sid))
        sim_http_query(req, "sessionID", sid, sizeof sid);
    char norm[DEXCOM_SHARE_UUID_LEN + 1];
    int urc = dexcom_share_uuid_parse(sid, strlen(sid), norm);
    if (urc == DIA_ERR_NOT_MINE || urc == DIA_ERR_TRUNCATED) {
        s->stats.bad_requests++;
        sim_http_reply(res, 400, "%s", "");
        return;
    }
    const struct session *found = NULL;
    for (int i = 0; urc == DIA_OK && i < MAX_SESSIONS; i++) {
        if (s->sessions[i].id[0] && strcmp(s->sessions[i].id, norm) == 0)
            found = &s->sessions[i];
    }
    if (!found) {
        s->stats.session_faults++;
        fault(res, "SessionIdNotFound", "Failed to find session object.", "ObjectNotFound");
        return;
    }
    if (s->scenario == SC_SESSION_REFUSED ||
        (s->expire_ms > 0 && now - found->created_ms >= s->expire_ms)) {
        s->stats.session_faults++;
        fault(res, "SessionNotValid", "Session not active or timed out.", "InvalidArgument");
        return;
    }
    long minutes = sim_http_query(req, "minutes", buf, sizeof buf) ? strtol(buf, NULL, 10) : 0;
    long count = sim_http_query(req, "maxCount", buf, sizeof buf) ? strtol(buf, NULL, 10) : 0;
    if (minutes > DEXCOM_SHARE_MAX_MINUTES)
        minutes = DEXCOM_SHARE_MAX_MINUTES;
    if (count > DEXCOM_SHARE_MAX_COUNT)
        count = DEXCOM_SHARE_MAX_COUNT;
    bool legacy = s->scenario == SC_NUMERIC_TREND;
    size_t cap = 64 + (size_t)(count > 0 ? count : 0) * 160, len = 0;
    char *out = malloc(cap);
    if (!out) {
        sim_http_reply(res, 500, "%s", "");
        return;
    }
    out[len++] = '[';
    long emitted = 0;
    int64_t since = now - minutes * MINUTE_MS;
    if (s->scenario == SC_FUTURE_READING && s->future_wt_ms > now && count > 0) {
        /* newest first: the misdated reading heads the answer */
        char wt[40], dt[40];
        format_date(wt, sizeof wt, false, s->future_wt_ms, false, 0);
        format_date(dt, sizeof dt, false, s->future_wt_ms, true, s->utc_offset_min);
        len += (size_t)snprintf(out + len, cap - len,
                                "{\"WT\":\"%s\",\"ST\":\"%s\",\"DT\":\"%s\",\"Value\":123,"
                                "\"Trend\":\"Flat\"}",
                                wt, wt, dt);
        emitted++;
        s->stats.future_served++;
    }
    for (size_t i = s->n; i-- > 0 && emitted < count;) {
        const struct reading *r = &s->readings[i];
        if (r->wt_ms > now)
            continue;
        if (r->wt_ms <= since)
            break;
        char wt[40], dt[40], trend[24];
        format_date(wt, sizeof wt, legacy, r->wt_ms, false, 0);
        format_date(dt, sizeof dt, legacy, r->wt_ms, true, s->utc_offset_min);
        if (legacy)
            snprintf(trend, sizeof trend, "%d", (int)r->trend);
        else
            snprintf(trend, sizeof trend, "\"%s\"", trend_names[r->trend % 10]);
        len += (size_t)snprintf(out + len, cap - len,
                                "%s{\"WT\":\"%s\",\"ST\":\"%s\",\"DT\":\"%s\",\"Value\":%d,"
                                "\"Trend\":%s}",
                                emitted ? "," : "", wt, wt, dt, (int)r->mgdl, trend);
        emitted++;
    }
    out[len++] = ']';
    free(res->body);
    res->status = 200;
    res->body = out;
    res->body_len = len;
}

static void stats(struct share_sim *s, struct sim_http_response *res, int64_t now)
{
    sim_http_reply(res, 200,
                   "{\"scenario\":\"%s\",\"speed\":%lld,\"anchor_ms\":%" PRId64
                   ",\"sim_now_ms\":%" PRId64 ",\"outage_start_ms\":%" PRId64
                   ",\"outage_end_ms\":%" PRId64 ",\"authenticate\":%lu,\"login_by_id\":%lu,"
                   "\"login_by_name\":%lu,\"reads\":%lu,\"password_attempts\":%lu,"
                   "\"password_failures\":%lu,\"lockout_answers\":%lu,\"session_faults\":%lu,"
                   "\"outage_answers\":%lu,\"outage_logins\":%lu,\"outage_min_gap_ms\":%" PRId64
                   ",\"bad_requests\":%lu,\"locked\":%s,\"readings\":%zu,\"future_wt_ms\":%" PRId64
                   ",\"future_served\":%lu,\"cassette_total\":%zu,\"cassette_served\":%lu,"
                   "\"cassette_unmatched\":%lu,\"cassette_mismatches\":%lu}",
                   scenario_names[s->scenario], s->speed, s->anchor_ms, now, s->outage_start_ms,
                   s->outage_end_ms, s->stats.authenticate, s->stats.login_by_id,
                   s->stats.login_by_name, s->stats.reads, s->stats.password_attempts,
                   s->stats.password_failures, s->stats.lockout_answers, s->stats.session_faults,
                   s->stats.outage_answers, s->stats.outage_logins, s->stats.outage_min_gap_ms,
                   s->stats.bad_requests, s->locked ? "true" : "false", s->n, s->future_wt_ms,
                   s->stats.future_served, s->ncassette, s->stats.cassette_served,
                   s->stats.cassette_unmatched, s->stats.cassette_mismatches);
}

static void truth(struct share_sim *s, const struct sim_http_request *req,
                  struct sim_http_response *res, int64_t now)
{
    char buf[32];
    int64_t since = sim_http_query(req, "since_ms", buf, sizeof buf) ? strtoll(buf, NULL, 10) : 0;
    int64_t until = sim_http_query(req, "until_ms", buf, sizeof buf) ? strtoll(buf, NULL, 10) : now;
    if (until > now)
        until = now;
    json_t *a = json_array();
    for (size_t i = 0; i < s->n; i++) {
        const struct reading *r = &s->readings[i];
        if (r->wt_ms >= since && r->wt_ms <= until)
            json_array_append_new(a, json_pack("{sI si si}", "wt", (json_int_t)r->wt_ms, "mgdl",
                                               (int)r->mgdl, "trend", (int)r->trend));
    }
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    sim_http_reply(res, 200, "%s", text ? text : "[]");
    free(text);
}

/* ---- cassettes ------------------------------------------------------------------ */

/* The first recording not yet served for this method and path (see the top
 * of this file); 503 when there is none left. */
static void serve_recorded(struct share_sim *s, const struct sim_http_request *req,
                           struct sim_http_response *res)
{
    struct recorded *rec = NULL;
    for (size_t i = 0; i < s->ncassette && !rec; i++) {
        struct recorded *c = &s->cassette[i];
        if (!c->served && strcmp(c->method, req->method) == 0 && strcmp(c->path, req->path) == 0)
            rec = c;
    }
    if (!rec) {
        s->stats.cassette_unmatched++;
        snprintf(res->content_type, sizeof res->content_type, "text/plain");
        sim_http_reply(res, 503, "no recorded answer left for %s %s", req->method, req->path);
        return;
    }
    rec->served = true;
    s->stats.cassette_served++;
    bool same = true;
    if (rec->session[0]) {
        char sid[64] = "";
        if (!sim_http_query(req, "sessionId", sid, sizeof sid))
            sim_http_query(req, "sessionID", sid, sizeof sid);
        same = strcasecmp(sid, rec->session) == 0;
    }
    if (same && rec->request_body) {
        json_error_t e;
        json_t *want = json_loads(rec->request_body, JSON_DECODE_ANY, &e);
        json_t *got = body_json(req);
        same = want ? got && json_equal(want, got) : strcmp(rec->request_body, req->body) == 0;
        json_decref(want);
        json_decref(got);
    }
    if (!same) {
        s->stats.cassette_mismatches++;
        fprintf(stderr, "share-server: request %lu (%s %s) differs from its recording\n",
                s->stats.cassette_served, req->method, req->path);
    }
    sim_http_reply(res, rec->status, "%s", rec->response_body);
}

/*
 * Reading a VCR.py cassette: the small part of YAML that VCR.py writes and
 * these files use.  Lines, not a YAML parser: "- request:" starts an
 * exchange, "  response:" its answer; under them, at four spaces, "body",
 * "method", "uri" and "status", and at six "string" (the response body) and
 * "code" (its status).  Values are plain or single-quoted; a single-quoted
 * value may run over several lines, which YAML folds: each line break with
 * the indentation around it becomes one space, an empty line a newline,
 * and '' is a quote.  Anything else (double quotes, !!binary, a value this
 * reader does not know) is refused with the file and line, so a cassette
 * is never half understood.
 */
struct cassette_reader {
    const char *file;
    char *text; /* the whole file; lines are cut in place */
    char *next; /* the next line's start, NULL at the end */
    int line;
    char err[300];
};

static char *next_line(struct cassette_reader *cr)
{
    char *l = cr->next;
    if (!l)
        return NULL;
    char *nl = strchr(l, '\n');
    if (nl) {
        *nl = '\0';
        cr->next = nl + 1;
    } else {
        cr->next = NULL;
    }
    cr->line++;
    return l;
}

static bool reader_fail(struct cassette_reader *cr, const char *why)
{
    snprintf(cr->err, sizeof cr->err, "%s line %d: %s", cr->file, cr->line, why);
    return false;
}

/* A scalar value starting at v (the rest of the current line).  *out is
 * malloc'd; NULL for YAML's null. */
static bool read_scalar(struct cassette_reader *cr, const char *v, char **out)
{
    *out = NULL;
    if (*v == '"' || *v == '!' || *v == '|' || *v == '>' || *v == '&' || *v == '*')
        return reader_fail(cr, "a value form this reader does not know (it reads plain and "
                               "single-quoted values)");
    if (*v != '\'') {
        if (strcmp(v, "null") == 0 || strcmp(v, "~") == 0 || !*v)
            return true;
        *out = strdup(v);
        return *out != NULL || reader_fail(cr, "out of memory");
    }
    size_t cap = strlen(v) + 64, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return reader_fail(cr, "out of memory");
    const char *p = v + 1;
    bool fold_pending = false; /* a line break not yet turned into a space */
    for (;;) {
        for (; *p; p++) {
            if (n + 4 > cap) {
                char *nb = realloc(buf, cap *= 2);
                if (!nb) {
                    free(buf);
                    return reader_fail(cr, "out of memory");
                }
                buf = nb;
            }
            if (fold_pending) {
                buf[n++] = ' ';
                fold_pending = false;
            }
            if (*p == '\'') {
                if (p[1] != '\'') {
                    buf[n] = '\0';
                    *out = buf;
                    return true;
                }
                p++;
            }
            buf[n++] = *p;
        }
        /* end of a line inside the quotes: fold */
        while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t') && !fold_pending)
            n--;
        const char *l = next_line(cr);
        if (!l) {
            free(buf);
            return reader_fail(cr, "a quoted value is not closed");
        }
        while (*l == ' ' || *l == '\t')
            l++;
        if (!*l) { /* an empty line is a newline, and no space */
            if (n + 2 > cap) {
                char *nb = realloc(buf, cap *= 2);
                if (!nb) {
                    free(buf);
                    return reader_fail(cr, "out of memory");
                }
                buf = nb;
            }
            buf[n++] = '\n';
            fold_pending = false;
            p = l;
            continue;
        }
        if (n == 0 || buf[n - 1] != '\n')
            fold_pending = true;
        p = l;
    }
}

/* "https://host/path?query" → path and the sessionId in the query */
static bool split_uri(struct cassette_reader *cr, const char *uri, struct recorded *rec)
{
    const char *h = strstr(uri, "://");
    if (!h)
        return reader_fail(cr, "the uri has no scheme");
    const char *path = h + 3 + strcspn(h + 3, "/");
    size_t plen = strcspn(path, "?#");
    if (plen == 0 || plen >= sizeof rec->path)
        return reader_fail(cr, "the uri has no path, or a very long one");
    memcpy(rec->path, path, plen);
    rec->path[plen] = '\0';
    const char *q = path[plen] == '?' ? path + plen + 1 : "";
    while (*q) {
        size_t len = strcspn(q, "&");
        if (strncasecmp(q, "sessionId=", 10) == 0 && len - 10 < sizeof rec->session) {
            memcpy(rec->session, q + 10, len - 10);
            rec->session[len - 10] = '\0';
        }
        q += len + (q[len] == '&');
    }
    return true;
}

static bool load_cassette(struct share_sim *s, const char *file, char *err, size_t errlen)
{
    struct cassette_reader cr = {.file = file};
    FILE *f = fopen(file, "r");
    size_t cap = 0, len = 0;
    if (f) {
        char chunk[8192];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
            if (len + got + 1 > cap) {
                cap = (len + got + 1) * 2;
                char *nt = realloc(cr.text, cap);
                if (!nt)
                    break;
                cr.text = nt;
            }
            memcpy(cr.text + len, chunk, got);
            len += got;
        }
        bool bad = ferror(f) || (len > 0 && !cr.text);
        fclose(f);
        if (bad) {
            free(cr.text);
            cr.text = NULL;
        }
    }
    if (!cr.text) {
        snprintf(err, errlen, "cannot read %s: %s", file,
                 f ? "read error or empty" : strerror(errno));
        return false;
    }
    cr.text[len] = '\0';
    cr.next = cr.text;

    enum { NONE, REQUEST, RESPONSE } part = NONE;
    char key4[16] = ""; /* the current key at four spaces */
    struct recorded *rec = NULL;
    size_t first = s->ncassette;
    bool ok = true;
    char *l;
    while (ok && (l = next_line(&cr))) {
        size_t indent = strspn(l, " ");
        char *k = l + indent;
        if (!*k || *k == '#')
            continue;
        if (indent == 0 && strcmp(k, "- request:") == 0) {
            struct recorded *nc = realloc(s->cassette, (s->ncassette + 1) * sizeof *nc);
            if (!nc) {
                ok = reader_fail(&cr, "out of memory");
                break;
            }
            s->cassette = nc;
            rec = &s->cassette[s->ncassette++];
            memset(rec, 0, sizeof *rec);
            part = REQUEST;
            continue;
        }
        if (indent == 0) {
            part = NONE;
            continue;
        }
        if (indent == 2 && strcmp(k, "response:") == 0 && rec) {
            part = RESPONSE;
            continue;
        }
        char *colon = strstr(k, ": ");
        size_t klen = colon ? (size_t)(colon - k) : strlen(k) - (k[strlen(k) - 1] == ':');
        const char *v = colon ? colon + 2 : "";
        if (indent == 4 && part != NONE) {
            snprintf(key4, sizeof key4, "%.*s", (int)klen, k);
            if (part == REQUEST && strcmp(key4, "body") == 0) {
                ok = read_scalar(&cr, v, &rec->request_body);
            } else if (part == REQUEST && strcmp(key4, "method") == 0) {
                snprintf(rec->method, sizeof rec->method, "%s", v);
            } else if (part == REQUEST && strcmp(key4, "uri") == 0) {
                ok = split_uri(&cr, v, rec);
            }
        } else if (indent == 6 && part == RESPONSE && strcmp(key4, "body") == 0 &&
                   strncmp(k, "string:", 7) == 0) {
            free(rec->response_body);
            ok = read_scalar(&cr, v, &rec->response_body);
        } else if (indent == 6 && part == RESPONSE && strcmp(key4, "status") == 0 &&
                   strncmp(k, "code: ", 6) == 0) {
            char *end;
            long code = strtol(v, &end, 10);
            if (*end || code < 100 || code > 599)
                ok = reader_fail(&cr, "a status code that is not one");
            else
                rec->status = (int)code;
        }
    }
    for (size_t i = first; ok && i < s->ncassette; i++) {
        const struct recorded *c = &s->cassette[i];
        if (!c->method[0] || !c->path[0] || !c->status || !c->response_body) {
            snprintf(cr.err, sizeof cr.err,
                     "%s: exchange %zu lacks a method, uri, response body (body: string:) or "
                     "status code",
                     file, i - first + 1);
            ok = false;
        }
    }
    if (ok && s->ncassette == first)
        ok = reader_fail(&cr, "no exchanges (\"- request:\") in it");
    free(cr.text);
    if (!ok)
        snprintf(err, errlen, "%s", cr.err);
    return ok;
}

static void handle(void *ctx, const struct sim_http_request *req, struct sim_http_response *res)
{
    struct share_sim *s = ctx;
    int64_t now = sim_now(s);
    generate(s, now);
    if (strcmp(req->method, "GET") == 0 && strcmp(req->path, "/_sim/stats") == 0) {
        stats(s, res, now);
        return;
    }
    if (strcmp(req->method, "GET") == 0 && strcmp(req->path, "/_sim/readings") == 0) {
        truth(s, req, res, now);
        return;
    }
    if (s->scenario == SC_SLOW)
        res->delay_ms = s->delay_ms;
    if (s->ncassette) {
        serve_recorded(s, req, res);
        return;
    }
    size_t plen = strlen(SERVICE_PATH);
    if (strncmp(req->path, SERVICE_PATH, plen) != 0 || strcmp(req->method, "POST") != 0) {
        sim_http_reply(res, 404, "%s", "");
        return;
    }
    if (s->scenario == SC_REDIRECT) {
        snprintf(res->extra_headers, sizeof res->extra_headers,
                 "Location: https://share-moved.example%.400s\r\n", req->path);
        sim_http_reply(res, 301, "%s", "");
        return;
    }
    if (in_outage(s, now)) {
        int64_t gap = now - s->stats.outage_last_ms;
        if (s->stats.outage_answers == 1 ||
            (s->stats.outage_answers > 1 && gap < s->stats.outage_min_gap_ms))
            s->stats.outage_min_gap_ms = gap;
        s->stats.outage_last_ms = now;
        s->stats.outage_answers++;
        if (strncmp(req->path + plen, "General/", 8) == 0)
            s->stats.outage_logins++;
        snprintf(res->content_type, sizeof res->content_type, "text/html");
        sim_http_reply(res, s->stats.outage_answers % 2 ? 503 : 502,
                       "<html><head><title>%d Service Temporarily Unavailable</title></head>"
                       "<body><center><h1>Service Temporarily Unavailable</h1></center><hr>"
                       "<center>cloudflare</center></body></html>",
                       s->stats.outage_answers % 2 ? 503 : 502);
        return;
    }
    const char *call = req->path + plen;
    if (strcmp(call, "General/AuthenticatePublisherAccount") == 0) {
        authenticate(s, req, res);
    } else if (strcmp(call, "General/LoginPublisherAccountById") == 0) {
        login_by_id(s, req, res, now);
    } else if (strcmp(call, "General/LoginPublisherAccountByName") == 0) {
        s->stats.login_by_name++;
        uuid_reply(res, "00000000-0000-0000-0000-000000000000"); /* spec §4.1, since 2020 */
    } else if (strcmp(call, "Publisher/ReadPublisherLatestGlucoseValues") == 0) {
        read_values(s, req, res, now);
    } else {
        sim_http_reply(res, 404, "%s", "");
    }
}

/* ---- main -------------------------------------------------------------------- */

static const char share_usage[] =
    "[--port N] [--scenario NAME] [--speed N] [--anchor MS] [--seed N]\n"
    "        [--username U] [--password P] [--utc-offset MIN] [--expire-minutes M]\n"
    "        [--outage-start MIN] [--outage-hours H] [--delay-ms MS] [--lockout-after N]\n"
    "        [--patient-start MS] [--future-minutes M] [--cassette FILE]…\n"
    "\n"
    "Serves the Dexcom Share API on http://127.0.0.1:PORT (printed on the first line of\n"
    "stdout) from a simulated patient.  Scenarios: normal, session-expiry, wrong-password,\n"
    "lockout, outage, numeric-trend, slow, future-reading (one reading stamped --future-\n"
    "minutes, default 1200, after start), session-refused (every read refused), redirect\n"
    "(every call gets a 301 to another host).  Simulated time runs --speed times faster than\n"
    "the wall clock from --anchor (Unix ms; default: now).  Defaults: user \"share-user\",\n"
    "password \"share-pass\", UTC offset -240, sessions live 24 h (30 min in session-expiry),\n"
    "outage from 30 min after start for 3 h, lock-out after 5 failed logins in a row.\n"
    "The patient's history starts two days before now, or at --patient-start (Unix ms,\n"
    "rounded down to 5 min): the same --seed, --patient-start and --utc-offset as\n"
    "dexcom-receiver's --seed, --patient-start (its offset is 0) give the same readings.\n"
    "--cassette FILE (repeatable) serves the exchanges recorded in VCR.py cassettes such as\n"
    "tests/data/dexcom-share/pydexcom-cassettes/*.yaml instead: each request gets the next\n"
    "unused recording of its method and path, in file order; then 503.\n"
    "GET /_sim/stats and /_sim/readings report what happened, for tests.";

static int parse_ll(const char *arg, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int share_server_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"scenario", required_argument, NULL, 's'},
        {"speed", required_argument, NULL, 'S'},
        {"anchor", required_argument, NULL, 'a'},
        {"seed", required_argument, NULL, 'r'},
        {"username", required_argument, NULL, 'u'},
        {"password", required_argument, NULL, 'w'},
        {"utc-offset", required_argument, NULL, 'o'},
        {"expire-minutes", required_argument, NULL, 'e'},
        {"outage-start", required_argument, NULL, 'O'},
        {"outage-hours", required_argument, NULL, 'H'},
        {"delay-ms", required_argument, NULL, 'd'},
        {"lockout-after", required_argument, NULL, 'l'},
        {"patient-start", required_argument, NULL, 'P'},
        {"future-minutes", required_argument, NULL, 'F'},
        {"cassette", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    long long port = 0, speed = 1, anchor = 0, seed = 1, offset = -240, expire = -1;
    long long outage_start = 30, outage_hours = 3, delay = 2000, lockout_after = 5;
    long long patient_start = 0, future_minutes = 1200;
    const char *cassettes[MAX_CASSETTES];
    size_t ncassettes = 0;
    const char *scenario = "normal", *username = "share-user", *password = "share-pass";
    int opt, idx = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        int bad = 0;
        switch (opt) {
        case 'p':
            bad = parse_ll(optarg, 0, 65535, &port);
            break;
        case 's':
            scenario = optarg;
            break;
        case 'S':
            bad = parse_ll(optarg, 1, 100000, &speed);
            break;
        case 'a':
            bad = parse_ll(optarg, 1, 4102444800000LL, &anchor);
            break;
        case 'r':
            bad = parse_ll(optarg, 0, 4294967295LL, &seed);
            break;
        case 'u':
            username = optarg;
            break;
        case 'w':
            password = optarg;
            break;
        case 'o':
            bad = parse_ll(optarg, -16 * 60, 16 * 60, &offset);
            break;
        case 'e':
            bad = parse_ll(optarg, 1, 100000, &expire);
            break;
        case 'O':
            bad = parse_ll(optarg, 0, 100000, &outage_start);
            break;
        case 'H':
            bad = parse_ll(optarg, 1, 1000, &outage_hours);
            break;
        case 'd':
            bad = parse_ll(optarg, 0, 600000, &delay);
            break;
        case 'l':
            bad = parse_ll(optarg, 1, 1000, &lockout_after);
            break;
        case 'P':
            bad = parse_ll(optarg, 1, 4102444800000LL, &patient_start);
            break;
        case 'F':
            bad = parse_ll(optarg, 1, 100000, &future_minutes);
            break;
        case 'c':
            if (ncassettes == MAX_CASSETTES) {
                fprintf(stderr, "share-server: at most %d cassettes\n", MAX_CASSETTES);
                return 2;
            }
            cassettes[ncassettes++] = optarg;
            break;
        default:
            fprintf(stderr, "usage: diabridge-sim share-server %s\n", share_usage);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "share-server: bad value \"%s\" for --%s\n", optarg,
                    longopts[idx].name);
            return 2;
        }
    }
    static struct share_sim s;
    memset(&s, 0, sizeof s);
    s.scenario = (enum scenario) - 1;
    for (size_t i = 0; i < sizeof scenario_names / sizeof scenario_names[0]; i++) {
        if (strcmp(scenario, scenario_names[i]) == 0)
            s.scenario = (enum scenario)i;
    }
    if ((int)s.scenario < 0) {
        fprintf(stderr,
                "share-server: unknown scenario \"%s\"; one of: normal, session-expiry, "
                "wrong-password, lockout, outage, numeric-trend, slow, future-reading, "
                "session-refused, redirect\n",
                scenario);
        return 2;
    }
    s.speed = speed;
    s.anchor_ms = anchor ? anchor : dia_now_ms();
    s.username = username;
    s.password = password;
    s.utc_offset_min = (int)offset;
    s.delay_ms = (int)delay;
    s.lockout_after = (int)lockout_after;
    s.locked = s.scenario == SC_LOCKOUT;
    if (expire < 0)
        expire = s.scenario == SC_SESSION_EXPIRY ? 30 : 24 * 60;
    s.expire_ms = expire * MINUTE_MS;
    int64_t start = sim_now(&s);
    if (s.scenario == SC_OUTAGE) {
        s.outage_start_ms = start + outage_start * MINUTE_MS;
        s.outage_end_ms = s.outage_start_ms + outage_hours * 60 * MINUTE_MS;
    }
    if (s.scenario == SC_FUTURE_READING)
        s.future_wt_ms = start + future_minutes * MINUTE_MS + WT_OFFSET_MS;
    for (size_t i = 0; i < ncassettes; i++) {
        char err[400];
        if (!load_cassette(&s, cassettes[i], err, sizeof err)) {
            fprintf(stderr, "share-server: %s\n", err);
            return 2;
        }
    }
    uuid_from(seed ^ 0x5eedULL, 0xacc0417ULL, s.account_id);
    s.first_ms = patient_start ? patient_start : start - HISTORY_MS;
    s.first_ms -= s.first_ms % DIA_SIM_STEP_MS;
    if (s.first_ms > start) {
        fprintf(stderr, "share-server: --patient-start lies in the future\n");
        return 2;
    }
    struct dia_sim_config cfg = {
        .seed = (uint64_t)seed,
        .start_ms = s.first_ms,
        .utc_offset_min = (int32_t)offset,
        .patient = "share",
    };
    if (dia_sim_patient_init(&s.patient, &cfg) != 0) {
        fprintf(stderr, "share-server: cannot start the patient model\n");
        return 1;
    }
    generate(&s, start);

    char *banner; /* allocated: --username may be of any length */
    if (asprintf(&banner,
                 "scenario %s, speed %lldx, anchor %" PRId64 ", account %s, %zu readings so far",
                 scenario_names[s.scenario], s.speed, s.anchor_ms, s.username, s.n) < 0)
        banner = NULL;
    int rc = sim_httpd_serve("share-server", (int)port, handle, &s, banner);
    free(banner); /* reached only when it could not listen */
    return rc;
}

const struct dia_simulator dia_sim_share_server = {
    .name = "share-server",
    .description = "Dexcom Share web API on loopback HTTP (a simulated patient)",
    .usage = share_usage,
    .main = share_server_main,
};
