/*
 * The daemon lock (core/journal_lock.h): one daemon per journal, and a
 * truthful answer to "is a daemon using this journal now?", also after the
 * daemon was killed.  Real files, real fcntl locks, real processes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "core/journal_lock.h"
#include "testutil.h"

struct fixture {
    char *dir;
    char journal[512];
    char lock[600];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = testutil_tmpdir();
    snprintf(f->journal, sizeof f->journal, "%s/journal.db", f->dir);
    snprintf(f->lock, sizeof f->lock, "%s.lock", f->journal);
    /* the daemon takes the lock on a journal it has opened, so one exists */
    int fd = open(f->journal, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    close(fd);
    *state = f;
    return 0;
}

/* Run fn in a child as user nobody (when root; as this user otherwise);
 * its exit status, with fn's message in msg. */
static int as_nobody(int (*fn)(struct fixture *f, char *msg, size_t len), struct fixture *f,
                     char *msg, size_t len)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(99);
        char text[1024] = "";
        int rc = fn(f, text, sizeof text);
        if (write(pipefd[1], text, strlen(text)) < 0)
            _exit(98);
        _exit(rc);
    }
    close(pipefd[1]);
    size_t got = 0;
    ssize_t n;
    while (got < len - 1 && (n = read(pipefd[0], msg + got, len - 1 - got)) > 0)
        got += (size_t)n;
    msg[got] = '\0';
    close(pipefd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    testutil_rmdir(f->dir);
    free(f);
    return 0;
}

/* Nobody holds it and no lock file exists: asking creates nothing.  No
 * journal at all: no daemon either. */
static void test_no_lock_file_means_no_daemon(void **state)
{
    struct fixture *f = *state;
    long pid = 42;
    assert_int_equal(dia_journal_lock_holder(f->journal, &pid), 0);
    assert_int_equal(pid, 0);
    assert_int_not_equal(access(f->lock, F_OK), 0);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing.db", f->dir);
    pid = 42;
    assert_int_equal(dia_journal_lock_holder(missing, &pid), 0);
    assert_int_equal(pid, 0);
    assert_int_not_equal(access(f->lock, F_OK), 0);
}

/* The holder is told by pid; a second taker, in this process or another,
 * is refused with a message naming the journal, the pid and what to do. */
static void test_lock_is_exclusive(void **state)
{
    struct fixture *f = *state;
    char err[1024];
    int fd = -1;
    assert_int_equal(dia_journal_lock_take(f->journal, &fd, err, sizeof err), DIA_OK);
    assert_true(fd >= 0);
    long pid = 0;
    assert_int_equal(dia_journal_lock_holder(f->journal, &pid), 1);
    assert_int_equal(pid, (long)getpid());
    /* asking opened and closed the file: the lock must survive that (a
     * classic POSIX lock would not) */
    assert_int_equal(dia_journal_lock_holder(f->journal, &pid), 1);

    int fd2 = -1;
    assert_int_equal(dia_journal_lock_take(f->journal, &fd2, err, sizeof err), DIA_ERR_CONFIG);
    assert_int_equal(fd2, -1);
    char mine[32];
    snprintf(mine, sizeof mine, "pid %ld", (long)getpid());
    assert_non_null(strstr(err, f->journal));
    assert_non_null(strstr(err, mine));
    assert_non_null(strstr(err, "--journal"));

    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        int cfd = -1;
        long seen = 0;
        char cerr[1024];
        int rc = dia_journal_lock_take(f->journal, &cfd, cerr, sizeof cerr);
        int held = dia_journal_lock_holder(f->journal, &seen);
        _exit(rc == DIA_ERR_CONFIG && held == 1 && seen == (long)getppid() ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    close(fd);
    assert_int_equal(dia_journal_lock_holder(f->journal, &pid), 0);
    assert_int_equal(dia_journal_lock_take(f->journal, &fd, err, sizeof err), DIA_OK);
    close(fd);
}

/* A daemon killed with SIGKILL leaves its lock file, but not its lock: the
 * next daemon starts, and status no longer sees one running. */
static void test_lock_ends_with_its_process(void **state)
{
    struct fixture *f = *state;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(ready[0]);
        int fd = -1;
        char err[1024];
        if (dia_journal_lock_take(f->journal, &fd, err, sizeof err) != DIA_OK)
            _exit(1);
        if (write(ready[1], "k", 1) != 1)
            _exit(2);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    long pid = 0;
    assert_int_equal(dia_journal_lock_holder(f->journal, &pid), 1);
    assert_int_equal(pid, (long)child);
    kill(child, SIGKILL);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(access(f->lock, F_OK), 0); /* the file stays */
    assert_int_equal(dia_journal_lock_holder(f->journal, &pid), 0);
    int fd = -1;
    char err[1024];
    assert_int_equal(dia_journal_lock_take(f->journal, &fd, err, sizeof err), DIA_OK);
    char text[32] = "";
    assert_true(pread(fd, text, sizeof text - 1, 0) > 0);
    assert_int_equal(strtol(text, NULL, 10), (long)getpid()); /* the new holder's pid */
    close(fd);
}

/* A lock file this user cannot read: "cannot tell", not "no daemon". */
static void test_unreadable_lock_file(void **state)
{
    struct fixture *f = *state;
    int fd = -1;
    char err[1024];
    assert_int_equal(dia_journal_lock_take(f->journal, &fd, err, sizeof err), DIA_OK);
    close(fd);
    assert_int_equal(chmod(f->lock, 0), 0);
    assert_int_equal(chmod(f->dir, 0755), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* root reads any file: ask as an unprivileged user */
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(99);
        long pid = 0;
        int held = dia_journal_lock_holder(f->journal, &pid);
        int taken = dia_journal_lock_take(f->journal, &fd, err, sizeof err);
        _exit(held == DIA_ERR_JOURNAL_ACCESS && taken == DIA_ERR_JOURNAL_ACCESS &&
                      strstr(err, f->lock)
                  ? 0
                  : 1);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * Every name of one journal finds the one lock: a symbolic link to the
 * file, one to a folder on the way, "." and ".." and a relative path.  The
 * reviewer's case was two daemons on `real/j.db` and `link/j.db`.
 */
static void test_every_name_finds_the_one_lock(void **state)
{
    struct fixture *f = *state;
    char real[PATH_MAX], file_link[600], dir_link[600], dotted[700], expected[PATH_MAX + 8];
    assert_non_null(realpath(f->journal, real));
    snprintf(expected, sizeof expected, "%s.lock", real);
    snprintf(file_link, sizeof file_link, "%s/link.db", f->dir);
    assert_int_equal(symlink("journal.db", file_link), 0);
    snprintf(dir_link, sizeof dir_link, "%s/folder", f->dir);
    assert_int_equal(symlink(f->dir, dir_link), 0);
    snprintf(dir_link, sizeof dir_link, "%s/folder/journal.db", f->dir);
    snprintf(dotted, sizeof dotted, "%s/./sub/../journal.db", f->dir);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/sub", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    const char *names[] = {f->journal, file_link, dir_link, dotted};

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char lock[PATH_MAX];
        assert_true(dia_journal_lock_path(names[i], lock, sizeof lock));
        assert_string_equal(lock, expected);
    }
    /* taken through the link, seen and refused through every other name */
    int fd = -1;
    char err[1024];
    assert_int_equal(dia_journal_lock_take(file_link, &fd, err, sizeof err), DIA_OK);
    char beside_link[700];
    snprintf(beside_link, sizeof beside_link, "%s.lock", file_link);
    assert_int_not_equal(access(beside_link, F_OK), 0); /* beside the file, not the link */
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        long pid = 0;
        assert_int_equal(dia_journal_lock_holder(names[i], &pid), 1);
        assert_int_equal(pid, (long)getpid());
        int fd2 = -1;
        assert_int_equal(dia_journal_lock_take(names[i], &fd2, err, sizeof err), DIA_ERR_CONFIG);
        assert_non_null(strstr(err, "already in use"));
        assert_non_null(strstr(err, names[i]));
        if (i > 0)
            assert_non_null(strstr(err, real)); /* names the file behind the link too */
    }
    /* a relative name, from inside the folder */
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(f->dir), 0);
    long pid = 0;
    int held = dia_journal_lock_holder("journal.db", &pid);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(held, 1);
    close(fd);
    assert_int_equal(dia_journal_lock_holder(dir_link, &pid), 0);
}

/* A hard link is a second real name: SQLite would give it its own -wal and
 * -shm, so a daemon refuses the journal until it has one name again. */
static void test_hard_link_is_refused(void **state)
{
    struct fixture *f = *state;
    char other[600], err[1024];
    snprintf(other, sizeof other, "%s/copy.db", f->dir);
    assert_int_equal(link(f->journal, other), 0);
    const char *names[] = {f->journal, other};
    for (size_t i = 0; i < 2; i++) {
        int fd = -1;
        assert_int_equal(dia_journal_lock_take(names[i], &fd, err, sizeof err), DIA_ERR_CONFIG);
        assert_int_equal(fd, -1);
        assert_non_null(strstr(err, names[i]));
        assert_non_null(strstr(err, "has 2 names (hard links"));
        assert_non_null(strstr(err, "-samefile"));
    }
    assert_int_equal(unlink(other), 0);
    int fd = -1;
    assert_int_equal(dia_journal_lock_take(f->journal, &fd, err, sizeof err), DIA_OK);
    close(fd);
}

/* Network file systems are told by their statfs magic, also when a 32-bit
 * system sign-extends it; the test's own folder is local. */
static void test_network_file_systems(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(dia_journal_network_fs(0x6969), "NFS");
    assert_string_equal(dia_journal_network_fs(0xFE534D42), "SMB");
    assert_string_equal(dia_journal_network_fs((unsigned long)(long)(int32_t)0xFF534D42),
                        "SMB (CIFS)");
    assert_null(dia_journal_network_fs(0xEF53));     /* ext4 */
    assert_null(dia_journal_network_fs(0x01021994)); /* tmpfs */
    assert_null(dia_journal_network_fs(0x65735546)); /* FUSE: may well be local */
    struct statfs fs;
    assert_int_equal(statfs(f->dir, &fs), 0);
    assert_null(dia_journal_network_fs((unsigned long)fs.f_type));
}

static bool has(const char *text, const char *part)
{
    if (strstr(text, part))
        return true;
    fprintf(stderr, "missing \"%s\" in: %s\n", part, text);
    return false;
}

/* A read-only file system: no owner or mode helps, so none is suggested;
 * the advice names the folder to allow in the systemd unit. */
static void test_read_only_file_system_message(void **state)
{
    struct fixture *f = *state;
    char msg[1024], dir[PATH_MAX], want[PATH_MAX + 32];
    assert_non_null(realpath(f->dir, dir));
    dia_journal_explain_unwritable(msg, sizeof msg, f->journal, "write it", EROFS);
    snprintf(want, sizeof want, "`ReadWritePaths=%s`", dir);
    assert_true(has(msg, f->journal));
    assert_true(has(msg, "read-only"));
    assert_true(has(msg, want));
    assert_true(has(msg, "`journal PATH`"));
    assert_null(strstr(msg, "chown"));
    assert_null(strstr(msg, "must"));
    assert_null(strstr(msg, "permission to"));
    /* a journal still to be created, in a folder still to be made */
    char deep[700];
    snprintf(deep, sizeof deep, "%s/new/journal.db", f->dir);
    dia_journal_explain_unwritable(msg, sizeof msg, deep, "create its folder", EROFS);
    assert_true(has(msg, "cannot create its folder: the file system it is on is read-only"));
    snprintf(want, sizeof want, "`ReadWritePaths=%s/new`", dir);
    assert_true(has(msg, want));
}

static int refused_by_own_file(struct fixture *f, char *msg, size_t len)
{
    dia_journal_explain_unwritable(msg, len, f->journal, "write it", EACCES);
    return 0;
}

/* Another user's journal: run as that user; taking the file from it would
 * lock out its daemon, so that comes second and only "if it is to run as
 * this user from now on". */
static void test_another_users_journal_message(void **state)
{
    struct fixture *f = *state;
    if (geteuid() != 0)
        skip(); /* needs a file of another user */
    assert_int_equal(chown(f->journal, 65534, 65534), 0);
    char msg[1024], real[PATH_MAX], want[PATH_MAX * 2 + 64];
    assert_non_null(realpath(f->journal, real));
    dia_journal_explain_unwritable(msg, sizeof msg, f->journal, "write it", EACCES);
    assert_true(has(msg, "no permission to write it. It belongs to user nobody, and this runs "
                         "as user root"));
    assert_true(has(msg, "`sudo -u nobody diabridge …`"));
    assert_true(has(msg, "leave the owner as it is"));
    char dir[PATH_MAX];
    assert_non_null(realpath(f->dir, dir));
    snprintf(want, sizeof want, "`sudo chown root %s %s*`", dir, real);
    assert_true(has(msg, want));
    assert_true(strlen(msg) < 511); /* fits the daemon's 512-byte message */

    /* the user's own file in the user's own folder, but read-only: chmod,
     * not chown */
    assert_int_equal(chown(f->dir, 65534, 65534), 0);
    assert_int_equal(chmod(f->journal, 0444), 0);
    assert_int_equal(as_nobody(refused_by_own_file, f, msg, sizeof msg), 0);
    snprintf(want, sizeof want, "The file is yours but read-only: `chmod u+w %s`", f->journal);
    assert_true(has(msg, want));
    assert_null(strstr(msg, "chown"));
}

static int daemon_as_nobody(struct fixture *f, char *msg, size_t len)
{
    (void)msg;
    (void)len;
    int fd = -1;
    char err[1024];
    if (dia_journal_lock_take(f->journal, &fd, err, sizeof err) != DIA_OK)
        return 1;
    raise(SIGSTOP); /* the parent looks now; SIGKILL ends it */
    return 0;
}

/* A daemon of another user is using it: say who, and to run this as that
 * user, never to change the owner. */
static void test_running_daemon_of_another_user_message(void **state)
{
    struct fixture *f = *state;
    if (geteuid() != 0)
        skip(); /* needs a process of another user */
    assert_int_equal(chown(f->dir, 65534, 65534), 0);
    assert_int_equal(chmod(f->dir, 0755), 0);
    assert_int_equal(chown(f->journal, 65534, 65534), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(99);
        _exit(daemon_as_nobody(f, NULL, 0));
    }
    int status;
    assert_int_equal(waitpid(child, &status, WUNTRACED), child);
    assert_true(WIFSTOPPED(status));
    char msg[1024], want[128];
    dia_journal_explain_unwritable(msg, sizeof msg, f->journal, "write it", EACCES);
    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, &status, 0), child);
    snprintf(want, sizeof want, "A diabridge daemon (pid %ld) writes it as user nobody",
             (long)child);
    assert_true(has(msg, want));
    assert_true(has(msg, "`sudo -u nobody diabridge …`"));
    assert_true(has(msg, "Leave the journal's owner as it is"));
    assert_null(strstr(msg, "chown"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_lock_file_means_no_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_is_exclusive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_ends_with_its_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_lock_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_name_finds_the_one_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hard_link_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_network_file_systems, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_file_system_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_another_users_journal_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_running_daemon_of_another_user_message, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
