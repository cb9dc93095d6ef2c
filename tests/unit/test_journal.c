/*
 * Journal semantics (DESIGN §5), consolidation (§6), and what happens when
 * the journal file is damaged, unwritable or the disk is full.  Everything
 * runs against real SQLite files in a temporary directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "core/journal.h"
#include "testutil.h"

#define T0     1700000000000LL /* 2023-11-14T22:13:20Z */
#define MIN_MS 60000LL

struct fixture {
    char *dir;
    char path[512];
    struct dia_journal *j;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = testutil_tmpdir();
    snprintf(f->path, sizeof f->path, "%s/sub/journal.db", f->dir); /* folder created on open */
    struct dia_journal_config jc = {.path = f->path};
    char err[512];
    if (dia_journal_open(&jc, &f->j, err, sizeof err) != DIA_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    dia_journal_close(f->j);
    testutil_rmdir(f->dir);
    free(f);
    return 0;
}

static struct dia_record *add_glucose(struct dia_batch *b, const char *driver, const char *dev,
                                      const char *sensor, int64_t t, int mgdl)
{
    struct dia_record *r = dia_batch_add(b, DIA_KIND_GLUCOSE);
    snprintf(r->driver, sizeof r->driver, "%s", driver);
    snprintf(r->device_id, sizeof r->device_id, "%s", dev);
    snprintf(r->sensor, sizeof r->sensor, "%s", sensor);
    r->t_utc_ms = t;
    r->u.glucose.mgdl = mgdl;
    r->u.glucose.trend = DIA_TREND_FLAT;
    /* identity: the device's own time, as a receiver's record would have */
    dia_record_set_key(r, "t:%lld", (long long)t);
    return r;
}

static size_t read_all(struct dia_journal *j, int64_t after, struct dia_record *out, size_t max)
{
    size_t n = 0;
    assert_int_equal(dia_journal_read(j, after, out, max, &n), DIA_OK);
    return n;
}

static void test_commit_read_and_reinsert_is_noop(void **state)
{
    struct fixture *f = *state;
    struct dia_batch b;
    dia_batch_init(&b);
    for (int i = 0; i < 10; i++)
        add_glucose(&b, "sim", "SIM1", "p", T0 + i * 5 * MIN_MS, 100 + i);
    struct dia_commit_result res;
    assert_int_equal(dia_journal_commit(f->j, "sim", &b, &res), DIA_OK);
    assert_int_equal(res.inserted, 10);
    assert_int_equal(res.duplicates, 0);

    /* the same poll again (a receiver re-read): nothing new */
    assert_int_equal(dia_journal_commit(f->j, "sim", &b, &res), DIA_OK);
    assert_int_equal(res.inserted, 0);
    assert_int_equal(res.duplicates, 10);

    struct dia_record out[32];
    size_t n = read_all(f->j, 0, out, 32);
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].u.glucose.mgdl, 100 + (int)i);
        assert_string_equal(out[i].key, b.recs[i].key);
        if (i)
            assert_true(out[i].seq > out[i - 1].seq);
    }
    /* paging: after the 4th, at most 3 */
    n = read_all(f->j, out[3].seq, out + 20, 3);
    assert_int_equal(n, 3);
    assert_int_equal(out[20].u.glucose.mgdl, 104);
    dia_batch_free(&b);
}

/* Records and the source's state are one transaction: both or neither. */
static void test_state_commits_with_records(void **state)
{
    struct fixture *f = *state;
    char v[64];
    struct dia_batch b;
    dia_batch_init(&b);
    add_glucose(&b, "sim", "SIM1", "p", T0, 120);
    dia_batch_set_state(&b, "next_index", "1");
    assert_int_equal(dia_journal_commit(f->j, "sim", &b, NULL), DIA_OK);
    assert_int_equal(dia_journal_state_get(f->j, "sim", "next_index", v, sizeof v), 1);
    assert_string_equal(v, "1");
    assert_int_equal(dia_journal_state_get(f->j, "other", "next_index", v, sizeof v), 0);

    /* a batch with a bad record stores nothing, not even its state */
    dia_batch_clear(&b);
    add_glucose(&b, "sim", "SIM1", "p", T0 + 5 * MIN_MS, 121);
    struct dia_record *bad = add_glucose(&b, "sim", "SIM1", "p", T0 + 10 * MIN_MS, 5);
    (void)bad;
    dia_batch_set_state(&b, "next_index", "3");
    assert_int_equal(dia_journal_commit(f->j, "sim", &b, NULL), DIA_ERR_IMPLAUSIBLE);
    assert_non_null(strstr(dia_journal_errmsg(f->j), "glucose"));
    assert_int_equal(dia_journal_state_get(f->j, "sim", "next_index", v, sizeof v), 1);
    assert_string_equal(v, "1");
    struct dia_record out[8];
    assert_int_equal(read_all(f->j, 0, out, 8), 1);
    dia_batch_free(&b);
}

static void test_cursor_backlog_dead_letter(void **state)
{
    struct fixture *f = *state;
    struct dia_batch b;
    dia_batch_init(&b);
    for (int i = 0; i < 5; i++)
        add_glucose(&b, "sim", "SIM1", "p", T0 + i * 5 * MIN_MS, 100 + i);
    assert_int_equal(dia_journal_commit(f->j, "sim", &b, NULL), DIA_OK);
    struct dia_record out[8];
    assert_int_equal(read_all(f->j, 0, out, 8), 5);

    int64_t c = -1, backlog = -1;
    assert_int_equal(dia_journal_cursor_get(f->j, "ns", &c), DIA_OK);
    assert_int_equal(c, 0);
    assert_int_equal(dia_journal_backlog(f->j, "ns", &backlog), DIA_OK);
    assert_int_equal(backlog, 5);

    assert_int_equal(dia_journal_cursor_set(f->j, "ns", out[1].seq), DIA_OK);
    assert_int_equal(dia_journal_backlog(f->j, "ns", &backlog), DIA_OK);
    assert_int_equal(backlog, 3);
    /* a cursor never moves backwards */
    assert_int_equal(dia_journal_cursor_set(f->j, "ns", out[0].seq), DIA_OK);
    assert_int_equal(dia_journal_cursor_get(f->j, "ns", &c), DIA_OK);
    assert_int_equal(c, out[1].seq);
    /* cursors are per sink */
    assert_int_equal(dia_journal_backlog(f->j, "mqtt", &backlog), DIA_OK);
    assert_int_equal(backlog, 5);

    assert_int_equal(dia_journal_dead_letter(f->j, "ns", out[2].seq, "HTTP 400: bad date"), DIA_OK);
    assert_int_equal(dia_journal_cursor_get(f->j, "ns", &c), DIA_OK);
    assert_int_equal(c, out[2].seq);
    assert_int_equal(dia_journal_backlog(f->j, "ns", &backlog), DIA_OK);
    assert_int_equal(backlog, 2);

    /* the dead letter is on disk with its reason */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT seq, reason FROM dead_letter WHERE sink='ns'", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), out[2].seq);
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "HTTP 400: bad date");
    sqlite3_finalize(st);
    sqlite3_close(db);
    dia_batch_free(&b);
}

static int collect_dead(const struct dia_dead_letter *d, void *arg)
{
    struct dia_dead_letter *out = arg;
    size_t i = 0;
    while (out[i].sink)
        i++;
    if (i >= 7)
        return 1;
    out[i] = *d;
    out[i].sink = strdup(d->sink);
    out[i].reason = strdup(d->reason);
    out[i].kind = strdup(d->kind);
    out[i].record_key = strdup(d->record_key);
    return 0;
}

static size_t dead_list(struct dia_journal *j, const char *sink, struct dia_dead_letter *out)
{
    for (size_t i = 0; i < 8; i++) {
        free((char *)out[i].sink);
        free((char *)out[i].reason);
        free((char *)out[i].kind);
        free((char *)out[i].record_key);
    }
    memset(out, 0, 8 * sizeof *out);
    assert_int_equal(dia_journal_dead_each(j, sink, collect_dead, out), DIA_OK);
    size_t n = 0;
    while (out[n].sink)
        n++;
    return n;
}

/* A dead letter is listed, kept from retention, sent again when asked:
 * removed once delivered, kept with the new reason when refused again. */
static void test_dead_letter_retry(void **state)
{
    struct fixture *f = *state;
    struct dia_batch b;
    dia_batch_init(&b);
    for (int i = 0; i < 4; i++)
        add_glucose(&b, "sim", "SIM1", "p", T0 + i * 5 * MIN_MS, 100 + i);
    assert_int_equal(dia_journal_commit(f->j, "sim", &b, NULL), DIA_OK);
    struct dia_record out[8];
    assert_int_equal(read_all(f->j, 0, out, 8), 4);
    assert_int_equal(dia_journal_dead_letter(f->j, "ix", out[0].seq, "type conflict"), DIA_OK);
    assert_int_equal(dia_journal_dead_letter(f->j, "ix", out[2].seq, "type conflict"), DIA_OK);
    assert_int_equal(dia_journal_dead_letter(f->j, "ns", out[1].seq, "HTTP 400"), DIA_OK);
    assert_int_equal(dia_journal_cursor_set(f->j, "ix", out[3].seq), DIA_OK);
    assert_int_equal(dia_journal_cursor_set(f->j, "ns", out[3].seq), DIA_OK);

    struct dia_dead_letter dl[8] = {0};
    assert_int_equal(dead_list(f->j, NULL, dl), 3);
    assert_int_equal(dead_list(f->j, "ix", dl), 2);
    assert_int_equal(dl[0].seq, out[0].seq);
    assert_string_equal(dl[0].kind, "glucose");
    assert_string_equal(dl[0].reason, "type conflict");
    assert_int_equal(dl[0].t_utc_ms, T0);
    assert_false(dl[0].retry);
    assert_true(dl[0].sendable);

    /* every sink has passed every record, yet retention keeps the three
     * dead-lettered ones */
    const char *sinks[] = {"ix", "ns"};
    int64_t deleted = -1;
    assert_int_equal(dia_journal_prune(f->j, T0 + 1000 * MIN_MS, sinks, 2, &deleted), DIA_OK);
    assert_int_equal(deleted, 1);

    /* nothing to send before it is asked for */
    size_t n = 99;
    assert_int_equal(dia_journal_read_retry(f->j, "ix", out, 8, &n), DIA_OK);
    assert_int_equal(n, 0);
    int64_t marked = -1;
    assert_int_equal(dia_journal_dead_retry(f->j, "ix", &marked), DIA_OK);
    assert_int_equal(marked, 2);
    assert_int_equal(dia_journal_dead_retry(f->j, "ix", &marked), DIA_OK);
    assert_int_equal(marked, 0); /* already asked */
    assert_int_equal(dia_journal_read_retry(f->j, "ix", out, 8, &n), DIA_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].u.glucose.mgdl, 100);
    assert_int_equal(out[1].u.glucose.mgdl, 102);
    assert_int_equal(dia_journal_read_retry(f->j, "ns", out, 8, &n), DIA_OK);
    assert_int_equal(n, 0); /* per sink */

    /* the first is delivered, the second refused again */
    int64_t first = out[0].seq, second = out[1].seq;
    assert_int_equal(dia_journal_retry_done(f->j, "ix", first, NULL), DIA_OK);
    assert_int_equal(dia_journal_retry_done(f->j, "ix", second, "still a conflict"), DIA_OK);
    assert_int_equal(dia_journal_read_retry(f->j, "ix", out, 8, &n), DIA_OK);
    assert_int_equal(n, 0);
    assert_int_equal(dead_list(f->j, "ix", dl), 1);
    assert_int_equal(dl[0].seq, second);
    assert_string_equal(dl[0].reason, "still a conflict");
    assert_false(dl[0].retry);
    /* once delivered it is no longer kept from retention */
    assert_int_equal(dia_journal_prune(f->j, T0 + 1000 * MIN_MS, sinks, 2, &deleted), DIA_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(dead_list(f->j, NULL, dl), 2);
    dead_list(f->j, "none", dl); /* frees the copies */
    dia_batch_free(&b);
}

/* An older journal opened read-only cannot gain the column; its dead
 * letters are still listed. */
static void test_dead_letter_old_journal_readonly(void **state)
{
    struct fixture *f = *state;
    struct dia_batch b;
    dia_batch_init(&b);
    add_glucose(&b, "sim", "SIM1", "p", T0, 100);
    assert_int_equal(dia_journal_commit(f->j, "sim", &b, NULL), DIA_OK);
    struct dia_record out[2];
    assert_int_equal(read_all(f->j, 0, out, 2), 1);
    assert_int_equal(dia_journal_dead_letter(f->j, "ix", out[0].seq, "type conflict"), DIA_OK);
    dia_journal_close(f->j);
    f->j = NULL;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "ALTER TABLE dead_letter DROP COLUMN retry", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct dia_journal_config jc = {.path = f->path, .readonly = true};
    char err[512];
    assert_int_equal(dia_journal_open(&jc, &f->j, err, sizeof err), DIA_OK);
    struct dia_dead_letter dl[8] = {0};
    assert_int_equal(dead_list(f->j, NULL, dl), 1);
    assert_string_equal(dl[0].reason, "type conflict");
    assert_false(dl[0].retry);
    assert_true(dl[0].sendable);
    dead_list(f->j, "none", dl);
    dia_batch_free(&b);
}

/* A journal written before dead letters could be retried gains the column. */
static void test_dead_letter_schema_upgrade(void **state)
{
    (void)state;
    char *dir = testutil_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/old.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE dead_letter(id INTEGER PRIMARY KEY, sink TEXT NOT"
                                  " NULL, seq INTEGER NOT NULL, reason TEXT NOT NULL, at_ms INTEGER"
                                  " NOT NULL);"
                                  "INSERT INTO dead_letter(sink, seq, reason, at_ms)"
                                  " VALUES('ix', 7, 'old reason', 1);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    struct dia_journal_config jc = {.path = path};
    struct dia_journal *j = NULL;
    char err[512];
    assert_int_equal(dia_journal_open(&jc, &j, err, sizeof err), DIA_OK);
    struct dia_dead_letter dl[8] = {0};
    assert_int_equal(dead_list(j, NULL, dl), 1);
    assert_string_equal(dl[0].reason, "old reason");
    assert_false(dl[0].sendable); /* no such record stored */
    int64_t marked = -1;
    assert_int_equal(dia_journal_dead_retry(j, NULL, &marked), DIA_OK);
    assert_int_equal(marked, 0); /* nothing to send, so nothing marked */
    dead_list(j, "none", dl);
    dia_journal_close(j);
    testutil_rmdir(dir);
}

/* Receiver and Share deliver the same reading seconds apart: one published. */
static void test_consolidation_receiver_and_cloud(void **state)
{
    struct fixture *f = *state;
    struct dia_batch usb, cloud;
    dia_batch_init(&usb);
    dia_batch_init(&cloud);
    add_glucose(&usb, "dexcom-usb", "SM1", "8G1234", T0, 150);
    add_glucose(&usb, "dexcom-usb", "SM1", "8G1234", T0 + 5 * MIN_MS, 155);
    assert_int_equal(dia_journal_commit(f->j, "dexcom-usb", &usb, NULL), DIA_OK);

    struct dia_record *c1 = add_glucose(&cloud, "dexcom-share", "acct", "8G1234", T0 + 4000, 150);
    c1->origin = DIA_ORIGIN_CLOUD;
    /* a Share value may be rounded differently: ±1 mg/dL still merges */
    struct dia_record *c2 =
        add_glucose(&cloud, "dexcom-share", "acct", "8G1234", T0 + 5 * MIN_MS - 7000, 156);
    c2->origin = DIA_ORIGIN_CLOUD;
    struct dia_commit_result res;
    assert_int_equal(dia_journal_commit(f->j, "dexcom-share", &cloud, &res), DIA_OK);
    assert_int_equal(res.inserted, 2); /* every observation is stored */
    assert_int_equal(res.merged, 2);   /* but both were already published */

    struct dia_record out[8];
    size_t n = read_all(f->j, 0, out, 8);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].driver, "dexcom-usb");
    assert_string_equal(out[1].driver, "dexcom-usb");
    dia_batch_free(&usb);
    dia_batch_free(&cloud);
}

static int count_visit(const struct dia_record *r, bool published, void *arg)
{
    (void)r;
    int *c = arg;
    c[published ? 0 : 1]++;
    return 0;
}

static void test_consolidation_keeps_every_observation(void **state)
{
    struct fixture *f = *state;
    struct dia_batch b;
    dia_batch_init(&b);
    add_glucose(&b, "dexcom-usb", "SM1", "8G1234", T0, 150);
    add_glucose(&b, "dexcom-share", "acct", "8G1234", T0 + 3000, 150); /* same batch */
    struct dia_commit_result res;
    assert_int_equal(dia_journal_commit(f->j, "mixed", &b, &res), DIA_OK);
    assert_int_equal(res.merged, 1);
    int counts[2] = {0, 0};
    assert_int_equal(dia_journal_each(f->j, INT64_MIN, INT64_MAX, true, count_visit, counts),
                     DIA_OK);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 1);
    counts[0] = counts[1] = 0;
    assert_int_equal(dia_journal_each(f->j, INT64_MIN, INT64_MAX, false, count_visit, counts),
                     DIA_OK);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 0);
    dia_batch_free(&b);
}

/* Two sensors (two people, or an overlapping sensor change) are never merged. */
static void test_consolidation_two_sensors_not_merged(void **state)
{
    struct fixture *f = *state;
    struct dia_batch b;
    dia_batch_init(&b);
    add_glucose(&b, "dexcom-usb", "SM1", "8G1234", T0, 150);
    add_glucose(&b, "dexcom-usb", "SM2", "8H5678", T0, 150); /* second receiver */
    struct dia_commit_result res;
    assert_int_equal(dia_journal_commit(f->j, "usb", &b, &res), DIA_OK);
    assert_int_equal(res.merged, 0);
    struct dia_record out[4];
    assert_int_equal(read_all(f->j, 0, out, 4), 2);
    dia_batch_free(&b);
}

/* Same sensor and slot but clearly different values, or > 150 s apart:
 * not the same reading, both published. */
static void test_consolidation_limits(void **state)
{
    struct fixture *f = *state;
    struct dia_batch b;
    dia_batch_init(&b);
    add_glucose(&b, "dexcom-usb", "SM1", "s", T0, 150);
    add_glucose(&b, "dexcom-share", "a", "s", T0 + 2000, 153);   /* value differs by 3 */
    add_glucose(&b, "dexcom-share", "a", "s", T0 + 151000, 150); /* 151 s later */
    add_glucose(&b, "dexcom-share", "b", "s", T0 - 150000, 151); /* exactly 150 s: merged */
    struct dia_commit_result res;
    assert_int_equal(dia_journal_commit(f->j, "mixed", &b, &res), DIA_OK);
    assert_int_equal(res.inserted, 4);
    assert_int_equal(res.merged, 1);
    struct dia_record out[8];
    assert_int_equal(read_all(f->j, 0, out, 8), 3);
    dia_batch_free(&b);
}

/* A reading that arrives an hour late (G6 backfill) gets a new seq and is
 * delivered to a sink that has already moved past its neighbours. */
static void test_late_backfill_is_delivered(void **state)
{
    struct fixture *f = *state;
    struct dia_batch b;
    dia_batch_init(&b);
    for (int i = 0; i < 24; i++) {
        if (i == 6)
            continue; /* the gap: missed over BLE */
        add_glucose(&b, "dexcom-usb", "SM1", "s", T0 + i * 5 * MIN_MS, 100 + i);
    }
    assert_int_equal(dia_journal_commit(f->j, "usb", &b, NULL), DIA_OK);
    struct dia_record out[32];
    size_t n = read_all(f->j, 0, out, 32);
    assert_int_equal(n, 23);
    assert_int_equal(dia_journal_cursor_set(f->j, "ns", out[n - 1].seq), DIA_OK);

    dia_batch_clear(&b);
    struct dia_record *late = add_glucose(&b, "dexcom-usb", "SM1", "s", T0 + 6 * 5 * MIN_MS, 106);
    late->u.glucose.flags = DIA_GLUCOSE_BACKFILLED;
    late->received_ms = T0 + 24 * 5 * MIN_MS; /* an hour and more after it happened */
    assert_int_equal(dia_journal_commit(f->j, "usb", &b, NULL), DIA_OK);
    int64_t cursor, backlog;
    assert_int_equal(dia_journal_cursor_get(f->j, "ns", &cursor), DIA_OK);
    assert_int_equal(dia_journal_backlog(f->j, "ns", &backlog), DIA_OK);
    assert_int_equal(backlog, 1);
    n = read_all(f->j, cursor, out, 32);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].t_utc_ms, T0 + 30 * MIN_MS);
    assert_true(out[0].u.glucose.flags & DIA_GLUCOSE_BACKFILLED);

    /* and the same backfill seen later through Share is merged, not re-sent */
    dia_batch_clear(&b);
    add_glucose(&b, "dexcom-share", "acct", "s", T0 + 30 * MIN_MS + 5000, 106);
    struct dia_commit_result res;
    assert_int_equal(dia_journal_commit(f->j, "share", &b, &res), DIA_OK);
    assert_int_equal(res.merged, 1);
    assert_int_equal(read_all(f->j, out[0].seq, out, 32), 0);
    dia_batch_free(&b);
}

/* Retention drops only what every sink has, and keeps the key as a
 * tombstone so a re-import does not publish it again. */
static void test_prune(void **state)
{
    struct fixture *f = *state;
    struct dia_batch b;
    dia_batch_init(&b);
    for (int i = 0; i < 10; i++)
        add_glucose(&b, "sim", "SIM1", "p", T0 + i * 5 * MIN_MS, 100 + i);
    assert_int_equal(dia_journal_commit(f->j, "sim", &b, NULL), DIA_OK);
    struct dia_record out[16];
    assert_int_equal(read_all(f->j, 0, out, 16), 10);
    assert_int_equal(dia_journal_cursor_set(f->j, "a", out[7].seq), DIA_OK);
    assert_int_equal(dia_journal_cursor_set(f->j, "b", out[4].seq), DIA_OK);
    const char *sinks[] = {"a", "b"};
    int64_t deleted = -1;
    /* everything is "old"; only seq <= min cursor (record 4) may go */
    assert_int_equal(dia_journal_prune(f->j, T0 + 1000 * MIN_MS, sinks, 2, &deleted), DIA_OK);
    assert_int_equal(deleted, 5);
    assert_int_equal(read_all(f->j, 0, out, 16), 5);
    assert_int_equal(out[0].u.glucose.mgdl, 105);

    struct dia_commit_result res;
    assert_int_equal(dia_journal_commit(f->j, "sim", &b, &res), DIA_OK);
    assert_int_equal(res.inserted, 0);
    assert_int_equal(res.duplicates, 10);
    /* age limit respected: nothing newer than before_ms goes */
    assert_int_equal(dia_journal_cursor_set(f->j, "b", out[4].seq), DIA_OK);
    assert_int_equal(dia_journal_prune(f->j, T0, sinks, 2, &deleted), DIA_OK);
    assert_int_equal(deleted, 0);
    dia_batch_free(&b);
}

static void test_status_rows(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(dia_journal_status_put(f->j, "sink:ns", "{\"state\":\"running\"}"), DIA_OK);
    assert_int_equal(dia_journal_status_put(f->j, "sink:ns", "{\"state\":\"backing off\"}"),
                     DIA_OK);
    sqlite3 *db;
    sqlite3_open(f->path, &db);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*), max(json) FROM worker_status", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "{\"state\":\"backing off\"}");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ---- failures ---------------------------------------------------------- */

static void fill_journal(const char *path, int n)
{
    struct dia_journal_config jc = {.path = path};
    struct dia_journal *j;
    char err[512];
    assert_int_equal(dia_journal_open(&jc, &j, err, sizeof err), DIA_OK);
    struct dia_batch b;
    dia_batch_init(&b);
    for (int i = 0; i < n; i++)
        add_glucose(&b, "sim", "SIM1", "p", T0 + i * 5 * MIN_MS, 100 + i % 200);
    assert_int_equal(dia_journal_commit(j, "sim", &b, NULL), DIA_OK);
    dia_batch_free(&b);
    dia_journal_close(j);
}

static void test_not_a_journal(void **state)
{
    (void)state;
    char *dir = testutil_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    FILE *fp = fopen(path, "w");
    for (int i = 0; i < 400; i++)
        fputs("this is not a database, it is a text file someone copied here\n", fp);
    fclose(fp);
    struct dia_journal_config jc = {.path = path};
    struct dia_journal *j = NULL;
    char err[1024];
    assert_int_equal(dia_journal_open(&jc, &j, err, sizeof err), DIA_ERR_JOURNAL_CORRUPT);
    assert_null(j);
    assert_non_null(strstr(err, path));       /* names the file */
    assert_non_null(strstr(err, "damaged"));  /* says what is wrong */
    assert_non_null(strstr(err, ".damaged")); /* and what to do */
    testutil_rmdir(dir);
}

/* A journal cut short (a copy that did not finish, a failing SD card):
 * reported as damaged by open or by the integrity check — never a crash,
 * never silently accepted. */
static void test_truncated_journal(void **state)
{
    (void)state;
    char *dir = testutil_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    fill_journal(path, 3000);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size > 64 * 1024);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);

    struct dia_journal_config jc = {.path = path};
    struct dia_journal *j = NULL;
    char err[1024];
    int rc = dia_journal_open(&jc, &j, err, sizeof err);
    if (rc == DIA_OK) {
        rc = dia_journal_check(j, err, sizeof err);
        assert_int_equal(rc, DIA_ERR_JOURNAL_CORRUPT);
        dia_journal_close(j);
    } else {
        assert_int_equal(rc, DIA_ERR_JOURNAL_CORRUPT);
        assert_non_null(strstr(err, path));
    }
    testutil_rmdir(dir);
}

static void test_journal_path_is_a_directory(void **state)
{
    (void)state;
    char *dir = testutil_tmpdir();
    struct dia_journal_config jc = {.path = dir};
    struct dia_journal *j = NULL;
    char err[1024];
    assert_int_equal(dia_journal_open(&jc, &j, err, sizeof err), DIA_ERR_JOURNAL_ACCESS);
    assert_non_null(strstr(err, dir));
    testutil_rmdir(dir);
}

/* No permission: run the open as an unprivileged user in a child process
 * (the tests run as root in CI, and root ignores file modes). */
static void test_no_permission(void **state)
{
    (void)state;
    char *dir = testutil_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    fill_journal(path, 10);
    chmod(dir, 0755);
    chmod(path, 0644);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        chmod(path, 0444); /* when not root: make it ours and read-only */
        struct dia_journal_config jc = {.path = path};
        struct dia_journal *j = NULL;
        char err[1024];
        int rc = dia_journal_open(&jc, &j, err, sizeof err);
        if (write(pipefd[1], err, strlen(err) + 1) < 0)
            _exit(4);
        _exit(rc == DIA_ERR_JOURNAL_ACCESS ? 0 : 1);
    }
    close(pipefd[1]);
    char msg[1024] = "";
    ssize_t got = read(pipefd[0], msg, sizeof msg - 1);
    msg[got > 0 ? got : 0] = '\0';
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fprintf(stderr, "child said: %s\n", msg);
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "permission"));
    /* nothing was lost */
    struct dia_journal_config jc = {.path = path};
    struct dia_journal *j;
    char err[512];
    assert_int_equal(dia_journal_open(&jc, &j, err, sizeof err), DIA_OK);
    struct dia_record out[16];
    assert_int_equal(read_all(j, 0, out, 16), 10);
    dia_journal_close(j);
    testutil_rmdir(dir);
}

/* Disk full: a child limited by RLIMIT_FSIZE tries to commit a big batch.
 * The commit fails with an error naming the file; afterwards every record
 * stored before is still there and the file passes integrity_check. */
static void test_disk_full(void **state)
{
    (void)state;
    char *dir = testutil_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    fill_journal(path, 50);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        signal(SIGXFSZ, SIG_IGN); /* get EFBIG instead of dying */
        struct dia_journal_config jc = {.path = path};
        struct dia_journal *j = NULL;
        char err[1024];
        if (dia_journal_open(&jc, &j, err, sizeof err) != DIA_OK)
            _exit(5);
        struct rlimit rl = {.rlim_cur = 256 * 1024, .rlim_max = RLIM_INFINITY};
        setrlimit(RLIMIT_FSIZE, &rl);
        struct dia_batch b;
        dia_batch_init(&b);
        for (int i = 0; i < 20000; i++)
            add_glucose(&b, "sim", "SIM1", "p", T0 + (1000 + i) * 5 * MIN_MS, 100);
        int rc = dia_journal_commit(j, "sim", &b, NULL);
        const char *msg = dia_journal_errmsg(j);
        if (write(pipefd[1], msg, strlen(msg) + 1) < 0)
            _exit(4);
        _exit(rc == DIA_ERR_JOURNAL_FULL || rc == DIA_ERR_JOURNAL ? 0 : 1);
    }
    close(pipefd[1]);
    char msg[1024] = "";
    ssize_t got = read(pipefd[0], msg, sizeof msg - 1);
    msg[got > 0 ? got : 0] = '\0';
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fprintf(stderr, "child said: %s\n", msg);
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(msg, path));

    struct dia_journal_config jc = {.path = path};
    struct dia_journal *j;
    char err[512];
    assert_int_equal(dia_journal_open(&jc, &j, err, sizeof err), DIA_OK);
    assert_int_equal(dia_journal_check(j, err, sizeof err), DIA_OK);
    struct dia_record out[64];
    assert_int_equal(read_all(j, 0, out, 64), 50); /* the 50 from before, none of the failed */
    dia_journal_close(j);
    testutil_rmdir(dir);
}

static void test_readonly_open_of_missing_file(void **state)
{
    (void)state;
    char *dir = testutil_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/none.db", dir);
    struct dia_journal_config jc = {.path = path, .readonly = true};
    struct dia_journal *j = NULL;
    char err[1024];
    assert_int_not_equal(dia_journal_open(&jc, &j, err, sizeof err), DIA_OK);
    assert_non_null(strstr(err, path));
    assert_int_not_equal(access(path, F_OK), 0); /* a read-only verb creates nothing */
    testutil_rmdir(dir);
}

static void test_default_path(void **state)
{
    (void)state;
    char buf[512];
    setenv("STATE_DIRECTORY", "/var/lib/diabridge:/var/lib/other", 1);
    assert_int_equal(dia_journal_default_path(buf, sizeof buf), DIA_OK);
    assert_string_equal(buf, "/var/lib/diabridge/journal.db");
    unsetenv("STATE_DIRECTORY");
    setenv("XDG_STATE_HOME", "/home/u/.state", 1);
    assert_int_equal(dia_journal_default_path(buf, sizeof buf), DIA_OK);
    assert_string_equal(buf, "/home/u/.state/diabridge/journal.db");
    unsetenv("XDG_STATE_HOME");
    setenv("HOME", "/home/u", 1);
    assert_int_equal(dia_journal_default_path(buf, sizeof buf), DIA_OK);
    assert_string_equal(buf, "/home/u/.local/state/diabridge/journal.db");
}

/*
 * A cursor counts for one target.  Reviewer's case: `jsonl#2` (a new file)
 * became `jsonl` when the line above it was deleted, inherited the first
 * file's cursor and silently received nothing.
 */
static void test_cursor_bound_to_target(void **state)
{
    struct fixture *f = *state;
    struct dia_batch b;
    dia_batch_init(&b);
    for (int i = 0; i < 4; i++)
        add_glucose(&b, "sim", "SIM1", "p", T0 + i * 5 * MIN_MS, 100 + i);
    assert_int_equal(dia_journal_commit(f->j, "sim", &b, NULL), DIA_OK);
    dia_batch_free(&b);
    struct dia_record out[8];
    assert_int_equal(read_all(f->j, 0, out, 8), 4);

    struct dia_cursor_binding cb;
    assert_int_equal(dia_journal_cursor_bind(f->j, "jsonl", "jsonl:/data/ra", &cb), DIA_OK);
    assert_int_equal(cb.outcome, DIA_CURSOR_NEW);
    assert_int_equal(cb.seq, 0);
    assert_int_equal(dia_journal_cursor_set(f->j, "jsonl", out[2].seq), DIA_OK);
    /* the daemon restarts: same target, same place to continue */
    assert_int_equal(dia_journal_cursor_bind(f->j, "jsonl", "jsonl:/data/ra", &cb), DIA_OK);
    assert_int_equal(cb.outcome, DIA_CURSOR_SAME);
    assert_int_equal(cb.seq, out[2].seq);

    /* ra refused the last record for good; another sink refused one too */
    assert_int_equal(dia_journal_dead_letter(f->j, "jsonl", out[3].seq, "refused"), DIA_OK);
    assert_int_equal(dia_journal_dead_letter(f->j, "ix", out[1].seq, "field type"), DIA_OK);

    /* now the name means another file: it gets everything, from the start */
    assert_int_equal(dia_journal_cursor_bind(f->j, "jsonl", "jsonl:/data/bdir/b", &cb), DIA_OK);
    assert_int_equal(cb.outcome, DIA_CURSOR_MOVED);
    assert_int_equal(cb.seq, 0);
    assert_int_equal(cb.previous_seq, out[3].seq);
    assert_string_equal(cb.previous_target, "jsonl:/data/ra");
    assert_int_equal(cb.dead_letters_dropped, 1);
    int64_t c = -1, backlog = -1;
    assert_int_equal(dia_journal_cursor_get(f->j, "jsonl", &c), DIA_OK);
    assert_int_equal(c, 0);
    assert_int_equal(dia_journal_backlog(f->j, "jsonl", &backlog), DIA_OK);
    assert_int_equal(backlog, 4); /* including the record ra refused */
    struct dia_dead_letter dl[8] = {0};
    assert_int_equal(dead_list(f->j, "jsonl", dl), 0);
    assert_int_equal(dead_list(f->j, "ix", dl), 1); /* other sinks' are theirs */

    /* retention must not take what the new target has not received */
    const char *sinks[] = {"jsonl"};
    int64_t deleted = -1;
    assert_int_equal(dia_journal_prune(f->j, T0 + 1000 * MIN_MS, sinks, 1, &deleted), DIA_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(read_all(f->j, 0, out, 8), 4);

    /* from here on the new target's cursor moves, forward only, as before */
    assert_int_equal(dia_journal_cursor_bind(f->j, "jsonl", "jsonl:/data/bdir/b", &cb), DIA_OK);
    assert_int_equal(cb.outcome, DIA_CURSOR_SAME);
    assert_int_equal(cb.seq, 0);
    assert_int_equal(dia_journal_cursor_set(f->j, "jsonl", out[3].seq), DIA_OK);
    assert_int_equal(dia_journal_cursor_set(f->j, "jsonl", out[0].seq), DIA_OK);
    assert_int_equal(dia_journal_cursor_bind(f->j, "jsonl", "jsonl:/data/bdir/b", &cb), DIA_OK);
    assert_int_equal(cb.outcome, DIA_CURSOR_SAME);
    assert_int_equal(cb.seq, out[3].seq);
    dead_list(f->j, "none", dl);
}

/* A cursor a sink moved before it was ever tied (a worker's first batch
 * wrote it) is adopted, never reset. */
static void test_cursor_set_before_bind_is_adopted(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(dia_journal_cursor_set(f->j, "mqtt", 12), DIA_OK);
    struct dia_cursor_binding cb;
    assert_int_equal(dia_journal_cursor_bind(f->j, "mqtt", "mqtt:mqtt://u:<redacted>@b", &cb),
                     DIA_OK);
    assert_int_equal(cb.outcome, DIA_CURSOR_ADOPTED);
    assert_int_equal(cb.seq, 12);
    assert_int_equal(cb.dead_letters_dropped, 0);
}

/* A journal from before targets were recorded: its cursors carry on where
 * they were, and are tied to the target the sink has at its next start. */
static void test_cursor_target_schema_upgrade(void **state)
{
    (void)state;
    char *dir = testutil_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/old.db", dir);
    struct dia_journal_config jc = {.path = path};
    struct dia_journal *j = NULL;
    char err[512];
    assert_int_equal(dia_journal_open(&jc, &j, err, sizeof err), DIA_OK);
    dia_journal_close(j);
    /* turn it into the old layout: sink_cursor without target */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TABLE sink_cursor;"
                                  "CREATE TABLE sink_cursor(sink TEXT PRIMARY KEY, last_seq"
                                  " INTEGER NOT NULL, updated_ms INTEGER);"
                                  "INSERT INTO sink_cursor VALUES('jsonl', 38, 1);"
                                  "INSERT INTO dead_letter(sink, seq, reason, at_ms)"
                                  " VALUES('jsonl', 9, 'refused', 1);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    /* read-only verbs (status) upgrade nothing and still read the cursor */
    struct dia_journal_config ro = {.path = path, .readonly = true};
    assert_int_equal(dia_journal_open(&ro, &j, err, sizeof err), DIA_OK);
    int64_t c = -1;
    assert_int_equal(dia_journal_cursor_get(j, "jsonl", &c), DIA_OK);
    assert_int_equal(c, 38);
    dia_journal_close(j);

    assert_int_equal(dia_journal_open(&jc, &j, err, sizeof err), DIA_OK);
    struct dia_cursor_binding cb;
    assert_int_equal(dia_journal_cursor_bind(j, "jsonl", "jsonl:/data/ra", &cb), DIA_OK);
    assert_int_equal(cb.outcome, DIA_CURSOR_ADOPTED);
    assert_int_equal(cb.seq, 38);
    struct dia_dead_letter dl[8] = {0};
    assert_int_equal(dead_list(j, "jsonl", dl), 1); /* adopting keeps them */
    dia_journal_close(j);

    /* the upgrade runs once; the adopted target is remembered */
    assert_int_equal(dia_journal_open(&jc, &j, err, sizeof err), DIA_OK);
    assert_int_equal(dia_journal_cursor_bind(j, "jsonl", "jsonl:/data/ra", &cb), DIA_OK);
    assert_int_equal(cb.outcome, DIA_CURSOR_SAME);
    assert_int_equal(cb.seq, 38);
    assert_int_equal(dia_journal_cursor_bind(j, "jsonl", "jsonl:/data/new", &cb), DIA_OK);
    assert_int_equal(cb.outcome, DIA_CURSOR_MOVED);
    assert_int_equal(cb.seq, 0);
    assert_int_equal(cb.previous_seq, 38);
    assert_string_equal(cb.previous_target, "jsonl:/data/ra");
    assert_int_equal(cb.dead_letters_dropped, 1);
    dead_list(j, "none", dl);
    dia_journal_close(j);
    testutil_rmdir(dir);
}

/* ---- a journal this user may read but not write ----------------------- */

/* Run fn in a child as an unprivileged user (root ignores file modes, and
 * the tests run as root in CI; when not root, the modes alone deny us).
 * fn returns 0 for success or a small number naming the failed check; msg
 * receives what it wrote to its pipe. */
static int as_nobody(int (*fn)(const char *path, int out, int in), const char *path, int in,
                     char *msg, size_t len)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(99);
        _exit(fn(path, pipefd[1], in));
    }
    close(pipefd[1]);
    size_t got = 0;
    ssize_t n;
    while (got < len - 1 && (n = read(pipefd[0], msg + got, len - 1 - got)) > 0)
        got += (size_t)n;
    msg[got] = '\0';
    close(pipefd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void say(int out, const char *text)
{
    if (write(out, text, strlen(text)) < 0)
        _exit(98);
}

static int count_stored(const struct dia_record *r, bool published, void *arg)
{
    (void)r;
    (void)published;
    ++*(int *)arg;
    return 0;
}

/* A read-only copy in a read-only folder: status and export must read it
 * (SQLite cannot create the -shm beside it), and `run` must say plainly
 * that it cannot write it. */
static int read_copy(const char *path, int out, int in)
{
    (void)in;
    struct dia_journal_config jc = {.path = path, .readonly = true};
    struct dia_journal *j = NULL;
    char err[1024];
    if (dia_journal_open(&jc, &j, err, sizeof err) != DIA_OK) {
        say(out, err);
        return 1;
    }
    int n = 0;
    int rc = dia_journal_each(j, 0, INT64_MAX, true, count_stored, &n);
    if (rc != DIA_OK || n != 10) {
        say(out, rc != DIA_OK ? dia_journal_errmsg(j) : "wrong number of records");
        return 2;
    }
    if (dia_journal_verify_snapshot(j) != DIA_OK) {
        say(out, dia_journal_errmsg(j));
        return 3;
    }
    dia_journal_close(j);
    struct dia_journal_config wc = {.path = path};
    if (dia_journal_open(&wc, &j, err, sizeof err) != DIA_ERR_JOURNAL_ACCESS)
        return 4;
    say(out, err);
    return 0;
}

static void test_readonly_copy_is_readable(void **state)
{
    (void)state;
    char *dir = testutil_tmpdir();
    char path[512], side[600];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    fill_journal(path, 10);
    assert_int_equal(chmod(path, 0444), 0);
    assert_int_equal(chmod(dir, 0555), 0);
    char msg[1024];
    int rc = as_nobody(read_copy, path, -1, msg, sizeof msg);
    if (rc != 0)
        fprintf(stderr, "child failed check %d: %s\n", rc, msg);
    assert_int_equal(rc, 0);
    /* the writer's refusal names the file and the cause, and no SQLite
     * filler ("not an error") */
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "no permission to write"));
    assert_null(strstr(msg, "not an error"));
    snprintf(side, sizeof side, "%s-shm", path);
    assert_int_not_equal(access(side, F_OK), 0); /* the reader created nothing */
    chmod(dir, 0755);
    testutil_rmdir(dir);
}

/* Reading such a journal takes no locks, so a daemon that starts writing
 * it meanwhile must not go unnoticed: the reader is told its results may
 * be inconsistent. */
static int read_while_written(const char *path, int out, int in)
{
    struct dia_journal_config jc = {.path = path, .readonly = true};
    struct dia_journal *j = NULL;
    char err[1024];
    if (dia_journal_open(&jc, &j, err, sizeof err) != DIA_OK) {
        say(out, err);
        return 1;
    }
    int n = 0;
    if (dia_journal_each(j, 0, INT64_MAX, true, count_stored, &n) != DIA_OK || n != 10)
        return 2;
    if (dia_journal_verify_snapshot(j) != DIA_OK)
        return 3; /* nothing has changed yet */
    say(out, "read;");
    char go;
    if (read(in, &go, 1) != 1)
        return 4;
    if (dia_journal_verify_snapshot(j) != DIA_ERR_JOURNAL)
        return 5;
    say(out, dia_journal_errmsg(j));
    dia_journal_close(j);
    return 0;
}

static void test_readonly_snapshot_notices_a_writer(void **state)
{
    (void)state;
    char *dir = testutil_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    fill_journal(path, 10);
    assert_int_equal(chmod(path, 0444), 0);
    assert_int_equal(chmod(dir, 0555), 0);
    int to_child[2], from_child[2];
    signal(SIGPIPE, SIG_IGN); /* a child that died early fails the test, not the program */
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(from_child), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(to_child[1]);
        close(from_child[0]);
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(99);
        _exit(read_while_written(path, from_child[1], to_child[0]));
    }
    close(to_child[0]);
    close(from_child[1]);
    char msg[1024] = "";
    assert_int_equal(read(from_child[0], msg, 5), 5); /* "read;": it has read */
    /* now the owner writes, as a daemon of another user would; closing
     * checkpoints the new records into the file itself */
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(chmod(path, 0644), 0);
    struct dia_journal_config jc = {.path = path};
    struct dia_journal *j;
    char err[512];
    assert_int_equal(dia_journal_open(&jc, &j, err, sizeof err), DIA_OK);
    struct dia_batch b;
    dia_batch_init(&b);
    add_glucose(&b, "sim", "SIM1", "p", T0 + 1000 * MIN_MS, 120);
    assert_int_equal(dia_journal_commit(j, "sim", &b, NULL), DIA_OK);
    dia_batch_free(&b);
    dia_journal_close(j);
    assert_int_equal(write(to_child[1], "g", 1), 1);
    ssize_t got = read(from_child[0], msg, sizeof msg - 1);
    msg[got > 0 ? got : 0] = '\0';
    close(to_child[1]);
    close(from_child[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fprintf(stderr, "child failed check %d: %s\n", WEXITSTATUS(status), msg);
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "changed while it was read"));
    testutil_rmdir(dir);
}

/* A journal whose newest records are still in its -wal (its daemon was
 * killed, and the copy has no -shm): reading without them would show an
 * old journal as if it were complete, so the reader is refused and told
 * what to do; nothing is lost for a reader who can write beside it. */
static int read_without_wal(const char *path, int out, int in)
{
    (void)in;
    struct dia_journal_config jc = {.path = path, .readonly = true};
    struct dia_journal *j = NULL;
    char err[1024];
    int rc = dia_journal_open(&jc, &j, err, sizeof err);
    say(out, err);
    dia_journal_close(j);
    return rc == DIA_ERR_JOURNAL_ACCESS ? 0 : 1;
}

static void test_readonly_refuses_unread_wal(void **state)
{
    (void)state;
    char *dir = testutil_tmpdir();
    char path[512], shm[600], wal[600];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    snprintf(shm, sizeof shm, "%s-shm", path);
    snprintf(wal, sizeof wal, "%s-wal", path);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct dia_journal_config jc = {.path = path};
        struct dia_journal *j;
        char err[512];
        if (dia_journal_open(&jc, &j, err, sizeof err) != DIA_OK)
            _exit(1);
        struct dia_batch b;
        dia_batch_init(&b);
        for (int i = 0; i < 10; i++)
            add_glucose(&b, "sim", "SIM1", "p", T0 + i * 5 * MIN_MS, 100 + i);
        _exit(dia_journal_commit(j, "sim", &b, NULL) == DIA_OK ? 0 : 2); /* killed: no close */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct stat st;
    assert_int_equal(stat(wal, &st), 0);
    assert_true(st.st_size > 0);
    unlink(shm);
    chmod(path, 0444);
    chmod(wal, 0444);
    assert_int_equal(chmod(dir, 0555), 0);
    char msg[1024];
    int rc = as_nobody(read_without_wal, path, -1, msg, sizeof msg);
    if (rc != 0)
        fprintf(stderr, "child failed check %d: %s\n", rc, msg);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(msg, wal));
    assert_non_null(strstr(msg, "Copy both files"));
    /* whoever may write beside it reads all ten */
    assert_int_equal(chmod(dir, 0755), 0);
    chmod(path, 0644);
    chmod(wal, 0644);
    struct dia_journal_config jc = {.path = path, .readonly = true};
    struct dia_journal *j;
    char err[512];
    assert_int_equal(dia_journal_open(&jc, &j, err, sizeof err), DIA_OK);
    int n = 0;
    assert_int_equal(dia_journal_each(j, 0, INT64_MAX, true, count_stored, &n), DIA_OK);
    assert_int_equal(n, 10);
    dia_journal_close(j);
    testutil_rmdir(dir);
}

/* ---- cursors follow their target across names ----------------------------- */

/* The target a cursor row holds now ("" when the row is missing). */
static void stored_target(const char *path, const char *sink, char *buf, size_t len)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT target FROM sink_cursor WHERE sink = ?1", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
    buf[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int64_t cursor_of(struct dia_journal *j, const char *sink)
{
    int64_t c = -1;
    assert_int_equal(dia_journal_cursor_get(j, sink, &c), DIA_OK);
    return c;
}

/*
 * Reviewer's case: two unnamed jsonl sinks had each received everything;
 * the first line was deleted.  The second, now named `jsonl`, must go on
 * where `jsonl#2` was with its file, not replay the journal into it.  And
 * putting the line back must find the first file's progress again.
 */
static void test_cursor_taken_over_when_a_line_is_deleted(void **state)
{
    struct fixture *f = *state;
    struct dia_batch b;
    dia_batch_init(&b);
    for (int i = 0; i < 4; i++)
        add_glucose(&b, "sim", "SIM1", "p", T0 + i * 5 * MIN_MS, 100 + i);
    assert_int_equal(dia_journal_commit(f->j, "sim", &b, NULL), DIA_OK);
    dia_batch_free(&b);
    struct dia_record out[8];
    assert_int_equal(read_all(f->j, 0, out, 8), 4);

    struct dia_cursor_claim two[] = {{.sink = "jsonl", .target = "jsonl:/data/ra"},
                                     {.sink = "jsonl#2", .target = "jsonl:/data/two"}};
    assert_int_equal(dia_journal_cursors_bind(f->j, two, 2), DIA_OK);
    assert_int_equal(two[0].result.outcome, DIA_CURSOR_NEW);
    assert_int_equal(two[1].result.outcome, DIA_CURSOR_NEW);
    assert_int_equal(dia_journal_cursor_set(f->j, "jsonl", out[3].seq), DIA_OK);
    assert_int_equal(dia_journal_cursor_set(f->j, "jsonl#2", out[1].seq), DIA_OK);
    /* two refused a record for good; dead letters are the place's */
    assert_int_equal(dia_journal_dead_letter(f->j, "jsonl#2", out[2].seq, "refused"), DIA_OK);
    assert_int_equal(cursor_of(f->j, "jsonl#2"), out[2].seq);

    /* the ra line is deleted: jsonl now means two */
    struct dia_cursor_claim one[] = {{.sink = "jsonl", .target = "jsonl:/data/two"}};
    assert_int_equal(dia_journal_cursors_bind(f->j, one, 1), DIA_OK);
    assert_int_equal(one[0].result.outcome, DIA_CURSOR_TAKEN_OVER);
    assert_int_equal(one[0].result.seq, out[2].seq);
    assert_string_equal(one[0].result.taken_from, "jsonl#2");
    assert_string_equal(one[0].result.previous_target, "jsonl:/data/ra");
    assert_int_equal(one[0].result.previous_seq, out[3].seq);
    assert_true(one[0].result.previous_kept);
    assert_int_equal(one[0].result.dead_letters_dropped, 0);
    assert_int_equal(cursor_of(f->j, "jsonl"), out[2].seq);
    struct dia_dead_letter dl[8] = {0};
    assert_int_equal(dead_list(f->j, "jsonl", dl), 1); /* two's refusal came along */
    assert_int_equal(dl[0].seq, out[2].seq);
    /* ra's progress waits under the freed name */
    char t[512];
    stored_target(f->path, "jsonl#2", t, sizeof t);
    assert_string_equal(t, "jsonl:/data/ra");
    assert_int_equal(cursor_of(f->j, "jsonl#2"), out[3].seq);
    assert_int_equal(dead_list(f->j, "jsonl#2", dl), 0);

    /* a restart changes nothing */
    assert_int_equal(dia_journal_cursors_bind(f->j, one, 1), DIA_OK);
    assert_int_equal(one[0].result.outcome, DIA_CURSOR_SAME);
    assert_int_equal(one[0].result.seq, out[2].seq);

    /* the line comes back: both names change place at once, and each
     * place continues where it was */
    assert_int_equal(dia_journal_cursors_bind(f->j, two, 2), DIA_OK);
    assert_int_equal(two[0].result.outcome, DIA_CURSOR_TAKEN_OVER);
    assert_int_equal(two[0].result.seq, out[3].seq);
    assert_int_equal(two[1].result.outcome, DIA_CURSOR_TAKEN_OVER);
    assert_int_equal(two[1].result.seq, out[2].seq);
    assert_int_equal(cursor_of(f->j, "jsonl"), out[3].seq);
    assert_int_equal(cursor_of(f->j, "jsonl#2"), out[2].seq);
    assert_int_equal(dead_list(f->j, "jsonl#2", dl), 1);
    assert_int_equal(dead_list(f->j, "jsonl", dl), 0);
    assert_int_equal(dia_journal_cursors_bind(f->j, two, 2), DIA_OK);
    assert_int_equal(two[0].result.outcome, DIA_CURSOR_SAME);
    assert_int_equal(two[1].result.outcome, DIA_CURSOR_SAME);
    dead_list(f->j, "none", dl);
}

/* Two configured sinks with one target (unusual) cannot both continue one
 * cursor: the first takes it, the second starts from the beginning. */
static void test_cursor_taken_over_once(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(dia_journal_cursor_set(f->j, "old", 5), DIA_OK);
    struct dia_cursor_binding cb;
    assert_int_equal(dia_journal_cursor_bind(f->j, "old", "jsonl:/data/t", &cb), DIA_OK);
    assert_int_equal(cb.outcome, DIA_CURSOR_ADOPTED);

    struct dia_cursor_claim both[] = {{.sink = "n1", .target = "jsonl:/data/t"},
                                      {.sink = "n2", .target = "jsonl:/data/t"}};
    assert_int_equal(dia_journal_cursors_bind(f->j, both, 2), DIA_OK);
    assert_int_equal(both[0].result.outcome, DIA_CURSOR_TAKEN_OVER);
    assert_int_equal(both[0].result.seq, 5);
    assert_string_equal(both[0].result.taken_from, "old");
    assert_int_equal(both[1].result.outcome, DIA_CURSOR_NEW);
    assert_int_equal(both[1].result.seq, 0);
    assert_int_equal(cursor_of(f->j, "n1"), 5);
    assert_int_equal(cursor_of(f->j, "n2"), 0);
    char t[512];
    stored_target(f->path, "old", t, sizeof t);
    assert_string_equal(t, ""); /* moved, not copied */
    assert_int_equal(dia_journal_cursors_bind(f->j, both, 2), DIA_OK);
    assert_int_equal(both[0].result.outcome, DIA_CURSOR_SAME);
    assert_int_equal(both[1].result.outcome, DIA_CURSOR_SAME);
}

/*
 * Options that choose the destination (a bucket, a topic) are part of the
 * target.  A cursor stored before they were (the target alone) counts for
 * the same place, so an upgrade resets nothing; from then on a new bucket
 * is a new place.
 */
static void test_cursor_former_target_form(void **state)
{
    struct fixture *f = *state;
    struct dia_cursor_binding cb;
    assert_int_equal(dia_journal_cursor_bind(f->j, "influx", "influx:http://h:8086", &cb), DIA_OK);
    assert_int_equal(dia_journal_cursor_set(f->j, "influx", 7), DIA_OK);
    assert_int_equal(dia_journal_cursor_bind(f->j, "gone", "influx:http://h2:8086", &cb), DIA_OK);
    assert_int_equal(dia_journal_cursor_set(f->j, "gone", 9), DIA_OK);

    struct dia_cursor_claim c[] = {
        {.sink = "influx",
         .target = "influx:http://h:8086,db=cgm",
         .former_target = "influx:http://h:8086"},
        /* renamed at the same time as the upgrade */
        {.sink = "ix2",
         .target = "influx:http://h2:8086,db=cgm",
         .former_target = "influx:http://h2:8086"},
    };
    assert_int_equal(dia_journal_cursors_bind(f->j, c, 2), DIA_OK);
    assert_int_equal(c[0].result.outcome, DIA_CURSOR_SAME);
    assert_int_equal(c[0].result.seq, 7);
    assert_int_equal(c[1].result.outcome, DIA_CURSOR_TAKEN_OVER);
    assert_int_equal(c[1].result.seq, 9);
    char t[512];
    stored_target(f->path, "influx", t, sizeof t);
    assert_string_equal(t, "influx:http://h:8086,db=cgm"); /* rewritten in today's form */
    stored_target(f->path, "ix2", t, sizeof t);
    assert_string_equal(t, "influx:http://h2:8086,db=cgm");

    /* another database on the same server is another place */
    c[0].target = "influx:http://h:8086,db=other";
    assert_int_equal(dia_journal_cursors_bind(f->j, c, 1), DIA_OK);
    assert_int_equal(c[0].result.outcome, DIA_CURSOR_MOVED);
    assert_int_equal(c[0].result.seq, 0);
    assert_int_equal(c[0].result.previous_seq, 7);
    assert_string_equal(c[0].result.previous_target, "influx:http://h:8086,db=cgm");
    /* ix2 is no longer configured and its row is in today's form: kept */
    assert_int_equal(cursor_of(f->j, "ix2"), 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_read_and_reinsert_is_noop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_commits_with_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_backlog_dead_letter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter_retry, setup, teardown),
        cmocka_unit_test(test_dead_letter_schema_upgrade),
        cmocka_unit_test_setup_teardown(test_dead_letter_old_journal_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consolidation_receiver_and_cloud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consolidation_keeps_every_observation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_consolidation_two_sensors_not_merged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consolidation_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_backfill_is_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_rows, setup, teardown),
        cmocka_unit_test(test_not_a_journal),
        cmocka_unit_test(test_truncated_journal),
        cmocka_unit_test(test_journal_path_is_a_directory),
        cmocka_unit_test(test_no_permission),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_readonly_open_of_missing_file),
        cmocka_unit_test(test_default_path),
        cmocka_unit_test_setup_teardown(test_cursor_bound_to_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_set_before_bind_is_adopted, setup, teardown),
        cmocka_unit_test(test_cursor_target_schema_upgrade),
        cmocka_unit_test(test_readonly_copy_is_readable),
        cmocka_unit_test(test_readonly_snapshot_notices_a_writer),
        cmocka_unit_test(test_readonly_refuses_unread_wal),
        cmocka_unit_test_setup_teardown(test_cursor_taken_over_when_a_line_is_deleted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cursor_taken_over_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_former_target_form, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
