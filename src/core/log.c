#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int dia_log_threshold = DIA_LOG_INFO;
static bool log_to_journald;

static const char *const level_names[] = {"error", "warning", "info", "debug"};
/* syslog priorities for the "<N>" prefix journald understands */
static const int level_priority[] = {3, 4, 6, 7};

void dia_log_init(void)
{
    log_to_journald = getenv("JOURNAL_STREAM") != NULL;
}

int dia_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0)
            return i;
    }
    if (strcmp(name, "warn") == 0)
        return DIA_LOG_WARN;
    return -1;
}

void dia_log_write(int level, const char *who, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (level < 0)
        level = 0;
    if (level > 3)
        level = 3;

    /* One fputs per line keeps lines from different threads whole. */
    char line[1200];
    if (log_to_journald) {
        snprintf(line, sizeof line, "<%d>%s: %s\n", level_priority[level], who, msg);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
        snprintf(line, sizeof line, "%s %-7s %s: %s\n", stamp, level_names[level], who, msg);
    }
    flockfile(stderr);
    fputs(line, stderr);
    funlockfile(stderr);
}
