/*
 * Time conversion for devices that keep naive local wall time (DESIGN §4).
 *
 * Medtronic pumps and Accu-Chek handsets record "2015-03-28 19:56:13" with no
 * offset.  Converting that to UTC needs the IANA zone the user lives in and a
 * decision for the two impossible cases a DST change creates:
 *   - the repeated hour at the end of DST (01:30 happens twice), and
 *   - the missing hour at its start (02:30 never happens).
 * The zone is read from the system's tzdata (TZif files under TZDIR or
 * /usr/share/zoneinfo), parsed here, so conversions are thread-safe and never
 * touch the process-wide TZ variable.
 */
#ifndef DIA_CORE_TZ_H
#define DIA_CORE_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A civil (calendar) date and time with no zone attached. */
struct dia_civil {
    int year;   /* e.g. 2024 */
    int month;  /* 1..12 */
    int day;    /* 1..31 */
    int hour;   /* 0..23 */
    int minute; /* 0..59 */
    int second; /* 0..59 (60 rejected) */
};

/* How to resolve a local time that occurs twice or never. */
enum dia_tz_policy {
    DIA_TZ_EARLIER = 1, /* repeated hour: the first occurrence (DST offset);
                           missing hour: read with the offset in force before
                           the change (the device had not changed yet) */
    DIA_TZ_LATER,       /* repeated hour: the second occurrence (standard offset);
                           missing hour: read with the offset after the change */
    DIA_TZ_NEAREST,     /* the candidate closest to hint_utc_s (e.g. the time of
                           the neighbouring record); ties go to EARLIER */
    DIA_TZ_REJECT,      /* fail with DIA_ERR_IMPLAUSIBLE when not unique */
};

/* Flags describing what dia_tz_local_to_utc found. */
#define DIA_TZ_AMBIGUOUS   0x1u /* the local time occurs twice */
#define DIA_TZ_NONEXISTENT 0x2u /* the local time never occurs */

struct dia_tz;

/* Load an IANA zone ("Europe/London", "UTC").  Returns DIA_OK, DIA_ERR_CONFIG
 * for an unknown name (message in errbuf), DIA_ERR_IO for
 * an unreadable or malformed file, DIA_ERR_NOMEM.  Names must match
 * [A-Za-z0-9/_+-]+ without ".." or a leading "/"; anything else, a directory
 * ("Europe") and leap-second zones ("right/…") are DIA_ERR_CONFIG too.
 * "UTC" works even when no tzdata is installed.  A loaded zone is immutable:
 * threads may share it freely. */
int dia_tz_load(const char *name, struct dia_tz **out, char *errbuf, size_t errlen);
/* The same from a TZif image already in memory (tests, fuzzing, embedded zones). */
int dia_tz_from_tzif(const char *name, const uint8_t *buf, size_t len, struct dia_tz **out,
                     char *errbuf, size_t errlen);
void dia_tz_free(struct dia_tz *tz);
const char *dia_tz_name(const struct dia_tz *tz);

/* UTC offset in seconds in force at a UTC instant.  DIA_ERR_ARG for instants
 * beyond ±2^50 s (about 35 million years). */
int dia_tz_offset_at(const struct dia_tz *tz, int64_t utc_s, int32_t *offset_s);

/* Naive local time → UTC seconds.  offset_s (may be NULL) receives the
 * offset used; flags (may be NULL) DIA_TZ_AMBIGUOUS / DIA_TZ_NONEXISTENT.
 * flags are set even when DIA_TZ_REJECT makes the call fail; utc_s and
 * offset_s are written only on success.  DIA_ERR_ARG for an invalid civil
 * time or policy.  For a missing time the offset reported is the one the
 * policy read it with (London 01:30 on 2024-03-31: EARLIER gives 01:30Z with
 * offset 0, LATER 00:30Z with offset +3600). */
int dia_tz_local_to_utc(const struct dia_tz *tz, const struct dia_civil *local,
                        enum dia_tz_policy policy, int64_t hint_utc_s, int64_t *utc_s,
                        int32_t *offset_s, unsigned *flags);

/* Civil-calendar helpers (proleptic Gregorian, no zone).  dia_civil_from_days
 * clamps to ±7.8e11 days (about ±2.1e9 years) so the year fits an int. */
int64_t dia_days_from_civil(int year, int month, int day);
void dia_civil_from_days(int64_t days, int *year, int *month, int *day);
int64_t dia_civil_to_epoch(const struct dia_civil *c); /* as if UTC */
void dia_epoch_to_civil(int64_t epoch_s, struct dia_civil *c);
bool dia_civil_valid(const struct dia_civil *c);

/* "2015-03-28T19:56:13" or "2015-03-28 19:56:13" → civil; DIA_OK or DIA_ERR_ARG. */
int dia_civil_parse(const char *text, struct dia_civil *c);

/* Unix ms → "2024-03-31T01:30:00.000Z" (buf ≥ 25 bytes). */
void dia_format_utc_ms(int64_t utc_ms, char *buf, size_t len);
/* Unix ms + offset minutes → "2024-03-31T02:30:00.000+01:00" (buf ≥ 30 bytes). */
void dia_format_local_ms(int64_t utc_ms, int32_t offset_min, char *buf, size_t len);
/* Parse "2024-03-31T01:30:00Z", "…+01:00", "…​.123Z", or a bare date "2024-03-31"
 * (midnight UTC), or an integer of Unix milliseconds.  DIA_OK or DIA_ERR_ARG.
 * A date-time without "Z" or an offset is refused: naive local times go
 * through dia_tz_local_to_utc.  A space may replace the "T"; fraction digits
 * beyond the third are truncated. */
int dia_parse_time_ms(const char *text, int64_t *utc_ms);

#endif
