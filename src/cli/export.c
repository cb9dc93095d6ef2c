/* `diabridge export`: the journal as JSON lines, CSV or Nightscout JSON. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/verbs.h"
#include "core/clock.h"
#include "core/daemon.h"
#include "core/err.h"
#include "core/journal.h"
#include "core/options.h"
#include "core/tz.h"
#include "sink/nightscout_map.h"

static const char export_usage[] =
    "usage: diabridge export [--format jsonl|csv|nightscout] [--since TIME] [--until TIME]\n"
    "                        [--all] [--journal PATH]\n"
    "\n"
    "Writes the records in the journal to stdout, oldest first.\n"
    "\n"
    "  --format F     jsonl (default): one record per line, as docs/DATA_FORMAT.md describes;\n"
    "                 csv: one row per record with the common columns;\n"
    "                 nightscout: {\"entries\": [...], \"treatments\": [...], \"devicestatus\": "
    "[...]}\n"
    "  --since TIME   only records at or after TIME: 2024-03-31, 2024-03-31T06:00:00Z,\n"
    "                 2024-03-31T07:00:00+01:00, Unix milliseconds, or a duration back from\n"
    "                 now such as 24h or 7d\n"
    "  --until TIME   only records before TIME (same forms)\n"
    "  --all          include every observation, also those merged into another reading\n"
    "  --journal PATH the journal to read (default: where `diabridge run` keeps it)\n";

enum fmt { FMT_JSONL, FMT_CSV, FMT_NIGHTSCOUT };

struct export_ctx {
    enum fmt fmt;
    json_t *ns[4];
    unsigned long count;
};

static void csv_text(const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void csv_int(int32_t v)
{
    if (v != DIA_ABSENT)
        printf("%d", v);
}

static void csv_milli(int32_t v)
{
    if (v != DIA_ABSENT)
        printf("%.3f", v / 1000.0);
}

static void csv_row(const struct dia_record *r, bool published)
{
    char iso[40];
    dia_format_utc_ms(r->t_utc_ms, iso, sizeof iso);
    printf("%lld,%s,%s,%s,%lld,", (long long)r->seq, r->key, dia_kind_name(r->kind), iso,
           (long long)r->t_utc_ms);
    csv_int(r->utc_offset_min);
    putchar(',');
    csv_text(r->device_time);
    putchar(',');
    csv_text(r->driver);
    putchar(',');
    csv_text(r->device_id);
    printf(",%s,%d,", dia_origin_name(r->origin), published ? 1 : 0);
    int32_t mgdl = DIA_ABSENT, insulin = DIA_ABSENT, carbs = DIA_ABSENT, rate = DIA_ABSENT;
    int32_t duration = DIA_ABSENT;
    const char *trend = "", *detail = "";
    switch (r->kind) {
    case DIA_KIND_GLUCOSE:
        mgdl = r->u.glucose.mgdl;
        if (r->u.glucose.trend != DIA_ABSENT)
            trend = dia_trend_name(r->u.glucose.trend);
        break;
    case DIA_KIND_METER:
        mgdl = r->u.meter.mgdl;
        break;
    case DIA_KIND_BOLUS:
        insulin = r->u.bolus.delivered_mu != DIA_ABSENT ? r->u.bolus.delivered_mu
                                                        : r->u.bolus.programmed_mu;
        carbs = r->u.bolus.wizard_carbs_dg;
        duration = r->u.bolus.duration_s;
        break;
    case DIA_KIND_BASAL:
        rate = r->u.basal.rate_mu_h;
        duration = r->u.basal.duration_s;
        detail = dia_basal_type_name(r->u.basal.type);
        break;
    case DIA_KIND_CARBS:
        carbs = r->u.carbs.carbs_dg;
        break;
    case DIA_KIND_EVENT:
        detail = dia_event_type_name(r->u.event.type);
        break;
    case DIA_KIND_STATUS:
        detail = r->u.status.state;
        break;
    case DIA_KIND_CALIBRATION:
        break;
    }
    csv_int(mgdl);
    printf(",%s,", trend);
    csv_milli(insulin);
    putchar(',');
    if (carbs != DIA_ABSENT)
        printf("%.1f", carbs / 10.0);
    putchar(',');
    csv_milli(rate);
    putchar(',');
    csv_int(duration);
    putchar(',');
    csv_text(detail);
    putchar(',');
    csv_text(r->kind == DIA_KIND_EVENT ? r->u.event.text : "");
    putchar('\n');
}

static int visit(const struct dia_record *r, bool published, void *arg)
{
    struct export_ctx *x = arg;
    x->count++;
    switch (x->fmt) {
    case FMT_JSONL: {
        char *line = dia_record_to_json_text(r);
        if (!line)
            return DIA_ERR_NOMEM;
        puts(line);
        free(line);
        break;
    }
    case FMT_CSV:
        csv_row(r, published);
        break;
    case FMT_NIGHTSCOUT: {
        struct dia_ns_doc docs[DIA_NS_MAX_DOCS];
        int n = dia_ns_documents(r, docs);
        if (n < 0)
            return n;
        for (int i = 0; i < n; i++) {
            json_array_append(x->ns[docs[i].coll], docs[i].doc);
        }
        dia_ns_docs_free(docs, n);
        break;
    }
    }
    return ferror(stdout) ? DIA_ERR_IO : 0;
}

/* An absolute time, or a duration meaning "that long before now". */
static int parse_when(const char *text, int64_t *ms)
{
    if (dia_parse_time_ms(text, ms) == DIA_OK)
        return DIA_OK;
    long long s;
    if (dia_parse_duration(text, &s) == DIA_OK && s >= 0) {
        *ms = dia_now_ms() - s * 1000;
        return DIA_OK;
    }
    return DIA_ERR_ARG;
}

int dia_verb_export(int argc, char **argv)
{
    dia_cli_usage(export_usage);
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'}, {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 'u'},  {"journal", required_argument, NULL, 'j'},
        {"all", no_argument, NULL, 'a'},          {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    struct export_ctx x = {.fmt = FMT_JSONL};
    int64_t since = INT64_MIN, until = INT64_MAX;
    const char *journal_arg = NULL;
    bool all = false;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'f':
            if (strcmp(optarg, "jsonl") == 0)
                x.fmt = FMT_JSONL;
            else if (strcmp(optarg, "csv") == 0)
                x.fmt = FMT_CSV;
            else if (strcmp(optarg, "nightscout") == 0)
                x.fmt = FMT_NIGHTSCOUT;
            else
                return dia_usage_error("export", "--format is jsonl, csv or nightscout, not \"%s\"",
                                       optarg);
            break;
        case 's':
            if (parse_when(optarg, &since) != DIA_OK)
                return dia_usage_error("export", "--since: \"%s\" is not a time", optarg);
            break;
        case 'u':
            if (parse_when(optarg, &until) != DIA_OK)
                return dia_usage_error("export", "--until: \"%s\" is not a time", optarg);
            break;
        case 'j':
            journal_arg = optarg;
            break;
        case 'a':
            all = true;
            break;
        case 'h':
            fputs(export_usage, stdout);
            return DIA_EXIT_OK;
        case 'V':
            dia_print_version();
            return DIA_EXIT_OK;
        default:
            return dia_usage_error("export", "unknown or incomplete option \"%s\"",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return dia_usage_error("export", "unexpected argument \"%s\"", argv[optind]);

    struct dia_journal *j = dia_cli_open_journal("export", journal_arg, true);
    if (!j)
        return DIA_EXIT_FAILURE;
    if (x.fmt == FMT_CSV)
        puts("seq,record_key,kind,time_utc,t_utc_ms,utc_offset_min,device_time,driver,device_id,"
             "origin,published,mgdl,direction,insulin_u,carbs_g,rate_u_h,duration_s,detail,text");
    if (x.fmt == FMT_NIGHTSCOUT)
        for (int i = DIA_NS_ENTRIES; i <= DIA_NS_DEVICESTATUS; i++)
            x.ns[i] = json_array();
    int rc = dia_journal_each(j, since, until, all, visit, &x);
    /* A journal read as a snapshot (one this user cannot write) must not
     * have changed under the reads: then the output cannot be trusted. */
    if (rc == DIA_OK)
        rc = dia_journal_verify_snapshot(j);
    if (rc == DIA_OK && x.fmt == FMT_NIGHTSCOUT) {
        json_t *o = json_object();
        for (int i = DIA_NS_ENTRIES; i <= DIA_NS_DEVICESTATUS; i++)
            json_object_set(o, dia_ns_collection_name(i), x.ns[i]);
        json_dumpf(o, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
        putchar('\n');
        json_decref(o);
    }
    for (int i = 0; i < 4; i++)
        json_decref(x.ns[i]);
    int status = DIA_EXIT_OK;
    if (rc != DIA_OK) {
        fprintf(stderr, "diabridge export: %s\n",
                rc == DIA_ERR_IO ? "writing to stdout failed" : dia_journal_errmsg(j));
        status = DIA_EXIT_FAILURE;
    }
    if (fflush(stdout) != 0)
        status = DIA_EXIT_FAILURE;
    dia_journal_close(j);
    return status;
}
