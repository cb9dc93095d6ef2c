/*
 * Dexcom receiver database pages and records.
 *
 * Page (spec §2.1), 528 bytes = 28-byte header + 500 data bytes, all
 * little-endian:
 *
 *   0   u32  first_record_index (receiver-global index of record 0)
 *   4   u32  num_records
 *   8   u8   record_type (partition id)
 *   9   u8   revision
 *   10  u32  page_number
 *   14  3 × u32 reserved (0)
 *   26  u16  CRC-16/XMODEM over bytes 0..25
 *   28  records, oldest first, each exactly RecordLength bytes; the last
 *       two bytes of every record are its own CRC over the rest.  Unused
 *       space is 0xFF.
 *
 * Every record starts with u32 system_time, u32 display_time, seconds since
 * 2009-01-01 (spec §2.3).  System time is the receiver's internal clock
 * (RTC + system offset, roughly UTC); display time = system time + the
 * user's offset (local wall time).  Both are kept raw in the structs.
 *
 * Layouts (spec §2.4; offsets from the record start, CRC always last):
 *
 *   EGV rev 1–3, 13 B (G4): 8 u16 glucose+flags, 10 u8 trend+noise.
 *   EGV rev 4, 23 B (G5): 8 u16 glucose+flags, 10 u32 egv_system_time,
 *       14 u32 transmitter_time, 18 u8 filtered rate, 19 u8 trend+noise,
 *       20 u8 algorithm state.
 *   EGV rev 5, 25 B (touchscreen): rev 4 + 21 u16 predicted glucose.
 *   BACKFILLED_EGV (type 18): parsed with the EGV rev-4/5 layout.  Its
 *       revision number on real receivers is unknown (the only page we have
 *       is synthetic and says 5), so the layout is chosen by record length
 *       (23 or 25) for this partition.
 *   Sensor rev 1, 20 B: 8 u32 unfiltered, 12 u32 filtered, 16 i8 RSSI
 *       (signed: −63…−90 dBm in ecc1's data; other readers wrongly read a
 *       u16), 17 u8 unknown.
 *   Meter rev 1, 16 B: 8 u16 glucose, 10 u32 meter_time.
 *   Meter rev 3, 21 B: 8 u16 glucose, 10 u8 entry type, 11 u32 meter_time,
 *       15 u32 meter transmitter time.
 *   User event, 20 B, every revision: 8 u8 type, 9 u8 subtype,
 *       10 u32 event_time (display domain), 14 u32 value.
 *   Insertion rev 1, 15 B: 8 u32 insertion_time (FFFFFFFF = none),
 *       12 u8 session state.  Rev ≥ 2, 25 B: + 13 u32 number,
 *       17 char[6] transmitter id.
 *   CalSet, 148 B for rev ≤ 2 and 249 B for rev ≥ 3: 8 f64 slope,
 *       16 f64 intercept, 24 f64 scale, 32 3 × u8 unknown, 35 f64 decay,
 *       43 u8 n_sub, 44 + 17·i sub-records (u32 entered, i32 meter,
 *       i32 raw, u32 applied, u8 unknown).  Sub-record times are in the
 *       system-time domain: ecc1 shows them shifted by the record's
 *       display − system offset, and its expected decodings agree with
 *       that to the second.
 *   User settings rev 3, 48 B (G4): 8 i32 system offset, 12 i32 display
 *       offset, 16 u32 transmitter (encoding unknown), 20 u32 enable flags.
 *       Rev 5, 50 B (G5) and rev 6, 60 B (G6): 8 i32 system offset,
 *       12 i32 display offset, 16 char[6] transmitter id, 22 u32 enable
 *       flags.  Offsets from tidepool's format strings (spec §2.4 "reference
 *       only"); no real page of this partition was available to check them.
 *       Each clock change adds a record, so this is the clock-change log.
 *   Manufacturing, firmware and PC parameters (types 0–2), 500 B: 8..497
 *       a NUL-padded XML string.
 *   Aberration (6), receiver log (8), receiver error (9): only the times
 *       are read; the body is kept raw.
 *
 * Glucose semantics (spec §2.4):
 *   value = u16 & 0x3FF.  Bit 15 is DISPLAY_ONLY on the G4 (a duplicate of
 *   a real reading; Studio's export matches the capture only when these are
 *   skipped), bit 14 computed on transmitter, bit 13 BACKFILLED.  Bits
 *   10–12 have no known meaning; a record with any of them set is refused
 *   as implausible rather than read as a value.  Values below 13 are
 *   special conditions (?SN, ?NC, …), never glucose.  We accept 13..600 as
 *   a reading (below 40 and above 400 the receiver shows LOW and HIGH) and
 *   refuse larger values.  trend = low nibble of the trend byte (0–9),
 *   noise = bits 4–6.  For revision ≥ 4 the measurement time is the
 *   offset-10 egv_system_time, for every record, not only backfilled ones
 *   (spec §2.4, "How backfill works").  Measured after it was written, or
 *   more than a day before, is refused as implausible (limits in
 *   dexcom_rx.h).
 *
 * Record lengths come from READ_DATABASE_PARTITION_INFO when the caller has
 * it (spec §2.1 "best practice"); the built-in table below is the fallback
 * and the check that a (type, revision, length) triple is one we know.
 */
#include "proto/dexcom_rx/dexcom_rx.h"

#include "core/err.h"
#include "proto/dexcom_rx/internal.h"

#include <math.h>
#include <string.h>

#define RECORD_MIN_LEN 10 /* two u32 times + CRC */

enum egv_variant {
    EGV_G4 = 0,
    EGV_G5,
    EGV_TOUCH,
};

struct layout_row {
    uint8_t type;
    uint8_t rev_min;
    uint8_t rev_max;
    uint16_t length;
    enum dexcom_rx_record_kind kind;
    uint8_t variant; /* layout variant within a kind */
};

/* Known layouts, spec §2.2 and §2.4.  The first row matching (type,
 * revision) gives the default record length. */
static const struct layout_row layouts[] = {
    {DEXCOM_RX_REC_MANUFACTURING_DATA, 1, 255, 500, DEXCOM_RX_KIND_XML, 0},
    {DEXCOM_RX_REC_FIRMWARE_PARAMETER_DATA, 1, 255, 500, DEXCOM_RX_KIND_XML, 0},
    {DEXCOM_RX_REC_PC_SOFTWARE_PARAMETER, 1, 255, 500, DEXCOM_RX_KIND_XML, 0},
    {DEXCOM_RX_REC_SENSOR_DATA, 1, 1, 20, DEXCOM_RX_KIND_SENSOR, 0},
    {DEXCOM_RX_REC_EGV_DATA, 1, 3, 13, DEXCOM_RX_KIND_EGV, EGV_G4},
    {DEXCOM_RX_REC_EGV_DATA, 4, 4, 23, DEXCOM_RX_KIND_EGV, EGV_G5},
    {DEXCOM_RX_REC_EGV_DATA, 5, 5, 25, DEXCOM_RX_KIND_EGV, EGV_TOUCH},
    {DEXCOM_RX_REC_CAL_SET, 1, 2, 148, DEXCOM_RX_KIND_CAL_SET, 0},
    {DEXCOM_RX_REC_CAL_SET, 3, 255, 249, DEXCOM_RX_KIND_CAL_SET, 0},
    {DEXCOM_RX_REC_ABERRATION, 1, 1, 15, DEXCOM_RX_KIND_RAW, 0},
    {DEXCOM_RX_REC_INSERTION_TIME, 1, 1, 15, DEXCOM_RX_KIND_INSERTION, 0},
    {DEXCOM_RX_REC_INSERTION_TIME, 2, 255, 25, DEXCOM_RX_KIND_INSERTION, 1},
    {DEXCOM_RX_REC_RECEIVER_LOG_DATA, 1, 1, 20, DEXCOM_RX_KIND_RAW, 0},
    {DEXCOM_RX_REC_RECEIVER_ERROR_DATA, 1, 1, 500, DEXCOM_RX_KIND_RAW, 0},
    {DEXCOM_RX_REC_METER_DATA, 1, 1, 16, DEXCOM_RX_KIND_METER, 1},
    {DEXCOM_RX_REC_METER_DATA, 3, 3, 21, DEXCOM_RX_KIND_METER, 3},
    {DEXCOM_RX_REC_USER_EVENT_DATA, 1, 255, 20, DEXCOM_RX_KIND_USER_EVENT, 0},
    {DEXCOM_RX_REC_USER_SETTING_DATA, 3, 3, 48, DEXCOM_RX_KIND_USER_SETTINGS, 3},
    {DEXCOM_RX_REC_USER_SETTING_DATA, 5, 5, 50, DEXCOM_RX_KIND_USER_SETTINGS, 5},
    {DEXCOM_RX_REC_USER_SETTING_DATA, 6, 6, 60, DEXCOM_RX_KIND_USER_SETTINGS, 6},
    /* Revision unknown on real receivers: chosen by length (see top). */
    {DEXCOM_RX_REC_BACKFILLED_EGV, 0, 255, 25, DEXCOM_RX_KIND_EGV, EGV_TOUCH},
    {DEXCOM_RX_REC_BACKFILLED_EGV, 0, 255, 23, DEXCOM_RX_KIND_EGV, EGV_G5},
};

static const struct layout_row *layout_find(uint8_t type, uint8_t rev, size_t len)
{
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        const struct layout_row *r = &layouts[i];
        if (r->type == type && rev >= r->rev_min && rev <= r->rev_max &&
            (len == 0 || r->length == len))
            return r;
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

const char *dexcom_rx_record_type_name(uint8_t t)
{
    static const char *const names[] = {
        "MANUFACTURING_DATA",
        "FIRMWARE_PARAMETER_DATA",
        "PC_SOFTWARE_PARAMETER",
        "SENSOR_DATA",
        "EGV_DATA",
        "CAL_SET",
        "ABERRATION",
        "INSERTION_TIME",
        "RECEIVER_LOG_DATA",
        "RECEIVER_ERROR_DATA",
        "METER_DATA",
        "USER_EVENT_DATA",
        "USER_SETTING_DATA",
    };
    if (t < sizeof names / sizeof names[0])
        return names[t];
    if (t == DEXCOM_RX_REC_BACKFILLED_EGV)
        return "BACKFILLED_EGV";
    return "UNKNOWN";
}

const char *dexcom_rx_kind_name(enum dexcom_rx_record_kind kind)
{
    switch (kind) {
    case DEXCOM_RX_KIND_RAW:
        return "raw";
    case DEXCOM_RX_KIND_EGV:
        return "egv";
    case DEXCOM_RX_KIND_SENSOR:
        return "sensor";
    case DEXCOM_RX_KIND_METER:
        return "meter";
    case DEXCOM_RX_KIND_USER_EVENT:
        return "user_event";
    case DEXCOM_RX_KIND_INSERTION:
        return "insertion";
    case DEXCOM_RX_KIND_CAL_SET:
        return "cal_set";
    case DEXCOM_RX_KIND_USER_SETTINGS:
        return "user_settings";
    case DEXCOM_RX_KIND_XML:
        return "xml";
    }
    return "unknown";
}

struct special_row {
    uint8_t value;
    const char *name;
    const char *display;
};

static const struct special_row specials[] = {
    {DEXCOM_RX_SPECIAL_NONE, "none", "??0"},
    {DEXCOM_RX_SPECIAL_SENSOR_NOT_ACTIVE, "sensor not active", "?SN"},
    {DEXCOM_RX_SPECIAL_MINIMAL_DEVIATION, "minimal deviation", "??2"},
    {DEXCOM_RX_SPECIAL_NO_ANTENNA, "no antenna", "?NA"},
    {DEXCOM_RX_SPECIAL_SENSOR_NOT_CALIBRATED, "sensor not calibrated", "?NC"},
    {DEXCOM_RX_SPECIAL_COUNTS_DEVIATION, "counts deviation", "?CD"},
    {DEXCOM_RX_SPECIAL_ABSOLUTE_DEVIATION, "absolute deviation", "?AD"},
    {DEXCOM_RX_SPECIAL_POWER_DEVIATION, "power deviation", "???"},
    {DEXCOM_RX_SPECIAL_BAD_RF, "bad RF", "?RF"},
};

static const struct special_row *special_find(unsigned v)
{
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
        if (specials[i].value == v)
            return &specials[i];
    }
    return NULL;
}

const char *dexcom_rx_special_name(unsigned value)
{
    const struct special_row *r = special_find(value);
    return r ? r->name : "unknown special value";
}

const char *dexcom_rx_special_display(unsigned value)
{
    const struct special_row *r = special_find(value);
    return r ? r->display : "";
}

const char *dexcom_rx_trend_name(uint8_t trend)
{
    static const char *const names[] = {
        "None",          "DoubleUp",   "SingleUp",   "FortyFiveUp",   "Flat",
        "FortyFiveDown", "SingleDown", "DoubleDown", "NotComputable", "RateOutOfRange",
    };
    return trend < sizeof names / sizeof names[0] ? names[trend] : "Unknown";
}

const char *dexcom_rx_noise_name(uint8_t noise)
{
    static const char *const names[] = {
        "None", "Clean", "Light", "Medium", "Heavy", "NotComputed", "Max",
    };
    return noise < sizeof names / sizeof names[0] ? names[noise] : "Unknown";
}

const char *dexcom_rx_event_type_name(uint8_t type)
{
    static const char *const names[] = {"Unknown", "Carbs", "Insulin", "Health", "Exercise"};
    return type < sizeof names / sizeof names[0] ? names[type] : "Unknown";
}

const char *dexcom_rx_event_subtype_name(uint8_t type, uint8_t subtype)
{
    static const char *const health[] = {
        "", "Illness", "Stress", "HighSymptoms", "LowSymptoms", "Cycle", "Alcohol",
    };
    static const char *const exercise[] = {"", "Light", "Medium", "Heavy"};
    if (type == DEXCOM_RX_EVENT_HEALTH && subtype < sizeof health / sizeof health[0])
        return health[subtype];
    if (type == DEXCOM_RX_EVENT_EXERCISE && subtype < sizeof exercise / sizeof exercise[0])
        return exercise[subtype];
    if (type == DEXCOM_RX_EVENT_INSULIN && subtype == 1)
        return "Fast";
    if (type == DEXCOM_RX_EVENT_INSULIN && subtype == 2)
        return "Long";
    return "";
}

const char *dexcom_rx_session_state_name(uint8_t state)
{
    static const char *const names[] = {
        "NONE",           "REMOVED",       "EXPIRED", "RESIDUAL_DEVIATION", "COUNTS_DEVIATION",
        "SECOND_SESSION", "OFF_TIME_LOSS", "STARTED", "BAD_TRANSMITTER",    "MANUFACTURING_MODE",
    };
    return state < sizeof names / sizeof names[0] ? names[state] : "UNKNOWN";
}

/* ------------------------------------------------------------------ */
/* Pages                                                               */
/* ------------------------------------------------------------------ */

int dexcom_rx_page_header_parse(const uint8_t *buf, size_t len, struct dexcom_rx_page_header *out)
{
    if (!buf || !out)
        return DIA_ERR_ARG;
    if (len < DEXCOM_RX_PAGE_HEADER_SIZE)
        return DIA_ERR_TRUNCATED;
    if (dexcom_rx_crc16(buf, 26) != dexcom_rx_le16(buf + 26))
        return DIA_ERR_CRC;
    out->first_record_index = dexcom_rx_le32(buf);
    out->num_records = dexcom_rx_le32(buf + 4);
    out->record_type = buf[8];
    out->revision = buf[9];
    out->page_number = dexcom_rx_le32(buf + 10);
    for (int i = 0; i < 3; i++)
        out->reserved[i] = dexcom_rx_le32(buf + 14 + 4 * i);
    return DIA_OK;
}

uint16_t dexcom_rx_record_length(const struct dexcom_rx_partition_info *pi, uint8_t record_type,
                                 uint8_t revision)
{
    const struct dexcom_rx_partition *p = dexcom_rx_partition_find(pi, record_type);
    if (p && p->revision == revision)
        return p->record_length;
    const struct layout_row *r = layout_find(record_type, revision, 0);
    return r ? r->length : 0;
}

int dexcom_rx_page_open(const uint8_t *buf, size_t len, uint16_t record_length,
                        struct dexcom_rx_page *out)
{
    if (!buf || !out)
        return DIA_ERR_ARG;
    if (len < DEXCOM_RX_PAGE_SIZE)
        return DIA_ERR_TRUNCATED;
    int rc = dexcom_rx_page_header_parse(buf, len, &out->hdr);
    if (rc != DIA_OK)
        return rc;
    if (record_length == 0)
        record_length = dexcom_rx_record_length(NULL, out->hdr.record_type, out->hdr.revision);
    if (record_length == 0)
        return DIA_ERR_UNSUPPORTED;
    if (record_length < RECORD_MIN_LEN || record_length > DEXCOM_RX_PAGE_DATA_SIZE)
        return DIA_ERR_IMPLAUSIBLE;
    if ((uint64_t)out->hdr.num_records * record_length > DEXCOM_RX_PAGE_DATA_SIZE)
        return DIA_ERR_IMPLAUSIBLE;
    out->data = buf + DEXCOM_RX_PAGE_HEADER_SIZE;
    out->record_length = record_length;
    return DIA_OK;
}

int dexcom_rx_pages_in_payload(size_t payload_len)
{
    if (payload_len == 0 || payload_len % DEXCOM_RX_PAGE_SIZE != 0)
        return DIA_ERR_TRUNCATED;
    size_t n = payload_len / DEXCOM_RX_PAGE_SIZE;
    return n > 255 ? DIA_ERR_IMPLAUSIBLE : (int)n;
}

/* ------------------------------------------------------------------ */
/* Records                                                             */
/* ------------------------------------------------------------------ */

static int decode_egv(const uint8_t *r, size_t len, uint8_t variant, struct dexcom_rx_record *out)
{
    struct dexcom_rx_egv *e = &out->u.egv;
    uint16_t raw = dexcom_rx_le16(r + 8);
    uint16_t value = raw & 0x3FF;

    e->raw_glucose = raw;
    e->display_only = (raw & DEXCOM_RX_EGV_FLAG_DISPLAY_ONLY) != 0;
    e->computed_on_transmitter = (raw & DEXCOM_RX_EGV_FLAG_ON_TRANSMITTER) != 0;
    e->backfilled = (raw & DEXCOM_RX_EGV_FLAG_BACKFILLED) != 0;
    /* Bits 10..12 have no documented meaning: do not guess. */
    if (raw & 0x1C00) {
        out->why = "undocumented glucose flag bits";
        return DIA_ERR_IMPLAUSIBLE;
    }

    if (variant == EGV_G4) {
        e->raw_trend_noise = r[10];
        e->measured_system_time = out->system_time;
    } else {
        e->has_g5_fields = true;
        e->egv_system_time = dexcom_rx_le32(r + 10);
        e->transmitter_time = dexcom_rx_le32(r + 14);
        e->raw_filtered_rate = r[18];
        e->raw_trend_noise = r[19];
        e->algorithm_state = r[20];
        if (e->egv_system_time == 0 || e->egv_system_time == 0xFFFFFFFFu) {
            out->why = "no measurement time";
            return DIA_ERR_IMPLAUSIBLE;
        }
        /* Measured before it was written, and not long before (the limits
         * and why they are what they are: dexcom_rx.h). */
        int64_t lead = (int64_t)e->egv_system_time - (int64_t)out->system_time;
        if (lead > DEXCOM_RX_MEASURED_AFTER_WRITE_MAX_S) {
            out->why = "measured after it was written";
            return DIA_ERR_IMPLAUSIBLE;
        }
        if (-lead > DEXCOM_RX_MEASURED_BEFORE_WRITE_MAX_S) {
            out->why = "measured more than 24 h before it was written";
            return DIA_ERR_IMPLAUSIBLE;
        }
        e->measured_system_time = e->egv_system_time;
        if (variant == EGV_TOUCH && len >= 25) {
            uint16_t p = dexcom_rx_le16(r + 21);
            uint16_t pv = p & 0x3FF;
            e->has_predicted = true;
            e->raw_predicted = p;
            e->predicted_urgent_low_soon = (p & DEXCOM_RX_PREDICTED_URGENT_LOW) != 0;
            e->predicted_backfilled = (p & DEXCOM_RX_EGV_FLAG_BACKFILLED) != 0;
            e->predicted_available =
                pv > DEXCOM_RX_PREDICTED_UNAVAILABLE && pv <= DEXCOM_RX_GLUCOSE_MAX_PLAUSIBLE;
            e->predicted_mgdl = e->predicted_available ? pv : 0;
        }
    }
    e->trend = e->raw_trend_noise & 0x0F;
    e->noise = (uint8_t)((e->raw_trend_noise & 0x70) >> 4);

    if (value < DEXCOM_RX_SPECIAL_LIMIT) {
        e->cls = DEXCOM_RX_EGV_SPECIAL;
        e->special = (uint8_t)value;
        e->mgdl = 0;
        return DIA_OK;
    }
    if (value > DEXCOM_RX_GLUCOSE_MAX_PLAUSIBLE) {
        out->why = "glucose above 600 mg/dL";
        return DIA_ERR_IMPLAUSIBLE;
    }
    e->cls = DEXCOM_RX_EGV_GLUCOSE;
    e->mgdl = value;
    e->below_range = value < DEXCOM_RX_DISPLAY_LOW;
    e->above_range = value > DEXCOM_RX_DISPLAY_HIGH;
    return DIA_OK;
}

static void decode_sensor(const uint8_t *r, struct dexcom_rx_record *out)
{
    struct dexcom_rx_sensor *s = &out->u.sensor;
    s->unfiltered = dexcom_rx_le32(r + 8);
    s->filtered = dexcom_rx_le32(r + 12);
    s->rssi = (int8_t)r[16];
    s->raw_byte17 = r[17];
}

/* Meter readings: G4-era meters and the receivers accept 20..600 mg/dL. */
#define METER_MIN_MGDL 20
#define METER_MAX_MGDL 600

static int decode_meter(const uint8_t *r, uint8_t variant, struct dexcom_rx_record *out)
{
    struct dexcom_rx_meter *m = &out->u.meter;
    m->mgdl = dexcom_rx_le16(r + 8);
    if (variant == 1) {
        m->meter_time = dexcom_rx_le32(r + 10);
    } else {
        m->has_g5_fields = true;
        m->entry_type = r[10];
        m->meter_time = dexcom_rx_le32(r + 11);
        m->meter_transmitter_time = dexcom_rx_le32(r + 15);
    }
    if (m->mgdl < METER_MIN_MGDL || m->mgdl > METER_MAX_MGDL) {
        out->why = "meter glucose outside 20..600 mg/dL";
        return DIA_ERR_IMPLAUSIBLE;
    }
    return DIA_OK;
}

static void decode_event(const uint8_t *r, struct dexcom_rx_record *out)
{
    struct dexcom_rx_user_event *ev = &out->u.event;
    ev->type = r[8];
    ev->subtype = r[9];
    ev->event_time = dexcom_rx_le32(r + 10);
    ev->value = dexcom_rx_le32(r + 14);
}

/* Copy a fixed-width id field: alphanumeric characters up to the first
 * NUL.  Anything else leaves the id empty (the raw bytes remain). */
static void copy_id(const uint8_t *p, size_t n, char out[8])
{
    size_t k = 0;
    while (k < n && p[k] != 0) {
        uint8_t c = p[k];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
            out[0] = '\0';
            return;
        }
        k++;
    }
    memcpy(out, p, k);
    out[k] = '\0';
}

static void decode_insertion(const uint8_t *r, uint8_t variant, struct dexcom_rx_record *out)
{
    struct dexcom_rx_insertion *in = &out->u.insertion;
    in->insertion_time = dexcom_rx_le32(r + 8);
    in->has_insertion_time = in->insertion_time != 0xFFFFFFFFu;
    in->session_state = r[12];
    if (variant == 1) {
        in->has_g5_fields = true;
        in->number = dexcom_rx_le32(r + 13);
        copy_id(r + 17, 6, in->transmitter_id);
    }
}

static int decode_cal(const uint8_t *r, size_t len, struct dexcom_rx_record *out)
{
    struct dexcom_rx_cal_set *c = &out->u.cal;
    c->slope = dexcom_rx_le_f64(r + 8);
    c->intercept = dexcom_rx_le_f64(r + 16);
    c->scale = dexcom_rx_le_f64(r + 24);
    memcpy(c->raw_unknown, r + 32, 3);
    c->decay = dexcom_rx_le_f64(r + 35);
    c->n_sub = r[43];
    if (!isfinite(c->slope) || !isfinite(c->intercept) || !isfinite(c->scale) ||
        !isfinite(c->decay)) {
        out->why = "calibration value is not a number";
        return DIA_ERR_IMPLAUSIBLE;
    }
    size_t room = (len - 2 - 44) / 17;
    if (room > DEXCOM_RX_CAL_SUB_MAX)
        room = DEXCOM_RX_CAL_SUB_MAX;
    if (c->n_sub > room) {
        out->why = "more calibration entries than fit";
        return DIA_ERR_IMPLAUSIBLE;
    }
    for (unsigned i = 0; i < c->n_sub; i++) {
        const uint8_t *s = r + 44 + 17 * i;
        c->sub[i].entered_time = dexcom_rx_le32(s);
        c->sub[i].meter_mgdl = dexcom_rx_le32s(s + 4);
        c->sub[i].sensor_raw = dexcom_rx_le32s(s + 8);
        c->sub[i].applied_time = dexcom_rx_le32(s + 12);
        c->sub[i].raw_byte16 = s[16];
    }
    return DIA_OK;
}

static void decode_settings(const uint8_t *r, uint8_t variant, struct dexcom_rx_record *out)
{
    struct dexcom_rx_user_settings *s = &out->u.settings;
    s->system_time_offset = dexcom_rx_le32s(r + 8);
    s->display_time_offset = dexcom_rx_le32s(r + 12);
    if (variant == 3) {
        s->raw_transmitter = dexcom_rx_le32(r + 16);
        s->enable_flags = dexcom_rx_le32(r + 20);
    } else {
        copy_id(r + 16, 6, s->transmitter_id);
        s->enable_flags = dexcom_rx_le32(r + 22);
    }
}

static void decode_xml(const uint8_t *r, size_t len, struct dexcom_rx_record *out)
{
    const uint8_t *t = r + 8;
    size_t max = len - 10, n = 0;
    while (n < max && t[n] != 0)
        n++;
    out->u.xml.text = t;
    out->u.xml.len = n;
}

int dexcom_rx_record_decode_raw(const uint8_t *rec, size_t len, uint8_t record_type,
                                uint8_t revision, struct dexcom_rx_record *out)
{
    if (!rec || !out)
        return DIA_ERR_ARG;
    memset(out, 0, sizeof *out);
    if (len < RECORD_MIN_LEN)
        return DIA_ERR_TRUNCATED;
    if (len > DEXCOM_RX_PAGE_DATA_SIZE)
        return DIA_ERR_ARG;
    if (dexcom_rx_crc16(rec, len - 2) != dexcom_rx_le16(rec + len - 2))
        return DIA_ERR_CRC;
    out->record_type = record_type;
    out->revision = revision;
    out->system_time = dexcom_rx_le32(rec);
    out->display_time = dexcom_rx_le32(rec + 4);
    out->raw = rec;
    out->raw_len = (uint16_t)len;
    out->kind = DEXCOM_RX_KIND_RAW;
    return DIA_OK;
}

int dexcom_rx_record_decode(const uint8_t *rec, size_t len, uint8_t record_type, uint8_t revision,
                            struct dexcom_rx_record *out)
{
    int rc = dexcom_rx_record_decode_raw(rec, len, record_type, revision, out);
    if (rc != DIA_OK)
        return rc;
    const struct layout_row *row = layout_find(record_type, revision, len);
    if (!row)
        return DIA_ERR_UNSUPPORTED;
    out->kind = row->kind;
    switch (row->kind) {
    case DEXCOM_RX_KIND_RAW:
        break;
    case DEXCOM_RX_KIND_EGV:
        rc = decode_egv(rec, len, row->variant, out);
        break;
    case DEXCOM_RX_KIND_SENSOR:
        decode_sensor(rec, out);
        break;
    case DEXCOM_RX_KIND_METER:
        rc = decode_meter(rec, row->variant, out);
        break;
    case DEXCOM_RX_KIND_USER_EVENT:
        decode_event(rec, out);
        break;
    case DEXCOM_RX_KIND_INSERTION:
        decode_insertion(rec, row->variant, out);
        break;
    case DEXCOM_RX_KIND_CAL_SET:
        rc = decode_cal(rec, len, out);
        break;
    case DEXCOM_RX_KIND_USER_SETTINGS:
        decode_settings(rec, row->variant, out);
        break;
    case DEXCOM_RX_KIND_XML:
        decode_xml(rec, len, out);
        break;
    }
    if (rc != DIA_OK) {
        /* Refused: leave no half-decoded value behind for a careless
         * caller to publish.  The times and raw bytes stay. */
        memset(&out->u, 0, sizeof out->u);
        out->kind = DEXCOM_RX_KIND_RAW;
    }
    return rc;
}

int dexcom_rx_page_record(const struct dexcom_rx_page *page, uint32_t i,
                          struct dexcom_rx_record *out)
{
    if (!page || !out || !page->data)
        return DIA_ERR_ARG;
    if (i >= page->hdr.num_records)
        return DIA_ERR_ARG;
    size_t off = (size_t)i * page->record_length;
    if (off + page->record_length > DEXCOM_RX_PAGE_DATA_SIZE)
        return DIA_ERR_TRUNCATED;
    int rc = dexcom_rx_record_decode(page->data + off, page->record_length, page->hdr.record_type,
                                     page->hdr.revision, out);
    out->index = page->hdr.first_record_index + i;
    return rc;
}
