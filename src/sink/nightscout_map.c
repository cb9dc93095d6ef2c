/*
 * Record → Nightscout documents (cgm-remote-monitor 15; specs/smartpix-and-
 * sinks.md §2).  The table in docs/sinks/nightscout.md is the user's view of
 * this file; keep the two in step.
 *
 * What the choices rest on:
 * - Entries are deduplicated on (sysTime, type), sysTime taken from
 *   dateString first, then date (§2.2, §2.5a).  Both are always sent and
 *   name the same instant, so a re-send lands on the same document.
 *   dateString carries the user's UTC offset when it is known: the server
 *   derives utcOffset from the dateString zone and rewrites it to UTC (§2.2),
 *   and viewers need utcOffset to show local time (§2.6, Loop #2308).
 * - Treatments are deduplicated on identifier, else (created_at, eventType)
 *   (§2.3).  Every treatment has an eventType (a missing one makes
 *   different treatments replace each other, §2.5a) and a created_at in UTC
 *   with milliseconds (mixed zones break string comparisons, §2.6; two
 *   boluses in one minute must stay two, oref0 #443).
 * - Every document carries `identifier`, computed as Nightscout's API v3
 *   computes it (§2.5), so v1 (15.x uses it first for treatments) and v3
 *   agree.  For entries, which have no eventType, the entry type takes its
 *   place: otherwise an sgv and a cal of one sensor at one instant would get
 *   the same identifier.  Events that share an eventType add their own kind
 *   for the same reason (set_event_identifier).
 * - `device` names where the record came from ("sim:SIM1"), never the
 *   uploader, so two uploaders of one device produce identical documents.
 * - Direction names are Nightscout's (NOT COMPUTABLE, RATE OUT OF RANGE,
 *   NONE), not dexpy's NotComputable/OutOfRange/None (dexcom spec §3.5).
 * - Numbers Nightscout deletes when zero (carbs, insulin, percent; §2.3) are
 *   left out instead; `absolute: 0` is kept for zero-rate temp basals.
 */
#include "sink/nightscout_map.h"

#include <ctype.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/tz.h"

const char *dia_ns_collection_name(enum dia_ns_collection c)
{
    switch (c) {
    case DIA_NS_ENTRIES:
        return "entries";
    case DIA_NS_TREATMENTS:
        return "treatments";
    case DIA_NS_DEVICESTATUS:
        return "devicestatus";
    default:
        return "none";
    }
}

bool dia_ns_from_nightscout(const struct dia_record *r)
{
    return strncmp(r->driver, "nightscout", 10) == 0;
}

void dia_ns_device_name(const struct dia_record *r, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s", r->driver, r->device_id[0] ? ":" : "", r->device_id);
}

/* ---- hashing ------------------------------------------------------------ */

static bool sha1(const void *data, size_t len, unsigned char out[20])
{
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_sha1(), NULL) == 1 && n == 20;
}

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int dia_ns_secret_hash(const char *secret, char out[41])
{
    size_t len = secret ? strlen(secret) : 0;
    if (len == 0)
        return DIA_ERR_ARG;
    bool is_hex = len == 40;
    for (size_t i = 0; is_hex && i < len; i++)
        is_hex = isxdigit((unsigned char)secret[i]);
    if (is_hex) {
        for (size_t i = 0; i < 40; i++)
            out[i] = (char)tolower((unsigned char)secret[i]);
        out[40] = '\0';
        return DIA_OK;
    }
    unsigned char d[20];
    if (!sha1(secret, len, d))
        return DIA_ERR_NOMEM;
    hex(d, 20, out);
    return DIA_OK;
}

/* RFC 4122 §4.3: SHA-1 over namespace bytes + name; version 5, variant 10. */
void dia_ns_identifier(const char *device, int64_t date_ms, const char *event_type,
                       char out[DIA_NS_UUID_LEN + 1])
{
    static const char ns[16] = {'N', 'i', 'g', 'h', 't', 's', 'c', 'o',
                                'u', 't', 'R', 'o', 'c', 'k', 's', '!'};
    char buf[16 + 512];
    memcpy(buf, ns, 16);
    int n = snprintf(buf + 16, sizeof buf - 16, "%s_%lld%s%s", device, (long long)date_ms,
                     event_type ? "_" : "", event_type ? event_type : "");
    size_t len = 16 + (n < 0 ? 0 : (size_t)n >= sizeof buf - 16 ? sizeof buf - 17 : (size_t)n);
    unsigned char d[20];
    if (!sha1(buf, len, d))
        memset(d, 0, sizeof d);
    d[6] = (unsigned char)((d[6] & 0x0f) | 0x50);
    d[8] = (unsigned char)((d[8] & 0x3f) | 0x80);
    char h[33];
    hex(d, 16, h);
    snprintf(out, DIA_NS_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16,
             h + 20);
}

/* ---- documents ---------------------------------------------------------- */

static void set_int(json_t *o, const char *k, int32_t v)
{
    if (v != DIA_ABSENT)
        json_object_set_new(o, k, json_integer(v));
}

static void set_str(json_t *o, const char *k, const char *v)
{
    json_object_set_new(o, k, json_string(v));
}

/* milli-units (or mU/h) → units, left out when absent */
static void set_units(json_t *o, const char *k, int32_t milli)
{
    if (milli != DIA_ABSENT)
        json_object_set_new(o, k, json_real(milli / 1000.0));
}

static void set_identifier(json_t *o, const struct dia_record *r, const char *discriminator)
{
    char device[96], id[DIA_NS_UUID_LEN + 1];
    dia_ns_device_name(r, device, sizeof device);
    dia_ns_identifier(device, r->t_utc_ms, discriminator, id);
    set_str(o, "identifier", id);
}

/* Common to every document: device, utcOffset, our record key. */
static json_t *common(const struct dia_record *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    char device[96];
    dia_ns_device_name(r, device, sizeof device);
    set_str(o, "device", device);
    set_int(o, "utcOffset", r->utc_offset_min);
    set_str(o, "diabridge_key", r->key);
    return o;
}

static json_t *entry(const struct dia_record *r, const char *type)
{
    json_t *o = common(r);
    if (!o)
        return NULL;
    char iso[40], when[40];
    dia_format_utc_ms(r->t_utc_ms, iso, sizeof iso);
    if (r->utc_offset_min != DIA_ABSENT)
        dia_format_local_ms(r->t_utc_ms, r->utc_offset_min, when, sizeof when);
    else
        snprintf(when, sizeof when, "%s", iso);
    set_str(o, "type", type);
    json_object_set_new(o, "date", json_integer(r->t_utc_ms));
    set_str(o, "dateString", when);
    set_str(o, "sysTime", iso);
    set_identifier(o, r, type);
    return o;
}

static json_t *treatment(const struct dia_record *r, const char *event_type)
{
    json_t *o = common(r);
    if (!o)
        return NULL;
    char iso[40];
    dia_format_utc_ms(r->t_utc_ms, iso, sizeof iso);
    set_str(o, "eventType", event_type);
    set_str(o, "created_at", iso);
    set_str(o, "enteredBy", "diabridge");
    set_identifier(o, r, event_type);
    return o;
}

static void set_notes(json_t *o, const char *notes)
{
    if (notes && notes[0])
        set_str(o, "notes", notes);
}

static json_t *glucose_entry(const struct dia_record *r)
{
    const struct dia_glucose *g = &r->u.glucose;
    json_t *o = entry(r, "sgv");
    if (!o)
        return NULL;
    set_int(o, "sgv", g->mgdl);
    if (g->trend != DIA_ABSENT && g->trend >= 0 && g->trend <= DIA_TREND_MAX) {
        json_object_set_new(o, "trend", json_integer(g->trend));
        set_str(o, "direction", dia_trend_name(g->trend));
    }
    set_int(o, "noise", g->noise);
    set_int(o, "filtered", g->filtered);
    set_int(o, "unfiltered", g->unfiltered);
    set_int(o, "rssi", g->rssi);
    return o;
}

static json_t *bg_check(const struct dia_record *r)
{
    json_t *o = treatment(r, "BG Check");
    if (!o)
        return NULL;
    set_int(o, "glucose", r->u.meter.mgdl);
    set_str(o, "glucoseType", "Finger");
    set_str(o, "units", "mg/dl");
    if (r->u.meter.flags & DIA_METER_CALIBRATION)
        set_notes(o, "sensor calibration");
    return o;
}

static json_t *calibration_entry(const struct dia_record *r)
{
    json_t *o = entry(r, "cal");
    if (!o)
        return NULL;
    const struct dia_calibration *c = &r->u.calibration;
    if (!isnan(c->slope))
        json_object_set_new(o, "slope", json_real(c->slope));
    if (!isnan(c->intercept))
        json_object_set_new(o, "intercept", json_real(c->intercept));
    if (!isnan(c->scale))
        json_object_set_new(o, "scale", json_real(c->scale));
    return o;
}

static void wizard_notes(const struct dia_bolus *b, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "bolus wizard");
#define ADD(cond, ...)                                                                             \
    if ((cond) && n < len)                                                                         \
        n += (size_t)snprintf(buf + n, len - n, __VA_ARGS__);
    ADD(b->wizard_bg_mgdl != DIA_ABSENT, ": BG %d mg/dL", b->wizard_bg_mgdl);
    ADD(b->wizard_carbs_dg != DIA_ABSENT, ", carbs %.1f g", b->wizard_carbs_dg / 10.0);
    ADD(b->wizard_carb_ratio_dg != DIA_ABSENT, ", ratio %.1f g/U", b->wizard_carb_ratio_dg / 10.0);
    ADD(b->wizard_isf_mgdl != DIA_ABSENT, ", ISF %d mg/dL/U", b->wizard_isf_mgdl);
    ADD(b->wizard_target_low_mgdl != DIA_ABSENT && b->wizard_target_high_mgdl != DIA_ABSENT,
        ", target %d-%d mg/dL", b->wizard_target_low_mgdl, b->wizard_target_high_mgdl);
    ADD(b->wizard_iob_mu != DIA_ABSENT, ", IOB %.2f U", b->wizard_iob_mu / 1000.0);
    ADD(b->wizard_food_mu != DIA_ABSENT, ", food %.2f U", b->wizard_food_mu / 1000.0);
    ADD(b->wizard_correction_mu != DIA_ABSENT, ", correction %.2f U",
        b->wizard_correction_mu / 1000.0);
#undef ADD
}

/*
 * A bolus is a "Meal Bolus" when carbohydrate was entered with it, a
 * "Correction Bolus" otherwise, and a "Bolus Wizard" when the wizard was
 * used but no insulin was given (the calculation and its carbs still count).
 */
static json_t *bolus_treatment(const struct dia_record *r)
{
    const struct dia_bolus *b = &r->u.bolus;
    int32_t insulin = b->delivered_mu != DIA_ABSENT ? b->delivered_mu : b->programmed_mu;
    bool has_insulin = insulin != DIA_ABSENT && insulin > 0;
    bool has_carbs = b->has_wizard && b->wizard_carbs_dg != DIA_ABSENT && b->wizard_carbs_dg > 0;
    const char *et = !has_insulin && b->has_wizard ? "Bolus Wizard"
                     : has_carbs                   ? "Meal Bolus"
                                                   : "Correction Bolus";
    json_t *o = treatment(r, et);
    if (!o)
        return NULL;
    if (has_insulin)
        set_units(o, "insulin", insulin);
    if (b->programmed_mu != DIA_ABSENT && b->programmed_mu != insulin)
        set_units(o, "programmed", b->programmed_mu);
    if (has_carbs)
        json_object_set_new(o, "carbs", json_real(b->wizard_carbs_dg / 10.0));
    if (b->has_wizard && b->wizard_bg_mgdl != DIA_ABSENT && b->wizard_bg_mgdl > 0) {
        set_int(o, "glucose", b->wizard_bg_mgdl);
        set_str(o, "glucoseType", "Finger");
        set_str(o, "units", "mg/dl");
    }
    if (b->type != DIA_ABSENT)
        set_str(o, "bolusType", dia_bolus_type_name(b->type));
    if ((b->type == DIA_BOLUS_SQUARE || b->type == DIA_BOLUS_DUAL) && b->duration_s != DIA_ABSENT &&
        b->duration_s > 0) {
        json_object_set_new(o, "duration", json_real(b->duration_s / 60.0));
        set_units(o, "extended", b->extended_mu);
    }
    if (b->has_wizard) {
        char notes[300];
        wizard_notes(b, notes, sizeof notes);
        set_notes(o, notes);
    }
    return o;
}

static json_t *basal_treatment(const struct dia_record *r)
{
    const struct dia_basal *b = &r->u.basal;
    json_t *o = treatment(r, "Temp Basal");
    if (!o)
        return NULL;
    switch (b->type) {
    case DIA_BASAL_SUSPEND:
        json_object_set_new(o, "absolute", json_real(0));
        json_object_set_new(o, "rate", json_real(0));
        set_notes(o, "pump suspended");
        break;
    case DIA_BASAL_RESUME:
        /* a Temp Basal of duration 0 ends the one running (here: the suspension) */
        json_object_set_new(o, "duration", json_integer(0));
        set_notes(o, "pump resumed");
        return o;
    default:
        set_units(o, "absolute", b->rate_mu_h);
        set_units(o, "rate", b->rate_mu_h);
        /* Nightscout's percent is the change: −50 is half the scheduled rate */
        if (b->percent != DIA_ABSENT && b->percent != 100)
            json_object_set_new(o, "percent", json_integer(b->percent - 100));
        break;
    }
    if (b->duration_s != DIA_ABSENT)
        json_object_set_new(o, "duration", json_real(b->duration_s / 60.0));
    return o;
}

static const char *event_type_for(int type)
{
    switch (type) {
    case DIA_EVENT_SENSOR_START:
        return "Sensor Start";
    case DIA_EVENT_SENSOR_STOP:
        return "Sensor Stop";
    case DIA_EVENT_SENSOR_INSERTION:
        return "Sensor Change";
    case DIA_EVENT_SITE_CHANGE:
        return "Site Change";
    case DIA_EVENT_REWIND:
        return "Insulin Change";
    case DIA_EVENT_BATTERY_CHANGE:
        return "Pump Battery Change";
    case DIA_EVENT_EXERCISE:
        return "Exercise";
    case DIA_EVENT_ALARM:
        return "Announcement";
    default:
        return "Note";
    }
}

/*
 * Nightscout has fewer eventTypes than devices have events: prime, time
 * change, sensor condition, health and note events all become "Note", and
 * every alarm an "Announcement".  Named only by device, time and eventType,
 * two of them at the same millisecond (a prime and a time change; two alarms
 * of one pump) would share an identifier and the second would replace the
 * first.  For these shared eventTypes the identifier's name also carries the
 * event's own kind and its device code, e.g. "sim:SIM1_<ms>_Note_prime".
 * Nightscout keeps an identifier the client sends (API v3 only logs that it
 * differs from its own computation), and 15.x deduplicates v1 treatments on
 * it first, so both documents stay.  Events with an eventType of their own
 * keep Nightscout's computation.
 */
static void set_event_identifier(json_t *o, const struct dia_record *r, const char *event_type)
{
    const struct dia_event *e = &r->u.event;
    if (e->type != DIA_EVENT_ALARM && strcmp(event_type, "Note") != 0)
        return;
    char name[96];
    if (e->code != DIA_ABSENT)
        snprintf(name, sizeof name, "%s_%s_%d", event_type, dia_event_type_name(e->type),
                 (int)e->code);
    else
        snprintf(name, sizeof name, "%s_%s", event_type, dia_event_type_name(e->type));
    set_identifier(o, r, name);
}

static json_t *event_treatment(const struct dia_record *r)
{
    const char *event_type = event_type_for(r->u.event.type);
    json_t *o = treatment(r, event_type);
    if (!o)
        return NULL;
    set_event_identifier(o, r, event_type);
    char notes[200];
    if (r->u.event.text[0])
        snprintf(notes, sizeof notes, "%s", r->u.event.text);
    else
        snprintf(notes, sizeof notes, "%s", dia_event_type_name(r->u.event.type));
    set_notes(o, notes);
    if (r->u.event.type == DIA_EVENT_ALARM)
        json_object_set_new(o, "isAnnouncement", json_true());
    return o;
}

static json_t *status_document(const struct dia_record *r)
{
    const struct dia_status *s = &r->u.status;
    json_t *o = common(r);
    if (!o)
        return NULL;
    char iso[40];
    dia_format_utc_ms(r->t_utc_ms, iso, sizeof iso);
    set_str(o, "created_at", iso);
    set_identifier(o, r, NULL);
    json_t *pump = json_object();
    json_t *battery = json_object();
    set_str(pump, "clock", iso);
    set_int(battery, "percent", s->battery_pct);
    if (s->battery_mv != DIA_ABSENT)
        json_object_set_new(battery, "voltage", json_real(s->battery_mv / 1000.0));
    if (json_object_size(battery))
        json_object_set(pump, "battery", battery);
    json_decref(battery);
    set_units(pump, "reservoir", s->reservoir_mu);
    if (s->state[0])
        json_object_set_new(pump, "status",
                            json_pack("{ss ss}", "status", s->state, "timestamp", iso));
    json_object_set_new(o, "pump", pump);
    json_t *extra = json_object();
    if (s->transmitter[0])
        set_str(extra, "transmitter", s->transmitter);
    if (s->firmware[0])
        set_str(extra, "firmware", s->firmware);
    set_int(extra, "signal", s->signal);
    if (json_object_size(extra))
        json_object_set(o, "diabridge", extra);
    json_decref(extra);
    return o;
}

void dia_ns_docs_free(struct dia_ns_doc *docs, int n)
{
    for (int i = 0; i < n; i++) {
        json_decref(docs[i].doc);
        docs[i].doc = NULL;
    }
}

int dia_ns_documents(const struct dia_record *r, struct dia_ns_doc docs[DIA_NS_MAX_DOCS])
{
    int n = 0;
    json_t *a = NULL, *b = NULL;
    enum dia_ns_collection ca = DIA_NS_NONE, cb = DIA_NS_NONE;
    switch (r->kind) {
    case DIA_KIND_GLUCOSE:
        a = glucose_entry(r), ca = DIA_NS_ENTRIES;
        break;
    case DIA_KIND_METER:
        a = entry(r, "mbg"), ca = DIA_NS_ENTRIES;
        if (a)
            set_int(a, "mbg", r->u.meter.mgdl);
        b = bg_check(r), cb = DIA_NS_TREATMENTS;
        break;
    case DIA_KIND_CALIBRATION:
        a = calibration_entry(r), ca = DIA_NS_ENTRIES;
        break;
    case DIA_KIND_BOLUS:
        a = bolus_treatment(r), ca = DIA_NS_TREATMENTS;
        break;
    case DIA_KIND_CARBS:
        a = treatment(r, "Carb Correction"), ca = DIA_NS_TREATMENTS;
        if (a && r->u.carbs.carbs_dg != DIA_ABSENT)
            json_object_set_new(a, "carbs", json_real(r->u.carbs.carbs_dg / 10.0));
        break;
    case DIA_KIND_BASAL:
        /* the scheduled rate is the profile's business, not a treatment */
        if (r->u.basal.type == DIA_BASAL_SCHEDULED)
            return 0;
        a = basal_treatment(r), ca = DIA_NS_TREATMENTS;
        break;
    case DIA_KIND_EVENT:
        a = event_treatment(r), ca = DIA_NS_TREATMENTS;
        break;
    case DIA_KIND_STATUS:
        a = status_document(r), ca = DIA_NS_DEVICESTATUS;
        break;
    default:
        return 0;
    }
    if (ca != DIA_NS_NONE && !a)
        goto nomem;
    if (cb != DIA_NS_NONE && !b)
        goto nomem;
    if (a)
        docs[n++] = (struct dia_ns_doc){ca, a};
    if (b)
        docs[n++] = (struct dia_ns_doc){cb, b};
    return n;
nomem:
    json_decref(a);
    json_decref(b);
    return DIA_ERR_NOMEM;
}

int dia_ns_to_v3(json_t *doc, enum dia_ns_collection coll)
{
    if (!json_is_object(doc))
        return DIA_ERR_ARG;
    if (!json_object_get(doc, "date")) {
        const char *iso = json_string_value(json_object_get(doc, "created_at"));
        int64_t ms;
        if (!iso || dia_parse_time_ms(iso, &ms) != DIA_OK)
            return DIA_ERR_ARG;
        json_object_set_new(doc, "date", json_integer(ms));
    }
    if (!json_object_get(doc, "utcOffset"))
        json_object_set_new(doc, "utcOffset", json_integer(0));
    json_object_set_new(doc, "app", json_string("diabridge"));
    /* v3 sets sysTime itself and refuses to have it changed later */
    if (coll == DIA_NS_ENTRIES)
        json_object_del(doc, "sysTime");
    return DIA_OK;
}

/* ---- answers ------------------------------------------------------------- */

/* Parsed body as a JSON object, or NULL (the body may contain NULs). */
static json_t *reply_object(const char *body, size_t len)
{
    json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

bool dia_ns_is_nightscout_error(const char *body, size_t len, long status)
{
    json_t *j = reply_object(body, len);
    json_t *st = json_object_get(j, "status");
    bool yes = json_is_integer(st) && json_integer_value(st) == status &&
               json_is_string(json_object_get(j, "message"));
    json_decref(j);
    return yes;
}

bool dia_ns_v3_stored(const char *body, size_t len, long status)
{
    json_t *j = reply_object(body, len);
    json_t *st = json_object_get(j, "status");
    bool yes = j && json_is_string(json_object_get(j, "identifier")) &&
               (!st || (json_is_integer(st) && json_integer_value(st) == status));
    json_decref(j);
    return yes;
}

/* ---- batch splitting ----------------------------------------------------- */

int dia_ns_deliver_split(dia_ns_post_fn post, void *ctx, size_t lo, size_t hi, size_t *acked)
{
    *acked = lo;
    if (lo >= hi)
        return DIA_OK;
    int rc = post(ctx, lo, hi);
    if (rc == DIA_OK) {
        *acked = hi;
        return DIA_OK;
    }
    if (rc != DIA_ERR_PERMANENT || hi - lo == 1)
        return rc;
    size_t mid = lo + (hi - lo) / 2;
    rc = dia_ns_deliver_split(post, ctx, lo, mid, acked);
    if (rc != DIA_OK)
        return rc;
    return dia_ns_deliver_split(post, ctx, mid, hi, acked);
}
