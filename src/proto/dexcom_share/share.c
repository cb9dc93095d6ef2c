/*
 * Dexcom Share: dates, trends, faults, UUIDs and plausibility (see
 * dexcom_share.h).  Facts and their sources, from
 * shared/specs/dexcom-receiver-usb-and-share.md ("spec"):
 *
 *   - WT/ST are UTC epoch milliseconds inside "Date(…)"; DT is the same
 *     instant with the device's UTC offset appended as ±hhmm (spec §4.2).
 *   - Until late Nov 2021 the dates were wrapped as "/Date(…)/" and Trend
 *     was a number; since then Trend is a name (spec §4.2, bridge 62b7d2a).
 *   - Trend names and numbers: None 0, DoubleUp 1, SingleUp 2, FortyFiveUp 3,
 *     Flat 4, FortyFiveDown 5, SingleDown 6, DoubleDown 7, NotComputable 8,
 *     RateOutOfRange 9; the bridge also accepts "NOT COMPUTABLE" and
 *     "RATE OUT OF RANGE", xDrip's tests use "SINGLE_DOWN" (spec §4.2).
 *   - Fault codes and what to do about each (spec §4.3 table).
 *   - The legacy login returns the all-zero UUID for any credentials since
 *     about May 2020 (spec §4.1); dexpy polled with it forever (§3.3 #1).
 */
#include "proto/dexcom_share/dexcom_share.h"

#include <string.h>

#include "core/err.h"

/* ---- dates ----------------------------------------------------------------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int dexcom_share_date_parse(const char *text, size_t len, struct dexcom_share_date *out)
{
    if (!text || !out)
        return DIA_ERR_ARG;
    size_t i = 0;
    bool slash = len > 0 && text[0] == '/';
    if (slash)
        i++;
    if (len - i < 5 || memcmp(text + i, "Date(", 5) != 0)
        return DIA_ERR_NOT_MINE;
    i += 5;
    /* 15 digits reach the year 33658: enough, and no overflow in int64 */
    int64_t ms = 0;
    size_t digits = 0;
    while (i < len && is_digit(text[i])) {
        if (++digits > 15)
            return DIA_ERR_IMPLAUSIBLE;
        ms = ms * 10 + (text[i] - '0');
        i++;
    }
    if (digits == 0)
        return i < len ? DIA_ERR_NOT_MINE : DIA_ERR_TRUNCATED;
    bool has_offset = false;
    int32_t offset = 0;
    if (i < len && (text[i] == '+' || text[i] == '-')) {
        int sign = text[i] == '-' ? -1 : 1;
        i++;
        if (len - i < 4)
            return DIA_ERR_TRUNCATED;
        for (int k = 0; k < 4; k++) {
            if (!is_digit(text[i + (size_t)k]))
                return DIA_ERR_NOT_MINE;
        }
        int hh = (text[i] - '0') * 10 + (text[i + 1] - '0');
        int mm = (text[i + 2] - '0') * 10 + (text[i + 3] - '0');
        i += 4;
        if (mm >= 60 || hh * 60 + mm > 16 * 60)
            return DIA_ERR_IMPLAUSIBLE;
        has_offset = true;
        offset = sign * (hh * 60 + mm);
    }
    if (i >= len)
        return DIA_ERR_TRUNCATED;
    if (text[i] != ')')
        return DIA_ERR_NOT_MINE;
    i++;
    if (slash) {
        if (i >= len)
            return DIA_ERR_TRUNCATED;
        if (text[i] != '/')
            return DIA_ERR_NOT_MINE;
        i++;
    }
    if (i != len)
        return DIA_ERR_NOT_MINE;
    out->utc_ms = ms;
    out->has_offset = has_offset;
    out->offset_min = offset;
    return DIA_OK;
}

/* ---- trends ---------------------------------------------------------------- */

/* Normalised spellings (lower case, no separators), indexed by number. */
static const char *const trend_names[] = {
    "none",          "doubleup",   "singleup",   "fortyfiveup",   "flat",
    "fortyfivedown", "singledown", "doubledown", "notcomputable", "rateoutofrange",
};

int dexcom_share_trend_from_number(long long number, int *trend)
{
    if (!trend)
        return DIA_ERR_ARG;
    if (number < 0 || number > 9)
        return DIA_ERR_IMPLAUSIBLE;
    *trend = (int)number;
    return DIA_OK;
}

int dexcom_share_trend_from_name(const char *text, size_t len, int *trend)
{
    if (!text || !trend)
        return DIA_ERR_ARG;
    char norm[24];
    size_t n = 0;
    bool all_digits = true;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == ' ' || c == '_' || c == '-' || c == '\t')
            continue;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (n + 1 >= sizeof norm)
            return DIA_ERR_NOT_MINE;
        if (!is_digit(c))
            all_digits = false;
        norm[n++] = c;
    }
    norm[n] = '\0';
    if (n == 0)
        return DIA_ERR_NOT_MINE;
    if (all_digits)
        return n > 2 ? DIA_ERR_IMPLAUSIBLE
                     : dexcom_share_trend_from_number(
                           n == 1 ? norm[0] - '0' : (norm[0] - '0') * 10 + norm[1] - '0', trend);
    for (int t = 0; t < (int)(sizeof trend_names / sizeof trend_names[0]); t++) {
        if (strcmp(norm, trend_names[t]) == 0) {
            *trend = t;
            return DIA_OK;
        }
    }
    /* Nightscout's short form for 9 (its direction "RATE OUT OF RANGE" is
     * handled above); dexpy's own table used "OutOfRange" (spec §3.5). */
    if (strcmp(norm, "outofrange") == 0) {
        *trend = 9;
        return DIA_OK;
    }
    return DIA_ERR_NOT_MINE;
}

/* ---- faults ---------------------------------------------------------------- */

static bool contains(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

enum dexcom_share_fault dexcom_share_fault_classify(const char *code, const char *message)
{
    if (!code || !code[0])
        return DEXCOM_SHARE_FAULT_NONE;
    if (strcmp(code, "SessionIdNotFound") == 0 || strcmp(code, "SessionNotValid") == 0)
        return DEXCOM_SHARE_FAULT_SESSION;
    if (strcmp(code, "SSO_AuthenticateMaxAttemptsExceeded") == 0)
        return DEXCOM_SHARE_FAULT_LOCKOUT;
    if (strcmp(code, "AccountPasswordInvalid") == 0 ||
        strcmp(code, "SSO_AuthenticatePasswordInvalid") == 0 ||
        strcmp(code, "SSO_AuthenticateAccountNotFound") == 0)
        return DEXCOM_SHARE_FAULT_AUTH;
    /* "Cannot Authenticate by AccountName/AccountId" (pydexcom, spec §4.3) */
    if (strcmp(code, "SSO_InternalError") == 0)
        return contains(message, "Cannot Authenticate") ? DEXCOM_SHARE_FAULT_AUTH
                                                        : DEXCOM_SHARE_FAULT_OTHER;
    /* Any other SSO_Authenticate… spelling is an authentication failure of
     * some kind; counting it as one keeps us from hammering the account. */
    if (strncmp(code, "SSO_Authenticate", 16) == 0)
        return DEXCOM_SHARE_FAULT_AUTH;
    if (strcmp(code, "InvalidArgument") == 0)
        return DEXCOM_SHARE_FAULT_ARGUMENT;
    return DEXCOM_SHARE_FAULT_OTHER;
}

const char *dexcom_share_fault_name(enum dexcom_share_fault f)
{
    switch (f) {
    case DEXCOM_SHARE_FAULT_NONE:
        return "none";
    case DEXCOM_SHARE_FAULT_SESSION:
        return "session";
    case DEXCOM_SHARE_FAULT_AUTH:
        return "auth";
    case DEXCOM_SHARE_FAULT_LOCKOUT:
        return "lockout";
    case DEXCOM_SHARE_FAULT_ARGUMENT:
        return "argument";
    case DEXCOM_SHARE_FAULT_OTHER:
        return "other";
    }
    return "other";
}

/* ---- UUIDs ----------------------------------------------------------------- */

static int hex_lower(char c)
{
    if (is_digit(c) || (c >= 'a' && c <= 'f'))
        return c;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 'a';
    return -1;
}

int dexcom_share_uuid_parse(const char *text, size_t len, char out[DEXCOM_SHARE_UUID_LEN + 1])
{
    if (!text || !out)
        return DIA_ERR_ARG;
    if (len != DEXCOM_SHARE_UUID_LEN)
        return len < DEXCOM_SHARE_UUID_LEN && len > 0 ? DIA_ERR_TRUNCATED : DIA_ERR_NOT_MINE;
    char tmp[DEXCOM_SHARE_UUID_LEN + 1];
    bool all_zero = true;
    for (size_t i = 0; i < DEXCOM_SHARE_UUID_LEN; i++) {
        bool dash_here = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash_here) {
            if (text[i] != '-')
                return DIA_ERR_NOT_MINE;
            tmp[i] = '-';
            continue;
        }
        int c = hex_lower(text[i]);
        if (c < 0)
            return DIA_ERR_NOT_MINE;
        if (c != '0')
            all_zero = false;
        tmp[i] = (char)c;
    }
    tmp[DEXCOM_SHARE_UUID_LEN] = '\0';
    if (all_zero)
        return DIA_ERR_IMPLAUSIBLE;
    memcpy(out, tmp, sizeof tmp);
    return DIA_OK;
}

/* ---- plausibility ---------------------------------------------------------- */

int dexcom_share_value_check(long long mgdl)
{
    return mgdl >= DEXCOM_SHARE_MGDL_MIN && mgdl <= DEXCOM_SHARE_MGDL_MAX ? DIA_OK
                                                                          : DIA_ERR_IMPLAUSIBLE;
}

int dexcom_share_time_check(int64_t wt_ms, int64_t now_ms)
{
    if (wt_ms < DEXCOM_SHARE_EPOCH_MIN_MS || wt_ms > now_ms + DEXCOM_SHARE_FUTURE_MS)
        return DIA_ERR_IMPLAUSIBLE;
    return DIA_OK;
}
