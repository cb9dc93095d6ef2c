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

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
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
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    testutil_rmdir(f->dir);
    free(f);
    return 0;
}

/* Nobody holds it and nothing exists: asking creates nothing. */
static void test_no_lock_file_means_no_daemon(void **state)
{
    struct fixture *f = *state;
    long pid = 42;
    assert_int_equal(dia_journal_lock_holder(f->journal, &pid), 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_lock_file_means_no_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_is_exclusive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_ends_with_its_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_lock_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
