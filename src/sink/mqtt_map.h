/*
 * Records → MQTT topics and payloads, for the mqtt sink (src/sink/mqtt.c).
 * Pure formatting, kept apart so the exact bytes can be unit-tested.  The
 * topics and payloads are documented in docs/sinks/mqtt.md.
 */
#ifndef DIA_SINK_MQTT_MAP_H
#define DIA_SINK_MQTT_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/record.h"

/* dexpy's payload "<unix seconds>|<trend>|<value>" (specs/dexcom-receiver-
 * usb-and-share.md §3.5): "1630768000|4|120" for a receiver reading,
 * "1745081013|4|224.0" for a Share reading (dexpy wrote float(Value)).
 * Returns the length, or -1 when r is not glucose or buf is too small. */
int mqtt_map_dexpy_payload(const struct dia_record *r, char *buf, size_t len);

/* A topic level made from a device id: `/`, `+`, `#`, spaces and control
 * characters become `_`, so one id is always exactly one level. */
void mqtt_map_topic_level(const char *id, char *out, size_t len);

/* Context for a glucose payload: the previous reading of the same device
 * (for delta; prev_t_ms 0 when unknown). */
struct mqtt_glucose_ctx {
    int64_t prev_t_ms;
    int32_t prev_mgdl;
};

/* The record's JSON form (docs/DATA_FORMAT.md, with record_key) plus, for
 * glucose, the conveniences people and Home Assistant use: date (ms), sgv,
 * mmol, direction, delta (mg/dL against a reading 1–15 min earlier).  No
 * "age" at publishing: the latest reading stays retained, and an age written
 * into it would be wrong a minute later; the age is computed from `date` by
 * whoever shows it.  malloc'd text, NULL when out of memory. */
char *mqtt_map_record_json(const struct dia_record *r, const struct mqtt_glucose_ctx *g);

/* Home Assistant discovery config for a device's glucose sensor
 * (specs/smartpix-and-sinks.md §5.3).  malloc'd text. */
struct mqtt_ha_sensor {
    const char *node_id;            /* [A-Za-z0-9_-] */
    const char *state_topic;        /* the retained latest-glucose topic */
    const char *availability_topic; /* online / offline */
    const char *unit;               /* "mg/dL" or "mmol/L" */
    long expire_after_s;
    const char *device_id;
    const char *driver;
};
char *mqtt_map_ha_config(const struct mqtt_ha_sensor *s);

/* node_id for discovery: "diabridge_" + the id with anything outside
 * [A-Za-z0-9_-] replaced by `_`. */
void mqtt_map_ha_node_id(const char *device_id, char *out, size_t len);

#endif
