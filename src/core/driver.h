/*
 * Source and sink method tables (DESIGN §7).
 *
 * Like gpsd's struct gps_type_t and libsigrok's sr_dev_driver: a driver is a
 * constant table of methods; an instance holds the user's options, the
 * driver's private state, and counters.  The supervisor owns the thread and
 * the retry policy; drivers stay sequential and simple.
 *
 * Threading: each instance runs on its own thread and is only ever touched
 * from it, except the counters (atomic, read by the status writer) and the
 * stop flag (set by the supervisor).
 */
#ifndef DIA_CORE_DRIVER_H
#define DIA_CORE_DRIVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/options.h"
#include "core/record.h"

struct dia_journal;

/* Counters every driver may bump; reported by `diabridge status`. */
struct dia_counters {
    atomic_ullong polls;         /* source: polls done; sink: batches sent */
    atomic_ullong frames_ok;     /* source: frames/responses decoded */
    atomic_ullong crc_errors;    /* source: integrity failures */
    atomic_ullong decode_errors; /* source: truncated / malformed / unsupported */
    atomic_ullong implausible;   /* source: values rejected as implausible */
    atomic_ullong timeouts;
    atomic_ullong reconnects;   /* worker restarts after a failure */
    atomic_ullong records;      /* source: new records stored; sink: records acknowledged */
    atomic_ullong duplicates;   /* source: records the journal already had */
    atomic_ullong dead_letters; /* sink: records given up on */
    atomic_ullong failures;     /* failed polls / sends */
};

/* Shared by sources and sinks: who am I, what did the user configure. */
struct dia_instance {
    char name[48];                  /* "sim", "jsonl", "jsonl#2": log prefix, journal owner */
    const struct dia_options *opts; /* validated options */
    void *priv;                     /* the driver's own state, owned by the driver */
    struct dia_counters counters;
    struct dia_journal *journal; /* this worker's own connection (state reads) */
    const atomic_bool *stop;     /* set when the daemon shuts down */
    char last_error[256];        /* human sentence; never contains a secret */
    /* A condition a person should know of while the driver goes on working
     * (a receiver layout it cannot read): unlike last_error it survives
     * successful polls and shows in `status` until the driver clears it
     * (warning[0] = '\0').  Set with dia_instance_warning. */
    char warning[256];
    /* Optional, set by a driver whose open/poll fails with DIA_ERR_AUTH or
     * DIA_ERR_CONFIG and that will not try again before a time of its own
     * (Share: a rejected password waits auth-retry=, a lock-out hours), a
     * time its last_error states.  Wall-clock Unix ms; 0: the supervisor's
     * back-off decides.  The supervisor waits until then and resets it. */
    int64_t retry_at_ms;
};

static inline bool dia_instance_stopping(const struct dia_instance *in)
{
    return in->stop && atomic_load(in->stop);
}

/* Record a human-readable error on the instance (printf-style). */
void dia_instance_error(struct dia_instance *in, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same for in->warning. */
void dia_instance_warning(struct dia_instance *in, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

struct dia_source_driver {
    const char *name;
    const char *description;
    const char *target_help;               /* NULL: the driver takes no target */
    const struct dia_option_spec *options; /* terminated by a {NULL} row */
    /* Optional.  Is this configuration usable at all?  Called once at
     * start-up (`run`, `run --check`, `demo`) after the schema validated
     * opts (defaults filled in, secrets resolved), so that a malformed
     * target or a missing combination of options is refused with the file
     * and line instead of failing in open() again and again.  Pure: no I/O,
     * no network, no clock; open() runs the same parsing code.  Returns
     * DIA_OK, or DIA_ERR_CONFIG with a sentence in why that names the
     * option or the target and never contains a secret. */
    int (*check)(const struct dia_options *opts, char *why, size_t why_len);
    /* Acquire the device or session.  Transient errors are retried by the
     * supervisor with back-off; DIA_ERR_CONFIG / DIA_ERR_AUTH stop retries
     * for a long while. */
    int (*open)(struct dia_instance *src);
    /* Read what is new.  Append records (and state updates) to out; they are
     * committed in one transaction after poll returns DIA_OK.  Set *next_ms
     * to the wall-clock time (Unix ms) of the next poll.  Records appended
     * before a failure are discarded, state included. */
    int (*poll)(struct dia_instance *src, struct dia_batch *out, int64_t *next_ms);
    /* After the commit of poll's batch: the source may now forget what it
     * held for this batch.  May be NULL. */
    void (*committed)(struct dia_instance *src, const struct dia_batch *batch);
    void (*close)(struct dia_instance *src);
    /* true: a poll failing with DIA_ERR_TRANSIENT or DIA_ERR_TIMEOUT leaves
     * the driver open.  The supervisor counts the failure, shows it in
     * status (backing off, last_error) and polls again at the *next_ms the
     * driver set, instead of closing it and reopening after 1 s, 2 s, 4 s….
     * For drivers whose open is costly or limited by the other side (a
     * cloud login) and that pace their own retries. */
    bool retries_in_place;
};

struct dia_sink_driver {
    const char *name;
    const char *description;
    const char *target_help;
    const struct dia_option_spec *options;
    size_t default_batch; /* records per send() unless the user says otherwise */
    /* Optional: as for sources. */
    int (*check)(const struct dia_options *opts, char *why, size_t why_len);
    int (*open)(struct dia_instance *sink);
    /*
     * Deliver recs[0..n-1] (in journal order).  Set *acked to how many,
     * from the start, the remote side has acknowledged.  Return DIA_OK when
     * all were; otherwise a classified error:
     *   DIA_ERR_PERMANENT — recs[*acked] can never be accepted; it is
     *                       dead-lettered with last_error as the reason;
     *   DIA_ERR_AUTH      — credentials rejected; retried slowly;
     *   anything else     — transient; retried with back-off.
     */
    int (*send)(struct dia_instance *sink, const struct dia_record *recs, size_t n, size_t *acked);
    void (*close)(struct dia_instance *sink);
    /* Optional, NULL-terminated: the options that, with the target, choose
     * where records land (a database, a bucket, a topic), as opposed to how
     * they get there.  The sink's cursor is tied to the target together
     * with their values (dia_journal_cursors_bind), so pointing a sink at
     * another bucket sends that bucket the whole journal.  Never a secret
     * option.  A cursor stored before these counted (the target alone)
     * still counts for the target; so that it is not confused with one
     * stored while all of them were unset, at least one of them must always
     * have a value (a default, or required by check). */
    const char *const *destination_options;
};

/* The registries (src/drivers.c): one row per driver. */
extern const struct dia_source_driver *const dia_source_drivers[];
extern const struct dia_sink_driver *const dia_sink_drivers[];
const struct dia_source_driver *dia_source_driver_find(const char *name);
const struct dia_sink_driver *dia_sink_driver_find(const char *name);

#endif
