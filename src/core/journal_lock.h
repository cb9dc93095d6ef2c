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
 * moment SQLite closes any descriptor of the file.  (The reverse holds too:
 * any descriptor we opened on the journal and closed would drop SQLite's
 * own locks in this process.)
 *
 * One journal has many spellings: a symbolic link to it or to a folder on
 * the way, "./", "..", a relative path.  The lock file is named after the
 * journal's real path, the same name SQLite resolves to place its -wal and
 * -shm files, so every spelling finds the one lock, and the lock sees one
 * journal exactly where SQLite does.  A folder reached through a bind mount
 * is the same folder, so its lock file is the same file.  A hard link is a
 * second real name: SQLite would give it a -wal and -shm of its own, which
 * is unsafe whatever the lock does, so a daemon refuses a journal with more
 * than one name instead.
 */
#ifndef DIA_CORE_JOURNAL_LOCK_H
#define DIA_CORE_JOURNAL_LOCK_H

#include <stdbool.h>
#include <stddef.h>

/*
 * "<journal>.lock" for the journal's real path into buf.  False when the
 * journal cannot be resolved (errno says why: ENOENT when it does not
 * exist) or the name does not fit (ENAMETOOLONG).
 */
bool dia_journal_lock_path(const char *journal_path, char *buf, size_t len);

/*
 * Take the lock for a daemon, on a journal that exists.  DIA_OK: *fd holds
 * it until closed (or the process ends).  DIA_ERR_CONFIG, explained in
 * errbuf with what to do: another daemon holds it (naming its pid), the
 * journal has more than one name (hard links), or it is on a network file
 * system.  DIA_ERR_JOURNAL_ACCESS: the lock file cannot be created or
 * opened, explained in errbuf.
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

/*
 * The name of the network file system a statfs() f_type stands for ("NFS",
 * "SMB", ...), or NULL for any other.  SQLite's write-ahead log needs every
 * program using the journal on one computer, and our lock may not reach
 * other computers (NFS mounted with `nolock`), so a daemon refuses these.
 * FUSE is not among them: it serves local file systems too (NTFS,
 * fuse-overlayfs), and cannot tell which.
 */
const char *dia_journal_network_fs(unsigned long f_type);

/*
 * The sentence for "this process cannot ACTION" (e.g. "write it", "create
 * its folder") on the journal at journal_path, for errno errnum, into buf:
 * "journal PATH: ..." with the cause and what to do about it.  Shared by
 * the journal's open and this lock, so both say the same.  What to do
 * depends on the cause: on a read-only file system no owner or mode helps
 * (move the journal, or allow its folder in the systemd unit); when another
 * user owns the journal (or a daemon of another user writes it), the
 * answer is to run this as that user, not to take the file from it.
 */
void dia_journal_explain_unwritable(char *buf, size_t len, const char *journal_path,
                                    const char *action, int errnum);

#endif
