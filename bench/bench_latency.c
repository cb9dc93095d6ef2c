/*
 * Ingest-to-publish latency probe (issue #7, row 3).  Reads delivered
 * records as JSON lines on stdin (from a sink's subscriber: tail of a file,
 * mosquitto_sub, …) and, for each, measures now − received_ms, the moment
 * the source handed the reading to the daemon.  Stops after N records or at
 * EOF and prints p50 / p99 / max in milliseconds as one JSON object.
 * Both clocks are the same host's CLOCK_REALTIME.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int want = argc > 1 ? atoi(argv[1]) : 50;
    const char *name = argc > 2 ? argv[2] : "sink";
    double *lat = calloc((size_t)want, sizeof *lat);
    int n = 0;
    char *line = NULL;
    size_t cap = 0;
    while (n < want && getline(&line, &cap, stdin) > 0) {
        int64_t now = dia_now_ms();
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        json_t *rcv = o ? json_object_get(o, "received_ms") : NULL;
        if (json_is_integer(rcv))
            lat[n++] = (double)(now - json_integer_value(rcv));
        json_decref(o);
    }
    free(line);
    if (n == 0) {
        printf("{\"sink\":\"%s\",\"error\":\"no records observed\"}\n", name);
        return 1;
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    printf("{\"sink\":\"%s\",\"samples\":%d,\"latency_ms_p50\":%.1f,\"latency_ms_p99\":%.1f,"
           "\"latency_ms_max\":%.1f}\n",
           name, n, lat[n / 2], lat[(int)((n - 1) * 0.99)], lat[n - 1]);
    free(lat);
    return 0;
}
