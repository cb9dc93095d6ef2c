/*
 * Nightscout mapping (src/sink/nightscout_map.c): every record kind with the
 * fields docs/sinks/nightscout.md documents, the api-secret hash, the API v3
 * identifier (also for events that share an eventType), which answers count
 * as Nightscout's, and the batch splitting that isolates a refused record.
 *
 * The UUIDv5 vectors were computed independently with Python:
 *   uuid.uuid5(uuid.UUID(bytes=b'NightscoutRocks!'), name)
 * and the first one is the identifier a real Nightscout 15.0.7 assigned
 * (specs/smartpix-and-sinks.md §2.5).  SHA-1 vectors: hashlib.sha1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/record.h"
#include "core/tz.h"
#include "sink/nightscout_map.h"

#define T0 1700000000000LL /* 2023-11-14T22:13:20Z */

static void make(struct dia_record *r, enum dia_kind kind)
{
    dia_record_init(r, kind);
    r->origin = DIA_ORIGIN_DEVICE;
    r->t_utc_ms = T0;
    r->utc_offset_min = 60;
    snprintf(r->driver, sizeof r->driver, "sim");
    snprintf(r->device_id, sizeof r->device_id, "SIM1");
    snprintf(r->key, sizeof r->key, "0123456789abcdef0123456789abcdef");
}

/* The one document of r (asserting there is exactly one, in coll). */
static json_t *one_doc(const struct dia_record *r, enum dia_ns_collection coll)
{
    struct dia_ns_doc docs[DIA_NS_MAX_DOCS];
    int n = dia_ns_documents(r, docs);
    assert_int_equal(n, 1);
    assert_int_equal(docs[0].coll, coll);
    return docs[0].doc;
}

static const char *str(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    if (!v)
        fail_msg("field %s missing or not a string", k);
    return v;
}

static double num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_number(v))
        fail_msg("field %s missing or not a number", k);
    return json_number_value(v);
}

static void assert_absent(json_t *o, const char *k)
{
    if (json_object_get(o, k))
        fail_msg("field %s should be absent", k);
}

static void test_identifier_vectors(void **state)
{
    (void)state;
    char id[DIA_NS_UUID_LEN + 1];
    dia_ns_identifier("cgmd-test-v3", 1795242382000LL, NULL, id);
    assert_string_equal(id, "0c918113-3a69-52ef-8d9a-15024a9a9679");
    dia_ns_identifier("sim:SIM1", T0, "sgv", id);
    assert_string_equal(id, "e59e1926-5126-5444-8b8a-9f65bde9c07b");
    dia_ns_identifier("sim:SIM1", T0, "Meal Bolus", id);
    assert_string_equal(id, "332abd96-3646-58a7-b132-8e1201f8b92d");
    dia_ns_identifier("sim:SIM1", T0, NULL, id);
    assert_string_equal(id, "9ad021da-1cf7-52df-b1a8-68aff8989098");
}

static void test_secret_hash(void **state)
{
    (void)state;
    char h[41];
    assert_int_equal(dia_ns_secret_hash("correct horse battery", h), DIA_OK);
    assert_string_equal(h, "98decc62ece399a22ed30d490ef333be7fde7385");
    assert_int_equal(dia_ns_secret_hash("abcdefghijkl", h), DIA_OK);
    assert_string_equal(h, "eb4608cebfcfd4df81410cbd06507ea6af978d9c");
    /* already hashed: taken as is, lower-cased */
    assert_int_equal(dia_ns_secret_hash("98DECC62ECE399A22ED30D490EF333BE7FDE7385", h), DIA_OK);
    assert_string_equal(h, "98decc62ece399a22ed30d490ef333be7fde7385");
    /* 40 characters that are not all hex: a passphrase, hashed */
    assert_int_equal(dia_ns_secret_hash("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", h), DIA_OK);
    assert_string_not_equal(h, "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
    assert_int_equal(dia_ns_secret_hash("", h), DIA_ERR_ARG);
}

static void test_glucose(void **state)
{
    (void)state;
    struct dia_record r;
    make(&r, DIA_KIND_GLUCOSE);
    r.u.glucose.mgdl = 123;
    r.u.glucose.trend = DIA_TREND_NOT_COMPUTABLE;
    r.u.glucose.noise = 1;
    r.u.glucose.filtered = 117815;
    r.u.glucose.unfiltered = 118000;
    r.u.glucose.rssi = -85;
    json_t *o = one_doc(&r, DIA_NS_ENTRIES);
    assert_string_equal(str(o, "type"), "sgv");
    assert_int_equal((int)num(o, "sgv"), 123);
    assert_true(num(o, "date") == (double)T0);
    assert_true(json_is_integer(json_object_get(o, "date")));
    /* dateString carries the local offset and names the same instant as date */
    assert_string_equal(str(o, "dateString"), "2023-11-14T23:13:20.000+01:00");
    int64_t ms;
    assert_int_equal(dia_parse_time_ms(str(o, "dateString"), &ms), DIA_OK);
    assert_true(ms == T0);
    assert_string_equal(str(o, "sysTime"), "2023-11-14T22:13:20.000Z");
    assert_int_equal((int)num(o, "trend"), 8);
    assert_string_equal(str(o, "direction"), "NOT COMPUTABLE");
    assert_int_equal((int)num(o, "noise"), 1);
    assert_int_equal((int)num(o, "filtered"), 117815);
    assert_int_equal((int)num(o, "unfiltered"), 118000);
    assert_int_equal((int)num(o, "rssi"), -85);
    assert_string_equal(str(o, "device"), "sim:SIM1");
    assert_int_equal((int)num(o, "utcOffset"), 60);
    assert_string_equal(str(o, "identifier"), "e59e1926-5126-5444-8b8a-9f65bde9c07b");
    json_decref(o);

    /* every direction name is Nightscout's */
    static const char *const names[] = {
        "NONE",          "DoubleUp",   "SingleUp",   "FortyFiveUp",    "Flat",
        "FortyFiveDown", "SingleDown", "DoubleDown", "NOT COMPUTABLE", "RATE OUT OF RANGE"};
    for (int t = 0; t <= DIA_TREND_MAX; t++) {
        r.u.glucose.trend = t;
        o = one_doc(&r, DIA_NS_ENTRIES);
        assert_string_equal(str(o, "direction"), names[t]);
        json_decref(o);
    }
    /* unknown offset: UTC dateString, no utcOffset; absent fields stay absent */
    r.utc_offset_min = DIA_ABSENT;
    r.u.glucose.trend = DIA_ABSENT;
    r.u.glucose.rssi = DIA_ABSENT;
    o = one_doc(&r, DIA_NS_ENTRIES);
    assert_string_equal(str(o, "dateString"), "2023-11-14T22:13:20.000Z");
    assert_absent(o, "utcOffset");
    assert_absent(o, "trend");
    assert_absent(o, "direction");
    assert_absent(o, "rssi");
    json_decref(o);
}

static void test_meter_two_documents(void **state)
{
    (void)state;
    struct dia_record r;
    make(&r, DIA_KIND_METER);
    r.u.meter.mgdl = 142;
    r.u.meter.flags = DIA_METER_CALIBRATION;
    struct dia_ns_doc docs[DIA_NS_MAX_DOCS];
    assert_int_equal(dia_ns_documents(&r, docs), 2);
    assert_int_equal(docs[0].coll, DIA_NS_ENTRIES);
    assert_string_equal(str(docs[0].doc, "type"), "mbg");
    assert_int_equal((int)num(docs[0].doc, "mbg"), 142);
    assert_true(num(docs[0].doc, "date") == (double)T0);
    assert_int_equal(docs[1].coll, DIA_NS_TREATMENTS);
    assert_string_equal(str(docs[1].doc, "eventType"), "BG Check");
    assert_string_equal(str(docs[1].doc, "created_at"), "2023-11-14T22:13:20.000Z");
    assert_int_equal((int)num(docs[1].doc, "glucose"), 142);
    assert_string_equal(str(docs[1].doc, "glucoseType"), "Finger");
    assert_string_equal(str(docs[1].doc, "units"), "mg/dl");
    /* the two identifiers differ (different collections, different types) */
    assert_string_not_equal(str(docs[0].doc, "identifier"), str(docs[1].doc, "identifier"));
    dia_ns_docs_free(docs, 2);
}

static void test_calibration(void **state)
{
    (void)state;
    struct dia_record r;
    make(&r, DIA_KIND_CALIBRATION);
    r.u.calibration.slope = 709.317;
    r.u.calibration.intercept = 22230;
    r.u.calibration.scale = 1;
    json_t *o = one_doc(&r, DIA_NS_ENTRIES);
    assert_string_equal(str(o, "type"), "cal");
    assert_true(fabs(num(o, "slope") - 709.317) < 1e-9);
    assert_true(num(o, "intercept") == 22230);
    assert_true(num(o, "scale") == 1);
    assert_non_null(json_object_get(o, "dateString"));
    json_decref(o);
}

static void test_bolus(void **state)
{
    (void)state;
    struct dia_record r;
    make(&r, DIA_KIND_BOLUS);
    r.u.bolus.type = DIA_BOLUS_NORMAL;
    r.u.bolus.programmed_mu = r.u.bolus.delivered_mu = 3900;
    r.u.bolus.has_wizard = true;
    r.u.bolus.wizard_carbs_dg = 610;
    r.u.bolus.wizard_bg_mgdl = 95;
    json_t *o = one_doc(&r, DIA_NS_TREATMENTS);
    assert_string_equal(str(o, "eventType"), "Meal Bolus");
    assert_true(fabs(num(o, "insulin") - 3.9) < 1e-9);
    assert_true(fabs(num(o, "carbs") - 61.0) < 1e-9);
    assert_int_equal((int)num(o, "glucose"), 95);
    assert_string_equal(str(o, "created_at"), "2023-11-14T22:13:20.000Z");
    assert_int_equal((int)num(o, "utcOffset"), 60);
    assert_absent(o, "duration");
    assert_non_null(strstr(str(o, "notes"), "carbs 61.0 g"));
    json_decref(o);

    /* wizard without carbs: a correction */
    r.u.bolus.wizard_carbs_dg = 0;
    o = one_doc(&r, DIA_NS_TREATMENTS);
    assert_string_equal(str(o, "eventType"), "Correction Bolus");
    assert_absent(o, "carbs");
    json_decref(o);

    /* no wizard at all */
    r.u.bolus.has_wizard = false;
    o = one_doc(&r, DIA_NS_TREATMENTS);
    assert_string_equal(str(o, "eventType"), "Correction Bolus");
    assert_absent(o, "glucose");
    assert_absent(o, "notes");
    json_decref(o);

    /* wizard used, nothing given: the calculation and its carbs */
    r.u.bolus.has_wizard = true;
    r.u.bolus.wizard_carbs_dg = 200;
    r.u.bolus.delivered_mu = r.u.bolus.programmed_mu = 0;
    o = one_doc(&r, DIA_NS_TREATMENTS);
    assert_string_equal(str(o, "eventType"), "Bolus Wizard");
    assert_absent(o, "insulin");
    assert_true(num(o, "carbs") == 20.0);
    json_decref(o);

    /* square: duration in minutes; delivered wins over programmed */
    make(&r, DIA_KIND_BOLUS);
    r.u.bolus.type = DIA_BOLUS_SQUARE;
    r.u.bolus.programmed_mu = 2000;
    r.u.bolus.delivered_mu = 1500;
    r.u.bolus.extended_mu = 1500;
    r.u.bolus.duration_s = 5400;
    o = one_doc(&r, DIA_NS_TREATMENTS);
    assert_string_equal(str(o, "eventType"), "Correction Bolus");
    assert_true(num(o, "insulin") == 1.5);
    assert_true(num(o, "programmed") == 2.0);
    assert_true(num(o, "duration") == 90.0);
    assert_string_equal(str(o, "bolusType"), "square");
    json_decref(o);
}

static void test_carbs(void **state)
{
    (void)state;
    struct dia_record r;
    make(&r, DIA_KIND_CARBS);
    r.u.carbs.carbs_dg = 155;
    json_t *o = one_doc(&r, DIA_NS_TREATMENTS);
    assert_string_equal(str(o, "eventType"), "Carb Correction");
    assert_true(num(o, "carbs") == 15.5);
    assert_string_equal(str(o, "enteredBy"), "diabridge");
    json_decref(o);
}

static void test_basal(void **state)
{
    (void)state;
    struct dia_record r;
    make(&r, DIA_KIND_BASAL);
    r.u.basal.type = DIA_BASAL_TEMP;
    r.u.basal.rate_mu_h = 450;
    r.u.basal.percent = 50;
    r.u.basal.duration_s = 1800;
    json_t *o = one_doc(&r, DIA_NS_TREATMENTS);
    assert_string_equal(str(o, "eventType"), "Temp Basal");
    assert_true(num(o, "absolute") == 0.45);
    assert_true(num(o, "rate") == 0.45);
    assert_int_equal((int)num(o, "percent"), -50);
    assert_true(num(o, "duration") == 30.0);
    json_decref(o);

    /* a zero-rate temp keeps absolute: 0 (Nightscout keeps it, §2.3) */
    r.u.basal.rate_mu_h = 0;
    r.u.basal.percent = 0;
    o = one_doc(&r, DIA_NS_TREATMENTS);
    assert_true(json_is_number(json_object_get(o, "absolute")) && num(o, "absolute") == 0);
    assert_int_equal((int)num(o, "percent"), -100);
    json_decref(o);

    r.u.basal.type = DIA_BASAL_SUSPEND;
    r.u.basal.rate_mu_h = DIA_ABSENT;
    r.u.basal.percent = DIA_ABSENT;
    r.u.basal.duration_s = 600;
    o = one_doc(&r, DIA_NS_TREATMENTS);
    assert_string_equal(str(o, "eventType"), "Temp Basal");
    assert_true(num(o, "absolute") == 0);
    assert_true(num(o, "duration") == 10.0);
    assert_string_equal(str(o, "notes"), "pump suspended");
    json_decref(o);

    r.u.basal.type = DIA_BASAL_RESUME;
    o = one_doc(&r, DIA_NS_TREATMENTS);
    assert_true(num(o, "duration") == 0);
    assert_absent(o, "absolute");
    assert_string_equal(str(o, "notes"), "pump resumed");
    json_decref(o);

    struct dia_ns_doc docs[DIA_NS_MAX_DOCS];
    r.u.basal.type = DIA_BASAL_SCHEDULED;
    assert_int_equal(dia_ns_documents(&r, docs), 0);
}

static void test_events(void **state)
{
    (void)state;
    static const struct {
        int type;
        const char *event_type;
    } table[] = {
        {DIA_EVENT_SENSOR_START, "Sensor Start"},
        {DIA_EVENT_SENSOR_STOP, "Sensor Stop"},
        {DIA_EVENT_SENSOR_INSERTION, "Sensor Change"},
        {DIA_EVENT_SITE_CHANGE, "Site Change"},
        {DIA_EVENT_REWIND, "Insulin Change"},
        {DIA_EVENT_BATTERY_CHANGE, "Pump Battery Change"},
        {DIA_EVENT_EXERCISE, "Exercise"},
        {DIA_EVENT_ALARM, "Announcement"},
        {DIA_EVENT_PRIME, "Note"},
        {DIA_EVENT_SENSOR_CONDITION, "Note"},
        {DIA_EVENT_HEALTH, "Note"},
        {DIA_EVENT_TIME_CHANGE, "Note"},
        {DIA_EVENT_NOTE, "Note"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        struct dia_record r;
        make(&r, DIA_KIND_EVENT);
        r.u.event.type = table[i].type;
        json_t *o = one_doc(&r, DIA_NS_TREATMENTS);
        assert_string_equal(str(o, "eventType"), table[i].event_type);
        assert_string_equal(str(o, "created_at"), "2023-11-14T22:13:20.000Z");
        /* no text: the event's name is the note */
        assert_string_equal(str(o, "notes"), dia_event_type_name(table[i].type));
        if (table[i].type == DIA_EVENT_ALARM)
            assert_true(json_is_true(json_object_get(o, "isAnnouncement")));
        json_decref(o);
    }
    struct dia_record r;
    make(&r, DIA_KIND_EVENT);
    r.u.event.type = DIA_EVENT_ALARM;
    snprintf(r.u.event.text, sizeof r.u.event.text, "low glucose alarm");
    json_t *o = one_doc(&r, DIA_NS_TREATMENTS);
    assert_string_equal(str(o, "notes"), "low glucose alarm");
    json_decref(o);
}

/* The identifier of r's one treatment, copied to out. */
static void event_identifier(const struct dia_record *r, char out[DIA_NS_UUID_LEN + 1])
{
    json_t *o = one_doc(r, DIA_NS_TREATMENTS);
    snprintf(out, DIA_NS_UUID_LEN + 1, "%s", str(o, "identifier"));
    json_decref(o);
}

/*
 * Events that share an eventType (Note, Announcement) at the same instant
 * from one device must keep different identifiers, or Nightscout stores
 * only the last of them.  Vectors: Python uuid5(NightscoutRocks!, name).
 */
static void test_event_identifiers(void **state)
{
    (void)state;
    struct dia_record prime, clock, alarm1, alarm2, start;
    char a[DIA_NS_UUID_LEN + 1], b[DIA_NS_UUID_LEN + 1];
    make(&prime, DIA_KIND_EVENT);
    prime.u.event.type = DIA_EVENT_PRIME;
    make(&clock, DIA_KIND_EVENT);
    clock.u.event.type = DIA_EVENT_TIME_CHANGE;
    event_identifier(&prime, a);
    event_identifier(&clock, b);
    assert_string_equal(a, "1d31cb31-862e-527a-9633-768557ce8f52"); /* …_Note_prime */
    assert_string_equal(b, "9277930a-c6ec-5cb2-a552-933134da4d48"); /* …_Note_time_change */

    make(&alarm1, DIA_KIND_EVENT);
    alarm1.u.event.type = DIA_EVENT_ALARM;
    alarm1.u.event.code = 17;
    alarm2 = alarm1;
    alarm2.u.event.code = 18;
    event_identifier(&alarm1, a);
    event_identifier(&alarm2, b);
    assert_string_equal(a, "ef4084b9-f453-568f-978a-a7e5e47d7df1"); /* …_Announcement_alarm_17 */
    assert_string_not_equal(a, b);
    /* the same record always gets the same identifier */
    event_identifier(&alarm1, b);
    assert_string_equal(a, b);

    /* an event with an eventType of its own keeps Nightscout's computation */
    make(&start, DIA_KIND_EVENT);
    start.u.event.type = DIA_EVENT_SENSOR_START;
    start.u.event.code = 5;
    event_identifier(&start, a);
    assert_string_equal(a, "563a0237-da92-5876-b905-f54dfc28d919"); /* …_Sensor Start */
}

/* What counts as Nightscout's own error, and as a stored v3 document. */
static void test_answers(void **state)
{
    (void)state;
    static const char nginx[] =
        "<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>"
        "\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n</body>\r\n</html>\r\n";
    static const char ns400[] = "{\"status\":400,\"message\":\"Bad or missing date field\"}";
#define IS_NS_ERROR(body, st) dia_ns_is_nightscout_error(body, sizeof body - 1, st)
    assert_true(IS_NS_ERROR(ns400, 400));
    assert_false(IS_NS_ERROR(ns400, 413)); /* status must be the HTTP status */
    assert_false(IS_NS_ERROR(nginx, 400));
    assert_false(IS_NS_ERROR("{\"message\":\"Bad Request\"}", 400));
    assert_false(IS_NS_ERROR("[{\"status\":400,\"message\":\"x\"}]", 400));
    assert_false(IS_NS_ERROR("", 400));
    assert_false(dia_ns_is_nightscout_error(NULL, 0, 400));
#undef IS_NS_ERROR

#define STORED(body, st) dia_ns_v3_stored(body, sizeof body - 1, st)
    assert_true(STORED("{\"status\":201,\"identifier\":\"0c918113-3a69-52ef-8d9a-15024a9a9679\","
                       "\"lastModified\":1795242382000}",
                       201));
    assert_true(STORED("{\"status\":200,\"identifier\":\"0c918113-3a69-52ef-8d9a-15024a9a9679\","
                       "\"isDeduplication\":true,\"lastModified\":1795242382000}",
                       200));
    assert_false(STORED("<html><body>Please sign in to the hotel Wi-Fi</body></html>", 200));
    assert_false(STORED("{}", 200));
    assert_false(STORED("[]", 200));
    assert_false(STORED("{\"status\":500,\"identifier\":\"x\"}", 200));
    assert_false(dia_ns_v3_stored(NULL, 0, 201));
#undef STORED
}

static void test_status(void **state)
{
    (void)state;
    struct dia_record r;
    make(&r, DIA_KIND_STATUS);
    r.u.status.battery_pct = 78;
    r.u.status.battery_mv = 2864;
    r.u.status.reservoir_mu = 123450;
    snprintf(r.u.status.state, sizeof r.u.status.state, "normal");
    snprintf(r.u.status.transmitter, sizeof r.u.status.transmitter, "8G2T3D");
    json_t *o = one_doc(&r, DIA_NS_DEVICESTATUS);
    assert_string_equal(str(o, "device"), "sim:SIM1");
    assert_string_equal(str(o, "created_at"), "2023-11-14T22:13:20.000Z");
    json_t *pump = json_object_get(o, "pump");
    assert_non_null(pump);
    json_t *bat = json_object_get(pump, "battery");
    assert_int_equal((int)num(bat, "percent"), 78);
    assert_true(fabs(num(bat, "voltage") - 2.864) < 1e-9);
    assert_true(fabs(num(pump, "reservoir") - 123.45) < 1e-9);
    assert_string_equal(str(json_object_get(pump, "status"), "status"), "normal");
    assert_string_equal(str(json_object_get(o, "diabridge"), "transmitter"), "8G2T3D");
    assert_string_equal(str(o, "identifier"), "9ad021da-1cf7-52df-b1a8-68aff8989098");
    json_decref(o);
}

static void test_v3_form(void **state)
{
    (void)state;
    struct dia_record r;
    make(&r, DIA_KIND_CARBS);
    r.u.carbs.carbs_dg = 100;
    json_t *o = one_doc(&r, DIA_NS_TREATMENTS);
    assert_int_equal(dia_ns_to_v3(o, DIA_NS_TREATMENTS), DIA_OK);
    assert_true(num(o, "date") == (double)T0);
    assert_string_equal(str(o, "app"), "diabridge");
    assert_int_equal((int)num(o, "utcOffset"), 60);
    json_decref(o);

    make(&r, DIA_KIND_GLUCOSE);
    r.utc_offset_min = DIA_ABSENT;
    r.u.glucose.mgdl = 100;
    o = one_doc(&r, DIA_NS_ENTRIES);
    assert_int_equal(dia_ns_to_v3(o, DIA_NS_ENTRIES), DIA_OK);
    assert_int_equal((int)num(o, "utcOffset"), 0);
    assert_absent(o, "sysTime");
    json_decref(o);
}

static void test_from_nightscout(void **state)
{
    (void)state;
    struct dia_record r;
    make(&r, DIA_KIND_GLUCOSE);
    assert_false(dia_ns_from_nightscout(&r));
    snprintf(r.driver, sizeof r.driver, "nightscout");
    assert_true(dia_ns_from_nightscout(&r));
}

/* A fake server for dia_ns_deliver_split: refuses any range containing
 * `bad`, or (too_large) any range longer than `max`; records which ranges
 * it accepted. */
struct fake {
    size_t bad;
    size_t max;
    int other_error;
    size_t accepted[64];
    int calls;
};

static int fake_post(void *ctx, size_t lo, size_t hi)
{
    struct fake *f = ctx;
    f->calls++;
    if (f->other_error)
        return f->other_error;
    if (f->max && hi - lo > f->max)
        return DIA_ERR_PERMANENT;
    if (f->bad >= lo && f->bad < hi)
        return DIA_ERR_PERMANENT;
    for (size_t i = lo; i < hi; i++)
        f->accepted[i]++;
    return DIA_OK;
}

static void test_split(void **state)
{
    (void)state;
    size_t acked;
    struct fake f = {.bad = (size_t)-1};
    assert_int_equal(dia_ns_deliver_split(fake_post, &f, 0, 50, &acked), DIA_OK);
    assert_int_equal(acked, 50);
    assert_int_equal(f.calls, 1);

    /* one bad record: everything before it accepted, it alone refused */
    for (size_t bad = 0; bad < 50; bad++) {
        memset(&f, 0, sizeof f);
        f.bad = bad;
        assert_int_equal(dia_ns_deliver_split(fake_post, &f, 0, 50, &acked), DIA_ERR_PERMANENT);
        assert_int_equal(acked, bad);
        for (size_t i = 0; i < bad; i++)
            assert_true(f.accepted[i] >= 1);
        assert_true(f.calls <= 2 * 7 + 1); /* log2(50) halvings, both sides */
    }

    /* too large, no bad record: halves until it fits, all accepted */
    memset(&f, 0, sizeof f);
    f.bad = (size_t)-1;
    f.max = 7;
    assert_int_equal(dia_ns_deliver_split(fake_post, &f, 0, 50, &acked), DIA_OK);
    assert_int_equal(acked, 50);
    for (size_t i = 0; i < 50; i++)
        assert_int_equal(f.accepted[i], 1);

    /* transient errors are not split */
    memset(&f, 0, sizeof f);
    f.other_error = DIA_ERR_TRANSIENT;
    assert_int_equal(dia_ns_deliver_split(fake_post, &f, 0, 50, &acked), DIA_ERR_TRANSIENT);
    assert_int_equal(acked, 0);
    assert_int_equal(f.calls, 1);

    /* a single too-large record is refused alone */
    memset(&f, 0, sizeof f);
    f.bad = (size_t)-1;
    f.max = 0;
    f.bad = 0;
    assert_int_equal(dia_ns_deliver_split(fake_post, &f, 0, 1, &acked), DIA_ERR_PERMANENT);
    assert_int_equal(acked, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identifier_vectors),
        cmocka_unit_test(test_secret_hash),
        cmocka_unit_test(test_glucose),
        cmocka_unit_test(test_meter_two_documents),
        cmocka_unit_test(test_calibration),
        cmocka_unit_test(test_bolus),
        cmocka_unit_test(test_carbs),
        cmocka_unit_test(test_basal),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_event_identifiers),
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_v3_form),
        cmocka_unit_test(test_from_nightscout),
        cmocka_unit_test(test_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
