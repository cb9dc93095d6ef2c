/* Wall and monotonic clocks in milliseconds, in one place so tests and
 * drivers agree on units. */
#ifndef DIA_CORE_CLOCK_H
#define DIA_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t dia_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t dia_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CLOCK_MONOTONIC deadline `ms` from now, for pthread_cond_timedwait on a
 * condition variable created with pthread_condattr_setclock(MONOTONIC). */
static inline struct timespec dia_mono_deadline(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

#endif
