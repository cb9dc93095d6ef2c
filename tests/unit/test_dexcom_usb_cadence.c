/*
 * Tests for the dexcom-usb source's polling rhythm (dexusb_next_poll):
 * the source reads the receiver once per 5-minute reading, a little after
 * the reading is due, retries a few times when it is late, then falls back
 * to the 5-minute slots so a sensor gap does not turn into a busy loop.
 * Expected times are worked out by hand from the defaults (grace 15 s,
 * retries 30 s apart, 4 of them).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "source/dexcom_usb.h"

#define S   1000LL
#define MIN (60 * S)
static const struct dexusb_rhythm defaults = {
    .poll_after_ms = 15 * S, .retry_ms = 30 * S, .retries = 4};
/* An arbitrary host time for the newest reading: 2026-03-29 00:55:00 UTC. */
static const int64_t T0 = 1774745700000LL;

static void no_reading_yet_waits_one_interval(void **state)
{
    (void)state;
    int late = 0;
    assert_int_equal(dexusb_next_poll(&defaults, 0, T0, false, &late), T0 + 5 * MIN);
    assert_int_equal(late, 0);
}

static void polls_just_after_the_next_reading_is_due(void **state)
{
    (void)state;
    int late = 0;
    /* the poll at T0+20 s brought the reading taken at T0 */
    int64_t next = dexusb_next_poll(&defaults, T0, T0 + 20 * S, true, &late);
    assert_int_equal(next, T0 + 5 * MIN + 15 * S);
    assert_int_equal(late, 0);
    /* a poll at any time before that keeps the same appointment */
    assert_int_equal(dexusb_next_poll(&defaults, T0, T0 + 3 * MIN, false, &late),
                     T0 + 5 * MIN + 15 * S);
    assert_int_equal(late, 0);
}

static void late_reading_gets_short_retries_then_the_slots(void **state)
{
    (void)state;
    int late = 0;
    int64_t due = T0 + 5 * MIN + 15 * S;
    int64_t now = due;
    /* the reading is not there: four retries, 30 s apart */
    for (int i = 1; i <= 4; i++) {
        int64_t next = dexusb_next_poll(&defaults, T0, now, false, &late);
        assert_int_equal(late, i);
        assert_int_equal(next, now + 30 * S);
        now = next;
    }
    /* still nothing (sensor off): back to the 5-minute slots, never sooner */
    int64_t next = dexusb_next_poll(&defaults, T0, now, false, &late);
    assert_int_equal(next, due + 5 * MIN);
    assert_true(next - now >= 2 * MIN);
    /* an hour later it is still in step with the slots */
    now = due + 60 * MIN + 7 * S;
    next = dexusb_next_poll(&defaults, T0, now, false, &late);
    assert_int_equal(next, due + 65 * MIN);
    assert_int_equal((next - due) % (5 * MIN), 0);
}

static void a_new_reading_ends_the_retries(void **state)
{
    (void)state;
    int late = 3;
    /* the late reading came at T0+5 min and was read at T0+5 min+40 s */
    int64_t newest = T0 + 5 * MIN;
    int64_t next = dexusb_next_poll(&defaults, newest, newest + 40 * S, true, &late);
    assert_int_equal(late, 0);
    assert_int_equal(next, newest + 5 * MIN + 15 * S);
}

static void a_three_hour_gap_costs_a_handful_of_polls(void **state)
{
    (void)state;
    /* The caller polls exactly when told; the sensor stops after the reading
     * at T0.  Polls stay at least retry_ms apart, settle on the 5-minute
     * slots after the retries, and three hours cost 1 + 4 + 36 polls. */
    int late = 0;
    int64_t now = dexusb_next_poll(&defaults, T0, T0 + 20 * S, true, &late);
    int polls = 1;
    int64_t prev = T0 + 20 * S;
    while (now < T0 + 3 * 60 * MIN) {
        assert_true(now - prev >= 30 * S);
        if (late > 4)
            assert_int_equal((now - (T0 + 15 * S)) % (5 * MIN), 0);
        prev = now;
        now = dexusb_next_poll(&defaults, T0, now, false, &late);
        polls++;
    }
    assert_true(polls <= 1 + 4 + 36);
    assert_true(polls >= 36);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_reading_yet_waits_one_interval),
        cmocka_unit_test(polls_just_after_the_next_reading_is_due),
        cmocka_unit_test(late_reading_gets_short_retries_then_the_slots),
        cmocka_unit_test(a_new_reading_ends_the_retries),
        cmocka_unit_test(a_three_hour_gap_costs_a_handful_of_polls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
