/*
 * diabridge: reads diabetes devices and cloud feeds, keeps every record in a
 * durable journal, and forwards them to Nightscout, MQTT, InfluxDB and files.
 */
#include <stdio.h>
#include <string.h>

#include "cli/verbs.h"
#include "core/daemon.h"
#include "core/log.h"

static const char usage[] =
    "usage: diabridge VERB [OPTIONS]\n"
    "\n"
    "Verbs:\n"
    "  run      run the daemon: read the configured sources, store, deliver to sinks\n"
    "  demo     run against a simulated patient and print records (nothing to set up)\n"
    "  decode   decode a capture file with one of the protocol codecs, as JSON lines\n"
    "  export   write the journal as JSON lines, CSV or Nightscout JSON\n"
    "  status   show each source and sink: state, last success, backlog, counters\n"
    "  dead-letters  records a sink refused for good; --retry sends them again\n"
    "\n"
    "`diabridge VERB --help` explains a verb's options; `--version` prints the version.\n";

static const struct {
    const char *name;
    int (*fn)(int, char **);
} verbs[] = {
    {"run", dia_verb_run},       {"demo", dia_verb_demo},
    {"decode", dia_verb_decode}, {"export", dia_verb_export},
    {"status", dia_verb_status}, {"dead-letters", dia_verb_dead_letters},
};

int main(int argc, char **argv)
{
    dia_log_init();
    if (argc < 2) {
        fputs(usage, stderr);
        return DIA_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return DIA_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        dia_print_version();
        return DIA_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strcmp(argv[1], verbs[i].name) == 0)
            return verbs[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "diabridge: unknown verb \"%s\"\n\n%s", argv[1], usage);
    return DIA_EXIT_USAGE;
}
