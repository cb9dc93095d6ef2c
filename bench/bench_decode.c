/*
 * Decode throughput of every codec that has a bench sample (issue #7, row 1).
 *
 * Walks the codec table (src/cli/codecs.c): a codec with a bench_sample gets
 * a row without any change here.  Each sample is decoded with no output in a
 * loop for at least the requested time, so the figure is the codec's own
 * cost.  One JSON object per codec on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/codecs.h"
#include "core/err.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned char *load(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = buf ? (size_t)n : 0;
    return buf;
}

int main(int argc, char **argv)
{
    const char *data_dir = argc > 1 ? argv[1] : "tests/data";
    double seconds = argc > 2 ? atof(argv[2]) : 1.0;
    for (size_t i = 0; i < dia_codec_count; i++) {
        const struct dia_codec *c = dia_codecs[i];
        if (!c->bench_sample)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", data_dir, c->bench_sample);
        size_t len = 0;
        unsigned char *buf = load(path, &len);
        if (!buf) {
            printf("{\"codec\":\"%s\",\"error\":\"cannot read %s\"}\n", c->name, path);
            continue;
        }
        unsigned long loops = 0, records = 0;
        double t0 = now_s(), c0 = cpu_s(), elapsed = 0;
        int rc = DIA_OK;
        do {
            struct dia_decode_stats st = {0};
            if ((rc = c->decode(buf, len, NULL, &st)) != DIA_OK)
                break;
            records += st.records;
            loops++;
            elapsed = now_s() - t0;
        } while (elapsed < seconds);
        double cpu = cpu_s() - c0;
        if (rc != DIA_OK || records == 0) {
            /* A sample its own codec refuses is a broken benchmark, not a
             * slow codec: say so rather than print 0 records/s. */
            printf("{\"codec\":\"%s\",\"error\":\"%s decodes to no records (%s)\"}\n", c->name,
                   c->bench_sample, rc != DIA_OK ? dia_strerror(rc) : "nothing recognised");
            free(buf);
            continue;
        }
        printf("{\"codec\":\"%s\",\"sample\":\"%s\",\"bytes\":%zu,\"loops\":%lu,\"records\":%lu,"
               "\"seconds\":%.3f,\"cpu_seconds\":%.3f,\"records_per_s\":%.0f,\"mb_per_s\":%.2f}\n",
               c->name, c->bench_sample, len, loops, records, elapsed, cpu,
               cpu > 0 ? records / cpu : 0, cpu > 0 ? loops * (double)len / cpu / 1e6 : 0);
        free(buf);
    }
    return 0;
}
