/*
 * The simulated patient (see sim_patient.h for the contract).
 *
 * Physiology, per five-minute step, in milli-mg/dL:
 *
 *   bg += carbs absorbed this step  × ISF/CR      (the body's own values)
 *       − insulin acting this step  × ISF
 *       + drift (AR(1), wanders slowly around zero: what no model explains)
 *       + dawn phenomenon (04:00–08:00 local)
 *       − exercise (while it lasts)
 *       − renal loss above 180, + counter-regulation below 70
 *
 * Carbohydrate is absorbed along a triangle that peaks a third of the way
 * through an absorption time that grows with the meal (45 min for a rescue,
 * 2–5 h for a meal).  Insulin acts along the exponential activity curve that
 * oref0 uses for rapid-acting analogues, with a 75 minute peak and a 6 hour
 * duration, tabulated below so no libm call is needed.  Both effects are
 * kept in ring buffers of what will act in each of the next steps, so a step
 * costs a few dozen integer operations and the wizard's insulin on board is
 * simply what is left in the insulin ring.
 *
 * The sensor sees bg plus AR(1) noise through a calibration whose slope
 * error each finger stick halves; the display value is clamped to 40..400
 * as receivers do.  The patient reacts to what the sensor shows: rescue
 * carbohydrate below 70, a correction bolus when high for long.
 *
 * Everything is integer arithmetic, with a xoshiro256** generator seeded by
 * splitmix64, so results are identical on every machine.
 */
#include "source/sim_patient.h"

#include <string.h>

#include "core/record.h"

/*
 * Fraction of a bolus absorbed in each five-minute step after it, in parts
 * per 100000 (sums to exactly 100000).  From oref0's exponential insulin
 * curve (lib/iob/calculate.js) with peak 75 min and DIA 360 min:
 *   tau = tp (1 − tp/td) / (1 − 2 tp/td),  a = 2 tau/td,
 *   S = 1 / (1 − a + (1 + a) e^(−td/tau)),
 *   IOB(t) = 1 − S (1 − a) ((t²/(tau td (1 − a)) − t/tau − 1) e^(−t/tau) + 1)
 * each entry being IOB(5k) − IOB(5k + 5), rounded by largest remainder.
 */
static const int32_t insulin_activity[72] = {
    241,  684,  1071, 1407, 1698, 1947, 2158, 2335, 2481, 2598, 2690, 2760, 2809, 2840, 2854,
    2855, 2842, 2818, 2784, 2742, 2692, 2636, 2574, 2508, 2438, 2365, 2290, 2213, 2134, 2055,
    1975, 1895, 1816, 1737, 1659, 1582, 1506, 1431, 1359, 1287, 1218, 1151, 1085, 1022, 960,
    901,  843,  788,  735,  684,  634,  587,  542,  499,  458,  419,  381,  345,  312,  279,
    249,  220,  192,  167,  142,  119,  97,   77,   58,   40,   23,   7,
};
#define INSULIN_STEPS ((int)(sizeof(insulin_activity) / sizeof(insulin_activity[0])))

#define MG 1000 /* one mg/dL in the model's milli-mg/dL */

/* ---- random numbers ---------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct dia_sim_patient *p)
{
    uint64_t *s = p->rng;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [lo, hi]; the modulo bias is below 2^-40 for our spans. */
static int64_t rng_range(struct dia_sim_patient *p, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1;
    return lo + (int64_t)((rng_next(p) >> 11) % span);
}

static bool rng_chance(struct dia_sim_patient *p, int per_mille)
{
    return rng_range(p, 0, 999) < per_mille;
}

/* Approximately normal with standard deviation sd (Irwin–Hall, twelve terms). */
static int64_t rng_normal(struct dia_sim_patient *p, int64_t sd)
{
    int64_t sum = 0;
    for (int i = 0; i < 12; i++)
        sum += (int64_t)(rng_next(p) >> 40); /* 24 bits */
    sum -= 6LL << 24;
    return sum * sd / (1LL << 24);
}

/* A hash of the seed for schedules that must not depend on the stream. */
static uint64_t seed_hash(uint64_t seed, uint64_t salt)
{
    uint64_t x = seed ^ (salt * 0xd6e8feb86659fd93ULL);
    splitmix64(&x);
    return splitmix64(&x);
}

/* ---- small helpers ----------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

/* a / b rounded half away from zero (b > 0). */
static int64_t div_round(int64_t a, int64_t b)
{
    return a >= 0 ? (a + b / 2) / b : -((-a + b / 2) / b);
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static struct dia_sim_event *emit(struct dia_sim_slot *out, enum dia_sim_kind kind, int64_t t_ms)
{
    /* The worst case of coinciding events is well below the cap; should the
     * plan ever grow past it, the surplus is dropped rather than overrun. */
    if (out->n >= DIA_SIM_MAX_EVENTS)
        return NULL;
    struct dia_sim_event *e = &out->ev[out->n++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->t_ms = t_ms;
    return e;
}

/* A moment within the step: seconds_before seconds before its end. */
static int64_t slot_time(const struct dia_sim_slot *out, int64_t seconds_before)
{
    return out->t_ms - seconds_before * 1000;
}

/* ---- effects in the rings ---------------------------------------------- */

/* Insulin in milli-units (negative for a temp basal below the schedule),
 * starting with the current step. */
static void add_insulin(struct dia_sim_patient *p, int64_t mu)
{
    for (int k = 0; k < INSULIN_STEPS; k++)
        p->insulin_ring[(p->ring_pos + k) % DIA_SIM_HORIZON] += mu * insulin_activity[k];
}

/* Carbohydrate in tenths of a gram absorbed over n steps along a triangle
 * peaking at n/3; the rounding remainder goes to the peak so the total is
 * exact. */
static void add_carbs(struct dia_sim_patient *p, int64_t dg, int n)
{
    if (n < 3)
        n = 3;
    if (n > DIA_SIM_HORIZON)
        n = DIA_SIM_HORIZON;
    int peak = n / 3;
    int64_t w[DIA_SIM_HORIZON], sum = 0;
    for (int k = 0; k < n; k++) {
        w[k] = k < peak ? (int64_t)(k + 1) * (n - peak) : (int64_t)(n - k) * peak;
        sum += w[k];
    }
    int64_t mg = dg * 100, given = 0;
    for (int k = 0; k < n; k++) {
        int64_t part = mg * w[k] / sum;
        p->carb_ring[(p->ring_pos + k) % DIA_SIM_HORIZON] += part;
        given += part;
    }
    p->carb_ring[(p->ring_pos + peak) % DIA_SIM_HORIZON] += mg - given;
}

/* Insulin on board in mU: what is still to act (temp basals included, as
 * a pump that counts them would; never below zero). */
static int64_t insulin_on_board(const struct dia_sim_patient *p)
{
    int64_t sum = 0;
    for (int k = 0; k < DIA_SIM_HORIZON; k++)
        sum += p->insulin_ring[k];
    sum /= 100000;
    return sum > 0 ? sum : 0;
}

/* ---- the patient's day ------------------------------------------------- */

static void plan_day(struct dia_sim_patient *p)
{
    struct dia_sim_day *d = &p->day;
    /* Steps since local midnight: 06:30 = 78, 08:30 = 102, … */
    static const int32_t meal_lo[3] = {78, 141, 216}, meal_hi[3] = {102, 162, 240};
    static const int32_t carbs_lo[3] = {25, 35, 45}, carbs_hi[3] = {60, 80, 100};
    static const int skip_per_mille[3] = {80, 50, 30};
    for (int m = 0; m < 3; m++) {
        d->meal_step[m] = (int32_t)rng_range(p, meal_lo[m], meal_hi[m]);
        d->meal_dg[m] = (int32_t)rng_range(p, carbs_lo[m], carbs_hi[m]) * 10;
        if (rng_chance(p, skip_per_mille[m]))
            d->meal_step[m] = -1;
    }
    for (int s = 0; s < 2; s++) {
        d->snack_step[s] = (int32_t)rng_range(p, 120, 264); /* 10:00–22:00 */
        /* small snacks often go without a bolus, bigger ones get one */
        d->snack_bolus[s] = rng_chance(p, 650);
        d->snack_dg[s] =
            (int32_t)(d->snack_bolus[s] ? rng_range(p, 10, 25) : rng_range(p, 5, 12)) * 10;
        if (!rng_chance(p, 450))
            d->snack_step[s] = -1;
    }
    d->cal_step[0] = (int32_t)rng_range(p, 84, 108);  /* 07:00–09:00 */
    d->cal_step[1] = (int32_t)rng_range(p, 228, 252); /* 19:00–21:00 */
    d->exercise_step = -1;
    if (rng_chance(p, 350)) {
        bool morning = rng_chance(p, 400);
        d->exercise_step = (int32_t)(morning ? rng_range(p, 72, 96) : rng_range(p, 198, 222));
        d->exercise_steps = (int32_t)rng_range(p, 6, 15);
        d->exercise_intensity = (int32_t)rng_range(p, 1, 3);
    }
    static const int32_t percents[] = {0, 50, 70, 80, 120, 130, 150};
    for (int i = 0; i < 2; i++) {
        d->temp_step[i] = (int32_t)rng_range(p, 0, DIA_SIM_STEPS_PER_DAY - 1);
        d->temp_percent[i] = percents[rng_range(p, 0, 6)];
        d->temp_steps[i] = (int32_t)rng_range(p, 1, 4) * 6;
        if (!rng_chance(p, 400))
            d->temp_step[i] = -1;
    }
}

/* ---- actions ----------------------------------------------------------- */

/* The pump's bolus wizard, Medtronic style: active insulin reduces the
 * correction only, a glucose below target reduces the food dose, and the
 * result is rounded down to the pump's 0.05 U increment. */
static void wizard(struct dia_sim_patient *p, struct dia_sim_event *e, int32_t carbs_dg,
                   int32_t bg_mgdl)
{
    const struct dia_sim_settings *s = &p->set;
    int64_t food = (int64_t)carbs_dg * 1000 / s->carb_ratio_dg;
    int64_t iob = insulin_on_board(p);
    int64_t corr = 0;
    if (bg_mgdl > s->target_high_mgdl)
        corr = (int64_t)(bg_mgdl - s->target_high_mgdl) * 1000 / s->isf_mgdl;
    else if (bg_mgdl > 0 && bg_mgdl < s->target_low_mgdl)
        corr = -(int64_t)(s->target_low_mgdl - bg_mgdl) * 1000 / s->isf_mgdl;
    int64_t net = corr > 0 ? (corr > iob ? corr - iob : 0) : corr;
    int64_t total = food + net;
    total = clamp64(total, 0, 25000);
    total -= total % 50;

    e->u.bolus.delivered_mu = (int32_t)total;
    e->u.bolus.carbs_dg = carbs_dg;
    e->u.bolus.bg_mgdl = bg_mgdl;
    e->u.bolus.target_low_mgdl = s->target_low_mgdl;
    e->u.bolus.target_high_mgdl = s->target_high_mgdl;
    e->u.bolus.carb_ratio_dg = s->carb_ratio_dg;
    e->u.bolus.isf_mgdl = s->isf_mgdl;
    e->u.bolus.iob_mu = (int32_t)iob;
    e->u.bolus.food_mu = (int32_t)food;
    e->u.bolus.correction_mu = (int32_t)corr;
}

static void eat(struct dia_sim_patient *p, struct dia_sim_slot *out, int meal, int32_t dg,
                bool bolus, int32_t bg_mgdl)
{
    int64_t t = slot_time(out, rng_range(p, 0, 299));
    /* bigger meals take longer: 2 h plus 1.5 min per gram, at most 5 h */
    int32_t minutes = meal == DIA_SIM_RESCUE ? 60 : 120 + dg * 15 / 100;
    if (minutes > 300)
        minutes = 300;
    struct dia_sim_event *c = emit(out, DIA_SIM_CARBS, t);
    if (c) {
        c->u.carbs.carbs_dg = dg;
        c->u.carbs.meal = meal;
        c->u.carbs.absorption_min = minutes;
    }
    /* people count carbohydrate badly: what is eaten differs from what is
     * entered, which is most of why real meals overshoot or fall short */
    int64_t eaten = meal == DIA_SIM_RESCUE ? dg : dg * rng_range(p, 75, 130) / 100;
    add_carbs(p, eaten, minutes / 5);
    if (!bolus)
        return;
    struct dia_sim_event *b = emit(out, DIA_SIM_BOLUS, t);
    if (!b)
        return;
    wizard(p, b, dg, bg_mgdl);
    add_insulin(p, b->u.bolus.delivered_mu);
    p->last_bolus_index = p->index;
}

static void start_temp(struct dia_sim_patient *p, struct dia_sim_slot *out, int32_t percent,
                       int32_t steps)
{
    struct dia_sim_event *e = emit(out, DIA_SIM_TEMP_BASAL, slot_time(out, rng_range(p, 0, 299)));
    if (e) {
        e->u.temp_basal.percent = percent;
        e->u.temp_basal.rate_mu_h = p->set.basal_mu_h * percent / 100;
        e->u.temp_basal.duration_s = steps * 300;
    }
    p->temp_percent = percent;
    p->temp_left = steps;
}

/* A finger stick used to calibrate; the calibration's slope error halves. */
static void calibrate(struct dia_sim_patient *p, struct dia_sim_slot *out, int64_t seconds_before)
{
    int64_t t = slot_time(out, seconds_before);
    struct dia_sim_event *m = emit(out, DIA_SIM_METER, t);
    /* meters are within ±4 % of the blood glucose (ISO 15197 allows 15 %) */
    int64_t mgdl = div_round(p->bg * (1000 + rng_range(p, -40, 40)), 1000 * MG);
    if (m) {
        m->u.meter.mgdl = (int32_t)clamp64(mgdl, 20, 600);
        m->u.meter.calibration = true;
    }
    p->cal_err_milli = p->cal_err_milli / 2 + (int32_t)rng_range(p, -10, 10);
    struct dia_sim_event *c = emit(out, DIA_SIM_CALIBRATION, t + 5000);
    if (c) {
        c->u.calibration.slope_milli = p->slope_milli / 1000 * (1000 + p->cal_err_milli);
        c->u.calibration.intercept = p->intercept;
    }
}

static void new_sensor(struct dia_sim_patient *p)
{
    p->cal_err_milli = (int32_t)rng_range(p, -80, 80);
    p->slope_milli = (int32_t)rng_range(p, 700, 1100) * 1000;
    p->intercept = (int32_t)rng_range(p, 20000, 35000);
    p->noise = 0;
    p->prev_unfiltered = 0;
    p->missed_last = false;
    memset(p->last_mgdl, 0, sizeof(p->last_mgdl));
}

/* ---- the sensor -------------------------------------------------------- */

int dia_sim_trend_from_rate(int32_t rate_x10)
{
    if (rate_x10 == DIA_SIM_NO_RATE)
        return DIA_TREND_NOT_COMPUTABLE;
    if (rate_x10 >= 30)
        return DIA_TREND_DOUBLE_UP;
    if (rate_x10 >= 20)
        return DIA_TREND_SINGLE_UP;
    if (rate_x10 >= 10)
        return DIA_TREND_FORTYFIVE_UP;
    if (rate_x10 > -10)
        return DIA_TREND_FLAT;
    if (rate_x10 > -20)
        return DIA_TREND_FORTYFIVE_DOWN;
    if (rate_x10 > -30)
        return DIA_TREND_SINGLE_DOWN;
    return DIA_TREND_DOUBLE_DOWN;
}

/* Rate over the last 15 minutes: from the oldest reading at most 15 minutes
 * back, provided it is at least 10 minutes back. */
static int32_t glucose_rate(const struct dia_sim_patient *p, int32_t mgdl)
{
    for (int back = 2; back >= 1; back--) {
        if (p->last_mgdl[back] > 0) {
            int64_t minutes = (back + 1) * 5;
            return (int32_t)div_round((int64_t)(mgdl - p->last_mgdl[back]) * 10, minutes);
        }
    }
    return DIA_SIM_NO_RATE;
}

static void read_sensor(struct dia_sim_patient *p, struct dia_sim_slot *out)
{
    p->noise = p->noise * 80 / 100 + rng_normal(p, 1800);
    int64_t sensed = p->bg + p->noise;
    if (sensed < 20 * MG)
        sensed = 20 * MG;
    int64_t unfiltered = p->intercept + (int64_t)p->slope_milli * sensed / (1000LL * MG);
    int64_t mgdl = div_round(sensed * 1000, (int64_t)(1000 + p->cal_err_milli) * MG);
    mgdl = clamp64(mgdl, 40, 400);
    int32_t rate = glucose_rate(p, (int32_t)mgdl);
    int64_t abs_noise = p->noise < 0 ? -p->noise : p->noise;

    struct dia_sim_event *e = emit(out, DIA_SIM_GLUCOSE, out->t_ms);
    if (e) {
        e->u.glucose.mgdl = (int32_t)mgdl;
        e->u.glucose.rate_x10 = rate;
        e->u.glucose.trend = dia_sim_trend_from_rate(rate);
        e->u.glucose.noise = abs_noise < 5 * MG    ? 1
                             : abs_noise < 9 * MG  ? 2
                             : abs_noise < 13 * MG ? 3
                                                   : 4;
        e->u.glucose.unfiltered = (int32_t)unfiltered;
        e->u.glucose.filtered = p->prev_unfiltered
                                    ? (int32_t)((p->prev_unfiltered + unfiltered) / 2)
                                    : (int32_t)unfiltered;
        e->u.glucose.rssi = (int32_t)rng_range(p, -88, -55);
    }
    p->prev_unfiltered = (int32_t)unfiltered;
    memmove(&p->last_mgdl[1], &p->last_mgdl[0], 3 * sizeof(p->last_mgdl[0]));
    p->last_mgdl[0] = (int32_t)mgdl;
}

static void no_reading(struct dia_sim_patient *p)
{
    memmove(&p->last_mgdl[1], &p->last_mgdl[0], 3 * sizeof(p->last_mgdl[0]));
    p->last_mgdl[0] = 0;
}

/* ---- public ------------------------------------------------------------ */

int dia_sim_patient_init(struct dia_sim_patient *p, const struct dia_sim_config *cfg)
{
    if (floor_mod(cfg->start_ms, DIA_SIM_STEP_MS) != 0)
        return -1;
    memset(p, 0, sizeof(*p));
    p->cfg = *cfg;
    /* keep the label by value so that copies of the generator stand alone */
    p->cfg.patient = NULL;
    if (cfg->patient)
        strncpy(p->patient, cfg->patient, sizeof(p->patient) - 1);
    uint64_t x = cfg->seed;
    for (int i = 0; i < 4; i++)
        p->rng[i] = splitmix64(&x);

    struct dia_sim_settings *s = &p->set;
    s->isf_mgdl = (int32_t)rng_range(p, 7, 12) * 5;
    int64_t csf_milli = rng_range(p, 3000, 5500); /* mg/dL per gram × 1000 */
    s->carb_ratio_dg = (int32_t)((s->isf_mgdl * 10000LL / csf_milli + 2) / 5 * 5);
    s->target_low_mgdl = (int32_t)rng_range(p, 18, 22) * 5;
    s->target_high_mgdl = s->target_low_mgdl + 20;
    s->basal_mu_h = (int32_t)rng_range(p, 12, 26) * 50;
    /* the body differs a little from what the pump was told */
    p->isf_true = s->isf_mgdl * (int32_t)rng_range(p, 90, 115) / 100;
    p->cr_true_dg = s->carb_ratio_dg * (int32_t)rng_range(p, 90, 112) / 100;
    p->dawn = rng_range(p, 0, 600);

    p->bg = rng_range(p, 90, 160) * MG;
    p->day_number = INT64_MIN;
    p->last_bolus_index = -1000;
    p->last_rescue_index = -1000;
    new_sensor(p);
    return 0;
}

void dia_sim_patient_step(struct dia_sim_patient *p, struct dia_sim_slot *out)
{
    int64_t idx = p->index;
    out->index = idx;
    out->t_ms = p->cfg.start_ms + idx * DIA_SIM_STEP_MS;
    out->n = 0;

    int64_t local_s = floor_div(out->t_ms, 1000) + (int64_t)p->cfg.utc_offset_min * 60;
    int64_t day = floor_div(local_s, 86400);
    int32_t tod = (int32_t)(floor_mod(local_s, 86400) / 300);
    if (day != p->day_number) {
        plan_day(p);
        p->day_number = day;
    }
    const struct dia_sim_day *d = &p->day;

    /* sensor sessions follow absolute time, phased by the seed */
    int64_t abs_step = floor_div(out->t_ms, DIA_SIM_STEP_MS) +
                       (int64_t)(seed_hash(p->cfg.seed, 1) % DIA_SIM_SESSION_STEPS);
    int32_t session = (int32_t)floor_div(abs_step, DIA_SIM_SESSION_STEPS);
    int32_t pos = (int32_t)floor_mod(abs_step, DIA_SIM_SESSION_STEPS);
    bool warming = pos < DIA_SIM_WARMUP_STEPS;
    char transmitter[8];
    dia_sim_transmitter_id(p->cfg.seed, session, transmitter);
    if (pos == 0) {
        struct dia_sim_event *e;
        if (idx > 0 && (e = emit(out, DIA_SIM_SENSOR_STOP, slot_time(out, 240)))) {
            e->u.sensor.session = session - 1;
            dia_sim_transmitter_id(p->cfg.seed, session - 1, e->u.sensor.transmitter);
        }
        if ((e = emit(out, DIA_SIM_SENSOR_START, slot_time(out, 180)))) {
            e->u.sensor.session = session;
            memcpy(e->u.sensor.transmitter, transmitter, sizeof(transmitter));
        }
        new_sensor(p);
    }

    /* what the patient believes: the last reading, else (warm-up, missed
     * readings) a finger stick, modelled as the true value */
    int32_t seen = p->last_mgdl[0] ? p->last_mgdl[0] : p->last_mgdl[1];
    int32_t wizard_bg = seen;
    if (!seen)
        seen = (int32_t)(p->bg / MG);

    bool bolused = false;
    for (int m = 0; m < 3; m++) {
        if (d->meal_step[m] == tod) {
            eat(p, out, DIA_SIM_BREAKFAST + m, d->meal_dg[m], true, wizard_bg);
            bolused = true;
        }
    }
    for (int s = 0; s < 2; s++) {
        if (d->snack_step[s] == tod) {
            eat(p, out, DIA_SIM_SNACK, d->snack_dg[s], d->snack_bolus[s], wizard_bg);
            bolused |= d->snack_bolus[s];
        }
    }
    if (seen < 70 && idx - p->last_rescue_index >= 4) {
        eat(p, out, DIA_SIM_RESCUE, (int32_t)rng_range(p, 10, 16) * 10, false, 0);
        p->last_rescue_index = idx;
        if (p->temp_left == 0 && rng_chance(p, 500))
            start_temp(p, out, 0, 6);
    } else if (!bolused && wizard_bg > 200 && idx - p->last_bolus_index >= 18 &&
               rng_chance(p, 250)) {
        int64_t t = slot_time(out, rng_range(p, 0, 299));
        struct dia_sim_event probe;
        wizard(p, &probe, 0, wizard_bg);
        struct dia_sim_event *b;
        if (probe.u.bolus.delivered_mu >= 500 && (b = emit(out, DIA_SIM_BOLUS, t))) {
            b->u = probe.u;
            add_insulin(p, b->u.bolus.delivered_mu);
            p->last_bolus_index = idx;
        }
    }
    if (d->exercise_step == tod) {
        struct dia_sim_event *e = emit(out, DIA_SIM_EXERCISE, slot_time(out, rng_range(p, 0, 299)));
        if (e) {
            e->u.exercise.duration_s = d->exercise_steps * 300;
            e->u.exercise.intensity = d->exercise_intensity;
        }
        p->exercise_left = d->exercise_steps;
        p->exercise_intensity = d->exercise_intensity;
        if (p->temp_left == 0 && rng_chance(p, 400))
            start_temp(p, out, 50, d->exercise_steps + 6);
    }
    for (int i = 0; i < 2; i++) {
        if (d->temp_step[i] == tod && p->temp_left == 0)
            start_temp(p, out, d->temp_percent[i], d->temp_steps[i]);
    }

    /* physiology */
    if (p->temp_left > 0) {
        add_insulin(p, (int64_t)p->set.basal_mu_h * (p->temp_percent - 100) / 1200);
        p->temp_left--;
    }
    int64_t carbs_mg = p->carb_ring[p->ring_pos];
    int64_t insulin = p->insulin_ring[p->ring_pos];
    p->carb_ring[p->ring_pos] = 0;
    p->insulin_ring[p->ring_pos] = 0;
    p->ring_pos = (p->ring_pos + 1) % DIA_SIM_HORIZON;

    int64_t delta = carbs_mg * p->isf_true * 10 / p->cr_true_dg - insulin * p->isf_true / 100000;
    p->drift = p->drift * 95 / 100 + rng_normal(p, 100);
    delta += p->drift;
    if (tod >= 48 && tod < 96)
        delta += p->dawn;
    if (p->exercise_left > 0) {
        delta -= p->exercise_intensity * 1200;
        p->exercise_left--;
    }
    if (p->bg > 180 * MG)
        delta -= (p->bg - 180 * MG) / 200;
    if (p->bg < 70 * MG)
        delta += (70 * MG - p->bg) * 3 / 100;
    p->bg = clamp64(p->bg + delta, 35 * MG, 450 * MG);

    /* finger sticks: two when the warm-up ends, then mornings and evenings */
    if (pos == DIA_SIM_WARMUP_STEPS) {
        calibrate(p, out, 200);
        calibrate(p, out, 80);
    } else if (!warming && (d->cal_step[0] == tod || d->cal_step[1] == tod)) {
        calibrate(p, out, rng_range(p, 30, 290));
    }

    /* the sensor: nothing during warm-up, and now and then a single gap */
    bool missed = false;
    if (!warming && !p->missed_last && pos > DIA_SIM_WARMUP_STEPS)
        missed = rng_chance(p, 4);
    if (warming || missed)
        no_reading(p);
    else
        read_sensor(p, out);
    p->missed_last = missed;

    if (floor_mod(abs_step, 48) == 6) {
        struct dia_sim_event *e = emit(out, DIA_SIM_STATUS, out->t_ms);
        if (e) {
            int32_t days =
                (session % DIA_SIM_SESSIONS_PER_TRANSMITTER) * 10 + pos / DIA_SIM_STEPS_PER_DAY;
            int32_t pct = 100 - days;
            e->u.status.battery_pct = pct;
            e->u.status.battery_mv = 2800 + pct * 4;
            e->u.status.session = session;
            e->u.status.sensor_age_min = pos * 5;
            e->u.status.warming_up = warming;
            memcpy(e->u.status.transmitter, transmitter, sizeof(transmitter));
        }
    }
    p->index++;
}

void dia_sim_patient_skip(struct dia_sim_patient *p, int64_t n)
{
    struct dia_sim_slot scratch;
    for (int64_t i = 0; i < n; i++)
        dia_sim_patient_step(p, &scratch);
}

int64_t dia_sim_patient_index(const struct dia_sim_patient *p)
{
    return p->index;
}

const struct dia_sim_settings *dia_sim_patient_settings(const struct dia_sim_patient *p)
{
    return &p->set;
}

const char *dia_sim_kind_name(enum dia_sim_kind kind)
{
    static const char *const names[] = {
        [DIA_SIM_GLUCOSE] = "glucose",
        [DIA_SIM_METER] = "meter",
        [DIA_SIM_CALIBRATION] = "calibration",
        [DIA_SIM_CARBS] = "carbs",
        [DIA_SIM_BOLUS] = "bolus",
        [DIA_SIM_TEMP_BASAL] = "temp-basal",
        [DIA_SIM_EXERCISE] = "exercise",
        [DIA_SIM_SENSOR_STOP] = "sensor-stop",
        [DIA_SIM_SENSOR_START] = "sensor-start",
        [DIA_SIM_STATUS] = "status",
    };
    if ((int)kind < 1 || (int)kind > DIA_SIM_KIND_MAX)
        return "unknown";
    return names[kind];
}

const char *dia_sim_meal_name(int meal)
{
    switch (meal) {
    case DIA_SIM_BREAKFAST:
        return "breakfast";
    case DIA_SIM_LUNCH:
        return "lunch";
    case DIA_SIM_DINNER:
        return "dinner";
    case DIA_SIM_SNACK:
        return "snack";
    case DIA_SIM_RESCUE:
        return "rescue";
    default:
        return "unknown";
    }
}

void dia_sim_transmitter_id(uint64_t seed, int64_t session, char out[8])
{
    /* Dexcom serials avoid I and O; a G6 serial starts with 8. */
    static const char alphabet[] = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    int64_t tx = floor_div(session, DIA_SIM_SESSIONS_PER_TRANSMITTER);
    uint64_t h = seed_hash(seed, 2 + (uint64_t)tx);
    out[0] = '8';
    out[1] = 'G';
    for (int i = 2; i < 6; i++) {
        out[i] = alphabet[h % (sizeof(alphabet) - 1)];
        h /= sizeof(alphabet) - 1;
    }
    out[6] = '\0';
    out[7] = '\0';
}
