/*
 * IANA time zones read straight from tzdata, without the C library's
 * process-wide TZ state (no setenv("TZ"), tzset, mktime or localtime).
 *
 * Approach
 *
 * dia_tz_load() reads one TZif file (RFC 8536) into an immutable struct
 * dia_tz, so any number of threads can share a loaded zone.  For version 2+
 * files only the 64-bit data block is used; the version 1 block is merely
 * skipped.  The file is untrusted input: every count is checked against the
 * bytes actually present before anything is read, every type index against
 * the type count, and the transitions must ascend (RFC 8536 §3.1, §3.2).
 *
 * A zone then answers one question, "which UTC offset is in force at UTC
 * instant t" (zone_offset_at): before the first transition the offset of time
 * type 0 applies (§3.2), within the table a binary search finds it, and after
 * the last transition the POSIX TZ string of the footer (§3.3, with the §3.3.1
 * extensions: hours up to ±167 in rule times) computes it for any year.  That
 * keeps far-future dates right even with "slim" files that stop in 2007.
 *
 * Local → UTC inverts that function.  A naive wall time W maps to UTC instant
 * u only if u = W - o where o is an offset the zone uses and offset_at(u) = o;
 * trying each distinct offset of the zone yields every candidate (normally
 * one, two in a repeated hour).  With none, W falls in a gap; bisecting
 * u + offset_at(u) - W over the window of possible instants finds the
 * transition that skipped it and hence the offsets before and after.
 *
 * The calendar arithmetic (days_from_civil, civil_from_days) counts in
 * 400-year eras whose years start on 1 March, so February's leap day falls at
 * the end of the year; the method is the one Howard Hinnant published.
 */
#include "core/tz.h"
#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_NAME_MAX   255
#define TZ_FILE_MAX   (1u << 20) /* the largest real TZif files are a few KiB */
#define TZ_FOOTER_MAX 255
#define TZ_HEADER_LEN 44 /* RFC 8536 §3.1 */
/* RFC 8536 §3.2: utoff SHOULD lie in -89999..93599; anything wider is junk. */
#define TZ_UTOFF_MIN (-89999)
#define TZ_UTOFF_MAX 93599
/* Instants beyond ±2^50 s (±35 million years) are refused so that year
 * numbers stay well inside int and no sum below can overflow. */
#define TZ_LIMIT_S ((int64_t)1 << 50)
/* civil_from_days clamps to this many days so the year fits in an int. */
#define TZ_DAYS_LIMIT INT64_C(780000000000)

/* One end of a POSIX DST rule: a day of the year and a local time of day. */
struct tz_rule {
    char kind;    /* 'J': Julian 1..365 without Feb 29; 'D': 0..365; 'M': Mm.w.d */
    int day;      /* 'J'/'D': the day number; 'M': the month */
    int week;     /* 'M': 1..5, 5 meaning the last */
    int weekday;  /* 'M': 0 (Sunday)..6 */
    int32_t time; /* seconds after local midnight, -167h..167h (§3.3.1) */
};

struct tz_posix {
    int32_t std_off; /* UTC offsets, east positive (POSIX writes them west positive) */
    int32_t dst_off;
    bool has_dst;
    struct tz_rule start, end;
};

struct dia_tz {
    char name[TZ_NAME_MAX + 1];
    size_t ntrans;
    int64_t *trans_at;  /* ascending UTC instants */
    int32_t *trans_off; /* offset in force from trans_at[i] on */
    int32_t first_off;  /* before the first transition: time type 0 */
    bool has_footer;
    struct tz_posix footer;
    size_t noffs; /* every distinct offset the zone can produce */
    int32_t offs[256 + 2];
    int32_t off_min, off_max;
};

/* ---- calendar ---------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b < 0) ? q - 1 : q;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return (m == 2 && is_leap(y)) ? 29 : len[m - 1];
}

int64_t dia_days_from_civil(int year, int month, int day)
{
    /* Count years from 1 March so the leap day is the last day of a year. */
    int64_t y = (int64_t)year - (month <= 2);
    int64_t era = floor_div(y, 400);
    int64_t year_of_era = y - era * 400;                         /* 0..399 */
    int64_t march_month = ((int64_t)month + 9) % 12;             /* Mar 0 .. Feb 11 */
    int64_t day_of_year = (153 * march_month + 2) / 5 + day - 1; /* 0..365 */
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468; /* 719468: 0000-03-01 .. 1970-01-01 */
}

void dia_civil_from_days(int64_t days, int *year, int *month, int *day)
{
    if (days > TZ_DAYS_LIMIT)
        days = TZ_DAYS_LIMIT;
    if (days < -TZ_DAYS_LIMIT)
        days = -TZ_DAYS_LIMIT;
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097; /* 0..146096 */
    /* Remove the leap days seen so far to get the year within the era. */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153; /* Mar 0 .. Feb 11 */
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = m;
    *year = (int)(yoe + era * 400 + (m <= 2));
}

int64_t dia_civil_to_epoch(const struct dia_civil *c)
{
    return dia_days_from_civil(c->year, c->month, c->day) * 86400 + (int64_t)c->hour * 3600 +
           (int64_t)c->minute * 60 + c->second;
}

void dia_epoch_to_civil(int64_t epoch_s, struct dia_civil *c)
{
    int64_t days = floor_div(epoch_s, 86400);
    int64_t secs = epoch_s - days * 86400;
    dia_civil_from_days(days, &c->year, &c->month, &c->day);
    c->hour = (int)(secs / 3600);
    c->minute = (int)(secs / 60 % 60);
    c->second = (int)(secs % 60);
}

bool dia_civil_valid(const struct dia_civil *c)
{
    return c && c->month >= 1 && c->month <= 12 && c->day >= 1 &&
           c->day <= days_in_month(c->year, c->month) && c->hour >= 0 && c->hour <= 23 &&
           c->minute >= 0 && c->minute <= 59 && c->second >= 0 && c->second <= 59;
}

/* ---- POSIX TZ strings (RFC 8536 §3.3) ------------------------------------ */

/* Decimal digits into *out, failing on none or on a value above max. */
static bool parse_uint(const char **s, int max, int *out)
{
    const char *p = *s;
    int v = 0;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > max)
            return false;
    }
    *s = p;
    *out = v;
    return true;
}

/* [+-]hh[:mm[:ss]] as seconds; offsets allow 24 hours, rule times 167. */
static bool parse_hms(const char **s, int max_hours, int32_t *out)
{
    const char *p = *s;
    int sign = 1, h, m = 0, sec = 0;
    if (*p == '+' || *p == '-')
        sign = (*p++ == '-') ? -1 : 1;
    if (!parse_uint(&p, max_hours, &h))
        return false;
    if (*p == ':') {
        p++;
        if (!parse_uint(&p, 59, &m))
            return false;
        if (*p == ':') {
            p++;
            if (!parse_uint(&p, 59, &sec))
                return false;
        }
    }
    *s = p;
    *out = sign * (h * 3600 + m * 60 + sec);
    return true;
}

/* A zone abbreviation: three or more letters, or "<+03>"-style quoted text. */
static bool skip_abbr(const char **s)
{
    const char *p = *s;
    size_t n = 0;
    if (*p == '<') {
        for (p++; (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= '0' && *p <= '9') || *p == '+' || *p == '-';
             p++)
            n++;
        if (*p++ != '>')
            return false;
    } else {
        for (; (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'); p++)
            n++;
    }
    *s = p;
    return n >= 3;
}

static bool parse_rule(const char **s, struct tz_rule *r)
{
    const char *p = *s;
    r->week = r->weekday = 0;
    if (*p == 'J') {
        p++;
        r->kind = 'J';
        if (!parse_uint(&p, 365, &r->day) || r->day < 1)
            return false;
    } else if (*p == 'M') {
        p++;
        r->kind = 'M';
        if (!parse_uint(&p, 12, &r->day) || r->day < 1 || *p++ != '.' ||
            !parse_uint(&p, 5, &r->week) || r->week < 1 || *p++ != '.' ||
            !parse_uint(&p, 6, &r->weekday))
            return false;
    } else {
        r->kind = 'D';
        if (!parse_uint(&p, 365, &r->day))
            return false;
    }
    r->time = 2 * 3600; /* POSIX default: 02:00 */
    if (*p == '/') {
        p++;
        if (!parse_hms(&p, 167, &r->time))
            return false;
    }
    *s = p;
    return true;
}

/* "GMT0BST,M3.5.0/1,M10.5.0", "<+03>-3", "EST5EDT,M3.2.0,M11.1.0" … */
static bool parse_posix_tz(const char *s, struct tz_posix *tz)
{
    int32_t west;
    memset(tz, 0, sizeof(*tz));
    if (!skip_abbr(&s) || !parse_hms(&s, 24, &west))
        return false;
    tz->std_off = -west;
    if (*s == '\0')
        return true;
    if (!skip_abbr(&s))
        return false;
    tz->has_dst = true;
    tz->dst_off = tz->std_off + 3600;
    if (*s != ',') {
        if (!parse_hms(&s, 24, &west))
            return false;
        tz->dst_off = -west;
    }
    /* POSIX lets the rules default to something implementation-defined;
     * tzdata always writes them, so their absence means a broken file. */
    if (*s++ != ',' || !parse_rule(&s, &tz->start) || *s++ != ',' || !parse_rule(&s, &tz->end))
        return false;
    return *s == '\0';
}

/* The day (days since 1970-01-01) a rule names in a given year. */
static int64_t rule_day(const struct tz_rule *r, int year)
{
    int64_t jan1 = dia_days_from_civil(year, 1, 1);
    if (r->kind == 'J')
        return jan1 + r->day - 1 + (is_leap(year) && r->day >= 60);
    if (r->kind == 'D')
        return jan1 + r->day;
    int64_t first = dia_days_from_civil(year, r->day, 1);
    int first_wd = (int)((first % 7 + 7 + 4) % 7); /* 1970-01-01 was a Thursday (4) */
    int64_t d = first + (r->weekday - first_wd + 7) % 7 + 7 * (r->week - 1);
    int64_t last = first + days_in_month(year, r->day) - 1;
    while (d > last) /* week 5 means "the last one in the month" */
        d -= 7;
    return d;
}

/*
 * The offset a POSIX rule gives at UTC instant t: the latest DST start or end
 * at or before t, searched over the neighbouring years because rule times may
 * reach a week past the year's end.  The start time is in standard time and
 * the end time in DST.  When a start and an end coincide (all-year DST such
 * as "EST5EDT,0/0,J365/25", RFC 8536 §3.3.1) the start wins.
 */
static int32_t posix_offset_at(const struct tz_posix *tz, int64_t t)
{
    if (!tz->has_dst)
        return tz->std_off;
    int y, m, d;
    dia_civil_from_days(floor_div(t + tz->std_off, 86400), &y, &m, &d);
    int64_t best_at = 0;
    int32_t best = tz->std_off;
    bool found = false;
    for (int yy = y - 1; yy <= y + 1; yy++) {
        int64_t on = rule_day(&tz->start, yy) * 86400 + tz->start.time - tz->std_off;
        int64_t off = rule_day(&tz->end, yy) * 86400 + tz->end.time - tz->dst_off;
        if (off <= t && (!found || off > best_at)) {
            best_at = off;
            best = tz->std_off;
            found = true;
        }
        if (on <= t && (!found || on >= best_at)) {
            best_at = on;
            best = tz->dst_off;
            found = true;
        }
    }
    return best;
}

/* ---- zone lookup ----------------------------------------------------------- */

static int32_t zone_offset_at(const struct dia_tz *tz, int64_t t)
{
    size_t n = tz->ntrans;
    if (n == 0 || t > tz->trans_at[n - 1]) {
        if (tz->has_footer) /* RFC 8536 §3.2: the footer covers what the table does not */
            return posix_offset_at(&tz->footer, t);
        return n == 0 ? tz->first_off : tz->trans_off[n - 1];
    }
    if (t < tz->trans_at[0])
        return tz->first_off;
    size_t lo = 0, hi = n; /* trans_at[lo] <= t < trans_at[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans_at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->trans_off[lo];
}

int dia_tz_offset_at(const struct dia_tz *tz, int64_t utc_s, int32_t *offset_s)
{
    if (!tz || !offset_s || utc_s > TZ_LIMIT_S || utc_s < -TZ_LIMIT_S)
        return DIA_ERR_ARG;
    *offset_s = zone_offset_at(tz, utc_s);
    return DIA_OK;
}

static uint64_t distance(int64_t a, int64_t b)
{
    return a > b ? (uint64_t)a - (uint64_t)b : (uint64_t)b - (uint64_t)a;
}

int dia_tz_local_to_utc(const struct dia_tz *tz, const struct dia_civil *local,
                        enum dia_tz_policy policy, int64_t hint_utc_s, int64_t *utc_s,
                        int32_t *offset_s, unsigned *flags)
{
    if (flags)
        *flags = 0;
    if (!tz || !utc_s || !dia_civil_valid(local) || policy < DIA_TZ_EARLIER ||
        policy > DIA_TZ_REJECT)
        return DIA_ERR_ARG;
    int64_t wall = dia_civil_to_epoch(local);
    if (wall > TZ_LIMIT_S || wall < -TZ_LIMIT_S)
        return DIA_ERR_ARG;

    /* Candidates in order of UTC instant: [0] the earliest, [1] the latest.
     * A zone whose offsets change several times in quick succession can make
     * one wall time occur three or more times, so the candidate nearest the
     * hint is tracked on its own rather than taken from the two ends. */
    int64_t cand[2] = {0, 0}, nearest = 0;
    size_t found = 0;
    for (size_t i = 0; i < tz->noffs; i++) {
        int64_t u = wall - tz->offs[i];
        if (zone_offset_at(tz, u) != tz->offs[i])
            continue;
        if (found == 0 || u < cand[0])
            cand[0] = u;
        if (found == 0 || u > cand[1])
            cand[1] = u;
        if (found == 0 || distance(u, hint_utc_s) < distance(nearest, hint_utc_s))
            nearest = u;
        found++;
    }
    if (found == 1) {
        *utc_s = cand[0];
        if (offset_s)
            *offset_s = (int32_t)(wall - cand[0]);
        return DIA_OK;
    }

    unsigned what = DIA_TZ_AMBIGUOUS;
    if (found == 0) {
        /* A gap.  g(u) = u + offset_at(u) - wall is negative at the window's
         * start and positive at its end, and never zero; bisect to the
         * transition where it changes sign. */
        what = DIA_TZ_NONEXISTENT;
        int64_t lo = wall - tz->off_max, hi = wall - tz->off_min;
        if (lo >= hi)
            return DIA_ERR_ARG; /* unreachable: one offset always matches */
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;
            if (mid + zone_offset_at(tz, mid) < wall)
                lo = mid;
            else
                hi = mid;
        }
        /* EARLIER reads with the offset before the change, LATER after it. */
        cand[0] = wall - zone_offset_at(tz, lo);
        cand[1] = wall - zone_offset_at(tz, hi);
        nearest = distance(cand[1], hint_utc_s) < distance(cand[0], hint_utc_s) ? cand[1] : cand[0];
    }
    if (flags)
        *flags = what;

    int64_t pick;
    switch (policy) {
    case DIA_TZ_EARLIER:
        pick = cand[0];
        break;
    case DIA_TZ_LATER:
        pick = cand[1];
        break;
    case DIA_TZ_NEAREST:
        pick = nearest;
        break;
    default:
        return DIA_ERR_IMPLAUSIBLE;
    }
    *utc_s = pick;
    if (offset_s)
        *offset_s = (int32_t)(wall - pick);
    return DIA_OK;
}

/* ---- TZif files (RFC 8536 §3) ---------------------------------------------- */

struct tzif_header {
    uint8_t version; /* 0, '2', '3', '4' … */
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Signed fields are two's complement; convert without implementation-defined casts. */
static int32_t be32s(const uint8_t *p)
{
    uint32_t u = be32(p);
    return u <= INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

static int64_t be64s(const uint8_t *p)
{
    uint64_t u = (uint64_t)be32(p) << 32 | be32(p + 4);
    return u <= INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

static bool read_header(const uint8_t *p, size_t avail, struct tzif_header *h)
{
    if (avail < TZ_HEADER_LEN || memcmp(p, "TZif", 4) != 0)
        return false;
    h->version = p[4];
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    return true;
}

/* Size of the data block after a header; uint32 counts cannot overflow this. */
static uint64_t data_len(const struct tzif_header *h, unsigned tsize)
{
    return (uint64_t)h->timecnt * (tsize + 1) + (uint64_t)h->typecnt * 6 + h->charcnt +
           (uint64_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

static void add_offset(struct dia_tz *tz, int32_t off)
{
    for (size_t i = 0; i < tz->noffs; i++)
        if (tz->offs[i] == off)
            return;
    tz->offs[tz->noffs++] = off;
    if (tz->noffs == 1 || off < tz->off_min)
        tz->off_min = off;
    if (tz->noffs == 1 || off > tz->off_max)
        tz->off_max = off;
}

/* Fill tz from a whole TZif file; *why explains a failure. */
static int parse_tzif(const uint8_t *buf, size_t len, struct dia_tz *tz, const char **why)
{
    struct tzif_header h;
    size_t pos = 0;
    unsigned tsize = 4;

    *why = "not a TZif file";
    if (!read_header(buf, len, &h))
        return DIA_ERR_IO;
    if (h.version != 0 && h.version < '2')
        return DIA_ERR_IO;
    if (h.version != 0) { /* skip the 32-bit block: v2+ repeat it with 64-bit times */
        uint64_t skip = TZ_HEADER_LEN + data_len(&h, 4);
        *why = "truncated TZif file";
        if (skip > len || !read_header(buf + skip, len - skip, &h))
            return DIA_ERR_IO;
        pos = (size_t)skip;
        tsize = 8;
    }
    pos += TZ_HEADER_LEN;
    *why = "truncated TZif file";
    if (data_len(&h, tsize) > len - pos)
        return DIA_ERR_IO;
    *why = "inconsistent TZif counts";
    if (h.typecnt == 0 || h.typecnt > 256 || h.charcnt == 0 ||
        (h.isstdcnt != 0 && h.isstdcnt != h.typecnt) || (h.isutcnt != 0 && h.isutcnt != h.typecnt))
        return DIA_ERR_IO;
    if (h.leapcnt != 0) {
        *why = "zones with leap seconds (\"right/\") are not supported";
        return DIA_ERR_CONFIG;
    }

    const uint8_t *times = buf + pos;
    const uint8_t *idx = times + (size_t)h.timecnt * tsize;
    const uint8_t *types = idx + h.timecnt;
    int32_t type_off[256];

    *why = "invalid TZif time type";
    for (uint32_t i = 0; i < h.typecnt; i++) {
        const uint8_t *t = types + 6 * (size_t)i;
        int32_t off = be32s(t);
        if (off < TZ_UTOFF_MIN || off > TZ_UTOFF_MAX || t[4] > 1 || t[5] >= h.charcnt)
            return DIA_ERR_IO;
        type_off[i] = off;
        add_offset(tz, type_off[i]);
    }
    tz->first_off = type_off[0];

    tz->ntrans = h.timecnt;
    if (h.timecnt > 0) {
        tz->trans_at = malloc(h.timecnt * sizeof(*tz->trans_at));
        tz->trans_off = malloc(h.timecnt * sizeof(*tz->trans_off));
        if (!tz->trans_at || !tz->trans_off) {
            *why = "out of memory";
            return DIA_ERR_NOMEM;
        }
    }
    *why = "invalid TZif transition";
    for (uint32_t i = 0; i < h.timecnt; i++) {
        int64_t at = tsize == 8 ? be64s(times + 8 * (size_t)i) : be32s(times + 4 * (size_t)i);
        if ((i > 0 && at <= tz->trans_at[i - 1]) || idx[i] >= h.typecnt)
            return DIA_ERR_IO;
        tz->trans_at[i] = at;
        tz->trans_off[i] = type_off[idx[i]];
    }

    if (tsize == 4)
        return DIA_OK; /* version 1: no footer */
    /* The footer: "\n" TZ-string "\n" (RFC 8536 §3.3); an empty string is allowed. */
    pos += (size_t)data_len(&h, tsize);
    *why = "missing or invalid TZif footer";
    if (pos >= len || buf[pos] != '\n')
        return DIA_ERR_IO;
    const uint8_t *start = buf + pos + 1;
    const uint8_t *nl = memchr(start, '\n', len - pos - 1);
    size_t flen = nl ? (size_t)(nl - start) : 0;
    char footer[TZ_FOOTER_MAX + 1];
    if (!nl || flen > TZ_FOOTER_MAX || memchr(start, '\0', flen))
        return DIA_ERR_IO;
    memcpy(footer, start, flen);
    footer[flen] = '\0';
    if (flen > 0) {
        if (!parse_posix_tz(footer, &tz->footer))
            return DIA_ERR_IO;
        tz->has_footer = true;
        add_offset(tz, tz->footer.std_off);
        if (tz->footer.has_dst)
            add_offset(tz, tz->footer.dst_off);
    }
    return DIA_OK;
}

/* ---- loading --------------------------------------------------------------- */

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* Zone names come from configuration; keep them inside the zoneinfo tree. */
static bool zone_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > TZ_NAME_MAX || name[0] == '/' || strstr(name, ".."))
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '_' || c == '+' || c == '-'))
            return false;
    }
    return true;
}

/* Read a whole regular file of at most TZ_FILE_MAX bytes. */
static int slurp(const char *path, uint8_t **out, size_t *len, int *err_no)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint8_t *buf = NULL;
    struct stat st;
    size_t got = 0;

    *err_no = 0;
    if (fd < 0) {
        *err_no = errno;
        return (errno == ENOENT || errno == ENOTDIR) ? DIA_ERR_CONFIG : DIA_ERR_IO;
    }
    if (fstat(fd, &st) != 0) {
        *err_no = errno;
        close(fd);
        return DIA_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) { /* "Europe" is a directory, not a zone */
        *err_no = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        close(fd);
        return DIA_ERR_CONFIG;
    }
    if (st.st_size > TZ_FILE_MAX) {
        *err_no = EFBIG;
        close(fd);
        return DIA_ERR_IO;
    }
    buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (!buf) {
        close(fd);
        return DIA_ERR_NOMEM;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *err_no = errno;
            free(buf);
            close(fd);
            return DIA_ERR_IO;
        }
        if (r == 0) /* the file shrank under us: parse what is there */
            break;
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *len = got;
    return DIA_OK;
}

int dia_tz_load(const char *name, struct dia_tz **out, char *errbuf, size_t errlen)
{
    if (!out)
        return DIA_ERR_ARG;
    *out = NULL;
    if (!name || !zone_name_ok(name)) {
        set_err(errbuf, errlen, "invalid time zone name \"%s\"", name ? name : "(null)");
        return DIA_ERR_CONFIG;
    }
    struct dia_tz *tz = calloc(1, sizeof(*tz));
    if (!tz)
        return DIA_ERR_NOMEM;
    memcpy(tz->name, name, strlen(name) + 1);

    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    char path[PATH_MAX];
    uint8_t *buf = NULL;
    size_t len = 0;
    int err_no = 0, rc;
    const char *why = NULL;

    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        set_err(errbuf, errlen, "time zone path too long for \"%s\"", name);
        rc = DIA_ERR_CONFIG;
        goto error;
    }
    rc = slurp(path, &buf, &len, &err_no);
    if (rc == DIA_ERR_CONFIG && err_no == ENOENT && strcmp(name, "UTC") == 0) {
        /* No tzdata installed: UTC needs none. */
        add_offset(tz, 0);
        *out = tz;
        return DIA_OK;
    }
    if (rc != DIA_OK) {
        set_err(errbuf, errlen, "%s \"%s\" (%s): %s",
                rc == DIA_ERR_CONFIG ? "unknown time zone" : "cannot read time zone", name, path,
                err_no ? strerror(err_no) : "out of memory");
        goto error;
    }
    rc = parse_tzif(buf, len, tz, &why);
    free(buf);
    if (rc != DIA_OK) {
        set_err(errbuf, errlen, "time zone \"%s\" (%s): %s", name, path, why);
        goto error;
    }
    *out = tz;
    return DIA_OK;

error:
    dia_tz_free(tz);
    return rc;
}

int dia_tz_from_tzif(const char *name, const uint8_t *buf, size_t len, struct dia_tz **out,
                     char *errbuf, size_t errlen)
{
    if (!out || !name || strlen(name) >= sizeof((*out)->name))
        return DIA_ERR_ARG;
    *out = NULL;
    struct dia_tz *tz = calloc(1, sizeof(*tz));
    if (!tz)
        return DIA_ERR_NOMEM;
    memcpy(tz->name, name, strlen(name) + 1);
    const char *why = NULL;
    int rc = parse_tzif(buf, len, tz, &why);
    if (rc != DIA_OK) {
        set_err(errbuf, errlen, "time zone \"%s\": %s", name, why);
        dia_tz_free(tz);
        return rc;
    }
    *out = tz;
    return DIA_OK;
}

void dia_tz_free(struct dia_tz *tz)
{
    if (!tz)
        return;
    free(tz->trans_at);
    free(tz->trans_off);
    free(tz);
}

const char *dia_tz_name(const struct dia_tz *tz)
{
    return tz ? tz->name : "";
}

/* ---- text ------------------------------------------------------------------ */

/* Exactly n digits, no sign. */
static bool take_digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*s)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *s += n;
    *out = v;
    return true;
}

static bool take_char(const char **s, char c)
{
    if (**s != c)
        return false;
    (*s)++;
    return true;
}

/* "YYYY-MM-DD" */
static bool take_date(const char **s, struct dia_civil *c)
{
    return take_digits(s, 4, &c->year) && take_char(s, '-') && take_digits(s, 2, &c->month) &&
           take_char(s, '-') && take_digits(s, 2, &c->day);
}

/* "[T ]HH:MM:SS" */
static bool take_time(const char **s, struct dia_civil *c)
{
    if (**s != 'T' && **s != ' ')
        return false;
    (*s)++;
    return take_digits(s, 2, &c->hour) && take_char(s, ':') && take_digits(s, 2, &c->minute) &&
           take_char(s, ':') && take_digits(s, 2, &c->second);
}

int dia_civil_parse(const char *text, struct dia_civil *c)
{
    struct dia_civil v = {0};
    if (!text || !c || !take_date(&text, &v) || !take_time(&text, &v) || *text != '\0' ||
        !dia_civil_valid(&v))
        return DIA_ERR_ARG;
    *c = v;
    return DIA_OK;
}

static void format_ms(int64_t ms, const char *suffix, char *buf, size_t len)
{
    struct dia_civil c;
    int64_t s = ms / 1000, frac = ms % 1000;
    if (!buf || len == 0)
        return;
    if (frac < 0) {
        frac += 1000;
        s--;
    }
    dia_epoch_to_civil(s, &c);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03d%s", c.year, c.month, c.day, c.hour,
             c.minute, c.second, (int)frac, suffix);
}

void dia_format_utc_ms(int64_t utc_ms, char *buf, size_t len)
{
    format_ms(utc_ms, "Z", buf, len);
}

void dia_format_local_ms(int64_t utc_ms, int32_t offset_min, char *buf, size_t len)
{
    char suffix[16];
    int64_t a = offset_min < 0 ? -(int64_t)offset_min : offset_min;
    int64_t shift = (int64_t)offset_min * 60000;
    snprintf(suffix, sizeof(suffix), "%c%02d:%02d", offset_min < 0 ? '-' : '+', (int)(a / 60 % 100),
             (int)(a % 60));
    /* Saturate rather than overflow at the ends of the int64 range. */
    if (shift > 0 && utc_ms > INT64_MAX - shift)
        utc_ms = INT64_MAX - shift;
    if (shift < 0 && utc_ms < INT64_MIN - shift)
        utc_ms = INT64_MIN - shift;
    format_ms(utc_ms + shift, suffix, buf, len);
}

/* "[-]digits" as Unix milliseconds, refusing overflow. */
static bool parse_int_ms(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    s += neg;
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (limit - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return true;
}

/*
 * A date-time must carry "Z" or an offset: a naive local time has to go
 * through a zone (dia_tz_local_to_utc), never be guessed here.  Fractions of
 * any length are accepted and truncated to milliseconds.
 */
int dia_parse_time_ms(const char *text, int64_t *utc_ms)
{
    struct dia_civil c = {0};
    const char *s = text;
    int64_t ms = 0, off_s = 0;

    if (!text || !utc_ms)
        return DIA_ERR_ARG;
    if (*s != '\0' && strspn(s + (*s == '-'), "0123456789") == strlen(s + (*s == '-')))
        return parse_int_ms(s, utc_ms) ? DIA_OK : DIA_ERR_ARG;
    if (!take_date(&s, &c))
        return DIA_ERR_ARG;
    if (*s != '\0') {
        if (!take_time(&s, &c))
            return DIA_ERR_ARG;
        if (*s == '.') {
            int digits = 0;
            for (s++; *s >= '0' && *s <= '9'; s++, digits++)
                if (digits < 3)
                    ms = ms * 10 + (*s - '0');
            if (digits == 0)
                return DIA_ERR_ARG;
            for (; digits < 3; digits++)
                ms *= 10;
        }
        if (*s == 'Z') {
            s++;
        } else if (*s == '+' || *s == '-') {
            int sign = *s++ == '-' ? -1 : 1, oh, om;
            if (!take_digits(&s, 2, &oh) || !take_char(&s, ':') || !take_digits(&s, 2, &om) ||
                oh > 23 || om > 59)
                return DIA_ERR_ARG;
            off_s = sign * (oh * 3600 + om * 60);
        } else {
            return DIA_ERR_ARG;
        }
        if (*s != '\0')
            return DIA_ERR_ARG;
    }
    if (!dia_civil_valid(&c))
        return DIA_ERR_ARG;
    *utc_ms = (dia_civil_to_epoch(&c) - off_s) * 1000 + ms;
    return DIA_OK;
}
