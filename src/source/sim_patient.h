/*
 * A simulated person with type 1 diabetes, stepped five minutes at a time.
 *
 * The model is pure and deterministic: no I/O, no clock, no globals, integer
 * arithmetic only (floating point may be contracted into fused multiply-adds
 * on some targets, which would change results between machines).  The same
 * configuration always yields the same sequence of events, on any machine.
 *
 * Step n covers the five minutes ending at start_ms + n × 5 min: every event
 * it reports happens in (t − 5 min, t], and the sensor glucose, when there is
 * one, is stamped exactly t.  Schedules that a real device keeps on its own
 * (sensor sessions, status reports) follow absolute time, so two generators
 * started at different times agree on when a sensor session begins; what the
 * patient does (meals, insulin, exercise) is drawn from the generator's own
 * random stream and so depends on the start.
 *
 * Used by the `sim` source (src/source/sim.c); later by the device
 * simulators and the benchmark backlog.  docs/devices/sim.md describes the
 * physiology in words.
 */
#ifndef DIA_SOURCE_SIM_PATIENT_H
#define DIA_SOURCE_SIM_PATIENT_H

#include <stdbool.h>
#include <stdint.h>

#define DIA_SIM_STEP_MS       ((int64_t)300000)
#define DIA_SIM_STEPS_PER_DAY 288
/* A new sensor session every 10 days, with a two-hour warm-up. */
#define DIA_SIM_SESSION_STEPS (10 * DIA_SIM_STEPS_PER_DAY)
#define DIA_SIM_WARMUP_STEPS  24
/* A transmitter lasts nine sessions (90 days). */
#define DIA_SIM_SESSIONS_PER_TRANSMITTER 9
/* The most events one step can report. */
#define DIA_SIM_MAX_EVENTS 24
/* Insulin and carbohydrate effects are spread over at most this many steps. */
#define DIA_SIM_HORIZON 80

enum dia_sim_kind {
    DIA_SIM_GLUCOSE = 1, /* a sensor reading */
    DIA_SIM_METER,       /* a finger-stick blood glucose, usually a calibration */
    DIA_SIM_CALIBRATION, /* the sensor's calibration after a finger stick */
    DIA_SIM_CARBS,       /* carbohydrate eaten */
    DIA_SIM_BOLUS,       /* an insulin bolus computed by the pump's wizard */
    DIA_SIM_TEMP_BASAL,  /* a temporary basal rate (percent of the scheduled rate) */
    DIA_SIM_EXERCISE,    /* the start of a bout of exercise */
    DIA_SIM_SENSOR_STOP, /* the old sensor session ends */
    DIA_SIM_SENSOR_START,
    DIA_SIM_STATUS, /* a device status report */
};
#define DIA_SIM_KIND_MAX DIA_SIM_STATUS

enum dia_sim_meal {
    DIA_SIM_BREAKFAST = 1,
    DIA_SIM_LUNCH,
    DIA_SIM_DINNER,
    DIA_SIM_SNACK,
    DIA_SIM_RESCUE, /* fast carbohydrate against a low; never bolused */
};

struct dia_sim_event {
    enum dia_sim_kind kind;
    int64_t t_ms; /* Unix ms (UTC), within the step */
    union {
        struct {
            int32_t mgdl;     /* 40..400 */
            int32_t trend;    /* enum dia_trend (core/record.h) */
            int32_t rate_x10; /* mg/dL per minute × 10; DIA_SIM_NO_RATE when not computable */
            int32_t noise;    /* Dexcom-style noise level 1 (clean) .. 4 (heavy) */
            int32_t filtered; /* raw sensor counts */
            int32_t unfiltered;
            int32_t rssi; /* dBm */
        } glucose;
        struct {
            int32_t mgdl;
            bool calibration; /* entered as a sensor calibration */
        } meter;
        struct {
            int32_t slope_milli; /* raw counts per mg/dL × 1000 */
            int32_t intercept;   /* raw counts */
        } calibration;
        struct {
            int32_t carbs_dg; /* tenths of a gram */
            int32_t meal;     /* enum dia_sim_meal */
            int32_t absorption_min;
        } carbs;
        struct {
            int32_t delivered_mu;
            int32_t carbs_dg; /* what the wizard was told */
            int32_t bg_mgdl;  /* 0: no glucose given to the wizard */
            int32_t target_low_mgdl;
            int32_t target_high_mgdl;
            int32_t carb_ratio_dg; /* grams per unit × 10 */
            int32_t isf_mgdl;      /* mg/dL per unit */
            int32_t iob_mu;
            int32_t food_mu;
            int32_t correction_mu; /* before active insulin is taken off; may be negative */
        } bolus;
        struct {
            int32_t percent;
            int32_t rate_mu_h; /* the resulting rate */
            int32_t duration_s;
        } temp_basal;
        struct {
            int32_t duration_s;
            int32_t intensity; /* 1 light, 2 moderate, 3 hard */
        } exercise;
        struct {
            int32_t session; /* absolute session number */
            char transmitter[8];
        } sensor;
        struct {
            int32_t battery_pct;
            int32_t battery_mv;
            int32_t session;
            int32_t sensor_age_min; /* since the session started */
            bool warming_up;
            char transmitter[8];
        } status;
    } u;
};

#define DIA_SIM_NO_RATE INT32_MIN

struct dia_sim_slot {
    int64_t index; /* steps since the generator's start */
    int64_t t_ms;  /* start_ms + index × 5 min */
    int n;
    struct dia_sim_event ev[DIA_SIM_MAX_EVENTS];
};

struct dia_sim_config {
    uint64_t seed;
    int64_t start_ms;       /* Unix ms of step 0; a multiple of 5 minutes */
    int32_t utc_offset_min; /* the patient's local time, for meal times */
    /* A label, copied into dia_sim_patient.patient (cfg.patient there is
     * NULL); it does not influence the numbers, so a renamed patient keeps
     * the same history. */
    const char *patient;
};

/* What the pump is programmed with, drawn from the seed. */
struct dia_sim_settings {
    int32_t isf_mgdl;
    int32_t carb_ratio_dg;
    int32_t target_low_mgdl;
    int32_t target_high_mgdl;
    int32_t basal_mu_h;
};

/* A day's plan, drawn at local midnight.  Times are steps since midnight;
 * -1 means "not today". */
struct dia_sim_day {
    int32_t meal_step[3], meal_dg[3];
    int32_t snack_step[2], snack_dg[2];
    bool snack_bolus[2];
    int32_t cal_step[2];
    int32_t exercise_step, exercise_steps, exercise_intensity;
    int32_t temp_step[2], temp_percent[2], temp_steps[2];
};

/*
 * The generator.  Every field is private to sim_patient.c; the struct is
 * public only so that callers can keep it by value (and copy it: a copy
 * continues exactly as the original would).
 */
struct dia_sim_patient {
    struct dia_sim_config cfg;
    char patient[40];
    uint64_t rng[4]; /* xoshiro256** */
    int64_t index;   /* the next step to generate */
    struct dia_sim_settings set;

    /* physiology, in milli-mg/dL */
    int64_t bg;       /* true blood glucose */
    int64_t drift;    /* slowly wandering unexplained drift per step */
    int64_t dawn;     /* extra rise per step in the early morning */
    int32_t isf_true; /* the body's real sensitivities (the pump's are a guess) */
    int32_t cr_true_dg;
    int64_t carb_ring[DIA_SIM_HORIZON];    /* milligrams absorbed per future step */
    int64_t insulin_ring[DIA_SIM_HORIZON]; /* 1e-8 U acting per future step */
    int ring_pos;
    int32_t exercise_left, exercise_intensity;
    int32_t temp_left, temp_percent;
    struct dia_sim_day day;
    int64_t day_number; /* local day the plan belongs to */

    /* the sensor */
    int64_t noise;         /* AR(1) sensor noise, milli-mg/dL */
    int32_t cal_err_milli; /* calibration's relative slope error, × 1000 */
    int32_t slope_milli, intercept;
    int32_t prev_unfiltered;
    bool missed_last;
    int32_t last_mgdl[4]; /* newest first; 0 = no reading in that step */

    /* the patient's memory */
    int64_t last_bolus_index, last_rescue_index;
};

/* Set up a generator.  Returns 0, or -1 when start_ms is not aligned to
 * five minutes. */
int dia_sim_patient_init(struct dia_sim_patient *p, const struct dia_sim_config *cfg);
/* Generate the next step into out (its index is p's step count so far). */
void dia_sim_patient_step(struct dia_sim_patient *p, struct dia_sim_slot *out);
/* Advance n steps, discarding the events. */
void dia_sim_patient_skip(struct dia_sim_patient *p, int64_t n);
/* The index of the next step dia_sim_patient_step will generate. */
int64_t dia_sim_patient_index(const struct dia_sim_patient *p);
const struct dia_sim_settings *dia_sim_patient_settings(const struct dia_sim_patient *p);

/* "glucose", "meter", … (for record keys and logs) */
const char *dia_sim_kind_name(enum dia_sim_kind kind);
const char *dia_sim_meal_name(int meal);
/* Dexcom's arrow for a rate in mg/dL/min × 10 (DIA_SIM_NO_RATE: not computable). */
int dia_sim_trend_from_rate(int32_t rate_x10);
/* The transmitter id of an absolute session number for a seed ("8G" + 4). */
void dia_sim_transmitter_id(uint64_t seed, int64_t session, char out[8]);

#endif
