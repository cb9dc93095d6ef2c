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
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "core/err.h"

bool dia_journal_lock_path(const char *journal_path, char *buf, size_t len)
{
    char real[PATH_MAX];
    if (!realpath(journal_path, real))
        return false;
    int n = snprintf(buf, len, "%s.lock", real);
    if (n < 0 || (size_t)n >= len) {
        errno = ENAMETOOLONG;
        return false;
    }
    return true;
}

const char *dia_journal_network_fs(unsigned long f_type)
{
    /* The magic numbers of linux/magic.h and statfs(2); compared as 32
     * bits, because f_type is a signed 32-bit word on some 32-bit ARM
     * systems, where CIFS's 0xFF534D42 comes out negative. */
    static const struct {
        uint32_t magic;
        const char *name;
    } network[] = {
        {0x6969, "NFS"},     {0xFF534D42, "SMB (CIFS)"}, {0xFE534D42, "SMB"},
        {0x517B, "SMB"},     {0x00C36400, "Ceph"},       {0x5346414F, "AFS"},
        {0x6B414653, "AFS"}, {0x73757245, "Coda"},       {0x564C, "NetWare"},
    };
    for (size_t i = 0; i < sizeof network / sizeof network[0]; i++)
        if ((uint32_t)f_type == network[i].magic)
            return network[i].name;
    return NULL;
}

/* A user's name for a message, or "#UID" (which sudo -u also takes). */
static void user_name(uid_t uid, char *buf, size_t len)
{
    struct passwd pw, *found = NULL;
    char scratch[1024];
    if (getpwuid_r(uid, &pw, scratch, sizeof scratch, &found) == 0 && found)
        snprintf(buf, len, "%s", found->pw_name);
    else
        snprintf(buf, len, "#%u", (unsigned)uid);
}

/* The folder holding the journal, as an absolute path when it can be told:
 * the one the advice must name (ReadWritePaths= wants it absolute). */
static void journal_folder(const char *journal_path, char *buf, size_t len)
{
    char real[PATH_MAX], dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", realpath(journal_path, real) ? real : journal_path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    snprintf(buf, len, "%s", realpath(dir, real) ? real : dir);
}

/* The user a running process acts as: the owner of its /proc folder. */
static bool process_uid(long pid, uid_t *uid)
{
    char proc[48];
    struct stat st;
    snprintf(proc, sizeof proc, "/proc/%ld", pid);
    if (stat(proc, &st) != 0)
        return false;
    *uid = st.st_uid;
    return true;
}

void dia_journal_explain_unwritable(char *buf, size_t len, const char *journal_path,
                                    const char *action, int errnum)
{
    char dir[PATH_MAX];
    journal_folder(journal_path, dir, sizeof dir);
    if (errnum == EROFS) {
        snprintf(buf, len,
                 "journal %s: cannot %s: the file system it is on is read-only, so no change of "
                 "owner or permissions will help. Set `journal PATH` to a writable place, or, if "
                 "systemd runs diabridge with ProtectSystem=strict (the shipped unit does), add "
                 "`ReadWritePaths=%s` to the unit (`systemctl edit diabridge`)",
                 journal_path, action, dir);
        return;
    }
    if (errnum != EACCES && errnum != EPERM) {
        snprintf(buf, len, "journal %s: cannot %s (%s). Set `journal PATH` to a writable place",
                 journal_path, action, strerror(errnum));
        return;
    }
    uid_t me = geteuid();
    char my_name[64], their_name[64];
    user_name(me, my_name, sizeof my_name);

    /* A daemon of another user writes it: this command must run as that
     * user; taking the file from it would stop the daemon. */
    long pid = 0;
    uid_t owner;
    if (dia_journal_lock_holder(journal_path, &pid) == 1 && pid > 0 && process_uid(pid, &owner) &&
        owner != me) {
        user_name(owner, their_name, sizeof their_name);
        snprintf(buf, len,
                 "journal %s: no permission to %s. A diabridge daemon (pid %ld) writes it as "
                 "user %s, and this runs as user %s: run this command as %s too (`sudo -u %s "
                 "diabridge …`). Leave the journal's owner as it is, or the daemon could no "
                 "longer write it",
                 journal_path, action, pid, their_name, my_name, their_name, their_name);
        return;
    }
    /* No daemon now: the journal's owner is most likely the user the
     * daemon runs as; say both ways out, the safe one first. */
    struct stat st;
    bool exists = stat(journal_path, &st) == 0;
    const char *whose = "It belongs";
    if (!exists || st.st_uid == me) {
        whose = "Its folder belongs";
        if (stat(dir, &st) != 0)
            st.st_uid = me;
    }
    if (st.st_uid != me) {
        user_name(st.st_uid, their_name, sizeof their_name);
        /* the folder, and the journal with the files beside it (-wal,
         * -shm, .lock), where SQLite puts them: by the real path */
        char files[PATH_MAX + 8] = "", real[PATH_MAX];
        if (exists && realpath(journal_path, real))
            snprintf(files, sizeof files, " %s*", real);
        snprintf(buf, len,
                 "journal %s: no permission to %s. %s to user %s, and this runs as user %s. "
                 "If the diabridge daemon runs as %s, run this as that user too (`sudo -u %s "
                 "diabridge …`) and leave the owner as it is; if it is to run as %s from now "
                 "on, give it the journal: `sudo chown %s %s%s`",
                 journal_path, action, whose, their_name, my_name, their_name, their_name, my_name,
                 my_name, dir, files);
        return;
    }
    if (exists && access(journal_path, W_OK) != 0 && errno == EACCES) {
        snprintf(buf, len,
                 "journal %s: no permission to %s (%s). The file is yours but read-only: `chmod "
                 "u+w %s`",
                 journal_path, action, strerror(errnum), journal_path);
        return;
    }
    if (access(dir, W_OK) != 0 && errno == EACCES) {
        snprintf(buf, len,
                 "journal %s: no permission to %s (%s). Its folder %s must be writable too, for "
                 "the files kept beside the journal (-wal, -shm, .lock): `chmod u+w %s`",
                 journal_path, action, strerror(errnum), dir, dir);
        return;
    }
    snprintf(buf, len,
             "journal %s: no permission to %s (%s). The user running diabridge (%s, uid %u) must "
             "be able to write the journal and its folder %s, or set `journal PATH` to a "
             "writable place",
             journal_path, action, strerror(errnum), my_name, (unsigned)me, dir);
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

/*
 * What a daemon's journal must be before the lock can mean anything: one
 * file with one name, on this computer's own disk.  Its real path goes to
 * real (PATH_MAX bytes).
 */
static int check_journal_file(const char *journal_path, char *real, char *errbuf, size_t errlen)
{
    if (!realpath(journal_path, real)) {
        dia_journal_explain_unwritable(errbuf, errlen, journal_path, "reach it", errno);
        return DIA_ERR_JOURNAL_ACCESS;
    }
    struct statfs fs;
    const char *network = statfs(real, &fs) == 0 ? dia_journal_network_fs(fs.f_type) : NULL;
    if (network) {
        snprintf(errbuf, errlen,
                 "journal %s is on a network file system (%s). Keep it on a disk of this "
                 "computer: SQLite's write-ahead log, which the journal uses, is safe only "
                 "there, and the lock that keeps a second diabridge off the journal may not "
                 "reach other computers. Set `journal PATH` to a local folder",
                 journal_path, network);
        return DIA_ERR_CONFIG;
    }
    struct stat st;
    if (stat(real, &st) == 0 && st.st_nlink > 1) {
        snprintf(errbuf, errlen,
                 "journal %s has %lu names (hard links, from `ln` or `cp -l`). SQLite keeps the "
                 "newest changes in a -wal file beside the name it was opened by, so a program "
                 "using another name misses them and can damage the journal. Keep one name "
                 "(`find / -xdev -samefile %s` lists them) and remove the others; a symbolic "
                 "link is fine",
                 journal_path, (unsigned long)st.st_nlink, real);
        return DIA_ERR_CONFIG;
    }
    return DIA_OK;
}

int dia_journal_lock_take(const char *journal_path, int *fd_out, char *errbuf, size_t errlen)
{
    *fd_out = -1;
    char real[PATH_MAX], path[PATH_MAX];
    int err = check_journal_file(journal_path, real, errbuf, errlen);
    if (err != DIA_OK)
        return err;
    int n = snprintf(path, sizeof path, "%s.lock", real);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(errbuf, errlen, "journal %s: the path is too long; choose a shorter one",
                 journal_path);
        return DIA_ERR_CONFIG;
    }
    /* Named in messages as well when it differs: the other daemon may have
     * been given another name for the same journal. */
    char same[PATH_MAX + 24] = "";
    if (strcmp(real, journal_path) != 0)
        snprintf(same, sizeof same, " (the file %s)", real);
    /* 0644: a user who may read the journal may also ask whether a daemon
     * is using it (`diabridge status`), which opens this file read-only. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        char action[PATH_MAX + 32];
        snprintf(action, sizeof action, "create its lock file %s", path);
        dia_journal_explain_unwritable(errbuf, errlen, journal_path, action, errno);
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
                     "journal %s%s is already in use by another diabridge (%s). Two daemons on one "
                     "journal would read the devices twice and send every record twice. Stop "
                     "that one first (%s`systemctl stop diabridge` if systemd runs it), or give "
                     "this one a journal of its own (--journal PATH, or `journal PATH` in its "
                     "config file)",
                     journal_path, same, who, how);
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
    int tlen = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    if (pwrite(fd, text, (size_t)tlen, 0) != tlen || ftruncate(fd, tlen) != 0) {
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
        /* No journal: no daemon.  Too long a name: a daemon could not
         * have taken it either.  Otherwise (a folder on the way this user
         * may not enter), it cannot be told. */
        return errno == ENOENT || errno == ENAMETOOLONG ? 0 : DIA_ERR_JOURNAL_ACCESS;
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
