/*
 * Records → InfluxDB points (see influx_map.h, docs/sinks/influx.md).
 *
 * Schema "diabridge": one measurement per record kind, named after the kind
 * (glucose, meter, calibration, bolus, basal, carbs, event, status); tags
 * only of low cardinality — device (the device's serial), source (the
 * driver) and type (sgv, mbg, cal, the bolus/basal/event type); every field
 * always written with the same type (integers with `i`), because InfluxDB
 * fixes a field's type per shard and answers a change with a 400 type
 * conflict (specs/smartpix-and-sinks.md §4.3); timestamps in ms (§4.4).
 * Every point also carries record_key as a string field, so a point in the
 * database can be traced back to the journal.  The same record always gives
 * the same series and timestamp, so a re-send after a crash overwrites the
 * point with identical values (§4.2: same measurement + tags + time
 * overwrite) — delivery is idempotent by construction.  The other side of
 * that rule: two *different* records with the same measurement, tags and
 * millisecond would overwrite each other.  A device makes one glucose
 * reading per cycle and stamps meter readings, calibrations, its own events
 * and status to the second, so device + type keep those apart; but carbs,
 * insulin and health/exercise events carry the time a person typed (a
 * receiver's event time, to the minute), and two entries for 12:00 are two
 * records.  Those kinds get the tag entry = the first 8 hex digits of
 * record_key: one series per entry, a few a day, and stable across re-sends
 * and journals, because record_key is.
 *
 * Schema "dexpy": what dexpy writes (specs/dexcom-receiver-usb-and-share.md
 * §3.5), for dashboards built on it:
 *     bg,device=dexcomg6,source=dexpy cbg=120.0,direction=4i 1630768000000000000
 * measurement configurable, the two tags fixed as dexpy hard-codes them,
 * cbg a float, direction the Dexcom trend number, and the time truncated to
 * whole seconds but written in nanoseconds (influxdb-python's default), so
 * the lines are byte for byte dexpy's.  Only glucose is written.
 */
#include "sink/influx_map.h"

#include <math.h>
#include <stdio.h>

#include "core/err.h"

const char *influx_map_precision(enum influx_schema schema)
{
    return schema == INFLUX_SCHEMA_DEXPY ? "ns" : "ms";
}

static void put_int_if(struct influx_lp *lp, const char *key, int32_t v)
{
    if (v != DIA_ABSENT)
        influx_lp_int(lp, key, v);
}

/* insulin: integer milli-units inside, units (float) in the database */
static void put_units_if(struct influx_lp *lp, const char *key, int32_t mu)
{
    if (mu != DIA_ABSENT)
        influx_lp_float(lp, key, mu / 1000.0);
}

static void put_float_if(struct influx_lp *lp, const char *key, double v)
{
    if (!isnan(v))
        influx_lp_float(lp, key, v);
}

static void put_str_if(struct influx_lp *lp, const char *key, const char *v)
{
    if (v[0])
        influx_lp_string(lp, key, v);
}

/* mmol/L to two decimals: what people read, and a stable float */
static double mmol_of(int32_t mgdl)
{
    return round(mgdl / DIA_MGDL_PER_MMOL * 100.0) / 100.0;
}

/* The kinds whose time a person types, so that two records may share it. */
static bool typed_time(enum dia_kind kind)
{
    return kind == DIA_KIND_CARBS || kind == DIA_KIND_BOLUS || kind == DIA_KIND_EVENT;
}

static void begin(struct influx_lp *lp, const struct dia_record *r, const char *type)
{
    influx_lp_begin(lp, dia_kind_name(r->kind));
    influx_lp_tag(lp, "device", r->device_id[0] ? r->device_id : r->driver);
    if (typed_time(r->kind)) {
        char entry[9];
        snprintf(entry, sizeof entry, "%.8s", r->key);
        influx_lp_tag(lp, "entry", entry);
    }
    influx_lp_tag(lp, "source", r->driver);
    influx_lp_tag(lp, "type", type);
}

static int map_dexpy(struct influx_lp *lp, const struct dia_record *r, const char *measurement)
{
    if (r->kind != DIA_KIND_GLUCOSE)
        return INFLUX_MAP_SKIPPED;
    const struct dia_glucose *g = &r->u.glucose;
    influx_lp_begin(lp, measurement && measurement[0] ? measurement : "bg");
    influx_lp_tag(lp, "device", "dexcomg6");
    influx_lp_tag(lp, "source", "dexpy");
    influx_lp_float(lp, "cbg", (double)g->mgdl);
    influx_lp_int(lp, "direction", g->trend == DIA_ABSENT ? DIA_TREND_NONE : g->trend);
    /* dexpy: UTC "%Y-%m-%dT%H:%M:%SZ" (seconds, truncated), sent as ns */
    int64_t seconds = r->t_utc_ms / 1000;
    if (r->t_utc_ms < 0 && r->t_utc_ms % 1000)
        seconds--;
    return influx_lp_end(lp, seconds * 1000000000LL);
}

int influx_map_record(struct influx_lp *lp, const struct dia_record *r, enum influx_schema schema,
                      const char *measurement)
{
    if (schema == INFLUX_SCHEMA_DEXPY)
        return map_dexpy(lp, r, measurement);

    switch (r->kind) {
    case DIA_KIND_GLUCOSE: {
        const struct dia_glucose *g = &r->u.glucose;
        begin(lp, r, "sgv");
        put_int_if(lp, "sgv", g->mgdl);
        if (g->mgdl != DIA_ABSENT)
            influx_lp_float(lp, "mmol", mmol_of(g->mgdl));
        if (g->trend != DIA_ABSENT) {
            influx_lp_int(lp, "trend", g->trend);
            influx_lp_string(lp, "direction", dia_trend_name(g->trend));
        }
        if (g->rate_x10 != DIA_ABSENT)
            influx_lp_float(lp, "rate", g->rate_x10 / 10.0);
        put_int_if(lp, "noise", g->noise);
        put_int_if(lp, "filtered", g->filtered);
        put_int_if(lp, "unfiltered", g->unfiltered);
        put_int_if(lp, "rssi", g->rssi);
        if (g->flags & DIA_GLUCOSE_BACKFILLED)
            influx_lp_bool(lp, "backfilled", true);
        break;
    }
    case DIA_KIND_METER:
        begin(lp, r, "mbg");
        put_int_if(lp, "mbg", r->u.meter.mgdl);
        if (r->u.meter.mgdl != DIA_ABSENT)
            influx_lp_float(lp, "mmol", mmol_of(r->u.meter.mgdl));
        if (r->u.meter.flags & DIA_METER_CALIBRATION)
            influx_lp_bool(lp, "calibration", true);
        break;
    case DIA_KIND_CALIBRATION:
        begin(lp, r, "cal");
        put_float_if(lp, "slope", r->u.calibration.slope);
        put_float_if(lp, "intercept", r->u.calibration.intercept);
        put_float_if(lp, "scale", r->u.calibration.scale);
        break;
    case DIA_KIND_BOLUS: {
        const struct dia_bolus *b = &r->u.bolus;
        begin(lp, r, b->type == DIA_ABSENT ? NULL : dia_bolus_type_name(b->type));
        put_units_if(lp, "programmed", b->programmed_mu);
        put_units_if(lp, "delivered", b->delivered_mu);
        put_units_if(lp, "extended", b->extended_mu);
        put_int_if(lp, "duration_s", b->duration_s);
        if (b->has_wizard) {
            if (b->wizard_carbs_dg != DIA_ABSENT)
                influx_lp_float(lp, "wizard_carbs", b->wizard_carbs_dg / 10.0);
            put_int_if(lp, "wizard_bg", b->wizard_bg_mgdl);
            put_int_if(lp, "wizard_target_low", b->wizard_target_low_mgdl);
            put_int_if(lp, "wizard_target_high", b->wizard_target_high_mgdl);
            if (b->wizard_carb_ratio_dg != DIA_ABSENT)
                influx_lp_float(lp, "wizard_carb_ratio", b->wizard_carb_ratio_dg / 10.0);
            put_int_if(lp, "wizard_isf", b->wizard_isf_mgdl);
            put_units_if(lp, "wizard_iob", b->wizard_iob_mu);
            put_units_if(lp, "wizard_food", b->wizard_food_mu);
            put_units_if(lp, "wizard_correction", b->wizard_correction_mu);
        }
        break;
    }
    case DIA_KIND_BASAL: {
        const struct dia_basal *b = &r->u.basal;
        begin(lp, r, b->type == DIA_ABSENT ? NULL : dia_basal_type_name(b->type));
        if (b->rate_mu_h != DIA_ABSENT)
            influx_lp_float(lp, "rate", b->rate_mu_h / 1000.0);
        put_int_if(lp, "percent", b->percent);
        put_int_if(lp, "duration_s", b->duration_s);
        break;
    }
    case DIA_KIND_CARBS:
        begin(lp, r, NULL);
        if (r->u.carbs.carbs_dg != DIA_ABSENT)
            influx_lp_float(lp, "carbs", r->u.carbs.carbs_dg / 10.0);
        break;
    case DIA_KIND_EVENT:
        begin(lp, r, r->u.event.type == DIA_ABSENT ? NULL : dia_event_type_name(r->u.event.type));
        put_int_if(lp, "code", r->u.event.code);
        put_str_if(lp, "text", r->u.event.text);
        break;
    case DIA_KIND_STATUS: {
        const struct dia_status *s = &r->u.status;
        begin(lp, r, NULL);
        put_int_if(lp, "battery_pct", s->battery_pct);
        put_int_if(lp, "battery_mv", s->battery_mv);
        put_units_if(lp, "reservoir", s->reservoir_mu);
        put_int_if(lp, "signal", s->signal);
        put_str_if(lp, "state", s->state);
        put_str_if(lp, "firmware", s->firmware);
        put_str_if(lp, "transmitter", s->transmitter);
        break;
    }
    default:
        return INFLUX_MAP_SKIPPED;
    }
    /* every point has at least this field, and it ties the point to the journal */
    influx_lp_string(lp, "record_key", r->key);
    return influx_lp_end(lp, r->t_utc_ms);
}
