/*
 * The daemon lock (see journal_lock.h for why it exists).
 *
 * An open-file-description lock (F_OFD_SETLK), not a classic POSIX one:
 * a POSIX lock belongs to the process and is dropped when the process
 * closes *any* descriptor of the file, so a `status` check made inside the
 * daemon (or a test) would silently release it.  An OFD lock belongs to
 * the one descriptor the daemon keeps open, and conflicts with any other,
 * also within the same process.  F_OFD_GETLK cannot name the holder's pid,
 * so the daemon writes its pid into the file.
 */
#include "core/journal_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"

bool dia_journal_lock_path(const char *journal_path, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s.lock", journal_path);
    return n > 0 && (size_t)n < len;
}

/* The pid the holder wrote, or 0 when the file holds none (yet). */
static long read_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return pid > 0 && end != buf ? pid : 0;
}

int dia_journal_lock_take(const char *journal_path, int *fd_out, char *errbuf, size_t errlen)
{
    *fd_out = -1;
    char path[PATH_MAX];
    if (!dia_journal_lock_path(journal_path, path, sizeof path)) {
        snprintf(errbuf, errlen, "journal %s: the path is too long; choose a shorter one",
                 journal_path);
        return DIA_ERR_CONFIG;
    }
    /* 0644: a user who may read the journal may also ask whether a daemon
     * is using it (`diabridge status`), which opens this file read-only. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(errbuf, errlen,
                 "journal %s: cannot create or open its lock file %s (%s). The user running "
                 "diabridge (uid %u) must own the journal's folder and the files in it, or set "
                 "`journal PATH` to a writable place",
                 journal_path, path, strerror(errno), (unsigned)geteuid());
        return DIA_ERR_JOURNAL_ACCESS;
    }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET; /* start 0, length 0: the whole file */
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
        int e = errno;
        if (e == EAGAIN || e == EACCES) {
            long pid = read_pid(fd);
            close(fd);
            char who[48];
            if (pid > 0)
                snprintf(who, sizeof who, "pid %ld", pid);
            else
                snprintf(who, sizeof who, "its pid is not known yet");
            char how[64] = "";
            if (pid > 0)
                snprintf(how, sizeof how, "`kill %ld`, or ", pid);
            snprintf(errbuf, errlen,
                     "journal %s is already in use by another diabridge (%s). Two daemons on one "
                     "journal would read the devices twice and send every record twice. Stop "
                     "that one first (%s`systemctl stop diabridge` if systemd runs it), or give "
                     "this one a journal of its own (--journal PATH, or `journal PATH` in its "
                     "config file)",
                     journal_path, who, how);
            return DIA_ERR_CONFIG;
        }
        close(fd);
        snprintf(errbuf, errlen,
                 "journal %s: cannot lock %s (%s). Keep the journal on a local file system, or "
                 "set `journal PATH` to one",
                 journal_path, path, strerror(e));
        return DIA_ERR_JOURNAL_ACCESS;
    }
    /* The pid first, then the length: a reader never sees an empty file
     * (at worst, for an instant, the pid of the daemon before). */
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    if (pwrite(fd, text, (size_t)n, 0) != n || ftruncate(fd, n) != 0) {
        /* The lock holds without it; `status` then shows no pid. */
    }
    *fd_out = fd;
    return DIA_OK;
}

int dia_journal_lock_holder(const char *journal_path, long *pid)
{
    *pid = 0;
    char path[PATH_MAX];
    if (!dia_journal_lock_path(journal_path, path, sizeof path))
        return 0; /* a daemon could not have taken it either */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : DIA_ERR_JOURNAL_ACCESS;
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK; /* "could I write-lock it?": reports any holder */
    fl.l_whence = SEEK_SET;
    int rc = fcntl(fd, F_OFD_GETLK, &fl);
    int held = rc == 0 && fl.l_type != F_UNLCK;
    if (held)
        *pid = read_pid(fd);
    close(fd);
    return rc != 0 ? DIA_ERR_JOURNAL_ACCESS : held;
}
