/*
 * Record model: initialisation, keys, validation, names, JSON form, batches.
 *
 * The JSON form is the journal's payload and what sinks and `export` read,
 * so it is a stable interface documented in docs/DATA_FORMAT.md.  Absent
 * fields (DIA_ABSENT, NAN, empty strings) are left out rather than written
 * as null: consumers can test for presence.
 */
#include "core/record.h"

#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/tz.h"

static const char *const kind_names[] = {
    [DIA_KIND_GLUCOSE] = "glucose", [DIA_KIND_METER] = "meter",
    [DIA_KIND_BOLUS] = "bolus",     [DIA_KIND_BASAL] = "basal",
    [DIA_KIND_CARBS] = "carbs",     [DIA_KIND_EVENT] = "event",
    [DIA_KIND_STATUS] = "status",   [DIA_KIND_CALIBRATION] = "calibration",
};

static const char *const origin_names[] = {
    [DIA_ORIGIN_DEVICE] = "device",
    [DIA_ORIGIN_CLOUD] = "cloud",
    [DIA_ORIGIN_IMPORTED] = "imported",
};

/* Nightscout's direction names (cgm-remote-monitor lib/plugins/direction.js). */
static const char *const trend_names[] = {
    "NONE",          "DoubleUp",   "SingleUp",   "FortyFiveUp",    "Flat",
    "FortyFiveDown", "SingleDown", "DoubleDown", "NOT COMPUTABLE", "RATE OUT OF RANGE",
};

static const char *const event_names[] = {
    [DIA_EVENT_SENSOR_START] = "sensor_start",
    [DIA_EVENT_SENSOR_STOP] = "sensor_stop",
    [DIA_EVENT_SENSOR_INSERTION] = "sensor_insertion",
    [DIA_EVENT_SENSOR_CONDITION] = "sensor_condition",
    [DIA_EVENT_SITE_CHANGE] = "site_change",
    [DIA_EVENT_REWIND] = "rewind",
    [DIA_EVENT_PRIME] = "prime",
    [DIA_EVENT_ALARM] = "alarm",
    [DIA_EVENT_BATTERY_CHANGE] = "battery_change",
    [DIA_EVENT_EXERCISE] = "exercise",
    [DIA_EVENT_HEALTH] = "health",
    [DIA_EVENT_TIME_CHANGE] = "time_change",
    [DIA_EVENT_NOTE] = "note",
};

static const char *const bolus_names[] = {
    [DIA_BOLUS_NORMAL] = "normal",
    [DIA_BOLUS_SQUARE] = "square",
    [DIA_BOLUS_DUAL] = "dual",
};

static const char *const basal_names[] = {
    [DIA_BASAL_SCHEDULED] = "scheduled",
    [DIA_BASAL_TEMP] = "temp",
    [DIA_BASAL_SUSPEND] = "suspend",
    [DIA_BASAL_RESUME] = "resume",
};

#define NAME_AT(table, i)                                                                          \
    (((i) >= 0 && (size_t)(i) < sizeof(table) / sizeof(table[0]) && table[i]) ? table[i] : NULL)

const char *dia_kind_name(enum dia_kind kind)
{
    const char *n = NAME_AT(kind_names, (int)kind);
    return n ? n : "unknown";
}

static int name_index(const char *const *table, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++) {
        if (table[i] && strcmp(table[i], name) == 0)
            return (int)i;
    }
    return -1;
}
#define NAME_INDEX(table, name) name_index(table, sizeof(table) / sizeof(table[0]), name)

int dia_kind_parse(const char *name)
{
    return NAME_INDEX(kind_names, name);
}

const char *dia_origin_name(enum dia_origin origin)
{
    const char *n = NAME_AT(origin_names, (int)origin);
    return n ? n : "unknown";
}

const char *dia_trend_name(int trend)
{
    const char *n = NAME_AT(trend_names, trend);
    return n ? n : "NONE";
}

const char *dia_event_type_name(int type)
{
    const char *n = NAME_AT(event_names, type);
    return n ? n : "unknown";
}

const char *dia_bolus_type_name(int type)
{
    const char *n = NAME_AT(bolus_names, type);
    return n ? n : "unknown";
}

const char *dia_basal_type_name(int type)
{
    const char *n = NAME_AT(basal_names, type);
    return n ? n : "unknown";
}

void dia_record_init(struct dia_record *r, enum dia_kind kind)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->origin = DIA_ORIGIN_DEVICE;
    r->utc_offset_min = DIA_ABSENT;
    switch (kind) {
    case DIA_KIND_GLUCOSE: {
        struct dia_glucose *g = &r->u.glucose;
        g->mgdl = g->trend = g->rate_x10 = g->noise = DIA_ABSENT;
        g->filtered = g->unfiltered = g->rssi = DIA_ABSENT;
        break;
    }
    case DIA_KIND_METER:
        r->u.meter.mgdl = DIA_ABSENT;
        break;
    case DIA_KIND_BOLUS: {
        struct dia_bolus *b = &r->u.bolus;
        b->type = b->programmed_mu = b->delivered_mu = b->extended_mu = DIA_ABSENT;
        b->duration_s = b->wizard_carbs_dg = b->wizard_bg_mgdl = DIA_ABSENT;
        b->wizard_target_low_mgdl = b->wizard_target_high_mgdl = DIA_ABSENT;
        b->wizard_carb_ratio_dg = b->wizard_isf_mgdl = b->wizard_iob_mu = DIA_ABSENT;
        b->wizard_food_mu = b->wizard_correction_mu = DIA_ABSENT;
        break;
    }
    case DIA_KIND_BASAL: {
        struct dia_basal *b = &r->u.basal;
        b->type = b->rate_mu_h = b->percent = b->duration_s = DIA_ABSENT;
        break;
    }
    case DIA_KIND_CARBS:
        r->u.carbs.carbs_dg = DIA_ABSENT;
        break;
    case DIA_KIND_EVENT:
        r->u.event.type = r->u.event.code = DIA_ABSENT;
        break;
    case DIA_KIND_STATUS: {
        struct dia_status *s = &r->u.status;
        s->battery_pct = s->battery_mv = s->reservoir_mu = s->signal = DIA_ABSENT;
        break;
    }
    case DIA_KIND_CALIBRATION:
        r->u.calibration.slope = r->u.calibration.intercept = NAN;
        r->u.calibration.scale = NAN;
        break;
    }
}

/*
 * record_key = first 128 bits of SHA-256 over a versioned, NUL-separated
 * tuple (driver, device_id, kind, identity).  The separators make the
 * encoding unambiguous ("ab"+"c" differs from "a"+"bc"); the version tag
 * lets a future scheme coexist.  128 bits keep accidental collisions out of
 * reach for any journal a person could fill.
 */
void dia_record_set_key(struct dia_record *r, const char *identity_fmt, ...)
{
    char identity[256];
    va_list ap;
    va_start(ap, identity_fmt);
    vsnprintf(identity, sizeof identity, identity_fmt, ap);
    va_end(ap);

    static const char tag[] = "diabridge-record-key-v1";
    const char *parts[] = {tag, r->driver, r->device_id, dia_kind_name(r->kind), identity};
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        /* Without a key the journal refuses the record: nothing wrong is stored. */
        r->key[0] = '\0';
        EVP_MD_CTX_free(ctx);
        return;
    }
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]) + 1); /* include the NUL */
    EVP_DigestFinal_ex(ctx, digest, &dlen);
    EVP_MD_CTX_free(ctx);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < DIA_KEY_HEX / 2; i++) {
        r->key[2 * i] = hex[digest[i] >> 4];
        r->key[2 * i + 1] = hex[digest[i] & 15];
    }
    r->key[DIA_KEY_HEX] = '\0';
}

static int why(char *buf, size_t len, const char *text)
{
    if (buf && len)
        snprintf(buf, len, "%s", text);
    return DIA_ERR_IMPLAUSIBLE;
}

static bool in_range_or_absent(int32_t v, int32_t lo, int32_t hi)
{
    return v == DIA_ABSENT || (v >= lo && v <= hi);
}

int dia_record_validate(const struct dia_record *r, char *whybuf, size_t len)
{
    if (r->kind < DIA_KIND_GLUCOSE || r->kind > DIA_KIND_MAX)
        return why(whybuf, len, "unknown record kind");
    if (strlen(r->key) != DIA_KEY_HEX)
        return why(whybuf, len, "record_key is not set");
    if (!r->driver[0])
        return why(whybuf, len, "driver is not set");
    /* 2000-01-01 .. 2100-01-01: anything else is a clock or decoding fault */
    if (r->t_utc_ms < 946684800000LL || r->t_utc_ms >= 4102444800000LL)
        return why(whybuf, len, "time is outside 2000..2099");
    if (!in_range_or_absent(r->utc_offset_min, -16 * 60, 16 * 60))
        return why(whybuf, len, "UTC offset beyond ±16 h");
    switch (r->kind) {
    case DIA_KIND_GLUCOSE: {
        const struct dia_glucose *g = &r->u.glucose;
        /* Dexcom reports 40..400 (39 = LOW, 401 = HIGH); other CGMs stay within. */
        if (g->mgdl == DIA_ABSENT || g->mgdl < 20 || g->mgdl > 600)
            return why(whybuf, len, "glucose outside 20..600 mg/dL");
        if (!in_range_or_absent(g->trend, 0, DIA_TREND_MAX))
            return why(whybuf, len, "unknown trend code");
        break;
    }
    case DIA_KIND_METER:
        if (r->u.meter.mgdl == DIA_ABSENT || r->u.meter.mgdl < 10 || r->u.meter.mgdl > 700)
            return why(whybuf, len, "meter value outside 10..700 mg/dL");
        break;
    case DIA_KIND_BOLUS: {
        const struct dia_bolus *b = &r->u.bolus;
        if (b->programmed_mu == DIA_ABSENT && b->delivered_mu == DIA_ABSENT)
            return why(whybuf, len, "bolus without an amount");
        if (!in_range_or_absent(b->programmed_mu, 0, 100000) ||
            !in_range_or_absent(b->delivered_mu, 0, 100000))
            return why(whybuf, len, "bolus outside 0..100 U");
        break;
    }
    case DIA_KIND_BASAL:
        if (!in_range_or_absent(r->u.basal.rate_mu_h, 0, 100000))
            return why(whybuf, len, "basal rate outside 0..100 U/h");
        break;
    case DIA_KIND_CARBS:
        if (r->u.carbs.carbs_dg == DIA_ABSENT || r->u.carbs.carbs_dg < 0 ||
            r->u.carbs.carbs_dg > 10000)
            return why(whybuf, len, "carbohydrate outside 0..1000 g");
        break;
    case DIA_KIND_EVENT:
        if (!in_range_or_absent(r->u.event.type, 1, DIA_EVENT_MAX))
            return why(whybuf, len, "unknown event type");
        break;
    case DIA_KIND_STATUS:
    case DIA_KIND_CALIBRATION:
        break;
    }
    return DIA_OK;
}

/* ---- JSON ---------------------------------------------------------------- */

static int put_int(json_t *o, const char *k, int32_t v)
{
    return v == DIA_ABSENT ? 0 : json_object_set_new(o, k, json_integer(v));
}

static int put_str(json_t *o, const char *k, const char *v)
{
    return (!v || !v[0]) ? 0 : json_object_set_new(o, k, json_string(v));
}

static int put_real(json_t *o, const char *k, double v)
{
    return isnan(v) ? 0 : json_object_set_new(o, k, json_real(v));
}

static int put_flag(json_t *o, const char *k, bool v)
{
    return v ? json_object_set_new(o, k, json_true()) : 0;
}

json_t *dia_record_to_json(const struct dia_record *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    char when[40];
    dia_format_utc_ms(r->t_utc_ms, when, sizeof when);
    int rc = 0;
    rc |= json_object_set_new(o, "kind", json_string(dia_kind_name(r->kind)));
    rc |= json_object_set_new(o, "record_key", json_string(r->key));
    if (r->seq > 0)
        rc |= json_object_set_new(o, "seq", json_integer(r->seq));
    rc |= json_object_set_new(o, "t_utc_ms", json_integer(r->t_utc_ms));
    rc |= json_object_set_new(o, "time", json_string(when));
    rc |= put_str(o, "device_time", r->device_time);
    rc |= put_int(o, "utc_offset_min", r->utc_offset_min);
    if (r->received_ms > 0)
        rc |= json_object_set_new(o, "received_ms", json_integer(r->received_ms));
    rc |= put_str(o, "driver", r->driver);
    rc |= put_str(o, "device_id", r->device_id);
    rc |= json_object_set_new(o, "origin", json_string(dia_origin_name(r->origin)));
    rc |= put_str(o, "sensor", r->sensor);

    switch (r->kind) {
    case DIA_KIND_GLUCOSE: {
        const struct dia_glucose *g = &r->u.glucose;
        rc |= put_int(o, "mgdl", g->mgdl);
        rc |= put_int(o, "trend", g->trend);
        if (g->trend != DIA_ABSENT)
            rc |= put_str(o, "direction", dia_trend_name(g->trend));
        rc |= put_int(o, "rate_x10", g->rate_x10);
        rc |= put_int(o, "noise", g->noise);
        rc |= put_int(o, "filtered", g->filtered);
        rc |= put_int(o, "unfiltered", g->unfiltered);
        rc |= put_int(o, "rssi", g->rssi);
        rc |= put_flag(o, "backfilled", g->flags & DIA_GLUCOSE_BACKFILLED);
        rc |= put_flag(o, "display_only", g->flags & DIA_GLUCOSE_DISPLAY_ONLY);
        rc |= put_flag(o, "calibrated", g->flags & DIA_GLUCOSE_CALIBRATED);
        break;
    }
    case DIA_KIND_METER:
        rc |= put_int(o, "mgdl", r->u.meter.mgdl);
        rc |= put_flag(o, "calibration", r->u.meter.flags & DIA_METER_CALIBRATION);
        rc |= put_str(o, "meter_serial", r->u.meter.meter_serial);
        break;
    case DIA_KIND_BOLUS: {
        const struct dia_bolus *b = &r->u.bolus;
        if (b->type != DIA_ABSENT)
            rc |= put_str(o, "bolus_type", dia_bolus_type_name(b->type));
        rc |= put_int(o, "programmed_mu", b->programmed_mu);
        rc |= put_int(o, "delivered_mu", b->delivered_mu);
        rc |= put_int(o, "extended_mu", b->extended_mu);
        rc |= put_int(o, "duration_s", b->duration_s);
        if (b->has_wizard) {
            json_t *w = json_object();
            if (!w) {
                rc = -1;
                break;
            }
            put_int(w, "carbs_dg", b->wizard_carbs_dg);
            put_int(w, "bg_mgdl", b->wizard_bg_mgdl);
            put_int(w, "target_low_mgdl", b->wizard_target_low_mgdl);
            put_int(w, "target_high_mgdl", b->wizard_target_high_mgdl);
            put_int(w, "carb_ratio_dg", b->wizard_carb_ratio_dg);
            put_int(w, "isf_mgdl", b->wizard_isf_mgdl);
            put_int(w, "iob_mu", b->wizard_iob_mu);
            put_int(w, "food_mu", b->wizard_food_mu);
            put_int(w, "correction_mu", b->wizard_correction_mu);
            rc |= json_object_set_new(o, "wizard", w);
        }
        break;
    }
    case DIA_KIND_BASAL: {
        const struct dia_basal *b = &r->u.basal;
        if (b->type != DIA_ABSENT)
            rc |= put_str(o, "basal_type", dia_basal_type_name(b->type));
        rc |= put_int(o, "rate_mu_h", b->rate_mu_h);
        rc |= put_int(o, "percent", b->percent);
        rc |= put_int(o, "duration_s", b->duration_s);
        break;
    }
    case DIA_KIND_CARBS:
        rc |= put_int(o, "carbs_dg", r->u.carbs.carbs_dg);
        break;
    case DIA_KIND_EVENT:
        if (r->u.event.type != DIA_ABSENT)
            rc |= put_str(o, "event_type", dia_event_type_name(r->u.event.type));
        rc |= put_int(o, "code", r->u.event.code);
        rc |= put_str(o, "text", r->u.event.text);
        break;
    case DIA_KIND_STATUS: {
        const struct dia_status *s = &r->u.status;
        rc |= put_int(o, "battery_pct", s->battery_pct);
        rc |= put_int(o, "battery_mv", s->battery_mv);
        rc |= put_int(o, "reservoir_mu", s->reservoir_mu);
        rc |= put_int(o, "signal", s->signal);
        rc |= put_str(o, "state", s->state);
        rc |= put_str(o, "firmware", s->firmware);
        rc |= put_str(o, "transmitter", s->transmitter);
        break;
    }
    case DIA_KIND_CALIBRATION:
        rc |= put_real(o, "slope", r->u.calibration.slope);
        rc |= put_real(o, "intercept", r->u.calibration.intercept);
        rc |= put_real(o, "scale", r->u.calibration.scale);
        break;
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void get_int(const json_t *o, const char *k, int32_t *dst)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x > INT32_MIN && x <= INT32_MAX)
            *dst = (int32_t)x;
    }
}

static void get_str(const json_t *o, const char *k, char *dst, size_t len)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_string(v))
        snprintf(dst, len, "%s", json_string_value(v));
}

static void get_real(const json_t *o, const char *k, double *dst)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_number(v))
        *dst = json_number_value(v);
}

static bool get_flag(const json_t *o, const char *k)
{
    return json_is_true(json_object_get(o, k));
}

static int get_named(const json_t *o, const char *k, const char *const *table, size_t count)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_string(v))
        return DIA_ABSENT;
    int i = name_index(table, count, json_string_value(v));
    return i < 0 ? DIA_ABSENT : i;
}
#define GET_NAMED(o, k, table) get_named(o, k, table, sizeof(table) / sizeof(table[0]))

int dia_record_from_json(const json_t *o, struct dia_record *r)
{
    if (!json_is_object(o))
        return DIA_ERR_ARG;
    const json_t *kind = json_object_get(o, "kind");
    int k = json_is_string(kind) ? dia_kind_parse(json_string_value(kind)) : -1;
    if (k < DIA_KIND_GLUCOSE)
        return DIA_ERR_UNSUPPORTED;
    dia_record_init(r, (enum dia_kind)k);
    get_str(o, "record_key", r->key, sizeof r->key);
    const json_t *v = json_object_get(o, "t_utc_ms");
    if (!json_is_integer(v))
        return DIA_ERR_TRUNCATED;
    r->t_utc_ms = json_integer_value(v);
    if (json_is_integer(v = json_object_get(o, "seq")))
        r->seq = json_integer_value(v);
    if (json_is_integer(v = json_object_get(o, "received_ms")))
        r->received_ms = json_integer_value(v);
    get_str(o, "device_time", r->device_time, sizeof r->device_time);
    get_int(o, "utc_offset_min", &r->utc_offset_min);
    get_str(o, "driver", r->driver, sizeof r->driver);
    get_str(o, "device_id", r->device_id, sizeof r->device_id);
    get_str(o, "sensor", r->sensor, sizeof r->sensor);
    int origin = GET_NAMED(o, "origin", origin_names);
    r->origin = origin == DIA_ABSENT ? DIA_ORIGIN_DEVICE : (enum dia_origin)origin;

    switch (r->kind) {
    case DIA_KIND_GLUCOSE: {
        struct dia_glucose *g = &r->u.glucose;
        get_int(o, "mgdl", &g->mgdl);
        get_int(o, "trend", &g->trend);
        get_int(o, "rate_x10", &g->rate_x10);
        get_int(o, "noise", &g->noise);
        get_int(o, "filtered", &g->filtered);
        get_int(o, "unfiltered", &g->unfiltered);
        get_int(o, "rssi", &g->rssi);
        g->flags = (get_flag(o, "backfilled") ? DIA_GLUCOSE_BACKFILLED : 0) |
                   (get_flag(o, "display_only") ? DIA_GLUCOSE_DISPLAY_ONLY : 0) |
                   (get_flag(o, "calibrated") ? DIA_GLUCOSE_CALIBRATED : 0);
        break;
    }
    case DIA_KIND_METER:
        get_int(o, "mgdl", &r->u.meter.mgdl);
        r->u.meter.flags = get_flag(o, "calibration") ? DIA_METER_CALIBRATION : 0;
        get_str(o, "meter_serial", r->u.meter.meter_serial, sizeof r->u.meter.meter_serial);
        break;
    case DIA_KIND_BOLUS: {
        struct dia_bolus *b = &r->u.bolus;
        b->type = GET_NAMED(o, "bolus_type", bolus_names);
        get_int(o, "programmed_mu", &b->programmed_mu);
        get_int(o, "delivered_mu", &b->delivered_mu);
        get_int(o, "extended_mu", &b->extended_mu);
        get_int(o, "duration_s", &b->duration_s);
        const json_t *w = json_object_get(o, "wizard");
        if (json_is_object(w)) {
            b->has_wizard = true;
            get_int(w, "carbs_dg", &b->wizard_carbs_dg);
            get_int(w, "bg_mgdl", &b->wizard_bg_mgdl);
            get_int(w, "target_low_mgdl", &b->wizard_target_low_mgdl);
            get_int(w, "target_high_mgdl", &b->wizard_target_high_mgdl);
            get_int(w, "carb_ratio_dg", &b->wizard_carb_ratio_dg);
            get_int(w, "isf_mgdl", &b->wizard_isf_mgdl);
            get_int(w, "iob_mu", &b->wizard_iob_mu);
            get_int(w, "food_mu", &b->wizard_food_mu);
            get_int(w, "correction_mu", &b->wizard_correction_mu);
        }
        break;
    }
    case DIA_KIND_BASAL: {
        struct dia_basal *b = &r->u.basal;
        b->type = GET_NAMED(o, "basal_type", basal_names);
        get_int(o, "rate_mu_h", &b->rate_mu_h);
        get_int(o, "percent", &b->percent);
        get_int(o, "duration_s", &b->duration_s);
        break;
    }
    case DIA_KIND_CARBS:
        get_int(o, "carbs_dg", &r->u.carbs.carbs_dg);
        break;
    case DIA_KIND_EVENT:
        r->u.event.type = GET_NAMED(o, "event_type", event_names);
        get_int(o, "code", &r->u.event.code);
        get_str(o, "text", r->u.event.text, sizeof r->u.event.text);
        break;
    case DIA_KIND_STATUS: {
        struct dia_status *s = &r->u.status;
        get_int(o, "battery_pct", &s->battery_pct);
        get_int(o, "battery_mv", &s->battery_mv);
        get_int(o, "reservoir_mu", &s->reservoir_mu);
        get_int(o, "signal", &s->signal);
        get_str(o, "state", s->state, sizeof s->state);
        get_str(o, "firmware", s->firmware, sizeof s->firmware);
        get_str(o, "transmitter", s->transmitter, sizeof s->transmitter);
        break;
    }
    case DIA_KIND_CALIBRATION:
        get_real(o, "slope", &r->u.calibration.slope);
        get_real(o, "intercept", &r->u.calibration.intercept);
        get_real(o, "scale", &r->u.calibration.scale);
        break;
    }
    return DIA_OK;
}

char *dia_record_to_json_text(const struct dia_record *r)
{
    json_t *o = dia_record_to_json(r);
    if (!o)
        return NULL;
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

int dia_record_from_json_text(const char *text, struct dia_record *r)
{
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    if (!o)
        return DIA_ERR_TRUNCATED;
    int rc = dia_record_from_json(o, r);
    json_decref(o);
    return rc;
}

/* ---- batches ------------------------------------------------------------- */

void dia_batch_init(struct dia_batch *b)
{
    memset(b, 0, sizeof *b);
}

void dia_batch_clear(struct dia_batch *b)
{
    for (size_t i = 0; i < b->nstate; i++) {
        free(b->state[i].key);
        free(b->state[i].value);
    }
    b->n = 0;
    b->nstate = 0;
}

void dia_batch_free(struct dia_batch *b)
{
    dia_batch_clear(b);
    free(b->recs);
    free(b->state);
    dia_batch_init(b);
}

struct dia_record *dia_batch_add(struct dia_batch *b, enum dia_kind kind)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct dia_record *recs = realloc(b->recs, cap * sizeof *recs);
        if (!recs)
            return NULL;
        b->recs = recs;
        b->cap = cap;
    }
    struct dia_record *r = &b->recs[b->n++];
    dia_record_init(r, kind);
    return r;
}

void dia_batch_drop_last(struct dia_batch *b)
{
    if (b->n > 0)
        b->n--;
}

int dia_batch_set_state(struct dia_batch *b, const char *key, const char *value)
{
    for (size_t i = 0; i < b->nstate; i++) {
        if (strcmp(b->state[i].key, key) == 0) {
            char *v = strdup(value);
            if (!v)
                return DIA_ERR_NOMEM;
            free(b->state[i].value);
            b->state[i].value = v;
            return DIA_OK;
        }
    }
    if (b->nstate == b->capstate) {
        size_t cap = b->capstate ? b->capstate * 2 : 8;
        struct dia_state_update *s = realloc(b->state, cap * sizeof *s);
        if (!s)
            return DIA_ERR_NOMEM;
        b->state = s;
        b->capstate = cap;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return DIA_ERR_NOMEM;
    }
    b->state[b->nstate].key = k;
    b->state[b->nstate].value = v;
    b->nstate++;
    return DIA_OK;
}
