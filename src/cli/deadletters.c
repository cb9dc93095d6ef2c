/* `diabridge dead-letters`: the records a sink refused for good, and asking
 * for another try once the cause is fixed. */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/verbs.h"
#include "core/daemon.h"
#include "core/err.h"
#include "core/journal.h"
#include "core/journal_lock.h"
#include "core/tz.h"
#include "core/url.h"

static const char dead_usage[] =
    "usage: diabridge dead-letters [--journal PATH] [--sink NAME] [--retry] [--json]\n"
    "\n"
    "A dead letter is a record a sink's server refused for good: InfluxDB refusing a\n"
    "field type, Nightscout refusing a document.  diabridge keeps such records (retention\n"
    "never removes them) and goes on with the rest.  This lists them with the reason the\n"
    "server gave.  Once you have fixed the cause, --retry asks the daemon to send them\n"
    "again: a running daemon does so within two minutes, a stopped one when it starts.\n"
    "A record refused again stays listed with the new reason.\n"
    "\n"
    "  --journal PATH  the journal (default: where `diabridge run` keeps it)\n"
    "  --sink NAME     only this sink's dead letters\n"
    "  --retry         mark them to be sent again\n"
    "  --json          JSON lines instead of the table\n";

struct dead_ctx {
    bool json;
    const char *last_sink;
    char last_sink_buf[128];
    long long shown, waiting, gone;
};

static int show_dead(const struct dia_dead_letter *d, void *arg)
{
    struct dead_ctx *x = arg;
    char reason[1024];
    /* The daemon stores reasons redacted; this also covers older journals. */
    dia_text_redact_urls(d->reason, reason, sizeof reason);
    x->shown++;
    x->waiting += d->retry;
    x->gone += !d->sendable;
    if (x->json) {
        json_t *o =
            json_pack("{ss sI ss ss sI ss sI sb sb}", "sink", d->sink, "seq", (json_int_t)d->seq,
                      "kind", d->kind, "record_key", d->record_key, "t_utc_ms",
                      (json_int_t)d->t_utc_ms, "reason", reason, "refused_ms", (json_int_t)d->at_ms,
                      "retry_pending", d->retry, "sendable", d->sendable);
        if (o) {
            json_dumpf(o, stdout, JSON_COMPACT);
            putchar('\n');
            json_decref(o);
        }
        return 0;
    }
    if (!x->last_sink || strcmp(x->last_sink, d->sink) != 0) {
        printf("sink %s\n", d->sink);
        snprintf(x->last_sink_buf, sizeof x->last_sink_buf, "%s", d->sink);
        x->last_sink = x->last_sink_buf;
    }
    char when[40], refused[40];
    dia_format_utc_ms(d->t_utc_ms, when, sizeof when);
    dia_format_utc_ms(d->at_ms, refused, sizeof refused);
    printf("  seq %lld  %s at %s  (%s)\n", (long long)d->seq, d->kind[0] ? d->kind : "?", when,
           d->record_key);
    printf("    refused %s: %s\n", refused, reason);
    if (d->retry)
        printf("    another try is asked for\n");
    if (!d->sendable)
        printf("    the record itself is no longer stored; it cannot be sent again\n");
    return 0;
}

/* The names of the sinks that have dead letters, for "no such sink". */
struct sink_names {
    char text[512];
};

static int collect_sink(const struct dia_dead_letter *d, void *arg)
{
    struct sink_names *x = arg;
    size_t used = strlen(x->text), n = strlen(d->sink);
    /* listed by sink, so a name repeats only next to itself */
    const char *last = strrchr(x->text, ' ');
    last = last ? last + 1 : x->text;
    if (strcmp(last, d->sink) == 0)
        return 0;
    if (used + n + 2 < sizeof x->text)
        snprintf(x->text + used, sizeof x->text - used, "%s%s", used ? ", " : "", d->sink);
    return 0;
}

int dia_verb_dead_letters(int argc, char **argv)
{
    dia_cli_usage(dead_usage);
    static const struct option longopts[] = {
        {"journal", required_argument, NULL, 'j'},
        {"sink", required_argument, NULL, 's'},
        {"retry", no_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *journal_arg = NULL, *sink = NULL;
    bool retry = false, as_json = false;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'j':
            journal_arg = optarg;
            break;
        case 's':
            sink = optarg;
            break;
        case 'r':
            retry = true;
            break;
        case 'J':
            as_json = true;
            break;
        case 'h':
            fputs(dead_usage, stdout);
            return DIA_EXIT_OK;
        case 'V':
            dia_print_version();
            return DIA_EXIT_OK;
        default:
            return dia_usage_error("dead-letters", "unknown or incomplete option \"%s\"",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return dia_usage_error("dead-letters", "unexpected argument \"%s\"", argv[optind]);

    /* Listing only reads, so it works for a user who may not write the
     * journal; --retry has to write. */
    struct dia_journal *j = dia_cli_open_journal("dead-letters", journal_arg, !retry);
    if (!j)
        return DIA_EXIT_FAILURE;
    int status = DIA_EXIT_OK;
    if (retry) {
        int64_t marked = 0;
        if (dia_journal_dead_retry(j, sink, &marked) != DIA_OK) {
            fprintf(stderr, "diabridge dead-letters: %s\n", dia_journal_errmsg(j));
            dia_journal_close(j);
            return DIA_EXIT_FAILURE;
        }
        /* Wake a running daemon (SIGHUP) so it tries now; without the right
         * to signal it (another user), its sinks look within two minutes. */
        long pid = 0;
        bool woken = marked > 0 && dia_journal_lock_holder(dia_journal_path(j), &pid) == 1 &&
                     pid > 0 && kill((pid_t)pid, SIGHUP) == 0;
        if (!as_json && woken)
            printf("%lld dead letter%s marked to be sent again; the running daemon (pid %ld) "
                   "sends them now\n",
                   (long long)marked, marked == 1 ? "" : "s", pid);
        else if (!as_json)
            printf("%lld dead letter%s marked to be sent again; a running daemon sends them "
                   "within two minutes, a stopped one when it starts\n",
                   (long long)marked, marked == 1 ? "" : "s");
    }
    struct dead_ctx x = {.json = as_json};
    if (dia_journal_dead_each(j, sink, show_dead, &x) != DIA_OK) {
        fprintf(stderr, "diabridge dead-letters: %s\n", dia_journal_errmsg(j));
        status = DIA_EXIT_FAILURE;
    } else if (!as_json) {
        struct sink_names others = {""};
        if (x.shown == 0 && sink &&
            dia_journal_dead_each(j, NULL, collect_sink, &others) == DIA_OK && others.text[0])
            printf("no dead letters for a sink named \"%s\"; the sinks with dead letters are: %s\n",
                   sink, others.text);
        else if (x.shown == 0)
            printf("no dead letters%s%s: every record was accepted or is still on its way\n",
                   sink ? " for sink " : "", sink ? sink : "");
        else if (!retry && x.waiting < x.shown - x.gone)
            printf("%lld dead letter%s; fix the cause shown, then run `diabridge dead-letters "
                   "--retry%s%s` to send them again\n",
                   x.shown, x.shown == 1 ? "" : "s", journal_arg ? " --journal " : "",
                   journal_arg ? journal_arg : "");
    }
    dia_journal_close(j);
    return status;
}
