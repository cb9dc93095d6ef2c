/*
 * diabridge-sim dexcom-receiver: a Dexcom receiver behind a pty.
 *
 * It plays the receiver side of the USB protocol (spec
 * shared/specs/dexcom-receiver-usb-and-share.md §1–2; framing and CRCs via
 * the codec in src/proto/dexcom_rx/) so the daemon's real serial code and
 * the dexcom-usb source run end to end without hardware.
 *
 * Databases:
 *   --capture FILE   replay a recorded session ("out,<hex>" / "in,<hex>"
 *                    lines: the G4 Studio capture in tests/data/dexcom-usb/,
 *                    or a trace written by the source's trace-file option).
 *                    Every 528-byte page found in a READ_DATABASE_PAGES reply
 *                    is served again; each partition's range is the span of
 *                    captured pages (they must be contiguous).  Firmware
 *                    header, partition info, transmitter id and display
 *                    offset are the captured replies; the system clock starts
 *                    at the captured READ_SYSTEM_TIME and runs on.  The data
 *                    does not grow (a capture holds no future readings).
 *   --generation g4|g5|g6
 *                    a receiver filled from the simulated patient
 *                    (src/source/sim_patient.h): G4 = EGV rev 2 (13 bytes),
 *                    sensor rev 1, meter rev 1, insertion rev 1; G5 and G6 =
 *                    EGV rev 5 (25 bytes, measurement time at offset 10),
 *                    meter rev 3, insertion rev 2, no sensor data (its page
 *                    range answers FFFFFFFF FFFFFFFF); G6 adds BACKFILLED_EGV
 *                    (18): every 4 hours four readings in a row are "missed"
 *                    live and written to partition 18 when the link returns,
 *                    with the time they were written as system time and the
 *                    measurement time at offset 10 (spec §2.4).  Steps
 *                    without a reading get a special value (5 "not
 *                    calibrated" in a sensor's first two hours, 12 "bad RF"
 *                    otherwise), and each finger stick is followed by a
 *                    display-only EGV (bit 15) repeating the reading's time,
 *                    as a G4 does (spec §2.4); every four hours one
 *                    reading is stored as special value 9 ("?AD") instead.
 *                    Every page carries correct
 *                    header and record CRCs.  A new reading every 5 minutes
 *                    of simulated time; --speed N writes them N times
 *                    faster for an hour, starting (N − 1) hours back, so
 *                    that none lies in the future of the receiver's clock,
 *                    which keeps real time (see system_now()).
 *                    --patient-start MS starts the patient's history at
 *                    that Unix ms (rounded down to 5 minutes) instead of
 *                    --history before now: with the same --seed,
 *                    `share-server --patient-start MS --utc-offset 0`
 *                    serves the same readings, as Share would for this
 *                    receiver's transmitter.  A generated receiver names
 *                    its transmitter on stderr at start.  --egv-revision N
 *                    claims EGV revision N in the partition info and page
 *                    headers while writing the usual records: a receiver
 *                    newer than the daemon.
 *
 * stdout: the pty's slave path, one line, flushed; a new line with the new
 * path after each simulated unplug.  --link PATH keeps a symlink pointing
 * at the current pty (like the udev rule's /dev/dexcom-receiver), so a
 * daemon configured with that path finds the receiver again by itself.
 * --truth FILE appends one line per reading the receiver stores:
 * "G <measured system time> <mg/dL> <0|1 backfilled>", or
 * "S <system time> <special code>" for a special value.
 *
 * Faults (--faults, comma list; NAME=P fires on each reply with
 * probability P, NAME@N fires once on the N-th reply, counting from 1):
 *   nak        answer NAK instead of the reply
 *   crc        flip a bit of the reply's CRC
 *   garbage    send 1..16 random bytes before the reply
 *   truncate   send only the first half of the reply
 *   disconnect on a READ_DATABASE_PAGES reply: send half of it, close the
 *              pty (the daemon sees the unplug), wait --reconnect-ms, open a
 *              new pty, print its path and re-point --link
 * A request for a write, erase, reset or shutdown command is refused and
 * counted as "forbidden" in the summary printed on stderr at exit.
 * SIGTERM or SIGINT ends it cleanly (exit 0).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "proto/dexcom_rx/dexcom_rx.h"
#include "sim/sim.h"
#include "source/sim_patient.h"

#define MAX_TYPES   32
#define XML_LEN     490
#define SIM_DRIFT_S 37 /* the generated receiver's clock runs this much behind */

enum fault { F_NAK, F_CRC, F_GARBAGE, F_TRUNCATE, F_DISCONNECT, F_COUNT };
static const char *const fault_names[F_COUNT] = {"nak", "crc", "garbage", "truncate", "disconnect"};

struct part {
    bool listed; /* in the partition info */
    uint8_t revision;
    uint16_t reclen;
    /* capture mode: raw pages; generated mode: records, pages built on demand */
    uint8_t *pages;
    size_t npages;
    uint8_t *recs;
    size_t nrecs, caprecs;
    uint32_t first_page;
    uint32_t first_index;
};

struct rx {
    struct part part[MAX_TYPES];
    bool capture;
    int generation; /* 4, 5, 6 */
    char firmware_xml[512];
    char partition_xml[2048];
    char transmitter[8];
    int32_t display_offset;
    uint32_t sys_base;  /* receiver system time at wall_base */
    int64_t wall_base;  /* monotonic ms */
    int64_t unix_base;  /* simulated Unix ms at wall_base (generated) */
    int64_t clock_base; /* real Unix ms at wall_base: the receiver's clock */
    int egv_revision;   /* --egv-revision: 0, or the EGV revision to claim */
    long long speed;

    /* generated mode */
    struct dia_sim_patient patient;
    int64_t gen_until_ms; /* simulated time generated so far */
    int64_t start_ms;
    int64_t last_start_step; /* step of the newest sensor start */
    int64_t gap_from;        /* first missed step of the current gap, or -1 */
    struct {
        uint32_t sys;
        int32_t mgdl;
        int32_t trend, noise;
    } gap[8];
    int ngap;
    FILE *truth;

    /* faults */
    double rate[F_COUNT];
    long long at[F_COUNT]; /* one-shot reply number; 0 = none */
    bool armed_disconnect;
    bool reopened; /* a new pty replaced the old one during this request */
    unsigned long fired[F_COUNT];
    unsigned long replies, commands, forbidden;
    uint64_t rng;
    long long reconnect_ms;

    /* pty */
    int master, slave;
    char slave_path[PATH_MAX];
    const char *link;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static uint64_t rnd(struct rx *x)
{
    /* xorshift64*: small, deterministic per seed */
    x->rng ^= x->rng >> 12;
    x->rng ^= x->rng << 25;
    x->rng ^= x->rng >> 27;
    return x->rng * 0x2545F4914F6CDD1DULL;
}

static double rnd01(struct rx *x)
{
    return (double)(rnd(x) >> 11) / (double)(1ULL << 53);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- the receiver's clock ------------------------------------------------ */

/* The receiver's clock keeps real time even when --speed makes readings
 * arrive faster: the daemon measures host − receiver time on every poll,
 * and a clock running N times too fast would shift readings read in
 * different polls against each other (by up to minutes at 120×), enough
 * for consolidation to take neighbours for one reading.  Yet a receiver
 * never stores a reading in its own future, and the daemon refuses one
 * that does.  So at speed N the simulated time starts CATCH_UP_S × (N − 1)
 * behind the receiver's clock and runs N times faster until it reaches the
 * clock, an hour of real time later; from then on it keeps the clock's
 * pace, a reading every 5 real minutes. */
static uint32_t system_now(const struct rx *x)
{
    int64_t el = (dia_mono_ms() - x->wall_base) / 1000;
    return x->sys_base + (uint32_t)el;
}

#define CATCH_UP_S 3600

static int64_t sim_unix_ms(const struct rx *x)
{
    int64_t el = dia_mono_ms() - x->wall_base;
    int64_t fast = x->unix_base + el * x->speed;
    int64_t clock = x->clock_base + el;
    return fast < clock ? fast : clock;
}

static uint32_t unix_to_sys(int64_t unix_ms)
{
    return (uint32_t)(unix_ms / 1000 - DEXCOM_RX_EPOCH_UNIX - SIM_DRIFT_S);
}

/* ---- database ------------------------------------------------------------ */

static int records_per_page(const struct part *p)
{
    return DEXCOM_RX_PAGE_DATA_SIZE / p->reclen;
}

static size_t part_pages(const struct part *p)
{
    if (p->pages)
        return p->npages;
    return (p->nrecs + (size_t)records_per_page(p) - 1) / (size_t)records_per_page(p);
}

/* Build page k (0-based within the partition) into out (528 bytes). */
static void build_page(const struct rx *x, uint8_t type, size_t k, uint8_t *out)
{
    const struct part *p = &x->part[type];
    if (p->pages) {
        memcpy(out, p->pages + k * DEXCOM_RX_PAGE_SIZE, DEXCOM_RX_PAGE_SIZE);
        return;
    }
    size_t per = (size_t)records_per_page(p);
    size_t first = k * per;
    size_t n = p->nrecs - first < per ? p->nrecs - first : per;
    memset(out, 0xFF, DEXCOM_RX_PAGE_SIZE);
    memset(out, 0, DEXCOM_RX_PAGE_HEADER_SIZE);
    put32(out, p->first_index + (uint32_t)first);
    put32(out + 4, (uint32_t)n);
    out[8] = type;
    out[9] = p->revision;
    put32(out + 10, p->first_page + (uint32_t)k);
    put16(out + 26, dexcom_rx_crc16(out, 26));
    memcpy(out + DEXCOM_RX_PAGE_HEADER_SIZE, p->recs + first * p->reclen, n * p->reclen);
}

/* Append one record (its CRC is filled in here). */
static int add_record(struct rx *x, uint8_t type, uint8_t *rec)
{
    struct part *p = &x->part[type];
    uint16_t len = p->reclen;
    put16(rec + len - 2, dexcom_rx_crc16(rec, len - 2u));
    if (p->nrecs == p->caprecs) {
        size_t cap = p->caprecs ? p->caprecs * 2 : 256;
        uint8_t *n = realloc(p->recs, cap * len);
        if (!n)
            return -1;
        p->recs = n;
        p->caprecs = cap;
    }
    memcpy(p->recs + p->nrecs * len, rec, len);
    p->nrecs++;
    return 0;
}

static void define_part(struct rx *x, uint8_t type, uint8_t rev, uint16_t len, uint32_t first_page)
{
    x->part[type] = (struct part){.listed = true,
                                  .revision = rev,
                                  .reclen = len,
                                  .first_page = first_page,
                                  .first_index = first_page * 7u};
}

static void record_head(const struct rx *x, uint8_t *rec, uint32_t sys)
{
    put32(rec, sys);
    put32(rec + 4, (uint32_t)((int64_t)sys + x->display_offset));
}

/* kind 'G': a reading (c = backfilled); 'S': a special value (b = code);
 * 'I': insulin logged (b = subtype, c = 1/100 U). */
static void truth_line(struct rx *x, char kind, uint32_t a, int32_t b, int c)
{
    if (!x->truth)
        return;
    if (kind == 'G' || kind == 'I')
        fprintf(x->truth, "%c %" PRIu32 " %" PRId32 " %d\n", kind, a, b, c);
    else
        fprintf(x->truth, "S %" PRIu32 " %" PRId32 "\n", a, b);
    fflush(x->truth);
}

static void add_egv(struct rx *x, uint8_t type, uint32_t written, uint32_t measured, uint16_t raw,
                    int32_t trend, int32_t noise)
{
    uint8_t rec[32] = {0};
    record_head(x, rec, written);
    put16(rec + 8, raw);
    uint8_t tn = (uint8_t)((trend & 0x0F) | ((noise & 0x07) << 4));
    if (x->generation == 4) {
        rec[10] = tn;
    } else {
        put32(rec + 10, measured);
        put32(rec + 14, measured / 2); /* transmitter clock: any steady count */
        rec[18] = 0x7F;                /* rate not available */
        rec[19] = tn;
        rec[20] = 6;
        put16(rec + 21, x->generation == 6 ? (uint16_t)(raw & 0x23FF) : 13);
    }
    add_record(x, type, rec);
}

static void add_meter(struct rx *x, uint32_t sys, int32_t mgdl)
{
    uint8_t rec[32] = {0};
    record_head(x, rec, sys + 20);
    put16(rec + 8, (uint16_t)mgdl);
    if (x->generation == 4) {
        put32(rec + 10, sys);
    } else {
        rec[10] = 1;
        put32(rec + 11, sys);
        put32(rec + 15, sys - 1000);
    }
    add_record(x, DEXCOM_RX_REC_METER_DATA, rec);
}

static void add_user_event(struct rx *x, uint32_t sys, uint8_t type, uint8_t sub, uint32_t value)
{
    uint8_t rec[24] = {0};
    record_head(x, rec, sys + 40);
    rec[8] = type;
    rec[9] = sub;
    put32(rec + 10, (uint32_t)((int64_t)sys + x->display_offset)); /* display domain */
    put32(rec + 14, value);
    add_record(x, DEXCOM_RX_REC_USER_EVENT_DATA, rec);
}

static void add_insertion(struct rx *x, uint32_t sys, uint8_t state, const char *tx)
{
    uint8_t rec[32] = {0};
    record_head(x, rec, sys);
    put32(rec + 8, state == 7 ? sys : 0xFFFFFFFFu);
    rec[12] = state;
    if (x->generation != 4) {
        put32(rec + 13, 1);
        memcpy(rec + 17, tx, strnlen(tx, 6));
    }
    add_record(x, DEXCOM_RX_REC_INSERTION_TIME, rec);
}

/* One five-minute step of the patient into the receiver's partitions. */
static void generate_step(struct rx *x)
{
    struct dia_sim_slot slot;
    dia_sim_patient_step(&x->patient, &slot);
    uint32_t sys = unix_to_sys(slot.t_ms);
    const struct dia_sim_event *glucose = NULL;
    bool meter = false;
    for (int i = 0; i < slot.n; i++) {
        const struct dia_sim_event *e = &slot.ev[i];
        uint32_t esys = unix_to_sys(e->t_ms);
        switch (e->kind) {
        case DIA_SIM_GLUCOSE:
            glucose = e;
            break;
        case DIA_SIM_METER:
            add_meter(x, esys, e->u.meter.mgdl);
            meter = true;
            break;
        case DIA_SIM_CARBS:
            if (e->u.carbs.carbs_dg >= 10)
                add_user_event(x, esys, DEXCOM_RX_EVENT_CARBS, 0,
                               (uint32_t)(e->u.carbs.carbs_dg / 10));
            break;
        case DIA_SIM_BOLUS:
            add_user_event(x, esys, DEXCOM_RX_EVENT_INSULIN, 1,
                           (uint32_t)(e->u.bolus.delivered_mu / 10));
            truth_line(x, 'I', esys, 1, (int)(e->u.bolus.delivered_mu / 10));
            break;
        case DIA_SIM_EXERCISE:
            add_user_event(x, esys, DEXCOM_RX_EVENT_EXERCISE, (uint8_t)e->u.exercise.intensity,
                           (uint32_t)(e->u.exercise.duration_s / 60));
            break;
        case DIA_SIM_SENSOR_STOP:
            add_insertion(x, esys, 1, e->u.sensor.transmitter);
            break;
        case DIA_SIM_STATUS:
            snprintf(x->transmitter, sizeof x->transmitter, "%s", e->u.status.transmitter);
            break;
        case DIA_SIM_SENSOR_START:
            add_insertion(x, esys, 7, e->u.sensor.transmitter);
            x->last_start_step = slot.index;
            snprintf(x->transmitter, sizeof x->transmitter, "%s", e->u.sensor.transmitter);
            break;
        default:
            break;
        }
    }

    /* Once a day a long-acting injection is logged (insulin subtype 2,
     * spec §2.4): 12.5 U, as someone on pens logs their basal insulin. */
    if ((slot.t_ms / DIA_SIM_STEP_MS) % 288 == 100) {
        add_user_event(x, sys, DEXCOM_RX_EVENT_INSULIN, 2, 1250);
        truth_line(x, 'I', sys, 2, 1250);
    }

    /* G6: four readings every four hours are missed live, then backfilled. */
    int64_t phase = (slot.t_ms / DIA_SIM_STEP_MS) % 48;
    bool in_gap = x->generation == 6 && phase >= 20 && phase < 24;
    if (in_gap) {
        if (glucose && x->ngap < 8) {
            x->gap[x->ngap].sys = sys;
            x->gap[x->ngap].mgdl = glucose->u.glucose.mgdl;
            x->gap[x->ngap].trend = glucose->u.glucose.trend;
            x->gap[x->ngap].noise = glucose->u.glucose.noise;
            x->ngap++;
        }
        return;
    }
    if (x->ngap > 0) {
        for (int i = 0; i < x->ngap; i++) {
            add_egv(x, DEXCOM_RX_REC_BACKFILLED_EGV, sys, x->gap[i].sys,
                    (uint16_t)(x->gap[i].mgdl | DEXCOM_RX_EGV_FLAG_BACKFILLED), x->gap[i].trend,
                    x->gap[i].noise);
            truth_line(x, 'G', x->gap[i].sys, x->gap[i].mgdl, 1);
        }
        x->ngap = 0;
    }
    /* Every four hours one reading is replaced by a special value ("?AD"),
     * so special values are always part of the data. */
    bool deviation = phase == 30 && glucose;
    if (glucose && !deviation) {
        int32_t mgdl = glucose->u.glucose.mgdl;
        add_egv(x, DEXCOM_RX_REC_EGV_DATA, sys, sys, (uint16_t)mgdl, glucose->u.glucose.trend,
                glucose->u.glucose.noise);
        truth_line(x, 'G', sys, mgdl, 0);
        if (x->generation == 4) {
            uint8_t rec[24] = {0};
            record_head(x, rec, sys + 1);
            put32(rec + 8, (uint32_t)glucose->u.glucose.unfiltered);
            put32(rec + 12, (uint32_t)glucose->u.glucose.filtered);
            rec[16] = (uint8_t)(int8_t)glucose->u.glucose.rssi;
            add_record(x, DEXCOM_RX_REC_SENSOR_DATA, rec);
        }
        if (meter) /* display-only twin after a calibration (spec §2.4) */
            add_egv(x, DEXCOM_RX_REC_EGV_DATA, sys, sys,
                    (uint16_t)((mgdl + 7) | DEXCOM_RX_EGV_FLAG_DISPLAY_ONLY), 4, 1);
    } else {
        bool warmup =
            slot.index - x->last_start_step < DIA_SIM_WARMUP_STEPS && x->last_start_step >= 0;
        uint16_t special = deviation ? DEXCOM_RX_SPECIAL_ABSOLUTE_DEVIATION
                           : warmup  ? DEXCOM_RX_SPECIAL_SENSOR_NOT_CALIBRATED
                                     : DEXCOM_RX_SPECIAL_BAD_RF;
        add_egv(x, DEXCOM_RX_REC_EGV_DATA, sys, sys, special, 8, 0);
        truth_line(x, 'S', sys, special, 0);
    }
}

/* Generate every step whose time has come. */
static void generate_until_now(struct rx *x)
{
    if (x->capture)
        return;
    int64_t now = sim_unix_ms(x);
    while (x->start_ms + dia_sim_patient_index(&x->patient) * DIA_SIM_STEP_MS <= now)
        generate_step(x);
}

static void build_partition_xml(struct rx *x)
{
    size_t n = (size_t)snprintf(x->partition_xml, sizeof x->partition_xml,
                                "<PartitionInfo SchemaVersion='1' PageHeaderVersion='1' "
                                "PageDataLength='500'>");
    for (int t = 0; t < MAX_TYPES; t++) {
        const struct part *p = &x->part[t];
        if (!p->listed || n >= sizeof x->partition_xml)
            continue;
        n += (size_t)snprintf(x->partition_xml + n, sizeof x->partition_xml - n,
                              "<Partition Name='%s' Id='%d' RecordRevision='%u' "
                              "RecordLength='%u'/>",
                              dexcom_rx_record_type_name((uint8_t)t), t, p->revision, p->reclen);
    }
    if (n < sizeof x->partition_xml)
        snprintf(x->partition_xml + n, sizeof x->partition_xml - n, "</PartitionInfo>");
}

static int setup_generated(struct rx *x, const char *gen, long long seed, long long history_s,
                           long long patient_start, const char *serial)
{
    x->generation = strcmp(gen, "g4") == 0 ? 4 : strcmp(gen, "g5") == 0 ? 5 : 6;
    if (strcmp(gen, "g4") && strcmp(gen, "g5") && strcmp(gen, "g6")) {
        fprintf(stderr, "dexcom-receiver: --generation must be g4, g5 or g6\n");
        return -1;
    }
    static const char *const fw[] = {
        "<FirmwareHeader SchemaVersion='1' ApiVersion='2.2.0.0' TestApiVersion='2.4.0.0' "
        "ProductId='G4Receiver' ProductName='Dexcom G4 Receiver' SoftwareNumber='SW10050' "
        "FirmwareVersion='2.0.1.104' PortVersion='4.6.4.45' RFVersion='1.0.0.27' "
        "DexBootVersion='3'/>",
        "<FirmwareHeader SchemaVersion='1' ApiVersion='3.1.0.0' TestApiVersion='3.1.0.0' "
        "ProductId='ScoutReceiver' ProductName='Dexcom G5 Mobile Receiver' "
        "SoftwareNumber='SW10751' FirmwareVersion='5.0.1.043' PortVersion='5.0.0.0' "
        "RFVersion='1.0.0.0' DexBootVersion='5'/>",
        "<FirmwareHeader SchemaVersion='1' ApiVersion='3.1.0.0' TestApiVersion='3.1.0.0' "
        "ProductId='OrionReceiver' ProductName='Dexcom G6 Receiver' SoftwareNumber='SW11163' "
        "FirmwareVersion='5.1.1.022' PortVersion='5.1.0.0' RFVersion='1.0.0.0' "
        "DexBootVersion='5'/>",
    };
    snprintf(x->firmware_xml, sizeof x->firmware_xml, "%s", fw[x->generation - 4]);
    x->display_offset = -5 * 3600;

    int64_t now = (int64_t)time(NULL) * 1000;
    x->clock_base = now;
    x->unix_base = now - (x->speed - 1) * CATCH_UP_S * 1000;
    x->wall_base = dia_mono_ms();
    x->sys_base = unix_to_sys(now);
    x->start_ms = (patient_start > 0 ? patient_start : x->unix_base - history_s * 1000) /
                  DIA_SIM_STEP_MS * DIA_SIM_STEP_MS;
    if (x->start_ms > x->unix_base) {
        fprintf(stderr, "dexcom-receiver: --patient-start lies after the simulated now (at "
                        "--speed N, (N − 1) hours before the clock)\n");
        return -1;
    }
    struct dia_sim_config cfg = {.seed = (uint64_t)seed, .start_ms = x->start_ms};
    if (dia_sim_patient_init(&x->patient, &cfg) != 0)
        return -1;
    x->last_start_step = -1000;
    /* The transmitter in use at the start: look ahead on a copy of the
     * model (a copy continues exactly as the original would). */
    static struct dia_sim_patient ahead;
    ahead = x->patient;
    for (int i = 0; i < DIA_SIM_SESSION_STEPS && !x->transmitter[0]; i++) {
        struct dia_sim_slot s;
        dia_sim_patient_step(&ahead, &s);
        for (int k = 0; k < s.n; k++)
            if (s.ev[k].kind == DIA_SIM_STATUS)
                snprintf(x->transmitter, sizeof x->transmitter, "%s", s.ev[k].u.status.transmitter);
    }

    define_part(x, DEXCOM_RX_REC_MANUFACTURING_DATA, 1, 500, 0);
    define_part(x, DEXCOM_RX_REC_USER_EVENT_DATA, 1, 20, 40);
    if (x->generation == 4) {
        define_part(x, DEXCOM_RX_REC_SENSOR_DATA, 1, 20, 1800);
        define_part(x, DEXCOM_RX_REC_EGV_DATA, 2, 13, 1200);
        define_part(x, DEXCOM_RX_REC_METER_DATA, 1, 16, 30);
        define_part(x, DEXCOM_RX_REC_INSERTION_TIME, 1, 15, 1);
    } else {
        define_part(x, DEXCOM_RX_REC_SENSOR_DATA, 1, 20, 0); /* listed, never filled */
        define_part(x, DEXCOM_RX_REC_EGV_DATA, 5, 25, 700);
        define_part(x, DEXCOM_RX_REC_METER_DATA, 3, 21, 20);
        define_part(x, DEXCOM_RX_REC_INSERTION_TIME, 2, 25, 3);
        if (x->generation == 6)
            define_part(x, DEXCOM_RX_REC_BACKFILLED_EGV, 1, 25, 0);
    }
    /* A receiver newer than the daemon: the same records under a revision
     * number it has never seen (partition info and page headers). */
    if (x->egv_revision > 0)
        x->part[DEXCOM_RX_REC_EGV_DATA].revision = (uint8_t)x->egv_revision;
    uint8_t rec[500] = {0};
    record_head(x, rec, x->sys_base - 86400 * 200);
    snprintf((char *)rec + 8, XML_LEN,
             "<ManufacturingParameters SerialNumber=\"%s\" HardwarePartNumber=\"SIM\" "
             "HardwareRevision=\"1\" />",
             serial);
    add_record(x, DEXCOM_RX_REC_MANUFACTURING_DATA, rec);
    build_partition_xml(x);
    generate_until_now(x);
    fprintf(stderr, "dexcom-receiver: generated G%d receiver %s, transmitter %s\n", x->generation,
            serial, x->transmitter);
    return 0;
}

/* ---- capture replay ------------------------------------------------------ */

static size_t parse_hex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (*s && n < cap) {
        while (*s == ' ' || *s == '\t')
            s++;
        unsigned v;
        int used;
        if (sscanf(s, "%2x%n", &v, &used) != 1)
            break;
        out[n++] = (uint8_t)v;
        s += used;
    }
    return n;
}

static int store_page(struct rx *x, const uint8_t *pg)
{
    struct dexcom_rx_page_header h;
    if (dexcom_rx_page_header_parse(pg, DEXCOM_RX_PAGE_SIZE, &h) != DIA_OK ||
        h.record_type >= MAX_TYPES)
        return 0;
    struct part *p = &x->part[h.record_type];
    if (p->pages) {
        if (h.page_number >= p->first_page && h.page_number < p->first_page + p->npages)
            return 0; /* already have it */
        if (h.page_number != p->first_page + p->npages) {
            fprintf(stderr,
                    "dexcom-receiver: capture page %u of type %u is not next to the "
                    "others; only contiguous pages can be served\n",
                    h.page_number, h.record_type);
            return -1;
        }
    } else {
        p->first_page = h.page_number;
    }
    uint8_t *n = realloc(p->pages, (p->npages + 1) * DEXCOM_RX_PAGE_SIZE);
    if (!n)
        return -1;
    p->pages = n;
    memcpy(p->pages + p->npages * DEXCOM_RX_PAGE_SIZE, pg, DEXCOM_RX_PAGE_SIZE);
    p->npages++;
    return 0;
}

static int setup_capture(struct rx *x, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "dexcom-receiver: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    x->capture = true;
    x->generation = 4;
    static uint8_t buf[8192];
    char *line = NULL;
    size_t cap = 0;
    uint8_t last_cmd = 0;
    int rc = 0;
    bool have_time = false;
    while (getline(&line, &cap, f) > 0) {
        bool out = strncmp(line, "out,", 4) == 0;
        bool in = strncmp(line, "in,", 3) == 0;
        if (!out && !in)
            continue;
        size_t n = parse_hex(line + (out ? 4 : 3), buf, sizeof buf);
        struct dexcom_rx_frame fr;
        if (dexcom_rx_frame_parse(buf, n, &fr) != DIA_OK)
            continue;
        if (out) {
            last_cmd = fr.code;
            continue;
        }
        if (fr.code != DEXCOM_RX_RESP_ACK)
            continue;
        switch (last_cmd) {
        case DEXCOM_RX_CMD_READ_FIRMWARE_HEADER:
            snprintf(x->firmware_xml, sizeof x->firmware_xml, "%.*s", (int)fr.payload_len,
                     (const char *)fr.payload);
            break;
        case DEXCOM_RX_CMD_READ_PARTITION_INFO: {
            snprintf(x->partition_xml, sizeof x->partition_xml, "%.*s", (int)fr.payload_len,
                     (const char *)fr.payload);
            static struct dexcom_rx_partition_info pi;
            if (dexcom_rx_partition_info_parse(fr.payload, fr.payload_len, &pi) == DIA_OK)
                for (int t = 0; t < MAX_TYPES; t++)
                    if (pi.part[t].present) {
                        x->part[t].listed = true;
                        x->part[t].revision = pi.part[t].revision;
                        x->part[t].reclen = pi.part[t].record_length;
                    }
            break;
        }
        case DEXCOM_RX_CMD_READ_SYSTEM_TIME:
            if (fr.payload_len == 4 && !have_time) {
                x->sys_base = get32(fr.payload);
                have_time = true;
            }
            break;
        case DEXCOM_RX_CMD_READ_DISPLAY_TIME_OFFSET:
            if (fr.payload_len == 4)
                x->display_offset = (int32_t)get32(fr.payload);
            break;
        case DEXCOM_RX_CMD_READ_TRANSMITTER_ID:
            dexcom_rx_parse_transmitter_id(fr.payload, fr.payload_len, x->transmitter);
            break;
        case DEXCOM_RX_CMD_READ_PAGES:
            for (size_t off = 0; off + DEXCOM_RX_PAGE_SIZE <= fr.payload_len;
                 off += DEXCOM_RX_PAGE_SIZE)
                if (store_page(x, fr.payload + off) != 0)
                    rc = -1;
            break;
        default:
            break;
        }
    }
    free(line);
    fclose(f);
    if (!x->firmware_xml[0] || !x->partition_xml[0] || !have_time) {
        fprintf(stderr,
                "dexcom-receiver: %s lacks the firmware header, partition info or "
                "system time replies\n",
                path);
        return -1;
    }
    x->wall_base = dia_mono_ms();
    return rc;
}

/* ---- replies and faults ---------------------------------------------------- */

static int write_all(struct rx *x, const uint8_t *b, size_t n)
{
    int64_t deadline = dia_mono_ms() + 2000;
    while (n > 0) {
        ssize_t w = write(x->master, b, n);
        if (w > 0) {
            b += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN && dia_mono_ms() < deadline) {
            struct pollfd p = {.fd = x->master, .events = POLLOUT};
            poll(&p, 1, 50);
            continue;
        }
        return -1; /* nobody reads: the reply is lost, as on a real cable */
    }
    return 0;
}

static bool fault_fires(struct rx *x, enum fault f)
{
    if (x->at[f] && (long long)x->replies == x->at[f])
        return true;
    return x->rate[f] > 0 && rnd01(x) < x->rate[f];
}

static int open_pty(struct rx *x);
static void close_pty(struct rx *x);

/* Send a built frame, perhaps damaged on the way. */
static void send_reply(struct rx *x, uint8_t *frame, size_t n, uint8_t cmd)
{
    x->replies++;
    if (cmd == DEXCOM_RX_CMD_READ_PAGES && (x->armed_disconnect || fault_fires(x, F_DISCONNECT))) {
        x->armed_disconnect = false;
        x->fired[F_DISCONNECT]++;
        write_all(x, frame, n / 2);
        usleep(20000);
        close_pty(x);
        fprintf(stderr, "dexcom-receiver: simulated unplug in the middle of a page\n");
        struct timespec ts = {.tv_sec = x->reconnect_ms / 1000,
                              .tv_nsec = (x->reconnect_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested)
            ;
        if (!stop_requested && open_pty(x) != 0)
            stop_requested = 1;
        x->reopened = true;
        return;
    }
    if (x->at[F_DISCONNECT] && (long long)x->replies >= x->at[F_DISCONNECT] &&
        !x->fired[F_DISCONNECT])
        x->armed_disconnect = true; /* the one-shot waits for the next page reply */
    /* Decide every fault first, so one-shots are never crowded out. */
    bool nak = fault_fires(x, F_NAK), garbage = fault_fires(x, F_GARBAGE);
    bool crc = fault_fires(x, F_CRC), truncate = fault_fires(x, F_TRUNCATE);
    if (garbage) {
        x->fired[F_GARBAGE]++;
        uint8_t junk[16];
        size_t k = 1 + rnd(x) % 16;
        for (size_t i = 0; i < k; i++)
            junk[i] = (uint8_t)rnd(x);
        write_all(x, junk, k);
    }
    if (nak) {
        x->fired[F_NAK]++;
        uint8_t r[6] = {DEXCOM_RX_SOF, 6, 0, DEXCOM_RX_RESP_NAK};
        put16(r + 4, dexcom_rx_crc16(r, 4));
        write_all(x, r, sizeof r);
        return;
    }
    if (crc) {
        x->fired[F_CRC]++;
        frame[n - 1] ^= 0x10;
    }
    if (truncate) {
        x->fired[F_TRUNCATE]++;
        n /= 2;
    }
    write_all(x, frame, n);
}

static void reply(struct rx *x, uint8_t code, const void *payload, size_t len, uint8_t cmd)
{
    static uint8_t frame[DEXCOM_RX_FRAME_MAX];
    size_t total = len + 6;
    if (total > sizeof frame)
        return;
    frame[0] = DEXCOM_RX_SOF;
    put16(frame + 1, (uint16_t)total);
    frame[3] = code;
    if (len)
        memcpy(frame + 4, payload, len);
    put16(frame + 4 + len, dexcom_rx_crc16(frame, 4 + len));
    send_reply(x, frame, total, cmd);
}

static void page_range_reply(struct rx *x, uint8_t type, uint8_t cmd)
{
    uint8_t p[8];
    const struct part *pt = type < MAX_TYPES ? &x->part[type] : NULL;
    size_t n = pt ? part_pages(pt) : 0;
    if (n == 0) {
        put32(p, DEXCOM_RX_PAGE_NONE);
        put32(p + 4, DEXCOM_RX_PAGE_NONE);
    } else {
        put32(p, pt->first_page);
        put32(p + 4, pt->first_page + (uint32_t)n - 1);
    }
    reply(x, DEXCOM_RX_RESP_ACK, p, 8, cmd);
}

static void handle(struct rx *x, const struct dexcom_rx_frame *req)
{
    static uint8_t buf[DEXCOM_RX_PAGES_PER_READ * DEXCOM_RX_PAGE_SIZE];
    uint8_t cmd = req->code;
    const uint8_t *a = req->payload;
    x->commands++;
    generate_until_now(x);
    if (!dexcom_rx_cmd_is_allowed(cmd)) {
        /* writes, erase, reset, shutdown: a reader must never send them */
        x->forbidden++;
        fprintf(stderr, "dexcom-receiver: refused command 0x%02X (%s)\n", cmd,
                dexcom_rx_cmd_name(cmd));
        reply(x, DEXCOM_RX_RESP_INVALID_COMMAND, NULL, 0, cmd);
        return;
    }
    uint8_t b[8];
    switch (cmd) {
    case DEXCOM_RX_CMD_PING:
        reply(x, DEXCOM_RX_RESP_ACK, NULL, 0, cmd);
        return;
    case DEXCOM_RX_CMD_READ_FIRMWARE_HEADER:
        reply(x, DEXCOM_RX_RESP_ACK, x->firmware_xml, strlen(x->firmware_xml), cmd);
        return;
    case DEXCOM_RX_CMD_READ_PARTITION_INFO:
        reply(x, DEXCOM_RX_RESP_ACK, x->partition_xml, strlen(x->partition_xml), cmd);
        return;
    case DEXCOM_RX_CMD_READ_PAGE_RANGE:
        if (req->payload_len != 1)
            break;
        page_range_reply(x, a[0], cmd);
        return;
    case DEXCOM_RX_CMD_READ_PAGES:
    case DEXCOM_RX_CMD_READ_PAGE_HEADER: {
        if (req->payload_len != (cmd == DEXCOM_RX_CMD_READ_PAGES ? 6u : 5u) || a[0] >= MAX_TYPES)
            break;
        const struct part *pt = &x->part[a[0]];
        uint32_t first = get32(a + 1);
        uint32_t count = cmd == DEXCOM_RX_CMD_READ_PAGES ? a[5] : 1;
        size_t have = part_pages(pt);
        if (count < 1 || count > DEXCOM_RX_PAGES_PER_READ || first < pt->first_page ||
            (uint64_t)first + count > (uint64_t)pt->first_page + have)
            break;
        for (uint32_t i = 0; i < count; i++)
            build_page(x, a[0], first - pt->first_page + i, buf + i * DEXCOM_RX_PAGE_SIZE);
        reply(x, DEXCOM_RX_RESP_ACK, buf,
              cmd == DEXCOM_RX_CMD_READ_PAGES ? count * DEXCOM_RX_PAGE_SIZE
                                              : DEXCOM_RX_PAGE_HEADER_SIZE,
              cmd);
        return;
    }
    case DEXCOM_RX_CMD_READ_TRANSMITTER_ID:
        reply(x, DEXCOM_RX_RESP_ACK, x->transmitter, strlen(x->transmitter), cmd);
        return;
    case DEXCOM_RX_CMD_READ_DISPLAY_TIME_OFFSET:
        put32(b, (uint32_t)x->display_offset);
        reply(x, DEXCOM_RX_RESP_ACK, b, 4, cmd);
        return;
    case DEXCOM_RX_CMD_READ_SYSTEM_TIME:
        put32(b, system_now(x));
        reply(x, DEXCOM_RX_RESP_ACK, b, 4, cmd);
        return;
    case DEXCOM_RX_CMD_READ_RTC:
        put32(b, system_now(x) - 126467628u);
        reply(x, DEXCOM_RX_RESP_ACK, b, 4, cmd);
        return;
    case DEXCOM_RX_CMD_READ_SYSTEM_TIME_OFFSET:
        put32(b, 126467628u);
        reply(x, DEXCOM_RX_RESP_ACK, b, 4, cmd);
        return;
    case DEXCOM_RX_CMD_READ_BATTERY_LEVEL:
        put32(b, 87);
        reply(x, DEXCOM_RX_RESP_ACK, b, 4, cmd);
        return;
    case DEXCOM_RX_CMD_READ_BATTERY_STATE:
        b[0] = DEXCOM_RX_BATTERY_CHARGING;
        reply(x, DEXCOM_RX_RESP_ACK, b, 1, cmd);
        return;
    case DEXCOM_RX_CMD_READ_LANGUAGE:
        put16(b, 0x0409);
        reply(x, DEXCOM_RX_RESP_ACK, b, 2, cmd);
        return;
    case DEXCOM_RX_CMD_READ_GLUCOSE_UNIT:
    case DEXCOM_RX_CMD_READ_CLOCK_MODE:
        b[0] = 1;
        reply(x, DEXCOM_RX_RESP_ACK, b, 1, cmd);
        return;
    case DEXCOM_RX_CMD_READ_BLINDED_MODE:
        b[0] = 0;
        reply(x, DEXCOM_RX_RESP_ACK, b, 1, cmd);
        return;
    default:
        break;
    }
    reply(x, DEXCOM_RX_RESP_INVALID_PARAM, NULL, 0, cmd);
}

/* ---- pty ------------------------------------------------------------------- */

static void close_pty(struct rx *x)
{
    if (x->slave >= 0)
        close(x->slave);
    if (x->master >= 0)
        close(x->master);
    x->slave = x->master = -1;
}

static int open_pty(struct rx *x)
{
    x->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (x->master < 0 || grantpt(x->master) != 0 || unlockpt(x->master) != 0) {
        fprintf(stderr, "dexcom-receiver: cannot create a pty: %s\n", strerror(errno));
        return -1;
    }
    const char *name = ptsname(x->master);
    if (!name)
        return -1;
    snprintf(x->slave_path, sizeof x->slave_path, "%s", name);
    /* Hold the slave open ourselves: with no slave open, the master reports
     * a hang-up between two daemon sessions.  Raw, so nothing is echoed. */
    x->slave = open(x->slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (x->slave < 0)
        return -1;
    struct termios tio;
    if (tcgetattr(x->slave, &tio) == 0) {
        cfmakeraw(&tio);
        tcsetattr(x->slave, TCSANOW, &tio);
    }
    if (x->link) {
        char tmp[PATH_MAX + 8];
        snprintf(tmp, sizeof tmp, "%s.new", x->link);
        unlink(tmp);
        if (symlink(x->slave_path, tmp) != 0 || rename(tmp, x->link) != 0) {
            fprintf(stderr, "dexcom-receiver: cannot point %s at %s: %s\n", x->link, x->slave_path,
                    strerror(errno));
            return -1;
        }
    }
    printf("%s\n", x->slave_path);
    fflush(stdout);
    return 0;
}

/* ---- command line ---------------------------------------------------------- */

static int parse_faults(struct rx *x, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        return -1;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *sep = strpbrk(tok, "=@");
        char kind = sep ? *sep : '=';
        if (sep)
            *sep = '\0';
        int f = -1;
        for (int i = 0; i < F_COUNT; i++)
            if (strcmp(tok, fault_names[i]) == 0)
                f = i;
        char *end = NULL;
        double v = sep ? strtod(sep + 1, &end) : 0.05;
        if (f < 0 || (sep && (end == sep + 1 || *end)) || v < 0 || (kind == '=' && v > 1) ||
            (kind == '@' && v < 1)) {
            fprintf(stderr,
                    "dexcom-receiver: bad fault \"%s\": use NAME=PROBABILITY or NAME@REPLY "
                    "with NAME one of nak, crc, garbage, truncate, disconnect\n",
                    tok);
            rc = -1;
            break;
        }
        if (kind == '@')
            x->at[f] = (long long)v;
        else
            x->rate[f] = v;
    }
    free(copy);
    return rc;
}

static const char usage_text[] =
    "[--capture FILE | --generation g4|g5|g6] [--speed N] [--faults LIST] [--seed N]\n"
    "       [--history SECONDS] [--patient-start MS] [--serial TEXT] [--link PATH]\n"
    "       [--truth FILE] [--reconnect-ms N] [--egv-revision N]\n"
    "  Prints the pty's path on the first line of stdout.  Faults: comma list of\n"
    "  NAME=P (probability per reply) or NAME@N (once, at reply N), NAME one of\n"
    "  nak, crc, garbage, truncate, disconnect.";

static int dexcom_receiver_main(int argc, char **argv)
{
    static struct rx x;
    memset(&x, 0, sizeof x);
    x.master = x.slave = -1;
    x.speed = 1;
    x.reconnect_ms = 500;
    const char *capture = NULL, *gen = "g6", *serial = NULL, *truth = NULL;
    long long seed = 1, history = 6 * 3600, patient_start = 0;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (!v)
            takes = false;
        if (takes && strcmp(o, "--capture") == 0)
            capture = v;
        else if (takes && strcmp(o, "--generation") == 0)
            gen = v;
        else if (takes && strcmp(o, "--speed") == 0)
            x.speed = atoll(v);
        else if (takes && strcmp(o, "--seed") == 0)
            seed = atoll(v);
        else if (takes && strcmp(o, "--history") == 0)
            history = atoll(v);
        else if (takes && strcmp(o, "--patient-start") == 0)
            patient_start = atoll(v);
        else if (takes && strcmp(o, "--serial") == 0)
            serial = v;
        else if (takes && strcmp(o, "--link") == 0)
            x.link = v;
        else if (takes && strcmp(o, "--truth") == 0)
            truth = v;
        else if (takes && strcmp(o, "--reconnect-ms") == 0)
            x.reconnect_ms = atoll(v);
        else if (takes && strcmp(o, "--egv-revision") == 0)
            x.egv_revision = atoi(v);
        else if (takes && strcmp(o, "--faults") == 0) {
            if (parse_faults(&x, v) != 0)
                return 2;
        } else {
            fprintf(stderr, "usage: diabridge-sim dexcom-receiver %s\n", usage_text);
            return 2;
        }
    }
    if (x.speed < 1 || x.speed > 100000 || history < 0 || x.reconnect_ms < 0 ||
        x.egv_revision < 0 || x.egv_revision > 255) {
        fprintf(stderr, "dexcom-receiver: --speed must be 1..100000, --history and "
                        "--reconnect-ms ≥ 0, --egv-revision 1..255\n");
        return 2;
    }
    x.rng = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + 1;
    if (truth) {
        x.truth = fopen(truth, "we");
        if (!x.truth) {
            fprintf(stderr, "dexcom-receiver: cannot write %s: %s\n", truth, strerror(errno));
            return 1;
        }
    }
    int rc = capture ? setup_capture(&x, capture)
                     : setup_generated(&x, gen, seed, history, patient_start,
                                       serial ? serial
                                              : (strcmp(gen, "g4") == 0   ? "SM10000004"
                                                 : strcmp(gen, "g5") == 0 ? "SM10000005"
                                                                          : "SM10000006"));
    if (rc != 0)
        return 1;

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (open_pty(&x) != 0)
        return 1;

    struct dexcom_rx_stream stream;
    dexcom_rx_stream_init(&stream);
    uint8_t in[2048];
    while (!stop_requested) {
        struct pollfd p = {.fd = x.master, .events = POLLIN};
        int n = poll(&p, 1, 1000);
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0) {
            generate_until_now(&x);
            continue;
        }
        ssize_t got = read(x.master, in, sizeof in);
        if (got <= 0) {
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            usleep(50000); /* EIO: no slave side at this instant */
            continue;
        }
        size_t off = 0;
        while (off < (size_t)got && x.master >= 0) {
            size_t used = 0;
            struct dexcom_rx_frame fr;
            int r = dexcom_rx_stream_feed(&stream, in + off, (size_t)got - off, &used, &fr);
            off += used;
            if (r == 1) {
                handle(&x, &fr);
                if (x.reopened) {
                    /* what was left belonged to the old pty */
                    x.reopened = false;
                    dexcom_rx_stream_reset(&stream);
                    break;
                }
                if (x.master < 0)
                    break;
            } else if (used == 0) {
                break;
            }
        }
        if (x.master < 0)
            break;
    }
    fprintf(stderr,
            "dexcom-receiver: %lu commands, %lu replies; faults: nak %lu, crc %lu, garbage %lu, "
            "truncate %lu, disconnect %lu; forbidden %lu\n",
            x.commands, x.replies, x.fired[F_NAK], x.fired[F_CRC], x.fired[F_GARBAGE],
            x.fired[F_TRUNCATE], x.fired[F_DISCONNECT], x.forbidden);
    close_pty(&x);
    if (x.link)
        unlink(x.link);
    if (x.truth)
        fclose(x.truth);
    for (int t = 0; t < MAX_TYPES; t++) {
        free(x.part[t].pages);
        free(x.part[t].recs);
    }
    return 0;
}

const struct dia_simulator dia_sim_dexcom_receiver = {
    .name = "dexcom-receiver",
    .description = "Dexcom G4/G5/G6 receiver on a pty (USB protocol, backfill, faults)",
    .usage = usage_text,
    .main = dexcom_receiver_main,
};
