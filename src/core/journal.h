/*
 * The journal: diabridge's durable store (DESIGN §5, §6).
 *
 * One SQLite database in WAL mode.  Every worker thread opens its own
 * connection; the only thing shared in memory is a dia_journal_hub, a
 * condition variable sinks sleep on until a source commits something new.
 *
 *   records      every observation, UNIQUE(record_key); published = 1 for
 *                the canonical ones sinks deliver
 *   sink_cursor  per sink: the last seq acknowledged by the remote side, and
 *                the target (where it delivers) that cursor counts for
 *   dead_letter  records a sink gave up on, with the reason
 *   source_state per source key/value state, committed with its records
 *   worker_status the daemon's latest view of each worker, for `status`
 */
#ifndef DIA_CORE_JOURNAL_H
#define DIA_CORE_JOURNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/record.h"

/* Wakes sinks when sources commit; one per daemon process. */
struct dia_journal_hub {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int64_t last_seq; /* highest seq committed by any connection */
    uint64_t version; /* bumped on every notify (also on shutdown) */
};
void dia_journal_hub_init(struct dia_journal_hub *hub);
void dia_journal_hub_destroy(struct dia_journal_hub *hub);
void dia_journal_hub_notify(struct dia_journal_hub *hub, int64_t seq);
/* Sleep until the hub moves past seen_version or timeout_ms passes.
 * Returns the current version. */
uint64_t dia_journal_hub_wait(struct dia_journal_hub *hub, uint64_t seen_version, int timeout_ms);

enum dia_journal_sync {
    DIA_SYNC_NORMAL = 1, /* WAL + synchronous=NORMAL: a power cut may lose the last commit */
    DIA_SYNC_FULL,       /* synchronous=FULL: every commit reaches the disk (default) */
};

struct dia_journal_config {
    const char *path;
    bool readonly;
    enum dia_journal_sync sync;
    struct dia_journal_hub *hub; /* may be NULL */
};

struct dia_journal;

/*
 * Open (creating the file and its directory when writable).  On failure
 * returns DIA_ERR_JOURNAL_ACCESS / _FULL / _CORRUPT / DIA_ERR_JOURNAL with a
 * sentence naming the file, the cause and what to do in errbuf.
 */
int dia_journal_open(const struct dia_journal_config *cfg, struct dia_journal **out, char *errbuf,
                     size_t errlen);
/*
 * A read-only open of a journal this user cannot write (a backed-up copy,
 * another user's file) reads it as a snapshot, without SQLite's locks.
 * Call this after reading: DIA_OK when what was read is consistent (always,
 * for any other open), else DIA_ERR_JOURNAL when the file changed meanwhile
 * (a daemon started writing it) and the results must not be trusted.
 */
int dia_journal_verify_snapshot(struct dia_journal *j);
void dia_journal_close(struct dia_journal *j);
const char *dia_journal_path(const struct dia_journal *j);
/* The last error of this connection as a sentence naming the file and cause. */
const char *dia_journal_errmsg(const struct dia_journal *j);

struct dia_commit_result {
    size_t inserted;   /* new observations stored */
    size_t duplicates; /* record_key already known: nothing written */
    size_t merged;     /* stored, but the same reading was already published */
    int64_t last_seq;
};

/*
 * Store a batch and its state updates in one transaction (owner = source
 * instance name).  Consolidation (DESIGN §6) happens here.  Only after this
 * returns DIA_OK may the source consider the records stored.
 */
int dia_journal_commit(struct dia_journal *j, const char *owner, const struct dia_batch *batch,
                       struct dia_commit_result *res);

/* Source state: returns 1 and copies the value when found, 0 when absent,
 * or a negative error. */
int dia_journal_state_get(struct dia_journal *j, const char *owner, const char *key, char *buf,
                          size_t len);
int dia_journal_state_set(struct dia_journal *j, const char *owner, const char *key,
                          const char *value);

/* Sinks: read published records after after_seq, oldest first. */
int dia_journal_read(struct dia_journal *j, int64_t after_seq, struct dia_record *out, size_t max,
                     size_t *n);
int dia_journal_cursor_get(struct dia_journal *j, const char *sink, int64_t *seq);
/* Move a sink's cursor forward (never backwards). */
int dia_journal_cursor_set(struct dia_journal *j, const char *sink, int64_t seq);

/*
 * A cursor says how far one place has received the journal, but it is
 * stored under the sink's name, and a name can come to mean another place:
 * `jsonl#2` becomes `jsonl` when the line above it is deleted, and a user
 * may point a sink at a new file or server.  So each cursor also records
 * the target it counts for, and the daemon ties every sink's cursor to its
 * target when it starts.  The target must name the place but no secret
 * (the daemon uses the driver, the display form of its target and the
 * options the driver says choose the destination), so that changing only a
 * password or token keeps the cursor.
 */
enum dia_cursor_outcome {
    DIA_CURSOR_NEW = 1, /* no cursor yet: delivery starts at the beginning */
    DIA_CURSOR_SAME,    /* the cursor counts for this target: continue */
    DIA_CURSOR_ADOPTED, /* a cursor from before targets were recorded: now tied to this one */
    DIA_CURSOR_MOVED,   /* it counted for another target: reset, the new one gets everything */
    /* this target's progress was stored under another name (a line above
     * was deleted or moved, or the sink renamed): continued from there */
    DIA_CURSOR_TAKEN_OVER,
};
struct dia_cursor_binding {
    enum dia_cursor_outcome outcome;
    int64_t seq;               /* deliver the records after this one */
    int64_t previous_seq;      /* the cursor found under this name, if any */
    char previous_target[512]; /* the target it counted for ("": none recorded) */
    char taken_from[64];       /* TAKEN_OVER: the name the continued cursor had */
    /* MOVED, TAKEN_OVER: the name's own cursor (previous_target) was kept,
     * under a name that no sink has now, for when a sink delivers there
     * again; otherwise it was dropped, with its dead letters */
    bool previous_kept;
    int64_t dead_letters_dropped; /* the dropped cursor's dead letters */
};
/* A configured sink, for dia_journal_cursors_bind. */
struct dia_cursor_claim {
    const char *sink;   /* its name; each claim's differs */
    const char *target; /* where it delivers, without secrets */
    /* NULL, or how the same place was written before the target included
     * everything it now does: a cursor stored in that form counts as this
     * target's and is rewritten, so an upgrade resets nothing. */
    const char *former_target;
    struct dia_cursor_binding result; /* out */
};
/*
 * Tie the cursors of all configured sinks to their targets, in one
 * transaction, at start-up, before any sink delivers.  A sink continues its
 * own cursor when that counts for its target (or predates targets); else
 * the cursor of its target stored under a name that no longer means that
 * place (the line above was deleted: `jsonl#2` became `jsonl`), at most one
 * sink per cursor; else it starts at 0 and gets everything.  A cursor that
 * had to make way is kept under a name a taken cursor left, or dropped with
 * its dead letters (their records go to the new target with all the others).
 * Dead letters go wherever their cursor goes.
 */
int dia_journal_cursors_bind(struct dia_journal *j, struct dia_cursor_claim *claims, size_t n);
/* The same for a configuration of this one sink. */
int dia_journal_cursor_bind(struct dia_journal *j, const char *sink, const char *target,
                            struct dia_cursor_binding *res);
/* Record a dead letter and move the cursor past it, atomically. */
int dia_journal_dead_letter(struct dia_journal *j, const char *sink, int64_t seq,
                            const char *reason);
/*
 * Dead letters.  A record a sink refused for good stays in the journal (and
 * is kept from retention) until it is delivered by another try, which the
 * user asks for with `diabridge dead-letters --retry` once the cause is
 * fixed.  The strings of a dia_dead_letter live until the callback returns.
 */
struct dia_dead_letter {
    const char *sink, *reason, *kind, *record_key;
    int64_t seq, at_ms, t_utc_ms;
    bool retry;    /* another try is asked for and not made yet */
    bool sendable; /* the record's payload is still stored */
};
typedef int (*dia_journal_dead_fn)(const struct dia_dead_letter *d, void *arg);
/* Every dead letter of sink (NULL: of every sink), by sink and seq. */
int dia_journal_dead_each(struct dia_journal *j, const char *sink, dia_journal_dead_fn fn,
                          void *arg);
/* Ask for another try of sink's dead letters (NULL: every sink's); *count
 * receives how many were marked. */
int dia_journal_dead_retry(struct dia_journal *j, const char *sink, int64_t *count);
/* The sink worker's side: the records of its dead letters marked for
 * another try, oldest first. */
int dia_journal_read_retry(struct dia_journal *j, const char *sink, struct dia_record *out,
                           size_t max, size_t *n);
/* The outcome of that try: delivered (refused_reason NULL: the dead letter
 * is removed) or refused again (reason and time updated, retry cleared). */
int dia_journal_retry_done(struct dia_journal *j, const char *sink, int64_t seq,
                           const char *refused_reason);
/* Published records past the sink's cursor. */
int dia_journal_backlog(struct dia_journal *j, const char *sink, int64_t *count);
int64_t dia_journal_last_seq(struct dia_journal *j);

/* Iterate stored records (all observations when include_merged) in seq
 * order with since_ms <= t_utc_ms < until_ms.  The callback returns 0 to go
 * on, anything else to stop (that value is returned). */
typedef int (*dia_journal_visit_fn)(const struct dia_record *r, bool published, void *arg);
int dia_journal_each(struct dia_journal *j, int64_t since_ms, int64_t until_ms, bool include_merged,
                     dia_journal_visit_fn fn, void *arg);

/*
 * Retention: delete records with t_utc_ms < before_ms that every sink in
 * sinks[] has already acknowledged (undelivered data is never deleted, and a
 * dead-lettered record counts as undelivered).
 * *deleted receives the count.
 */
int dia_journal_prune(struct dia_journal *j, int64_t before_ms, const char *const *sinks,
                      size_t nsinks, int64_t *deleted);

/* Group several writes (status rows) into one transaction: one disk sync
 * instead of one per row.  end() commits, or rolls back when ok is false. */
int dia_journal_begin(struct dia_journal *j);
int dia_journal_end(struct dia_journal *j, bool ok);

/* Worker status for `diabridge status`: a JSON object as text. */
int dia_journal_status_put(struct dia_journal *j, const char *worker, const char *json_text);
typedef int (*dia_journal_status_fn)(const char *worker, const char *json_text, int64_t updated_ms,
                                     void *arg);
int dia_journal_status_each(struct dia_journal *j, dia_journal_status_fn fn, void *arg);

/* PRAGMA integrity_check; DIA_OK or DIA_ERR_JOURNAL_CORRUPT with the first problem in msg. */
int dia_journal_check(struct dia_journal *j, char *msg, size_t len);

/* Where the journal lives when the user does not say (issue #2):
 * $STATE_DIRECTORY (systemd) / $XDG_STATE_HOME/diabridge / ~/.local/state/diabridge. */
int dia_journal_default_path(char *buf, size_t len);

#endif
