/*
 * "Decoding the same device data twice gives the same keys" (DESIGN §5: a
 * re-read is recognised as known, never stored twice), on real captures:
 *
 *   - the ecc1 G4 receiver pages (tests/data/dexcom-usb/bench-pages.bin,
 *     see PROVENANCE.md there) through the real page codec;
 *   - the pydexcom cassette of the real Share server
 *     (tests/data/dexcom-share/pydexcom-cassettes/) through the real
 *     readings parser.
 *
 * The dexcom-usb and dexcom-share sources build their records inside their
 * poll (it needs a serial port or an HTTP session), so this test builds them
 * from the decoded data the same way the sources do: driver, device id and
 * kind as the source sets them, and the source's identity format for
 * dia_record_set_key ("p<type>/i<index>/s<system time>" in
 * src/source/dexcom_usb.c, "wt:<ms>" in src/source/dexcom_share.c).  If a
 * source changes its key, this file must change with it.
 *
 * Checked: two decodings of the same bytes (from two separate loads, at
 * different receive times) give the same keys in the same order; within
 * one decoding every record has its own key; the same records from another
 * receiver or account get other keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/record.h"
#include "proto/dexcom_rx/dexcom_rx.h"
#include "source/dexcom_share.h"
#include "testutil.h"

#define MAX_KEYS     512
#define SHARE_NOW_MS 1780000000000LL /* a "now" after every reading of the cassette */

struct keys {
    size_t n;
    char key[MAX_KEYS][DIA_KEY_HEX + 1];
    char what[MAX_KEYS][64];     /* which record, for failure messages */
    uint8_t data[MAX_KEYS][256]; /* the record as the device sent it */
    size_t data_len[MAX_KEYS];
};

static uint8_t *load(const char *rel, size_t *len)
{
    const char *path = testutil_data(rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(n > 0);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void add_key(struct keys *k, const struct dia_record *r, const char *what, const void *data,
                    size_t data_len)
{
    assert_true(k->n < MAX_KEYS);
    assert_true(data_len <= sizeof k->data[0]);
    assert_int_equal(strlen(r->key), DIA_KEY_HEX);
    memcpy(k->key[k->n], r->key, sizeof k->key[0]);
    snprintf(k->what[k->n], sizeof k->what[0], "%s", what);
    memcpy(k->data[k->n], data, data_len);
    k->data_len[k->n] = data_len;
    k->n++;
}

static void assert_same_keys(const struct keys *a, const struct keys *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->key[i], b->key[i]) != 0)
            fail_msg("%s: key %s the first time, %s the second", a->what[i], a->key[i], b->key[i]);
    }
}

/* Within one decoding, two records share a key exactly when the device
 * sent the same record twice (a page read again).  Returns how often it did. */
static unsigned assert_keys_follow_data(const struct keys *k)
{
    unsigned repeats = 0;
    for (size_t i = 0; i < k->n; i++) {
        for (size_t j = i + 1; j < k->n; j++) {
            bool same_data = k->data_len[i] == k->data_len[j] &&
                             memcmp(k->data[i], k->data[j], k->data_len[i]) == 0;
            bool same_key = strcmp(k->key[i], k->key[j]) == 0;
            if (same_key && !same_data)
                fail_msg("%s and %s differ but share the key %s", k->what[i], k->what[j],
                         k->key[i]);
            if (same_data && !same_key)
                fail_msg("%s was sent twice and got two keys", k->what[i]);
            repeats += same_data;
        }
    }
    return repeats;
}

static void assert_none_shared(const struct keys *a, const struct keys *b)
{
    for (size_t i = 0; i < a->n; i++)
        for (size_t j = 0; j < b->n; j++)
            if (strcmp(a->key[i], b->key[j]) == 0)
                fail_msg("%s has the same key from two devices", a->what[i]);
}

/* ---- dexcom-usb ------------------------------------------------------------ */

/* The record kind the dexcom-usb source makes of a decoded receiver
 * record, or -1 when it makes none (sensor records are merged into glucose,
 * display-only EGVs and values 13..19 are skipped, XML is not data). */
static int usb_kind(const struct dexcom_rx_record *rec)
{
    switch (rec->kind) {
    case DEXCOM_RX_KIND_EGV:
        if (rec->u.egv.display_only)
            return -1;
        if (rec->u.egv.cls == DEXCOM_RX_EGV_SPECIAL)
            return DIA_KIND_EVENT;
        return rec->u.egv.mgdl < 20 ? -1 : DIA_KIND_GLUCOSE;
    case DEXCOM_RX_KIND_METER:
        return DIA_KIND_METER;
    case DEXCOM_RX_KIND_USER_EVENT:
        if (rec->u.event.type == DEXCOM_RX_EVENT_CARBS)
            return DIA_KIND_CARBS;
        if (rec->u.event.type == DEXCOM_RX_EVENT_INSULIN)
            return DIA_KIND_BOLUS;
        return DIA_KIND_EVENT;
    case DEXCOM_RX_KIND_INSERTION:
        return DIA_KIND_EVENT;
    case DEXCOM_RX_KIND_CAL_SET:
        return DIA_KIND_CALIBRATION;
    default:
        return -1;
    }
}

/* The receiver's serial number from its manufacturing page, as the source
 * reads it when it connects. */
static void usb_serial(const uint8_t *pages, size_t len, char *serial, size_t cap)
{
    serial[0] = '\0';
    for (size_t off = 0; off + DEXCOM_RX_PAGE_SIZE <= len; off += DEXCOM_RX_PAGE_SIZE) {
        struct dexcom_rx_page pg;
        struct dexcom_rx_record rec;
        if (dexcom_rx_page_open(pages + off, len - off, 0, &pg) == DIA_OK &&
            pg.hdr.record_type == DEXCOM_RX_REC_MANUFACTURING_DATA && pg.hdr.num_records > 0 &&
            dexcom_rx_page_record(&pg, 0, &rec) == DIA_OK && rec.kind == DEXCOM_RX_KIND_XML)
            dexcom_rx_xml_attr(rec.u.xml.text, rec.u.xml.len, "ManufacturingParameters",
                               "SerialNumber", serial, cap);
    }
}

/* Decode every page and key every record the source would store. */
static void usb_keys(const uint8_t *pages, size_t len, const char *serial, int64_t received_ms,
                     struct keys *out, unsigned *glucose)
{
    out->n = 0;
    *glucose = 0;
    for (size_t off = 0; off + DEXCOM_RX_PAGE_SIZE <= len; off += DEXCOM_RX_PAGE_SIZE) {
        struct dexcom_rx_page pg;
        assert_int_equal(dexcom_rx_page_open(pages + off, len - off, 0, &pg), DIA_OK);
        for (uint32_t i = 0; i < pg.hdr.num_records; i++) {
            struct dexcom_rx_record rec;
            if (dexcom_rx_page_record(&pg, i, &rec) != DIA_OK)
                continue; /* the source skips a damaged record too */
            int kind = usb_kind(&rec);
            if (kind < 0)
                continue;
            struct dia_record r;
            dia_record_init(&r, (enum dia_kind)kind);
            r.received_ms = received_ms; /* must not matter */
            snprintf(r.driver, sizeof r.driver, "dexcom-usb");
            snprintf(r.device_id, sizeof r.device_id, "%s", serial);
            dia_record_set_key(&r, "p%u/i%" PRIu32 "/s%" PRIu32, rec.record_type, rec.index,
                               rec.system_time);
            char what[64];
            snprintf(what, sizeof what, "%s record %" PRIu32,
                     dexcom_rx_record_type_name(rec.record_type), rec.index);
            add_key(out, &r, what, rec.raw, rec.raw_len);
            *glucose += kind == DIA_KIND_GLUCOSE;
        }
    }
}

static void test_receiver_pages_twice(void **state)
{
    (void)state;
    size_t len1, len2;
    uint8_t *first = load("dexcom-usb/bench-pages.bin", &len1);
    uint8_t *again = load("dexcom-usb/bench-pages.bin", &len2);
    assert_int_equal(len1, len2);
    assert_true(first != again);

    char serial[40];
    usb_serial(first, len1, serial, sizeof serial);
    assert_string_equal(serial, "SM44792675"); /* ecc1/0.0.expected.json */

    static struct keys a, b, other;
    unsigned glucose_a, glucose_b, glucose_other;
    usb_keys(first, len1, serial, 1700000000000LL, &a, &glucose_a);
    usb_keys(again, len2, serial, 1800000000000LL, &b, &glucose_b);
    /* ecc1/4.312: 23 EGV readings; plus the calibration records */
    assert_int_equal(glucose_a, 23);
    assert_true(a.n > glucose_a);
    assert_same_keys(&a, &b);
    /* The file holds calibration page 1432 twice (ecc1's 5.1432 and
     * 5.1432-1, PROVENANCE.md): its first record, read on both, is one fact. */
    assert_true(assert_keys_follow_data(&a) >= 1);

    /* The same pages read from another receiver are other facts. */
    usb_keys(again, len2, "SM00000001", 1700000000000LL, &other, &glucose_other);
    assert_int_equal(other.n, a.n);
    assert_none_shared(&a, &other);
    free(first);
    free(again);
}

/* ---- dexcom-share ------------------------------------------------------------ */

/* The response bodies of a cassette that fit on one line (the readings
 * answers do), parsed by the source's parser and keyed as it keys them. */
static void share_keys(char *cassette, const char *device_id, int64_t received_ms, struct keys *out,
                       unsigned *bodies)
{
    out->n = 0;
    *bodies = 0;
    for (char *line = strtok(cassette, "\n"); line; line = strtok(NULL, "\n")) {
        char *p = strstr(line, "string: '[");
        size_t n = p ? strlen(p) : 0;
        if (!p || p[n - 1] != '\'')
            continue;
        const char *body = p + strlen("string: '");
        size_t body_len = (size_t)(p + n - 1 - body);
        struct dexcom_share_reading readings[16];
        size_t got = 0;
        struct dexcom_share_parse_stats st = {0};
        char why[160];
        assert_int_equal(dexcom_share_parse_readings(body, body_len, SHARE_NOW_MS, readings, 16,
                                                     &got, &st, why, sizeof why),
                         DIA_OK);
        assert_int_equal(st.malformed + st.implausible, 0);
        (*bodies)++;
        for (size_t i = 0; i < got; i++) {
            struct dia_record r;
            dia_record_init(&r, DIA_KIND_GLUCOSE);
            r.received_ms = received_ms;
            snprintf(r.driver, sizeof r.driver, "dexcom-share");
            snprintf(r.device_id, sizeof r.device_id, "%s", device_id);
            dia_record_set_key(&r, "wt:%" PRId64, readings[i].wt_ms);
            char what[64];
            snprintf(what, sizeof what, "Share reading %d mg/dL at %" PRId64, readings[i].mgdl,
                     readings[i].wt_ms);
            char data[96]; /* the reading as sent, for assert_keys_follow_data */
            int dn = snprintf(data, sizeof data, "%" PRId64 " %d %d %s", readings[i].wt_ms,
                              readings[i].mgdl, readings[i].trend, readings[i].dt_text);
            add_key(out, &r, what, data, (size_t)dn);
        }
    }
}

static void test_share_answers_twice(void **state)
{
    (void)state;
    const char *rel = "dexcom-share/pydexcom-cassettes/latest-glucose-maxcount1-minutes1440.yaml";
    size_t len1, len2;
    char *first = (char *)load(rel, &len1);
    char *again = (char *)load(rel, &len2);
    char *third = (char *)load(rel, &len2);

    static struct keys a, b, other;
    unsigned bodies;
    share_keys(first, "share-0123456789ab", 1700000000000LL, &a, &bodies);
    /* MANIFEST.md: three recordings, 224, 216 and 175 mg/dL */
    assert_int_equal(bodies, 3);
    assert_int_equal(a.n, 3);
    share_keys(again, "share-0123456789ab", 1800000000000LL, &b, &bodies);
    assert_same_keys(&a, &b);
    assert_int_equal(assert_keys_follow_data(&a), 0);

    share_keys(third, "share-ba9876543210", 1700000000000LL, &other, &bodies);
    assert_int_equal(other.n, 3);
    assert_none_shared(&a, &other);
    free(first);
    free(again);
    free(third);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_receiver_pages_twice),
        cmocka_unit_test(test_share_answers_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
