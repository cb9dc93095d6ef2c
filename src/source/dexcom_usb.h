/*
 * dexcom-usb source: the parts that are pure enough to test on their own.
 */
#ifndef DIABRIDGE_SOURCE_DEXCOM_USB_H
#define DIABRIDGE_SOURCE_DEXCOM_USB_H

#include <stdbool.h>
#include <stdint.h>

#include "core/record.h"
#include "proto/dexcom_rx/dexcom_rx.h"

/* A receiver stores one reading every 5 minutes. */
#define DEXUSB_READING_INTERVAL_MS 300000

/* How the source keeps in step with the receiver's readings. */
struct dexusb_rhythm {
    int64_t poll_after_ms; /* grace after a reading is due, for the receiver to store it */
    int64_t retry_ms;      /* pause between the short retries while a reading is late */
    int retries;           /* short retries before falling back to the 5-minute slots */
};

/*
 * When to poll next, in host milliseconds.  newest_ms is the host time of
 * the newest reading seen (0: none yet), got_new whether the poll that just
 * ended brought a new one.  *late_polls counts the retries spent on a late
 * reading and is kept by the caller between polls.
 */
int64_t dexusb_next_poll(const struct dexusb_rhythm *r, int64_t newest_ms, int64_t now_ms,
                         bool got_new, int *late_polls);

/*
 * The mg/dL an EGV glucose value (cls DEXCOM_RX_EGV_GLUCOSE) is published
 * as.  Below 40 the receiver shows LOW and above 400 HIGH instead of a
 * number (spec §2.4); they become 39 and 401, the values that mean LOW and
 * HIGH in the record format (docs/DATA_FORMAT.md), so a LOW is never
 * published as a measured number.  DIA_ERR_IMPLAUSIBLE below 20 (not a
 * special code, not a reading the receiver shows), DIA_ERR_ARG for a
 * special value (the caller makes those sensor_condition events).
 */
int dexusb_glucose_mgdl(const struct dexcom_rx_egv *e, int32_t *mgdl);

/* How insulin logged without a type (subtype 0: a G4 does not ask) is
 * published: option untyped-insulin. */
enum dexusb_untyped_insulin {
    DEXUSB_UNTYPED_INSULIN_NOTE = 0, /* default: we cannot tell it is a bolus */
    DEXUSB_UNTYPED_INSULIN_BOLUS,    /* the user logs only rapid-acting insulin */
};

/*
 * The record a user event becomes: sets r->kind and r->u (dia_record_init
 * first); time, key and device fields are the caller's.  Carbs → carbs;
 * insulin subtype 1 (fast-acting) → bolus; subtype 2 (long-acting), an
 * unknown subtype, and subtype 0 unless `untyped` says bolus → an event of
 * type note with the subtype as its code and the units in its text, so that
 * nothing counts it as insulin on board; health and exercise → events.
 * DIA_ERR_IMPLAUSIBLE for an insulin amount above 100 U, DIA_ERR_UNSUPPORTED
 * for an unknown event type.
 */
int dexusb_user_event_record(const struct dexcom_rx_user_event *ev,
                             enum dexusb_untyped_insulin untyped, struct dia_record *r);

#endif
