/*
 * Supervisor and workers.
 *
 * Each source and sink is a sequential loop on its own thread; the journal
 * is the only state they share (DESIGN §1).  The supervisor (main thread)
 * owns signals, systemd notifications, the status table and retention.
 *
 * Failure policy: a worker whose open/poll/send fails closes its driver,
 * waits with capped exponential back-off plus jitter, and starts again;
 * credential and configuration failures wait much longer, because retrying
 * a wrong password quickly can lock the user's account.  A source that
 * sets retries_in_place (a cloud login is costly) stays open through
 * passing poll failures instead: counted, shown, and polled again when the
 * driver says.  Nothing a worker does can take down another worker or the
 * daemon.
 *
 * Shutdown: SIGTERM/SIGINT set the stop flag and wake every sleeper.  A
 * worker finishes what it is doing — a poll and its commit, a batch send and
 * its cursor update — and only then returns, so no acknowledged work is lost.
 */
#include "core/daemon.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/driver.h"
#include "core/err.h"
#include "core/journal.h"
#include "core/journal_lock.h"
#include "core/log.h"
#include "core/url.h"

#define BACKOFF_MIN_MS    1000
#define BACKOFF_MAX_MS    (5 * 60 * 1000)
#define BACKOFF_AUTH_MS   (30 * 60 * 1000) /* wrong password: do not hammer the account */
#define SINK_IDLE_WAIT_MS 120000           /* re-check the journal at least this often */
/* Status rows are rewritten at once when a worker changes state, at most
 * every STATUS_MIN_MS while records flow, and every STATUS_HEARTBEAT_MS
 * otherwise.  An idle daemon therefore wakes a few times a minute, not
 * once a second (issue #7: idle cost on a shared Raspberry Pi). */
#define STATUS_MIN_MS       5000
#define STATUS_HEARTBEAT_MS 60000
#define PRUNE_INTERVAL_MS   (60 * 60 * 1000)

enum worker_state { W_STARTING, W_RUNNING, W_BACKOFF, W_STOPPED };
static const char *const state_names[] = {"starting", "running", "backing off", "stopped"};

struct daemon;

struct worker {
    struct daemon *d;
    bool is_sink;
    const struct dia_source_driver *src;
    const struct dia_sink_driver *sink;
    struct dia_instance in;
    pthread_t thread;
    bool started;

    pthread_mutex_t lock; /* guards the fields below (read by the status writer) */
    enum worker_state state;
    int64_t last_success_ms;
    int64_t next_attempt_ms;
    char error[256];
    char warning[256]; /* the driver's in.warning, copied under lock for status */
    unsigned restarts;
};

struct daemon {
    const struct dia_daemon_params *p;
    struct dia_journal_hub hub;
    atomic_bool stop;
    pthread_mutex_t sleep_lock;
    pthread_cond_t sleep_cond; /* CLOCK_MONOTONIC */
    struct worker *workers;
    size_t nworkers;
    int wake_fd;                /* eventfd: workers poke the supervisor */
    atomic_bool state_dirty;    /* a worker changed state: write status now */
    atomic_bool counters_dirty; /* records moved: write status soon */
};

static void poke_supervisor(struct daemon *d)
{
    uint64_t one = 1;
    if (d->wake_fd >= 0 && write(d->wake_fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is saturated, so a wake-up is pending anyway */
    }
}

static void state_changed(struct daemon *d)
{
    atomic_store(&d->state_dirty, true);
    poke_supervisor(d);
}

static void records_moved(struct daemon *d)
{
    if (!atomic_exchange(&d->counters_dirty, true))
        poke_supervisor(d);
}

/* ---- helpers ------------------------------------------------------------- */

/* Sleep until wall time `until_ms` or until stop; returns false when stopping. */
static bool sleep_until(struct daemon *d, int64_t until_ms)
{
    int64_t wait = until_ms - dia_now_ms();
    if (wait <= 0)
        return !atomic_load(&d->stop);
    struct timespec deadline = dia_mono_deadline(wait);
    pthread_mutex_lock(&d->sleep_lock);
    while (!atomic_load(&d->stop)) {
        if (pthread_cond_timedwait(&d->sleep_cond, &d->sleep_lock, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&d->sleep_lock);
    return !atomic_load(&d->stop);
}

static unsigned jitter_seed(const struct worker *w)
{
    return (unsigned)((uintptr_t)w ^ (uintptr_t)dia_mono_ms());
}

/* Capped exponential back-off with ±25% jitter, so many diabridges behind
 * one outage do not retry in lockstep. */
static int64_t next_backoff(int64_t current, int err, unsigned *seed)
{
    int64_t base;
    if (err == DIA_ERR_AUTH || err == DIA_ERR_CONFIG)
        base = BACKOFF_AUTH_MS;
    else if (current <= 0)
        base = BACKOFF_MIN_MS;
    else
        base = current * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : current * 2;
    int64_t spread = base / 4;
    int64_t j = spread ? (int64_t)(rand_r(seed) % (2 * spread + 1)) - spread : 0;
    return base + j;
}

static void set_state(struct worker *w, enum worker_state st, int err)
{
    pthread_mutex_lock(&w->lock);
    w->state = st;
    if (st == W_RUNNING && err == DIA_OK)
        w->last_success_ms = dia_now_ms();
    if (err != DIA_OK) {
        if (w->in.last_error[0])
            snprintf(w->error, sizeof w->error, "%s", w->in.last_error);
        else
            snprintf(w->error, sizeof w->error, "%s", dia_strerror(err));
    }
    pthread_mutex_unlock(&w->lock);
    state_changed(w->d);
}

/* Opened, but nothing is proven yet: a lazy driver (the Nightscout sink
 * connects on its first send) opens fine while its server is down, so only
 * real work counts as "last ok" and clears the last error. */
static void mark_started(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    bool changed = w->state != W_RUNNING;
    w->state = W_RUNNING;
    pthread_mutex_unlock(&w->lock);
    if (changed)
        state_changed(w->d);
}

static void mark_success(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    bool changed = w->state != W_RUNNING || w->error[0];
    w->state = W_RUNNING;
    w->last_success_ms = dia_now_ms();
    w->error[0] = '\0';
    w->in.last_error[0] = '\0';
    pthread_mutex_unlock(&w->lock);
    if (changed)
        state_changed(w->d);
}

/* The driver's standing warning, for status (only the worker thread writes
 * in.warning; the supervisor reads the copy). */
static void take_warning(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    bool changed = strcmp(w->warning, w->in.warning) != 0;
    if (changed)
        snprintf(w->warning, sizeof w->warning, "%s", w->in.warning);
    pthread_mutex_unlock(&w->lock);
    if (changed)
        state_changed(w->d);
}

/* A failure: log it, count it, and sleep the back-off.  false = stopping. */
static bool fail_and_wait(struct worker *w, const char *what, int err, int64_t *backoff,
                          unsigned *seed)
{
    atomic_fetch_add(&w->in.counters.failures, 1);
    *backoff = next_backoff(*backoff, err, seed);
    /* A driver that keeps a longer wait of its own (dia_instance.retry_at_ms)
     * has said in its error when it tries again: wait exactly that long and
     * add nothing to its sentence, so the log speaks with one voice. */
    bool driver_waits = false;
    if (err == DIA_ERR_AUTH || err == DIA_ERR_CONFIG) {
        int64_t wait = w->in.retry_at_ms - dia_now_ms();
        if (w->in.retry_at_ms > 0 && wait > BACKOFF_MIN_MS) {
            *backoff = wait;
            driver_waits = true;
        }
    }
    w->in.retry_at_ms = 0;
    /* The time before the state: the status writer, woken by set_state,
     * must not show "backing off" with the previous attempt's time. */
    int64_t until = dia_now_ms() + *backoff;
    pthread_mutex_lock(&w->lock);
    w->next_attempt_ms = until;
    pthread_mutex_unlock(&w->lock);
    set_state(w, W_BACKOFF, err);
    pthread_mutex_lock(&w->lock);
    w->restarts++;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", w->error);
    pthread_mutex_unlock(&w->lock);
    atomic_fetch_add(&w->in.counters.reconnects, 1);
    if (driver_waits)
        dia_err(w->in.name, "%s failed: %s", what, msg);
    else if (err == DIA_ERR_AUTH || err == DIA_ERR_CONFIG)
        dia_err(w->in.name,
                "%s failed: %s; trying again in %lld minutes (fix the settings and "
                "restart diabridge to try at once)",
                what, msg, (long long)(*backoff / 60000));
    else
        dia_warn(w->in.name, "%s failed: %s; retrying in %.1f s", what, msg, *backoff / 1000.0);
    return sleep_until(w->d, until);
}

/* A passing poll failure of a driver that retries in place
 * (dia_source_driver.retries_in_place): counted and shown like any failure,
 * but the driver stays open (its session too) and is polled again at the
 * time it chose.  false = stopping. */
static bool retry_in_place(struct worker *w, int err, int64_t next_ms)
{
    /* a driver that forgot to set a time must not turn into a busy loop */
    if (next_ms < dia_now_ms() + BACKOFF_MIN_MS)
        next_ms = dia_now_ms() + BACKOFF_MIN_MS;
    atomic_fetch_add(&w->in.counters.failures, 1);
    pthread_mutex_lock(&w->lock);
    w->next_attempt_ms = next_ms;
    pthread_mutex_unlock(&w->lock);
    set_state(w, W_BACKOFF, err);
    pthread_mutex_lock(&w->lock);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", w->error);
    pthread_mutex_unlock(&w->lock);
    dia_warn(w->in.name, "reading failed: %s; next try in %.1f s", msg,
             (double)(next_ms - dia_now_ms()) / 1000.0);
    return sleep_until(w->d, next_ms);
}

static struct dia_journal *open_worker_journal(struct worker *w)
{
    struct dia_journal_config jc = {
        .path = w->d->p->journal_path, .sync = w->d->p->cfg->sync, .hub = &w->d->hub};
    int64_t backoff = 0;
    unsigned seed = jitter_seed(w);
    while (!atomic_load(&w->d->stop)) {
        struct dia_journal *j = NULL;
        char err[512];
        int rc = dia_journal_open(&jc, &j, err, sizeof err);
        if (rc == DIA_OK)
            return j;
        dia_instance_error(&w->in, "%s", err);
        if (!fail_and_wait(w, "opening the journal", rc, &backoff, &seed))
            break;
    }
    return NULL;
}

/* ---- source worker ------------------------------------------------------- */

/* Commit a polled batch, retrying while the journal is temporarily unable
 * (disk full, busy).  Returns DIA_OK, or the error when stopping or when the
 * batch itself is bad (then it is dropped: the source's state did not move,
 * so the device will be read again). */
static int commit_batch(struct worker *w, struct dia_batch *batch)
{
    int64_t backoff = 0;
    unsigned seed = jitter_seed(w);
    for (;;) {
        struct dia_commit_result res;
        int rc = dia_journal_commit(w->in.journal, w->in.name, batch, &res);
        if (rc == DIA_OK) {
            atomic_fetch_add(&w->in.counters.records, res.inserted);
            atomic_fetch_add(&w->in.counters.duplicates, res.duplicates);
            if (res.inserted)
                records_moved(w->d);
            if (res.inserted)
                dia_debug(w->in.name, "stored %zu new records (%zu already known, %zu merged)",
                          res.inserted, res.duplicates, res.merged);
            return DIA_OK;
        }
        dia_instance_error(&w->in, "%s", dia_journal_errmsg(w->in.journal));
        if (rc == DIA_ERR_IMPLAUSIBLE) {
            atomic_fetch_add(&w->in.counters.implausible, 1);
            dia_err(w->in.name, "%s", w->in.last_error);
            return rc;
        }
        if (!fail_and_wait(w, "storing records", rc, &backoff, &seed))
            return DIA_ERR_STOPPING;
    }
}

static void *source_main(void *arg)
{
    struct worker *w = arg;
    const struct dia_source_driver *drv = w->src;
    struct dia_batch batch;
    dia_batch_init(&batch);
    int64_t backoff = 0;
    unsigned seed = jitter_seed(w);

    w->in.journal = open_worker_journal(w);
    while (w->in.journal && !atomic_load(&w->d->stop)) {
        set_state(w, W_STARTING, DIA_OK);
        int rc = drv->open(&w->in);
        if (rc != DIA_OK) {
            if (!fail_and_wait(w, "opening", rc, &backoff, &seed))
                break;
            continue;
        }
        dia_info(w->in.name, "started");
        mark_started(w);
        while (!atomic_load(&w->d->stop)) {
            dia_batch_clear(&batch);
            int64_t next_ms = dia_now_ms() + 60000;
            rc = drv->poll(&w->in, &batch, &next_ms);
            atomic_fetch_add(&w->in.counters.polls, 1);
            take_warning(w);
            if (drv->retries_in_place && (rc == DIA_ERR_TRANSIENT || rc == DIA_ERR_TIMEOUT)) {
                if (!retry_in_place(w, rc, next_ms))
                    break;
                continue;
            }
            if (rc != DIA_OK)
                break;
            rc = commit_batch(w, &batch);
            if (rc == DIA_ERR_STOPPING)
                break;
            if (rc == DIA_OK) {
                if (drv->committed)
                    drv->committed(&w->in, &batch);
                backoff = 0;
                mark_success(w);
            } else {
                break; /* the driver produced a bad record: restart it */
            }
            if (!sleep_until(w->d, next_ms))
                break;
        }
        drv->close(&w->in);
        w->in.priv = NULL;
        if (atomic_load(&w->d->stop))
            break;
        if (!fail_and_wait(w, "reading", rc, &backoff, &seed))
            break;
    }
    dia_batch_free(&batch);
    set_state(w, W_STOPPED, DIA_OK);
    return NULL;
}

/* ---- sink worker --------------------------------------------------------- */

/*
 * Dead letters the user asked to send again (`diabridge dead-letters
 * --retry`, usually from another process, so this is checked whenever the
 * sink has caught up rather than woken).  Delivered ones are removed; one
 * refused again keeps its dead letter with the new reason.  A connection
 * problem (transient, timeout) returns the error and the requests stay for
 * after the reconnect.  Any other failure may be caused by these very
 * records (a site that judges a batch of nothing but refused documents a
 * misconfiguration), so the try is given up with that reason rather than
 * repeated before every live batch.
 */
static int deliver_retries(struct worker *w, const struct dia_sink_driver *drv,
                           struct dia_record *recs, size_t max)
{
    for (;;) {
        size_t n = 0;
        int rc = dia_journal_read_retry(w->in.journal, w->in.name, recs, max, &n);
        if (rc != DIA_OK) {
            dia_instance_error(&w->in, "%s", dia_journal_errmsg(w->in.journal));
            return rc;
        }
        if (n == 0)
            return DIA_OK;
        size_t acked = 0;
        rc = drv->send(&w->in, recs, n, &acked);
        if (acked > n)
            acked = n;
        for (size_t i = 0; i < acked; i++) {
            int drc = dia_journal_retry_done(w->in.journal, w->in.name, recs[i].seq, NULL);
            if (drc != DIA_OK) {
                dia_instance_error(&w->in, "%s", dia_journal_errmsg(w->in.journal));
                return drc;
            }
        }
        if (acked > 0) {
            dia_info(w->in.name, "delivered %zu dead-lettered record%s on another try", acked,
                     acked == 1 ? "" : "s");
            atomic_fetch_add(&w->in.counters.records, acked);
        }
        if (rc == DIA_OK && acked > 0)
            continue;
        if (rc == DIA_OK)
            return DIA_OK; /* nothing taken and no error: try again next time */
        if (rc == DIA_ERR_TRANSIENT || rc == DIA_ERR_TIMEOUT || acked >= n)
            return rc;
        if (rc != DIA_ERR_PERMANENT) {
            char reason[sizeof w->in.last_error + 64];
            snprintf(reason, sizeof reason, "another try failed: %s",
                     w->in.last_error[0] ? w->in.last_error : dia_strerror(rc));
            dia_warn(w->in.name, "giving up the new try of %zu dead letter%s: %s", n - acked,
                     n - acked == 1 ? "" : "s", reason);
            for (size_t i = acked; i < n; i++) {
                int drc = dia_journal_retry_done(w->in.journal, w->in.name, recs[i].seq, reason);
                if (drc != DIA_OK) {
                    dia_instance_error(&w->in, "%s", dia_journal_errmsg(w->in.journal));
                    return drc;
                }
            }
            w->in.last_error[0] = '\0';
            return DIA_OK;
        }
        const char *reason = w->in.last_error[0] ? w->in.last_error : "rejected";
        dia_err(w->in.name, "record seq %lld (%s %s) refused again: %s", (long long)recs[acked].seq,
                dia_kind_name(recs[acked].kind), recs[acked].key, reason);
        int drc = dia_journal_retry_done(w->in.journal, w->in.name, recs[acked].seq, reason);
        if (drc != DIA_OK) {
            dia_instance_error(&w->in, "%s", dia_journal_errmsg(w->in.journal));
            return drc;
        }
    }
}

/* What a sink delivers to, for tying its cursor to it: the driver, the
 * display form of its target, and the values of the options its driver
 * says choose the destination, written as in a spec
 * ("influx:http://db.lan:8086,db=cgm").  That names the file, server,
 * database or topic but no secret, so a new password or token keeps the
 * cursor while a new place gets the journal from the start.
 * with_destination false: the form cursors were stored in before
 * destination options counted. */
static void sink_target(const struct dia_sink_driver *drv, const struct dia_options *o,
                        bool with_destination, char *buf, size_t len)
{
    char shown[448] = "";
    if (o->target)
        dia_url_display(o->target, shown, sizeof shown);
    int used = snprintf(buf, len, "%s%s%s", o->driver, o->target ? ":" : "", shown);
    const char *const *keys = with_destination ? drv->destination_options : NULL;
    for (; keys && *keys && used >= 0 && (size_t)used < len; keys++) {
        for (size_t i = 0; i < o->n; i++) {
            const struct dia_option_value *v = &o->v[i];
            if (v->secret || strcmp(v->key, *keys) != 0)
                continue;
            /* quoted as in a spec, so "a,b" cannot pass for a and b */
            bool quote = strpbrk(v->value, ",\"") != NULL;
            int w = snprintf(buf + used, len - (size_t)used, ",%s=%s%s%s", v->key,
                             quote ? "\"" : "", v->value, quote ? "\"" : "");
            if (w < 0)
                break;
            used += w;
            break;
        }
    }
}

/* Tell the user what start-up did with a sink's cursor.  A new place
 * getting the whole journal is said loudly: it costs a replay, and if the
 * user did not mean to change the place, a line above moved. */
static void report_binding(const char *sink, const char *target, const struct dia_cursor_binding *b)
{
    char kept[700] = "";
    if (b->previous_kept)
        snprintf(kept, sizeof kept,
                 " Its progress for %s (up to seq %lld) is kept, in case a sink delivers there "
                 "again.",
                 b->previous_target, (long long)b->previous_seq);
    char dead[256] = "";
    bool one = b->dead_letters_dropped == 1;
    if (b->dead_letters_dropped > 0 && b->outcome == DIA_CURSOR_MOVED)
        snprintf(dead, sizeof dead,
                 " The old target's %lld dead letter%s %s removed; %s sent to the new one with "
                 "the rest.",
                 (long long)b->dead_letters_dropped, one ? "" : "s", one ? "was" : "were",
                 one ? "its record is" : "their records are");
    else if (b->dead_letters_dropped > 0)
        snprintf(dead, sizeof dead, " The old target's %lld dead letter%s %s removed with it.",
                 (long long)b->dead_letters_dropped, one ? "" : "s", one ? "was" : "were");
    switch (b->outcome) {
    case DIA_CURSOR_ADOPTED:
        dia_info(sink, "its delivery progress (up to seq %lld) is now tied to %s",
                 (long long)b->seq, target);
        break;
    case DIA_CURSOR_TAKEN_OVER:
        dia_info(sink,
                 "the delivery progress of its target %s (up to seq %lld) was stored under the "
                 "name %s: a line above this one was deleted or moved, or the sink was renamed. "
                 "It continues from there, so nothing is sent twice and nothing is missed.%s%s "
                 "Give every sink a name=… so that a name keeps meaning one place.",
                 target, (long long)b->seq, b->taken_from, kept, dead);
        break;
    case DIA_CURSOR_MOVED:
        dia_warn(sink,
                 "this sink now delivers to %s, but its stored progress (up to seq %lld) was for "
                 "%s. The new target gets the whole journal from the start, so that it misses "
                 "nothing; records it already has come again with the same identities (a "
                 "server keeps one copy, a file gets them twice).%s%s If you did not change this "
                 "sink's target, a line above it was deleted or moved: give every sink a "
                 "name=… so that a name keeps meaning one place.",
                 target, (long long)b->previous_seq, b->previous_target, dead, kept);
        break;
    default: /* NEW, SAME: nothing to say */
        break;
    }
}

/* Tie every sink's cursor to its target (dia_journal_cursors_bind), all
 * together before any sink starts, because only the whole configuration
 * tells a name that is gone from one that is still used: a sink whose line
 * moved up takes over the cursor its target had under its old name, two
 * sinks that swapped names swap cursors, and no cursor goes to two sinks.
 * On failure err says why. */
static int bind_sink_cursors(const struct dia_config *cfg, struct dia_journal *j, char *err,
                             size_t err_len)
{
    enum { FORM_LEN = 1024 };
    size_t n = cfg->nsinks;
    if (n == 0)
        return DIA_OK;
    struct dia_cursor_claim *claims = calloc(n, sizeof *claims);
    char(*forms)[2][FORM_LEN] = calloc(n, sizeof *forms);
    if (!claims || !forms) {
        free(claims);
        free(forms);
        snprintf(err, err_len, "out of memory while tying sink cursors to their targets");
        return DIA_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const struct dia_instance_config *ic = &cfg->sinks[i];
        const struct dia_sink_driver *drv = dia_sink_driver_find(ic->opts.driver);
        if (!drv) { /* validated before; cannot happen */
            free(claims);
            free(forms);
            snprintf(err, err_len, "%s: no sink driver named %s", ic->name, ic->opts.driver);
            return DIA_ERR_CONFIG;
        }
        sink_target(drv, &ic->opts, true, forms[i][0], FORM_LEN);
        sink_target(drv, &ic->opts, false, forms[i][1], FORM_LEN);
        claims[i].sink = ic->name;
        claims[i].target = forms[i][0];
        claims[i].former_target = strcmp(forms[i][0], forms[i][1]) != 0 ? forms[i][1] : NULL;
    }
    int rc = dia_journal_cursors_bind(j, claims, n);
    if (rc == DIA_OK) {
        for (size_t i = 0; i < n; i++)
            report_binding(claims[i].sink, claims[i].target, &claims[i].result);
    } else {
        snprintf(err, err_len, "%s", dia_journal_errmsg(j));
    }
    free(claims);
    free(forms);
    return rc;
}

/* Where this sink continues: its cursor, which bind_sink_cursors tied to
 * its target before the sink started. */
static int sink_cursor_start(struct worker *w, int64_t *cursor)
{
    return dia_journal_cursor_get(w->in.journal, w->in.name, cursor);
}

static void *sink_main(void *arg)
{
    struct worker *w = arg;
    const struct dia_sink_driver *drv = w->sink;
    size_t max = (size_t)dia_opt_int(w->in.opts, "batch", (long long)drv->default_batch);
    if (max == 0)
        max = 100;
    struct dia_record *recs = calloc(max, sizeof *recs);
    int64_t backoff = 0;
    unsigned seed = jitter_seed(w);
    int64_t cursor = 0;

    if (!recs) {
        dia_err(w->in.name, "out of memory for a batch of %zu records", max);
        set_state(w, W_STOPPED, DIA_ERR_NOMEM);
        return NULL;
    }
    w->in.journal = open_worker_journal(w);
    while (w->in.journal && !atomic_load(&w->d->stop)) {
        int rc = sink_cursor_start(w, &cursor);
        if (rc == DIA_OK) {
            set_state(w, W_STARTING, DIA_OK);
            rc = drv->open(&w->in);
        } else {
            dia_instance_error(&w->in, "%s", dia_journal_errmsg(w->in.journal));
        }
        if (rc != DIA_OK) {
            if (!fail_and_wait(w, "opening", rc, &backoff, &seed))
                break;
            continue;
        }
        dia_info(w->in.name, "started; delivering records after seq %lld", (long long)cursor);
        mark_started(w);
        uint64_t seen = 0;
        while (!atomic_load(&w->d->stop)) {
            /* Take the hub version before reading, so a commit between the
             * read and the wait still wakes us. */
            pthread_mutex_lock(&w->d->hub.lock);
            seen = w->d->hub.version;
            pthread_mutex_unlock(&w->d->hub.lock);
            size_t n = 0;
            rc = dia_journal_read(w->in.journal, cursor, recs, max, &n);
            if (rc != DIA_OK) {
                dia_instance_error(&w->in, "%s", dia_journal_errmsg(w->in.journal));
                break;
            }
            if (n == 0) {
                /* Caught up: only now the dead letters asked for again, so
                 * old records never hold up live ones. */
                rc = deliver_retries(w, drv, recs, max);
                if (rc != DIA_OK)
                    break;
                take_warning(w);
                dia_journal_hub_wait(&w->d->hub, seen, SINK_IDLE_WAIT_MS);
                continue;
            }
            size_t acked = 0;
            rc = drv->send(&w->in, recs, n, &acked);
            atomic_fetch_add(&w->in.counters.polls, 1);
            if (acked > n)
                acked = n; /* a driver bug must not move the cursor past what was sent */
            if (acked > 0) {
                int crc = dia_journal_cursor_set(w->in.journal, w->in.name, recs[acked - 1].seq);
                if (crc != DIA_OK) {
                    /* Delivered but not recorded: they will be sent again,
                     * which the sinks' stable identities absorb. */
                    dia_instance_error(&w->in, "%s", dia_journal_errmsg(w->in.journal));
                    rc = crc;
                    break;
                }
                cursor = recs[acked - 1].seq;
                atomic_fetch_add(&w->in.counters.records, acked);
                records_moved(w->d);
            }
            if (rc == DIA_OK) {
                backoff = 0;
                mark_success(w);
                continue;
            }
            if (rc == DIA_ERR_PERMANENT && acked < n) {
                const char *reason = w->in.last_error[0] ? w->in.last_error : "rejected";
                dia_err(w->in.name, "giving up on record seq %lld (%s %s): %s",
                        (long long)recs[acked].seq, dia_kind_name(recs[acked].kind),
                        recs[acked].key, reason);
                int drc =
                    dia_journal_dead_letter(w->in.journal, w->in.name, recs[acked].seq, reason);
                if (drc != DIA_OK) {
                    dia_instance_error(&w->in, "%s", dia_journal_errmsg(w->in.journal));
                    rc = drc;
                    break;
                }
                cursor = recs[acked].seq;
                atomic_fetch_add(&w->in.counters.dead_letters, 1);
                continue;
            }
            break; /* transient or auth: reconnect after back-off */
        }
        drv->close(&w->in);
        w->in.priv = NULL;
        if (atomic_load(&w->d->stop))
            break;
        if (!fail_and_wait(w, "sending", rc, &backoff, &seed))
            break;
    }
    free(recs);
    set_state(w, W_STOPPED, DIA_OK);
    return NULL;
}

/* ---- status -------------------------------------------------------------- */

static json_t *counters_json(const struct dia_counters *c)
{
    return json_pack("{sI sI sI sI sI sI sI sI sI sI sI}", "polls", (json_int_t)c->polls,
                     "frames_ok", (json_int_t)c->frames_ok, "crc_errors", (json_int_t)c->crc_errors,
                     "decode_errors", (json_int_t)c->decode_errors, "implausible",
                     (json_int_t)c->implausible, "timeouts", (json_int_t)c->timeouts, "restarts",
                     (json_int_t)c->reconnects, "records", (json_int_t)c->records, "duplicates",
                     (json_int_t)c->duplicates, "dead_letters", (json_int_t)c->dead_letters,
                     "failures", (json_int_t)c->failures);
}

static void write_status(struct daemon *d, struct dia_journal *j)
{
    if (dia_journal_begin(j) != DIA_OK) {
        dia_debug("daemon", "%s", dia_journal_errmsg(j));
        return;
    }
    bool ok = true;
    for (size_t i = 0; i < d->nworkers; i++) {
        struct worker *w = &d->workers[i];
        char spec[512];
        dia_options_describe(w->in.opts, spec, sizeof spec); /* secrets redacted */
        pthread_mutex_lock(&w->lock);
        json_t *o =
            json_pack("{ss ss ss ss sI sI ss ss sI}", "role", w->is_sink ? "sink" : "source",
                      "driver", w->in.opts->driver, "spec", spec, "state", state_names[w->state],
                      "last_success_ms", (json_int_t)w->last_success_ms, "next_attempt_ms",
                      (json_int_t)(w->state == W_BACKOFF ? w->next_attempt_ms : 0), "last_error",
                      w->error, "warning", w->warning, "pid", (json_int_t)getpid());
        pthread_mutex_unlock(&w->lock);
        if (!o)
            continue;
        json_object_set_new(o, "counters", counters_json(&w->in.counters));
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (text) {
            char key[64];
            snprintf(key, sizeof key, "%s:%s", w->is_sink ? "sink" : "source", w->in.name);
            if (dia_journal_status_put(j, key, text) != DIA_OK) {
                dia_debug("daemon", "%s", dia_journal_errmsg(j));
                ok = false;
            }
            free(text);
        }
    }
    if (dia_journal_end(j, ok) != DIA_OK)
        dia_debug("daemon", "%s", dia_journal_errmsg(j));
}

static void prune(struct daemon *d, struct dia_journal *j)
{
    const struct dia_config *cfg = d->p->cfg;
    if (cfg->retention_s < 0)
        return;
    const char *names[64];
    size_t n = 0;
    for (size_t i = 0; i < d->nworkers && n < 64; i++) {
        if (d->workers[i].is_sink)
            names[n++] = d->workers[i].in.name;
    }
    int64_t deleted = 0;
    int rc = dia_journal_prune(j, dia_now_ms() - cfg->retention_s * 1000, names, n, &deleted);
    if (rc != DIA_OK)
        dia_warn("daemon", "retention: %s", dia_journal_errmsg(j));
    else if (deleted)
        dia_info("daemon", "retention: dropped %lld delivered records older than %lld days",
                 (long long)deleted, cfg->retention_s / 86400);
}

/* ---- run ----------------------------------------------------------------- */

static void shutdown_signals(sigset_t *sigs)
{
    sigemptyset(sigs);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGINT);
    sigaddset(sigs, SIGHUP);
}

void dia_daemon_block_signals(void)
{
    sigset_t sigs;
    shutdown_signals(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
}

static int start_workers(struct daemon *d)
{
    const struct dia_config *cfg = d->p->cfg;
    d->nworkers = cfg->nsources + cfg->nsinks;
    d->workers = calloc(d->nworkers ? d->nworkers : 1, sizeof *d->workers);
    if (!d->workers)
        return DIA_ERR_NOMEM;
    for (size_t i = 0; i < d->nworkers; i++) {
        struct worker *w = &d->workers[i];
        bool sink = i >= cfg->nsources;
        struct dia_instance_config *ic = sink ? &cfg->sinks[i - cfg->nsources] : &cfg->sources[i];
        w->d = d;
        w->is_sink = sink;
        w->in.opts = &ic->opts;
        w->in.stop = &d->stop;
        snprintf(w->in.name, sizeof w->in.name, "%s", ic->name);
        if (sink)
            w->sink = dia_sink_driver_find(ic->opts.driver);
        else
            w->src = dia_source_driver_find(ic->opts.driver);
        if (!w->sink && !w->src)
            return DIA_ERR_CONFIG; /* validated before; cannot happen */
        pthread_mutex_init(&w->lock, NULL);
        w->state = W_STARTING;
    }
    for (size_t i = 0; i < d->nworkers; i++) {
        struct worker *w = &d->workers[i];
        int rc = pthread_create(&w->thread, NULL, w->is_sink ? sink_main : source_main, w);
        if (rc != 0) {
            dia_err("daemon", "cannot start a thread for %s: %s", w->in.name, strerror(rc));
            return DIA_ERR_NOMEM;
        }
        w->started = true;
        /* "src:sim", "snk:mqtt": visible in top -H, ps -L and /proc */
        char tname[16];
        snprintf(tname, sizeof tname, "%s:%.11s", w->is_sink ? "snk" : "src", w->in.name);
        pthread_setname_np(w->thread, tname);
    }
    return DIA_OK;
}

static void stop_workers(struct daemon *d)
{
    atomic_store(&d->stop, true);
    pthread_mutex_lock(&d->sleep_lock);
    pthread_cond_broadcast(&d->sleep_cond);
    pthread_mutex_unlock(&d->sleep_lock);
    dia_journal_hub_notify(&d->hub, 0);
    for (size_t i = 0; i < d->nworkers; i++) {
        if (d->workers[i].started)
            pthread_join(d->workers[i].thread, NULL);
    }
}

int dia_daemon_run(const struct dia_daemon_params *p)
{
    struct daemon d;
    memset(&d, 0, sizeof d);
    d.p = p;
    atomic_init(&d.stop, false);
    atomic_init(&d.state_dirty, true);
    atomic_init(&d.counters_dirty, false);
    d.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    dia_journal_hub_init(&d.hub);
    pthread_mutex_init(&d.sleep_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d.sleep_cond, &ca);
    pthread_condattr_destroy(&ca);

    int exit_status = DIA_EXIT_OK;
    struct dia_journal *j = NULL;
    int lock_fd = -1; /* held until the very end: one daemon per journal */
    char err[512];
    /* The supervisor's own connection writes only status rows and retention:
     * losing the last of those in a power cut costs nothing, so it skips the
     * per-commit disk sync that records get. */
    struct dia_journal_config jc = {
        .path = p->journal_path, .sync = DIA_SYNC_NORMAL, .hub = &d.hub};
    int rc = dia_journal_open(&jc, &j, err, sizeof err);
    /* The lock comes after the open, which creates the journal's folder, and
     * before anything else: the open itself changes nothing another daemon
     * relies on (the tables exist already), the integrity check and the
     * workers come only once the journal is ours.  A daemon already using
     * it means "a person must act", like a bad configuration: exit 78, so
     * systemd does not restart-loop against it. */
    if (rc == DIA_OK)
        rc = dia_journal_lock_take(p->journal_path, &lock_fd, err, sizeof err);
    if (rc == DIA_OK) {
        rc = dia_journal_check(j, err, sizeof err);
        if (rc != DIA_OK) {
            char detail[256];
            snprintf(detail, sizeof detail, "%.200s", err);
            snprintf(err, sizeof err,
                     "journal %s failed its integrity check (%s). Stop diabridge, move the file "
                     "aside (mv %s %s.damaged) and start again",
                     p->journal_path, detail, p->journal_path, p->journal_path);
        }
    }
    /* Every sink's cursor is tied to its target before any sink starts. */
    if (rc == DIA_OK)
        rc = bind_sink_cursors(p->cfg, j, err, sizeof err);
    if (rc != DIA_OK) {
        dia_err("daemon", "%s", err);
        /* Transient journal trouble (busy, disk full) is worth a restart by
         * systemd; a damaged file or a permission problem is not. */
        exit_status = dia_err_is_transient(rc) ? DIA_EXIT_FAILURE : DIA_EXIT_CONFIG;
        goto out;
    }
    dia_info("daemon", "diabridge %s: journal %s, %zu sources, %zu sinks", DIA_VERSION,
             p->journal_path, p->cfg->nsources, p->cfg->nsinks);

    /* Signals are taken synchronously by this thread only; workers never
     * see them, so no handler ever runs in the middle of a driver. */
    sigset_t sigs, old;
    shutdown_signals(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    signal(SIGPIPE, SIG_IGN);

    if (start_workers(&d) != DIA_OK) {
        exit_status = DIA_EXIT_FAILURE;
        stop_workers(&d);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        goto out;
    }
    int sig_fd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sig_fd < 0 || d.wake_fd < 0) {
        dia_err("daemon", "cannot set up signal handling: %s", strerror(errno));
        exit_status = DIA_EXIT_FAILURE;
        stop_workers(&d);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        goto out;
    }
    sd_notify(0, "READY=1\nSTATUS=running");
    uint64_t watchdog_usec = 0;
    bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
    int64_t ping_every = watchdog ? (int64_t)(watchdog_usec / 2000) : 0;
    if (watchdog && ping_every < 1)
        ping_every = 1;
    int64_t started = dia_mono_ms();
    int64_t last_status = started, last_prune = -PRUNE_INTERVAL_MS, last_ping = 0;
    int64_t end = p->duration_s > 0 ? started + (int64_t)(p->duration_s * 1000) : 0;

    /* Sleep until the next thing that is due; a signal or a worker's poke
     * wakes us early. */
    for (;;) {
        int64_t now = dia_mono_ms();
        if (end && now >= end) {
            dia_info("daemon", "run time of %.0f s reached; stopping", p->duration_s);
            break;
        }
        if (watchdog && now - last_ping >= ping_every) {
            sd_notify(0, "WATCHDOG=1");
            last_ping = now;
        }
        bool state = atomic_exchange(&d.state_dirty, false);
        bool counters = atomic_load(&d.counters_dirty);
        if (state || (counters && now - last_status >= STATUS_MIN_MS) ||
            now - last_status >= STATUS_HEARTBEAT_MS) {
            atomic_store(&d.counters_dirty, false);
            write_status(&d, j);
            last_status = now;
            counters = false;
        }
        if (now - last_prune >= PRUNE_INTERVAL_MS) {
            prune(&d, j);
            last_prune = now;
        }
        int64_t next = last_status + (counters ? STATUS_MIN_MS : STATUS_HEARTBEAT_MS);
        if (last_prune + PRUNE_INTERVAL_MS < next)
            next = last_prune + PRUNE_INTERVAL_MS;
        if (watchdog && last_ping + ping_every < next)
            next = last_ping + ping_every;
        if (end && end < next)
            next = end;
        int64_t wait_ms = next - dia_mono_ms();
        if (wait_ms < 0)
            wait_ms = 0;
        struct pollfd fds[2] = {{.fd = sig_fd, .events = POLLIN},
                                {.fd = d.wake_fd, .events = POLLIN}};
        if (poll(fds, 2, (int)(wait_ms > INT32_MAX ? INT32_MAX : wait_ms)) <= 0)
            continue;
        if (fds[1].revents & POLLIN) {
            uint64_t count;
            if (read(d.wake_fd, &count, sizeof count) < 0) {
                /* EAGAIN: another read emptied it; nothing to do */
            }
        }
        struct signalfd_siginfo si;
        int sig = 0;
        if ((fds[0].revents & POLLIN) && read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si)
            sig = (int)si.ssi_signo;
        if (sig == SIGTERM || sig == SIGINT) {
            dia_info("daemon", "%s received; finishing work in flight and stopping",
                     sig == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
        if (sig == SIGHUP) {
            /* `diabridge dead-letters --retry` sends it: wake the sinks,
             * which look for dead letters asked for again when caught up. */
            dia_info("daemon", "SIGHUP: sinks look for dead letters to send again; the "
                               "configuration is read at start (restart to reload it)");
            dia_journal_hub_notify(&d.hub, 0);
        }
    }
    if (sig_fd >= 0)
        close(sig_fd);
    sd_notify(0, "STOPPING=1");
    stop_workers(&d);
    write_status(&d, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    dia_info("daemon", "stopped");
out:
    for (size_t i = 0; i < d.nworkers; i++) {
        dia_journal_close(d.workers[i].in.journal);
        pthread_mutex_destroy(&d.workers[i].lock);
    }
    free(d.workers);
    dia_journal_close(j);
    if (lock_fd >= 0)
        close(lock_fd); /* after the last write, so no successor overlaps it */
    pthread_cond_destroy(&d.sleep_cond);
    pthread_mutex_destroy(&d.sleep_lock);
    dia_journal_hub_destroy(&d.hub);
    if (d.wake_fd >= 0)
        close(d.wake_fd);
    return exit_status;
}
