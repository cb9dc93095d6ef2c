/*
 * Tests for what the dexcom-usb source makes of receiver records
 * (dexusb_glucose_mgdl, dexusb_user_event_record in source/dexcom_usb.c):
 *   - insulin: only fast-acting (subtype 1) is a bolus; long-acting (2),
 *     untyped (0, a G4's only kind) and unknown subtypes become notes that
 *     keep the subtype and the units, and the Nightscout mapping then makes
 *     a Note of them, with no insulin that Nightscout would count as IOB;
 *   - glucose the receiver shows as LOW / HIGH is published as 39 / 401
 *     (the record format's LOW and HIGH), never as a measured number.
 * Values from spec §2.4 (shared/specs/dexcom-receiver-usb-and-share.md).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "core/err.h"
#include "core/record.h"
#include "sink/nightscout_map.h"
#include "source/dexcom_usb.h"

static struct dexcom_rx_user_event insulin(uint8_t subtype, uint32_t hundredths)
{
    return (struct dexcom_rx_user_event){.type = DEXCOM_RX_EVENT_INSULIN,
                                         .subtype = subtype,
                                         .event_time = 500000000,
                                         .value = hundredths};
}

/* Give a mapped record what the source adds, so it can be validated and
 * mapped like a stored one. */
static void finish(struct dia_record *r)
{
    r->t_utc_ms = 1774745700000LL;
    r->origin = DIA_ORIGIN_DEVICE;
    strcpy(r->driver, "dexcom-usb");
    strcpy(r->device_id, "SM10000006");
    dia_record_set_key(r, "p11/i1/s1");
    char why[128] = "";
    if (dia_record_validate(r, why, sizeof why) != DIA_OK)
        fail_msg("mapped record does not validate: %s", why);
}

static void fast_acting_insulin_is_a_bolus(void **state)
{
    (void)state;
    struct dia_record r;
    struct dexcom_rx_user_event ev = insulin(1, 350);
    assert_int_equal(dexusb_user_event_record(&ev, DEXUSB_UNTYPED_INSULIN_NOTE, &r), DIA_OK);
    assert_int_equal(r.kind, DIA_KIND_BOLUS);
    assert_int_equal(r.u.bolus.type, DIA_BOLUS_NORMAL);
    assert_int_equal(r.u.bolus.delivered_mu, 3500);
    assert_int_equal(r.u.bolus.programmed_mu, 3500);
    finish(&r);
}

static void long_acting_insulin_is_a_note_with_its_units(void **state)
{
    (void)state;
    struct dia_record r;
    struct dexcom_rx_user_event ev = insulin(2, 1250);
    /* whatever untyped-insulin says: that option is about subtype 0 */
    for (int untyped = 0; untyped < 2; untyped++) {
        assert_int_equal(dexusb_user_event_record(&ev, untyped, &r), DIA_OK);
        assert_int_equal(r.kind, DIA_KIND_EVENT);
        assert_int_equal(r.u.event.type, DIA_EVENT_NOTE);
        assert_int_equal(r.u.event.code, 2);
        assert_string_equal(r.u.event.text, "long-acting insulin 12.50 U, logged on the receiver");
        finish(&r);
    }
}

static void untyped_insulin_follows_the_option(void **state)
{
    (void)state;
    struct dia_record r;
    struct dexcom_rx_user_event ev = insulin(0, 5);
    assert_int_equal(dexusb_user_event_record(&ev, DEXUSB_UNTYPED_INSULIN_NOTE, &r), DIA_OK);
    assert_int_equal(r.kind, DIA_KIND_EVENT);
    assert_int_equal(r.u.event.type, DIA_EVENT_NOTE);
    assert_int_equal(r.u.event.code, 0);
    assert_string_equal(r.u.event.text,
                        "insulin (type not recorded) 0.05 U, logged on the receiver");
    finish(&r);
    assert_int_equal(dexusb_user_event_record(&ev, DEXUSB_UNTYPED_INSULIN_BOLUS, &r), DIA_OK);
    assert_int_equal(r.kind, DIA_KIND_BOLUS);
    assert_int_equal(r.u.bolus.delivered_mu, 50);
    finish(&r);
}

static void unknown_insulin_subtype_is_a_note(void **state)
{
    (void)state;
    struct dia_record r;
    struct dexcom_rx_user_event ev = insulin(7, 100);
    assert_int_equal(dexusb_user_event_record(&ev, DEXUSB_UNTYPED_INSULIN_BOLUS, &r), DIA_OK);
    assert_int_equal(r.kind, DIA_KIND_EVENT);
    assert_int_equal(r.u.event.code, 7);
    assert_string_equal(r.u.event.text, "insulin (unknown type 7) 1.00 U, logged on the receiver");
}

static void insulin_above_100_units_is_refused(void **state)
{
    (void)state;
    struct dia_record r;
    struct dexcom_rx_user_event ev = insulin(1, 10000);
    assert_int_equal(dexusb_user_event_record(&ev, DEXUSB_UNTYPED_INSULIN_NOTE, &r), DIA_OK);
    ev = insulin(1, 10001);
    assert_int_equal(dexusb_user_event_record(&ev, DEXUSB_UNTYPED_INSULIN_NOTE, &r),
                     DIA_ERR_IMPLAUSIBLE);
    ev = insulin(2, 10001);
    assert_int_equal(dexusb_user_event_record(&ev, DEXUSB_UNTYPED_INSULIN_NOTE, &r),
                     DIA_ERR_IMPLAUSIBLE);
}

static void other_user_events(void **state)
{
    (void)state;
    struct dia_record r;
    struct dexcom_rx_user_event ev = {.type = DEXCOM_RX_EVENT_CARBS, .value = 13};
    assert_int_equal(dexusb_user_event_record(&ev, DEXUSB_UNTYPED_INSULIN_NOTE, &r), DIA_OK);
    assert_int_equal(r.kind, DIA_KIND_CARBS);
    assert_int_equal(r.u.carbs.carbs_dg, 130);
    ev = (struct dexcom_rx_user_event){.type = DEXCOM_RX_EVENT_EXERCISE, .subtype = 2, .value = 45};
    assert_int_equal(dexusb_user_event_record(&ev, DEXUSB_UNTYPED_INSULIN_NOTE, &r), DIA_OK);
    assert_int_equal(r.u.event.type, DIA_EVENT_EXERCISE);
    assert_string_equal(r.u.event.text, "exercise: 45 min, Medium");
    ev = (struct dexcom_rx_user_event){.type = DEXCOM_RX_EVENT_HEALTH, .subtype = 1};
    assert_int_equal(dexusb_user_event_record(&ev, DEXUSB_UNTYPED_INSULIN_NOTE, &r), DIA_OK);
    assert_int_equal(r.u.event.type, DIA_EVENT_HEALTH);
    assert_string_equal(r.u.event.text, "health: Illness");
    ev = (struct dexcom_rx_user_event){.type = 9};
    assert_int_equal(dexusb_user_event_record(&ev, DEXUSB_UNTYPED_INSULIN_NOTE, &r),
                     DIA_ERR_UNSUPPORTED);
}

/* What Nightscout gets: a bolus carries insulin (counted in IOB); a
 * long-acting note carries none, only its text. */
static void nightscout_counts_only_the_bolus(void **state)
{
    (void)state;
    struct dia_record r;
    struct dia_ns_doc docs[DIA_NS_MAX_DOCS];

    struct dexcom_rx_user_event ev = insulin(2, 1250);
    assert_int_equal(dexusb_user_event_record(&ev, DEXUSB_UNTYPED_INSULIN_NOTE, &r), DIA_OK);
    finish(&r);
    int n = dia_ns_documents(&r, docs);
    assert_int_equal(n, 1);
    assert_int_equal(docs[0].coll, DIA_NS_TREATMENTS);
    assert_string_equal(json_string_value(json_object_get(docs[0].doc, "eventType")), "Note");
    assert_null(json_object_get(docs[0].doc, "insulin"));
    const char *notes = json_string_value(json_object_get(docs[0].doc, "notes"));
    assert_non_null(notes);
    assert_non_null(strstr(notes, "long-acting insulin 12.50 U"));
    dia_ns_docs_free(docs, n);

    ev = insulin(1, 350);
    assert_int_equal(dexusb_user_event_record(&ev, DEXUSB_UNTYPED_INSULIN_NOTE, &r), DIA_OK);
    finish(&r);
    n = dia_ns_documents(&r, docs);
    assert_int_equal(n, 1);
    assert_int_equal(docs[0].coll, DIA_NS_TREATMENTS);
    assert_true(json_real_value(json_object_get(docs[0].doc, "insulin")) == 3.5);
    dia_ns_docs_free(docs, n);
}

static struct dexcom_rx_egv reading(uint16_t mgdl)
{
    return (struct dexcom_rx_egv){
        .cls = DEXCOM_RX_EGV_GLUCOSE,
        .mgdl = mgdl,
        .below_range = mgdl<DEXCOM_RX_DISPLAY_LOW, .above_range = mgdl> DEXCOM_RX_DISPLAY_HIGH};
}

static void low_and_high_are_never_numbers(void **state)
{
    (void)state;
    int32_t mgdl = 0;
    struct dexcom_rx_egv e;
    /* the receiver shows LOW for 20..39: always 39, never the stored value */
    for (uint16_t v = 20; v < 40; v++) {
        e = reading(v);
        assert_int_equal(dexusb_glucose_mgdl(&e, &mgdl), DIA_OK);
        assert_int_equal(mgdl, 39);
    }
    /* HIGH for 401..600: always 401 */
    for (uint16_t v = 401; v <= 600; v += 37) {
        e = reading(v);
        assert_int_equal(dexusb_glucose_mgdl(&e, &mgdl), DIA_OK);
        assert_int_equal(mgdl, 401);
    }
    /* the displayable range is published as is */
    for (uint16_t v = 40; v <= 400; v++) {
        e = reading(v);
        assert_int_equal(dexusb_glucose_mgdl(&e, &mgdl), DIA_OK);
        assert_int_equal(mgdl, v);
    }
    /* 13..19: not a reading the receiver shows */
    e = reading(19);
    assert_int_equal(dexusb_glucose_mgdl(&e, &mgdl), DIA_ERR_IMPLAUSIBLE);
    /* a special value is never glucose */
    e = (struct dexcom_rx_egv){.cls = DEXCOM_RX_EGV_SPECIAL, .special = 5};
    assert_int_equal(dexusb_glucose_mgdl(&e, &mgdl), DIA_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fast_acting_insulin_is_a_bolus),
        cmocka_unit_test(long_acting_insulin_is_a_note_with_its_units),
        cmocka_unit_test(untyped_insulin_follows_the_option),
        cmocka_unit_test(unknown_insulin_subtype_is_a_note),
        cmocka_unit_test(insulin_above_100_units_is_refused),
        cmocka_unit_test(other_user_events),
        cmocka_unit_test(nightscout_counts_only_the_bolus),
        cmocka_unit_test(low_and_high_are_never_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
