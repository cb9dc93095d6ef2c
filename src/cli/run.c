/* `diabridge run` and `diabridge demo`. */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/verbs.h"
#include "core/config.h"
#include "core/daemon.h"
#include "core/driver.h"
#include "core/err.h"
#include "core/journal.h"
#include "core/log.h"

void dia_print_version(void)
{
    printf("diabridge %s\n", DIA_VERSION);
}

static const char *verb_usage; /* the running verb's usage text */

void dia_cli_usage(const char *usage_text)
{
    verb_usage = usage_text;
}

int dia_usage_error(const char *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "diabridge %s: ", verb);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (verb_usage) {
        const char *end = strstr(verb_usage, "\n\n");
        fprintf(stderr, "%.*s\n", (int)(end ? end - verb_usage : (ptrdiff_t)strlen(verb_usage)),
                verb_usage);
    }
    fprintf(stderr, "Try `diabridge %s --help`.\n", verb);
    return DIA_EXIT_USAGE;
}

const char *dia_cli_journal_path(const char *given, char *buf, size_t len)
{
    if (given)
        return given;
    dia_journal_default_path(buf, len);
    return buf;
}

struct dia_journal *dia_cli_open_journal(const char *verb, const char *given, bool readonly)
{
    char pathbuf[4096], err[1024];
    struct dia_journal_config jc = {.path = dia_cli_journal_path(given, pathbuf, sizeof pathbuf),
                                    .readonly = readonly};
    struct dia_journal *j = NULL;
    if (dia_journal_open(&jc, &j, err, sizeof err) != DIA_OK) {
        fprintf(stderr, "diabridge %s: %s\n", verb, err);
        return NULL;
    }
    return j;
}

static void print_drivers(FILE *out)
{
    fprintf(out, "\nSources:\n");
    for (size_t i = 0; dia_source_drivers[i]; i++)
        fprintf(out, "  %-14s %s\n", dia_source_drivers[i]->name,
                dia_source_drivers[i]->description);
    fprintf(out, "Sinks:\n");
    for (size_t i = 0; dia_sink_drivers[i]; i++)
        fprintf(out, "  %-14s %s\n", dia_sink_drivers[i]->name, dia_sink_drivers[i]->description);
}

static const char run_usage[] =
    "usage: diabridge run [-c FILE] [--source SPEC]... [--sink SPEC]... [--journal PATH]\n"
    "                     [--log-level LEVEL] [--retention DURATION] [--sync full|normal]\n"
    "\n"
    "Runs the daemon until SIGTERM or Ctrl-C.  Every config-file line `KEYWORD VALUE` can\n"
    "also be given as --KEYWORD VALUE; command-line options are applied after the file.\n"
    "\n"
    "  -c, --config FILE     config file (diabridge grammar, or dexpy's dexpy.json)\n"
    "  --source SPEC         add a source, e.g. sim,speed=60\n"
    "  --sink SPEC           add a sink, e.g. jsonl:/var/log/cgm.jsonl,fsync=always\n"
    "  --journal PATH        journal file (default: $STATE_DIRECTORY/journal.db under\n"
    "                        systemd, else ~/.local/state/diabridge/journal.db)\n"
    "  --log-level LEVEL     error, warning, info (default) or debug\n"
    "  --retention DURATION  keep delivered records this long (default 90d; `all` keeps all)\n"
    "  --sync full|normal    full (default): every commit reaches the disk before it counts\n"
    "  --check               validate the configuration and exit\n"
    "  -h, --help            this text;  --version  the version\n";

enum {
    OPT_SOURCE = 256,
    OPT_SINK,
    OPT_JOURNAL,
    OPT_LOG,
    OPT_RETENTION,
    OPT_SYNC,
    OPT_CHECK,
    OPT_VERSION,
    OPT_SPEED,
    OPT_DURATION,
    OPT_SEED
};

static const char *keyword_of(int opt)
{
    switch (opt) {
    case OPT_SOURCE:
        return "source";
    case OPT_SINK:
        return "sink";
    case OPT_JOURNAL:
        return "journal";
    case OPT_LOG:
        return "log-level";
    case OPT_RETENTION:
        return "retention";
    case OPT_SYNC:
        return "sync";
    default:
        return NULL;
    }
}

/* Validate, resolve the journal path, run. */
static int run_configured(struct dia_config *cfg, const char *verb, bool check_only,
                          double duration_s)
{
    char err[1024];
    if (dia_config_validate(cfg, err, sizeof err) != DIA_OK) {
        fprintf(stderr, "diabridge %s: %s\n", verb, err);
        return DIA_EXIT_CONFIG;
    }
    dia_log_threshold = cfg->log_level;
    char path[4096];
    const char *journal = cfg->journal_path;
    if (!journal) {
        if (dia_journal_default_path(path, sizeof path) != DIA_OK) {
            fprintf(stderr,
                    "diabridge %s: cannot tell where to keep the journal (HOME is not set); "
                    "give --journal PATH\n",
                    verb);
            return DIA_EXIT_CONFIG;
        }
        journal = path;
    }
    if (cfg->nsources == 0 && cfg->nsinks == 0) {
        fprintf(stderr,
                "diabridge %s: nothing to do: no source and no sink is configured.\n"
                "Add `source …` and `sink …` lines to the config file, or try `diabridge demo`.\n",
                verb);
        return DIA_EXIT_CONFIG;
    }
    for (size_t i = 0; i < cfg->nsources + cfg->nsinks; i++) {
        const struct dia_instance_config *ic =
            i < cfg->nsources ? &cfg->sources[i] : &cfg->sinks[i - cfg->nsources];
        char spec[1024];
        dia_options_describe(&ic->opts, spec, sizeof spec);
        dia_info("config", "%s %s: %s", i < cfg->nsources ? "source" : "sink", ic->name, spec);
    }
    if (check_only) {
        printf("configuration is valid; journal: %s\n", journal);
        return DIA_EXIT_OK;
    }
    /* glibc gives each thread that allocates its own malloc arena (up to
     * 8 per core); a daemon of ten mostly idle threads on a Raspberry Pi
     * is better served by two, which keeps freed memory where the next
     * batch reuses it instead of stranded in an idle thread's arena. */
    mallopt(M_ARENA_MAX, 2);
    struct dia_daemon_params p = {.cfg = cfg, .journal_path = journal, .duration_s = duration_s};
    return dia_daemon_run(&p);
}

int dia_verb_run(int argc, char **argv)
{
    dia_cli_usage(run_usage);
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"source", required_argument, NULL, OPT_SOURCE},
        {"sink", required_argument, NULL, OPT_SINK},
        {"journal", required_argument, NULL, OPT_JOURNAL},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"retention", required_argument, NULL, OPT_RETENTION},
        {"sync", required_argument, NULL, OPT_SYNC},
        {"check", no_argument, NULL, OPT_CHECK},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    dia_daemon_block_signals();
    struct dia_config cfg;
    dia_config_init(&cfg);
    const char *config_file = NULL;
    bool check_only = false;
    /* Two passes: the file first, then the command line on top of it. */
    struct {
        int opt;
        const char *value;
    } cli[128];
    size_t ncli = 0;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_file = optarg;
            break;
        case 'h':
            fputs(run_usage, stdout);
            print_drivers(stdout);
            return DIA_EXIT_OK;
        case OPT_VERSION:
            dia_print_version();
            return DIA_EXIT_OK;
        case OPT_CHECK:
            check_only = true;
            break;
        case '?':
            return dia_usage_error("run", "unknown or incomplete option \"%s\"", argv[optind - 1]);
        default:
            if (ncli == sizeof cli / sizeof cli[0])
                return dia_usage_error("run", "too many options");
            cli[ncli].opt = opt;
            cli[ncli++].value = optarg;
        }
    }
    if (optind < argc)
        return dia_usage_error("run", "unexpected argument \"%s\"", argv[optind]);
    char err[1024];
    int rc = DIA_OK;
    if (config_file)
        rc = dia_config_load_file(&cfg, config_file, err, sizeof err);
    for (size_t i = 0; rc == DIA_OK && i < ncli; i++) {
        rc = dia_config_apply(&cfg, keyword_of(cli[i].opt), cli[i].value, "command line", err,
                              sizeof err);
        if (rc != DIA_OK) {
            /* A value typed on the command line: a wrong argument (status 2,
             * with the synopsis), where a config file's mistake is 78. */
            dia_config_free(&cfg);
            return dia_usage_error("run", "%s", err);
        }
    }
    int status;
    if (rc != DIA_OK) {
        fprintf(stderr, "diabridge run: %s\n", err);
        status = DIA_EXIT_CONFIG;
    } else {
        status = run_configured(&cfg, "run", check_only, 0);
    }
    dia_config_free(&cfg);
    return status;
}

static const char demo_usage[] =
    "usage: diabridge demo [--speed N] [--duration SECONDS] [--seed N] [--sink SPEC]...\n"
    "\n"
    "Runs the daemon against a simulated patient (source `sim`) with a journal in a\n"
    "temporary folder and prints every record as a JSON line on stdout.  The simulated\n"
    "receiver already holds 24 hours of history, which arrives first.\n"
    "\n"
    "  --speed N           simulated seconds per real second (default 60)\n"
    "  --duration SECONDS  stop after this long (default: run until Ctrl-C)\n"
    "  --seed N            patient seed; the same seed gives the same data (default 1)\n"
    "  --sink SPEC         also deliver to this sink (e.g. jsonl:/tmp/demo.jsonl)\n"
    "  --log-level LEVEL   error, warning, info or debug (default warning)\n";

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int dia_verb_demo(int argc, char **argv)
{
    dia_cli_usage(demo_usage);
    static const struct option longopts[] = {
        {"speed", required_argument, NULL, OPT_SPEED},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"seed", required_argument, NULL, OPT_SEED},
        {"sink", required_argument, NULL, OPT_SINK},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    dia_daemon_block_signals();
    long speed = 60, seed = 1;
    double duration = 0;
    const char *extra_sinks[16];
    size_t nextra = 0;
    const char *level = "warning";
    int opt;
    char *end;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_SPEED:
            speed = strtol(optarg, &end, 10);
            if (*end || speed < 1 || speed > 100000)
                return dia_usage_error("demo", "--speed takes a whole number 1..100000");
            break;
        case OPT_DURATION:
            duration = strtod(optarg, &end);
            if (*end || duration <= 0)
                return dia_usage_error("demo", "--duration takes a positive number of seconds");
            break;
        case OPT_SEED:
            seed = strtol(optarg, &end, 10);
            if (*end || seed < 0)
                return dia_usage_error("demo", "--seed takes a whole number");
            break;
        case OPT_SINK:
            if (nextra == sizeof extra_sinks / sizeof extra_sinks[0])
                return dia_usage_error("demo", "too many --sink options");
            extra_sinks[nextra++] = optarg;
            break;
        case OPT_LOG:
            level = optarg;
            break;
        case 'h':
            fputs(demo_usage, stdout);
            return DIA_EXIT_OK;
        case OPT_VERSION:
            dia_print_version();
            return DIA_EXIT_OK;
        default:
            return dia_usage_error("demo", "unknown or incomplete option \"%s\"", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return dia_usage_error("demo", "unexpected argument \"%s\"", argv[optind]);

    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/diabridge-demo-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "diabridge demo: cannot create a temporary folder in %s: %s\n",
                tmp && tmp[0] ? tmp : "/tmp", strerror(errno));
        return DIA_EXIT_FAILURE;
    }
    char journal[4200], source[128];
    snprintf(journal, sizeof journal, "%s/journal.db", dir);
    snprintf(source, sizeof source, "sim,speed=%ld,seed=%ld", speed, seed);

    struct dia_config cfg;
    dia_config_init(&cfg);
    char err[1024];
    int rc = dia_config_apply(&cfg, "source", source, "demo", err, sizeof err);
    if (rc == DIA_OK)
        rc = dia_config_apply(&cfg, "sink", "jsonl:-,name=stdout", "demo", err, sizeof err);
    for (size_t i = 0; rc == DIA_OK && i < nextra; i++)
        rc = dia_config_apply(&cfg, "sink", extra_sinks[i], "command line", err, sizeof err);
    if (rc == DIA_OK)
        rc = dia_config_apply(&cfg, "journal", journal, "demo", err, sizeof err);
    if (rc == DIA_OK)
        rc = dia_config_apply(&cfg, "log-level", level, "command line", err, sizeof err);
    /* The journal is thrown away afterwards: durability of each commit buys nothing. */
    if (rc == DIA_OK)
        rc = dia_config_apply(&cfg, "sync", "normal", "demo", err, sizeof err);
    int status;
    if (rc != DIA_OK) {
        fprintf(stderr, "diabridge demo: %s\n", err);
        status = DIA_EXIT_USAGE;
    } else {
        fprintf(stderr,
                "diabridge demo: simulated patient (seed %ld) at %ldx speed; journal in %s; "
                "Ctrl-C stops\n",
                seed, speed, dir);
        status = run_configured(&cfg, "demo", false, duration);
    }
    dia_config_free(&cfg);
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    return status;
}
