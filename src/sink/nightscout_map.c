/*
 * Record → Nightscout documents.
 *
 * Field names follow cgm-remote-monitor 15 (specs/smartpix-and-sinks.md §2):
 * entries need `date` (ms) and `dateString` naming the same instant, since
 * Nightscout dedups entries on (sysTime from dateString, type); treatments
 * always carry eventType and created_at, since v1 dedups them on those two.
 * `device` names where the record came from, never the uploader, so that a
 * second uploader of the same device produces identical documents.
 */
#include "sink/nightscout_map.h"

#include <stdio.h>
#include <string.h>

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

static void set_int(json_t *o, const char *k, int32_t v)
{
    if (v != DIA_ABSENT)
        json_object_set_new(o, k, json_integer(v));
}

static void set_units(json_t *o, const char *k, int32_t milli_units)
{
    if (milli_units != DIA_ABSENT)
        json_object_set_new(o, k, json_real(milli_units / 1000.0));
}

static json_t *base(const struct dia_record *r, bool entry)
{
    char iso[40];
    dia_format_utc_ms(r->t_utc_ms, iso, sizeof iso);
    char device[96];
    snprintf(device, sizeof device, "%s%s%s", r->driver, r->device_id[0] ? ":" : "", r->device_id);
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (entry) {
        json_object_set_new(o, "date", json_integer(r->t_utc_ms));
        json_object_set_new(o, "dateString", json_string(iso));
        json_object_set_new(o, "sysTime", json_string(iso));
    } else {
        json_object_set_new(o, "created_at", json_string(iso));
    }
    json_object_set_new(o, entry ? "device" : "enteredBy", json_string(device));
    set_int(o, "utcOffset", r->utc_offset_min);
    json_object_set_new(o, "diabridge_key", json_string(r->key));
    return o;
}

static json_t *treatment(const struct dia_record *r, const char *event_type)
{
    json_t *o = base(r, false);
    if (o)
        json_object_set_new(o, "eventType", json_string(event_type));
    return o;
}

json_t *dia_ns_document(const struct dia_record *r, enum dia_ns_collection *coll)
{
    json_t *o = NULL;
    *coll = DIA_NS_NONE;
    switch (r->kind) {
    case DIA_KIND_GLUCOSE: {
        const struct dia_glucose *g = &r->u.glucose;
        if (!(o = base(r, true)))
            return NULL;
        json_object_set_new(o, "type", json_string("sgv"));
        set_int(o, "sgv", g->mgdl);
        if (g->trend != DIA_ABSENT) {
            json_object_set_new(o, "trend", json_integer(g->trend));
            json_object_set_new(o, "direction", json_string(dia_trend_name(g->trend)));
        }
        set_int(o, "noise", g->noise);
        set_int(o, "filtered", g->filtered);
        set_int(o, "unfiltered", g->unfiltered);
        set_int(o, "rssi", g->rssi);
        *coll = DIA_NS_ENTRIES;
        break;
    }
    case DIA_KIND_METER:
        if (!(o = base(r, true)))
            return NULL;
        json_object_set_new(o, "type", json_string("mbg"));
        set_int(o, "mbg", r->u.meter.mgdl);
        *coll = DIA_NS_ENTRIES;
        break;
    case DIA_KIND_CALIBRATION:
        if (!(o = base(r, true)))
            return NULL;
        json_object_set_new(o, "type", json_string("cal"));
        json_object_set_new(o, "slope", json_real(r->u.calibration.slope));
        json_object_set_new(o, "intercept", json_real(r->u.calibration.intercept));
        json_object_set_new(o, "scale", json_real(r->u.calibration.scale));
        *coll = DIA_NS_ENTRIES;
        break;
    case DIA_KIND_BOLUS: {
        const struct dia_bolus *b = &r->u.bolus;
        const char *et = b->has_wizard                        ? "Bolus Wizard"
                         : (b->wizard_carbs_dg != DIA_ABSENT) ? "Meal Bolus"
                                                              : "Correction Bolus";
        if (!(o = treatment(r, et)))
            return NULL;
        set_units(o, "insulin", b->delivered_mu != DIA_ABSENT ? b->delivered_mu : b->programmed_mu);
        set_units(o, "programmed", b->programmed_mu);
        if (b->has_wizard && b->wizard_carbs_dg != DIA_ABSENT && b->wizard_carbs_dg > 0)
            json_object_set_new(o, "carbs", json_real(b->wizard_carbs_dg / 10.0));
        if (b->duration_s != DIA_ABSENT && b->duration_s > 0)
            json_object_set_new(o, "duration", json_real(b->duration_s / 60.0));
        if (b->type != DIA_ABSENT)
            json_object_set_new(o, "type", json_string(dia_bolus_type_name(b->type)));
        *coll = DIA_NS_TREATMENTS;
        break;
    }
    case DIA_KIND_CARBS:
        if (!(o = treatment(r, "Carb Correction")))
            return NULL;
        json_object_set_new(o, "carbs", json_real(r->u.carbs.carbs_dg / 10.0));
        *coll = DIA_NS_TREATMENTS;
        break;
    case DIA_KIND_BASAL: {
        const struct dia_basal *b = &r->u.basal;
        if (!(o = treatment(r, "Temp Basal")))
            return NULL;
        if (b->type == DIA_BASAL_SUSPEND) {
            json_object_set_new(o, "percent", json_integer(-100));
        } else {
            if (b->rate_mu_h != DIA_ABSENT)
                json_object_set_new(o, "absolute", json_real(b->rate_mu_h / 1000.0));
            if (b->percent != DIA_ABSENT)
                json_object_set_new(o, "percent", json_integer(b->percent - 100));
        }
        if (b->duration_s != DIA_ABSENT)
            json_object_set_new(o, "duration", json_real(b->duration_s / 60.0));
        *coll = DIA_NS_TREATMENTS;
        break;
    }
    case DIA_KIND_EVENT: {
        const char *et = "Note";
        switch (r->u.event.type) {
        case DIA_EVENT_SENSOR_START:
            et = "Sensor Start";
            break;
        case DIA_EVENT_SENSOR_INSERTION:
            et = "Sensor Change";
            break;
        case DIA_EVENT_SITE_CHANGE:
            et = "Site Change";
            break;
        case DIA_EVENT_REWIND:
            et = "Insulin Change";
            break;
        case DIA_EVENT_BATTERY_CHANGE:
            et = "Pump Battery Change";
            break;
        case DIA_EVENT_EXERCISE:
            et = "Exercise";
            break;
        case DIA_EVENT_ALARM:
            et = "Announcement";
            break;
        default:
            break;
        }
        if (!(o = treatment(r, et)))
            return NULL;
        char note[200];
        snprintf(note, sizeof note, "%s%s%s", dia_event_type_name(r->u.event.type),
                 r->u.event.text[0] ? ": " : "", r->u.event.text);
        json_object_set_new(o, "notes", json_string(note));
        *coll = DIA_NS_TREATMENTS;
        break;
    }
    case DIA_KIND_STATUS: {
        char iso[40];
        dia_format_utc_ms(r->t_utc_ms, iso, sizeof iso);
        o = json_object();
        if (!o)
            return NULL;
        json_object_set_new(o, "created_at", json_string(iso));
        char device[96];
        snprintf(device, sizeof device, "%s:%s", r->driver, r->device_id);
        json_object_set_new(o, "device", json_string(device));
        json_t *dev = json_object();
        set_int(dev, "battery", r->u.status.battery_pct);
        set_int(dev, "voltage_mv", r->u.status.battery_mv);
        set_units(dev, "reservoir", r->u.status.reservoir_mu);
        if (r->u.status.state[0])
            json_object_set_new(dev, "status", json_string(r->u.status.state));
        json_object_set_new(o, "pump", dev);
        *coll = DIA_NS_DEVICESTATUS;
        break;
    }
    }
    return o;
}
