/*
 * Source `sim`: a simulated patient wearing a CGM and an insulin pump.
 *
 * The physiology lives in sim_patient.c; this file turns its five-minute
 * steps into records and runs them on a timeline:
 *
 *   first_ms   the simulated time of step 0: anchor − history at first start
 *   anchor_ms  a simulated instant, equal to the wall clock at first start
 *   wall_ms    the wall-clock instant at which the simulation stood at anchor_ms
 *   sim_now  = anchor_ms + (wall_now − wall_ms) × speed
 *
 * Each poll emits every step whose time has come (step time ≤ sim_now) and
 * that has not been emitted yet.  So a first start delivers `history` of
 * back data at once, like a receiver that has been worn for a day, and from
 * then on a reading arrives every 5 min / speed of wall time.
 *
 * The timeline (first_ms, anchor_ms, wall_ms, the next step, seed, speed and
 * the UTC offset the patient's day follows) is written with every batch, in
 * the same transaction as the records.  open() reads it back and regenerates
 * the model from step 0 to the next step (a 90-day history takes a few
 * milliseconds), so a daemon killed at any instant continues the very same
 * stream: no gap, no duplicate, no changed value.  Time keeps running while
 * the daemon is down; the missed steps arrive at the next poll, as a real
 * receiver's stored readings would.
 *
 * Record keys come from the step's absolute simulated time, the kind of
 * event and its ordinal within the step; never from the wall clock.
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
#include "source/sim_patient.h"

/* A batch must hold at least one whole step. */
#define SIM_MIN_BATCH 64
/* dia_record_validate() accepts times before 2100-01-01; stop a day short. */
#define SIM_END_MS (4102444800000LL - 86400000LL)

static const struct dia_option_spec sim_options[] = {
    {.name = "seed",
     .type = DIA_OPT_INT,
     .default_value = "1",
     .min = 0,
     .max = 4294967295LL,
     .help = "random seed: the same seed replays the same patient"},
    {.name = "speed",
     .type = DIA_OPT_INT,
     .default_value = "1",
     .min = 1,
     .max = 100000,
     .help = "simulated seconds per wall-clock second (600: an hour in six seconds)"},
    {.name = "history",
     .type = DIA_OPT_DURATION,
     .default_value = "24h",
     .min = 0,
     .max = 3650LL * 86400,
     .help = "data the simulated device already holds at first start (\"all\" is not allowed)"},
    {.name = "patient",
     .type = DIA_OPT_STRING,
     .default_value = NULL,
     .help = "consolidation group written to each record's sensor field (default sim-SEED)"},
    {.name = "max-batch",
     .type = DIA_OPT_INT,
     .default_value = "2000",
     .min = SIM_MIN_BATCH,
     .max = 1000000,
     .help = "most records stored per poll while catching up"},
    {0},
};

struct sim {
    struct dia_sim_patient model;
    struct dia_sim_config cfg;
    long long seed, speed, max_batch;
    char patient[40];
    char device_id[40];
    char meter_serial[32];
    int64_t first_ms, anchor_ms, wall_ms;
    int64_t next_step;    /* first step not yet committed */
    int64_t pending_step; /* first step not in the batch last polled */
    bool end_warned;
};

static int64_t step_time(const struct sim *s, int64_t step)
{
    return s->first_ms + step * DIA_SIM_STEP_MS;
}

static int64_t sim_now(const struct sim *s, int64_t wall_now)
{
    return s->anchor_ms + (wall_now - s->wall_ms) * s->speed;
}

/* Bring the model to `step`, regenerating from step 0 when it is past it
 * (a batch that was polled but never committed). */
static void sim_seek(struct sim *s, int64_t step)
{
    if (dia_sim_patient_index(&s->model) > step)
        dia_sim_patient_init(&s->model, &s->cfg);
    dia_sim_patient_skip(&s->model, step - dia_sim_patient_index(&s->model));
}

/* ---- persisted timeline ------------------------------------------------ */

static const char *const state_keys[] = {
    "seed", "speed", "first_ms", "anchor_ms", "wall_ms", "next_step", "utc_offset_min",
};
enum { K_SEED, K_SPEED, K_FIRST, K_ANCHOR, K_WALL, K_NEXT, K_OFFSET, K_COUNT };

/* Reads the timeline.  Returns 1 when complete, 0 when absent or unusable
 * (a new timeline starts), or a journal error. */
static int load_state(struct dia_instance *src, int64_t v[K_COUNT])
{
    if (!src->journal)
        return 0;
    for (int i = 0; i < K_COUNT; i++) {
        char buf[64];
        int rc = dia_journal_state_get(src->journal, src->name, state_keys[i], buf, sizeof buf);
        if (rc < 0) {
            dia_instance_error(src, "cannot read the simulation's timeline: %s",
                               dia_journal_errmsg(src->journal));
            return rc;
        }
        if (rc == 0)
            return 0;
        char *end;
        errno = 0;
        long long x = strtoll(buf, &end, 10);
        if (errno || end == buf || *end) {
            dia_warn(src->name, "stored %s \"%s\" is not a number; starting a new timeline",
                     state_keys[i], buf);
            return 0;
        }
        v[i] = x;
    }
    if (v[K_FIRST] % DIA_SIM_STEP_MS != 0 || v[K_NEXT] < 0 || v[K_SPEED] < 1 ||
        v[K_OFFSET] < -16 * 60 || v[K_OFFSET] > 16 * 60) {
        dia_warn(src->name, "stored timeline is inconsistent; starting a new one");
        return 0;
    }
    return 1;
}

static int save_state(struct sim *s, struct dia_batch *out)
{
    int64_t v[K_COUNT] = {
        [K_SEED] = s->seed,
        [K_SPEED] = s->speed,
        [K_FIRST] = s->first_ms,
        [K_ANCHOR] = s->anchor_ms,
        [K_WALL] = s->wall_ms,
        [K_NEXT] = s->pending_step,
        [K_OFFSET] = s->cfg.utc_offset_min,
    };
    for (int i = 0; i < K_COUNT; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%" PRId64, v[i]);
        int rc = dia_batch_set_state(out, state_keys[i], buf);
        if (rc != DIA_OK)
            return rc;
    }
    return DIA_OK;
}

/* The host's offset from UTC at a moment; the patient's day follows it. */
static int32_t local_offset_min(int64_t utc_ms)
{
    time_t t = (time_t)(utc_ms / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm))
        return 0;
    return (int32_t)(tm.tm_gmtoff / 60);
}

static void format_utc(int64_t utc_ms, char *buf, size_t len)
{
    time_t t = (time_t)(utc_ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "%" PRId64, utc_ms);
}

/* ---- driver methods ---------------------------------------------------- */

/* What the schema cannot say: shared by the start-up check and open(). */
static int sim_check(const struct dia_options *o, char *why, size_t why_len)
{
    if (dia_opt_duration(o, "history", 86400) < 0) {
        snprintf(why, why_len,
                 "option history: \"all\" is not possible for a simulation; "
                 "give a duration such as 24h or 90d");
        return DIA_ERR_CONFIG;
    }
    return DIA_OK;
}

static int sim_open(struct dia_instance *src)
{
    char why[200];
    if (sim_check(src->opts, why, sizeof why) != DIA_OK) {
        dia_instance_error(src, "%s", why);
        return DIA_ERR_CONFIG;
    }
    long long history = dia_opt_duration(src->opts, "history", 86400);
    struct sim *s = calloc(1, sizeof(*s));
    if (!s) {
        dia_instance_error(src, "out of memory");
        return DIA_ERR_NOMEM;
    }
    s->seed = dia_opt_int(src->opts, "seed", 1);
    s->speed = dia_opt_int(src->opts, "speed", 1);
    s->max_batch = dia_opt_int(src->opts, "max-batch", 2000);
    if (s->speed < 1)
        s->speed = 1;
    if (s->max_batch < SIM_MIN_BATCH)
        s->max_batch = SIM_MIN_BATCH;
    const char *patient = dia_opt_str(src->opts, "patient", NULL);
    if (patient && patient[0])
        snprintf(s->patient, sizeof s->patient, "%s", patient);
    else
        snprintf(s->patient, sizeof s->patient, "sim-%lld", s->seed);
    snprintf(s->device_id, sizeof s->device_id, "SIM%lld", s->seed);
    snprintf(s->meter_serial, sizeof s->meter_serial, "SIMBG%lld", s->seed);

    int64_t v[K_COUNT] = {0};
    int found = load_state(src, v);
    if (found < 0) {
        free(s);
        return found;
    }
    if (found && v[K_SEED] != s->seed) {
        dia_info(src->name, "seed changed from %" PRId64 " to %lld: starting a new timeline",
                 v[K_SEED], s->seed);
        found = 0;
    }
    int64_t now = dia_now_ms();
    const char *how = "continuing";
    if (found) {
        s->first_ms = v[K_FIRST];
        s->anchor_ms = v[K_ANCHOR];
        s->wall_ms = v[K_WALL];
        s->next_step = v[K_NEXT];
        s->cfg.utc_offset_min = (int32_t)v[K_OFFSET];
        if (v[K_SPEED] != s->speed) {
            /* Re-anchor where the old speed had got to, so simulated time
             * neither jumps nor runs backwards. */
            s->anchor_ms = s->anchor_ms + (now - s->wall_ms) * v[K_SPEED];
            s->wall_ms = now;
            dia_info(src->name, "speed changed from %" PRId64 "x to %lldx", v[K_SPEED], s->speed);
        }
    } else {
        /* sim_now equals the wall clock at this moment, at any speed */
        s->anchor_ms = now - now % DIA_SIM_STEP_MS;
        s->wall_ms = now - (now - s->anchor_ms) / s->speed;
        s->first_ms = s->anchor_ms - (int64_t)history * 1000;
        s->first_ms -= s->first_ms % DIA_SIM_STEP_MS;
        s->next_step = 0;
        s->cfg.utc_offset_min = local_offset_min(s->anchor_ms);
        how = "starting";
    }
    s->pending_step = s->next_step;
    s->cfg.seed = (uint64_t)s->seed;
    s->cfg.start_ms = s->first_ms;
    s->cfg.patient = s->patient;
    if (dia_sim_patient_init(&s->model, &s->cfg) != 0) {
        dia_instance_error(src, "simulation start %" PRId64 " is not on a 5-minute boundary",
                           s->first_ms);
        free(s);
        return DIA_ERR_ARG;
    }
    sim_seek(s, s->next_step);

    char first[32], at[32];
    format_utc(s->first_ms, first, sizeof first);
    format_utc(step_time(s, s->next_step), at, sizeof at);
    dia_info(src->name,
             "simulated patient %s (seed %lld, device %s): %s the timeline that began at %s, "
             "next reading %s, speed %lldx, history %llds, UTC offset %+d min",
             s->patient, s->seed, s->device_id, how, first, at, s->speed, history,
             (int)s->cfg.utc_offset_min);
    src->priv = s;
    return DIA_OK;
}

/* Common fields and the key: (absolute step, event kind, ordinal). */
static struct dia_record *add_record(struct sim *s, struct dia_batch *out, enum dia_kind kind,
                                     const struct dia_sim_slot *slot, const struct dia_sim_event *e,
                                     int ordinal, int64_t now)
{
    struct dia_record *r = dia_batch_add(out, kind);
    if (!r)
        return NULL;
    r->origin = DIA_ORIGIN_DEVICE;
    r->t_utc_ms = e->t_ms;
    /* The device's clock: seconds since it was switched on, five minutes
     * before step 0 (so every event of step 0 has a non-negative time). */
    snprintf(r->device_time, sizeof r->device_time, "%" PRId64,
             (e->t_ms - (s->first_ms - DIA_SIM_STEP_MS)) / 1000);
    r->utc_offset_min = s->cfg.utc_offset_min;
    r->received_ms = now;
    snprintf(r->driver, sizeof r->driver, "sim");
    snprintf(r->device_id, sizeof r->device_id, "%s", s->device_id);
    snprintf(r->sensor, sizeof r->sensor, "%s", s->patient);
    dia_record_set_key(r, "%" PRId64 ":%s:%d", slot->t_ms / DIA_SIM_STEP_MS,
                       dia_sim_kind_name(e->kind), ordinal);
    return r;
}

static const char *intensity_name(int32_t intensity)
{
    return intensity <= 1 ? "light" : intensity == 2 ? "moderate" : "hard";
}

static int emit_event(struct sim *s, struct dia_batch *out, const struct dia_sim_slot *slot,
                      const struct dia_sim_event *e, int ordinal, int64_t now)
{
    static const enum dia_kind kinds[] = {
        [DIA_SIM_GLUCOSE] = DIA_KIND_GLUCOSE,
        [DIA_SIM_METER] = DIA_KIND_METER,
        [DIA_SIM_CALIBRATION] = DIA_KIND_CALIBRATION,
        [DIA_SIM_CARBS] = DIA_KIND_CARBS,
        [DIA_SIM_BOLUS] = DIA_KIND_BOLUS,
        [DIA_SIM_TEMP_BASAL] = DIA_KIND_BASAL,
        [DIA_SIM_EXERCISE] = DIA_KIND_EVENT,
        [DIA_SIM_SENSOR_STOP] = DIA_KIND_EVENT,
        [DIA_SIM_SENSOR_START] = DIA_KIND_EVENT,
        [DIA_SIM_STATUS] = DIA_KIND_STATUS,
    };
    if ((int)e->kind < 1 || (int)e->kind > DIA_SIM_KIND_MAX)
        return DIA_ERR_ARG;
    struct dia_record *r = add_record(s, out, kinds[e->kind], slot, e, ordinal, now);
    if (!r)
        return DIA_ERR_NOMEM;

    switch (e->kind) {
    case DIA_SIM_GLUCOSE: {
        struct dia_glucose *g = &r->u.glucose;
        g->mgdl = e->u.glucose.mgdl;
        g->trend = e->u.glucose.trend;
        g->rate_x10 = e->u.glucose.rate_x10 == DIA_SIM_NO_RATE ? DIA_ABSENT : e->u.glucose.rate_x10;
        g->noise = e->u.glucose.noise;
        g->filtered = e->u.glucose.filtered;
        g->unfiltered = e->u.glucose.unfiltered;
        g->rssi = e->u.glucose.rssi;
        break;
    }
    case DIA_SIM_METER:
        r->u.meter.mgdl = e->u.meter.mgdl;
        r->u.meter.flags = e->u.meter.calibration ? DIA_METER_CALIBRATION : 0;
        snprintf(r->u.meter.meter_serial, sizeof r->u.meter.meter_serial, "%s", s->meter_serial);
        break;
    case DIA_SIM_CALIBRATION:
        r->u.calibration.slope = e->u.calibration.slope_milli / 1000.0;
        r->u.calibration.intercept = e->u.calibration.intercept;
        r->u.calibration.scale = 1.0;
        break;
    case DIA_SIM_CARBS:
        r->u.carbs.carbs_dg = e->u.carbs.carbs_dg;
        break;
    case DIA_SIM_BOLUS: {
        struct dia_bolus *b = &r->u.bolus;
        b->type = DIA_BOLUS_NORMAL;
        b->programmed_mu = b->delivered_mu = e->u.bolus.delivered_mu;
        b->has_wizard = true;
        b->wizard_carbs_dg = e->u.bolus.carbs_dg;
        b->wizard_bg_mgdl = e->u.bolus.bg_mgdl > 0 ? e->u.bolus.bg_mgdl : DIA_ABSENT;
        b->wizard_target_low_mgdl = e->u.bolus.target_low_mgdl;
        b->wizard_target_high_mgdl = e->u.bolus.target_high_mgdl;
        b->wizard_carb_ratio_dg = e->u.bolus.carb_ratio_dg;
        b->wizard_isf_mgdl = e->u.bolus.isf_mgdl;
        b->wizard_iob_mu = e->u.bolus.iob_mu;
        b->wizard_food_mu = e->u.bolus.food_mu;
        b->wizard_correction_mu = e->u.bolus.correction_mu;
        break;
    }
    case DIA_SIM_TEMP_BASAL:
        r->u.basal.type = DIA_BASAL_TEMP;
        r->u.basal.rate_mu_h = e->u.temp_basal.rate_mu_h;
        r->u.basal.percent = e->u.temp_basal.percent;
        r->u.basal.duration_s = e->u.temp_basal.duration_s;
        break;
    case DIA_SIM_EXERCISE:
        r->u.event.type = DIA_EVENT_EXERCISE;
        r->u.event.code = e->u.exercise.intensity;
        snprintf(r->u.event.text, sizeof r->u.event.text, "exercise: %d min, %s",
                 (int)(e->u.exercise.duration_s / 60), intensity_name(e->u.exercise.intensity));
        break;
    case DIA_SIM_SENSOR_STOP:
    case DIA_SIM_SENSOR_START:
        r->u.event.type =
            e->kind == DIA_SIM_SENSOR_START ? DIA_EVENT_SENSOR_START : DIA_EVENT_SENSOR_STOP;
        r->u.event.code = e->u.sensor.session;
        snprintf(r->u.event.text, sizeof r->u.event.text, "sensor session %d, transmitter %s",
                 (int)e->u.sensor.session, e->u.sensor.transmitter);
        break;
    case DIA_SIM_STATUS: {
        struct dia_status *st = &r->u.status;
        st->battery_pct = e->u.status.battery_pct;
        st->battery_mv = e->u.status.battery_mv;
        if (e->u.status.warming_up)
            snprintf(st->state, sizeof st->state, "warm-up, session %d", (int)e->u.status.session);
        else
            snprintf(st->state, sizeof st->state, "sensor day %d, session %d",
                     (int)(e->u.status.sensor_age_min / 1440 + 1), (int)e->u.status.session);
        snprintf(st->firmware, sizeof st->firmware, "diabridge-sim");
        snprintf(st->transmitter, sizeof st->transmitter, "%s", e->u.status.transmitter);
        break;
    }
    }
    return DIA_OK;
}

static int sim_poll(struct dia_instance *src, struct dia_batch *out, int64_t *next_ms)
{
    struct sim *s = src->priv;
    int64_t now = dia_now_ms();
    int64_t until = sim_now(s, now);
    if (until > SIM_END_MS)
        until = SIM_END_MS;

    sim_seek(s, s->next_step);
    int64_t step = s->next_step;
    size_t limit = (size_t)s->max_batch;
    while (step_time(s, step) <= until && out->n + DIA_SIM_MAX_EVENTS <= limit) {
        struct dia_sim_slot slot;
        dia_sim_patient_step(&s->model, &slot);
        int ordinal[DIA_SIM_KIND_MAX + 1] = {0};
        for (int k = 0; k < slot.n; k++) {
            const struct dia_sim_event *e = &slot.ev[k];
            int rc = emit_event(s, out, &slot, e, ordinal[e->kind]++, now);
            if (rc != DIA_OK) {
                dia_instance_error(src, "cannot build a record: %s", dia_strerror(rc));
                return rc;
            }
        }
        atomic_fetch_add(&src->counters.frames_ok, 1);
        step++;
    }
    s->pending_step = step;
    if (step != s->next_step) {
        int rc = save_state(s, out);
        if (rc != DIA_OK) {
            dia_instance_error(src, "cannot record the timeline: %s", dia_strerror(rc));
            return rc;
        }
    }

    int64_t due = step_time(s, step);
    if (due > SIM_END_MS) {
        if (!s->end_warned)
            dia_warn(src->name, "the simulation has reached the year 2100 and stops here");
        s->end_warned = true;
        *next_ms = now + 3600000;
    } else if (due <= until) {
        *next_ms = now; /* the batch was full: more is due */
    } else {
        /* the wall time at which sim_now reaches the next step */
        int64_t wait = (due - s->anchor_ms + s->speed - 1) / s->speed;
        *next_ms = s->wall_ms + wait;
        if (*next_ms <= now)
            *next_ms = now + 1;
    }
    return DIA_OK;
}

static void sim_committed(struct dia_instance *src, const struct dia_batch *batch)
{
    (void)batch;
    struct sim *s = src->priv;
    s->next_step = s->pending_step;
}

static void sim_close(struct dia_instance *src)
{
    free(src->priv);
    src->priv = NULL;
}

const struct dia_source_driver dia_source_sim = {
    .name = "sim",
    .description = "simulated patient: CGM readings, meals, boluses, temp basals, calibrations",
    .target_help = NULL,
    .options = sim_options,
    .check = sim_check,
    .open = sim_open,
    .poll = sim_poll,
    .committed = sim_committed,
    .close = sim_close,
};
