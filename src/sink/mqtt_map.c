/*
 * Records → MQTT payloads (see mqtt_map.h and docs/sinks/mqtt.md).
 *
 * Conventions followed (specs/smartpix-and-sinks.md §5.3): the latest
 * glucose as JSON {"date":ms,"sgv":…,"mmol":…,"direction":…,"trend":…,…};
 * Home Assistant discovery with device_class blood_glucose_concentration,
 * state_class measurement, expire_after, availability (online/offline) and
 * a JSON attributes topic carrying trend, direction, delta and the reading's
 * time (not its age: a retained message would keep an age that is wrong a
 * minute later; Home Assistant computes it from reading_time).  dexpy's "st|trend|value" payload
 * from specs/dexcom-receiver-usb-and-share.md §3.5.
 */
#include "sink/mqtt_map.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define DELTA_MIN_MS (60 * 1000)      /* a delta against a reading 1 min … */
#define DELTA_MAX_MS (15 * 60 * 1000) /* … to 15 min earlier (3 missed readings) */

int mqtt_map_dexpy_payload(const struct dia_record *r, char *buf, size_t len)
{
    if (r->kind != DIA_KIND_GLUCOSE || r->u.glucose.mgdl == DIA_ABSENT)
        return -1;
    /* st is unix seconds, truncated; trend the Dexcom number */
    long long st = (long long)(r->t_utc_ms / 1000);
    int trend = r->u.glucose.trend == DIA_ABSENT ? DIA_TREND_NONE : r->u.glucose.trend;
    /* the receiver gave dexpy an int, Share a float: "120" vs "224.0" */
    const char *frac = r->origin == DIA_ORIGIN_CLOUD ? ".0" : "";
    int n = snprintf(buf, len, "%lld|%d|%d%s", st, trend, (int)r->u.glucose.mgdl, frac);
    return n < 0 || (size_t)n >= len ? -1 : n;
}

void mqtt_map_topic_level(const char *id, char *out, size_t len)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)id; *p && n + 1 < len; p++) {
        unsigned char c = *p;
        out[n++] = (c == '/' || c == '+' || c == '#' || c <= 0x20 || c == 0x7f) ? '_' : (char)c;
    }
    out[n] = '\0';
}

void mqtt_map_ha_node_id(const char *device_id, char *out, size_t len)
{
    int n = snprintf(out, len, "diabridge_%s", device_id);
    if (n < 0)
        return;
    for (char *p = out + 10; *p; p++) {
        unsigned char c = (unsigned char)*p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok)
            *p = '_';
    }
}

char *mqtt_map_record_json(const struct dia_record *r, const struct mqtt_glucose_ctx *g)
{
    json_t *o = dia_record_to_json(r);
    if (!o)
        return NULL;
    int rc = 0;
    if (r->kind == DIA_KIND_GLUCOSE && r->u.glucose.mgdl != DIA_ABSENT) {
        int32_t mgdl = r->u.glucose.mgdl;
        rc |= json_object_set_new(o, "date", json_integer(r->t_utc_ms));
        rc |= json_object_set_new(o, "sgv", json_integer(mgdl));
        rc |= json_object_set_new(o, "mmol",
                                  json_real(round(mgdl / DIA_MGDL_PER_MMOL * 10.0) / 10.0));
        if (!json_object_get(o, "direction"))
            rc |= json_object_set_new(o, "direction", json_string(dia_trend_name(DIA_TREND_NONE)));
        if (g && g->prev_t_ms > 0) {
            int64_t gap = r->t_utc_ms - g->prev_t_ms;
            if (gap >= DELTA_MIN_MS && gap <= DELTA_MAX_MS)
                rc |= json_object_set_new(o, "delta", json_integer(mgdl - g->prev_mgdl));
        }
    }
    char *text = rc ? NULL : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

char *mqtt_map_ha_config(const struct mqtt_ha_sensor *s)
{
    bool mmol = strcmp(s->unit, "mmol/L") == 0;
    char unique[160], name[120];
    snprintf(unique, sizeof unique, "%s_glucose", s->node_id);
    snprintf(name, sizeof name, "%s %s", s->driver, s->device_id);
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s,"
        " s:{s:[s], s:s, s:s, s:s, s:s}}",
        "name", "Glucose", "unique_id", unique, "state_topic", s->state_topic, "value_template",
        mmol ? "{{ value_json.mmol }}" : "{{ value_json.sgv }}", "unit_of_measurement", s->unit,
        "device_class", "blood_glucose_concentration", "state_class", "measurement", "icon",
        "mdi:diabetes", "expire_after", (json_int_t)s->expire_after_s, "availability_topic",
        s->availability_topic, "payload_available", "online", "payload_not_available", "offline",
        "json_attributes_topic", s->state_topic, "json_attributes_template",
        "{{ {'trend': value_json.get('trend'), 'direction': value_json.get('direction'), "
        "'delta': value_json.get('delta'), 'reading_time': value_json.get('time'), "
        "'record_key': value_json.get('record_key')} | tojson }}",
        "device", "identifiers", s->node_id, "name", name, "manufacturer", "diabridge", "model",
        s->driver, "sw_version", DIA_VERSION);
    if (!o)
        return NULL;
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}
