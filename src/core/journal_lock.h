/*
 * The daemon lock: one daemon per journal.
 *
 * Two daemons on one journal would both read the devices and both move the
 * sinks' cursors, so every record would be sent twice.  The daemon holds a
 * write lock on `<journal>.lock` (a small file beside the journal that holds
 * its pid) for its whole life; the kernel drops the lock when the process
 * ends, however it ends, so a lock can never outlive its daemon.
 *
 * The lock is not on the journal file itself: SQLite uses POSIX locks on
 * that file, and a second lock of ours on it would be dropped silently the
 * moment SQLite closes any descriptor of the file.
 */
#ifndef DIA_CORE_JOURNAL_LOCK_H
#define DIA_CORE_JOURNAL_LOCK_H

#include <stdbool.h>
#include <stddef.h>

/* "<journal>.lock" into buf; false when it does not fit. */
bool dia_journal_lock_path(const char *journal_path, char *buf, size_t len);

/*
 * Take the lock for a daemon.  DIA_OK: *fd holds it until closed (or the
 * process ends).  DIA_ERR_CONFIG: another daemon holds it, and errbuf says
 * which pid and what to do.  DIA_ERR_JOURNAL_ACCESS: the lock file cannot
 * be created or opened, explained in errbuf.
 */
int dia_journal_lock_take(const char *journal_path, int *fd, char *errbuf, size_t errlen);

/*
 * Whether a daemon is using the journal now: 1 when the lock is held (*pid
 * receives its pid, or 0 when it cannot be told), 0 when it is not (also
 * when there is no lock file: no daemon has run with it, or none since the
 * journal was copied), DIA_ERR_JOURNAL_ACCESS when the lock file exists but
 * cannot be read.  Never creates anything.
 */
int dia_journal_lock_holder(const char *journal_path, long *pid);

#endif
