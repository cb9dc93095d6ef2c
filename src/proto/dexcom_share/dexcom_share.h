/*
 * Dexcom Share web API: the pure parts (libc only; JSON handling with
 * jansson lives in src/source/dexcom_share_json.c).
 *
 * The Share servers ("ShareWebServices", spec §4) answer JSON.  The pieces
 * of that JSON that need care, and that dexpy got wrong (spec §3.3), are
 * decoded here so they can be tested and fuzzed on their own:
 *
 *   dates    "Date(1745081013817)", "Date(1745081013817-0400)" (2025) and
 *            the pre-2021 "/Date(1426292016000-0700)/" (spec §4.2): the
 *            digits are UTC milliseconds, the optional ±hhmm is the phone's
 *            UTC offset at that instant (it does not shift the instant).
 *   trends   a number 0–9 (before Nov 2021) or a name such as "Flat",
 *            "SingleDown", "NOT COMPUTABLE", "RATE_OUT_OF_RANGE", compared
 *            case-insensitively with spaces, underscores and dashes ignored
 *            (spec §4.2; dexpy's int("Flat") killed its poller, §3.3 #3).
 *   faults   every error is HTTP 500 with {"Code": …, "Message": …}; the
 *            Code decides what the client does (spec §4.3).
 *   UUIDs    account and session ids are JSON strings holding a UUID; the
 *            all-zero UUID that the legacy login returns for any password
 *            since May 2020 is a failure, never a session (spec §4.1, §3.3 #1).
 *   values   plausibility of glucose values and reading times.
 *
 * Return values follow core/err.h: DIA_OK, DIA_ERR_NOT_MINE (not this kind
 * of text at all), DIA_ERR_TRUNCATED, DIA_ERR_IMPLAUSIBLE (well-formed but
 * cannot be right), DIA_ERR_ARG.
 */
#ifndef DIA_PROTO_DEXCOM_SHARE_H
#define DIA_PROTO_DEXCOM_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- dates (spec §4.2) ---------------------------------------------------- */

struct dexcom_share_date {
    int64_t utc_ms;     /* Unix milliseconds, UTC */
    bool has_offset;    /* a ±hhmm suffix was present */
    int32_t offset_min; /* that suffix in minutes east of UTC (-0400 → -240); 0 if absent */
};

/*
 * Parse a Share date in either form: optional '/', "Date(", 1–15 digits,
 * optional [+-]hhmm, ')', optional '/' (the slashes must pair up).  len is
 * the text's length (no NUL needed).  DIA_ERR_NOT_MINE when it is not a
 * Share date at all; DIA_ERR_IMPLAUSIBLE for an offset beyond ±16 h or
 * minutes ≥ 60.
 */
int dexcom_share_date_parse(const char *text, size_t len, struct dexcom_share_date *out);

/* ---- trends (spec §4.2; numbering as enum dia_trend in core/record.h) ------ */

/* A trend name, any case, with spaces, '_' and '-' ignored.  A number sent
 * as a string ("4") is accepted too, since the field's type has changed once
 * already.  DIA_ERR_NOT_MINE for an unknown name. */
int dexcom_share_trend_from_name(const char *text, size_t len, int *trend);
/* A numeric trend: 0–9, else DIA_ERR_IMPLAUSIBLE. */
int dexcom_share_trend_from_number(long long number, int *trend);

/* ---- faults (spec §4.3) ---------------------------------------------------- */

enum dexcom_share_fault {
    DEXCOM_SHARE_FAULT_NONE = 0, /* no code (not a fault body) */
    DEXCOM_SHARE_FAULT_SESSION,  /* SessionIdNotFound, SessionNotValid: log in again once */
    DEXCOM_SHARE_FAULT_AUTH,     /* AccountPasswordInvalid, SSO_* authentication failures */
    DEXCOM_SHARE_FAULT_LOCKOUT,  /* SSO_AuthenticateMaxAttemptsExceeded: stop for hours */
    DEXCOM_SHARE_FAULT_ARGUMENT, /* InvalidArgument: the request or configuration is wrong */
    DEXCOM_SHARE_FAULT_OTHER,    /* a code we do not know: treated as transient */
};

/* Classify a fault's Code (and Message, which tells SSO_InternalError's
 * authentication failures from other internal errors).  Either may be NULL. */
enum dexcom_share_fault dexcom_share_fault_classify(const char *code, const char *message);
const char *dexcom_share_fault_name(enum dexcom_share_fault f); /* "session", "auth", … */

/* ---- UUIDs (spec §4.1) ----------------------------------------------------- */

#define DEXCOM_SHARE_UUID_LEN 36

/*
 * Validate a UUID (8-4-4-4-12 hex digits; any case) and copy it, lower-cased
 * and NUL-terminated, to out.  The all-zero UUID is DIA_ERR_IMPLAUSIBLE
 * (dexpy's fatal session, spec §3.3 #1); anything not shaped like a UUID is
 * DIA_ERR_NOT_MINE.
 */
int dexcom_share_uuid_parse(const char *text, size_t len, char out[DEXCOM_SHARE_UUID_LEN + 1]);

/* ---- plausibility ---------------------------------------------------------- */

/* The Share app shows 40–400 mg/dL and LOW/HIGH outside; Share and its
 * followers send 39 for LOW and 401 for HIGH (Nightscout conventions). */
#define DEXCOM_SHARE_MGDL_MIN 39
#define DEXCOM_SHARE_MGDL_MAX 401

/* DIA_OK for a glucose value a sensor can report, else DIA_ERR_IMPLAUSIBLE. */
int dexcom_share_value_check(long long mgdl);

/*
 * Share started in 2015 (spec §4.2's oldest example is March 2015).  A
 * reading is uploaded after it was taken (15–30 s later, spec §4.4), so a
 * WT ahead of now_ms only ever means that two clocks disagree: the phone's,
 * which stamps WT, and this machine's.  Both are normally set from the
 * network and agree within seconds; DEXCOM_SHARE_FUTURE_MS allows for a
 * clock that is still converging after boot, and is one reading interval,
 * so a reading accepted at the limit can move the polling rhythm by at
 * most one reading.  Anything further ahead (a phone on manual time, an
 * hour off after a DST change, a host that booted with an old clock) makes
 * the reading's time itself doubtful, and a wrong time is worse than a
 * missing reading: rejected, counted as implausible.  The reading is not
 * lost for good: the window is read again later, when the clocks agree.
 */
#define DEXCOM_SHARE_EPOCH_MIN_MS 1420070400000LL /* 2015-01-01T00:00:00Z */
#define DEXCOM_SHARE_FUTURE_MS    (5LL * 60 * 1000)
/* DIA_OK when EPOCH_MIN <= wt_ms <= now_ms + FUTURE_MS, else DIA_ERR_IMPLAUSIBLE. */
int dexcom_share_time_check(int64_t wt_ms, int64_t now_ms);

/* ---- requests -------------------------------------------------------------- */

/* The limits pydexcom and xDrip enforce for a read (spec §4.1). */
#define DEXCOM_SHARE_MAX_MINUTES 1440
#define DEXCOM_SHARE_MAX_COUNT   288

#endif
