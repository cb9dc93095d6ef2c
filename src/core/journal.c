/*
 * The journal (DESIGN §5–6): SQLite in WAL mode, one connection per thread.
 *
 * Why WAL: sources write while sinks read; in WAL readers never block the
 * writer and a crash at any instant leaves either the whole transaction or
 * none of it.  Why synchronous=FULL by default: a commit is the promise
 * "stored"; with NORMAL a power cut could take back the last commits.
 *
 * Consolidation happens inside the commit transaction so that "is this
 * reading already published?" and "publish it" can never race between two
 * sources: SQLite serialises writers, and the check reads the same snapshot
 * the insert writes to.
 *
 * Retention does not delete rows: it drops the payload and keeps the
 * record_key as a tombstone.  Otherwise a receiver re-imported with
 * `since=all` would bring year-old readings back as "new" and publish them
 * again.
 */
#include "core/journal.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/journal_lock.h"

#define SCHEMA_VERSION "1"

/* DESIGN §6: same sensor, |Δt| ≤ 150 s, |Δvalue| ≤ 1 mg/dL → one reading */
#define MERGE_WINDOW_MS  150000
#define MERGE_VALUE_MGDL 1

enum stmt_id {
    ST_INSERT,
    ST_NEIGHBOURS,
    ST_STATE_GET,
    ST_STATE_SET,
    ST_READ,
    ST_CURSOR_GET,
    ST_CURSOR_SET,
    ST_DEAD,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_INSERT] = "INSERT OR IGNORE INTO records(record_key, kind, t_utc_ms, source, sensor, mgdl,"
                  " published, merged_into, received_ms, payload)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [ST_NEIGHBOURS] = "SELECT seq, mgdl FROM records WHERE kind = 'glucose' AND sensor = ?1"
                      " AND published = 1 AND t_utc_ms BETWEEN ?2 - ?3 AND ?2 + ?3",
    [ST_STATE_GET] = "SELECT value FROM source_state WHERE owner = ?1 AND key = ?2",
    [ST_STATE_SET] = "INSERT INTO source_state(owner, key, value) VALUES(?1, ?2, ?3)"
                     " ON CONFLICT(owner, key) DO UPDATE SET value = excluded.value",
    [ST_READ] = "SELECT seq, payload FROM records WHERE seq > ?1 AND published = 1"
                " AND payload IS NOT NULL ORDER BY seq LIMIT ?2",
    [ST_CURSOR_GET] = "SELECT last_seq FROM sink_cursor WHERE sink = ?1",
    [ST_CURSOR_SET] =
        "INSERT INTO sink_cursor(sink, last_seq, updated_ms) VALUES(?1, ?2, ?3)"
        " ON CONFLICT(sink) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq),"
        " updated_ms = excluded.updated_ms",
    [ST_DEAD] = "INSERT INTO dead_letter(sink, seq, reason, at_ms) VALUES(?1, ?2, ?3, ?4)",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    /* AUTOINCREMENT: a seq is never reused, so a sink cursor can never
     * skip a record that took over a deleted row's number. */
    "CREATE TABLE IF NOT EXISTS records("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  record_key TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL,"
    "  t_utc_ms INTEGER NOT NULL,"
    "  source TEXT NOT NULL,"
    "  sensor TEXT,"
    "  mgdl INTEGER,"
    "  published INTEGER NOT NULL,"
    "  merged_into INTEGER,"
    "  received_ms INTEGER NOT NULL,"
    "  payload TEXT);"
    "CREATE INDEX IF NOT EXISTS records_glucose_slot ON records(sensor, t_utc_ms)"
    "  WHERE kind = 'glucose';"
    "CREATE INDEX IF NOT EXISTS records_time ON records(t_utc_ms);"
    /* target: what the sink delivers to, in a form without secrets
     * (dia_journal_cursor_bind), so a cursor is never applied to another
     * place that happens to get the same name. */
    "CREATE TABLE IF NOT EXISTS sink_cursor(sink TEXT PRIMARY KEY, last_seq INTEGER NOT NULL,"
    "  updated_ms INTEGER, target TEXT);"
    /* retry = 1: the user asked (`diabridge dead-letters --retry`) for the
     * record to be sent again; the sink's worker picks it up. */
    "CREATE TABLE IF NOT EXISTS dead_letter(id INTEGER PRIMARY KEY, sink TEXT NOT NULL,"
    "  seq INTEGER NOT NULL, reason TEXT NOT NULL, at_ms INTEGER NOT NULL,"
    "  retry INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS source_state(owner TEXT NOT NULL, key TEXT NOT NULL,"
    "  value TEXT NOT NULL, PRIMARY KEY(owner, key));"
    "CREATE TABLE IF NOT EXISTS worker_status(worker TEXT PRIMARY KEY, json TEXT NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '" SCHEMA_VERSION "');";

struct dia_journal {
    sqlite3 *db;
    char *path;
    bool readonly;
    bool immutable;        /* read as a snapshot, without locks: see open_immutable */
    struct stat unchanged; /* the file as it was then, for dia_journal_verify_snapshot */
    struct dia_journal_hub *hub;
    sqlite3_stmt *stmt[ST_COUNT];
    char errmsg[512];
};

/* ---- hub ----------------------------------------------------------------- */

void dia_journal_hub_init(struct dia_journal_hub *hub)
{
    pthread_mutex_init(&hub->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    /* Monotonic, so a wall-clock jump cannot make sinks sleep for hours. */
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&hub->changed, &attr);
    pthread_condattr_destroy(&attr);
    hub->last_seq = 0;
    hub->version = 0;
}

void dia_journal_hub_destroy(struct dia_journal_hub *hub)
{
    pthread_cond_destroy(&hub->changed);
    pthread_mutex_destroy(&hub->lock);
}

void dia_journal_hub_notify(struct dia_journal_hub *hub, int64_t seq)
{
    pthread_mutex_lock(&hub->lock);
    if (seq > hub->last_seq)
        hub->last_seq = seq;
    hub->version++;
    pthread_cond_broadcast(&hub->changed);
    pthread_mutex_unlock(&hub->lock);
}

uint64_t dia_journal_hub_wait(struct dia_journal_hub *hub, uint64_t seen_version, int timeout_ms)
{
    struct timespec deadline = dia_mono_deadline(timeout_ms);
    pthread_mutex_lock(&hub->lock);
    while (hub->version == seen_version) {
        if (pthread_cond_timedwait(&hub->changed, &hub->lock, &deadline) != 0)
            break;
    }
    uint64_t v = hub->version;
    pthread_mutex_unlock(&hub->lock);
    return v;
}

/* ---- errors -------------------------------------------------------------- */

/* The folder of the journal's real file, where SQLite creates its -wal and
 * -shm (it resolves symbolic links to name them). */
static void real_folder(const char *path, char *dir, size_t len)
{
    char real[PATH_MAX];
    snprintf(dir, len, "%s", realpath(path, real) ? real : path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, len, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
}

/* Why this process may not write the journal or create files beside it:
 * the errno of the first refusal (the file, else its folder), or 0. */
static int why_unwritable(const char *path)
{
    if (access(path, F_OK) == 0 && access(path, W_OK) != 0)
        return errno;
    char dir[PATH_MAX];
    real_folder(path, dir, sizeof dir);
    return access(dir, W_OK) != 0 ? errno : 0;
}

/* When SQLite's refusal comes from the file system (a read-only mount, a
 * file of another user), say so with what to do about it; SQLite's own
 * words ("attempt to write a readonly database") say neither. */
static bool explain_unwritable(struct dia_journal *j, const char *doing)
{
    int why = why_unwritable(j->path);
    if (why != EROFS && why != EACCES && why != EPERM)
        return false;
    char action[128];
    snprintf(action, sizeof action, "%s while %s",
             access(j->path, F_OK) == 0 ? "write it" : "create it", doing);
    dia_journal_explain_unwritable(j->errmsg, sizeof j->errmsg, j->path, action, why);
    return true;
}

/* Map an SQLite result to our error and a sentence a user can act on. */
static int journal_fail(struct dia_journal *j, int sqlite_rc, const char *doing)
{
    const char *path = j->path;
    const char *detail = j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(sqlite_rc);
    int primary = sqlite_rc & 0xff;
    int err;
    switch (primary) {
    case SQLITE_FULL:
        err = DIA_ERR_JOURNAL_FULL;
        snprintf(j->errmsg, sizeof j->errmsg,
                 "journal %s: the disk is full while %s. Free some space; diabridge keeps "
                 "retrying and loses nothing already stored",
                 path, doing);
        break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        err = DIA_ERR_JOURNAL_ACCESS;
        if (!j->readonly && explain_unwritable(j, doing))
            break;
        snprintf(j->errmsg, sizeof j->errmsg,
                 "journal %s: no permission to write while %s (%s). The user running diabridge "
                 "(uid %u) must own the file and its folder, or set `journal PATH` to a "
                 "writable place",
                 path, doing, detail, (unsigned)geteuid());
        break;
    case SQLITE_CANTOPEN:
        err = DIA_ERR_JOURNAL_ACCESS;
        if (!j->readonly && explain_unwritable(j, doing))
            break;
        snprintf(j->errmsg, sizeof j->errmsg,
                 "journal %s: cannot open the file while %s (%s). Check that the folder exists "
                 "and is writable by uid %u, or set `journal PATH`",
                 path, doing, detail, (unsigned)geteuid());
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        err = DIA_ERR_JOURNAL_CORRUPT;
        snprintf(j->errmsg, sizeof j->errmsg,
                 "journal %s is damaged or is not a diabridge journal (%s, while %s). Stop "
                 "diabridge, move the file aside (mv %s %s.damaged) and start again; the "
                 "devices still hold their recent history",
                 path, detail, doing, path, path);
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        err = DIA_ERR_JOURNAL;
        snprintf(j->errmsg, sizeof j->errmsg,
                 "journal %s is busy while %s (another program holds a lock); will retry", path,
                 doing);
        break;
    default:
        err = DIA_ERR_JOURNAL;
        snprintf(j->errmsg, sizeof j->errmsg, "journal %s: %s while %s", path, detail, doing);
        break;
    }
    return err;
}

const char *dia_journal_errmsg(const struct dia_journal *j)
{
    return j->errmsg;
}

const char *dia_journal_path(const struct dia_journal *j)
{
    return j->path;
}

/* ---- open / close -------------------------------------------------------- */

static int mkdir_parents(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return 0;
    *slash = '\0';
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int exec_sql(struct dia_journal *j, const char *sql, const char *doing)
{
    int rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? DIA_OK : journal_fail(j, rc, doing);
}

/* Journals written before a column existed get it added; CREATE TABLE IF NOT
 * EXISTS leaves an old table as it was. */
/* Whether table has column (journals of older versions may lack it). */
static int has_column(struct dia_journal *j, const char *table, const char *column, bool *has,
                      const char *doing)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db, "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return journal_fail(j, rc, doing);
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
    *has = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
    sqlite3_finalize(st);
    return DIA_OK;
}

static int add_column_if_missing(struct dia_journal *j, const char *table, const char *column,
                                 const char *alter_sql)
{
    bool has = false;
    int err = has_column(j, table, column, &has, "upgrading tables");
    if (err != DIA_OK || has)
        return err;
    return exec_sql(j, alter_sql, "upgrading tables");
}

static int upgrade_schema(struct dia_journal *j)
{
    int err = add_column_if_missing(j, "dead_letter", "retry",
                                    "ALTER TABLE dead_letter ADD COLUMN retry INTEGER NOT NULL"
                                    " DEFAULT 0");
    if (err != DIA_OK)
        return err;
    /* Cursors written before targets were recorded have none (NULL); the
     * sink's next start adopts its current target (dia_journal_cursor_bind). */
    return add_column_if_missing(j, "sink_cursor", "target",
                                 "ALTER TABLE sink_cursor ADD COLUMN target TEXT");
}

void dia_journal_close(struct dia_journal *j)
{
    if (!j)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(j->stmt[i]);
    sqlite3_close(j->db);
    free(j->path);
    free(j);
}

/* Whether this process may write the journal and create files beside it
 * (the -wal and -shm SQLite needs in WAL mode, even to read). */
static bool can_write_beside(const char *path)
{
    return why_unwritable(path) == 0;
}

/* An SQLite URI for path with immutable=1; every byte outside the
 * unreserved set is percent-encoded, so '?', '#' and '%' in a file name
 * stay part of the name. */
static char *immutable_uri(const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(path);
    char *uri = malloc(len * 3 + 32);
    if (!uri)
        return NULL;
    /* "file://" + "/abs" leaves the authority empty even for "//x"; a
     * relative path must not get the slashes. */
    char *o = uri + sprintf(uri, path[0] == '/' ? "file://" : "file:");
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("/._~-", *c)) {
            *o++ = (char)*c;
        } else {
            *o++ = '%';
            *o++ = hex[*c >> 4];
            *o++ = hex[*c & 15];
        }
    }
    strcpy(o, "?immutable=1");
    return uri;
}

/*
 * The read-only fallback, for a journal this user may read but not write
 * (a backed-up copy, a file of another user).  In WAL mode SQLite needs the
 * -shm file even to read, and cannot create it here.  immutable=1 tells
 * SQLite the file cannot change, so it reads it with no -shm and no locks.
 *
 * That is true only while nothing writes the file, and a user who cannot
 * write it is no proof of that: a daemon running as the owner can.  Such a
 * daemon, while it runs, has the -shm beside the journal, and then the
 * plain read-only open works and this is never reached; but one that
 * starts while we read is not seen by an immutable reader, which might
 * then mix old and new pages.  Hence: never when the journal's daemon lock
 * is held, and dia_journal_verify_snapshot after reading tells whether
 * the file changed meanwhile.  It also ignores the -wal file, so a journal
 * whose newest changes are still there (its daemon was killed) is refused
 * rather than shown without them.
 */
static int open_immutable(struct dia_journal *j)
{
    long pid = 0;
    if (dia_journal_lock_holder(j->path, &pid) == 1) {
        snprintf(j->errmsg, sizeof j->errmsg,
                 "journal %s is in use by diabridge (pid %ld), and reading it while it changes "
                 "needs write access to its folder. Run this as the user that runs diabridge",
                 j->path, pid);
        return DIA_ERR_JOURNAL_ACCESS;
    }
    /* beside the real file, where SQLite puts it, not beside a symlink */
    char *real = realpath(j->path, NULL), wal[PATH_MAX + 8];
    struct stat st;
    snprintf(wal, sizeof wal, "%s-wal", real ? real : j->path);
    if (stat(wal, &st) == 0 && st.st_size > 0) {
        snprintf(j->errmsg, sizeof j->errmsg,
                 "journal %s: its newest changes are still in %s-wal, which SQLite can read "
                 "only with write access to the folder. Copy both files into a folder you can "
                 "write and read the copy, or run this as the user that runs diabridge",
                 j->path, real ? real : j->path);
        free(real);
        return DIA_ERR_JOURNAL_ACCESS;
    }
    free(real);
    char *uri = immutable_uri(j->path);
    if (!uri) {
        snprintf(j->errmsg, sizeof j->errmsg, "out of memory opening the journal");
        return DIA_ERR_NOMEM;
    }
    sqlite3_close(j->db);
    j->db = NULL;
    /* the file as it is before the first read: a change after this is seen */
    if (stat(j->path, &j->unchanged) != 0)
        memset(&j->unchanged, 0, sizeof j->unchanged);
    int rc = sqlite3_open_v2(uri, &j->db,
                             SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, NULL);
    free(uri);
    if (rc != SQLITE_OK)
        return journal_fail(j, rc, "opening read-only");
    sqlite3_extended_result_codes(j->db, 0);
    j->immutable = true;
    return exec_sql(j, "SELECT count(*) FROM meta", "opening");
}

int dia_journal_verify_snapshot(struct dia_journal *j)
{
    if (!j->immutable)
        return DIA_OK; /* SQLite's own locks kept every read consistent */
    struct stat now;
    if (stat(j->path, &now) == 0 && now.st_dev == j->unchanged.st_dev &&
        now.st_ino == j->unchanged.st_ino && now.st_size == j->unchanged.st_size &&
        now.st_mtim.tv_sec == j->unchanged.st_mtim.tv_sec &&
        now.st_mtim.tv_nsec == j->unchanged.st_mtim.tv_nsec)
        return DIA_OK;
    snprintf(j->errmsg, sizeof j->errmsg,
             "journal %s changed while it was read (a diabridge started writing it), so what "
             "was shown may mix old and new data. Run the command again",
             j->path);
    return DIA_ERR_JOURNAL;
}

int dia_journal_open(const struct dia_journal_config *cfg, struct dia_journal **out, char *errbuf,
                     size_t errlen)
{
    *out = NULL;
    struct dia_journal *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(cfg->path))) {
        free(j);
        snprintf(errbuf, errlen, "out of memory opening the journal");
        return DIA_ERR_NOMEM;
    }
    j->readonly = cfg->readonly;
    j->hub = cfg->hub;
    int err = DIA_OK;

    if (!cfg->readonly && mkdir_parents(cfg->path) != 0) {
        dia_journal_explain_unwritable(j->errmsg, sizeof j->errmsg, cfg->path, "create its folder",
                                       errno);
        err = DIA_ERR_JOURNAL_ACCESS;
        goto fail;
    }
    int flags = SQLITE_OPEN_NOMUTEX |
                (cfg->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(cfg->path, &j->db, flags, NULL);
    if (rc != SQLITE_OK) {
        err = journal_fail(j, rc, "opening");
        goto fail;
    }
    sqlite3_extended_result_codes(j->db, 0);
    sqlite3_busy_timeout(j->db, 10000);
    if (!cfg->readonly) {
        if (access(cfg->path, W_OK) != 0) {
            /* Said here, not by journal_fail: SQLite has no error to add yet
             * (it opened the file read-only without a word). */
            dia_journal_explain_unwritable(j->errmsg, sizeof j->errmsg, cfg->path, "write it",
                                           errno);
            err = DIA_ERR_JOURNAL_ACCESS;
            goto fail;
        }
        /* journal_mode is the first statement that reads the header, so a
         * truncated or foreign file is reported here. */
        if ((err = exec_sql(j, "PRAGMA journal_mode=WAL", "opening")) != DIA_OK)
            goto fail;
        const char *sync =
            cfg->sync == DIA_SYNC_NORMAL ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL";
        if ((err = exec_sql(j, sync, "opening")) != DIA_OK)
            goto fail;
        /* Every worker has its own connection, and SQLite's default page
         * cache (2 MiB each) would grow with a journal of months into tens
         * of MiB on a Raspberry Pi.  Sinks read the newest pages and sources
         * append, so a small cache serves them; the kernel's page cache
         * holds the file anyway. */
        if ((err = exec_sql(j, "PRAGMA cache_size=-512", "opening")) != DIA_OK)
            goto fail;
        if ((err = exec_sql(j, "BEGIN IMMEDIATE", "creating tables")) != DIA_OK)
            goto fail;
        if ((err = exec_sql(j, schema_sql, "creating tables")) != DIA_OK ||
            (err = upgrade_schema(j)) != DIA_OK) {
            sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
            goto fail;
        }
        if ((err = exec_sql(j, "COMMIT", "creating tables")) != DIA_OK)
            goto fail;
    } else {
        err = exec_sql(j, "SELECT count(*) FROM meta", "opening");
        /* Only when the reason is that this user cannot write beside it. */
        if (err == DIA_ERR_JOURNAL_ACCESS && !can_write_beside(cfg->path))
            err = open_immutable(j);
        if (err != DIA_OK) {
            if (err == DIA_ERR_JOURNAL)
                snprintf(j->errmsg, sizeof j->errmsg,
                         "journal %s does not exist or is not a diabridge journal; run "
                         "`diabridge run` first, or pass --journal PATH",
                         cfg->path);
            goto fail;
        }
    }
    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(j->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &j->stmt[i],
                                NULL);
        if (rc != SQLITE_OK) {
            err = journal_fail(j, rc, "preparing statements");
            goto fail;
        }
    }
    *out = j;
    return DIA_OK;
fail:
    snprintf(errbuf, errlen, "%s", j->errmsg);
    dia_journal_close(j);
    return err;
}

/* ---- commit and consolidation -------------------------------------------- */

static int step_done(struct dia_journal *j, sqlite3_stmt *st, const char *doing)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DIA_OK : journal_fail(j, rc, doing);
}

/* The consolidation group of a glucose reading: the sensor/patient when the
 * source knows it, otherwise the device itself. */
static void sensor_group(const struct dia_record *r, char *buf, size_t len)
{
    if (r->sensor[0])
        snprintf(buf, len, "%s", r->sensor);
    else
        snprintf(buf, len, "%s:%s", r->driver, r->device_id);
}

/* Returns the seq of an already published reading of the same sensor and
 * slot with (almost) the same value, 0 when none, or a negative error. */
static int64_t find_published_twin(struct dia_journal *j, const char *group,
                                   const struct dia_record *r, int *err)
{
    sqlite3_stmt *st = j->stmt[ST_NEIGHBOURS];
    sqlite3_bind_text(st, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->t_utc_ms);
    sqlite3_bind_int64(st, 3, MERGE_WINDOW_MS);
    int64_t twin = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int mgdl = sqlite3_column_int(st, 1);
        int diff = mgdl - r->u.glucose.mgdl;
        if (diff >= -MERGE_VALUE_MGDL && diff <= MERGE_VALUE_MGDL) {
            twin = sqlite3_column_int64(st, 0);
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        *err = journal_fail(j, rc, "consolidating glucose");
    sqlite3_reset(st);
    return twin;
}

static int insert_one(struct dia_journal *j, const char *owner, const struct dia_record *r,
                      struct dia_commit_result *res)
{
    char group[96] = "";
    int64_t twin = 0;
    int err = DIA_OK;
    bool glucose = r->kind == DIA_KIND_GLUCOSE;
    if (glucose) {
        sensor_group(r, group, sizeof group);
        twin = find_published_twin(j, group, r, &err);
        if (err != DIA_OK)
            return err;
    }
    char *payload = dia_record_to_json_text(r);
    if (!payload)
        return DIA_ERR_NOMEM;
    sqlite3_stmt *st = j->stmt[ST_INSERT];
    sqlite3_bind_text(st, 1, r->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, dia_kind_name(r->kind), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, r->t_utc_ms);
    sqlite3_bind_text(st, 4, owner, -1, SQLITE_STATIC);
    if (glucose) {
        sqlite3_bind_text(st, 5, group, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, r->u.glucose.mgdl);
    } else {
        sqlite3_bind_null(st, 5);
        sqlite3_bind_null(st, 6);
    }
    sqlite3_bind_int(st, 7, twin ? 0 : 1);
    if (twin)
        sqlite3_bind_int64(st, 8, twin);
    else
        sqlite3_bind_null(st, 8);
    sqlite3_bind_int64(st, 9, r->received_ms ? r->received_ms : dia_now_ms());
    sqlite3_bind_text(st, 10, payload, -1, SQLITE_STATIC);
    err = step_done(j, st, "storing records");
    sqlite3_clear_bindings(st);
    free(payload);
    if (err != DIA_OK)
        return err;
    if (sqlite3_changes(j->db) == 0) {
        res->duplicates++;
        return DIA_OK;
    }
    res->inserted++;
    if (twin)
        res->merged++;
    res->last_seq = sqlite3_last_insert_rowid(j->db);
    return DIA_OK;
}

static int state_put(struct dia_journal *j, const char *owner, const char *key, const char *value)
{
    sqlite3_stmt *st = j->stmt[ST_STATE_SET];
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, value, -1, SQLITE_STATIC);
    return step_done(j, st, "saving source state");
}

int dia_journal_commit(struct dia_journal *j, const char *owner, const struct dia_batch *batch,
                       struct dia_commit_result *res)
{
    struct dia_commit_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (batch->n == 0 && batch->nstate == 0)
        return DIA_OK;
    /* Refuse the whole batch before touching the database if any record is
     * malformed: a driver bug must not half-store a poll. */
    for (size_t i = 0; i < batch->n; i++) {
        char why[128];
        if (dia_record_validate(&batch->recs[i], why, sizeof why) != DIA_OK) {
            snprintf(j->errmsg, sizeof j->errmsg,
                     "refusing to store a %s record from %s: %s (this is a bug in that driver)",
                     dia_kind_name(batch->recs[i].kind), owner, why);
            return DIA_ERR_IMPLAUSIBLE;
        }
    }
    int err = exec_sql(j, "BEGIN IMMEDIATE", "starting a transaction");
    if (err != DIA_OK)
        return err;
    for (size_t i = 0; i < batch->n && err == DIA_OK; i++)
        err = insert_one(j, owner, &batch->recs[i], res);
    for (size_t i = 0; i < batch->nstate && err == DIA_OK; i++)
        err = state_put(j, owner, batch->state[i].key, batch->state[i].value);
    if (err == DIA_OK)
        err = exec_sql(j, "COMMIT", "committing records");
    if (err != DIA_OK) {
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        memset(res, 0, sizeof *res);
        return err;
    }
    if (j->hub && res->inserted > res->merged)
        dia_journal_hub_notify(j->hub, res->last_seq);
    return DIA_OK;
}

/* ---- state --------------------------------------------------------------- */

int dia_journal_state_get(struct dia_journal *j, const char *owner, const char *key, char *buf,
                          size_t len)
{
    sqlite3_stmt *st = j->stmt[ST_STATE_GET];
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int found = 0;
    if (rc == SQLITE_ROW) {
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
        found = 1;
    } else if (rc != SQLITE_DONE) {
        found = journal_fail(j, rc, "reading source state");
    }
    sqlite3_reset(st);
    return found;
}

int dia_journal_state_set(struct dia_journal *j, const char *owner, const char *key,
                          const char *value)
{
    return state_put(j, owner, key, value);
}

/* ---- sinks --------------------------------------------------------------- */

/* Step a statement whose rows are (seq, payload) into out[]; the caller
 * binds it before and resets or finalizes it after. */
static int step_records(struct dia_journal *j, sqlite3_stmt *st, struct dia_record *out, size_t *n,
                        const char *doing)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dia_record *r = &out[*n];
        const char *payload = (const char *)sqlite3_column_text(st, 1);
        if (!payload || dia_record_from_json_text(payload, r) != DIA_OK) {
            /* A payload we wrote ourselves no longer parses: the file was
             * damaged.  Stop rather than skip silently. */
            snprintf(j->errmsg, sizeof j->errmsg,
                     "journal %s: record seq %lld cannot be read back (damaged payload)", j->path,
                     (long long)sqlite3_column_int64(st, 0));
            return DIA_ERR_JOURNAL_CORRUPT;
        }
        r->seq = sqlite3_column_int64(st, 0);
        (*n)++;
    }
    return rc == SQLITE_DONE ? DIA_OK : journal_fail(j, rc, doing);
}

int dia_journal_read(struct dia_journal *j, int64_t after_seq, struct dia_record *out, size_t max,
                     size_t *n)
{
    *n = 0;
    sqlite3_stmt *st = j->stmt[ST_READ];
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    int err = step_records(j, st, out, n, "reading records");
    sqlite3_reset(st);
    return err;
}

int dia_journal_cursor_get(struct dia_journal *j, const char *sink, int64_t *seq)
{
    sqlite3_stmt *st = j->stmt[ST_CURSOR_GET];
    sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int err = DIA_OK;
    *seq = 0;
    if (rc == SQLITE_ROW)
        *seq = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        err = journal_fail(j, rc, "reading a sink cursor");
    sqlite3_reset(st);
    return err;
}

static int cursor_put(struct dia_journal *j, const char *sink, int64_t seq)
{
    sqlite3_stmt *st = j->stmt[ST_CURSOR_SET];
    sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_int64(st, 3, dia_now_ms());
    return step_done(j, st, "moving a sink cursor");
}

int dia_journal_cursor_set(struct dia_journal *j, const char *sink, int64_t seq)
{
    return cursor_put(j, sink, seq);
}

/* ---- tying cursors to their targets --------------------------------------- */

/* Names may not contain '/' (config.c), so "/NAME" is free to park the dead
 * letters of a cursor that moves to NAME while other cursors still move:
 * two sinks may swap names. */
#define CURSOR_MOVING_PREFIX "/"
#define CURSOR_BIND_DOING    "tying sink cursors to their targets"

/* A sink_cursor row as found, and what the binding does with it. */
enum cursor_row_fate {
    ROW_STAYS,   /* not involved: a sink no longer configured, or unchanged */
    ROW_GOES,    /* counts for a configured sink's target: stored under its name */
    ROW_KEPT,    /* its name now means another place: kept under a freed name */
    ROW_DROPPED, /* its name now means another place and no name is free */
};
struct cursor_row {
    char *name;
    char *target; /* NULL: stored before targets were recorded */
    int64_t seq, updated_ms;
    long sink;  /* the claim it goes to (ROW_GOES), else -1 */
    long owner; /* the claim that has this row's name, else -1 */
    const char *new_name;
    enum cursor_row_fate fate;
};

/* One-off statements: the sink_cursor.target column may be missing in a
 * journal opened read-only (no upgrade there), so nothing prepared at open
 * time may name it.  Binds ?1 ?2 as text, ?3 ?4 as integers, as far as the
 * statement has them. */
static int cursor_bind_exec(struct dia_journal *j, const char *sql, const char *text1,
                            const char *text2, int64_t int3, int64_t int4, int64_t *changes)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return journal_fail(j, rc, CURSOR_BIND_DOING);
    int params = sqlite3_bind_parameter_count(st);
    if (params >= 1)
        sqlite3_bind_text(st, 1, text1, -1, SQLITE_STATIC);
    if (params >= 2)
        sqlite3_bind_text(st, 2, text2, -1, SQLITE_STATIC);
    if (params >= 3)
        sqlite3_bind_int64(st, 3, int3);
    if (params >= 4)
        sqlite3_bind_int64(st, 4, int4);
    rc = sqlite3_step(st);
    int err = rc == SQLITE_DONE ? DIA_OK : journal_fail(j, rc, CURSOR_BIND_DOING);
    if (err == DIA_OK && changes)
        *changes = sqlite3_changes(j->db);
    sqlite3_finalize(st);
    return err;
}

static void cursor_rows_free(struct cursor_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].name);
        free(rows[i].target);
    }
    free(rows);
}

static int cursor_rows_load(struct dia_journal *j, struct cursor_row **out, size_t *n_out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        j->db,
        "SELECT sink, last_seq, coalesce(updated_ms, 0), target FROM sink_cursor ORDER BY sink", -1,
        &st, NULL);
    if (rc != SQLITE_OK)
        return journal_fail(j, rc, CURSOR_BIND_DOING);
    struct cursor_row *rows = NULL;
    size_t n = 0, cap = 0;
    int err = DIA_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct cursor_row *grown = realloc(rows, cap * sizeof *rows);
            if (!grown) {
                err = DIA_ERR_NOMEM;
                break;
            }
            rows = grown;
        }
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *target = (const char *)sqlite3_column_text(st, 3);
        rows[n] = (struct cursor_row){.name = strdup(name ? name : ""),
                                      .target = target ? strdup(target) : NULL,
                                      .seq = sqlite3_column_int64(st, 1),
                                      .updated_ms = sqlite3_column_int64(st, 2),
                                      .sink = -1,
                                      .owner = -1};
        n++;
        if (!rows[n - 1].name || (target && !rows[n - 1].target)) {
            err = DIA_ERR_NOMEM;
            break;
        }
    }
    if (err == DIA_OK && rc != SQLITE_DONE)
        err = journal_fail(j, rc, CURSOR_BIND_DOING);
    sqlite3_finalize(st);
    if (err == DIA_ERR_NOMEM)
        snprintf(j->errmsg, sizeof j->errmsg, "out of memory while %s", CURSOR_BIND_DOING);
    if (err != DIA_OK) {
        cursor_rows_free(rows, n);
        return err;
    }
    *out = rows;
    *n_out = n;
    return DIA_OK;
}

/* Does this stored cursor count for the claim's place?  A cursor from
 * before targets were recorded (NULL) counts for no place in particular. */
static bool cursor_row_counts_for(const struct cursor_row *r, const struct dia_cursor_claim *c)
{
    return r->target && (strcmp(r->target, c->target) == 0 ||
                         (c->former_target && strcmp(r->target, c->former_target) == 0));
}

/*
 * Decide, from the rows as found, which progress each claim continues.
 * All claims are decided before anything is written, so two sinks that
 * swapped names (or lines) each take the other's row.
 *  1. A claim whose own row counts for its target, or was stored before
 *     targets were recorded, keeps it.
 *  2. A claim without one takes a row that counts for its target and that
 *     no claim kept in step 1 or took before it: a line above was deleted,
 *     or the sink was renamed.  Of several, the one furthest on.
 *  3. The others start at 0.
 * A claim's own row that it did not keep and nobody took must make way for
 * the claim's new progress: it moves to a name a taken row freed (so the
 * progress is still there if a sink is pointed at that place again), or,
 * with no name free, it is dropped.
 */
static void cursor_bind_plan(struct cursor_row *rows, size_t nrows, struct dia_cursor_claim *c,
                             size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t r = 0; r < nrows; r++) {
            if (strcmp(rows[r].name, c[i].sink) == 0) {
                rows[r].owner = (long)i;
                c[i].result.previous_seq = rows[r].seq;
                snprintf(c[i].result.previous_target, sizeof c[i].result.previous_target, "%s",
                         rows[r].target ? rows[r].target : "");
                if (!rows[r].target || cursor_row_counts_for(&rows[r], &c[i])) {
                    rows[r].sink = (long)i;
                    c[i].result.outcome = rows[r].target ? DIA_CURSOR_SAME : DIA_CURSOR_ADOPTED;
                    c[i].result.seq = rows[r].seq;
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (c[i].result.outcome)
            continue;
        long best = -1;
        for (size_t r = 0; r < nrows; r++) {
            if (rows[r].sink < 0 && cursor_row_counts_for(&rows[r], &c[i]) &&
                (best < 0 || rows[r].seq > rows[best].seq))
                best = (long)r;
        }
        if (best >= 0) {
            rows[best].sink = (long)i;
            c[i].result.outcome = DIA_CURSOR_TAKEN_OVER;
            c[i].result.seq = rows[best].seq;
            snprintf(c[i].result.taken_from, sizeof c[i].result.taken_from, "%s", rows[best].name);
        }
    }
    for (size_t r = 0; r < nrows; r++) {
        if (rows[r].owner >= 0 && !c[rows[r].owner].result.outcome)
            c[rows[r].owner].result.outcome = DIA_CURSOR_MOVED;
    }
    for (size_t i = 0; i < n; i++) {
        if (!c[i].result.outcome)
            c[i].result.outcome = DIA_CURSOR_NEW;
    }

    size_t next_free = 0; /* rows[next_free..]: looking for a freed name */
    for (size_t r = 0; r < nrows; r++) {
        struct cursor_row *row = &rows[r];
        if (row->sink >= 0) {
            row->fate = ROW_GOES;
            row->new_name = c[row->sink].sink;
            continue;
        }
        if (row->owner < 0)
            continue; /* ROW_STAYS */
        while (next_free < nrows && !(rows[next_free].sink >= 0 && rows[next_free].owner < 0))
            next_free++;
        if (next_free < nrows) {
            row->fate = ROW_KEPT;
            row->new_name = rows[next_free++].name;
            c[row->owner].result.previous_kept = true;
        } else {
            row->fate = ROW_DROPPED;
        }
    }
}

static int cursor_bind_apply(struct dia_journal *j, struct cursor_row *rows, size_t nrows,
                             struct dia_cursor_claim *c, size_t n)
{
    int64_t now = dia_now_ms();
    int err = DIA_OK;
    bool parked = false;
    /* Clear the way: every row that changes its name or goes. */
    for (size_t r = 0; r < nrows && err == DIA_OK; r++) {
        struct cursor_row *row = &rows[r];
        bool renamed = row->new_name && strcmp(row->new_name, row->name) != 0;
        if (row->fate == ROW_DROPPED) {
            /* Its dead letters were the old place's refusals; each of those
             * records goes to the new place with the rest, which refuses it
             * again, with its own reason, if it must. */
            err = cursor_bind_exec(j, "DELETE FROM dead_letter WHERE sink = ?1", row->name, NULL, 0,
                                   0, &c[row->owner].result.dead_letters_dropped);
        } else if (renamed) {
            err = cursor_bind_exec(
                j, "UPDATE dead_letter SET sink = '" CURSOR_MOVING_PREFIX "' || ?2 WHERE sink = ?1",
                row->name, row->new_name, 0, 0, NULL);
            parked = true;
        }
        if (err == DIA_OK && (row->fate == ROW_DROPPED || renamed))
            err = cursor_bind_exec(j, "DELETE FROM sink_cursor WHERE sink = ?1", row->name, NULL, 0,
                                   0, NULL);
    }
    if (err == DIA_OK && parked)
        err = cursor_bind_exec(j,
                               "UPDATE dead_letter SET sink = substr(sink, 2)"
                               " WHERE substr(sink, 1, 1) = '" CURSOR_MOVING_PREFIX "'",
                               NULL, NULL, 0, 0, NULL);
    /* Write the rows under their new names. */
    for (size_t r = 0; r < nrows && err == DIA_OK; r++) {
        struct cursor_row *row = &rows[r];
        bool renamed = row->new_name && strcmp(row->new_name, row->name) != 0;
        if (row->fate == ROW_KEPT)
            err = cursor_bind_exec(j,
                                   "INSERT INTO sink_cursor(sink, target, last_seq, updated_ms)"
                                   " VALUES(?1, ?2, ?3, ?4)",
                                   row->new_name, row->target, row->seq, row->updated_ms, NULL);
        else if (row->fate == ROW_GOES && renamed)
            err = cursor_bind_exec(j,
                                   "INSERT INTO sink_cursor(sink, target, last_seq, updated_ms)"
                                   " VALUES(?1, ?2, ?3, ?4)",
                                   row->new_name, c[row->sink].target, row->seq, now, NULL);
        else if (row->fate == ROW_GOES &&
                 (!row->target || strcmp(row->target, c[row->sink].target) != 0))
            /* adopted, or stored in the form from before destination
             * options counted: from now on in today's form */
            err = cursor_bind_exec(j, "UPDATE sink_cursor SET target = ?2 WHERE sink = ?1",
                                   row->name, c[row->sink].target, 0, 0, NULL);
    }
    for (size_t i = 0; i < n && err == DIA_OK; i++) {
        enum dia_cursor_outcome o = c[i].result.outcome;
        if (o == DIA_CURSOR_NEW || o == DIA_CURSOR_MOVED)
            err = cursor_bind_exec(j,
                                   "INSERT INTO sink_cursor(sink, target, last_seq, updated_ms)"
                                   " VALUES(?1, ?2, 0, ?3)",
                                   c[i].sink, c[i].target, now, 0, NULL);
    }
    return err;
}

int dia_journal_cursors_bind(struct dia_journal *j, struct dia_cursor_claim *claims, size_t n)
{
    for (size_t i = 0; i < n; i++)
        memset(&claims[i].result, 0, sizeof claims[i].result);
    int err = exec_sql(j, "BEGIN IMMEDIATE", CURSOR_BIND_DOING);
    if (err != DIA_OK)
        return err;
    struct cursor_row *rows = NULL;
    size_t nrows = 0;
    err = cursor_rows_load(j, &rows, &nrows);
    if (err == DIA_OK) {
        cursor_bind_plan(rows, nrows, claims, n);
        err = cursor_bind_apply(j, rows, nrows, claims, n);
        cursor_rows_free(rows, nrows);
    }
    if (err == DIA_OK)
        err = exec_sql(j, "COMMIT", CURSOR_BIND_DOING);
    if (err != DIA_OK) {
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        for (size_t i = 0; i < n; i++)
            memset(&claims[i].result, 0, sizeof claims[i].result);
    }
    return err;
}

int dia_journal_cursor_bind(struct dia_journal *j, const char *sink, const char *target,
                            struct dia_cursor_binding *res)
{
    struct dia_cursor_claim claim = {.sink = sink, .target = target};
    int err = dia_journal_cursors_bind(j, &claim, 1);
    *res = claim.result;
    return err;
}

int dia_journal_dead_letter(struct dia_journal *j, const char *sink, int64_t seq,
                            const char *reason)
{
    int err = exec_sql(j, "BEGIN IMMEDIATE", "recording a dead letter");
    if (err != DIA_OK)
        return err;
    sqlite3_stmt *st = j->stmt[ST_DEAD];
    sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, dia_now_ms());
    err = step_done(j, st, "recording a dead letter");
    if (err == DIA_OK)
        err = cursor_put(j, sink, seq);
    if (err == DIA_OK)
        err = exec_sql(j, "COMMIT", "recording a dead letter");
    if (err != DIA_OK)
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

int dia_journal_dead_each(struct dia_journal *j, const char *sink, dia_journal_dead_fn fn,
                          void *arg)
{
    /* A journal of an older diabridge opened read-only (a copy, or before
     * the daemon restarted after an upgrade) has no retry column yet. */
    bool has_retry = false;
    int err = has_column(j, "dead_letter", "retry", &has_retry, "reading dead letters");
    if (err != DIA_OK)
        return err;
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT d.sink, d.seq, d.reason, d.at_ms, %s, r.kind, r.t_utc_ms, r.record_key,"
             " r.payload IS NOT NULL FROM dead_letter d LEFT JOIN records r ON r.seq = d.seq"
             " WHERE ?1 IS NULL OR d.sink = ?1 ORDER BY d.sink, d.seq",
             has_retry ? "d.retry" : "0");
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return journal_fail(j, rc, "reading dead letters");
    if (sink)
        sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(st, 5);
        const char *key = (const char *)sqlite3_column_text(st, 7);
        struct dia_dead_letter d = {
            .sink = (const char *)sqlite3_column_text(st, 0),
            .seq = sqlite3_column_int64(st, 1),
            .reason = (const char *)sqlite3_column_text(st, 2),
            .at_ms = sqlite3_column_int64(st, 3),
            .retry = sqlite3_column_int(st, 4) != 0,
            .kind = kind ? kind : "",
            .t_utc_ms = sqlite3_column_int64(st, 6),
            .record_key = key ? key : "",
            .sendable = sqlite3_column_int(st, 8) != 0,
        };
        if ((err = fn(&d, arg)) != 0)
            break;
    }
    if (err == DIA_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = journal_fail(j, rc, "reading dead letters");
    sqlite3_finalize(st);
    return err;
}

int dia_journal_dead_retry(struct dia_journal *j, const char *sink, int64_t *count)
{
    *count = 0;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db,
                                "UPDATE dead_letter SET retry = 1 WHERE retry = 0"
                                " AND (?1 IS NULL OR sink = ?1)"
                                " AND seq IN (SELECT seq FROM records WHERE payload IS NOT NULL)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return journal_fail(j, rc, "marking dead letters for another try");
    if (sink)
        sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
    int err = step_done(j, st, "marking dead letters for another try");
    if (err == DIA_OK)
        *count = sqlite3_changes(j->db);
    sqlite3_finalize(st);
    return err;
}

int dia_journal_read_retry(struct dia_journal *j, const char *sink, struct dia_record *out,
                           size_t max, size_t *n)
{
    *n = 0;
    sqlite3_stmt *st = NULL;
    int rc =
        sqlite3_prepare_v2(j->db,
                           "SELECT DISTINCT r.seq, r.payload FROM dead_letter d"
                           " JOIN records r ON r.seq = d.seq WHERE d.sink = ?1"
                           " AND d.retry = 1 AND r.payload IS NOT NULL ORDER BY r.seq LIMIT ?2",
                           -1, &st, NULL);
    if (rc != SQLITE_OK)
        return journal_fail(j, rc, "reading dead letters to send again");
    sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    int err = step_records(j, st, out, n, "reading dead letters to send again");
    sqlite3_finalize(st);
    return err;
}

int dia_journal_retry_done(struct dia_journal *j, const char *sink, int64_t seq,
                           const char *refused_reason)
{
    sqlite3_stmt *st = NULL;
    const char *sql = refused_reason ? "UPDATE dead_letter SET retry = 0, reason = ?3, at_ms = ?4"
                                       " WHERE sink = ?1 AND seq = ?2"
                                     : "DELETE FROM dead_letter WHERE sink = ?1 AND seq = ?2";
    int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return journal_fail(j, rc, "recording a dead letter's new try");
    sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    if (refused_reason) {
        sqlite3_bind_text(st, 3, refused_reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, dia_now_ms());
    }
    int err = step_done(j, st, "recording a dead letter's new try");
    sqlite3_finalize(st);
    return err;
}

/* A one-off statement returning one integer.  Parameters: an optional text
 * ?1, then (when the SQL has one) an integer after it. */
static int query_int64(struct dia_journal *j, const char *sql, const char *text_arg,
                       int64_t int_arg, int64_t *out, const char *doing)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return journal_fail(j, rc, doing);
    if (text_arg)
        sqlite3_bind_text(st, 1, text_arg, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) > (text_arg ? 1 : 0))
        sqlite3_bind_int64(st, text_arg ? 2 : 1, int_arg);
    rc = sqlite3_step(st);
    int err = DIA_OK;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        err = journal_fail(j, rc, doing);
    sqlite3_finalize(st);
    return err;
}

int dia_journal_backlog(struct dia_journal *j, const char *sink, int64_t *count)
{
    int64_t cursor = 0;
    int err = dia_journal_cursor_get(j, sink, &cursor);
    if (err != DIA_OK)
        return err;
    return query_int64(j,
                       "SELECT count(*) FROM records WHERE seq > ?1 AND published = 1"
                       " AND payload IS NOT NULL",
                       NULL, cursor, count, "counting the backlog");
}

int64_t dia_journal_last_seq(struct dia_journal *j)
{
    int64_t seq = 0;
    if (query_int64(j, "SELECT coalesce(max(seq), 0) FROM records", NULL, 0, &seq,
                    "reading the last seq") != DIA_OK)
        return -1;
    return seq;
}

int dia_journal_each(struct dia_journal *j, int64_t since_ms, int64_t until_ms, bool include_merged,
                     dia_journal_visit_fn fn, void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db,
                                "SELECT seq, published, payload FROM records WHERE t_utc_ms >= ?1"
                                " AND t_utc_ms < ?2 AND payload IS NOT NULL"
                                " AND (published = 1 OR ?3) ORDER BY seq",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return journal_fail(j, rc, "exporting records");
    sqlite3_bind_int64(st, 1, since_ms);
    sqlite3_bind_int64(st, 2, until_ms);
    sqlite3_bind_int(st, 3, include_merged ? 1 : 0);
    int result = DIA_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dia_record r;
        if (dia_record_from_json_text((const char *)sqlite3_column_text(st, 2), &r) != DIA_OK) {
            snprintf(j->errmsg, sizeof j->errmsg,
                     "journal %s: record seq %lld cannot be read back (damaged payload)", j->path,
                     (long long)sqlite3_column_int64(st, 0));
            result = DIA_ERR_JOURNAL_CORRUPT;
            break;
        }
        r.seq = sqlite3_column_int64(st, 0);
        result = fn(&r, sqlite3_column_int(st, 1) != 0, arg);
        if (result != 0)
            break;
    }
    if (result == DIA_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        result = journal_fail(j, rc, "exporting records");
    sqlite3_finalize(st);
    return result;
}

int dia_journal_prune(struct dia_journal *j, int64_t before_ms, const char *const *sinks,
                      size_t nsinks, int64_t *deleted)
{
    *deleted = 0;
    /* The cursors are read and the payloads dropped in one transaction: a
     * sink whose cursor went back to 0 meanwhile (a new target) would
     * otherwise lose the records it is about to be sent. */
    int err = exec_sql(j, "BEGIN IMMEDIATE", "applying retention");
    if (err != DIA_OK)
        return err;
    int64_t delivered = INT64_MAX;
    for (size_t i = 0; err == DIA_OK && i < nsinks; i++) {
        int64_t c = 0;
        err = dia_journal_cursor_get(j, sinks[i], &c);
        if (c < delivered)
            delivered = c;
    }
    sqlite3_stmt *st = NULL;
    if (err == DIA_OK) {
        int rc = sqlite3_prepare_v2(j->db,
                                    "UPDATE records SET payload = NULL WHERE t_utc_ms < ?1"
                                    " AND seq <= ?2 AND payload IS NOT NULL"
                                    " AND seq NOT IN (SELECT seq FROM dead_letter)",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
            err = journal_fail(j, rc, "applying retention");
    }
    if (err == DIA_OK) {
        sqlite3_bind_int64(st, 1, before_ms);
        sqlite3_bind_int64(st, 2, delivered);
        int rc = sqlite3_step(st);
        err = rc == SQLITE_DONE ? DIA_OK : journal_fail(j, rc, "applying retention");
        if (err == DIA_OK)
            *deleted = sqlite3_changes(j->db);
    }
    sqlite3_finalize(st);
    if (err == DIA_OK)
        err = exec_sql(j, "COMMIT", "applying retention");
    if (err != DIA_OK) {
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        *deleted = 0;
    }
    return err;
}

/* ---- status -------------------------------------------------------------- */

int dia_journal_begin(struct dia_journal *j)
{
    return exec_sql(j, "BEGIN IMMEDIATE", "starting a transaction");
}

int dia_journal_end(struct dia_journal *j, bool ok)
{
    if (ok)
        return exec_sql(j, "COMMIT", "committing");
    sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    return DIA_OK;
}

int dia_journal_status_put(struct dia_journal *j, const char *worker, const char *json_text)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db,
                                "INSERT INTO worker_status(worker, json, updated_ms)"
                                " VALUES(?1, ?2, ?3) ON CONFLICT(worker) DO UPDATE SET"
                                " json = excluded.json, updated_ms = excluded.updated_ms",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return journal_fail(j, rc, "saving worker status");
    sqlite3_bind_text(st, 1, worker, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, json_text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, dia_now_ms());
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? DIA_OK : journal_fail(j, rc, "saving worker status");
}

int dia_journal_status_each(struct dia_journal *j, dia_journal_status_fn fn, void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        j->db, "SELECT worker, json, updated_ms FROM worker_status ORDER BY worker", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return journal_fail(j, rc, "reading worker status");
    int result = DIA_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        result = fn((const char *)sqlite3_column_text(st, 0),
                    (const char *)sqlite3_column_text(st, 1), sqlite3_column_int64(st, 2), arg);
        if (result != 0)
            break;
    }
    if (result == DIA_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        result = journal_fail(j, rc, "reading worker status");
    sqlite3_finalize(st);
    return result;
}

int dia_journal_check(struct dia_journal *j, char *msg, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db, "PRAGMA integrity_check", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        int err = journal_fail(j, rc, "checking integrity");
        snprintf(msg, len, "%s", j->errmsg);
        return err;
    }
    rc = sqlite3_step(st);
    int err = DIA_OK;
    if (rc == SQLITE_ROW) {
        const char *first = (const char *)sqlite3_column_text(st, 0);
        snprintf(msg, len, "%s", first ? first : "?");
        if (!first || strcmp(first, "ok") != 0)
            err = DIA_ERR_JOURNAL_CORRUPT;
    } else {
        err = journal_fail(j, rc, "checking integrity");
        snprintf(msg, len, "%s", j->errmsg);
    }
    sqlite3_finalize(st);
    return err;
}

int dia_journal_default_path(char *buf, size_t len)
{
    const char *state = getenv("STATE_DIRECTORY"); /* systemd StateDirectory= */
    if (state && state[0]) {
        /* systemd may pass several, colon-separated: the first is ours */
        const char *colon = strchr(state, ':');
        int n = colon ? (int)(colon - state) : (int)strlen(state);
        snprintf(buf, len, "%.*s/journal.db", n, state);
        return DIA_OK;
    }
    const char *xdg = getenv("XDG_STATE_HOME");
    if (xdg && xdg[0] == '/') {
        snprintf(buf, len, "%s/diabridge/journal.db", xdg);
        return DIA_OK;
    }
    const char *home = getenv("HOME");
    if (!home || !home[0]) {
        snprintf(buf, len, "journal.db");
        return DIA_ERR_CONFIG;
    }
    snprintf(buf, len, "%s/.local/state/diabridge/journal.db", home);
    return DIA_OK;
}
