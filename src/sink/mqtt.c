/*
 * Sink `mqtt`: publishes records to an MQTT broker with libmosquitto
 * (docs/sinks/mqtt.md; facts from specs/smartpix-and-sinks.md §5).
 *
 * Topics, under the prefix `topic=` (default "diabridge"):
 *   <prefix>/status                  "online" (retained) on connect; the
 *                                    broker publishes the retained last
 *                                    will "offline" if we vanish, and we
 *                                    publish it ourselves on a clean close;
 *   <prefix>/<device>/<kind>         every record, JSON with record_key
 *                                    (QoS qos=, not retained);
 *   <prefix>/<device>/glucose/latest the newest glucose reading, retained
 *                                    (retain-latest=), never replaced by an
 *                                    older (backfilled) one;
 *   dexpy-topic=                     dexpy's "st|trend|value" for glucose
 *                                    (specs/dexcom-receiver-usb-and-share.md
 *                                    §3.5), so dexpy's subscribers keep working;
 *   <homeassistant>/sensor/<node>/glucose/config
 *                                    Home Assistant discovery (retained),
 *                                    sent when a device is first seen,
 *                                    again on every reconnect (the broker
 *                                    may have lost it), and whenever HA
 *                                    announces "online" on
 *                                    <homeassistant>/status (§5.3).
 *
 * Delivery: a network thread of our own runs mosquitto_loop() so that
 * keep-alive pings flow while the sink is idle — otherwise the broker would
 * drop us and publish "offline" between readings.  (libmosquitto's
 * mosquitto_loop_start thread would do, but it wakes every second; ours
 * sleeps a quarter of the keep-alive, and libmosquitto's internal socket
 * pair wakes it at once when send() queues a packet.  Issue #7: idle cost.)  send()
 * stays synchronous: it publishes a batch, then waits (timeout=) until the
 * broker acknowledged.  Every publish's message id maps to its record; a
 * record counts as acknowledged when all its messages are (PUBACK for QoS 1,
 * PUBCOMP for QoS 2, written for QoS 0), and *acked is the unbroken run of
 * such records from the start — the journal cursor never passes a message
 * the broker has not confirmed.  A lost connection makes send() return
 * DIA_ERR_TRANSIENT; the supervisor closes this instance, backs off (capped,
 * with jitter) and opens a new one, which re-sends from the cursor.  What
 * is re-sent carries the same record_key, so subscribers can drop repeats.
 *
 * Threads: one mosquitto instance per sink instance, created in open and
 * destroyed in close; mosquitto_lib_init runs once per process.  The
 * callbacks run on libmosquitto's thread and share state with send() under
 * s->lock.
 */
#include <errno.h>
#include <mosquitto.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/driver.h"
#include "core/err.h"
#include "core/hex.h"
#include "core/journal.h"
#include "core/log.h"
#include "core/url.h"
#include "sink/mqtt_map.h"

#define MQTT_MAX_DEVICES   32
#define MQTT_MID_SPACE     65536 /* message ids are 16-bit */
#define MQTT_CONNECT_WAIT  10000 /* ms for the broker's CONNACK */
#define MQTT_OFFLINE_WAIT  1000  /* ms for the "offline" PUBACK on close */
#define MQTT_MAX_INFLIGHT  100
#define MQTT_MSGS_PER_REC  3 /* kind topic, latest, dexpy */
#define MQTT_DEFAULT_BATCH 500

enum mid_state { MID_NONE = 0, MID_PENDING, MID_EARLY };

struct mqtt_device {
    char id[40];
    char driver[24];
    char level[48];    /* id as a topic level */
    int64_t newest_ms; /* newest glucose published to …/glucose/latest */
    bool newest_dirty; /* to be saved after the batch */
    int64_t prev_t_ms; /* previous glucose, for delta */
    int32_t prev_mgdl;
    char *ha_topic; /* discovery config, once announced */
    char *ha_payload;
};

struct mqtt_sink {
    struct mosquitto *mosq;
    bool loop_running;
    pthread_t net_thread;
    atomic_bool net_stop;
    int net_timeout_ms;
    char host[256];
    int port;
    bool tls;
    int qos;
    bool retain_latest;
    long timeout_ms;
    const char *prefix;
    const char *dexpy_topic;
    const char *ha_prefix; /* NULL: discovery off */
    const char *unit;
    long expire_after_s;
    char status_topic[300];
    char ha_status_topic[300];

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC; connect, disconnect, acks */
    bool conn_seen;
    int conn_rc;
    bool connected;
    int disconnect_rc;
    char tls_error[200]; /* first TLS error libmosquitto logged */
    uint8_t *mid_state;  /* [MQTT_MID_SPACE] */
    uint32_t *mid_rec;   /* [MQTT_MID_SPACE] record index */
    uint32_t *remaining; /* per record: messages not yet acknowledged */
    size_t remaining_cap;
    struct mqtt_device dev[MQTT_MAX_DEVICES];
    size_t ndev;
};

static const struct dia_option_spec mqtt_options[] = {
    {.name = "client-id", .type = DIA_OPT_STRING, .help = "MQTT client id (default: random)"},
    {.name = "username", .type = DIA_OPT_STRING, .help = "user name at the broker"},
    {.name = "password", .type = DIA_OPT_SECRET, .help = "password at the broker"},
    {.name = "ca-file",
     .type = DIA_OPT_STRING,
     .help = "PEM file of the CA that signed the broker"},
    {.name = "cert-file", .type = DIA_OPT_STRING, .help = "client certificate (PEM)"},
    {.name = "key-file", .type = DIA_OPT_STRING, .help = "client certificate key (PEM)"},
    {.name = "insecure",
     .type = DIA_OPT_BOOL,
     .default_value = "0",
     .help = "do not check the broker's host name against its certificate"},
    {.name = "keepalive",
     .type = DIA_OPT_DURATION,
     .default_value = "60",
     .min = 5,
     .max = 3600,
     .help = "seconds between keep-alive pings"},
    {.name = "topic", .type = DIA_OPT_STRING, .default_value = "diabridge", .help = "topic prefix"},
    {.name = "qos",
     .type = DIA_OPT_INT,
     .default_value = "1",
     .min = 0,
     .max = 2,
     .help = "0, 1 or 2"},
    {.name = "protocol",
     .type = DIA_OPT_ENUM,
     .default_value = "3.1.1",
     .choices = "3.1.1|5",
     .help = "MQTT protocol version"},
    {.name = "retain-latest",
     .type = DIA_OPT_BOOL,
     .default_value = "1",
     .help = "keep the newest glucose retained on <prefix>/<device>/glucose/latest"},
    {.name = "homeassistant",
     .type = DIA_OPT_STRING,
     .default_value = "homeassistant",
     .help = "Home Assistant discovery prefix; off disables discovery"},
    {.name = "unit",
     .type = DIA_OPT_ENUM,
     .default_value = "mg/dL",
     .choices = "mg/dL|mmol/L",
     .help = "unit of the Home Assistant glucose sensor"},
    {.name = "expire-after",
     .type = DIA_OPT_DURATION,
     .default_value = "900",
     .min = 60,
     .max = 86400,
     .help = "Home Assistant shows the sensor unavailable after this long without a reading"},
    {.name = "dexpy-topic",
     .type = DIA_OPT_STRING,
     .help = "also publish dexpy's st|trend|value payload on this topic"},
    {.name = "batch",
     .type = DIA_OPT_INT,
     .default_value = "500",
     .min = 1,
     .max = 10000,
     .help = "records per send"},
    {.name = "timeout",
     .type = DIA_OPT_DURATION,
     .default_value = "30s",
     .min = 1,
     .max = 600,
     .help = "time allowed for the broker to acknowledge a batch"},
    {0},
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void)
{
    mosquitto_lib_init();
}

static void deadline_after(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- callbacks (libmosquitto's thread) ------------------------------------ */

static void publish_ha_configs_locked(struct mqtt_sink *s)
{
    for (size_t i = 0; i < s->ndev; i++) {
        if (s->dev[i].ha_topic)
            mosquitto_publish(s->mosq, NULL, s->dev[i].ha_topic, (int)strlen(s->dev[i].ha_payload),
                              s->dev[i].ha_payload, 1, true);
    }
}

static void on_connect(struct mosquitto *m, void *arg, int rc)
{
    struct mqtt_sink *s = arg;
    if (rc == 0) {
        mosquitto_publish(m, NULL, s->status_topic, 6, "online", 1, true);
        if (s->ha_prefix)
            mosquitto_subscribe(m, NULL, s->ha_status_topic, 1);
    }
    pthread_mutex_lock(&s->lock);
    /* A reconnect may reach a broker that lost its retained messages (one
     * restarted without persistence): announce the known devices again.
     * Retained and a few hundred bytes each, so doing it every time is cheap. */
    if (rc == 0)
        publish_ha_configs_locked(s);
    s->conn_seen = true;
    s->conn_rc = rc;
    s->connected = rc == 0;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void on_disconnect(struct mosquitto *m, void *arg, int rc)
{
    (void)m;
    struct mqtt_sink *s = arg;
    pthread_mutex_lock(&s->lock);
    s->connected = false;
    s->disconnect_rc = rc;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void on_publish(struct mosquitto *m, void *arg, int mid)
{
    (void)m;
    struct mqtt_sink *s = arg;
    unsigned idx = (unsigned)mid & (MQTT_MID_SPACE - 1);
    pthread_mutex_lock(&s->lock);
    if (s->mid_state[idx] == MID_PENDING) {
        uint32_t rec = s->mid_rec[idx];
        if (rec < s->remaining_cap && s->remaining[rec] > 0)
            s->remaining[rec]--;
        s->mid_state[idx] = MID_NONE;
        pthread_cond_broadcast(&s->cond);
    } else {
        /* acknowledged before send() noted the id (or not a record's) */
        s->mid_state[idx] = MID_EARLY;
    }
    pthread_mutex_unlock(&s->lock);
}

/* libmosquitto's network thread reports TLS failures only in its log
 * (the handshake happens there, after mosquitto_connect returned). */
static void on_log(struct mosquitto *m, void *arg, int level, const char *text)
{
    (void)m;
    struct mqtt_sink *s = arg;
    if (level != MOSQ_LOG_ERR || (!strstr(text, "OpenSSL") && !strstr(text, "TLS")))
        return;
    pthread_mutex_lock(&s->lock);
    if (!s->tls_error[0])
        snprintf(s->tls_error, sizeof s->tls_error, "%s", text);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Home Assistant restarted: it forgets non-retained state and asks for
 * discovery again by publishing "online" on its status topic (§5.3). */
static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg)
{
    (void)m;
    struct mqtt_sink *s = arg;
    if (!s->ha_prefix || strcmp(msg->topic, s->ha_status_topic) != 0)
        return;
    if (msg->payloadlen == 6 && memcmp(msg->payload, "online", 6) == 0) {
        pthread_mutex_lock(&s->lock);
        publish_ha_configs_locked(s);
        pthread_mutex_unlock(&s->lock);
    }
}

/* ---- open / close ----------------------------------------------------------- */

/* The broker address and what the options add to it: pure, so that the
 * start-up check and open() share it. */
struct mqtt_address {
    char host[256];
    int port;
    bool tls;
    bool has_user, has_password; /* mqtt://USER[:PASSWORD]@HOST */
    char user[256];              /* percent-decoded */
    char password[256];
};

/* The userinfo of a URL is percent-encoded (a password may hold ':' or '@'). */
static bool percent_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 1 >= cap)
            return false;
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? dia_hex_digit(s[i + 1]) : -1;
        int lo = i + 2 < n ? dia_hex_digit(s[i + 2]) : -1;
        if (hi < 0 || lo < 0)
            return false;
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return true;
}

static int parse_broker(const char *t, struct mqtt_address *a, char *why, size_t why_len)
{
    memset(a, 0, sizeof *a);
    const char *rest;
    if (t && strncmp(t, "mqtt://", 7) == 0) {
        rest = t + 7;
    } else if (t && strncmp(t, "mqtts://", 8) == 0) {
        rest = t + 8;
        a->tls = true;
    } else {
        snprintf(why, why_len,
                 "the broker must be given as mqtt://HOST[:PORT] or mqtts://HOST[:PORT]");
        return DIA_ERR_CONFIG;
    }
    /* mqtt://USER:PASSWORD@HOST, as mosquitto_pub -L takes it; the last '@'
     * before the path ends it */
    const char *at = NULL;
    for (const char *p = rest; *p && *p != '/'; p++) {
        if (*p == '@')
            at = p;
    }
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        size_t ulen = (size_t)((colon ? colon : at) - rest);
        a->has_user = true;
        a->has_password = colon != NULL;
        if (!percent_decode(rest, ulen, a->user, sizeof a->user) ||
            (colon && !percent_decode(colon + 1, (size_t)(at - colon - 1), a->password,
                                      sizeof a->password))) {
            explicit_bzero(a, sizeof *a);
            snprintf(why, why_len,
                     "the user name or password in the broker address is too long or has a "
                     "broken %%XX escape; or give them as username= and password-file=");
            return DIA_ERR_CONFIG;
        }
        rest = at + 1;
    }
    const char *host = rest, *end;
    size_t hlen;
    if (*rest == '[') { /* [IPv6]:port */
        end = strchr(rest, ']');
        if (!end)
            goto bad;
        host = rest + 1;
        hlen = (size_t)(end - host);
        end++;
    } else {
        hlen = strcspn(rest, ":/");
        end = rest + hlen;
    }
    if (hlen == 0 || hlen >= sizeof a->host)
        goto bad;
    memcpy(a->host, host, hlen);
    a->host[hlen] = '\0';
    a->port = a->tls ? 8883 : 1883;
    if (*end == ':') {
        char *e;
        long p = strtol(end + 1, &e, 10);
        if (p < 1 || p > 65535 || (*e && strcmp(e, "/") != 0))
            goto bad;
        a->port = (int)p;
    } else if (*end && strcmp(end, "/") != 0) {
        goto bad;
    }
    return DIA_OK;
bad:
    explicit_bzero(a, sizeof *a);
    char shown[300];
    dia_url_display(t, shown, sizeof shown); /* the password stays hidden */
    snprintf(why, why_len,
             "cannot read the broker address \"%s\"; write mqtt://HOST[:PORT] with a port from 1 "
             "to 65535",
             shown);
    return DIA_ERR_CONFIG;
}

static int mqtt_settings(const struct dia_options *o, struct mqtt_address *a, char *why,
                         size_t why_len)
{
    int rc = parse_broker(o->target, a, why, why_len);
    if (rc != DIA_OK)
        return rc;
    if (a->has_user && (dia_opt_str(o, "username", NULL) || dia_opt_str(o, "password", NULL))) {
        explicit_bzero(a, sizeof *a);
        snprintf(why, why_len,
                 "the broker address has a user name (USER@HOST) and username= or password= "
                 "is given too; give them one way");
        return DIA_ERR_CONFIG;
    }
    if (!a->tls && (dia_opt_str(o, "ca-file", NULL) || dia_opt_str(o, "cert-file", NULL))) {
        explicit_bzero(a, sizeof *a);
        snprintf(why, why_len,
                 "ca-file/cert-file given, but the broker address is mqtt://; "
                 "use mqtts:// for TLS");
        return DIA_ERR_CONFIG;
    }
    if (!dia_opt_str(o, "cert-file", NULL) != !dia_opt_str(o, "key-file", NULL)) {
        explicit_bzero(a, sizeof *a);
        snprintf(why, why_len,
                 "a client certificate needs both cert-file= and key-file=; give both or "
                 "neither");
        return DIA_ERR_CONFIG;
    }
    return DIA_OK;
}

static int mqtt_check(const struct dia_options *o, char *why, size_t why_len)
{
    struct mqtt_address a;
    int rc = mqtt_settings(o, &a, why, why_len);
    explicit_bzero(&a, sizeof a);
    return rc;
}

static void free_sink(struct mqtt_sink *s)
{
    for (size_t i = 0; i < s->ndev; i++) {
        free(s->dev[i].ha_topic);
        free(s->dev[i].ha_payload);
    }
    free(s->mid_state);
    free(s->mid_rec);
    free(s->remaining);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

static void mqtt_close(struct dia_instance *in)
{
    struct mqtt_sink *s = in->priv;
    if (!s)
        return;
    if (s->mosq) {
        pthread_mutex_lock(&s->lock);
        bool connected = s->connected;
        pthread_mutex_unlock(&s->lock);
        if (connected && s->loop_running) {
            /* a clean disconnect suppresses the will: say "offline" ourselves */
            int mid = 0;
            if (mosquitto_publish(s->mosq, &mid, s->status_topic, 7, "offline", 1, true) ==
                MOSQ_ERR_SUCCESS) {
                unsigned idx = (unsigned)mid & (MQTT_MID_SPACE - 1);
                struct timespec dl;
                deadline_after(&dl, MQTT_OFFLINE_WAIT);
                pthread_mutex_lock(&s->lock);
                while (s->mid_state[idx] != MID_EARLY && s->connected) {
                    if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) == ETIMEDOUT)
                        break;
                }
                pthread_mutex_unlock(&s->lock);
            }
        }
        atomic_store(&s->net_stop, true);
        mosquitto_disconnect(s->mosq); /* also wakes the network thread */
        if (s->loop_running)
            pthread_join(s->net_thread, NULL);
        mosquitto_destroy(s->mosq);
    }
    free_sink(s);
    in->priv = NULL;
}

/*
 * The network thread: what mosquitto_loop_forever does, with a long select
 * timeout.  On a lost connection it waits a second and reconnects, as
 * libmosquitto's own loop would; send() meanwhile reports the loss, and the
 * supervisor decides about this instance.
 */
static void *mqtt_network_main(void *arg)
{
    struct mqtt_sink *s = arg;
    pthread_setname_np(pthread_self(), "mqtt:net");
    while (!atomic_load(&s->net_stop)) {
        int rc = mosquitto_loop(s->mosq, s->net_timeout_ms, 1);
        if (rc == MOSQ_ERR_SUCCESS || atomic_load(&s->net_stop))
            continue;
        struct timespec pause = {1, 0};
        nanosleep(&pause, NULL);
        if (!atomic_load(&s->net_stop))
            mosquitto_reconnect(s->mosq);
    }
    return NULL;
}

/*
 * What a refused CONNACK asks of us.  MQTT 3.1.1 §3.2.2.3 return codes and
 * MQTT 5.0 §3.2.2.2 reason codes:
 *   the login: 3.1.1 4 (bad user name or password) and 5 (not authorised);
 *     5.0 0x86, 0x87, 0x8A (banned) and 0x8C (bad authentication method) →
 *     DIA_ERR_AUTH: a person must act, and retrying fast could lock the
 *     account;
 *   for now: 3.1.1 3 (server unavailable); 5.0 0x80 (unspecified), 0x88
 *     (server unavailable), 0x89 (server busy), 0x97 (quota exceeded),
 *     0x9F (connection rate exceeded) → DIA_ERR_TRANSIENT: the broker is
 *     restarting or shedding load, so try again with the usual back-off
 *     instead of waiting half an hour;
 *   anything else (protocol version, client id, "use another server", …)
 *     is about our settings → DIA_ERR_CONFIG.
 */
enum connack_kind { CONNACK_LOGIN, CONNACK_BUSY, CONNACK_SETTINGS };

static enum connack_kind connack_kind(int rc)
{
    switch (rc) {
    case 4:
    case 5:
    case 0x86:
    case 0x87:
    case 0x8A:
    case 0x8C:
        return CONNACK_LOGIN;
    case 3:
    case 0x80:
    case 0x88:
    case 0x89:
    case 0x97:
    case 0x9F:
        return CONNACK_BUSY;
    default:
        return CONNACK_SETTINGS;
    }
}

/*
 * libmosquitto 2.0 sets up its OpenSSL globals lazily, in the first TLS
 * connect, without a lock: two TLS sinks connecting at once both create the
 * global UI method and one copy leaks (seen under LeakSanitizer with two
 * mqtts:// sinks). Until one TLS connect has got that far, TLS connects take
 * turns.
 */
static pthread_mutex_t tls_first_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool tls_globals_ready;

static int tls_safe_connect(struct mqtt_sink *s, int keepalive)
{
    if (!s->tls || atomic_load(&tls_globals_ready))
        return mosquitto_connect(s->mosq, s->host, s->port, keepalive);
    pthread_mutex_lock(&tls_first_lock);
    int mrc = mosquitto_connect(s->mosq, s->host, s->port, keepalive);
    /* a refused or unresolvable connect fails before the TLS set-up */
    if (mrc == MOSQ_ERR_SUCCESS || mrc == MOSQ_ERR_TLS)
        atomic_store(&tls_globals_ready, true);
    pthread_mutex_unlock(&tls_first_lock);
    return mrc;
}

static void tls_insecure_option(struct dia_instance *in, struct mqtt_sink *s)
{
    if (dia_opt_bool(in->opts, "insecure", false))
        mosquitto_tls_insecure_set(s->mosq, true);
}

/* Which TLS files to look at: only those the user gave (mqtt_settings()
 * made sure that cert-file= and key-file= come together). */
static const char *tls_files_advice(const char *ca, const char *cert)
{
    if (ca && cert)
        return "check that ca-file=, cert-file= and key-file= name readable PEM files";
    if (ca)
        return "check that ca-file= names a readable PEM file";
    return "check that cert-file= and key-file= name readable PEM files";
}

static int setup_tls(struct dia_instance *in, struct mqtt_sink *s)
{
    const char *ca = dia_opt_str(in->opts, "ca-file", NULL);
    const char *cert = dia_opt_str(in->opts, "cert-file", NULL);
    const char *key = dia_opt_str(in->opts, "key-file", NULL);
    if (!s->tls) /* ca-file= without mqtts:// was refused by mqtt_settings() */
        return DIA_OK;
    if (!ca) {
        /* No private CA: trust the system's CA store, as a browser would.
         * libmosquitto then loads OpenSSL's default verify paths (which
         * honour SSL_CERT_FILE and SSL_CERT_DIR); verification stays on. */
        int orc = mosquitto_int_option(s->mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
        if (orc != MOSQ_ERR_SUCCESS) {
            dia_instance_error(in,
                               "this libmosquitto cannot use the system's CA certificates (%s); "
                               "give the CA that signed the broker's certificate with ca-file=",
                               mosquitto_strerror(orc));
            return DIA_ERR_CONFIG;
        }
        if (!cert) {
            tls_insecure_option(in, s);
            return DIA_OK;
        }
    }
    /* mosquitto_tls_set insists on a CA file or folder even when only a
     * client certificate is added; without ca-file= it gets the system
     * store's folder, which the option above trusts anyway. */
    const char *capath = NULL;
    if (!ca) {
        capath = getenv(X509_get_default_cert_dir_env());
        if (!capath || !capath[0])
            capath = X509_get_default_cert_dir();
    }
    int rc = mosquitto_tls_set(s->mosq, ca, capath, cert, key, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        dia_instance_error(in, "TLS set-up failed (%s): %s", mosquitto_strerror(rc),
                           tls_files_advice(ca, cert));
        return DIA_ERR_CONFIG;
    }
    tls_insecure_option(in, s);
    return DIA_OK;
}

/* What to check after a failed TLS handshake, from OpenSSL's words (what
 * libmosquitto logged; empty when it logged nothing).  Kept short: the
 * sentence must fit the status line with the broker's address. */
static const char *tls_failure_advice(struct dia_instance *in, const char *openssl_error)
{
    if (!openssl_error[0])
        return "check that the port speaks TLS (a plain port needs mqtt://) and that its "
               "certificate is signed by a trusted CA (or the one in ca-file=)";
    if (!strstr(openssl_error, "certif"))
        return "check that the port speaks TLS (a plain port needs mqtt://)";
    if (dia_opt_str(in->opts, "ca-file", NULL))
        return "check that ca-file= names the CA that signed the broker's certificate, "
               "and that the certificate names the broker's host";
    return "no CA this system trusts signed the broker's certificate (a private CA needs "
           "ca-file=), or it does not name the broker's host";
}

/* OpenSSL's reason, shortened to what a person can use. */
static void tls_reason(struct mqtt_sink *s, char *out, size_t len)
{
    pthread_mutex_lock(&s->lock);
    const char *e = s->tls_error;
    /* "OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify failed" */
    const char *tail = strrchr(e, ':');
    const char *reason = tail && tail[1] ? tail + 1 : e;
    /* Cut to fit (a copy, not snprintf: the cut is intended). */
    size_t n = strnlen(reason, len - 1);
    memcpy(out, reason, n);
    out[n] = '\0';
    pthread_mutex_unlock(&s->lock);
}

/* The reason a connect failed, in words a person can act on. */
static int connect_error(struct dia_instance *in, struct mqtt_sink *s, int rc, int err)
{
    switch (rc) {
    case MOSQ_ERR_TLS: {
        char why[120];
        tls_reason(s, why, sizeof why);
        dia_instance_error(in, "TLS handshake with the broker %s:%d failed%s%s%s: %s", s->host,
                           s->port, why[0] ? " (" : "", why, why[0] ? ")" : "",
                           tls_failure_advice(in, why));
        return DIA_ERR_CONFIG;
    }
    case MOSQ_ERR_EAI:
        dia_instance_error(in, "cannot find the broker host \"%s\" (DNS)", s->host);
        return DIA_ERR_TRANSIENT;
    case MOSQ_ERR_ERRNO:
        dia_instance_error(in, "cannot connect to the broker %s:%d: %s", s->host, s->port,
                           strerror(err));
        return DIA_ERR_TRANSIENT;
    case MOSQ_ERR_INVAL:
        dia_instance_error(in, "the broker address %s:%d is not valid", s->host, s->port);
        return DIA_ERR_CONFIG;
    default:
        dia_instance_error(in, "cannot connect to the broker %s:%d: %s", s->host, s->port,
                           mosquitto_strerror(rc));
        return DIA_ERR_TRANSIENT;
    }
}

static int mqtt_open(struct dia_instance *in)
{
    pthread_once(&lib_once, lib_init);
    struct mqtt_sink *s = calloc(1, sizeof *s);
    if (!s)
        return DIA_ERR_NOMEM;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    in->priv = s;
    s->mid_state = calloc(MQTT_MID_SPACE, sizeof *s->mid_state);
    s->mid_rec = calloc(MQTT_MID_SPACE, sizeof *s->mid_rec);
    if (!s->mid_state || !s->mid_rec) {
        mqtt_close(in);
        return DIA_ERR_NOMEM;
    }
    struct mqtt_address addr;
    char problem[400];
    int rc = mqtt_settings(in->opts, &addr, problem, sizeof problem);
    if (rc != DIA_OK) {
        dia_instance_error(in, "%s", problem);
        mqtt_close(in);
        return rc;
    }
    memcpy(s->host, addr.host, sizeof s->host);
    s->port = addr.port;
    s->tls = addr.tls;
    s->qos = (int)dia_opt_int(in->opts, "qos", 1);
    s->retain_latest = dia_opt_bool(in->opts, "retain-latest", true);
    s->timeout_ms = (long)dia_opt_duration(in->opts, "timeout", 30) * 1000L;
    s->prefix = dia_opt_str(in->opts, "topic", "diabridge");
    s->dexpy_topic = dia_opt_str(in->opts, "dexpy-topic", NULL);
    if (s->dexpy_topic && !s->dexpy_topic[0])
        s->dexpy_topic = NULL;
    s->ha_prefix = dia_opt_str(in->opts, "homeassistant", "homeassistant");
    bool ha_on = true;
    if (dia_parse_bool(s->ha_prefix, &ha_on) == DIA_OK) /* homeassistant=off / on */
        s->ha_prefix = ha_on ? "homeassistant" : NULL;
    else if (!s->ha_prefix[0])
        s->ha_prefix = NULL;
    s->unit = dia_opt_str(in->opts, "unit", "mg/dL");
    s->expire_after_s = (long)dia_opt_duration(in->opts, "expire-after", 900);
    snprintf(s->status_topic, sizeof s->status_topic, "%s/status", s->prefix);
    if (s->ha_prefix)
        snprintf(s->ha_status_topic, sizeof s->ha_status_topic, "%s/status", s->ha_prefix);

    const char *client_id = dia_opt_str(in->opts, "client-id", NULL);
    s->mosq = mosquitto_new(client_id && client_id[0] ? client_id : NULL, true, s);
    if (!s->mosq) {
        explicit_bzero(&addr, sizeof addr);
        mqtt_close(in);
        return DIA_ERR_NOMEM;
    }
    const char *protocol = dia_opt_str(in->opts, "protocol", "3.1.1");
    mosquitto_int_option(s->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         strcmp(protocol, "5") == 0 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    mosquitto_max_inflight_messages_set(s->mosq, MQTT_MAX_INFLIGHT);
    const char *user = dia_opt_str(in->opts, "username", NULL);
    const char *pw = dia_opt_str(in->opts, "password", NULL);
    if (addr.has_user) {
        user = addr.user;
        pw = addr.has_password ? addr.password : NULL;
    }
    if (user || pw)
        mosquitto_username_pw_set(s->mosq, user ? user : "", pw); /* copies them */
    explicit_bzero(&addr, sizeof addr);
    mosquitto_will_set(s->mosq, s->status_topic, 7, "offline", 1, true);
    rc = setup_tls(in, s);
    if (rc != DIA_OK) {
        mqtt_close(in);
        return rc;
    }
    mosquitto_connect_callback_set(s->mosq, on_connect);
    mosquitto_disconnect_callback_set(s->mosq, on_disconnect);
    mosquitto_publish_callback_set(s->mosq, on_publish);
    mosquitto_message_callback_set(s->mosq, on_message);
    mosquitto_log_callback_set(s->mosq, on_log);
    mosquitto_reconnect_delay_set(s->mosq, 1, 30, true);

    int keepalive = (int)dia_opt_duration(in->opts, "keepalive", 60);
    /* packets queued by send() are written by the network thread */
    mosquitto_threaded_set(s->mosq, true);
    errno = 0;
    int mrc = tls_safe_connect(s, keepalive);
    if (mrc != MOSQ_ERR_SUCCESS) {
        rc = connect_error(in, s, mrc, errno);
        mqtt_close(in);
        return rc;
    }
    s->net_timeout_ms = keepalive > 4 ? keepalive * 1000 / 4 : 1000;
    atomic_store(&s->net_stop, false);
    if (pthread_create(&s->net_thread, NULL, mqtt_network_main, s) != 0) {
        dia_instance_error(in, "cannot start the MQTT network thread");
        mqtt_close(in);
        return DIA_ERR_NOMEM;
    }
    s->loop_running = true;

    int64_t deadline = dia_mono_ms() + MQTT_CONNECT_WAIT;
    pthread_mutex_lock(&s->lock);
    while (!s->conn_seen && !s->tls_error[0] && !dia_instance_stopping(in)) {
        int64_t left = deadline - dia_mono_ms();
        if (left <= 0)
            break;
        struct timespec step;
        deadline_after(&step, left < 500 ? (long)left : 500L);
        pthread_cond_timedwait(&s->cond, &s->lock, &step);
    }
    bool seen = s->conn_seen;
    int conn_rc = s->conn_rc;
    char tls_error[sizeof s->tls_error];
    snprintf(tls_error, sizeof tls_error, "%s", s->tls_error);
    pthread_mutex_unlock(&s->lock);
    if (!seen && tls_error[0]) {
        char why[120];
        tls_reason(s, why, sizeof why);
        dia_instance_error(in, "TLS handshake with the broker %s:%d failed (%s): %s", s->host,
                           s->port, why, tls_failure_advice(in, why));
        mqtt_close(in);
        return DIA_ERR_CONFIG;
    }
    if (!seen) {
        dia_instance_error(in,
                           "the broker %s:%d did not answer the MQTT connect in %d s: check that "
                           "this port is the broker's MQTT port (%s), not another service, and "
                           "that the broker is not overloaded",
                           s->host, s->port, MQTT_CONNECT_WAIT / 1000,
                           s->tls ? "mqtts:// needs its TLS port, usually 8883"
                                  : "mqtt:// needs its plain port, usually 1883");
        mqtt_close(in);
        return DIA_ERR_TIMEOUT;
    }
    if (conn_rc != 0) {
        bool v5 = strcmp(protocol, "5") == 0;
        const char *why = v5 ? mosquitto_reason_string(conn_rc) : mosquitto_connack_string(conn_rc);
        enum connack_kind kind = connack_kind(conn_rc);
        if (kind == CONNACK_LOGIN)
            dia_instance_error(in,
                               "the broker %s:%d refused the login (%s): check username= and "
                               "password=",
                               s->host, s->port, why);
        else if (kind == CONNACK_BUSY)
            dia_instance_error(in,
                               "the broker %s:%d cannot take the connection for now (%s); "
                               "trying again shortly",
                               s->host, s->port, why);
        else
            dia_instance_error(in,
                               "the broker %s:%d refused the connection (%s): check the "
                               "broker address, protocol= and client-id=",
                               s->host, s->port, why);
        mqtt_close(in);
        return kind == CONNACK_LOGIN  ? DIA_ERR_AUTH
               : kind == CONNACK_BUSY ? DIA_ERR_TRANSIENT
                                      : DIA_ERR_CONFIG;
    }
    dia_info(in->name, "connected to %s:%d%s", s->host, s->port, s->tls ? " (TLS)" : "");
    return DIA_OK;
}

/* ---- send ------------------------------------------------------------------- */

/* The device's entry (created on first sight), or NULL when the table is
 * full: such a device still gets its records published, without the
 * latest-glucose and Home Assistant topics. */
static struct mqtt_device *device_for(struct dia_instance *in, struct mqtt_sink *s,
                                      const struct dia_record *r)
{
    const char *id = r->device_id[0] ? r->device_id : r->driver;
    for (size_t i = 0; i < s->ndev; i++) {
        if (strcmp(s->dev[i].id, id) == 0)
            return &s->dev[i];
    }
    if (s->ndev == MQTT_MAX_DEVICES)
        return NULL;
    pthread_mutex_lock(&s->lock);
    struct mqtt_device *d = &s->dev[s->ndev++];
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->driver, sizeof d->driver, "%s", r->driver);
    mqtt_map_topic_level(id, d->level, sizeof d->level);
    pthread_mutex_unlock(&s->lock);
    /* the newest reading already retained, from before a restart */
    char key[80], val[32];
    snprintf(key, sizeof key, "latest:%s", d->id);
    if (in->journal && dia_journal_state_get(in->journal, in->name, key, val, sizeof val) == 1)
        d->newest_ms = strtoll(val, NULL, 10);
    return d;
}

static void announce_device(struct dia_instance *in, struct mqtt_sink *s, struct mqtt_device *d)
{
    if (!s->ha_prefix || d->ha_topic)
        return;
    char node[80], state[400], topic[400];
    mqtt_map_ha_node_id(d->id, node, sizeof node);
    snprintf(state, sizeof state, "%s/%s/glucose/latest", s->prefix, d->level);
    snprintf(topic, sizeof topic, "%s/sensor/%s/glucose/config", s->ha_prefix, node);
    struct mqtt_ha_sensor ha = {
        .node_id = node,
        .state_topic = state,
        .availability_topic = s->status_topic,
        .unit = s->unit,
        .expire_after_s = s->expire_after_s,
        .device_id = d->id,
        .driver = d->driver,
    };
    char *payload = mqtt_map_ha_config(&ha);
    char *t = strdup(topic);
    if (!payload || !t) {
        free(payload);
        free(t);
        return;
    }
    pthread_mutex_lock(&s->lock);
    d->ha_topic = t;
    d->ha_payload = payload;
    int rc = mosquitto_publish(s->mosq, NULL, t, (int)strlen(payload), payload, 1, true);
    pthread_mutex_unlock(&s->lock);
    if (rc == MOSQ_ERR_SUCCESS)
        dia_info(in->name, "announced %s to Home Assistant on %s", d->id, topic);
}

/* Publish one message for record rec and note its id. */
static int publish_for(struct dia_instance *in, struct mqtt_sink *s, uint32_t rec,
                       const char *topic, const char *payload, int len, bool retain)
{
    int mid = 0;
    int rc = mosquitto_publish(s->mosq, &mid, topic, len, payload, s->qos, retain);
    if (rc != MOSQ_ERR_SUCCESS) {
        dia_instance_error(in, "publishing to %s failed: %s", topic, mosquitto_strerror(rc));
        return rc == MOSQ_ERR_NOMEM ? DIA_ERR_NOMEM : DIA_ERR_TRANSIENT;
    }
    unsigned idx = (unsigned)mid & (MQTT_MID_SPACE - 1);
    pthread_mutex_lock(&s->lock);
    if (s->mid_state[idx] == MID_EARLY) {
        s->mid_state[idx] = MID_NONE; /* already acknowledged */
    } else {
        s->mid_state[idx] = MID_PENDING;
        s->mid_rec[idx] = rec;
        s->remaining[rec]++;
    }
    pthread_mutex_unlock(&s->lock);
    return DIA_OK;
}

static int publish_record(struct dia_instance *in, struct mqtt_sink *s, uint32_t i,
                          const struct dia_record *r)
{
    struct mqtt_device spare, *d = device_for(in, s, r);
    char topic[400];
    if (!d) {
        memset(&spare, 0, sizeof spare);
        mqtt_map_topic_level(r->device_id[0] ? r->device_id : r->driver, spare.level,
                             sizeof spare.level);
        spare.newest_ms = INT64_MAX; /* no latest topic for it */
        d = &spare;
    }
    bool glucose = r->kind == DIA_KIND_GLUCOSE && r->u.glucose.mgdl != DIA_ABSENT;
    struct mqtt_glucose_ctx g = {0};
    if (glucose && d->prev_t_ms > 0 && d->prev_t_ms < r->t_utc_ms) {
        g.prev_t_ms = d->prev_t_ms;
        g.prev_mgdl = d->prev_mgdl;
    }
    char *json = mqtt_map_record_json(r, &g);
    if (!json)
        return DIA_ERR_NOMEM;
    snprintf(topic, sizeof topic, "%s/%s/%s", s->prefix, d->level, dia_kind_name(r->kind));
    int rc = publish_for(in, s, i, topic, json, (int)strlen(json), false);
    if (rc == DIA_OK && glucose) {
        if (r->t_utc_ms > d->prev_t_ms) {
            d->prev_t_ms = r->t_utc_ms;
            d->prev_mgdl = r->u.glucose.mgdl;
        }
        /* only a newer reading may replace the retained latest one */
        if (r->t_utc_ms > d->newest_ms) {
            announce_device(in, s, d);
            snprintf(topic, sizeof topic, "%s/%s/glucose/latest", s->prefix, d->level);
            rc = publish_for(in, s, i, topic, json, (int)strlen(json), s->retain_latest);
            if (rc == DIA_OK) {
                d->newest_ms = r->t_utc_ms;
                d->newest_dirty = true;
            }
        }
    }
    free(json);
    if (rc == DIA_OK && glucose && s->dexpy_topic) {
        char dx[64];
        int n = mqtt_map_dexpy_payload(r, dx, sizeof dx);
        if (n > 0)
            rc = publish_for(in, s, i, s->dexpy_topic, dx, n, false);
    }
    return rc;
}

static void save_newest(struct dia_instance *in, struct mqtt_sink *s)
{
    for (size_t i = 0; i < s->ndev; i++) {
        struct mqtt_device *d = &s->dev[i];
        if (!d->newest_dirty || !in->journal)
            continue;
        char key[80], val[32];
        snprintf(key, sizeof key, "latest:%s", d->id);
        snprintf(val, sizeof val, "%lld", (long long)d->newest_ms);
        if (dia_journal_state_set(in->journal, in->name, key, val) == DIA_OK)
            d->newest_dirty = false;
    }
}

static int mqtt_send(struct dia_instance *in, const struct dia_record *recs, size_t n,
                     size_t *acked)
{
    struct mqtt_sink *s = in->priv;
    *acked = 0;
    pthread_mutex_lock(&s->lock); /* on_publish may be using the old array */
    if (n > s->remaining_cap) {
        uint32_t *nr = realloc(s->remaining, n * sizeof *nr);
        if (!nr) {
            pthread_mutex_unlock(&s->lock);
            return DIA_ERR_NOMEM;
        }
        s->remaining = nr;
        s->remaining_cap = n;
    }
    bool connected = s->connected;
    memset(s->mid_state, 0, MQTT_MID_SPACE * sizeof *s->mid_state);
    memset(s->remaining, 0, n * sizeof *s->remaining);
    pthread_mutex_unlock(&s->lock);
    if (!connected) {
        dia_instance_error(in, "the connection to the broker %s:%d was lost", s->host, s->port);
        return DIA_ERR_TRANSIENT;
    }

    size_t issued = 0; /* records whose messages were all handed to libmosquitto */
    int rc = DIA_OK;
    for (size_t i = 0; i < n && rc == DIA_OK; i++) {
        rc = publish_record(in, s, (uint32_t)i, &recs[i]);
        if (rc == DIA_OK)
            issued = i + 1;
    }

    /* wait for the acknowledgements of what was issued */
    int64_t deadline = dia_mono_ms() + s->timeout_ms;
    size_t done = 0;
    bool lost = false, timed_out = false;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (done < issued && s->remaining[done] == 0)
            done++;
        if (done == issued)
            break;
        if (!s->connected) {
            lost = true;
            break;
        }
        if (dia_instance_stopping(in))
            break;
        int64_t left = deadline - dia_mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct timespec step; /* look at the stop flag now and then */
        deadline_after(&step, left < 500 ? (long)left : 500L);
        pthread_cond_timedwait(&s->cond, &s->lock, &step);
    }
    pthread_mutex_unlock(&s->lock);
    *acked = done;
    /* after a failure this instance is closed and the next one reads the
     * saved state again, so only a batch confirmed whole may move it */
    if (done == n)
        save_newest(in, s);
    if (rc != DIA_OK)
        return rc;
    if (lost) {
        dia_instance_error(in,
                           "the connection to the broker %s:%d was lost with %zu of %zu "
                           "messages unconfirmed; they will be sent again",
                           s->host, s->port, issued - done, n);
        return DIA_ERR_TRANSIENT;
    }
    if (timed_out) {
        atomic_fetch_add(&in->counters.timeouts, 1);
        dia_instance_error(in, "the broker %s:%d did not confirm %zu messages within %ld s",
                           s->host, s->port, issued - done, s->timeout_ms / 1000);
        return DIA_ERR_TIMEOUT;
    }
    if (done < n) {
        dia_instance_error(in, "stopping before the broker confirmed every message");
        return DIA_ERR_STOPPING;
    }
    return DIA_OK;
}

const struct dia_sink_driver dia_sink_mqtt = {
    .name = "mqtt",
    .description = "MQTT broker (libmosquitto): JSON per record, retained latest glucose, "
                   "Home Assistant discovery",
    .target_help = "mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)",
    .options = mqtt_options,
    .default_batch = MQTT_DEFAULT_BATCH,
    .check = mqtt_check,
    .open = mqtt_open,
    .send = mqtt_send,
    .close = mqtt_close,
    /* the topic prefix: subscribers of another prefix see none of it */
    .destination_options = (const char *const[]){"topic", NULL},
};
