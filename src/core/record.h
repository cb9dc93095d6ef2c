/*
 * The normalized record: one type for everything diabridge reads.
 *
 * Field by field documentation lives in docs/DATA_FORMAT.md; keep the two in
 * step.  Integer fields that a device did not report hold DIA_ABSENT and are
 * left out of the JSON form; double fields use NAN for the same purpose.
 *
 * Units (DESIGN §3): glucose in integer mg/dL, insulin in integer milli-units
 * (mU), insulin rates in mU/h, carbohydrate in tenths of a gram, durations in
 * seconds, times in Unix milliseconds (UTC).
 */
#ifndef DIA_CORE_RECORD_H
#define DIA_CORE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIA_ABSENT INT32_MIN

/* 128 bits of SHA-256, as 32 lower-case hex digits */
#define DIA_KEY_HEX 32

enum dia_kind {
    DIA_KIND_GLUCOSE = 1,
    DIA_KIND_METER,
    DIA_KIND_BOLUS,
    DIA_KIND_BASAL,
    DIA_KIND_CARBS,
    DIA_KIND_EVENT,
    DIA_KIND_STATUS,
    DIA_KIND_CALIBRATION,
};
#define DIA_KIND_MAX DIA_KIND_CALIBRATION

enum dia_origin {
    DIA_ORIGIN_DEVICE = 1, /* read from the device itself (USB, BLE, radio) */
    DIA_ORIGIN_CLOUD,      /* fetched from a vendor cloud (Dexcom Share) */
    DIA_ORIGIN_IMPORTED,   /* from a file or another uploader's store */
};

/* Trend arrows, numbered as Dexcom and Nightscout number them. */
enum dia_trend {
    DIA_TREND_NONE = 0,
    DIA_TREND_DOUBLE_UP = 1,
    DIA_TREND_SINGLE_UP = 2,
    DIA_TREND_FORTYFIVE_UP = 3,
    DIA_TREND_FLAT = 4,
    DIA_TREND_FORTYFIVE_DOWN = 5,
    DIA_TREND_SINGLE_DOWN = 6,
    DIA_TREND_DOUBLE_DOWN = 7,
    DIA_TREND_NOT_COMPUTABLE = 8,
    DIA_TREND_OUT_OF_RANGE = 9,
};
#define DIA_TREND_MAX DIA_TREND_OUT_OF_RANGE

/* glucose.flags */
#define DIA_GLUCOSE_BACKFILLED   0x1u /* delivered late by the device (G6 backfill) */
#define DIA_GLUCOSE_DISPLAY_ONLY 0x2u /* shown on the device, not for treatment */
#define DIA_GLUCOSE_CALIBRATED   0x4u /* calibrated value (as opposed to raw-derived) */

/* meter.flags */
#define DIA_METER_CALIBRATION 0x1u /* entered as a sensor calibration */

enum dia_bolus_type {
    DIA_BOLUS_NORMAL = 1,
    DIA_BOLUS_SQUARE,
    DIA_BOLUS_DUAL,
};

enum dia_basal_type {
    DIA_BASAL_SCHEDULED = 1,
    DIA_BASAL_TEMP,
    DIA_BASAL_SUSPEND,
    DIA_BASAL_RESUME,
};

enum dia_event_type {
    DIA_EVENT_SENSOR_START = 1,
    DIA_EVENT_SENSOR_STOP,
    DIA_EVENT_SENSOR_INSERTION,
    DIA_EVENT_SENSOR_CONDITION, /* a special value instead of glucose ("not calibrated") */
    DIA_EVENT_SITE_CHANGE,
    DIA_EVENT_REWIND,
    DIA_EVENT_PRIME,
    DIA_EVENT_ALARM,
    DIA_EVENT_BATTERY_CHANGE,
    DIA_EVENT_EXERCISE,
    DIA_EVENT_HEALTH,
    DIA_EVENT_TIME_CHANGE,
    DIA_EVENT_NOTE,
};
#define DIA_EVENT_MAX DIA_EVENT_NOTE

struct dia_glucose {
    int32_t mgdl;     /* 39..401 in practice; special codes never land here */
    int32_t trend;    /* enum dia_trend */
    int32_t rate_x10; /* mg/dL per minute × 10, signed */
    int32_t noise;    /* device noise level as reported */
    int32_t filtered; /* raw sensor counts */
    int32_t unfiltered;
    int32_t rssi; /* dBm, signed */
    uint32_t flags;
};

struct dia_meter {
    int32_t mgdl;
    uint32_t flags;
    char meter_serial[32];
};

struct dia_bolus {
    int32_t type; /* enum dia_bolus_type */
    int32_t programmed_mu;
    int32_t delivered_mu;
    int32_t extended_mu; /* square part of a square/dual bolus */
    int32_t duration_s;  /* of the square part */
    bool has_wizard;
    int32_t wizard_carbs_dg;
    int32_t wizard_bg_mgdl;
    int32_t wizard_target_low_mgdl;
    int32_t wizard_target_high_mgdl;
    int32_t wizard_carb_ratio_dg; /* grams of carbohydrate per unit, × 10 */
    int32_t wizard_isf_mgdl;      /* mg/dL per unit */
    int32_t wizard_iob_mu;
    int32_t wizard_food_mu;
    int32_t wizard_correction_mu;
};

struct dia_basal {
    int32_t type; /* enum dia_basal_type */
    int32_t rate_mu_h;
    int32_t percent;
    int32_t duration_s;
};

struct dia_carbs {
    int32_t carbs_dg;
};

struct dia_event {
    int32_t type; /* enum dia_event_type */
    int32_t code; /* device-specific code, kept raw */
    char text[128];
};

struct dia_status {
    int32_t battery_pct;
    int32_t battery_mv;
    int32_t reservoir_mu;
    int32_t signal; /* dBm */
    char state[48];
    char firmware[48];
    char transmitter[16];
};

struct dia_calibration {
    double slope;
    double intercept;
    double scale;
};

struct dia_record {
    int64_t seq; /* journal sequence number; 0 until stored */
    enum dia_kind kind;
    enum dia_origin origin;
    char key[DIA_KEY_HEX + 1]; /* see dia_record_set_key() */
    int64_t t_utc_ms;          /* best estimate of when it happened */
    char device_time[40];      /* the device's own clock value, exactly as read */
    int32_t utc_offset_min;    /* offset of the user's local time, DIA_ABSENT if unknown */
    int64_t received_ms;       /* when diabridge received it */
    char driver[24];           /* source driver: "dexcom-usb", "sim" */
    char device_id[40];        /* serial number / transmitter id */
    char sensor[40];           /* glucose: consolidation group (transmitter id or patient) */
    union {
        struct dia_glucose glucose;
        struct dia_meter meter;
        struct dia_bolus bolus;
        struct dia_basal basal;
        struct dia_carbs carbs;
        struct dia_event event;
        struct dia_status status;
        struct dia_calibration calibration;
    } u;
};

/* Zero the record and mark every optional field absent. */
void dia_record_init(struct dia_record *r, enum dia_kind kind);

/*
 * Derive record_key from what identifies the fact on the device: driver,
 * device_id, kind, plus an identity the driver formats (a record index, the
 * raw device time, …).  Never the receive time.  driver, device_id and kind
 * must be set first.  Same inputs, same key; any difference, another key.
 */
void dia_record_set_key(struct dia_record *r, const char *identity_fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Checks the invariants every stored record must satisfy (ranges, key set,
 * strings terminated).  Returns DIA_OK or DIA_ERR_IMPLAUSIBLE / DIA_ERR_ARG,
 * with a reason in why (may be NULL). */
int dia_record_validate(const struct dia_record *r, char *why, size_t why_len);

const char *dia_kind_name(enum dia_kind kind); /* "glucose", … */
int dia_kind_parse(const char *name);          /* -1 when unknown */
const char *dia_origin_name(enum dia_origin origin);
const char *dia_trend_name(int trend);     /* Dexcom/Nightscout direction names */
const char *dia_event_type_name(int type); /* "sensor_start", … */
const char *dia_bolus_type_name(int type);
const char *dia_basal_type_name(int type);

/* mmol/L = mg/dL / DIA_MGDL_PER_MMOL (stated once, here and in DATA_FORMAT.md) */
#define DIA_MGDL_PER_MMOL 18.0

/*
 * JSON form (the journal payload, the jsonl sink, the export verb).
 * dia_record_to_json returns a new jansson object (caller decrefs) or NULL
 * when out of memory.  dia_record_from_json accepts what to_json writes.
 */
struct json_t;
struct json_t *dia_record_to_json(const struct dia_record *r);
int dia_record_from_json(const struct json_t *obj, struct dia_record *r);
/* Convenience: compact JSON text, malloc'd; NULL on failure. */
char *dia_record_to_json_text(const struct dia_record *r);
int dia_record_from_json_text(const char *text, struct dia_record *r);

/*
 * A batch of records produced by one source poll, plus the source's own
 * state updates (e.g. "newest record index read"), committed to the journal
 * in ONE transaction so that a crash can never store the records without the
 * state or the state without the records.
 */
struct dia_state_update {
    char *key;
    char *value;
};

struct dia_batch {
    struct dia_record *recs;
    size_t n, cap;
    struct dia_state_update *state;
    size_t nstate, capstate;
};

void dia_batch_init(struct dia_batch *b);
void dia_batch_clear(struct dia_batch *b); /* empty it, keep the memory */
void dia_batch_free(struct dia_batch *b);
/* A new record at the end of the batch, initialised for kind; NULL when out of memory. */
struct dia_record *dia_batch_add(struct dia_batch *b, enum dia_kind kind);
/* Remove the last record added (a driver that found it implausible). */
void dia_batch_drop_last(struct dia_batch *b);
int dia_batch_set_state(struct dia_batch *b, const char *key, const char *value);

#endif
