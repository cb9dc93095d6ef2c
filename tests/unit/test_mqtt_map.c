/* The mqtt sink's payloads: dexpy's exact "st|trend|value" bytes
 * (specs/dexcom-receiver-usb-and-share.md §3.5), topic levels, the glucose
 * JSON, and the Home Assistant discovery config (specs/smartpix-and-sinks.md
 * §5.3). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/record.h"
#include "sink/mqtt_map.h"

static void glucose(struct dia_record *r, int64_t t, int mgdl, int trend, enum dia_origin origin)
{
    dia_record_init(r, DIA_KIND_GLUCOSE);
    snprintf(r->driver, sizeof r->driver, "dexcom-usb");
    snprintf(r->device_id, sizeof r->device_id, "SM12345678");
    r->origin = origin;
    r->t_utc_ms = t;
    r->u.glucose.mgdl = mgdl;
    r->u.glucose.trend = trend;
    dia_record_set_key(r, "egv:%lld", (long long)t);
}

static void test_dexpy_payload_exact(void **state)
{
    (void)state;
    char buf[64];
    struct dia_record r;
    /* §3.5: "1630768000|4|120" from the receiver, "1745081013|4|224.0" from Share */
    glucose(&r, 1630768000999LL, 120, DIA_TREND_FLAT, DIA_ORIGIN_DEVICE);
    assert_int_equal(mqtt_map_dexpy_payload(&r, buf, sizeof buf), 16);
    assert_string_equal(buf, "1630768000|4|120");
    glucose(&r, 1745081013000LL, 224, DIA_TREND_FLAT, DIA_ORIGIN_CLOUD);
    assert_true(mqtt_map_dexpy_payload(&r, buf, sizeof buf) > 0);
    assert_string_equal(buf, "1745081013|4|224.0");
    /* no trend: Dexcom's NONE (0), never a made-up arrow */
    glucose(&r, 1630768000000LL, 95, DIA_ABSENT, DIA_ORIGIN_DEVICE);
    assert_true(mqtt_map_dexpy_payload(&r, buf, sizeof buf) > 0);
    assert_string_equal(buf, "1630768000|0|95");
    /* only glucose; too small a buffer is an error, not a cut payload */
    struct dia_record m;
    dia_record_init(&m, DIA_KIND_METER);
    assert_int_equal(mqtt_map_dexpy_payload(&m, buf, sizeof buf), -1);
    assert_int_equal(mqtt_map_dexpy_payload(&r, buf, 8), -1);
}

static void test_topic_level(void **state)
{
    (void)state;
    char out[48];
    mqtt_map_topic_level("a/b+c#d e", out, sizeof out);
    assert_string_equal(out, "a_b_c_d_e");
    mqtt_map_ha_node_id("SM1234.5/x", out, sizeof out);
    assert_string_equal(out, "diabridge_SM1234_5_x");
}

static void test_glucose_json(void **state)
{
    (void)state;
    struct dia_record r;
    glucose(&r, 1700000600000LL, 126, DIA_TREND_FORTYFIVE_UP, DIA_ORIGIN_DEVICE);
    struct mqtt_glucose_ctx g = {.prev_t_ms = 1700000300000LL, .prev_mgdl = 120};
    char *text = mqtt_map_record_json(&r, &g);
    assert_non_null(text);
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "record_key")), r.key);
    assert_int_equal(json_integer_value(json_object_get(o, "sgv")), 126);
    assert_int_equal(json_integer_value(json_object_get(o, "date")), 1700000600000LL);
    assert_int_equal(json_integer_value(json_object_get(o, "delta")), 6);
    /* no age: the payload stays retained, and an age would soon be wrong */
    assert_null(json_object_get(o, "age_s"));
    assert_string_equal(json_string_value(json_object_get(o, "direction")), "FortyFiveUp");
    assert_true(json_real_value(json_object_get(o, "mmol")) == 7.0);
    json_decref(o);
    free(text);

    /* a previous reading 20 min back is too old for a delta */
    g.prev_t_ms = 1700000600000LL - 20 * 60 * 1000;
    text = mqtt_map_record_json(&r, &g);
    o = json_loads(text, 0, NULL);
    assert_null(json_object_get(o, "delta"));
    json_decref(o);
    free(text);
}

static void test_ha_config(void **state)
{
    (void)state;
    struct mqtt_ha_sensor s = {
        .node_id = "diabridge_SM1",
        .state_topic = "diabridge/SM1/glucose/latest",
        .availability_topic = "diabridge/status",
        .unit = "mmol/L",
        .expire_after_s = 900,
        .device_id = "SM1",
        .driver = "dexcom-usb",
    };
    char *text = mqtt_map_ha_config(&s);
    assert_non_null(text);
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "device_class")),
                        "blood_glucose_concentration");
    assert_string_equal(json_string_value(json_object_get(o, "state_class")), "measurement");
    assert_string_equal(json_string_value(json_object_get(o, "unit_of_measurement")), "mmol/L");
    assert_string_equal(json_string_value(json_object_get(o, "value_template")),
                        "{{ value_json.mmol }}");
    assert_int_equal(json_integer_value(json_object_get(o, "expire_after")), 900);
    assert_string_equal(json_string_value(json_object_get(o, "availability_topic")),
                        "diabridge/status");
    assert_string_equal(json_string_value(json_object_get(o, "json_attributes_topic")),
                        "diabridge/SM1/glucose/latest");
    const char *tmpl = json_string_value(json_object_get(o, "json_attributes_template"));
    assert_non_null(strstr(tmpl, "'delta'"));
    assert_non_null(strstr(tmpl, "'reading_time'"));
    /* an age frozen into a retained state would be wrong; HA derives it */
    assert_null(strstr(tmpl, "age"));
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(o, "device"), "identifiers"), 0)),
                        "diabridge_SM1");
    json_decref(o);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dexpy_payload_exact),
        cmocka_unit_test(test_topic_level),
        cmocka_unit_test(test_glucose_json),
        cmocka_unit_test(test_ha_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
