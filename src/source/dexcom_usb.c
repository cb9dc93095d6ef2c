/*
 * Source `dexcom-usb`: a Dexcom G4, G5 or G6 receiver on its USB port.
 *
 * Protocol facts come from the project spec
 * shared/specs/dexcom-receiver-usb-and-share.md ("spec"), through the pure
 * codec in src/proto/dexcom_rx/; the transport is src/io/serial.  User
 * documentation: docs/devices/dexcom-usb.md.
 *
 * Connect (open):
 *   find the tty (the target, or by USB id 22a3:0047 in sysfs, spec §1.1),
 *   open it raw and flushed (§1.1, §1.2), PING, READ_FIRMWARE_HEADER (the
 *   generation is shown to the user but never used to pick layouts),
 *   READ_DATABASE_PARTITION_INFO (RecordLength and RecordRevision per
 *   partition: the layouts are chosen by data, §2.1 "best practice"), the
 *   manufacturing page (its SerialNumber names the receiver in record keys),
 *   READ_TRANSMITTER_ID (the consolidation group, DESIGN §6).
 *
 * Each poll:
 *   READ_SYSTEM_TIME → clock offset = host now − (2009-01-01 + system time)
 *   (§2.3, DESIGN §4); every record's UTC is 2009-01-01 + its system-domain
 *   time + offset, its raw times are kept in device_time, and its own
 *   display − system difference is the user's UTC offset in force when it
 *   was written.  Then, per partition (EGV, BACKFILLED_EGV, meter, user
 *   events, insertion, calibration): READ_DATABASE_PAGE_RANGE and
 *   READ_DATABASE_PAGES (≤ 4 pages per request, §1.3) for only the pages
 *   that can hold records newer than the newest index already stored.  That
 *   (page, index) cursor is saved per receiver and partition in the same
 *   journal transaction as the records, so a crash can neither lose nor
 *   repeat a record.  The range is inclusive: first == last is one page, and
 *   FFFFFFFF FFFFFFFF is an empty partition (§2.1, the off-by-one of dexpy
 *   and its ancestors is avoided by the codec's page-range helpers).  The
 *   first run reads back `since` (default 24 h; `all` = everything).
 *
 * Records:
 *   EGV and BACKFILLED_EGV → glucose (value & 0x3FF, trend, noise; the
 *   backfilled flag for partition 18 and bit 13; for revision ≥ 4 the time
 *   is the offset-10 measurement time, §2.4).  Display-only records (bit 15)
 *   are skipped (Studio's export agrees 228/228 only then, §2.4).  Special
 *   values (< 13) become a sensor_condition event naming the condition and
 *   are never glucose.  Values 13..19 are dropped as implausible (tidepool
 *   drops < 20; our record validation refuses them).  Below 40 and above
 *   400 the receiver shows LOW and HIGH, not a number: those are published
 *   as 39 and 401, which mean exactly that in the record format.  A
 *   revision ≥ 4 record measured after it was written, or more than a day
 *   before, is refused by the codec; any record written after the
 *   receiver's own clock is refused here (both counted as implausible).
 *   SensorData (G4, §2.4) is not stored on its own: its filtered and
 *   unfiltered counts and signed RSSI are merged into the glucose record
 *   written within 10 s of it (ecc1 pairs the two the same way).  Glucose
 *   without a partner is published without raw values; a sensor record
 *   without an EGV is dropped.
 *   Meter → meter (time = meter_time at offset 10, the calibration flag: a
 *   receiver takes finger sticks only to calibrate).  User events → carbs;
 *   insulin subtype 1 (fast-acting) → bolus (1/100 U); long-acting (2),
 *   untyped (0, the G4's only kind; unless untyped-insulin=bolus) and
 *   unknown subtypes → a note event with the units, so that no one counts
 *   them as insulin on board; health / exercise → events (event_time is in
 *   the display domain, §2.3).  Insertion → sensor start / stop events.
 *   CalSet → calibration (slope, intercept, scale).
 *   A record whose CRC fails is counted (crc_errors) and skipped; one that
 *   does not decode is counted in decode_errors; one that is intact but
 *   impossible in implausible.  None of them becomes a record.  A record or
 *   page in a layout the codec does not know (a newer receiver) is not
 *   skipped: its partition is read up to it and no further, the read
 *   position stays before it, it is logged once per connection, and the
 *   other partitions are read as usual (block_partition).
 *
 * Keys: driver + receiver serial + kind + partition, record index and
 * system time: the same on every re-read, never the receive time.
 *
 * Cadence: the next poll is due shortly (poll-after) after the next reading
 * should have been written (newest EGV + 5 min); when it is late, a few
 * short retries, then again in step with the 5-minute slots.  The newest
 * EGV's time is stored with the read positions, so a reconnect keeps step.  A status
 * record (battery, transmitter, firmware) is written on connect and every
 * status-interval.
 *
 * Failures: a command that times out, or is answered with NAK or a damaged
 * frame, is sent again (up to `attempts` times).  A vanished device (unplug)
 * is DIA_ERR_DISCONNECTED: the poll fails, nothing of it is stored, and the
 * supervisor reconnects with back-off.  No write, erase or reset command is
 * ever sent: the codec cannot even build one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/driver.h"
#include "core/err.h"
#include "core/journal.h"
#include "core/log.h"
#include "core/options.h"
#include "core/record.h"
#include "io/serial.h"
#include "proto/dexcom/sensor_group.h"
#include "proto/dexcom_rx/dexcom_rx.h"
#include "source/dexcom_usb.h"

/* USB identity of every Dexcom receiver generation (spec §1.1). */
#define RX_USB_VENDOR  0x22A3
#define RX_USB_PRODUCT 0x0047
#define RX_BAUD        115200 /* spec §1.2; ignored by CDC-ACM */

#define SENSOR_PAIR_S 10 /* sensor and EGV records of one reading */

static const struct dia_option_spec dexusb_options[] = {
    {.name = "since",
     .type = DIA_OPT_DURATION,
     .default_value = "24h",
     .min = -1, /* "all" */
     .max = 3650LL * 86400,
     .help = "history to import on the first run (\"all\": everything the receiver holds)"},
    {.name = "timeout-ms",
     .type = DIA_OPT_INT,
     .default_value = "2000",
     .min = 50,
     .max = 60000,
     .help = "how long to wait for the receiver's answer to one command"},
    {.name = "attempts",
     .type = DIA_OPT_INT,
     .default_value = "4",
     .min = 1,
     .max = 20,
     .help = "times a command is sent before the poll fails (timeouts, NAK, damaged replies)"},
    {.name = "sensor",
     .type = DIA_OPT_STRING,
     .default_value = NULL,
     .help = "consolidation group for the glucose readings (default: the transmitter id)"},
    {.name = "poll-after",
     .type = DIA_OPT_DURATION,
     .default_value = "15",
     .min = 1,
     .max = 600,
     .help = "how long after a reading is due the receiver is asked for it"},
    {.name = "retry-interval",
     .type = DIA_OPT_DURATION,
     .default_value = "30",
     .min = 1,
     .max = 600,
     .help = "pause between the short retries when a reading is late"},
    {.name = "retries",
     .type = DIA_OPT_INT,
     .default_value = "4",
     .min = 0,
     .max = 100,
     .help = "short retries for a late reading before falling back to the 5-minute rhythm"},
    {.name = "poll-interval",
     .type = DIA_OPT_DURATION,
     .default_value = "0",
     .min = 0,
     .max = 86400,
     .help = "poll at this fixed interval instead (0: in step with the readings)"},
    {.name = "status-interval",
     .type = DIA_OPT_DURATION,
     .default_value = "3h",
     .min = 60,
     .max = 7 * 86400,
     .help = "how often to record battery, transmitter and firmware"},
    {.name = "max-pages",
     .type = DIA_OPT_INT,
     .default_value = "64",
     .min = 4,
     .max = 100000,
     .help = "most pages read per partition in one poll while catching up"},
    {.name = "untyped-insulin",
     .type = DIA_OPT_ENUM,
     .default_value = "note",
     .choices = "note|bolus",
     .help = "insulin logged without saying fast- or long-acting (G4 receivers do not ask): "
             "note (not counted as insulin on board) or bolus (if you log only rapid-acting "
             "insulin on the receiver)"},
    {.name = "trace-file",
     .type = DIA_OPT_STRING,
     .default_value = NULL,
     .help = "append every frame sent and received as hex (for bug reports; the format "
             "`diabridge-sim dexcom-receiver --capture` replays)"},
    {0},
};

/* The partitions that become records, in the order they are read. */
static const uint8_t record_partitions[] = {
    DEXCOM_RX_REC_EGV_DATA,        DEXCOM_RX_REC_BACKFILLED_EGV, DEXCOM_RX_REC_METER_DATA,
    DEXCOM_RX_REC_USER_EVENT_DATA, DEXCOM_RX_REC_INSERTION_TIME, DEXCOM_RX_REC_CAL_SET,
};
#define N_PARTITIONS (sizeof record_partitions / sizeof record_partitions[0])

struct cursor {
    bool known;
    uint32_t page;  /* the page that held `index` */
    uint32_t index; /* newest record index already stored (or skipped for good) */
};

/* A partition whose records we cannot decode (a revision or record length
 * the codec does not know): it is read up to there and no further, so its
 * records stay on the receiver instead of being skipped for good. */
struct unknown_layout {
    bool blocked; /* this poll stopped at such a record */
    uint8_t revision;
    uint16_t length;
    bool warned; /* logged once per connection, not every poll */
    uint8_t warned_revision;
    uint16_t warned_length;
};

/* A glucose record of this poll that may receive raw sensor values. */
struct pairable {
    size_t rec;           /* index into the batch */
    uint32_t system_time; /* of the EGV record */
};

struct dexusb {
    struct dia_instance *in;
    struct dia_serial *port;
    struct dexcom_rx_stream stream;
    struct dexcom_rx_partition_info parts;
    uint8_t reply[DEXCOM_RX_FRAME_MAX];
    size_t reply_len;
    uint8_t *pages; /* page buffer for one partition's reads */
    size_t pages_cap;
    FILE *trace;

    long long since_s, timeout_ms, attempts, max_pages;
    long long poll_after_s, retry_s, retries, poll_interval_s, status_interval_s;
    enum dexusb_untyped_insulin untyped_insulin;
    char tty[256];
    char serial[40];
    char transmitter[8];
    char sensor[40];
    char firmware[48];
    char product[48];

    int64_t offset_s;      /* host − receiver clock, this poll */
    uint32_t system_now;   /* receiver system time, this poll */
    int64_t clock_mono_ms; /* when system_now was read (monotonic) */
    int64_t next_status_ms;
    bool status_pending;
    uint32_t newest_egv;           /* measured system time of the newest EGV seen (0: none) */
    uint32_t newest_egv_committed; /* as stored in the journal */
    int late_polls;

    struct cursor committed[N_PARTITIONS], pending[N_PARTITIONS];
    struct unknown_layout layout[N_PARTITIONS];
    struct pairable *pair;
    size_t npair, cappair;
    unsigned long seen_stream_crc;
};

/* ---- small helpers ----------------------------------------------------- */

static void count(struct dia_instance *in, int rc)
{
    if (rc == DIA_ERR_CRC)
        atomic_fetch_add(&in->counters.crc_errors, 1);
    else if (rc == DIA_ERR_IMPLAUSIBLE)
        atomic_fetch_add(&in->counters.implausible, 1);
    else if (rc == DIA_ERR_TIMEOUT)
        atomic_fetch_add(&in->counters.timeouts, 1);
    else
        atomic_fetch_add(&in->counters.decode_errors, 1);
}

static void trace_frame(struct dexusb *d, const char *dir, const uint8_t *b, size_t n)
{
    if (!d->trace)
        return;
    fprintf(d->trace, "%s,", dir);
    for (size_t i = 0; i < n; i++)
        fprintf(d->trace, i ? " %02X" : "%02X", b[i]);
    fputc('\n', d->trace);
    fflush(d->trace);
}

static int partition_slot(uint8_t type)
{
    for (size_t i = 0; i < N_PARTITIONS; i++)
        if (record_partitions[i] == type)
            return (int)i;
    return -1;
}

/* ---- one command ------------------------------------------------------- */

/* Wait for one complete checksummed frame; copy it into d->reply. */
static int read_frame(struct dexusb *d, struct dexcom_rx_frame *frame)
{
    int64_t deadline = dia_mono_ms() + d->timeout_ms;
    uint8_t buf[1024];
    for (;;) {
        int64_t left = deadline - dia_mono_ms();
        if (left <= 0)
            return DIA_ERR_TIMEOUT;
        size_t got = 0;
        int rc = dia_serial_read(d->port, buf, sizeof buf, (int)left, &got);
        if (rc != DIA_OK)
            return rc;
        size_t off = 0;
        while (off < got) {
            size_t used = 0;
            struct dexcom_rx_frame f;
            int r = dexcom_rx_stream_feed(&d->stream, buf + off, got - off, &used, &f);
            off += used;
            if (r == 1) {
                /* Copy out: f points into the stream's buffer. */
                memcpy(d->reply, d->stream.buf, f.frame_len);
                d->reply_len = f.frame_len;
                trace_frame(d, "in", d->reply, d->reply_len);
                return dexcom_rx_frame_parse(d->reply, d->reply_len, frame);
            }
            if (used == 0)
                break;
        }
    }
}

/*
 * Send a request and return its ACK'd reply in *frame (payload inside
 * d->reply).  Timeouts, damaged frames and error codes are retried; a
 * disconnect is returned at once.
 */
static int command(struct dexusb *d, const uint8_t *req, int req_len, struct dexcom_rx_frame *frame)
{
    struct dia_instance *in = d->in;
    const char *name = dexcom_rx_cmd_name(req[3]);
    int rc = DIA_ERR_ARG;
    if (req_len < DEXCOM_RX_FRAME_MIN)
        return rc;
    for (long long attempt = 1; attempt <= d->attempts; attempt++) {
        if (dia_instance_stopping(in))
            return DIA_ERR_STOPPING;
        /* Everyone flushes before a request (spec §1.3): late bytes of an
         * earlier, abandoned reply must not be taken for this one. */
        rc = dia_serial_flush(d->port);
        if (rc != DIA_OK)
            break;
        dexcom_rx_stream_reset(&d->stream);
        trace_frame(d, "out", req, (size_t)req_len);
        rc = dia_serial_write_all(d->port, req, (size_t)req_len, (int)d->timeout_ms);
        if (rc == DIA_OK)
            rc = read_frame(d, frame);
        unsigned long crc = d->stream.crc_errors;
        if (crc > d->seen_stream_crc)
            atomic_fetch_add(&in->counters.crc_errors, crc - d->seen_stream_crc);
        d->seen_stream_crc = crc;
        if (rc == DIA_OK) {
            uint8_t response = 0;
            rc = dexcom_rx_reply_check(frame, &response);
            if (rc == DIA_OK) {
                atomic_fetch_add(&in->counters.frames_ok, 1);
                return DIA_OK;
            }
            atomic_fetch_add(&in->counters.decode_errors, 1);
            if (response == DEXCOM_RX_RESP_INVALID_COMMAND ||
                response == DEXCOM_RX_RESP_INVALID_PARAM)
                dia_instance_error(in,
                                   "the receiver refused %s as %s (attempt %lld of %lld): it may "
                                   "not support it; please report this with a trace "
                                   "(trace-file=…, see docs/devices/dexcom-usb.md)",
                                   name, dexcom_rx_response_name(response), attempt, d->attempts);
            else
                dia_instance_error(in,
                                   "the receiver answered %s to %s (attempt %lld of %lld). If "
                                   "this goes on, unplug and replug it and close other programs "
                                   "that use it (Dexcom Clarity or Studio, ModemManager)",
                                   dexcom_rx_response_name(response), name, attempt, d->attempts);
        } else if (rc == DIA_ERR_DISCONNECTED || rc == DIA_ERR_IO) {
            dia_instance_error(in, "%s", dia_serial_errmsg(d->port));
            return rc;
        } else {
            count(in, rc);
            if (rc == DIA_ERR_TIMEOUT)
                dia_instance_error(in,
                                   "no complete answer to %s within %lld ms (attempt %lld of "
                                   "%lld)",
                                   name, d->timeout_ms, attempt, d->attempts);
            else
                dia_instance_error(in,
                                   "damaged answer to %s (%s; attempt %lld of %lld): check the "
                                   "USB cable, and plug the receiver in directly rather than "
                                   "through a hub",
                                   name, dia_strerror(rc), attempt, d->attempts);
        }
        dia_debug(in->name, "%s", in->last_error);
    }
    return rc;
}

static int simple(struct dexusb *d, enum dexcom_rx_cmd cmd, struct dexcom_rx_frame *frame)
{
    uint8_t req[DEXCOM_RX_REQUEST_MAX];
    int n = dexcom_rx_request_simple(req, sizeof req, cmd);
    if (n < 0)
        return n;
    return command(d, req, n, frame);
}

/* Read `count` pages of `type` from `first` into d->pages, checking that
 * the receiver sent exactly the pages asked for. */
static int read_pages(struct dexusb *d, uint8_t type, uint32_t first, uint8_t npages)
{
    uint8_t req[DEXCOM_RX_REQUEST_MAX];
    int n = dexcom_rx_request_read_pages(req, sizeof req, type, first, npages);
    if (n < 0)
        return n;
    struct dexcom_rx_frame f;
    int rc = DIA_OK;
    for (long long attempt = 1; attempt <= d->attempts; attempt++) {
        rc = command(d, req, n, &f);
        if (rc != DIA_OK)
            return rc;
        int have = dexcom_rx_pages_in_payload(f.payload_len);
        bool ok = have == npages;
        for (int i = 0; ok && i < npages; i++) {
            struct dexcom_rx_page_header h;
            const uint8_t *pg = f.payload + (size_t)i * DEXCOM_RX_PAGE_SIZE;
            /* A header that fails its CRC is judged later, page by page. */
            if (dexcom_rx_page_header_parse(pg, DEXCOM_RX_PAGE_SIZE, &h) == DIA_OK &&
                (h.record_type != type || h.page_number != first + (uint32_t)i))
                ok = false;
        }
        if (ok) {
            memcpy(d->pages, f.payload, f.payload_len);
            return DIA_OK;
        }
        atomic_fetch_add(&d->in->counters.decode_errors, 1);
        rc = DIA_ERR_DEVICE;
        dia_instance_error(d->in,
                           "the receiver sent other pages than the %s pages %u..%u asked for "
                           "(attempt %lld of %lld). If this goes on, another program may be "
                           "reading the receiver at the same time: close it",
                           dexcom_rx_record_type_name(type), first, first + npages - 1, attempt,
                           d->attempts);
    }
    return rc;
}

static int page_range(struct dexusb *d, uint8_t type, struct dexcom_rx_page_range *r)
{
    uint8_t req[DEXCOM_RX_REQUEST_MAX];
    int n = dexcom_rx_request_page_range(req, sizeof req, type);
    if (n < 0)
        return n;
    struct dexcom_rx_frame f;
    int rc = command(d, req, n, &f);
    if (rc != DIA_OK)
        return rc;
    rc = dexcom_rx_parse_page_range(f.payload, f.payload_len, r);
    if (rc != DIA_OK) {
        count(d->in, rc);
        dia_instance_error(d->in, "the receiver's page range for %s is invalid (%s)",
                           dexcom_rx_record_type_name(type), dia_strerror(rc));
    }
    return rc;
}

/* ---- clock ------------------------------------------------------------- */

static int read_clock(struct dexusb *d)
{
    struct dexcom_rx_frame f;
    int rc = simple(d, DEXCOM_RX_CMD_READ_SYSTEM_TIME, &f);
    if (rc != DIA_OK)
        return rc;
    int64_t host = dia_now_ms();
    uint32_t sys;
    rc = dexcom_rx_parse_system_time(f.payload, f.payload_len, &sys);
    if (rc != DIA_OK) {
        count(d->in, rc);
        dia_instance_error(d->in, "the receiver's system time is unreadable (%s)",
                           dia_strerror(rc));
        return rc;
    }
    /* Round to whole seconds: the receiver counts seconds. */
    d->offset_s = dexcom_rx_clock_offset((host + 500) / 1000, sys);
    d->system_now = sys;
    d->clock_mono_ms = dia_mono_ms();
    return DIA_OK;
}

/* The receiver's clock now: system_now plus the time since it was read (a
 * long catch-up poll may see records written after READ_SYSTEM_TIME). */
static int64_t receiver_now(const struct dexusb *d)
{
    return (int64_t)d->system_now + (dia_mono_ms() - d->clock_mono_ms) / 1000;
}

static int64_t system_to_utc_ms(const struct dexusb *d, uint32_t system_time)
{
    return dexcom_rx_system_to_utc(system_time, d->offset_s) * 1000;
}

/* ---- records ----------------------------------------------------------- */

static struct dia_record *new_record(struct dexusb *d, struct dia_batch *out, enum dia_kind kind,
                                     const struct dexcom_rx_record *rec, uint32_t when_system)
{
    struct dia_record *r = dia_batch_add(out, kind);
    if (!r)
        return NULL;
    r->origin = DIA_ORIGIN_DEVICE;
    r->received_ms = dia_now_ms();
    snprintf(r->driver, sizeof r->driver, "dexcom-usb");
    snprintf(r->device_id, sizeof r->device_id, "%s", d->serial);
    r->t_utc_ms = system_to_utc_ms(d, when_system);
    int64_t off = (int64_t)rec->display_time - (int64_t)rec->system_time;
    int64_t off_min = off >= 0 ? (off + 30) / 60 : -((-off + 30) / 60);
    r->utc_offset_min = off_min >= -16 * 60 && off_min <= 16 * 60 ? (int32_t)off_min : DIA_ABSENT;
    if (when_system != rec->system_time)
        snprintf(r->device_time, sizeof r->device_time, "M%" PRIu32 " S%" PRIu32 " D%" PRIu32,
                 when_system, rec->system_time, rec->display_time);
    else
        snprintf(r->device_time, sizeof r->device_time, "S%" PRIu32 " D%" PRIu32, rec->system_time,
                 rec->display_time);
    dia_record_set_key(r, "p%u/i%" PRIu32 "/s%" PRIu32, rec->record_type, rec->index,
                       rec->system_time);
    return r;
}

/* Keep the record only if it passes the journal's own validation: one bad
 * record must not make the whole batch be refused. */
static void keep_if_valid(struct dexusb *d, struct dia_batch *out)
{
    char why[128];
    if (dia_record_validate(&out->recs[out->n - 1], why, sizeof why) == DIA_OK)
        return;
    atomic_fetch_add(&d->in->counters.implausible, 1);
    dia_warn(d->in->name, "dropped a %s record that cannot be right: %s",
             dia_kind_name(out->recs[out->n - 1].kind), why);
    dia_batch_drop_last(out);
}

static int add_pairable(struct dexusb *d, size_t rec, uint32_t system_time)
{
    if (d->npair == d->cappair) {
        size_t cap = d->cappair ? d->cappair * 2 : 64;
        struct pairable *p = realloc(d->pair, cap * sizeof *p);
        if (!p)
            return DIA_ERR_NOMEM;
        d->pair = p;
        d->cappair = cap;
    }
    d->pair[d->npair++] = (struct pairable){rec, system_time};
    return DIA_OK;
}

int dexusb_glucose_mgdl(const struct dexcom_rx_egv *e, int32_t *mgdl)
{
    if (e->cls != DEXCOM_RX_EGV_GLUCOSE)
        return DIA_ERR_ARG;
    if (e->mgdl < 20)
        return DIA_ERR_IMPLAUSIBLE;
    /* The receiver shows no number here, so neither do we: the true value
     * is somewhere below 40 (above 400), and 39 (401) says just that. */
    if (e->below_range)
        *mgdl = DEXCOM_RX_DISPLAY_LOW - 1;
    else if (e->above_range)
        *mgdl = DEXCOM_RX_DISPLAY_HIGH + 1;
    else
        *mgdl = e->mgdl;
    return DIA_OK;
}

/* Insulin the receiver cannot tell is a bolus: a note, so that nothing
 * (Nightscout's IOB, a loop) counts it as insulin on board. */
static void insulin_note(const struct dexcom_rx_user_event *ev, struct dia_record *r)
{
    dia_record_init(r, DIA_KIND_EVENT);
    r->u.event.type = DIA_EVENT_NOTE;
    r->u.event.code = ev->subtype;
    char what[48];
    if (ev->subtype == 2)
        snprintf(what, sizeof what, "long-acting insulin");
    else if (ev->subtype == 0)
        snprintf(what, sizeof what, "insulin (type not recorded)");
    else
        snprintf(what, sizeof what, "insulin (unknown type %u)", ev->subtype);
    snprintf(r->u.event.text, sizeof r->u.event.text,
             "%s %" PRIu32 ".%02" PRIu32 " U, logged on the receiver", what, ev->value / 100,
             ev->value % 100);
}

int dexusb_user_event_record(const struct dexcom_rx_user_event *ev,
                             enum dexusb_untyped_insulin untyped, struct dia_record *r)
{
    switch (ev->type) {
    case DEXCOM_RX_EVENT_CARBS:
        dia_record_init(r, DIA_KIND_CARBS);
        r->u.carbs.carbs_dg = ev->value <= 100000 ? (int32_t)ev->value * 10 : DIA_ABSENT;
        return DIA_OK;
    case DEXCOM_RX_EVENT_INSULIN:
        /* value in 1/100 U (spec §2.4); the record format refuses a dose
         * above 100 U, and so does a note of one. */
        if (ev->value > 10000)
            return DIA_ERR_IMPLAUSIBLE;
        /* Subtype 1 fast-acting, 2 long-acting (spec §2.4); a G4 writes 0. */
        if (ev->subtype == 1 || (ev->subtype == 0 && untyped == DEXUSB_UNTYPED_INSULIN_BOLUS)) {
            dia_record_init(r, DIA_KIND_BOLUS);
            r->u.bolus.type = DIA_BOLUS_NORMAL;
            r->u.bolus.delivered_mu = (int32_t)ev->value * 10;
            r->u.bolus.programmed_mu = r->u.bolus.delivered_mu;
        } else {
            insulin_note(ev, r);
        }
        return DIA_OK;
    case DEXCOM_RX_EVENT_HEALTH:
    case DEXCOM_RX_EVENT_EXERCISE: {
        dia_record_init(r, DIA_KIND_EVENT);
        bool exercise = ev->type == DEXCOM_RX_EVENT_EXERCISE;
        r->u.event.type = exercise ? DIA_EVENT_EXERCISE : DIA_EVENT_HEALTH;
        r->u.event.code = ev->subtype;
        const char *sub = dexcom_rx_event_subtype_name(ev->type, ev->subtype);
        if (exercise)
            snprintf(r->u.event.text, sizeof r->u.event.text, "exercise: %" PRIu32 " min%s%s",
                     ev->value, sub[0] ? ", " : "", sub);
        else
            snprintf(r->u.event.text, sizeof r->u.event.text, "health: %s",
                     sub[0] ? sub : "unspecified");
        return DIA_OK;
    }
    default:
        return DIA_ERR_UNSUPPORTED;
    }
}

static int emit_egv(struct dexusb *d, struct dia_batch *out, const struct dexcom_rx_record *rec)
{
    const struct dexcom_rx_egv *e = &rec->u.egv;
    if (e->display_only)
        return DIA_OK; /* repeats a real reading's time (spec §2.4) */
    bool backfilled = e->backfilled || rec->record_type == DEXCOM_RX_REC_BACKFILLED_EGV;
    uint32_t when = e->measured_system_time;
    if (when > d->newest_egv && !backfilled)
        d->newest_egv = when;
    if (e->cls == DEXCOM_RX_EGV_SPECIAL) {
        struct dia_record *r = new_record(d, out, DIA_KIND_EVENT, rec, when);
        if (!r)
            return DIA_ERR_NOMEM;
        snprintf(r->sensor, sizeof r->sensor, "%s", d->sensor);
        r->u.event.type = DIA_EVENT_SENSOR_CONDITION;
        r->u.event.code = e->special;
        snprintf(r->u.event.text, sizeof r->u.event.text, "%s (%s)",
                 dexcom_rx_special_name(e->special), dexcom_rx_special_display(e->special));
        keep_if_valid(d, out);
        return DIA_OK;
    }
    int32_t mgdl;
    if (dexusb_glucose_mgdl(e, &mgdl) != DIA_OK) {
        /* 13..19: not a special code, not a reading the receiver would show. */
        atomic_fetch_add(&d->in->counters.implausible, 1);
        dia_debug(d->in->name, "skipped glucose %u mg/dL (record %" PRIu32 "): below 20", e->mgdl,
                  rec->index);
        return DIA_OK;
    }
    if (mgdl != e->mgdl)
        dia_debug(d->in->name, "record %" PRIu32 ": stored %u mg/dL, shown as %s: published as %d",
                  rec->index, e->mgdl, e->below_range ? "LOW" : "HIGH", mgdl);
    struct dia_record *r = new_record(d, out, DIA_KIND_GLUCOSE, rec, when);
    if (!r)
        return DIA_ERR_NOMEM;
    snprintf(r->sensor, sizeof r->sensor, "%s", d->sensor);
    struct dia_glucose *g = &r->u.glucose;
    g->mgdl = mgdl;
    g->trend = e->trend <= DIA_TREND_MAX ? e->trend : DIA_ABSENT;
    g->noise = e->noise;
    g->flags = backfilled ? DIA_GLUCOSE_BACKFILLED : 0;
    size_t before = out->n;
    keep_if_valid(d, out);
    if (out->n == before && !backfilled)
        return add_pairable(d, out->n - 1, rec->system_time);
    return DIA_OK;
}

static int emit_record(struct dexusb *d, struct dia_batch *out, const struct dexcom_rx_record *rec)
{
    struct dia_record *r;
    switch (rec->kind) {
    case DEXCOM_RX_KIND_EGV:
        return emit_egv(d, out, rec);
    case DEXCOM_RX_KIND_METER:
        r = new_record(d, out, DIA_KIND_METER, rec, rec->u.meter.meter_time);
        if (!r)
            return DIA_ERR_NOMEM;
        r->u.meter.mgdl = rec->u.meter.mgdl;
        r->u.meter.flags = DIA_METER_CALIBRATION;
        break;
    case DEXCOM_RX_KIND_USER_EVENT: {
        const struct dexcom_rx_user_event *ev = &rec->u.event;
        /* event_time is in the display domain (what the user typed). */
        int64_t disp_off = (int64_t)rec->display_time - (int64_t)rec->system_time;
        int64_t sys = (int64_t)ev->event_time - disp_off;
        uint32_t when = sys > 0 && sys < (int64_t)UINT32_MAX ? (uint32_t)sys : rec->system_time;
        struct dia_record mapped;
        int rc = dexusb_user_event_record(ev, d->untyped_insulin, &mapped);
        if (rc != DIA_OK) {
            count(d->in, rc);
            dia_warn(d->in->name,
                     "skipped user event record %" PRIu32 " (type %u, value %" PRIu32 "): %s",
                     rec->index, ev->type, ev->value, dia_strerror(rc));
            return DIA_OK;
        }
        r = new_record(d, out, mapped.kind, rec, when);
        if (!r)
            return DIA_ERR_NOMEM;
        r->u = mapped.u;
        break;
    }
    case DEXCOM_RX_KIND_INSERTION: {
        uint8_t st = rec->u.insertion.session_state;
        r = new_record(d, out, DIA_KIND_EVENT, rec, rec->system_time);
        if (!r)
            return DIA_ERR_NOMEM;
        /* States (spec §2.4): 7 STARTED, 5 SECOND_SESSION start a session;
         * 0 none and 9 manufacturing mode are notes; the rest end one. */
        if (st == 7 || st == 5)
            r->u.event.type = DIA_EVENT_SENSOR_START;
        else if (st == 0 || st == 9)
            r->u.event.type = DIA_EVENT_NOTE;
        else
            r->u.event.type = DIA_EVENT_SENSOR_STOP;
        r->u.event.code = st;
        if (rec->u.insertion.has_g5_fields && rec->u.insertion.transmitter_id[0])
            snprintf(r->u.event.text, sizeof r->u.event.text, "sensor session %s, transmitter %s",
                     dexcom_rx_session_state_name(st), rec->u.insertion.transmitter_id);
        else
            snprintf(r->u.event.text, sizeof r->u.event.text, "sensor session %s",
                     dexcom_rx_session_state_name(st));
        break;
    }
    case DEXCOM_RX_KIND_CAL_SET:
        r = new_record(d, out, DIA_KIND_CALIBRATION, rec, rec->system_time);
        if (!r)
            return DIA_ERR_NOMEM;
        r->u.calibration.slope = rec->u.cal.slope;
        r->u.calibration.intercept = rec->u.cal.intercept;
        r->u.calibration.scale = rec->u.cal.scale;
        break;
    default:
        return DIA_OK; /* partitions we do not turn into records */
    }
    keep_if_valid(d, out);
    return DIA_OK;
}

/* ---- reading a partition ----------------------------------------------- */

static int ensure_pages(struct dexusb *d)
{
    size_t need = DEXCOM_RX_PAGES_PER_READ * DEXCOM_RX_PAGE_SIZE;
    if (d->pages_cap >= need)
        return DIA_OK;
    d->pages = malloc(need);
    if (!d->pages)
        return DIA_ERR_NOMEM;
    d->pages_cap = need;
    return DIA_OK;
}

/*
 * Open page i of the last read; DIA_OK or a counted error.  A page whose
 * revision has no known record length is DIA_ERR_UNSUPPORTED, neither
 * counted nor logged here (pg->hdr is filled in): the caller decides, since
 * that is no damage but a layout to learn (see block_partition()).
 */
static int open_page(struct dexusb *d, uint8_t type, int i, struct dexcom_rx_page *pg)
{
    const uint8_t *buf = d->pages + (size_t)i * DEXCOM_RX_PAGE_SIZE;
    struct dexcom_rx_page_header h;
    int rc = dexcom_rx_page_header_parse(buf, DEXCOM_RX_PAGE_SIZE, &h);
    if (rc == DIA_OK) {
        uint16_t len = dexcom_rx_record_length(&d->parts, type, h.revision);
        rc = dexcom_rx_page_open(buf, DEXCOM_RX_PAGE_SIZE, len, pg);
    }
    if (rc != DIA_OK && rc != DIA_ERR_UNSUPPORTED) {
        count(d->in, rc);
        dia_warn(d->in->name,
                 "skipped a damaged %s page (%s): its records cannot be read, the other pages "
                 "are. If this happens often, please report it with a trace (trace-file=…, see "
                 "docs/devices/dexcom-usb.md)",
                 dexcom_rx_record_type_name(type), dia_strerror(rc));
    }
    return rc;
}

/* System time of the first readable record of a page; false when none. */
static bool page_first_time(const struct dexcom_rx_page *pg, uint8_t type, uint32_t *t)
{
    for (uint32_t i = 0; i < pg->hdr.num_records; i++) {
        struct dexcom_rx_record rec;
        const uint8_t *p = pg->data + (size_t)i * pg->record_length;
        if (dexcom_rx_record_decode_raw(p, pg->record_length, type, pg->hdr.revision, &rec) ==
            DIA_OK) {
            *t = rec.system_time;
            return true;
        }
    }
    return false;
}

/* The first page that can hold records written at or after `cutoff`
 * (receiver system time), searching back from the newest page. */
static int find_start_page(struct dexusb *d, uint8_t type, const struct dexcom_rx_page_range *r,
                           uint32_t cutoff, uint32_t *start)
{
    uint32_t hi = r->last;
    for (;;) {
        uint32_t lo = hi - r->first >= DEXCOM_RX_PAGES_PER_READ - 1
                          ? hi - (DEXCOM_RX_PAGES_PER_READ - 1)
                          : r->first;
        int rc = read_pages(d, type, lo, (uint8_t)(hi - lo + 1));
        if (rc != DIA_OK)
            return rc;
        for (int i = (int)(hi - lo); i >= 0; i--) {
            struct dexcom_rx_page pg;
            uint32_t t;
            if (open_page(d, type, i, &pg) == DIA_OK && page_first_time(&pg, type, &t) &&
                t < cutoff) {
                *start = lo + (uint32_t)i;
                return DIA_OK;
            }
        }
        if (lo == r->first) {
            *start = r->first;
            return DIA_OK;
        }
        hi = lo - 1;
    }
}

/*
 * The partition in `slot` holds a record (or a page) in a layout the codec
 * does not know: a receiver newer than this program.  Reading stops there
 * and the read position stays before it, so nothing is skipped for good:
 * once diabridge learns the layout, the records are read from there.  Said
 * once per connection in the log; the poll ends with it as the source's
 * last error (dexusb_poll), and the other partitions are read as usual.
 */
static void block_partition(struct dexusb *d, int slot, uint8_t type, uint8_t revision,
                            uint16_t length)
{
    struct unknown_layout *u = &d->layout[slot];
    u->blocked = true;
    u->revision = revision;
    u->length = length;
    if (u->warned && u->warned_revision == revision && u->warned_length == length)
        return;
    u->warned = true;
    u->warned_revision = revision;
    u->warned_length = length;
    atomic_fetch_add(&d->in->counters.decode_errors, 1);
    char size[32] = "";
    if (length)
        snprintf(size, sizeof size, ", %u-byte records", length);
    dia_warn(d->in->name,
             "%s revision %u%s is a layout diabridge does not know: its records are left on "
             "the receiver, not skipped, and will be read once it is supported. Please report "
             "it with a trace (trace-file=…, see docs/devices/dexcom-usb.md)",
             dexcom_rx_record_type_name(type), revision, size);
}

/*
 * Read what is new in one partition.  *more is set when the page limit
 * stopped the read before the newest page.
 */
static int read_partition(struct dexusb *d, struct dia_batch *out, uint8_t type, bool *more)
{
    int slot = partition_slot(type);
    struct cursor *cur = &d->pending[slot];
    struct dexcom_rx_page_range range;
    int rc = page_range(d, type, &range);
    if (rc != DIA_OK)
        return rc;
    if (range.empty)
        return DIA_OK;

    uint32_t start;
    uint32_t cutoff = 0; /* system time before which records are history we skip */
    if (cur->known && cur->page >= range.first && cur->page <= range.last) {
        start = cur->page;
    } else {
        if (cur->known && cur->page > range.last) {
            dia_warn(d->in->name,
                     "%s: the receiver holds fewer pages (%" PRIu32 "..%" PRIu32
                     ") than already read (%" PRIu32 "); was its database reset? Reading it "
                     "again from the start",
                     dexcom_rx_record_type_name(type), range.first, range.last, cur->page);
            cur->known = false;
        } else if (cur->known) {
            dia_warn(d->in->name,
                     "%s: pages %" PRIu32 "..%" PRIu32 " were overwritten on the receiver "
                     "before they could be read",
                     dexcom_rx_record_type_name(type), cur->page, range.first - 1);
        }
        if (cur->known || d->since_s < 0) {
            start = range.first;
        } else {
            int64_t c = (int64_t)d->system_now - d->since_s;
            cutoff = c > 0 ? (uint32_t)c : 0;
            rc = find_start_page(d, type, &range, cutoff, &start);
            if (rc != DIA_OK)
                return rc;
        }
    }

    uint64_t budget = (uint64_t)d->max_pages;
    uint32_t p = start;
    uint8_t n;
    while ((n = dexcom_rx_page_range_chunk(&range, p, DEXCOM_RX_PAGES_PER_READ)) > 0) {
        if (budget == 0) {
            *more = true;
            break;
        }
        if (n > budget)
            n = (uint8_t)budget;
        rc = read_pages(d, type, p, n);
        if (rc != DIA_OK)
            return rc;
        for (int i = 0; i < n; i++) {
            struct dexcom_rx_page pg;
            rc = open_page(d, type, i, &pg);
            if (rc == DIA_ERR_UNSUPPORTED) {
                /* A page revision neither the partition info nor the
                 * codec knows a record length for. */
                block_partition(d, slot, type, pg.hdr.revision, 0);
                return DIA_OK;
            }
            if (rc != DIA_OK)
                continue;
            for (uint32_t k = 0; k < pg.hdr.num_records; k++) {
                uint32_t index = pg.hdr.first_record_index + k;
                if (cur->known && index <= cur->index)
                    continue;
                struct dexcom_rx_record rec;
                rc = dexcom_rx_page_record(&pg, k, &rec);
                if (rc == DIA_ERR_UNSUPPORTED && rec.system_time >= cutoff) {
                    /* Not done with: the read position stays before it. */
                    block_partition(d, slot, type, pg.hdr.revision, pg.record_length);
                    return DIA_OK;
                }
                /* Whatever else happens to it, this record is done with. */
                cur->known = true;
                cur->index = index;
                cur->page = p + (uint32_t)i;
                if (rc != DIA_OK && rc != DIA_ERR_UNSUPPORTED) {
                    count(d->in, rc);
                    dia_warn(d->in->name, "skipped %s record %" PRIu32 ": %s (%s)",
                             dexcom_rx_record_type_name(type), index,
                             rec.why ? rec.why : dia_strerror(rc), dia_errname(rc));
                    continue;
                }
                if (rc != DIA_OK || rec.system_time < cutoff)
                    continue; /* history before `since`, readable or not */
                /* Written after the receiver's own clock: impossible for a
                 * record it stored, so its times cannot be trusted. */
                int64_t ahead = (int64_t)rec.system_time - receiver_now(d);
                if (ahead > DEXCOM_RX_MEASURED_AFTER_WRITE_MAX_S) {
                    atomic_fetch_add(&d->in->counters.implausible, 1);
                    dia_warn(d->in->name,
                             "skipped %s record %" PRIu32 ": written %" PRId64 " s after the "
                             "receiver's current time (was its clock set back?)",
                             dexcom_rx_record_type_name(type), index, ahead);
                    continue;
                }
                rc = emit_record(d, out, &rec);
                if (rc != DIA_OK)
                    return rc;
            }
        }
        budget -= n;
        p += n;
        if (p == 0)
            break; /* wrapped at 2^32: cannot happen on a real receiver */
    }
    return DIA_OK;
}

/* Merge the G4's raw sensor values into the glucose read this poll. */
static int pair_sensor_values(struct dexusb *d, struct dia_batch *out)
{
    if (d->npair == 0 || !dexcom_rx_partition_find(&d->parts, DEXCOM_RX_REC_SENSOR_DATA))
        return DIA_OK;
    uint32_t oldest = UINT32_MAX;
    for (size_t i = 0; i < d->npair; i++)
        if (d->pair[i].system_time < oldest)
            oldest = d->pair[i].system_time;
    struct dexcom_rx_page_range range;
    int rc = page_range(d, DEXCOM_RX_REC_SENSOR_DATA, &range);
    if (rc != DIA_OK || range.empty)
        return rc;
    uint32_t hi = range.last;
    size_t paired = 0;
    for (;;) {
        uint32_t lo = hi - range.first >= DEXCOM_RX_PAGES_PER_READ - 1
                          ? hi - (DEXCOM_RX_PAGES_PER_READ - 1)
                          : range.first;
        rc = read_pages(d, DEXCOM_RX_REC_SENSOR_DATA, lo, (uint8_t)(hi - lo + 1));
        if (rc != DIA_OK)
            return rc;
        bool older_seen = false;
        for (int i = 0; i <= (int)(hi - lo); i++) {
            struct dexcom_rx_page pg;
            if (open_page(d, DEXCOM_RX_REC_SENSOR_DATA, i, &pg) != DIA_OK)
                continue;
            for (uint32_t k = 0; k < pg.hdr.num_records; k++) {
                struct dexcom_rx_record rec;
                int r = dexcom_rx_page_record(&pg, k, &rec);
                if (r != DIA_OK) {
                    count(d->in, r);
                    continue;
                }
                if (rec.system_time + SENSOR_PAIR_S < oldest) {
                    older_seen = true;
                    continue;
                }
                for (size_t j = 0; j < d->npair; j++) {
                    int64_t dt = (int64_t)rec.system_time - d->pair[j].system_time;
                    if (dt < -SENSOR_PAIR_S || dt > SENSOR_PAIR_S)
                        continue;
                    struct dia_glucose *g = &out->recs[d->pair[j].rec].u.glucose;
                    if (g->filtered != DIA_ABSENT)
                        continue;
                    g->filtered = rec.u.sensor.filtered <= INT32_MAX
                                      ? (int32_t)rec.u.sensor.filtered
                                      : DIA_ABSENT;
                    g->unfiltered = rec.u.sensor.unfiltered <= INT32_MAX
                                        ? (int32_t)rec.u.sensor.unfiltered
                                        : DIA_ABSENT;
                    g->rssi = rec.u.sensor.rssi;
                    paired++;
                    break;
                }
            }
        }
        if (older_seen || lo == range.first)
            break;
        hi = lo - 1;
    }
    dia_debug(d->in->name, "raw sensor values for %zu of %zu readings", paired, d->npair);
    return DIA_OK;
}

/* ---- status ------------------------------------------------------------ */

static int emit_status(struct dexusb *d, struct dia_batch *out)
{
    struct dexcom_rx_frame f;
    uint32_t level = 0;
    uint8_t state = 0;
    bool have_level = false, have_state = false;
    int rc = simple(d, DEXCOM_RX_CMD_READ_BATTERY_LEVEL, &f);
    if (rc == DIA_ERR_DISCONNECTED || rc == DIA_ERR_IO || rc == DIA_ERR_STOPPING)
        return rc;
    if (rc == DIA_OK)
        have_level = dexcom_rx_parse_battery_level(f.payload, f.payload_len, &level) == DIA_OK;
    rc = simple(d, DEXCOM_RX_CMD_READ_BATTERY_STATE, &f);
    if (rc == DIA_ERR_DISCONNECTED || rc == DIA_ERR_IO || rc == DIA_ERR_STOPPING)
        return rc;
    if (rc == DIA_OK)
        have_state = dexcom_rx_parse_battery_state(f.payload, f.payload_len, &state) == DIA_OK;

    struct dia_record *r = dia_batch_add(out, DIA_KIND_STATUS);
    if (!r)
        return DIA_ERR_NOMEM;
    r->origin = DIA_ORIGIN_DEVICE;
    r->received_ms = dia_now_ms();
    r->t_utc_ms = system_to_utc_ms(d, d->system_now);
    snprintf(r->driver, sizeof r->driver, "dexcom-usb");
    snprintf(r->device_id, sizeof r->device_id, "%s", d->serial);
    snprintf(r->device_time, sizeof r->device_time, "S%" PRIu32, d->system_now);
    struct dia_status *st = &r->u.status;
    st->battery_pct = have_level && level <= 100 ? (int32_t)level : DIA_ABSENT;
    snprintf(st->state, sizeof st->state, "battery %s",
             have_state ? dexcom_rx_battery_state_name(state) : "unknown");
    snprintf(st->firmware, sizeof st->firmware, "%s", d->firmware);
    snprintf(st->transmitter, sizeof st->transmitter, "%s", d->transmitter);
    dia_record_set_key(r, "status/s%" PRIu32, d->system_now);
    keep_if_valid(d, out);
    return DIA_OK;
}

/* ---- state ------------------------------------------------------------- */

static void state_key(const struct dexusb *d, uint8_t type, char *buf, size_t len)
{
    snprintf(buf, len, "%s.p%u", d->serial, type);
}

/* The measured system time of the newest live reading, kept so that a
 * reconnect polls in step with the readings at once (dexusb_next_poll). */
static void newest_key(const struct dexusb *d, char *buf, size_t len)
{
    snprintf(buf, len, "%s.newest-egv", d->serial);
}

static int load_newest(struct dexusb *d)
{
    d->newest_egv = d->newest_egv_committed = 0;
    if (!d->in->journal)
        return DIA_OK;
    char key[64], val[64];
    newest_key(d, key, sizeof key);
    int rc = dia_journal_state_get(d->in->journal, d->in->name, key, val, sizeof val);
    if (rc < 0) {
        dia_instance_error(d->in, "cannot read the stored read position: %s",
                           dia_journal_errmsg(d->in->journal));
        return rc;
    }
    char *end = NULL;
    unsigned long long t = rc == 1 ? strtoull(val, &end, 10) : 0;
    if (rc == 1 && (end == val || *end || t > UINT32_MAX)) {
        dia_warn(d->in->name, "stored %s = \"%s\" is unusable; the polling rhythm starts afresh",
                 key, val);
        t = 0;
    }
    d->newest_egv = d->newest_egv_committed = (uint32_t)t;
    return DIA_OK;
}

static int load_cursors(struct dexusb *d)
{
    for (size_t i = 0; i < N_PARTITIONS; i++) {
        d->committed[i].known = false;
        if (!d->in->journal)
            continue;
        char key[64], val[64];
        state_key(d, record_partitions[i], key, sizeof key);
        int rc = dia_journal_state_get(d->in->journal, d->in->name, key, val, sizeof val);
        if (rc < 0) {
            dia_instance_error(d->in, "cannot read the stored read position: %s",
                               dia_journal_errmsg(d->in->journal));
            return rc;
        }
        unsigned long page, index;
        if (rc == 1 && sscanf(val, "%lu %lu", &page, &index) == 2 && page <= UINT32_MAX &&
            index <= UINT32_MAX) {
            d->committed[i] = (struct cursor){true, (uint32_t)page, (uint32_t)index};
        } else if (rc == 1) {
            dia_warn(d->in->name, "stored read position %s = \"%s\" is unusable; reading %s again",
                     key, val, "from the configured history");
        }
    }
    return DIA_OK;
}

static int save_cursors(struct dexusb *d, struct dia_batch *out)
{
    for (size_t i = 0; i < N_PARTITIONS; i++) {
        const struct cursor *c = &d->pending[i];
        const struct cursor *old = &d->committed[i];
        if (!c->known || (old->known && old->page == c->page && old->index == c->index))
            continue;
        char key[64], val[64];
        state_key(d, record_partitions[i], key, sizeof key);
        snprintf(val, sizeof val, "%" PRIu32 " %" PRIu32, c->page, c->index);
        int rc = dia_batch_set_state(out, key, val);
        if (rc != DIA_OK)
            return rc;
    }
    if (d->newest_egv != d->newest_egv_committed) {
        char key[64], val[16];
        newest_key(d, key, sizeof key);
        snprintf(val, sizeof val, "%" PRIu32, d->newest_egv);
        return dia_batch_set_state(out, key, val);
    }
    return DIA_OK;
}

/* ---- driver methods ---------------------------------------------------- */

static void dexusb_close(struct dia_instance *src)
{
    struct dexusb *d = src->priv;
    if (!d)
        return;
    dia_serial_close(d->port);
    if (d->trace)
        fclose(d->trace);
    free(d->pages);
    free(d->pair);
    free(d);
    src->priv = NULL;
}

static int identify(struct dexusb *d)
{
    struct dia_instance *in = d->in;
    struct dexcom_rx_frame f;
    int rc = simple(d, DEXCOM_RX_CMD_PING, &f);
    if (rc != DIA_OK)
        return rc;
    rc = simple(d, DEXCOM_RX_CMD_READ_FIRMWARE_HEADER, &f);
    if (rc != DIA_OK)
        return rc;
    if (dexcom_rx_xml_attr(f.payload, f.payload_len, "FirmwareHeader", "FirmwareVersion",
                           d->firmware, sizeof d->firmware) != DIA_OK)
        snprintf(d->firmware, sizeof d->firmware, "unknown");
    if (dexcom_rx_xml_attr(f.payload, f.payload_len, "FirmwareHeader", "ProductName", d->product,
                           sizeof d->product) != DIA_OK)
        snprintf(d->product, sizeof d->product, "Dexcom receiver");

    rc = simple(d, DEXCOM_RX_CMD_READ_PARTITION_INFO, &f);
    if (rc != DIA_OK)
        return rc;
    rc = dexcom_rx_partition_info_parse(f.payload, f.payload_len, &d->parts);
    if (rc != DIA_OK) {
        count(in, rc);
        dia_instance_error(in,
                           "cannot read the receiver's partition table (%s); please report "
                           "this with a trace (trace-file=…)",
                           dia_strerror(rc));
        return rc == DIA_ERR_UNSUPPORTED ? DIA_ERR_CONFIG : rc;
    }

    /* The receiver's serial number is on the manufacturing page (0). */
    struct dexcom_rx_page_range range;
    rc = page_range(d, DEXCOM_RX_REC_MANUFACTURING_DATA, &range);
    if (rc != DIA_OK)
        return rc;
    d->serial[0] = '\0';
    if (!range.empty) {
        rc = read_pages(d, DEXCOM_RX_REC_MANUFACTURING_DATA, range.last, 1);
        if (rc != DIA_OK)
            return rc;
        struct dexcom_rx_page pg;
        struct dexcom_rx_record rec;
        if (open_page(d, DEXCOM_RX_REC_MANUFACTURING_DATA, 0, &pg) == DIA_OK &&
            pg.hdr.num_records > 0 && dexcom_rx_page_record(&pg, 0, &rec) == DIA_OK &&
            rec.kind == DEXCOM_RX_KIND_XML)
            dexcom_rx_xml_attr(rec.u.xml.text, rec.u.xml.len, "ManufacturingParameters",
                               "SerialNumber", d->serial, sizeof d->serial);
    }
    if (!d->serial[0]) {
        dia_instance_error(in, "the receiver did not say its serial number (manufacturing "
                               "data unreadable); retrying");
        return DIA_ERR_DEVICE;
    }

    rc = simple(d, DEXCOM_RX_CMD_READ_TRANSMITTER_ID, &f);
    if (rc == DIA_ERR_DISCONNECTED || rc == DIA_ERR_IO || rc == DIA_ERR_STOPPING)
        return rc;
    d->transmitter[0] = '\0';
    if (rc == DIA_OK &&
        dexcom_rx_parse_transmitter_id(f.payload, f.payload_len, d->transmitter) != DIA_OK)
        d->transmitter[0] = '\0';
    /* The group Share and BLE sources of this transmitter name too; "" (no
     * transmitter, no sensor=) makes the journal group by receiver. */
    if (dexcom_sensor_group(dia_opt_str(in->opts, "sensor", NULL), d->transmitter, d->sensor,
                            sizeof d->sensor) != DIA_OK) {
        dia_instance_error(in, "sensor= is too long: at most %zu characters", sizeof d->sensor - 1);
        return DIA_ERR_CONFIG;
    }
    return DIA_OK;
}

/* The start-up check of the target; whether the tty exists is open()'s
 * business (the receiver may be plugged in later). */
static int dexusb_check(const struct dia_options *opts, char *why, size_t why_len)
{
    const char *target = opts->target;
    if (!target || !target[0] || strcmp(target, "auto") == 0 || target[0] == '/')
        return DIA_OK;
    snprintf(why, why_len,
             "the receiver's tty must be a full path such as /dev/ttyACM0, or auto to find it "
             "by its USB id");
    return DIA_ERR_CONFIG;
}

static int dexusb_open(struct dia_instance *src)
{
    struct dexusb *d = calloc(1, sizeof *d);
    if (!d) {
        dia_instance_error(src, "out of memory");
        return DIA_ERR_NOMEM;
    }
    d->in = src;
    d->since_s = dia_opt_duration(src->opts, "since", 86400);
    d->timeout_ms = dia_opt_int(src->opts, "timeout-ms", 2000);
    d->attempts = dia_opt_int(src->opts, "attempts", 4);
    d->max_pages = dia_opt_int(src->opts, "max-pages", 64);
    d->poll_after_s = dia_opt_duration(src->opts, "poll-after", 15);
    d->retry_s = dia_opt_duration(src->opts, "retry-interval", 30);
    d->retries = dia_opt_int(src->opts, "retries", 4);
    d->poll_interval_s = dia_opt_duration(src->opts, "poll-interval", 0);
    d->status_interval_s = dia_opt_duration(src->opts, "status-interval", 3 * 3600);
    d->untyped_insulin = strcmp(dia_opt_str(src->opts, "untyped-insulin", "note"), "bolus") == 0
                             ? DEXUSB_UNTYPED_INSULIN_BOLUS
                             : DEXUSB_UNTYPED_INSULIN_NOTE;
    dexcom_rx_stream_init(&d->stream);
    src->priv = d;

    const char *target = src->opts->target;
    int rc;
    if (!target || !target[0] || strcmp(target, "auto") == 0) {
        rc = dia_serial_find_usb("/sys", "/dev", RX_USB_VENDOR, RX_USB_PRODUCT, d->tty,
                                 sizeof d->tty);
        if (rc != DIA_OK) {
            dia_instance_error(src, "no Dexcom receiver (USB 22a3:0047) is plugged in; "
                                    "connect it with a data cable");
            goto fail;
        }
    } else {
        snprintf(d->tty, sizeof d->tty, "%s", target);
    }
    const char *trace = dia_opt_str(src->opts, "trace-file", NULL);
    if (trace && trace[0]) {
        d->trace = fopen(trace, "ae");
        if (!d->trace) {
            dia_instance_error(src, "cannot open the trace file %s: %s", trace, strerror(errno));
            rc = DIA_ERR_CONFIG;
            goto fail;
        }
    }
    char err[400];
    rc = dia_serial_open(d->tty, RX_BAUD, &d->port, err, sizeof err);
    if (rc != DIA_OK) {
        dia_instance_error(src, "%s", err);
        goto fail;
    }
    if ((rc = ensure_pages(d)) != DIA_OK || (rc = identify(d)) != DIA_OK ||
        (rc = load_cursors(d)) != DIA_OK || (rc = load_newest(d)) != DIA_OK)
        goto fail;
    d->status_pending = true;
    dia_info(src->name, "%s serial %s, firmware %s, transmitter %s on %s", d->product, d->serial,
             d->firmware, d->transmitter[0] ? d->transmitter : "(none)", d->tty);
    return DIA_OK;
fail:
    dexusb_close(src);
    return rc;
}

int64_t dexusb_next_poll(const struct dexusb_rhythm *r, int64_t newest_ms, int64_t now_ms,
                         bool got_new, int *late_polls)
{
    if (newest_ms == 0)
        return now_ms + DEXUSB_READING_INTERVAL_MS;
    /* When the next reading should be there, in host time. */
    int64_t due = newest_ms + DEXUSB_READING_INTERVAL_MS + r->poll_after_ms;
    if (got_new)
        *late_polls = 0;
    if (due > now_ms)
        return due;
    (*late_polls)++;
    if (*late_polls <= r->retries)
        return now_ms + r->retry_ms;
    /* Long gap (sensor off, out of range): stay in step with the slots. */
    int64_t slot = DEXUSB_READING_INTERVAL_MS;
    return due + ((now_ms - due) / slot + 1) * slot;
}

static int64_t next_poll_ms(struct dexusb *d, int64_t now, bool got_new)
{
    if (d->poll_interval_s > 0)
        return now + d->poll_interval_s * 1000;
    struct dexusb_rhythm r = {.poll_after_ms = d->poll_after_s * 1000,
                              .retry_ms = d->retry_s * 1000,
                              .retries = (int)d->retries};
    /* A stored newest reading later than the receiver's clock (its clock
     * was set back) must not push the next poll into the far future. */
    bool usable =
        d->newest_egv && d->newest_egv <= receiver_now(d) + DEXUSB_READING_INTERVAL_MS / 1000;
    int64_t newest = usable ? system_to_utc_ms(d, d->newest_egv) : 0;
    return dexusb_next_poll(&r, newest, now, got_new, &d->late_polls);
}

static int dexusb_poll(struct dia_instance *src, struct dia_batch *out, int64_t *next_ms)
{
    struct dexusb *d = src->priv;
    memcpy(d->pending, d->committed, sizeof d->pending);
    d->npair = 0;
    uint32_t newest_before = d->newest_egv;
    for (size_t i = 0; i < N_PARTITIONS; i++)
        d->layout[i].blocked = false;

    int rc = read_clock(d);
    if (rc != DIA_OK)
        return rc;
    int64_t now = dia_now_ms();
    if (d->status_pending || now >= d->next_status_ms) {
        rc = emit_status(d, out);
        if (rc != DIA_OK)
            return rc;
    }
    bool more = false;
    for (size_t i = 0; i < N_PARTITIONS; i++) {
        uint8_t type = record_partitions[i];
        if (!dexcom_rx_partition_find(&d->parts, type))
            continue;
        rc = read_partition(d, out, type, &more);
        if (rc != DIA_OK) {
            d->newest_egv = newest_before;
            return rc;
        }
    }
    rc = pair_sensor_values(d, out);
    if (rc == DIA_OK)
        rc = save_cursors(d, out);
    if (rc != DIA_OK) {
        d->newest_egv = newest_before;
        return rc;
    }
    src->warning[0] = '\0';
    for (size_t i = 0; i < N_PARTITIONS; i++) {
        const struct unknown_layout *u = &d->layout[i];
        if (!u->blocked)
            continue;
        /* For `status`; the log said it once (block_partition). */
        bool glucose = record_partitions[i] == DEXCOM_RX_REC_EGV_DATA ||
                       record_partitions[i] == DEXCOM_RX_REC_BACKFILLED_EGV;
        dia_instance_warning(src,
                             "this receiver uses a layout diabridge does not know (%s revision "
                             "%u); its %s are kept on the receiver, the rest is read. Please "
                             "report it with trace-file=… (see docs/devices/dexcom-usb.md)",
                             dexcom_rx_record_type_name(record_partitions[i]), u->revision,
                             glucose ? "readings" : "records");
        break;
    }
    now = dia_now_ms();
    *next_ms = more ? now : next_poll_ms(d, now, d->newest_egv != newest_before);
    dia_debug(src->name, "clock offset %+" PRId64 " s; %zu records; next poll in %.0f s",
              d->offset_s, out->n, (*next_ms - now) / 1000.0);
    return DIA_OK;
}

static void dexusb_committed(struct dia_instance *src, const struct dia_batch *batch)
{
    struct dexusb *d = src->priv;
    memcpy(d->committed, d->pending, sizeof d->committed);
    d->newest_egv_committed = d->newest_egv;
    for (size_t i = 0; i < batch->n; i++) {
        if (batch->recs[i].kind == DIA_KIND_STATUS) {
            d->status_pending = false;
            d->next_status_ms = dia_now_ms() + d->status_interval_s * 1000;
        }
    }
}

const struct dia_source_driver dia_source_dexcom_usb = {
    .name = "dexcom-usb",
    .description = "Dexcom G4, G5 or G6 receiver on USB: glucose with backfill, meter, events",
    .target_help = "the receiver's tty (/dev/ttyACM0, /dev/dexcom-receiver), or auto to find "
                   "it by USB id 22a3:0047",
    .options = dexusb_options,
    .check = dexusb_check,
    .open = dexusb_open,
    .poll = dexusb_poll,
    .committed = dexusb_committed,
    .close = dexusb_close,
};
