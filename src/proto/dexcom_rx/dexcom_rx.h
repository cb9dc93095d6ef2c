/*
 * Dexcom receiver USB codec (G4, G4 Share, G5 and G6 touchscreen receivers).
 *
 * A pure codec: bytes in, structs out.  No I/O, no allocation, no clock;
 * the caller passes host time where a conversion needs it.  Everything the
 * daemon needs to talk to a receiver over its CDC-ACM port is here:
 *
 *   crc.c        CRC-16/XMODEM, shared by frames, page headers and records
 *   frame.c      request frames, reply frames, the streaming recognizer,
 *                small reply payloads (times, battery, units, page range)
 *   partition.c  a tolerant scanner for the receiver's XML replies
 *                (partition info, firmware header)
 *   page.c       528-byte database pages and every record layout
 *
 * The protocol is described in docs/devices/dexcom-usb-protocol.md and at
 * the top of each .c file, with the spec section each fact comes from
 * (shared/specs/dexcom-receiver-usb-and-share.md, "spec" below).
 *
 * Return values follow core/err.h: DIA_OK or a negative dia_err.  Codecs
 * keep rtl_433's split: DIA_ERR_NOT_MINE (not this kind of data at all),
 * DIA_ERR_TRUNCATED and DIA_ERR_CRC (ours but damaged), DIA_ERR_IMPLAUSIBLE
 * (intact but a value cannot be right), DIA_ERR_UNSUPPORTED (a layout we do
 * not know), DIA_ERR_DEVICE (the receiver answered with an error code).
 *
 * Pointers placed in output structs (payload, raw, xml) point into the
 * caller's input buffer and live as long as it does.
 */
#ifndef DIA_PROTO_DEXCOM_RX_H
#define DIA_PROTO_DEXCOM_RX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* CRC                                                                 */
/* ------------------------------------------------------------------ */

/* CRC-16/XMODEM (poly 0x1021, init 0, no reflection, no final XOR). */
uint16_t dexcom_rx_crc16(const uint8_t *data, size_t len);

/* ------------------------------------------------------------------ */
/* Frames (spec §1.3–1.5)                                              */
/* ------------------------------------------------------------------ */

#define DEXCOM_RX_SOF       0x01
#define DEXCOM_RX_FRAME_MIN 6 /* SOF + length + code + CRC */
/* The largest reply the daemon asks for: 4 pages (6 + 4 × 528 = 2118).
 * The recognizer accepts frames up to DEXCOM_RX_FRAME_MAX; a length field
 * above it is taken for a false start of frame. */
#define DEXCOM_RX_FRAME_MAX      4096
#define DEXCOM_RX_REQUEST_MAX    16 /* longest request we build (12 bytes) */
#define DEXCOM_RX_PAGES_PER_READ 4  /* what Dexcom Studio uses (spec §1.3) */

/* Command codes the daemon sends (spec §1.5).  Write, reset, erase and
 * shutdown commands are deliberately absent: this codec cannot build them. */
enum dexcom_rx_cmd {
    DEXCOM_RX_CMD_PING = 0x0A,
    DEXCOM_RX_CMD_READ_FIRMWARE_HEADER = 0x0B,
    DEXCOM_RX_CMD_READ_PARTITION_INFO = 0x0F,
    DEXCOM_RX_CMD_READ_PAGE_RANGE = 0x10,
    DEXCOM_RX_CMD_READ_PAGES = 0x11,
    DEXCOM_RX_CMD_READ_PAGE_HEADER = 0x12,
    DEXCOM_RX_CMD_READ_TRANSMITTER_ID = 0x19,
    DEXCOM_RX_CMD_READ_LANGUAGE = 0x1B,
    DEXCOM_RX_CMD_READ_DISPLAY_TIME_OFFSET = 0x1D,
    DEXCOM_RX_CMD_READ_RTC = 0x1F,
    DEXCOM_RX_CMD_READ_BATTERY_LEVEL = 0x21,
    DEXCOM_RX_CMD_READ_SYSTEM_TIME = 0x22,
    DEXCOM_RX_CMD_READ_SYSTEM_TIME_OFFSET = 0x23,
    DEXCOM_RX_CMD_READ_GLUCOSE_UNIT = 0x25,
    DEXCOM_RX_CMD_READ_BLINDED_MODE = 0x27,
    DEXCOM_RX_CMD_READ_CLOCK_MODE = 0x29,
    DEXCOM_RX_CMD_READ_BATTERY_STATE = 0x30,
};

/* Response codes in byte 3 of a reply (spec §1.4). */
enum dexcom_rx_response {
    DEXCOM_RX_RESP_NULL = 0,
    DEXCOM_RX_RESP_ACK = 1,
    DEXCOM_RX_RESP_NAK = 2,
    DEXCOM_RX_RESP_INVALID_COMMAND = 3,
    DEXCOM_RX_RESP_INVALID_PARAM = 4,
    DEXCOM_RX_RESP_INCOMPLETE_PACKET = 5,
    DEXCOM_RX_RESP_RECEIVER_ERROR = 6,
    DEXCOM_RX_RESP_INVALID_MODE = 7,
};

/* One checksummed frame.  `code` is the command (host→receiver) or the
 * response code (receiver→host). */
struct dexcom_rx_frame {
    uint8_t code;
    const uint8_t *payload; /* into the input buffer */
    size_t payload_len;
    size_t frame_len; /* bytes the frame occupies, from SOF to CRC */
};

/* Whether `cmd` is one this codec will build (a read the daemon needs). */
bool dexcom_rx_cmd_is_allowed(uint8_t cmd);
/* "READ_SYSTEM_TIME", or "UNKNOWN". */
const char *dexcom_rx_cmd_name(uint8_t cmd);
/* "ACK", "NAK", "INVALID_PARAM", …, or "UNKNOWN". */
const char *dexcom_rx_response_name(uint8_t code);

/* Build a request frame into buf (cap bytes).  Returns the frame length,
 * DIA_ERR_ARG for a command outside the allow-list or a bad argument. */
int dexcom_rx_request(uint8_t *buf, size_t cap, uint8_t cmd, const uint8_t *payload,
                      size_t payload_len);
/* Commands without payload: ping, firmware header, partition info, ids,
 * times, battery, units, clock mode. */
int dexcom_rx_request_simple(uint8_t *buf, size_t cap, enum dexcom_rx_cmd cmd);
int dexcom_rx_request_page_range(uint8_t *buf, size_t cap, uint8_t record_type);
/* count: 1 .. DEXCOM_RX_PAGES_PER_READ */
int dexcom_rx_request_read_pages(uint8_t *buf, size_t cap, uint8_t record_type, uint32_t first_page,
                                 uint8_t count);
int dexcom_rx_request_page_header(uint8_t *buf, size_t cap, uint8_t record_type, uint32_t page);

/* Parse one frame at the start of buf.  DIA_ERR_NOT_MINE: no SOF or a
 * length field below 6; DIA_ERR_TRUNCATED: fewer bytes than the length
 * field says; DIA_ERR_CRC: checksum mismatch.  Bytes after the frame are
 * ignored (see frame_len). */
int dexcom_rx_frame_parse(const uint8_t *buf, size_t len, struct dexcom_rx_frame *out);

/* Classify a parsed reply: DIA_OK for ACK; DIA_ERR_DEVICE for NAK and every
 * other code, with the code in *response so NAK, INVALID_PARAM, … stay
 * distinct.  response may be NULL. */
int dexcom_rx_reply_check(const struct dexcom_rx_frame *frame, uint8_t *response);

/* Parse a whole reply buffer (exactly one frame) and check it is an ACK. */
int dexcom_rx_reply_parse(const uint8_t *buf, size_t len, struct dexcom_rx_frame *out,
                          uint8_t *response);

/* ------------------------------------------------------------------ */
/* Streaming recognizer (like gpsd's packet layer)                     */
/* ------------------------------------------------------------------ */

struct dexcom_rx_stream {
    uint8_t buf[DEXCOM_RX_FRAME_MAX];
    size_t len;                  /* bytes held in buf, buf[0] == SOF when len > 0 */
    unsigned long garbage_bytes; /* bytes dropped while looking for SOF */
    unsigned long crc_errors;    /* complete candidate frames with a bad CRC */
    unsigned long frames;        /* good frames yielded */
    bool have_frame;             /* a frame was yielded; drop it on next feed */
};

void dexcom_rx_stream_init(struct dexcom_rx_stream *s);
/* Feed bytes.  Returns 1 when a complete checksummed frame is ready in
 * *frame (pointing into s->buf, valid until the next call), with *used set
 * to the number of input bytes consumed; call again with the rest.
 * Returns 0 when all input was consumed without completing a frame.
 * Garbage before SOF and frames with a bad CRC are dropped and counted. */
int dexcom_rx_stream_feed(struct dexcom_rx_stream *s, const uint8_t *data, size_t len, size_t *used,
                          struct dexcom_rx_frame *frame);
/* Drop whatever is buffered (after a timeout, before a new request). */
void dexcom_rx_stream_reset(struct dexcom_rx_stream *s);

/* ------------------------------------------------------------------ */
/* Small reply payloads (spec §1.5)                                    */
/* ------------------------------------------------------------------ */

enum dexcom_rx_battery_state {
    DEXCOM_RX_BATTERY_CHARGING = 1,
    DEXCOM_RX_BATTERY_NOT_CHARGING = 2,
    DEXCOM_RX_BATTERY_NTC_FAULT = 3,
    DEXCOM_RX_BATTERY_BAD = 4,
};

enum dexcom_rx_glucose_unit {
    DEXCOM_RX_UNIT_NONE = 0,
    DEXCOM_RX_UNIT_MGDL = 1,
    DEXCOM_RX_UNIT_MMOLL = 2,
};

enum dexcom_rx_clock_mode {
    DEXCOM_RX_CLOCK_24H = 0,
    DEXCOM_RX_CLOCK_12H = 1,
};

/* Each takes the payload of an ACK reply.  A short payload is
 * DIA_ERR_TRUNCATED, a longer one or a value outside its table
 * DIA_ERR_IMPLAUSIBLE. */
int dexcom_rx_parse_system_time(const uint8_t *p, size_t len, uint32_t *seconds);
int dexcom_rx_parse_display_time_offset(const uint8_t *p, size_t len, int32_t *seconds);
int dexcom_rx_parse_battery_level(const uint8_t *p, size_t len, uint32_t *percent);
int dexcom_rx_parse_battery_state(const uint8_t *p, size_t len, uint8_t *state);
int dexcom_rx_parse_glucose_unit(const uint8_t *p, size_t len, uint8_t *unit);
int dexcom_rx_parse_clock_mode(const uint8_t *p, size_t len, uint8_t *mode);
/* 5 (G4) or 6 (G5/G6) alphanumeric characters, NUL-terminated in out. */
int dexcom_rx_parse_transmitter_id(const uint8_t *p, size_t len, char out[8]);
const char *dexcom_rx_battery_state_name(uint8_t state);

/* ------------------------------------------------------------------ */
/* Page range (spec §1.5 command 16, §2.1)                             */
/* ------------------------------------------------------------------ */

#define DEXCOM_RX_PAGE_NONE 0xFFFFFFFFu

struct dexcom_rx_page_range {
    uint32_t first; /* inclusive */
    uint32_t last;  /* inclusive */
    bool empty;     /* the receiver answered FFFFFFFF FFFFFFFF */
};

/* DIA_ERR_IMPLAUSIBLE when first > last or only one of them is FFFFFFFF. */
int dexcom_rx_parse_page_range(const uint8_t *p, size_t len, struct dexcom_rx_page_range *out);
/* Number of pages in the range: last − first + 1, or 0 when empty.  A
 * range with first == last (any value, 0 included) holds one page. */
uint64_t dexcom_rx_page_range_count(const struct dexcom_rx_page_range *r);
/* How many pages to request starting at `from`: min(max, last − from + 1),
 * or 0 when the range is empty or `from` lies outside it.  Loop with
 *   for (p = r.first; (n = chunk(&r, p, 4)) > 0; p += n) … */
uint8_t dexcom_rx_page_range_chunk(const struct dexcom_rx_page_range *r, uint32_t from,
                                   uint8_t max);

/* ------------------------------------------------------------------ */
/* Receiver time (spec §2.3)                                           */
/* ------------------------------------------------------------------ */

#define DEXCOM_RX_EPOCH_UNIX 1230768000LL /* 2009-01-01T00:00:00Z */

/* Receiver seconds (system or display) to Unix seconds, taking the
 * receiver's clock at face value. */
int64_t dexcom_rx_to_unix(uint32_t receiver_seconds);
/* host_now − (epoch + receiver system time), measured on each poll. */
int64_t dexcom_rx_clock_offset(int64_t host_unix_now, uint32_t receiver_system_time);
/* Best UTC for a system-time stamp: epoch + t + offset (spec §2.3). */
int64_t dexcom_rx_system_to_utc(uint32_t system_time, int64_t clock_offset);

/* ------------------------------------------------------------------ */
/* XML replies: partition info and firmware header (spec §1.5, §2.2)   */
/* ------------------------------------------------------------------ */

/* Record types (partition ids), spec §2.2. */
enum dexcom_rx_record_type {
    DEXCOM_RX_REC_MANUFACTURING_DATA = 0,
    DEXCOM_RX_REC_FIRMWARE_PARAMETER_DATA = 1,
    DEXCOM_RX_REC_PC_SOFTWARE_PARAMETER = 2,
    DEXCOM_RX_REC_SENSOR_DATA = 3,
    DEXCOM_RX_REC_EGV_DATA = 4,
    DEXCOM_RX_REC_CAL_SET = 5,
    DEXCOM_RX_REC_ABERRATION = 6,
    DEXCOM_RX_REC_INSERTION_TIME = 7,
    DEXCOM_RX_REC_RECEIVER_LOG_DATA = 8,
    DEXCOM_RX_REC_RECEIVER_ERROR_DATA = 9,
    DEXCOM_RX_REC_METER_DATA = 10,
    DEXCOM_RX_REC_USER_EVENT_DATA = 11,
    DEXCOM_RX_REC_USER_SETTING_DATA = 12,
    DEXCOM_RX_REC_BACKFILLED_EGV = 18,
};

/* "EGV_DATA", "BACKFILLED_EGV", …, "UNKNOWN". */
const char *dexcom_rx_record_type_name(uint8_t record_type);

#define DEXCOM_RX_PARTITION_NAME_MAX 32

struct dexcom_rx_partition {
    bool present;
    uint8_t revision;       /* RecordRevision */
    uint16_t record_length; /* RecordLength, CRC included */
    char name[DEXCOM_RX_PARTITION_NAME_MAX];
};

struct dexcom_rx_partition_info {
    uint16_t page_data_length; /* 500 on every known receiver */
    uint8_t page_header_version;
    unsigned count;                       /* partitions found */
    unsigned skipped;                     /* <Partition> elements we could not read */
    struct dexcom_rx_partition part[256]; /* indexed by Id */
};

/* Scan the READ_DATABASE_PARTITION_INFO payload (not NUL-terminated).
 * DIA_ERR_NOT_MINE when there is no <PartitionInfo>, DIA_ERR_UNSUPPORTED
 * when PageDataLength is not 500, DIA_ERR_IMPLAUSIBLE when no partition
 * could be read.  A partition with a RecordLength outside 10..500 is
 * skipped (counted in `skipped`). */
int dexcom_rx_partition_info_parse(const uint8_t *xml, size_t len,
                                   struct dexcom_rx_partition_info *out);
/* NULL when the partition is not listed. */
const struct dexcom_rx_partition *
dexcom_rx_partition_find(const struct dexcom_rx_partition_info *pi, uint8_t record_type);

/* Copy the value of attribute `attr` of the first element `element` in an
 * XML text into out (NUL-terminated).  Tolerates either quote and spaces
 * around '='.  DIA_ERR_NOT_MINE if absent, DIA_ERR_TRUNCATED if out is too
 * small.  Used for the firmware header (FirmwareVersion, ProductId, …). */
int dexcom_rx_xml_attr(const uint8_t *xml, size_t len, const char *element, const char *attr,
                       char *out, size_t cap);

/* ------------------------------------------------------------------ */
/* Pages (spec §2.1)                                                   */
/* ------------------------------------------------------------------ */

#define DEXCOM_RX_PAGE_SIZE        528
#define DEXCOM_RX_PAGE_HEADER_SIZE 28
#define DEXCOM_RX_PAGE_DATA_SIZE   500

struct dexcom_rx_page_header {
    uint32_t first_record_index;
    uint32_t num_records;
    uint8_t record_type;
    uint8_t revision;
    uint32_t page_number;
    uint32_t reserved[3];
};

/* Parse and CRC-check the 28-byte header (the reply of READ_PAGE_HEADER,
 * or the start of a page). */
int dexcom_rx_page_header_parse(const uint8_t *buf, size_t len, struct dexcom_rx_page_header *out);

/* The record length for a page: the partition's RecordLength when the
 * partition info lists the same revision as the page header, otherwise the
 * built-in table (spec §2.2/§2.4); 0 when neither knows.  pi may be NULL. */
uint16_t dexcom_rx_record_length(const struct dexcom_rx_partition_info *pi, uint8_t record_type,
                                 uint8_t revision);

struct dexcom_rx_page {
    struct dexcom_rx_page_header hdr;
    const uint8_t *data; /* the 500 data bytes */
    uint16_t record_length;
};

/* Open one 528-byte page (len ≥ 528; extra bytes are ignored).
 * record_length 0 means "look it up in the built-in table".
 * DIA_ERR_TRUNCATED, DIA_ERR_CRC (header), DIA_ERR_UNSUPPORTED (no known
 * record length), DIA_ERR_IMPLAUSIBLE (more records than fit, or a record
 * length outside 10..500). */
int dexcom_rx_page_open(const uint8_t *buf, size_t len, uint16_t record_length,
                        struct dexcom_rx_page *out);

/* How many whole pages a READ_DATABASE_PAGES payload holds;
 * DIA_ERR_TRUNCATED when it is not a multiple of 528 or is empty. */
int dexcom_rx_pages_in_payload(size_t payload_len);

/* ------------------------------------------------------------------ */
/* Records (spec §2.3–2.4)                                             */
/* ------------------------------------------------------------------ */

enum dexcom_rx_record_kind {
    DEXCOM_RX_KIND_RAW = 0, /* CRC-checked, times read, body kept raw */
    DEXCOM_RX_KIND_EGV,
    DEXCOM_RX_KIND_SENSOR,
    DEXCOM_RX_KIND_METER,
    DEXCOM_RX_KIND_USER_EVENT,
    DEXCOM_RX_KIND_INSERTION,
    DEXCOM_RX_KIND_CAL_SET,
    DEXCOM_RX_KIND_USER_SETTINGS,
    DEXCOM_RX_KIND_XML,
};

const char *dexcom_rx_kind_name(enum dexcom_rx_record_kind kind);

/* Special glucose values (< 13), spec §2.4.  Never a glucose reading. */
enum dexcom_rx_special {
    DEXCOM_RX_SPECIAL_NONE = 0,
    DEXCOM_RX_SPECIAL_SENSOR_NOT_ACTIVE = 1,
    DEXCOM_RX_SPECIAL_MINIMAL_DEVIATION = 2,
    DEXCOM_RX_SPECIAL_NO_ANTENNA = 3,
    DEXCOM_RX_SPECIAL_SENSOR_NOT_CALIBRATED = 5,
    DEXCOM_RX_SPECIAL_COUNTS_DEVIATION = 6,
    DEXCOM_RX_SPECIAL_ABSOLUTE_DEVIATION = 9,
    DEXCOM_RX_SPECIAL_POWER_DEVIATION = 10,
    DEXCOM_RX_SPECIAL_BAD_RF = 12,
};
#define DEXCOM_RX_SPECIAL_LIMIT 13 /* values below this are special */
/* The highest stored value we accept as a reading.  CGM sensors report
 * 40..400 mg/dL; anything above 600 cannot be a real reading. */
#define DEXCOM_RX_GLUCOSE_MAX_PLAUSIBLE 600
#define DEXCOM_RX_DISPLAY_LOW           40  /* below: receiver shows LOW */
#define DEXCOM_RX_DISPLAY_HIGH          400 /* above: receiver shows HIGH */

/* "sensor not calibrated", …; "unknown special value" for 4, 7, 8, 11. */
const char *dexcom_rx_special_name(unsigned value);
/* What the receiver shows: "?NC", "???", … ("" when unknown). */
const char *dexcom_rx_special_display(unsigned value);
/* "Flat", "DoubleUp", …, "NotComputable", "RateOutOfRange", or "Unknown". */
const char *dexcom_rx_trend_name(uint8_t trend);
/* "Clean", "Light", …, or "Unknown". */
const char *dexcom_rx_noise_name(uint8_t noise);
/* "Carbs", "Insulin", "Health", "Exercise", or "Unknown". */
const char *dexcom_rx_event_type_name(uint8_t type);
/* Names for the health and exercise subtypes; "" when none applies. */
const char *dexcom_rx_event_subtype_name(uint8_t type, uint8_t subtype);
/* "STARTED", "REMOVED", …, or "UNKNOWN". */
const char *dexcom_rx_session_state_name(uint8_t state);

enum dexcom_rx_egv_class {
    DEXCOM_RX_EGV_GLUCOSE = 0, /* mgdl holds a reading */
    DEXCOM_RX_EGV_SPECIAL = 1, /* special condition in `special`; mgdl is 0 */
};

#define DEXCOM_RX_EGV_FLAG_DISPLAY_ONLY   0x8000 /* G4 name; tidepool: computed on display */
#define DEXCOM_RX_EGV_FLAG_ON_TRANSMITTER 0x4000
#define DEXCOM_RX_EGV_FLAG_BACKFILLED     0x2000
#define DEXCOM_RX_PREDICTED_URGENT_LOW    0x8000
#define DEXCOM_RX_PREDICTED_UNAVAILABLE   13

/*
 * How far a revision ≥ 4 measurement time may lie from its record's own
 * system time, the time the receiver wrote it (spec §2.4, "How backfill
 * works": offset 10 is when it was measured, the record's times when it was
 * written, so measured ≤ written).
 *   After: 150 s of slack for the transmitter clock being mapped onto the
 *   receiver's, half the 5-minute reading interval: less than that cannot
 *   move a reading into its neighbour's slot, and it is the window in which
 *   consolidation (DESIGN §6) takes two observations for one reading.
 *   Before: live readings are written seconds after they are measured; a
 *   backfill fills a gap when the link returns.  The peers look back at
 *   most 24 h for late readings (dexpy's first pass, Share's minutes=1440
 *   catch-up, spec §3.2 and §4.4), eight times the 3 h dexpy assumes for a
 *   backfill.  A measurement older than that cannot belong to the record.
 */
#define DEXCOM_RX_MEASURED_AFTER_WRITE_MAX_S  150
#define DEXCOM_RX_MEASURED_BEFORE_WRITE_MAX_S (24 * 3600)

struct dexcom_rx_egv {
    uint16_t raw_glucose; /* the whole u16, flags included */
    enum dexcom_rx_egv_class cls;
    uint16_t mgdl;                /* raw & 0x3FF when cls == GLUCOSE, else 0 */
    uint8_t special;              /* raw & 0x3FF when cls == SPECIAL */
    bool below_range;             /* 13..39: the receiver shows LOW */
    bool above_range;             /* 401..600: the receiver shows HIGH */
    bool display_only;            /* bit 15: skip it (spec §2.4) */
    bool computed_on_transmitter; /* bit 14 */
    bool backfilled;              /* bit 13 */
    uint8_t raw_trend_noise;
    uint8_t trend; /* low nibble */
    uint8_t noise; /* bits 4..6 */
    /* The time the glucose was measured, in the system-time domain: the
     * offset-10 field for revision ≥ 4, the record's system time before.
     * A revision ≥ 4 record is refused (DIA_ERR_IMPLAUSIBLE) when this lies
     * outside [system_time − DEXCOM_RX_MEASURED_BEFORE_WRITE_MAX_S,
     * system_time + DEXCOM_RX_MEASURED_AFTER_WRITE_MAX_S]. */
    uint32_t measured_system_time;
    /* revision ≥ 4 (G5, touchscreen, backfilled) */
    bool has_g5_fields;
    uint32_t egv_system_time;
    uint32_t transmitter_time;
    uint8_t raw_filtered_rate; /* meaning uncertain: kept raw */
    uint8_t algorithm_state;   /* meaning uncertain: kept raw */
    /* revision 5 (touchscreen) */
    bool has_predicted;
    uint16_t raw_predicted;
    uint16_t predicted_mgdl; /* raw & 0x3FF; 0 when unavailable */
    bool predicted_available;
    bool predicted_urgent_low_soon;
    bool predicted_backfilled;
};

struct dexcom_rx_sensor {
    uint32_t unfiltered;
    uint32_t filtered;
    int8_t rssi;        /* dBm, signed byte at offset 16 */
    uint8_t raw_byte17; /* meaning unknown */
};

struct dexcom_rx_meter {
    uint16_t mgdl;
    uint32_t meter_time; /* system-time domain */
    bool has_g5_fields;  /* revision 3 */
    uint8_t entry_type;  /* 1, 3, 11, 12 seen; kept raw */
    uint32_t meter_transmitter_time;
};

enum dexcom_rx_event_type {
    DEXCOM_RX_EVENT_CARBS = 1,
    DEXCOM_RX_EVENT_INSULIN = 2,
    DEXCOM_RX_EVENT_HEALTH = 3,
    DEXCOM_RX_EVENT_EXERCISE = 4,
};

struct dexcom_rx_user_event {
    uint8_t type;
    uint8_t subtype;
    uint32_t event_time; /* display-time domain (what the user typed) */
    uint32_t value;      /* carbs: g; insulin: 1/100 U; exercise: minutes */
};

struct dexcom_rx_insertion {
    uint32_t insertion_time; /* system domain; DEXCOM_RX_PAGE_NONE = none */
    bool has_insertion_time;
    uint8_t session_state;
    bool has_g5_fields; /* revision ≥ 2 */
    uint32_t number;    /* meaning uncertain: kept raw */
    char transmitter_id[8];
};

#define DEXCOM_RX_CAL_SUB_MAX 11 /* (249 − 2 − 44) / 17 */

struct dexcom_rx_cal_sub {
    uint32_t entered_time; /* system-time domain */
    int32_t meter_mgdl;
    int32_t sensor_raw;
    uint32_t applied_time; /* system-time domain */
    uint8_t raw_byte16;    /* meaning unknown */
};

struct dexcom_rx_cal_set {
    double slope;
    double intercept;
    double scale;
    uint8_t raw_unknown[3]; /* offset 32..34, meaning unknown */
    double decay;
    uint8_t n_sub;
    struct dexcom_rx_cal_sub sub[DEXCOM_RX_CAL_SUB_MAX];
};

struct dexcom_rx_user_settings {
    int32_t system_time_offset;  /* RTC + this = system time */
    int32_t display_time_offset; /* system + this = display time */
    uint32_t enable_flags;
    char transmitter_id[8];   /* revisions 5 and 6 only */
    uint32_t raw_transmitter; /* revision 3: the u32 at offset 16, kept raw */
};

struct dexcom_rx_xml_record {
    const uint8_t *text; /* not NUL-terminated; stops at the first NUL */
    size_t len;
};

struct dexcom_rx_record {
    uint8_t record_type;
    uint8_t revision;
    uint32_t index; /* receiver-global record index */
    uint32_t system_time;
    uint32_t display_time;
    const uint8_t *raw; /* the whole record, CRC included */
    uint16_t raw_len;
    enum dexcom_rx_record_kind kind;
    /* Why a decode refused an intact record (DIA_ERR_IMPLAUSIBLE), in a few
     * words for a log line ("measured after it was written"); NULL when it
     * was not refused or no more is known than the error code. */
    const char *why;
    union {
        struct dexcom_rx_egv egv;
        struct dexcom_rx_sensor sensor;
        struct dexcom_rx_meter meter;
        struct dexcom_rx_user_event event;
        struct dexcom_rx_insertion insertion;
        struct dexcom_rx_cal_set cal;
        struct dexcom_rx_user_settings settings;
        struct dexcom_rx_xml_record xml;
    } u;
};

/* Decode record i (0 .. hdr.num_records − 1) of an opened page.  A record
 * whose CRC fails is DIA_ERR_CRC and nothing is decoded; the caller counts
 * it and moves on to i + 1.  DIA_ERR_IMPLAUSIBLE when an intact record
 * holds a value that cannot be right, DIA_ERR_UNSUPPORTED when the
 * (type, revision, length) triple is not one we know how to decode (use
 * dexcom_rx_record_decode_raw() to still read its times). */
int dexcom_rx_page_record(const struct dexcom_rx_page *page, uint32_t i,
                          struct dexcom_rx_record *out);

/* Decode one record from its bytes (len = record length). */
int dexcom_rx_record_decode(const uint8_t *rec, size_t len, uint8_t record_type, uint8_t revision,
                            struct dexcom_rx_record *out);
/* CRC-check a record and read only its two times (kind RAW). */
int dexcom_rx_record_decode_raw(const uint8_t *rec, size_t len, uint8_t record_type,
                                uint8_t revision, struct dexcom_rx_record *out);

#endif
