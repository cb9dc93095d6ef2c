/*
 * The Dexcom consolidation group rule (proto/dexcom/sensor_group.c): the
 * group a receiver names by itself and the group a user writes in sensor=
 * for Share must be the same string, or the journal publishes every
 * reading twice.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "core/err.h"
#include "proto/dexcom/sensor_group.h"

static const char *group(const char *option, const char *transmitter)
{
    static char buf[40];
    assert_int_equal(dexcom_sensor_group(option, transmitter, buf, sizeof buf), DIA_OK);
    return buf;
}

static void test_receiver_and_share_agree(void **state)
{
    (void)state;
    /* what dexcom-usb names by itself from the receiver's transmitter id */
    const char *usb = group(NULL, "8GABCD");
    assert_string_equal(usb, "dexcom:8GABCD");
    /* every way the Share documentation lets a user write it */
    assert_string_equal(group("8GABCD", NULL), usb);
    assert_string_equal(group("8gabcd", NULL), usb);
    assert_string_equal(group("dexcom:8GABCD", NULL), usb);
    assert_string_equal(group("DEXCOM:8gAbCd", NULL), usb);
    /* and a receiver given the same sensor= as Share */
    assert_string_equal(group("8gabcd", "8GABCD"), usb);
}

static void test_transmitter_shapes(void **state)
{
    (void)state;
    assert_true(dexcom_is_transmitter_id("63KDG"));   /* G4 (spec example) */
    assert_true(dexcom_is_transmitter_id("60hmw"));   /* G4, the capture's, any case */
    assert_true(dexcom_is_transmitter_id("4A1B2C"));  /* G5 */
    assert_true(dexcom_is_transmitter_id("8G1234"));  /* G6 */
    assert_false(dexcom_is_transmitter_id("ALICE"));  /* I is not in the G4 alphabet */
    assert_false(dexcom_is_transmitter_id("ROBOT"));  /* nor O */
    assert_false(dexcom_is_transmitter_id("9G1234")); /* 6 characters, not G5/G6 */
    assert_false(dexcom_is_transmitter_id("8G12"));
    assert_false(dexcom_is_transmitter_id("8G-123"));
    assert_false(dexcom_is_transmitter_id("8G12345"));
    assert_false(dexcom_is_transmitter_id(""));
    assert_false(dexcom_is_transmitter_id(NULL));
}

static void test_other_names_kept(void **state)
{
    (void)state;
    /* a patient name groups every source that is given the same name */
    assert_string_equal(group("jane", NULL), "jane");
    assert_string_equal(group("jane", "8GABCD"), "jane");
    assert_string_equal(group("Jane Doe", NULL), "Jane Doe");
    assert_string_equal(group("patient:alice", NULL), "patient:alice");
    /* a prefix with something that is no id is a name like any other */
    assert_string_equal(group("dexcom:my sensor", NULL), "dexcom:my sensor");
    /* short G7 ids need the explicit form */
    assert_string_equal(group("dexcom:ab12", NULL), "dexcom:AB12");
    assert_string_equal(group(NULL, "ab12"), "dexcom:AB12");
}

static void test_nothing_known(void **state)
{
    (void)state;
    assert_string_equal(group(NULL, NULL), "");
    assert_string_equal(group("", ""), "");
}

static void test_refusals(void **state)
{
    (void)state;
    char small[10];
    assert_int_equal(dexcom_sensor_group(NULL, "8GABCD", small, sizeof small), DIA_ERR_ARG);
    assert_string_equal(small, "");
    assert_int_equal(dexcom_sensor_group("a-long-patient-name", NULL, small, sizeof small),
                     DIA_ERR_ARG);
    assert_string_equal(small, "");
    char buf[40];
    assert_int_equal(dexcom_sensor_group(NULL, "8G-ABC", buf, sizeof buf), DIA_ERR_ARG);
    assert_string_equal(buf, "");
    assert_int_equal(dexcom_sensor_group("8GABCD", NULL, buf, 0), DIA_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_receiver_and_share_agree),
        cmocka_unit_test(test_transmitter_shapes),
        cmocka_unit_test(test_other_names_kept),
        cmocka_unit_test(test_nothing_known),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
