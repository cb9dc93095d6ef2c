/*
 * Tests for src/core/tz.c.
 *
 * Every expected UTC value below was worked out independently of the code
 * under test, with GNU date against the system tzdata, e.g.
 *   TZ=Europe/London date -d '2024-03-31 02:00:00' +%s    → 1711846800
 *   date -u -d @1711846800                                 → 01:00:00 UTC
 * and the calendar arithmetic for the footer rules by hand (2090-03-01 is a
 * Wednesday, so the last Sunday of March 2090 is the 26th, and so on).
 * Real zones come from /usr/share/zoneinfo; the malformed-file tests write
 * their own TZif files into a temporary TZDIR.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/tz.h"

/* ---- helpers --------------------------------------------------------------- */

static struct dia_tz *load_ok(const char *name)
{
    struct dia_tz *tz = NULL;
    char err[256] = "";
    int rc = dia_tz_load(name, &tz, err, sizeof(err));
    if (rc != DIA_OK)
        fail_msg("loading %s: %s (%s)", name, dia_errname(rc), err);
    assert_non_null(tz);
    assert_string_equal(dia_tz_name(tz), name);
    return tz;
}

static struct dia_civil civil(int y, int mo, int d, int h, int mi, int s)
{
    struct dia_civil c = {y, mo, d, h, mi, s};
    return c;
}

static void expect_civil(const struct dia_civil *c, int y, int mo, int d, int h, int mi, int s)
{
    assert_int_equal(c->year, y);
    assert_int_equal(c->month, mo);
    assert_int_equal(c->day, d);
    assert_int_equal(c->hour, h);
    assert_int_equal(c->minute, mi);
    assert_int_equal(c->second, s);
}

static bool valid(int y, int mo, int d, int h, int mi, int s)
{
    struct dia_civil c = civil(y, mo, d, h, mi, s);
    return dia_civil_valid(&c);
}

/* Convert and check the result, the offset used and the flags in one go. */
static void expect_local(const struct dia_tz *tz, struct dia_civil c, enum dia_tz_policy policy,
                         int64_t hint, int64_t want_utc, int32_t want_off, unsigned want_flags)
{
    int64_t utc = 0;
    int32_t off = 0;
    unsigned flags = 99;
    assert_int_equal(dia_tz_local_to_utc(tz, &c, policy, hint, &utc, &off, &flags), DIA_OK);
    assert_int_equal(utc, want_utc);
    assert_int_equal(off, want_off);
    assert_int_equal(flags, want_flags);
}

static void expect_reject(const struct dia_tz *tz, struct dia_civil c, unsigned want_flags)
{
    int64_t utc = 12345;
    unsigned flags = 0;
    assert_int_equal(dia_tz_local_to_utc(tz, &c, DIA_TZ_REJECT, 0, &utc, NULL, &flags),
                     DIA_ERR_IMPLAUSIBLE);
    assert_int_equal(flags, want_flags);
    assert_int_equal(utc, 12345); /* untouched on failure */
}

static void expect_offset(const struct dia_tz *tz, int64_t utc, int32_t want)
{
    int32_t off = 99999;
    assert_int_equal(dia_tz_offset_at(tz, utc, &off), DIA_OK);
    assert_int_equal(off, want);
}

/* A private TZDIR for hand-made zone files; removed in teardown. */
static char tzdir[64];

static int tzdir_setup(void **state)
{
    (void)state;
    snprintf(tzdir, sizeof(tzdir), "/tmp/test_tz.XXXXXX");
    if (!mkdtemp(tzdir))
        return -1;
    setenv("TZDIR", tzdir, 1);
    return 0;
}

static int tzdir_teardown(void **state)
{
    char cmd[128];
    (void)state;
    unsetenv("TZDIR");
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tzdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *name, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tzdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static size_t put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

static size_t put64(uint8_t *p, int64_t v)
{
    put32(p, (uint32_t)((uint64_t)v >> 32));
    return 4 + put32(p + 4, (uint32_t)v);
}

static size_t put_header(uint8_t *p, char version, uint32_t timecnt, uint32_t typecnt)
{
    memset(p, 0, 44);
    memcpy(p, "TZif", 4);
    p[4] = (uint8_t)version;
    put32(p + 32, timecnt);
    put32(p + 36, typecnt);
    put32(p + 40, 4); /* charcnt: one "ABC\0" designation shared by all types */
    return 44;
}

static size_t put_data(uint8_t *p, int tsize, size_t n, const int64_t *at, const uint8_t *idx,
                       size_t ntypes, const int32_t *offs)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += tsize == 8 ? put64(p + len, at[i]) : put32(p + len, (uint32_t)at[i]);
    for (size_t i = 0; i < n; i++)
        p[len++] = idx[i];
    for (size_t i = 0; i < ntypes; i++) {
        len += put32(p + len, (uint32_t)offs[i]);
        p[len++] = offs[i] != offs[0]; /* isdst: anything but type 0 */
        p[len++] = 0;                  /* desigidx */
    }
    memcpy(p + len, "ABC", 4);
    return len + 4;
}

/* Build a TZif file: version 0 (v1 only) or '2'+ (tiny v1 block, real v2 block, footer). */
static size_t build_tzif(uint8_t *buf, char version, size_t n, const int64_t *at,
                         const uint8_t *idx, size_t ntypes, const int32_t *offs, const char *footer)
{
    size_t len = 0;
    if (version == 0) {
        len += put_header(buf, 0, (uint32_t)n, (uint32_t)ntypes);
        return len + put_data(buf + len, 4, n, at, idx, ntypes, offs);
    }
    len += put_header(buf, version, 0, 1);
    len += put_data(buf + len, 4, 0, NULL, NULL, 1, offs);
    len += put_header(buf + len, version, (uint32_t)n, (uint32_t)ntypes);
    len += put_data(buf + len, 8, n, at, idx, ntypes, offs);
    len += (size_t)sprintf((char *)buf + len, "\n%s\n", footer);
    return len;
}

/* A v2 zone that is nothing but a footer: the rule alone decides. */
static int load_footer_zone(const char *footer, struct dia_tz **tz)
{
    uint8_t buf[512];
    int32_t off = 0;
    write_file("Footer", buf, build_tzif(buf, '2', 0, NULL, NULL, 1, &off, footer));
    return dia_tz_load("Footer", tz, NULL, 0);
}

/* ---- real zones ---------------------------------------------------------- */

static void test_london_spring_gap(void **state)
{
    (void)state;
    struct dia_tz *tz = load_ok("Europe/London");
    const struct dia_civil gap = civil(2024, 3, 31, 1, 30, 0);

    /* Either side of the gap: 00:59:59 GMT, then 02:00:00 BST = 01:00:00Z. */
    expect_local(tz, civil(2024, 3, 31, 0, 59, 59), DIA_TZ_REJECT, 0, 1711846799, 0, 0);
    expect_local(tz, civil(2024, 3, 31, 2, 0, 0), DIA_TZ_REJECT, 0, 1711846800, 3600, 0);
    /* 01:30 never happens: GMT before the change gives 01:30Z, BST after it 00:30Z. */
    expect_local(tz, gap, DIA_TZ_EARLIER, 0, 1711848600, 0, DIA_TZ_NONEXISTENT);
    expect_local(tz, gap, DIA_TZ_LATER, 0, 1711845000, 3600, DIA_TZ_NONEXISTENT);
    expect_local(tz, gap, DIA_TZ_NEAREST, 1711845000 - 600, 1711845000, 3600, DIA_TZ_NONEXISTENT);
    expect_local(tz, gap, DIA_TZ_NEAREST, 1711848600 + 600, 1711848600, 0, DIA_TZ_NONEXISTENT);
    expect_reject(tz, gap, DIA_TZ_NONEXISTENT);
    dia_tz_free(tz);
}

static void test_london_autumn_overlap(void **state)
{
    (void)state;
    struct dia_tz *tz = load_ok("Europe/London");
    const struct dia_civil twice = civil(2024, 10, 27, 1, 30, 0);
    const unsigned amb = DIA_TZ_AMBIGUOUS;

    expect_local(tz, civil(2024, 10, 27, 0, 30, 0), DIA_TZ_REJECT, 0, 1729985400, 3600, 0);
    expect_local(tz, civil(2024, 10, 27, 2, 0, 0), DIA_TZ_REJECT, 0, 1729994400, 0, 0);
    /* 01:30 BST = 00:30Z (1729989000), then 01:30 GMT = 01:30Z (1729992600). */
    expect_local(tz, twice, DIA_TZ_EARLIER, 0, 1729989000, 3600, amb);
    expect_local(tz, twice, DIA_TZ_LATER, 0, 1729989000 + 3600, 0, amb);
    expect_local(tz, twice, DIA_TZ_NEAREST, 1729989000 + 100, 1729989000, 3600, amb);
    expect_local(tz, twice, DIA_TZ_NEAREST, 1729992600 - 100, 1729992600, 0, amb);
    expect_local(tz, twice, DIA_TZ_NEAREST, 1729992600 + 86400, 1729992600, 0, amb);
    /* Exactly half-way (01:00Z): a tie goes to EARLIER. */
    expect_local(tz, twice, DIA_TZ_NEAREST, 1729990800, 1729989000, 3600, amb);
    expect_reject(tz, twice, amb);
    /* offset and flags pointers are optional */
    int64_t utc = 0;
    assert_int_equal(dia_tz_local_to_utc(tz, &twice, DIA_TZ_LATER, 0, &utc, NULL, NULL), DIA_OK);
    assert_int_equal(utc, 1729992600);
    dia_tz_free(tz);
}

static void test_new_york(void **state)
{
    (void)state;
    struct dia_tz *tz = load_ok("America/New_York");
    const struct dia_civil gap = civil(2024, 3, 10, 2, 30, 0);
    const struct dia_civil twice = civil(2024, 11, 3, 1, 30, 0);

    expect_local(tz, civil(2024, 3, 10, 1, 59, 59), DIA_TZ_REJECT, 0, 1710053999, -18000, 0);
    expect_local(tz, civil(2024, 3, 10, 3, 0, 0), DIA_TZ_REJECT, 0, 1710054000, -14400, 0);
    /* 02:30 missing: EST gives 07:30Z, EDT gives 06:30Z. */
    expect_local(tz, gap, DIA_TZ_EARLIER, 0, 1710055800, -18000, DIA_TZ_NONEXISTENT);
    expect_local(tz, gap, DIA_TZ_LATER, 0, 1710052200, -14400, DIA_TZ_NONEXISTENT);
    expect_reject(tz, gap, DIA_TZ_NONEXISTENT);
    /* 01:30 twice: 05:30Z (EDT), 06:30Z (EST). */
    expect_local(tz, twice, DIA_TZ_EARLIER, 0, 1730611800, -14400, DIA_TZ_AMBIGUOUS);
    expect_local(tz, twice, DIA_TZ_LATER, 0, 1730615400, -18000, DIA_TZ_AMBIGUOUS);
    expect_local(tz, twice, DIA_TZ_NEAREST, 1730615400 + 60, 1730615400, -18000, DIA_TZ_AMBIGUOUS);
    expect_reject(tz, twice, DIA_TZ_AMBIGUOUS);
    dia_tz_free(tz);
}

/* 2090 lies past the table of even "fat" files (2037): only the footer knows. */
static void test_far_future_uses_footer(void **state)
{
    (void)state;
    struct dia_tz *ldn = load_ok("Europe/London");
    /* GMT0BST,M3.5.0/1,M10.5.0: 2090-03-26 and 2090-10-29 at 01:00Z. */
    expect_offset(ldn, 3794173199, 0);
    expect_offset(ldn, 3794173200, 3600);
    expect_offset(ldn, 3812922000 - 1, 3600);
    expect_offset(ldn, 3812922000, 0);
    expect_local(ldn, civil(2090, 3, 26, 1, 30, 0), DIA_TZ_EARLIER, 0, 3794175000, 0,
                 DIA_TZ_NONEXISTENT);
    expect_local(ldn, civil(2090, 3, 26, 1, 30, 0), DIA_TZ_LATER, 0, 3794171400, 3600,
                 DIA_TZ_NONEXISTENT);
    expect_local(ldn, civil(2090, 10, 29, 1, 30, 0), DIA_TZ_EARLIER, 0, 3812920200, 3600,
                 DIA_TZ_AMBIGUOUS);
    expect_local(ldn, civil(2090, 10, 29, 1, 30, 0), DIA_TZ_LATER, 0, 3812923800, 0,
                 DIA_TZ_AMBIGUOUS);
    expect_local(ldn, civil(2090, 7, 1, 12, 0, 0), DIA_TZ_REJECT, 0, 3802590000, 3600, 0);
    dia_tz_free(ldn);

    struct dia_tz *ny = load_ok("America/New_York");
    /* EST5EDT,M3.2.0,M11.1.0: 2090-03-12 07:00Z and 2090-11-05 06:00Z. */
    expect_offset(ny, 3792985199, -18000);
    expect_offset(ny, 3792985200, -14400);
    expect_local(ny, civil(2090, 3, 12, 2, 30, 0), DIA_TZ_EARLIER, 0, 3792987000, -18000,
                 DIA_TZ_NONEXISTENT);
    expect_local(ny, civil(2090, 3, 12, 2, 30, 0), DIA_TZ_LATER, 0, 3792983400, -14400,
                 DIA_TZ_NONEXISTENT);
    expect_local(ny, civil(2090, 11, 5, 1, 30, 0), DIA_TZ_EARLIER, 0, 3813543000, -14400,
                 DIA_TZ_AMBIGUOUS);
    expect_local(ny, civil(2090, 11, 5, 1, 30, 0), DIA_TZ_LATER, 0, 3813546600, -18000,
                 DIA_TZ_AMBIGUOUS);
    dia_tz_free(ny);

    /* IST-2IDT,M3.4.4/26,M10.5.0: Thursday 2090-03-23 at "26:00" = Fri 00:00Z. */
    struct dia_tz *jer = load_ok("Asia/Jerusalem");
    expect_offset(jer, 3793996799, 7200);
    expect_offset(jer, 3793996800, 10800);
    dia_tz_free(jer);
}

static void test_southern_and_odd_offsets(void **state)
{
    (void)state;
    struct dia_tz *syd = load_ok("Australia/Sydney");
    /* DST ends 2024-04-07 03:00 AEDT → 02:00 AEST; 02:30 occurs at 15:30Z and 16:30Z. */
    expect_local(syd, civil(2024, 4, 7, 2, 30, 0), DIA_TZ_EARLIER, 0, 1712417400, 39600,
                 DIA_TZ_AMBIGUOUS);
    expect_local(syd, civil(2024, 4, 7, 2, 30, 0), DIA_TZ_LATER, 0, 1712421000, 36000,
                 DIA_TZ_AMBIGUOUS);
    /* DST starts 2024-10-06 02:00 AEST (16:00Z on the 5th); 02:30 is missing. */
    expect_offset(syd, 1728143999, 36000);
    expect_offset(syd, 1728144000, 39600);
    expect_local(syd, civil(2024, 10, 6, 2, 30, 0), DIA_TZ_EARLIER, 0, 1728145800, 36000,
                 DIA_TZ_NONEXISTENT);
    expect_local(syd, civil(2024, 10, 6, 2, 30, 0), DIA_TZ_LATER, 0, 1728142200, 39600,
                 DIA_TZ_NONEXISTENT);
    expect_local(syd, civil(2024, 10, 6, 3, 30, 0), DIA_TZ_REJECT, 0, 1728145800, 39600, 0);
    dia_tz_free(syd);

    struct dia_tz *adl = load_ok("Australia/Adelaide"); /* +10:30 / +09:30 */
    expect_local(adl, civil(2024, 4, 7, 2, 30, 0), DIA_TZ_EARLIER, 0, 1712419200, 37800,
                 DIA_TZ_AMBIGUOUS);
    expect_local(adl, civil(2024, 4, 7, 2, 30, 0), DIA_TZ_LATER, 0, 1712422800, 34200,
                 DIA_TZ_AMBIGUOUS);
    expect_local(adl, civil(2024, 10, 6, 1, 30, 0), DIA_TZ_REJECT, 0, 1728144000, 34200, 0);
    expect_local(adl, civil(2024, 10, 6, 3, 30, 0), DIA_TZ_REJECT, 0, 1728147600, 37800, 0);
    dia_tz_free(adl);

    struct dia_tz *kol = load_ok("Asia/Kolkata"); /* +05:30, no DST */
    expect_local(kol, civil(2024, 6, 1, 12, 0, 0), DIA_TZ_REJECT, 0, 1717223400, 19800, 0);
    expect_offset(kol, 1717223400, 19800);
    dia_tz_free(kol);
}

static void test_offset_at_transitions(void **state)
{
    (void)state;
    struct dia_tz *tz = load_ok("Europe/London");
    expect_offset(tz, 1711846799, 0); /* 2024-03-31 00:59:59Z */
    expect_offset(tz, 1711846800, 3600);
    expect_offset(tz, 1729990799, 3600); /* 2024-10-27 00:59:59Z */
    expect_offset(tz, 1729990800, 0);
    expect_offset(tz, 0, 3600);          /* British Standard Time, 1968-71 */
    expect_offset(tz, -5364662400, -75); /* 1800: local mean time, -0:01:15 */
    int32_t off;
    assert_int_equal(dia_tz_offset_at(tz, INT64_MAX, &off), DIA_ERR_ARG);
    assert_int_equal(dia_tz_offset_at(tz, INT64_MIN, &off), DIA_ERR_ARG);
    assert_int_equal(dia_tz_offset_at(NULL, 0, &off), DIA_ERR_ARG);
    assert_int_equal(dia_tz_offset_at(tz, 0, NULL), DIA_ERR_ARG);

    struct dia_civil bad = civil(2024, 2, 30, 0, 0, 0);
    int64_t utc;
    assert_int_equal(dia_tz_local_to_utc(tz, &bad, DIA_TZ_EARLIER, 0, &utc, NULL, NULL),
                     DIA_ERR_ARG);
    bad = civil(2024, 2, 3, 0, 0, 60);
    assert_int_equal(dia_tz_local_to_utc(tz, &bad, DIA_TZ_EARLIER, 0, &utc, NULL, NULL),
                     DIA_ERR_ARG);
    bad = civil(2024, 2, 3, 0, 0, 0);
    assert_int_equal(dia_tz_local_to_utc(tz, &bad, (enum dia_tz_policy)0, 0, &utc, NULL, NULL),
                     DIA_ERR_ARG);
    assert_int_equal(dia_tz_local_to_utc(tz, NULL, DIA_TZ_EARLIER, 0, &utc, NULL, NULL),
                     DIA_ERR_ARG);
    dia_tz_free(tz);
}

static void test_utc(void **state)
{
    (void)state;
    struct dia_tz *tz = load_ok("UTC");
    expect_offset(tz, 0, 0);
    expect_offset(tz, 1711846800, 0);
    expect_offset(tz, 3794173200, 0);
    expect_local(tz, civil(2024, 3, 31, 1, 30, 0), DIA_TZ_REJECT, 0, 1711848600, 0, 0);
    expect_local(tz, civil(1900, 1, 1, 0, 0, 0), DIA_TZ_REJECT, 0, -2208988800, 0, 0);
    dia_tz_free(tz);
    dia_tz_free(NULL);
}

static void test_invalid_names(void **state)
{
    (void)state;
    static const char *bad[] = {"",
                                "/etc/localtime",
                                "../etc/passwd",
                                "Europe/../../etc/passwd",
                                "Europe/London\n",
                                "Europe/Lon don",
                                "Europe/London;true",
                                "Europe\\London",
                                "Europe/London.bak"};
    char err[256];
    struct dia_tz *tz = (struct dia_tz *)&err; /* must be reset to NULL */

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(dia_tz_load(bad[i], &tz, err, sizeof(err)), DIA_ERR_CONFIG);
        assert_null(tz);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(dia_tz_load(NULL, &tz, err, sizeof(err)), DIA_ERR_CONFIG);
    assert_int_equal(dia_tz_load("No/Such_Zone", &tz, err, sizeof(err)), DIA_ERR_CONFIG);
    assert_non_null(strstr(err, "No/Such_Zone"));
    assert_int_equal(dia_tz_load("Europe", &tz, NULL, 0), DIA_ERR_CONFIG); /* a directory */
    char longname[400];
    memset(longname, 'A', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(dia_tz_load(longname, &tz, err, sizeof(err)), DIA_ERR_CONFIG);
    assert_null(tz);
    assert_int_equal(dia_tz_load("UTC", NULL, err, sizeof(err)), DIA_ERR_ARG);
}

/* ---- hand-made and damaged TZif files ----------------------------------- */

static void test_footer_rules(void **state)
{
    (void)state;
    struct dia_tz *tz = NULL;

    /* "<+03>-3": a quoted name and a fixed offset east of Greenwich. */
    assert_int_equal(load_footer_zone("<+03>-3", &tz), DIA_OK);
    expect_offset(tz, 0, 10800);
    expect_offset(tz, 2537654400, 10800);
    dia_tz_free(tz);

    /* Negative rule times (Greenland): both changes at 01:00Z in 2024. */
    assert_int_equal(load_footer_zone("<-03>3<-02>,M3.5.0/-2,M10.5.0/-1", &tz), DIA_OK);
    expect_offset(tz, 1711846799, -10800);
    expect_offset(tz, 1711846800, -7200);
    expect_offset(tz, 1729990799, -7200);
    expect_offset(tz, 1729990800, -10800);
    dia_tz_free(tz);

    /* RFC 8536 §3.3.1: DST all year, the end at "25:00" on day 365. */
    assert_int_equal(load_footer_zone("EST5EDT,0/0,J365/25", &tz), DIA_OK);
    expect_offset(tz, 2537654400, -14400);
    expect_offset(tz, 1704085200, -14400); /* 2024-01-01 05:00Z = midnight EST */
    expect_local(tz, civil(2050, 6, 1, 0, 0, 0), DIA_TZ_REJECT, 0, 2537654400 + 14400, -14400, 0);
    dia_tz_free(tz);

    /* Jn never counts February 29: J60 is always 1 March. */
    assert_int_equal(load_footer_zone("AAA0BBB,J60/0,J300/0", &tz), DIA_OK);
    expect_offset(tz, 1709251200 - 1, 0); /* 2024-03-01 00:00Z */
    expect_offset(tz, 1709251200, 3600);
    expect_offset(tz, 1677628800, 3600); /* 2023-03-01 */
    dia_tz_free(tz);
    /* n counts from zero and does count February 29: day 59 is Feb 29 in 2024. */
    assert_int_equal(load_footer_zone("AAA0BBB-2,59/0,300/0", &tz), DIA_OK);
    expect_offset(tz, 1709164800 - 1, 0); /* 2024-02-29 00:00Z */
    expect_offset(tz, 1709164800, 7200);
    expect_offset(tz, 1677628800 - 1, 0); /* 2023: day 59 is 1 March */
    expect_offset(tz, 1677628800, 7200);
    dia_tz_free(tz);

    static const char *broken[] = {
        "EST5EDT",                          /* DST without rules */
        "ES5",                              /* name too short */
        "EST",                              /* no offset */
        "EST25",                            /* offset hours > 24 */
        "<+03-3",                           /* unterminated quote */
        "EST5EDT,M13.1.0,M11.1.0",          /* month 13 */
        "EST5EDT,M3.0.0,M11.1.0",           /* week 0 */
        "EST5EDT,M3.2.7,M11.1.0",           /* weekday 7 */
        "EST5EDT,M3.2.0/168,M11.1.0",       /* time beyond 167h */
        "EST5EDT,J0,J100",                  /* J starts at 1 */
        "EST5EDT,366,100",                  /* n stops at 365 */
        "EST5EDT,M3.2.0,M11.1.0,",          /* trailing junk */
        "EST5EDT,M3.2.0/2:60,M11.1.0",      /* minutes 60 */
        "EST5EDT,M3.2.0/99999999999,M11.1", /* overflowing digits */
    };
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        tz = NULL;
        if (load_footer_zone(broken[i], &tz) != DIA_ERR_IO)
            fail_msg("footer \"%s\" was accepted", broken[i]);
        assert_null(tz);
    }
}

static void test_handmade_tables(void **state)
{
    (void)state;
    uint8_t buf[1024];
    struct dia_tz *tz = NULL;
    const int64_t at[] = {0, 1000000};
    const uint8_t idx[] = {1, 0};
    const int32_t offs[] = {-3600, 7200};

    /* Version 1: no footer, the last offset holds forever. */
    write_file("V1", buf, build_tzif(buf, 0, 2, at, idx, 2, offs, ""));
    assert_int_equal(dia_tz_load("V1", &tz, NULL, 0), DIA_OK);
    expect_offset(tz, -1, -3600); /* before the first transition: type 0 */
    expect_offset(tz, 0, 7200);
    expect_offset(tz, 999999, 7200);
    expect_offset(tz, 1000000, -3600);
    expect_offset(tz, 4000000000, -3600);
    /* A gap of three hours at 0: local 23:00 .. 02:00 on 1970-01-01 is missing. */
    expect_local(tz, civil(1970, 1, 1, 0, 30, 0), DIA_TZ_EARLIER, 0, 5400, -3600,
                 DIA_TZ_NONEXISTENT);
    expect_local(tz, civil(1970, 1, 1, 0, 30, 0), DIA_TZ_LATER, 0, -5400, 7200, DIA_TZ_NONEXISTENT);
    dia_tz_free(tz);

    /* Versions 3 and 4 read like 2; an empty footer also means "last offset". */
    write_file("V4", buf, build_tzif(buf, '4', 2, at, idx, 2, offs, ""));
    assert_int_equal(dia_tz_load("V4", &tz, NULL, 0), DIA_OK);
    expect_offset(tz, 4000000000, -3600);
    dia_tz_free(tz);
    /* With a footer, it takes over after the last transition. */
    write_file("V3", buf, build_tzif(buf, '3', 2, at, idx, 2, offs, "<+05>-5"));
    assert_int_equal(dia_tz_load("V3", &tz, NULL, 0), DIA_OK);
    expect_offset(tz, 1000000, -3600);
    expect_offset(tz, 1000001, 18000);
    dia_tz_free(tz);
}

/* Offsets that fall twice in an hour (+3 h, +2 h, +1 h) make one wall time
 * occur three times.  EARLIER and LATER take the ends; NEAREST must be able to
 * pick the middle one too (found by the tzif fuzzer). */
static void test_three_occurrences(void **state)
{
    (void)state;
    uint8_t buf[1024];
    struct dia_tz *tz = NULL;
    const int64_t at[] = {0, 3600};
    const uint8_t idx[] = {1, 2};
    const int32_t offs[] = {10800, 7200, 3600};
    write_file("Triple", buf, build_tzif(buf, '2', 2, at, idx, 3, offs, ""));
    assert_int_equal(dia_tz_load("Triple", &tz, NULL, 0), DIA_OK);
    struct dia_civil wall = civil(1970, 1, 1, 2, 30, 0); /* at -1800, 1800 and 5400 UTC */
    expect_local(tz, wall, DIA_TZ_EARLIER, 0, -1800, 10800, DIA_TZ_AMBIGUOUS);
    expect_local(tz, wall, DIA_TZ_LATER, 0, 5400, 3600, DIA_TZ_AMBIGUOUS);
    expect_local(tz, wall, DIA_TZ_NEAREST, 1800, 1800, 7200, DIA_TZ_AMBIGUOUS);
    expect_local(tz, wall, DIA_TZ_NEAREST, -5000, -1800, 10800, DIA_TZ_AMBIGUOUS);
    expect_local(tz, wall, DIA_TZ_NEAREST, 9000, 5400, 3600, DIA_TZ_AMBIGUOUS);
    expect_reject(tz, wall, DIA_TZ_AMBIGUOUS);
    dia_tz_free(tz);
}

static void expect_load_fails(const uint8_t *buf, size_t len, int want)
{
    struct dia_tz *tz = NULL;
    char err[256] = "";
    write_file("Bad", buf, len);
    int rc = dia_tz_load("Bad", &tz, err, sizeof(err));
    if (rc != want)
        fail_msg("%zu-byte file: got %s, want %s", len, dia_errname(rc), dia_errname(want));
    assert_null(tz);
    assert_true(err[0] != '\0');
}

static void test_truncated_file(void **state)
{
    (void)state;
    FILE *f = fopen("/usr/share/zoneinfo/Europe/London", "rb");
    assert_non_null(f);
    static uint8_t real[65536];
    size_t len = fread(real, 1, sizeof(real), f);
    fclose(f);
    assert_true(len > 100 && len < sizeof(real));

    /* Every proper prefix is malformed: at the latest the closing newline is missing. */
    for (size_t cut = 0; cut < len; cut++)
        expect_load_fails(real, cut, DIA_ERR_IO);

    /* The untouched copy loads and agrees with the system's. */
    struct dia_tz *tz = NULL;
    write_file("Copy", real, len);
    assert_int_equal(dia_tz_load("Copy", &tz, NULL, 0), DIA_OK);
    expect_offset(tz, 1711846800, 3600);
    dia_tz_free(tz);
}

static void test_garbled_file(void **state)
{
    (void)state;
    uint8_t buf[1024];
    const int64_t at[] = {0, 1000000};
    const uint8_t idx[] = {1, 0};
    const int32_t offs[] = {-3600, 7200};
    size_t len = build_tzif(buf, '2', 2, at, idx, 2, offs, "<+05>-5");
    size_t v2 = 44 + 6 + 4; /* where the second header starts */
    uint8_t bad[1024];

#define CORRUPT(stmt, want)                                                                        \
    do {                                                                                           \
        memcpy(bad, buf, len);                                                                     \
        stmt;                                                                                      \
        expect_load_fails(bad, len, want);                                                         \
    } while (0)

    CORRUPT(bad[0] = 'X', DIA_ERR_IO);                           /* magic */
    CORRUPT(bad[4] = '1', DIA_ERR_IO);                           /* no such version */
    CORRUPT(bad[v2] = 'X', DIA_ERR_IO);                          /* second magic */
    CORRUPT(put32(bad + v2 + 32, 0xffffffffu), DIA_ERR_IO);      /* timecnt beyond the file */
    CORRUPT(put32(bad + v2 + 36, 0), DIA_ERR_IO);                /* typecnt 0 */
    CORRUPT(put32(bad + v2 + 36, 0x40000000u), DIA_ERR_IO);      /* typecnt beyond the file */
    CORRUPT(put32(bad + v2 + 40, 0xfffffff0u), DIA_ERR_IO);      /* charcnt beyond the file */
    CORRUPT(put32(bad + v2 + 20, 1), DIA_ERR_IO);                /* isutcnt neither 0 nor 2 */
    CORRUPT(put32(bad + 32, 0x20000000u), DIA_ERR_IO);           /* v1 block beyond the file */
    CORRUPT(bad[v2 + 44 + 16] = 2, DIA_ERR_IO);                  /* type index 2 of 2 */
    CORRUPT(put64(bad + v2 + 44 + 8, -5), DIA_ERR_IO);           /* transitions not ascending */
    CORRUPT(put32(bad + v2 + 44 + 18, 0x80000000u), DIA_ERR_IO); /* utoff -2^31 */
    CORRUPT(bad[v2 + 44 + 18 + 4] = 7, DIA_ERR_IO);              /* isdst not 0/1 */
    CORRUPT(bad[v2 + 44 + 18 + 5] = 4, DIA_ERR_IO);              /* desigidx past chars */
    CORRUPT(bad[len - 1] = 'x', DIA_ERR_IO);                     /* footer not closed */
    CORRUPT(bad[len - 9] = '!', DIA_ERR_IO);                     /* footer not opened */
    CORRUPT(bad[len - 3] = '\0', DIA_ERR_IO);                    /* NUL inside footer */
    CORRUPT(put32(bad + v2 + 28, 1), DIA_ERR_IO);                /* leapcnt: no room */
#undef CORRUPT

    /* Leap-second ("right/") zones are refused as a configuration mistake. */
    uint8_t leap[1024];
    size_t n = build_tzif(leap, 0, 0, NULL, NULL, 1, offs, "");
    put32(leap + 28, 1);
    memset(leap + n, 0, 8);
    expect_load_fails(leap, n + 8, DIA_ERR_CONFIG);

    /* Random damage: any answer is fine, as long as nothing crashes and a
     * zone that loads still answers. */
    uint32_t seed = 12345;
    for (int round = 0; round < 3000; round++) {
        memcpy(bad, buf, len);
        for (int k = 0; k < 1 + round % 4; k++) {
            seed = seed * 1103515245u + 12345u;
            bad[(seed >> 8) % len] = (uint8_t)(seed >> 20);
        }
        write_file("Fuzz", bad, len);
        struct dia_tz *tz = NULL;
        if (dia_tz_load("Fuzz", &tz, NULL, 0) == DIA_OK) {
            int32_t off;
            int64_t utc;
            struct dia_civil c = civil(1970, 1, 12, 13, 46, 40);
            assert_int_equal(dia_tz_offset_at(tz, 1000000, &off), DIA_OK);
            assert_int_equal(dia_tz_local_to_utc(tz, &c, DIA_TZ_NEAREST, 0, &utc, NULL, NULL),
                             DIA_OK);
            dia_tz_free(tz);
        }
    }
}

static void test_utc_without_tzdata(void **state)
{
    (void)state;
    /* The temporary TZDIR holds no "UTC": it must still load. */
    struct dia_tz *tz = load_ok("UTC");
    expect_offset(tz, 1711846800, 0);
    dia_tz_free(tz);
    assert_int_equal(dia_tz_load("Etc/UTC", &tz, NULL, 0), DIA_ERR_CONFIG);
}

/* ---- civil helpers and text ---------------------------------------------- */

static void test_civil_days(void **state)
{
    (void)state;
    assert_int_equal(dia_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(dia_days_from_civil(2024, 2, 29), 19782);
    assert_int_equal(dia_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(dia_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(dia_days_from_civil(1, 1, 1), -719162);
    assert_int_equal(dia_days_from_civil(0, 3, 1), -719468);

    /* Walk ±2.7 million days (year -5400 .. 9360) one day at a time. */
    int y, m, d;
    dia_civil_from_days(-1000000, &y, &m, &d);
    for (int64_t days = -1000000; days <= 1000000; days++) {
        int y2, m2, d2;
        dia_civil_from_days(days, &y2, &m2, &d2);
        assert_int_equal(dia_days_from_civil(y2, m2, d2), days);
        if (days > -1000000) { /* yesterday + 1 day */
            struct dia_civil c = civil(y, m, d + 1, 0, 0, 0);
            if (!dia_civil_valid(&c))
                c = m == 12 ? civil(y + 1, 1, 1, 0, 0, 0) : civil(y, m + 1, 1, 0, 0, 0);
            assert_int_equal(c.year, y2);
            assert_int_equal(c.month, m2);
            assert_int_equal(c.day, d2);
        }
        y = y2, m = m2, d = d2;
    }
    /* and in big strides out to ±10 million years */
    for (int64_t days = -3652425000; days <= 3652425000; days += 1234567) {
        dia_civil_from_days(days, &y, &m, &d);
        assert_int_equal(dia_days_from_civil(y, m, d), days);
    }
}

static void test_civil_epoch(void **state)
{
    (void)state;
    struct dia_civil c = civil(2024, 3, 31, 1, 30, 0);
    assert_int_equal(dia_civil_to_epoch(&c), 1711848600);
    dia_epoch_to_civil(-1, &c);
    expect_civil(&c, 1969, 12, 31, 23, 59, 59);
    dia_epoch_to_civil(951782400, &c); /* 2000-02-29 */
    expect_civil(&c, 2000, 2, 29, 0, 0, 0);
    for (int64_t t = -20000000000; t < 20000000000; t += 7777777) {
        dia_epoch_to_civil(t, &c);
        assert_true(dia_civil_valid(&c));
        assert_int_equal(dia_civil_to_epoch(&c), t);
    }

    assert_true(valid(2024, 2, 29, 23, 59, 59));
    assert_true(valid(2000, 2, 29, 0, 0, 0));
    assert_false(valid(2023, 2, 29, 0, 0, 0));
    assert_false(valid(1900, 2, 29, 0, 0, 0));
    assert_false(valid(2024, 4, 31, 0, 0, 0));
    assert_false(valid(2024, 13, 1, 0, 0, 0));
    assert_false(valid(2024, 0, 1, 0, 0, 0));
    assert_false(valid(2024, 1, 0, 0, 0, 0));
    assert_false(valid(2024, 1, 1, 24, 0, 0));
    assert_false(valid(2024, 1, 1, 0, 60, 0));
    assert_false(valid(2024, 1, 1, 0, 0, 60));
    assert_false(valid(2024, 1, 1, -1, 0, 0));
    assert_false(dia_civil_valid(NULL));
}

static void test_civil_parse(void **state)
{
    (void)state;
    struct dia_civil c;
    assert_int_equal(dia_civil_parse("2015-03-28T19:56:13", &c), DIA_OK);
    expect_civil(&c, 2015, 3, 28, 19, 56, 13);
    assert_int_equal(dia_civil_parse("2024-02-29 00:00:00", &c), DIA_OK);
    expect_civil(&c, 2024, 2, 29, 0, 0, 0);

    static const char *bad[] = {"",
                                "2015-03-28",
                                "2015-3-28T19:56:13",
                                "2015-03-28T19:56",
                                "2015-03-28T19:56:13Z",
                                "2015-03-28T19:56:13 ",
                                "2015-03-28t19:56:13",
                                "2015-03-28T19:56:60",
                                "2015-03-28T24:00:00",
                                "2015-02-29T00:00:00",
                                "+015-03-28T19:56:13",
                                "2015-03-28T19:5x:13"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (dia_civil_parse(bad[i], &c) != DIA_ERR_ARG)
            fail_msg("\"%s\" was accepted", bad[i]);
    assert_int_equal(dia_civil_parse(NULL, &c), DIA_ERR_ARG);
}

static void test_format(void **state)
{
    (void)state;
    char buf[40];
    dia_format_utc_ms(1711848600000, buf, sizeof(buf));
    assert_string_equal(buf, "2024-03-31T01:30:00.000Z");
    dia_format_utc_ms(-1, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    dia_format_utc_ms(1729992600123, buf, 25); /* exactly the documented minimum */
    assert_string_equal(buf, "2024-10-27T01:30:00.123Z");
    dia_format_local_ms(1711848600000, 60, buf, sizeof(buf));
    assert_string_equal(buf, "2024-03-31T02:30:00.000+01:00");
    dia_format_local_ms(1710052200000, -240, buf, 30);
    assert_string_equal(buf, "2024-03-10T02:30:00.000-04:00");
    dia_format_local_ms(1717223400000, 330, buf, sizeof(buf));
    assert_string_equal(buf, "2024-06-01T12:00:00.000+05:30");
    dia_format_local_ms(0, 0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000+00:00");

    char small[8];
    dia_format_utc_ms(1711848600000, small, sizeof(small)); /* truncates, never overflows */
    assert_string_equal(small, "2024-03");
    dia_format_utc_ms(INT64_MIN, buf, sizeof(buf)); /* no crash at the extremes */
    dia_format_local_ms(INT64_MAX, INT32_MAX, buf, sizeof(buf));
    dia_format_local_ms(INT64_MIN, INT32_MIN, buf, sizeof(buf));
}

static void test_parse_time(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t ms;
    } good[] = {
        {"2024-03-31T01:30:00Z", 1711848600000},
        {"2024-03-31T02:30:00+01:00", 1711848600000},
        {"2024-03-30T21:30:00-04:00", 1711848600000},
        {"2024-06-01T12:00:00+05:30", 1717223400000},
        {"2024-03-31 01:30:00Z", 1711848600000},
        {"2024-03-31T01:30:00.123Z", 1711848600123},
        {"2024-03-31T01:30:00.5Z", 1711848600500},
        {"2024-03-31T01:30:00.123456+00:00", 1711848600123},
        {"2024-03-31", 1711843200000},
        {"1969-12-31T23:59:59.999Z", -1},
        {"1711848600000", 1711848600000},
        {"-5", -5},
        {"0", 0},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t ms = 0;
        if (dia_parse_time_ms(good[i].text, &ms) != DIA_OK)
            fail_msg("\"%s\" was refused", good[i].text);
        assert_int_equal(ms, good[i].ms);
    }

    static const char *bad[] = {"",
                                "-",
                                "abc",
                                "12a",
                                "2024-03-31T01:30:00",   /* naive: needs a zone */
                                "2024-03-31T01:30Z",     /* no seconds */
                                "2024-13-01",            /* month 13 */
                                "2024-02-30T00:00:00Z",  /* no such day */
                                "2024-03-31T01:30:00.Z", /* empty fraction */
                                "2024-03-31T01:30:00+1:00",
                                "2024-03-31T01:30:00+24:00",
                                "2024-03-31T01:30:00+0100",
                                "2024-03-31T01:30:00Zjunk",
                                "2024-03-31T",
                                "9223372036854775808",
                                "-9223372036854775809",
                                "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 42;
        if (dia_parse_time_ms(bad[i], &ms) != DIA_ERR_ARG)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_int_equal(ms, 42);
    }
    int64_t ms;
    assert_int_equal(dia_parse_time_ms(NULL, &ms), DIA_ERR_ARG);
}

int main(void)
{
    unsetenv("TZDIR"); /* the real-zone tests read the system tzdata */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_london_spring_gap),
        cmocka_unit_test(test_london_autumn_overlap),
        cmocka_unit_test(test_new_york),
        cmocka_unit_test(test_far_future_uses_footer),
        cmocka_unit_test(test_southern_and_odd_offsets),
        cmocka_unit_test(test_offset_at_transitions),
        cmocka_unit_test(test_utc),
        cmocka_unit_test(test_invalid_names),
        cmocka_unit_test_setup_teardown(test_footer_rules, tzdir_setup, tzdir_teardown),
        cmocka_unit_test_setup_teardown(test_handmade_tables, tzdir_setup, tzdir_teardown),
        cmocka_unit_test_setup_teardown(test_three_occurrences, tzdir_setup, tzdir_teardown),
        cmocka_unit_test_setup_teardown(test_truncated_file, tzdir_setup, tzdir_teardown),
        cmocka_unit_test_setup_teardown(test_garbled_file, tzdir_setup, tzdir_teardown),
        cmocka_unit_test_setup_teardown(test_utc_without_tzdata, tzdir_setup, tzdir_teardown),
        cmocka_unit_test(test_civil_days),
        cmocka_unit_test(test_civil_epoch),
        cmocka_unit_test(test_civil_parse),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_parse_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
