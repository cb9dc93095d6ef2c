/* Small helpers shared by the unit tests (header-only: each test is one program). */
#ifndef DIA_TESTUTIL_H
#define DIA_TESTUTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline int testutil_rm(const char *p, const struct stat *s, int f, struct FTW *w)
{
    (void)s;
    (void)f;
    (void)w;
    return remove(p);
}

/* A fresh temporary directory; removed by testutil_rmdir. */
static inline char *testutil_tmpdir(void)
{
    char *d = strdup("/tmp/diabridge-test-XXXXXX");
    if (!d || !mkdtemp(d)) {
        perror("mkdtemp");
        abort();
    }
    return d;
}

static inline void testutil_rmdir(char *d)
{
    nftw(d, testutil_rm, 8, FTW_DEPTH | FTW_PHYS);
    free(d);
}

/* Path of a file under tests/data (DIA_TEST_DATA, set by CTest). */
static inline const char *testutil_data(const char *rel)
{
    static char buf[4096];
    const char *base = getenv("DIA_TEST_DATA");
    snprintf(buf, sizeof buf, "%s/%s", base ? base : "tests/data", rel);
    return buf;
}

#endif
