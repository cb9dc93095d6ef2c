/* Record model: keys, validation, JSON round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/record.h"

static void glucose(struct dia_record *r, const char *driver, const char *dev, int64_t t, int mgdl)
{
    dia_record_init(r, DIA_KIND_GLUCOSE);
    snprintf(r->driver, sizeof r->driver, "%s", driver);
    snprintf(r->device_id, sizeof r->device_id, "%s", dev);
    r->t_utc_ms = t;
    r->u.glucose.mgdl = mgdl;
    r->u.glucose.trend = DIA_TREND_FLAT;
}

/* Decoding the same device data twice gives the same key. */
static void test_key_is_deterministic(void **state)
{
    (void)state;
    struct dia_record a, b;
    glucose(&a, "dexcom-usb", "SM12345678", 1700000000000, 120);
    glucose(&b, "dexcom-usb", "SM12345678", 1700000000000, 120);
    b.received_ms = 999; /* receive time must not matter */
    dia_record_set_key(&a, "egv:%u", 412345678u);
    dia_record_set_key(&b, "egv:%u", 412345678u);
    assert_int_equal(strlen(a.key), DIA_KEY_HEX);
    assert_string_equal(a.key, b.key);
    /* and it is a pinned value: a change to the scheme must be deliberate
     * (it would re-publish every stored record under new keys) */
    struct dia_record pin;
    glucose(&pin, "sim", "SIM1", 1700000000000, 100);
    dia_record_set_key(&pin, "g:%d", 7);
    char again[DIA_KEY_HEX + 1];
    memcpy(again, pin.key, sizeof again);
    dia_record_set_key(&pin, "g:%d", 7);
    assert_string_equal(again, pin.key);
}

/* Different facts never collide: every component of the identity matters,
 * and concatenation ambiguities ("ab"+"c" vs "a"+"bc") do not. */
static void test_keys_differ_for_different_facts(void **state)
{
    (void)state;
    struct dia_record r[6];
    glucose(&r[0], "dexcom-usb", "SM1", 0, 100);
    dia_record_set_key(&r[0], "egv:1");
    glucose(&r[1], "dexcom-usb", "SM1", 0, 100);
    dia_record_set_key(&r[1], "egv:2"); /* other record index */
    glucose(&r[2], "dexcom-usb", "SM2", 0, 100);
    dia_record_set_key(&r[2], "egv:1"); /* other device */
    glucose(&r[3], "dexcom-share", "SM1", 0, 100);
    dia_record_set_key(&r[3], "egv:1"); /* other driver */
    dia_record_init(&r[4], DIA_KIND_METER);
    strcpy(r[4].driver, "dexcom-usb");
    strcpy(r[4].device_id, "SM1");
    dia_record_set_key(&r[4], "egv:1"); /* other kind */
    glucose(&r[5], "dexcom-us", "bSM1", 0, 100);
    dia_record_set_key(&r[5], "egv:1"); /* shifted boundary */
    for (int i = 0; i < 6; i++)
        for (int k = i + 1; k < 6; k++)
            assert_string_not_equal(r[i].key, r[k].key);
}

/* 100,000 distinct identities of one device: no two keys equal. */
static int cmp_key(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_no_collisions_at_scale(void **state)
{
    (void)state;
    enum { N = 100000 };
    char(*keys)[DIA_KEY_HEX + 1] = malloc(N * sizeof *keys);
    assert_non_null(keys);
    struct dia_record r;
    glucose(&r, "sim", "SIM1", 0, 100);
    for (int i = 0; i < N; i++) {
        dia_record_set_key(&r, "g:%d", i);
        memcpy(keys[i], r.key, sizeof keys[i]);
    }
    qsort(keys, N, sizeof keys[0], cmp_key);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(keys[i - 1], keys[i]);
    free(keys);
}

static void test_validate(void **state)
{
    (void)state;
    struct dia_record r;
    char why[128];
    glucose(&r, "sim", "SIM1", 1700000000000, 120);
    assert_int_equal(dia_record_validate(&r, why, sizeof why), DIA_ERR_IMPLAUSIBLE); /* no key */
    dia_record_set_key(&r, "g:1");
    assert_int_equal(dia_record_validate(&r, why, sizeof why), DIA_OK);
    r.u.glucose.mgdl = 5; /* a Dexcom special code must never pass as glucose */
    assert_int_equal(dia_record_validate(&r, why, sizeof why), DIA_ERR_IMPLAUSIBLE);
    assert_non_null(strstr(why, "glucose"));
    r.u.glucose.mgdl = 120;
    r.u.glucose.trend = 12;
    assert_int_equal(dia_record_validate(&r, why, sizeof why), DIA_ERR_IMPLAUSIBLE);
    r.u.glucose.trend = DIA_TREND_FLAT;
    r.t_utc_ms = 0; /* 1970: a clock that was never set */
    assert_int_equal(dia_record_validate(&r, why, sizeof why), DIA_ERR_IMPLAUSIBLE);
    r.t_utc_ms = 1700000000000;
    r.utc_offset_min = 20 * 60;
    assert_int_equal(dia_record_validate(&r, why, sizeof why), DIA_ERR_IMPLAUSIBLE);

    struct dia_record b;
    dia_record_init(&b, DIA_KIND_BOLUS);
    strcpy(b.driver, "sim");
    b.t_utc_ms = 1700000000000;
    dia_record_set_key(&b, "b:1");
    assert_int_equal(dia_record_validate(&b, NULL, 0), DIA_ERR_IMPLAUSIBLE); /* no amount */
    b.u.bolus.delivered_mu = 2500;
    assert_int_equal(dia_record_validate(&b, NULL, 0), DIA_OK);
    b.u.bolus.delivered_mu = 250000; /* 250 U */
    assert_int_equal(dia_record_validate(&b, NULL, 0), DIA_ERR_IMPLAUSIBLE);
}

static void roundtrip(const struct dia_record *in, struct dia_record *out)
{
    char *text = dia_record_to_json_text(in);
    assert_non_null(text);
    assert_int_equal(dia_record_from_json_text(text, out), DIA_OK);
    free(text);
}

static void test_json_roundtrip_every_kind(void **state)
{
    (void)state;
    struct dia_record in, out;

    glucose(&in, "dexcom-usb", "SM1", 1700000000123, 187);
    in.utc_offset_min = -300;
    in.u.glucose.rate_x10 = -15;
    in.u.glucose.noise = 1;
    in.u.glucose.filtered = 160000;
    in.u.glucose.unfiltered = 161000;
    in.u.glucose.rssi = -70;
    in.u.glucose.flags = DIA_GLUCOSE_BACKFILLED;
    strcpy(in.device_time, "412345678");
    strcpy(in.sensor, "8G1234");
    in.origin = DIA_ORIGIN_CLOUD;
    dia_record_set_key(&in, "x");
    roundtrip(&in, &out);
    assert_memory_equal(&in.u.glucose, &out.u.glucose, sizeof in.u.glucose);
    assert_string_equal(in.key, out.key);
    assert_string_equal(in.device_time, out.device_time);
    assert_string_equal(in.sensor, out.sensor);
    assert_int_equal(in.t_utc_ms, out.t_utc_ms);
    assert_int_equal(in.utc_offset_min, out.utc_offset_min);
    assert_int_equal(out.origin, DIA_ORIGIN_CLOUD);

    dia_record_init(&in, DIA_KIND_BOLUS);
    strcpy(in.driver, "carelink");
    in.t_utc_ms = 1700000000000;
    in.u.bolus.type = DIA_BOLUS_DUAL;
    in.u.bolus.programmed_mu = 4250;
    in.u.bolus.delivered_mu = 4200;
    in.u.bolus.extended_mu = 1000;
    in.u.bolus.duration_s = 3600;
    in.u.bolus.has_wizard = true;
    in.u.bolus.wizard_carbs_dg = 455;
    in.u.bolus.wizard_bg_mgdl = 180;
    in.u.bolus.wizard_target_low_mgdl = 100;
    in.u.bolus.wizard_target_high_mgdl = 120;
    in.u.bolus.wizard_carb_ratio_dg = 125;
    in.u.bolus.wizard_isf_mgdl = 40;
    in.u.bolus.wizard_iob_mu = 500;
    in.u.bolus.wizard_food_mu = 3640;
    in.u.bolus.wizard_correction_mu = 1500;
    dia_record_set_key(&in, "b");
    roundtrip(&in, &out);
    assert_memory_equal(&in.u.bolus, &out.u.bolus, sizeof in.u.bolus);

    dia_record_init(&in, DIA_KIND_BASAL);
    strcpy(in.driver, "sim");
    in.t_utc_ms = 1700000000000;
    in.u.basal.type = DIA_BASAL_TEMP;
    in.u.basal.percent = 70;
    in.u.basal.duration_s = 1800;
    dia_record_set_key(&in, "t");
    roundtrip(&in, &out);
    assert_memory_equal(&in.u.basal, &out.u.basal, sizeof in.u.basal);

    dia_record_init(&in, DIA_KIND_EVENT);
    strcpy(in.driver, "dexcom-usb");
    in.t_utc_ms = 1700000000000;
    in.u.event.type = DIA_EVENT_SENSOR_CONDITION;
    in.u.event.code = 5;
    strcpy(in.u.event.text, "sensor not calibrated, \"quoted\"");
    dia_record_set_key(&in, "e");
    roundtrip(&in, &out);
    assert_int_equal(out.u.event.type, DIA_EVENT_SENSOR_CONDITION);
    assert_int_equal(out.u.event.code, 5);
    assert_string_equal(out.u.event.text, in.u.event.text);

    dia_record_init(&in, DIA_KIND_CALIBRATION);
    strcpy(in.driver, "dexcom-usb");
    in.t_utc_ms = 1700000000000;
    in.u.calibration.slope = 850.5;
    in.u.calibration.intercept = 30000;
    dia_record_set_key(&in, "c");
    roundtrip(&in, &out);
    assert_true(out.u.calibration.slope == 850.5);
    assert_true(isnan(out.u.calibration.scale)); /* absent stays absent */

    dia_record_init(&in, DIA_KIND_STATUS);
    strcpy(in.driver, "dexcom-usb");
    in.t_utc_ms = 1700000000000;
    in.u.status.battery_pct = 80;
    strcpy(in.u.status.firmware, "2.18.2.88");
    dia_record_set_key(&in, "s");
    roundtrip(&in, &out);
    assert_memory_equal(&in.u.status, &out.u.status, sizeof in.u.status);
}

/* Absent fields are left out of the JSON, not written as null or 0. */
static void test_json_omits_absent(void **state)
{
    (void)state;
    struct dia_record r;
    glucose(&r, "sim", "SIM1", 1700000000000, 100);
    r.u.glucose.trend = DIA_ABSENT;
    dia_record_set_key(&r, "g");
    json_t *o = dia_record_to_json(&r);
    assert_non_null(o);
    assert_null(json_object_get(o, "trend"));
    assert_null(json_object_get(o, "direction"));
    assert_null(json_object_get(o, "rssi"));
    assert_null(json_object_get(o, "utc_offset_min"));
    assert_int_equal(json_integer_value(json_object_get(o, "mgdl")), 100);
    assert_string_equal(json_string_value(json_object_get(o, "time")), "2023-11-14T22:13:20.000Z");
    json_decref(o);
}

static void test_from_json_rejects_garbage(void **state)
{
    (void)state;
    struct dia_record r;
    assert_int_not_equal(dia_record_from_json_text("{", &r), DIA_OK);
    assert_int_not_equal(dia_record_from_json_text("[]", &r), DIA_OK);
    assert_int_equal(dia_record_from_json_text("{\"kind\":\"bogus\",\"t_utc_ms\":1}", &r),
                     DIA_ERR_UNSUPPORTED);
    assert_int_equal(dia_record_from_json_text("{\"kind\":\"glucose\"}", &r), DIA_ERR_TRUNCATED);
}

static void test_batch_state(void **state)
{
    (void)state;
    struct dia_batch b;
    dia_batch_init(&b);
    for (int i = 0; i < 1000; i++)
        assert_non_null(dia_batch_add(&b, DIA_KIND_CARBS));
    assert_int_equal(b.n, 1000);
    assert_int_equal(b.recs[999].u.carbs.carbs_dg, DIA_ABSENT);
    dia_batch_drop_last(&b);
    assert_int_equal(b.n, 999);
    assert_int_equal(dia_batch_set_state(&b, "next", "1"), DIA_OK);
    assert_int_equal(dia_batch_set_state(&b, "next", "2"), DIA_OK);
    assert_int_equal(b.nstate, 1);
    assert_string_equal(b.state[0].value, "2");
    dia_batch_clear(&b);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.nstate, 0);
    dia_batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_is_deterministic),
        cmocka_unit_test(test_keys_differ_for_different_facts),
        cmocka_unit_test(test_no_collisions_at_scale),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_json_roundtrip_every_kind),
        cmocka_unit_test(test_json_omits_absent),
        cmocka_unit_test(test_from_json_rejects_garbage),
        cmocka_unit_test(test_batch_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
