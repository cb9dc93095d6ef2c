/*
 * The daemon: a supervisor thread (the caller's) and one worker thread per
 * source and per sink (DESIGN §1).
 */
#ifndef DIA_CORE_DAEMON_H
#define DIA_CORE_DAEMON_H

#include "core/config.h"

/* Exit statuses, so systemd can tell "fix the configuration" (no restart
 * loop: RestartPreventExitStatus=78) from a crash. */
#define DIA_EXIT_OK      0
#define DIA_EXIT_FAILURE 1
#define DIA_EXIT_USAGE   2
#define DIA_EXIT_CONFIG  78 /* EX_CONFIG: configuration or journal needs a person */

struct dia_daemon_params {
    struct dia_config *cfg;   /* validated */
    const char *journal_path; /* resolved */
    double duration_s;        /* > 0: stop by itself after this long (demo) */
};

/* Block SIGTERM, SIGINT and SIGHUP in the calling thread (and every thread it
 * creates later).  Call first thing in a verb that will run the daemon, so a
 * signal that arrives while it is still starting is handled as a clean
 * shutdown rather than killing the process. */
void dia_daemon_block_signals(void);

/* Runs until SIGTERM/SIGINT (or duration_s); returns a DIA_EXIT_* status. */
int dia_daemon_run(const struct dia_daemon_params *p);

#endif
