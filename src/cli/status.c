/* `diabridge status`: what each source and sink is doing, from the journal. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/verbs.h"
#include "core/clock.h"
#include "core/daemon.h"
#include "core/err.h"
#include "core/journal.h"
#include "core/journal_lock.h"
#include "core/tz.h"
#include "core/url.h"

static const char status_usage[] =
    "usage: diabridge status [--journal PATH] [--json]\n"
    "\n"
    "Shows each source and sink of the daemon that uses the journal: its state, when it\n"
    "last succeeded, its last error, the sink backlog (records not yet delivered) and\n"
    "counters, and whether a daemon is running with the journal now.  Works whether or\n"
    "not it is, also on a journal you may read but not write.  Never shows secrets.\n"
    "\n"
    "  --journal PATH  the journal to read (default: where `diabridge run` keeps it)\n"
    "  --json          one JSON object instead of the table\n";

struct status_ctx {
    struct dia_journal *j;
    bool json;
    json_t *all;
    int64_t now;
    unsigned n;
    bool daemon_running;  /* false: the rows are what a daemon left behind */
    int64_t last_seen_ms; /* the newest status row's time */
    long last_pid;        /* the pid in that row */
};

static void ago(int64_t now, int64_t then, char *buf, size_t len)
{
    if (then <= 0) {
        snprintf(buf, len, "never");
        return;
    }
    int64_t s = (now - then) / 1000;
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(buf, len, "%llds ago", (long long)s);
    else if (s < 7200)
        snprintf(buf, len, "%lldm ago", (long long)(s / 60));
    else if (s < 172800)
        snprintf(buf, len, "%lldh ago", (long long)(s / 3600));
    else
        snprintf(buf, len, "%lldd ago", (long long)(s / 86400));
}

static int show_worker(const char *worker, const char *text, int64_t updated_ms, void *arg)
{
    struct status_ctx *x = arg;
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    if (!o)
        return 0;
    /* The daemon stores these redacted already; a URL quoted in an error
     * by a driver that forgot to is redacted here too, and so is a journal
     * written by an older diabridge. */
    static const char *const sentences[] = {"spec", "last_error", "warning"};
    for (size_t i = 0; i < sizeof sentences / sizeof sentences[0]; i++) {
        const char *said = json_string_value(json_object_get(o, sentences[i]));
        if (said) {
            char shown[1024];
            dia_text_redact_urls(said, shown, sizeof shown);
            json_t *js = json_string(shown); /* NULL if a cut split a UTF-8 character */
            json_object_set_new(o, sentences[i], js ? js : json_string("?"));
        }
    }
    if (!x->daemon_running) {
        /* Its last live state would be a lie now ("running", "backing off"
         * after a crash): shown as stopped, the old one kept for --json. */
        json_t *was = json_object_get(o, "state");
        json_object_set(o, "last_state", was ? was : json_null());
        json_object_set_new(o, "state", json_string("stopped"));
    }
    bool sink = strncmp(worker, "sink:", 5) == 0;
    const char *name = strchr(worker, ':') ? strchr(worker, ':') + 1 : worker;
    int64_t backlog = -1;
    if (sink && dia_journal_backlog(x->j, name, &backlog) != DIA_OK)
        backlog = -1;
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "updated_ms", json_integer(updated_ms));
    if (sink)
        json_object_set_new(o, "backlog", json_integer(backlog));
    x->n++;
    if (x->json) {
        json_array_append(x->all, o);
        json_decref(o);
        return 0;
    }
    char last[32];
    ago(x->now, json_integer_value(json_object_get(o, "last_success_ms")), last, sizeof last);
    const char *state = json_string_value(json_object_get(o, "state"));
    const char *error = json_string_value(json_object_get(o, "last_error"));
    json_t *c = json_object_get(o, "counters");
    printf("%-7s %-16s %-12s last ok %-10s", sink ? "sink" : "source", name, state ? state : "?",
           last);
    if (sink)
        printf(" backlog %lld", (long long)backlog);
    printf("\n        %s\n", json_string_value(json_object_get(o, "spec")));
    printf("        records %lld, duplicates %lld, failures %lld, restarts %lld",
           (long long)json_integer_value(json_object_get(c, "records")),
           (long long)json_integer_value(json_object_get(c, "duplicates")),
           (long long)json_integer_value(json_object_get(c, "failures")),
           (long long)json_integer_value(json_object_get(c, "restarts")));
    long long crc = json_integer_value(json_object_get(c, "crc_errors"));
    long long bad = json_integer_value(json_object_get(c, "decode_errors")) +
                    json_integer_value(json_object_get(c, "implausible"));
    long long dead = json_integer_value(json_object_get(c, "dead_letters"));
    if (crc || bad)
        printf(", rejected input %lld (checksum %lld)", crc + bad, crc);
    if (dead)
        printf(", dead letters %lld", dead);
    putchar('\n');
    if (error && error[0])
        printf("        last error: %s\n", error);
    const char *warning = json_string_value(json_object_get(o, "warning"));
    if (warning && warning[0])
        printf("        warning: %s\n", warning);
    json_decref(o);
    return 0;
}

/* First pass over the rows: when the daemon last wrote, and with what pid. */
static int note_last_seen(const char *worker, const char *text, int64_t updated_ms, void *arg)
{
    (void)worker;
    struct status_ctx *x = arg;
    if (updated_ms <= x->last_seen_ms)
        return 0;
    x->last_seen_ms = updated_ms;
    json_t *o = json_loads(text, 0, NULL);
    x->last_pid = (long)json_integer_value(json_object_get(o, "pid"));
    json_decref(o);
    return 0;
}

/*
 * Whether a daemon is using the journal now.  Its lock (core/journal_lock.h)
 * says so for certain, whatever way the daemon ended.  Only when the lock
 * file exists but cannot be read is the pid of the last status row asked
 * instead, which a pid reused by another program could fool; *by_lock says
 * which answer this is.
 */
static bool daemon_is_running(const char *path, long row_pid, long *pid, bool *by_lock)
{
    int held = dia_journal_lock_holder(path, pid);
    *by_lock = held >= 0;
    if (held >= 0)
        return held == 1;
    *pid = row_pid;
    return row_pid > 0 && (kill((pid_t)row_pid, 0) == 0 || errno == EPERM);
}

static int count_dead(const struct dia_dead_letter *d, void *arg)
{
    (void)d;
    ++*(long long *)arg;
    return 0;
}

int dia_verb_status(int argc, char **argv)
{
    dia_cli_usage(status_usage);
    static const struct option longopts[] = {
        {"journal", required_argument, NULL, 'j'},
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *journal_arg = NULL;
    bool as_json = false;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'j':
            journal_arg = optarg;
            break;
        case 'J':
            as_json = true;
            break;
        case 'h':
            fputs(status_usage, stdout);
            return DIA_EXIT_OK;
        case 'V':
            dia_print_version();
            return DIA_EXIT_OK;
        default:
            return dia_usage_error("status", "unknown or incomplete option \"%s\"",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return dia_usage_error("status", "unexpected argument \"%s\"", argv[optind]);

    struct dia_journal *j = dia_cli_open_journal("status", journal_arg, true);
    if (!j)
        return DIA_EXIT_FAILURE;
    const char *journal_path = dia_journal_path(j);
    struct status_ctx x = {.j = j, .json = as_json, .all = json_array(), .now = dia_now_ms()};
    int64_t last_seq = dia_journal_last_seq(j);
    int rc = dia_journal_status_each(j, note_last_seen, &x);
    long daemon_pid = 0;
    bool by_lock = true;
    x.daemon_running = daemon_is_running(journal_path, x.last_pid, &daemon_pid, &by_lock);
    if (!as_json && rc == DIA_OK) {
        printf("journal %s: %lld records\n", journal_path,
               (long long)(last_seq < 0 ? 0 : last_seq));
        char seen[32];
        ago(x.now, x.last_seen_ms, seen, sizeof seen);
        const char *guess =
            by_lock ? "" : " (judged by its pid: the journal's lock file cannot be read)";
        if (x.daemon_running && daemon_pid > 0)
            printf("daemon: running, pid %ld%s\n", daemon_pid, guess);
        else if (x.daemon_running)
            printf("daemon: running%s\n", guess);
        else if (x.last_seen_ms > 0)
            printf("daemon: stopped (no daemon is running with this journal; last seen %s)%s\n",
                   seen, guess);
    }
    if (rc == DIA_OK)
        rc = dia_journal_status_each(j, show_worker, &x);
    /* A journal read as a snapshot (one this user cannot write) must not
     * have changed under the reads. */
    if (rc == DIA_OK)
        rc = dia_journal_verify_snapshot(j);
    int status = DIA_EXIT_OK;
    if (rc != DIA_OK) {
        fprintf(stderr, "diabridge status: %s\n", dia_journal_errmsg(j));
        status = DIA_EXIT_FAILURE;
    } else if (as_json) {
        json_t *daemon =
            json_pack("{sb so so ss}", "running", x.daemon_running, "pid",
                      daemon_pid > 0 ? json_integer(daemon_pid) : json_null(), "last_seen_ms",
                      x.last_seen_ms > 0 ? json_integer(x.last_seen_ms) : json_null(), "known_by",
                      by_lock ? "lock" : "pid");
        json_t *o = json_pack("{ss sI so so}", "journal", journal_path, "last_seq",
                              (json_int_t)last_seq, "daemon", daemon, "workers", x.all);
        x.all = NULL;
        json_dumpf(o, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(o);
    } else if (x.n == 0 && x.daemon_running) {
        printf("a daemon is starting with this journal; it has not written its status yet\n");
    } else if (x.n == 0) {
        printf("no daemon has run with this journal yet\n");
    } else {
        long long dead = 0;
        if (dia_journal_dead_each(j, NULL, count_dead, &dead) == DIA_OK && dead > 0)
            printf("%lld record%s refused for good by a sink (dead letters): "
                   "`diabridge dead-letters` shows why and how to send them again\n",
                   dead, dead == 1 ? "" : "s");
    }
    json_decref(x.all);
    dia_journal_close(j);
    return status;
}
