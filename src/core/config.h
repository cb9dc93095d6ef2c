/*
 * Daemon configuration (DESIGN §8).
 *
 * The config file and the command line share one grammar: each config line
 * is `KEYWORD VALUE` and each command-line option is `--KEYWORD VALUE`:
 *
 *     source   sim,speed=60
 *     sink     jsonl:/var/log/diabridge.jsonl,fsync=always
 *     journal  /var/lib/diabridge/journal.db
 *     log-level info          (error, warning, info, debug)
 *     retention 90d           (how long delivered records are kept)
 *     sync     full           (full: every commit reaches the disk; normal)
 *
 * A file whose first non-blank character is '{' is read as dexpy's
 * dexpy.json instead (see docs/CONFIG.md for the mapping), with dexpy's
 * environment variables overriding its keys.
 */
#ifndef DIA_CORE_CONFIG_H
#define DIA_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/journal.h"
#include "core/options.h"

struct dia_instance_config {
    struct dia_options opts;
    char name[48]; /* unique instance name: "jsonl", "jsonl#2", or name= */
};

struct dia_config {
    char *journal_path; /* NULL: dia_journal_default_path() */
    int log_level;
    long long retention_s;
    enum dia_journal_sync sync;
    struct dia_instance_config *sources;
    size_t nsources;
    struct dia_instance_config *sinks;
    size_t nsinks;
    bool from_dexpy; /* the file was a dexpy.json */
};

void dia_config_init(struct dia_config *cfg);
void dia_config_free(struct dia_config *cfg);

/* Apply one `KEYWORD VALUE`; origin is "FILE:LINE" or "command line". */
int dia_config_apply(struct dia_config *cfg, const char *keyword, const char *value,
                     const char *origin, char *errbuf, size_t errlen);

/* Load a config file (native grammar or dexpy.json). */
int dia_config_load_file(struct dia_config *cfg, const char *path, char *errbuf, size_t errlen);

/* Translate dexpy.json text (file name for messages) into sources and sinks. */
int dia_config_load_dexpy(struct dia_config *cfg, const char *path, const char *text, char *errbuf,
                          size_t errlen);

/* Check every source and sink against its driver's schema (unknown keys,
 * missing required options, malformed values), resolve secrets and give
 * each instance its unique name.  Call once, after all files and options. */
int dia_config_validate(struct dia_config *cfg, char *errbuf, size_t errlen);

#endif
