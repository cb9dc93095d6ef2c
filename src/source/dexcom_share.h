/*
 * Dexcom Share: the JSON side of the protocol (jansson), shared by the
 * dexcom-share source (dexcom_share.c), its unit tests and its fuzz target.
 * The pure pieces (dates, trends, fault codes, UUIDs) are in
 * proto/dexcom_share; this layer walks the JSON documents the server sends
 * (shared/specs/dexcom-receiver-usb-and-share.md §4.1–4.3) and applies them.
 */
#ifndef DIA_SOURCE_DEXCOM_SHARE_H
#define DIA_SOURCE_DEXCOM_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/dexcom_share/dexcom_share.h"

/* One element of a ReadPublisherLatestGlucoseValues answer (spec §4.2). */
struct dexcom_share_reading {
    int64_t wt_ms;      /* WT: the reading's time, UTC ms (what we publish) */
    int64_t st_ms;      /* ST, or INT64_MIN when absent */
    int64_t dt_ms;      /* DT's instant, or INT64_MIN when absent */
    bool has_offset;    /* DT carried a ±hhmm */
    int32_t offset_min; /* that offset, minutes east of UTC */
    int32_t mgdl;
    int32_t trend;    /* enum dia_trend, or DIA_ABSENT when the reading had none */
    char dt_text[40]; /* DT exactly as sent (or WT when DT is absent) */
};

struct dexcom_share_parse_stats {
    size_t ok;          /* readings accepted */
    size_t malformed;   /* elements without a usable WT / Value / Trend */
    size_t implausible; /* well-formed, but a value or time that cannot be right */
};

/*
 * Parse a readings body: a JSON array, newest first.  Good readings go to
 * out[0..max) (*n of them; more than max are counted malformed); bad
 * elements are skipped and counted in st, and the first problem is
 * described in why (a redacted snippet, never a secret).  now_ms bounds
 * reading times (at most DEXCOM_SHARE_FUTURE_MS, 5 minutes, ahead of it).  Returns DIA_OK, or
 * DIA_ERR_NOT_MINE when the body is not a JSON array at all.
 */
int dexcom_share_parse_readings(const char *body, size_t len, int64_t now_ms,
                                struct dexcom_share_reading *out, size_t max, size_t *n,
                                struct dexcom_share_parse_stats *st, char *why, size_t whylen);

/* Parse one reading object's JSON text (tests, fuzzing). */
int dexcom_share_parse_reading_text(const char *text, size_t len, int64_t now_ms,
                                    struct dexcom_share_reading *out, char *why, size_t whylen);

/*
 * Parse the body of AuthenticatePublisherAccount / LoginPublisherAccountById:
 * a JSON string holding a UUID.  DIA_ERR_IMPLAUSIBLE for the all-zero UUID,
 * DIA_ERR_NOT_MINE for anything else that is not a UUID string.
 */
int dexcom_share_parse_uuid_body(const char *body, size_t len, char out[DEXCOM_SHARE_UUID_LEN + 1]);

/* A fault body: {"Code","Message","SubCode","TypeName"} (spec §4.3). */
struct dexcom_share_fault_info {
    enum dexcom_share_fault kind;
    char code[64];
    char message[160]; /* redacted: ids inside it are replaced */
};

/* DIA_OK when the body is a JSON object with a string Code; else
 * DIA_ERR_NOT_MINE (kind = DEXCOM_SHARE_FAULT_NONE). */
int dexcom_share_parse_fault(const char *body, size_t len, struct dexcom_share_fault_info *f);

/*
 * A short printable excerpt of a server reply for logs: control characters
 * become '?', anything shaped like an id or token (a run of 16 or more hex
 * digits and dashes) becomes "<id>", at most outlen - 1 bytes.
 */
void dexcom_share_snippet(const char *body, size_t len, char *out, size_t outlen);

#endif
