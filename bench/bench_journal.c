/*
 * Journal throughput and commit latency (issue #7, row 2).
 *
 *  1. A source delivers a 90-day history at once: 25,920 glucose readings
 *     plus three meals a day (carbs + bolus), committed in batches of 2,000
 *     (the sim source's default), with the daemon's default durability
 *     (synchronous=FULL).  Reports records stored per second.
 *  2. Live readings: one reading per commit, as a source delivers them every
 *     five minutes.  Reports the commit latency p50 / p99 / max.
 *
 * Usage: bench_journal DIR [days] [live_commits]; one JSON object on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/journal.h"

#define STEP_MS 300000LL
#define T0      1700000000000LL

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void add_reading(struct dia_batch *b, long step)
{
    struct dia_record *r = dia_batch_add(b, DIA_KIND_GLUCOSE);
    strcpy(r->driver, "bench");
    strcpy(r->device_id, "B1");
    strcpy(r->sensor, "bench");
    r->t_utc_ms = T0 + step * STEP_MS;
    r->u.glucose.mgdl = 120 + (int)((step * 37) % 80) - 40;
    r->u.glucose.trend = 4;
    dia_record_set_key(r, "g:%ld", step);
}

static void add_meal(struct dia_batch *b, long step)
{
    struct dia_record *c = dia_batch_add(b, DIA_KIND_CARBS);
    strcpy(c->driver, "bench");
    strcpy(c->device_id, "B1");
    c->t_utc_ms = T0 + step * STEP_MS;
    c->u.carbs.carbs_dg = 450;
    dia_record_set_key(c, "c:%ld", step);
    struct dia_record *bo = dia_batch_add(b, DIA_KIND_BOLUS);
    strcpy(bo->driver, "bench");
    strcpy(bo->device_id, "B1");
    bo->t_utc_ms = T0 + step * STEP_MS;
    bo->u.bolus.type = DIA_BOLUS_NORMAL;
    bo->u.bolus.delivered_mu = 4500;
    dia_record_set_key(bo, "b:%ld", step);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_journal DIR [days] [live_commits]\n");
        return 2;
    }
    long days = argc > 2 ? atol(argv[2]) : 90;
    int live = argc > 3 ? atoi(argv[3]) : 300;
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/bench-journal.db", argv[1]);
    remove(path);
    struct dia_journal_config jc = {.path = path, .sync = DIA_SYNC_FULL};
    struct dia_journal *j;
    if (dia_journal_open(&jc, &j, err, sizeof err) != DIA_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct dia_batch b;
    dia_batch_init(&b);
    long steps = days * 288, stored = 0;
    double t0 = now_s();
    for (long s = 0; s < steps; s++) {
        add_reading(&b, s);
        if (s % 96 == 30) /* three meals a day */
            add_meal(&b, s);
        if (b.n >= 2000 || s == steps - 1) {
            struct dia_commit_result res;
            if (dia_journal_commit(j, "bench", &b, &res) != DIA_OK) {
                fprintf(stderr, "%s\n", dia_journal_errmsg(j));
                return 1;
            }
            stored += (long)res.inserted;
            dia_batch_clear(&b);
        }
    }
    double history_s = now_s() - t0;

    double *lat = calloc((size_t)live, sizeof *lat);
    for (int i = 0; i < live; i++) {
        dia_batch_clear(&b);
        add_reading(&b, steps + i);
        double a = now_s();
        if (dia_journal_commit(j, "bench", &b, NULL) != DIA_OK) {
            fprintf(stderr, "%s\n", dia_journal_errmsg(j));
            return 1;
        }
        lat[i] = (now_s() - a) * 1000.0;
    }
    qsort(lat, (size_t)live, sizeof *lat, cmp_double);
    printf("{\"history_days\":%ld,\"history_records\":%ld,\"history_seconds\":%.3f,"
           "\"history_records_per_s\":%.0f,\"live_commits\":%d,\"commit_ms_p50\":%.3f,"
           "\"commit_ms_p99\":%.3f,\"commit_ms_max\":%.3f}\n",
           days, stored, history_s, stored / history_s, live, lat[live / 2],
           lat[(int)(live * 0.99)], lat[live - 1]);
    free(lat);
    dia_batch_free(&b);
    dia_journal_close(j);
    return 0;
}
