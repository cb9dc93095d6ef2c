/*
 * Unit and golden tests for the Dexcom receiver USB codec (proto/dexcom_rx).
 *
 * Golden data lives in $DIA_TEST_DATA/dexcom-usb (see PROVENANCE.md there):
 * CRC and packet vectors, android-uploader's page and record vectors,
 * ecc1's G4 pages with their expected decodings, the synthetic G6 pages,
 * and a real Dexcom Studio ↔ G4 capture decoded end to end and compared
 * with the corpus's expected decoding and with Studio's own export.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/hex.h"
#include "proto/dexcom_rx/dexcom_rx.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static char *data_path(const char *rel)
{
    const char *dir = getenv("DIA_TEST_DATA");
    if (!dir)
        dir = "tests/data";
    size_t n = strlen(dir) + strlen(rel) + 16;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/dexcom-usb/%s", dir, rel);
    return p;
}

static char *read_text(const char *rel, size_t *len_out)
{
    char *path = data_path(rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    free(path);
    if (len_out)
        *len_out = (size_t)n;
    return buf;
}

static json_t *load_json(const char *rel)
{
    char *path = data_path(rel);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j)
        fail_msg("%s: %s (line %d)", path, err.text, err.line);
    free(path);
    return j;
}

/* Hex text (whitespace allowed) to bytes; returns the byte count. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int v = dia_hex_digit((unsigned char)*s);
        if (v < 0) {
            assert_true(*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t');
            continue;
        }
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    assert_int_equal(hi, -1);
    return n;
}

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("missing string %s", key);
    return json_string_value(v);
}

static long long jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("missing integer %s", key);
    return json_integer_value(v);
}

static bool jbool(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_boolean(v))
        fail_msg("missing boolean %s", key);
    return json_is_true(v);
}

static double jnum(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fail_msg("missing number %s", key);
    return json_number_value(v);
}

/* Receiver seconds as a naive "YYYY-MM-DDTHH:MM:SS" (sep 'T' or ' '). */
static void iso(uint32_t secs, char sep, char out[32])
{
    time_t t = (time_t)dexcom_rx_to_unix(secs);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, sep == 'T' ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
}

/* Compare an expected timestamp (any offset suffix dropped) with ours. */
static void assert_time(const char *expected, uint32_t secs, char sep)
{
    char got[32];
    iso(secs, sep, got);
    if (strncmp(expected, got, 19) != 0)
        fail_msg("time: expected %.19s, got %s", expected, got);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Recompute a record's or header's trailing CRC after editing it. */
static void seal(uint8_t *p, size_t len)
{
    put16(p + len - 2, dexcom_rx_crc16(p, len - 2));
}

/* Build a one-page image: header + records, CRCs filled in. */
static void make_page(uint8_t page[DEXCOM_RX_PAGE_SIZE], uint8_t type, uint8_t rev, uint32_t pageno,
                      uint32_t first_index, const uint8_t *records, size_t rec_len, uint32_t n)
{
    memset(page, 0xFF, DEXCOM_RX_PAGE_SIZE);
    memset(page, 0, DEXCOM_RX_PAGE_HEADER_SIZE);
    put32(page, first_index);
    put32(page + 4, n);
    page[8] = type;
    page[9] = rev;
    put32(page + 10, pageno);
    seal(page, DEXCOM_RX_PAGE_HEADER_SIZE);
    if (n)
        memcpy(page + DEXCOM_RX_PAGE_HEADER_SIZE, records, rec_len * n);
}

/* A G4 (13-byte) EGV record. */
static void make_egv_g4(uint8_t r[13], uint32_t sys, uint32_t disp, uint16_t glucose, uint8_t tn)
{
    put32(r, sys);
    put32(r + 4, disp);
    put16(r + 8, glucose);
    r[10] = tn;
    seal(r, 13);
}

/* ------------------------------------------------------------------ */
/* CRC and packet vectors                                              */
/* ------------------------------------------------------------------ */

static void test_crc_vectors(void **state)
{
    (void)state;
    json_t *root = load_json("crc-and-packet-vectors.json");
    json_t *list = json_object_get(root, "crc16");
    size_t i;
    json_t *v;
    size_t checked = 0;
    json_array_foreach(list, i, v)
    {
        uint8_t buf[64];
        size_t n;
        if (json_object_get(v, "input_ascii")) {
            const char *s = jstr(v, "input_ascii");
            n = strlen(s);
            memcpy(buf, s, n);
        } else {
            n = unhex(jstr(v, "input_hex"), buf, sizeof buf);
        }
        unsigned long want = strtoul(jstr(v, "crc"), NULL, 16);
        assert_int_equal(dexcom_rx_crc16(buf, n), want);
        checked++;
    }
    assert_int_equal(checked, 6);
    json_decref(root);

    root = load_json("android-uploader-vectors.json");
    json_array_foreach(json_object_get(root, "crc16"), i, v)
    {
        uint8_t buf[64];
        size_t n = unhex(jstr(v, "input_hex"), buf, sizeof buf);
        assert_int_equal(dexcom_rx_crc16(buf, n), strtoul(jstr(v, "crc"), NULL, 16));
    }
    json_decref(root);
}

static void test_no_payload_packets(void **state)
{
    (void)state;
    json_t *root = load_json("crc-and-packet-vectors.json");
    size_t i;
    json_t *v;
    unsigned built = 0;
    json_array_foreach(json_object_get(root, "no_payload_command_packets"), i, v)
    {
        uint8_t want[16], got[DEXCOM_RX_REQUEST_MAX];
        size_t n = unhex(jstr(v, "packet_hex_no_payload"), want, sizeof want);
        uint8_t code = (uint8_t)jint(v, "code");
        struct dexcom_rx_frame f;
        assert_int_equal(dexcom_rx_frame_parse(want, n, &f), DIA_OK);
        assert_int_equal(f.code, code);
        assert_int_equal(f.payload_len, 0);
        int rc = dexcom_rx_request(got, sizeof got, code, NULL, 0);
        if (dexcom_rx_cmd_is_allowed(code) && code != DEXCOM_RX_CMD_READ_PAGE_RANGE &&
            code != DEXCOM_RX_CMD_READ_PAGES && code != DEXCOM_RX_CMD_READ_PAGE_HEADER) {
            assert_int_equal(rc, (int)n);
            assert_memory_equal(got, want, n);
            built++;
        } else {
            /* Writes, reset, erase, shutdown, and the paged reads without
             * their payload: the codec refuses to build them. */
            assert_int_equal(rc, DIA_ERR_ARG);
        }
    }
    /* Every read the daemon needs is among them. */
    assert_int_equal(built, 14);
    json_decref(root);

    /* The dangerous ones, explicitly. */
    uint8_t buf[DEXCOM_RX_REQUEST_MAX];
    const uint8_t never[] = {0x1A, 0x1C, 0x1E, 0x20, 0x24, 0x26,
                             0x28, 0x2A, 0x2D, 0x2E, 0x2F, 0x3C};
    for (size_t k = 0; k < sizeof never; k++) {
        assert_false(dexcom_rx_cmd_is_allowed(never[k]));
        assert_int_equal(dexcom_rx_request(buf, sizeof buf, never[k], NULL, 0), DIA_ERR_ARG);
    }
}

static void test_packets_with_payload(void **state)
{
    (void)state;
    uint8_t got[DEXCOM_RX_REQUEST_MAX], want[32];
    size_t n = unhex("01070010048bb8", want, sizeof want);
    assert_int_equal(dexcom_rx_request_page_range(got, sizeof got, DEXCOM_RX_REC_EGV_DATA), (int)n);
    assert_memory_equal(got, want, n);

    n = unhex("01070010127cca", want, sizeof want);
    assert_int_equal(dexcom_rx_request_page_range(got, sizeof got, DEXCOM_RX_REC_BACKFILLED_EGV),
                     (int)n);
    assert_memory_equal(got, want, n);

    n = unhex("010c00110526000000015ec3", want, sizeof want);
    assert_int_equal(dexcom_rx_request_read_pages(got, sizeof got, 5, 0x26, 1), (int)n);
    assert_memory_equal(got, want, n);

    n = unhex("010c0011087f0b000004e97e", want, sizeof want);
    assert_int_equal(dexcom_rx_request_read_pages(got, sizeof got, 8, 2943, 4), (int)n);
    assert_memory_equal(got, want, n);

    n = unhex("010b0012038d080000850f", want, sizeof want);
    assert_int_equal(dexcom_rx_request_page_header(got, sizeof got, 3, 2189), (int)n);
    assert_memory_equal(got, want, n);

    /* Constructed WRITE_DISPLAY_TIME_OFFSET: a valid frame we refuse to build. */
    n = unhex("010a001eb79dfffff4f8", want, sizeof want);
    struct dexcom_rx_frame f;
    assert_int_equal(dexcom_rx_frame_parse(want, n, &f), DIA_OK);
    assert_int_equal(f.code, 0x1E);
    assert_int_equal(dexcom_rx_request(got, sizeof got, 0x1E, f.payload, f.payload_len),
                     DIA_ERR_ARG);

    /* Bad arguments. */
    assert_int_equal(dexcom_rx_request_read_pages(got, sizeof got, 4, 1, 0), DIA_ERR_ARG);
    assert_int_equal(dexcom_rx_request_read_pages(got, sizeof got, 4, 1, 5), DIA_ERR_ARG);
    assert_int_equal(dexcom_rx_request_read_pages(got, 11, 4, 1, 1), DIA_ERR_ARG);
    assert_int_equal(dexcom_rx_request(got, sizeof got, DEXCOM_RX_CMD_PING, want, 1), DIA_ERR_ARG);
}

static void test_small_replies(void **state)
{
    (void)state;
    json_t *root = load_json("crc-and-packet-vectors.json");
    size_t i;
    json_t *v;
    unsigned n_range = 0;
    json_array_foreach(json_object_get(root, "small_replies_from_g4_capture"), i, v)
    {
        uint8_t req[32], rep[64], pay[64];
        size_t nreq = unhex(jstr(v, "request_hex"), req, sizeof req);
        size_t nrep = unhex(jstr(v, "reply_hex"), rep, sizeof rep);
        size_t npay = unhex(jstr(v, "payload_hex"), pay, sizeof pay);
        struct dexcom_rx_frame fq, fr;
        uint8_t resp = 0xEE;
        assert_int_equal(dexcom_rx_frame_parse(req, nreq, &fq), DIA_OK);
        assert_int_equal(fq.code, jint(v, "request_cmd"));
        assert_int_equal(dexcom_rx_reply_parse(rep, nrep, &fr, &resp), DIA_OK);
        assert_int_equal(resp, DEXCOM_RX_RESP_ACK);
        assert_int_equal(fr.payload_len, npay);
        if (npay)
            assert_memory_equal(fr.payload, pay, npay);

        /* The request rebuilds byte for byte when it is one we send. */
        uint8_t again[DEXCOM_RX_REQUEST_MAX];
        int rc = dexcom_rx_request(again, sizeof again, fq.code, fq.payload, fq.payload_len);
        if (dexcom_rx_cmd_is_allowed(fq.code)) {
            assert_int_equal(rc, (int)nreq);
            assert_memory_equal(again, req, nreq);
        } else {
            assert_int_equal(rc, DIA_ERR_ARG); /* READ_DEVICE_MODE: not needed */
        }

        switch (fq.code) {
        case DEXCOM_RX_CMD_READ_SYSTEM_TIME: {
            uint32_t t;
            assert_int_equal(dexcom_rx_parse_system_time(fr.payload, fr.payload_len, &t), DIA_OK);
            assert_int_equal(t, 148358601);
            assert_time("2013-09-14T02:43:21", t, 'T');
            break;
        }
        case DEXCOM_RX_CMD_READ_DISPLAY_TIME_OFFSET: {
            int32_t o;
            assert_int_equal(dexcom_rx_parse_display_time_offset(fr.payload, fr.payload_len, &o),
                             DIA_OK);
            assert_int_equal(o, -25161);
            break;
        }
        case DEXCOM_RX_CMD_READ_TRANSMITTER_ID: {
            char id[8];
            assert_int_equal(dexcom_rx_parse_transmitter_id(fr.payload, fr.payload_len, id),
                             DIA_OK);
            assert_string_equal(id, "60HMW");
            break;
        }
        case DEXCOM_RX_CMD_READ_GLUCOSE_UNIT: {
            uint8_t u;
            assert_int_equal(dexcom_rx_parse_glucose_unit(fr.payload, fr.payload_len, &u), DIA_OK);
            assert_int_equal(u, DEXCOM_RX_UNIT_MGDL);
            break;
        }
        case DEXCOM_RX_CMD_READ_CLOCK_MODE: {
            uint8_t m;
            assert_int_equal(dexcom_rx_parse_clock_mode(fr.payload, fr.payload_len, &m), DIA_OK);
            assert_int_equal(m, DEXCOM_RX_CLOCK_12H);
            break;
        }
        case DEXCOM_RX_CMD_READ_PAGE_RANGE: {
            struct dexcom_rx_page_range r;
            assert_int_equal(dexcom_rx_parse_page_range(fr.payload, fr.payload_len, &r), DIA_OK);
            if (fq.payload[0] == 9) {
                assert_true(r.empty);
                assert_int_equal(dexcom_rx_page_range_count(&r), 0);
            } else {
                assert_false(r.empty);
                assert_int_equal(r.first, pay[0] | pay[1] << 8 | pay[2] << 16);
                assert_int_equal(dexcom_rx_page_range_count(&r), (uint64_t)r.last - r.first + 1);
            }
            n_range++;
            break;
        }
        default:
            break;
        }
    }
    assert_int_equal(n_range, 13);
    json_decref(root);
}

static void test_android_packets(void **state)
{
    (void)state;
    json_t *root = load_json("android-uploader-vectors.json");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "request_packets"), i, v)
    {
        uint8_t want[32], pay[16], got[DEXCOM_RX_REQUEST_MAX];
        size_t n = unhex(jstr(v, "packet_hex"), want, sizeof want);
        size_t np = unhex(jstr(v, "payload_hex"), pay, sizeof pay);
        uint8_t cmd = (uint8_t)jint(v, "cmd");
        int rc;
        const json_t *dec = json_object_get(v, "decoded");
        if (cmd == DEXCOM_RX_CMD_READ_PAGES)
            rc = dexcom_rx_request_read_pages(got, sizeof got, (uint8_t)jint(dec, "record_type"),
                                              (uint32_t)jint(dec, "page"),
                                              (uint8_t)jint(dec, "count"));
        else if (cmd == DEXCOM_RX_CMD_READ_PAGE_RANGE)
            rc = dexcom_rx_request_page_range(got, sizeof got, (uint8_t)jint(dec, "record_type"));
        else
            rc = dexcom_rx_request(got, sizeof got, cmd, pay, np);
        assert_int_equal(rc, (int)n);
        assert_memory_equal(got, want, n);
    }

    /* ReadPacketTest's vectors carry a bogus length field (0x0101) that the
     * Java parser ignores.  We trust the length field, so to us they are
     * truncated frames; their CRCs still agree with ours. */
    json_array_foreach(json_object_get(root, "response_packets_from_ReadPacketTest"), i, v)
    {
        uint8_t b[32];
        size_t n = unhex(jstr(v, "hex"), b, sizeof b);
        struct dexcom_rx_frame f;
        assert_int_equal(dexcom_rx_frame_parse(b, n, &f), DIA_ERR_TRUNCATED);
        assert_int_equal(dexcom_rx_crc16(b, n - 2), strtoul(jstr(v, "crc_computed"), NULL, 16));
    }
    json_decref(root);
}

/* ------------------------------------------------------------------ */
/* Frame and reply negatives, stream recognizer                        */
/* ------------------------------------------------------------------ */

static size_t make_reply(uint8_t *buf, uint8_t code, const uint8_t *payload, size_t n)
{
    buf[0] = DEXCOM_RX_SOF;
    put16(buf + 1, (uint16_t)(n + 6));
    buf[3] = code;
    if (n)
        memcpy(buf + 4, payload, n);
    seal(buf, n + 6);
    return n + 6;
}

static void test_frame_negative(void **state)
{
    (void)state;
    uint8_t b[64];
    struct dexcom_rx_frame f;
    uint8_t resp;
    const uint8_t t[4] = {0xC9, 0xC5, 0xD7, 0x08};
    size_t n = make_reply(b, DEXCOM_RX_RESP_ACK, t, 4);
    assert_int_equal(dexcom_rx_reply_parse(b, n, &f, &resp), DIA_OK);

    /* Corrupt CRC, corrupt payload. */
    b[n - 1] ^= 0x01;
    assert_int_equal(dexcom_rx_frame_parse(b, n, &f), DIA_ERR_CRC);
    b[n - 1] ^= 0x01;
    b[5] ^= 0x40;
    assert_int_equal(dexcom_rx_reply_parse(b, n, &f, &resp), DIA_ERR_CRC);
    b[5] ^= 0x40;

    /* Truncated at every length. */
    for (size_t k = 0; k < n; k++) {
        int rc = dexcom_rx_frame_parse(b, k, &f);
        assert_int_equal(rc, k == 0 ? DIA_ERR_NOT_MINE : DIA_ERR_TRUNCATED);
    }
    /* Not a frame: no SOF, or a length below 6. */
    uint8_t g[6] = {0x02, 0x06, 0x00, 0x01, 0x00, 0x00};
    assert_int_equal(dexcom_rx_frame_parse(g, 6, &f), DIA_ERR_NOT_MINE);
    uint8_t s[6] = {0x01, 0x05, 0x00, 0x01, 0x00, 0x00};
    assert_int_equal(dexcom_rx_frame_parse(s, 6, &f), DIA_ERR_NOT_MINE);
    /* Trailing bytes after a reply: refused by reply_parse. */
    b[n] = 0x00;
    assert_int_equal(dexcom_rx_reply_parse(b, n + 1, &f, &resp), DIA_ERR_IMPLAUSIBLE);
    assert_int_equal(dexcom_rx_frame_parse(b, n + 1, &f), DIA_OK);
    assert_int_equal(f.frame_len, n);

    /* Every error response is its own result. */
    for (uint8_t code = 0; code <= 9; code++) {
        if (code == DEXCOM_RX_RESP_ACK)
            continue;
        n = make_reply(b, code, NULL, 0);
        resp = 0xEE;
        assert_int_equal(dexcom_rx_reply_parse(b, n, &f, &resp), DIA_ERR_DEVICE);
        assert_int_equal(resp, code);
    }
    assert_string_equal(dexcom_rx_response_name(DEXCOM_RX_RESP_NAK), "NAK");
    assert_string_equal(dexcom_rx_response_name(DEXCOM_RX_RESP_INVALID_PARAM), "INVALID_PARAM");
    assert_string_equal(dexcom_rx_response_name(DEXCOM_RX_RESP_INCOMPLETE_PACKET),
                        "INCOMPLETE_PACKET_RECEIVED");
    assert_string_equal(dexcom_rx_response_name(DEXCOM_RX_RESP_RECEIVER_ERROR), "RECEIVER_ERROR");
    assert_string_equal(dexcom_rx_response_name(DEXCOM_RX_RESP_INVALID_MODE), "INVALID_MODE");
    assert_string_equal(dexcom_rx_response_name(DEXCOM_RX_RESP_INVALID_COMMAND), "INVALID_COMMAND");
    assert_string_equal(dexcom_rx_response_name(200), "UNKNOWN");
}

/* Feed `in` in chunks of the given size; collect frames' codes and
 * payload lengths. */
static unsigned feed_all(struct dexcom_rx_stream *s, const uint8_t *in, size_t n, size_t chunk,
                         uint8_t *codes, size_t *lens, unsigned max)
{
    unsigned got = 0;
    size_t pos = 0;
    while (pos < n) {
        size_t len = n - pos < chunk ? n - pos : chunk;
        const uint8_t *p = in + pos;
        pos += len;
        for (;;) {
            size_t used = 0;
            struct dexcom_rx_frame f;
            int rc = dexcom_rx_stream_feed(s, p, len, &used, &f);
            assert_true(rc == 0 || rc == 1);
            assert_true(used <= len);
            if (rc == 1) {
                assert_true(got < max);
                codes[got] = f.code;
                lens[got] = f.payload_len;
                got++;
            }
            p += used;
            len -= used;
            if (rc == 0)
                break;
        }
    }
    return got;
}

static void test_stream(void **state)
{
    (void)state;
    uint8_t in[512];
    size_t n = 0;
    uint8_t pay[40];
    for (size_t k = 0; k < sizeof pay; k++)
        pay[k] = (uint8_t)(k * 7);

    /* Garbage (an AT command a modem manager might leave), a false SOF
     * with a huge length, a false SOF with a short length, a good frame, a
     * corrupted frame whose payload cannot pass for a frame header, a NAK, a
     * frame whose payload is full of 0x01, and two frames back to back. */
    const uint8_t junk[] = {0x41, 0x54, 0x0D, 0x0A, 0x01, 0xFF, 0xFF, 0x33, 0x01, 0x02, 0x00, 0x99};
    memcpy(in + n, junk, sizeof junk);
    n += sizeof junk;
    n += make_reply(in + n, DEXCOM_RX_RESP_ACK, pay, 4);
    const uint8_t zeros[8] = {0};
    n += make_reply(in + n, DEXCOM_RX_RESP_ACK, zeros, 8);
    in[n - 2] = in[n - 1] = 0xEE; /* corrupt its CRC */
    n += make_reply(in + n, DEXCOM_RX_RESP_NAK, NULL, 0);
    uint8_t ones[5] = {0x01, 0x01, 0x06, 0x00, 0x01};
    n += make_reply(in + n, DEXCOM_RX_RESP_ACK, ones, 5);
    n += make_reply(in + n, DEXCOM_RX_RESP_ACK, pay, 40);
    n += make_reply(in + n, DEXCOM_RX_RESP_INVALID_PARAM, NULL, 0);

    const uint8_t want_codes[] = {1, 2, 1, 1, 4};
    const size_t want_lens[] = {4, 0, 5, 40, 0};
    for (size_t chunk = 1; chunk <= n; chunk = chunk < 8 ? chunk + 1 : chunk * 2) {
        struct dexcom_rx_stream s;
        dexcom_rx_stream_init(&s);
        uint8_t codes[16];
        size_t lens[16];
        unsigned got = feed_all(&s, in, n, chunk, codes, lens, 16);
        assert_int_equal(got, 5);
        for (unsigned k = 0; k < got; k++) {
            assert_int_equal(codes[k], want_codes[k]);
            assert_int_equal(lens[k], want_lens[k]);
        }
        assert_int_equal(s.crc_errors, 1);
        assert_true(s.garbage_bytes >= 4);
        assert_int_equal(s.frames, 5);
    }

    /* A corrupted reply whose payload happens to look like a frame header
     * after its ACK byte (01 00 07 → length 1792) holds the recognizer: it
     * never yields a frame found inside an incomplete candidate, because a
     * page payload can contain bytes that look like a whole frame.  The
     * caller's timeout resets it and the next reply is read. */
    struct dexcom_rx_stream s;
    dexcom_rx_stream_init(&s);
    uint8_t b[64];
    uint8_t codes[4];
    size_t lens[4];
    size_t bn = make_reply(b, DEXCOM_RX_RESP_ACK, pay + 1, 8); /* 01 0E 00 01 07 0E … */
    b[bn - 1] ^= 0x5A;
    bn += make_reply(b + bn, DEXCOM_RX_RESP_ACK, pay, 4);
    assert_int_equal(feed_all(&s, b, bn, 64, codes, lens, 4), 0);
    assert_int_equal(s.crc_errors, 1);
    dexcom_rx_stream_reset(&s);
    bn = make_reply(b, DEXCOM_RX_RESP_ACK, pay, 4);
    assert_int_equal(feed_all(&s, b, bn, 64, codes, lens, 4), 1);

    /* A frame split over calls, then reset mid-frame drops it. */
    dexcom_rx_stream_init(&s);
    uint8_t fr[16];
    size_t fn = make_reply(fr, DEXCOM_RX_RESP_ACK, pay, 4);
    size_t used;
    struct dexcom_rx_frame f;
    assert_int_equal(dexcom_rx_stream_feed(&s, fr, 5, &used, &f), 0);
    dexcom_rx_stream_reset(&s);
    assert_int_equal(dexcom_rx_stream_feed(&s, fr + 5, fn - 5, &used, &f), 0);
    assert_int_equal(dexcom_rx_stream_feed(&s, fr, fn, &used, &f), 1);
    assert_int_equal(used, fn);
    assert_int_equal(f.payload_len, 4);
    assert_int_equal(dexcom_rx_stream_feed(&s, NULL, 0, &used, &f), 0);

    /* The largest reply we ask for, 4 pages (2118 bytes), passes. */
    static uint8_t big[2118];
    memset(big, 0xFF, sizeof big);
    big[0] = DEXCOM_RX_SOF;
    put16(big + 1, sizeof big);
    big[3] = DEXCOM_RX_RESP_ACK;
    seal(big, sizeof big);
    dexcom_rx_stream_init(&s);
    assert_int_equal(dexcom_rx_stream_feed(&s, big, sizeof big, &used, &f), 1);
    assert_int_equal(f.payload_len, 4 * 528);
    assert_int_equal(dexcom_rx_pages_in_payload(f.payload_len), 4);
}

/* ------------------------------------------------------------------ */
/* Small payloads, page ranges, time                                   */
/* ------------------------------------------------------------------ */

static void test_small_payload_negative(void **state)
{
    (void)state;
    uint8_t b[8] = {0};
    uint32_t u;
    int32_t s;
    uint8_t x;
    char id[8];
    assert_int_equal(dexcom_rx_parse_system_time(b, 3, &u), DIA_ERR_TRUNCATED);
    assert_int_equal(dexcom_rx_parse_system_time(b, 5, &u), DIA_ERR_IMPLAUSIBLE);
    memset(b, 0xFF, 4);
    assert_int_equal(dexcom_rx_parse_system_time(b, 4, &u), DIA_ERR_IMPLAUSIBLE);
    assert_int_equal(dexcom_rx_parse_display_time_offset(b, 4, &s), DIA_OK);
    assert_int_equal(s, -1);
    put32(b, 100);
    assert_int_equal(dexcom_rx_parse_battery_level(b, 4, &u), DIA_OK);
    assert_int_equal(u, 100);
    put32(b, 101);
    assert_int_equal(dexcom_rx_parse_battery_level(b, 4, &u), DIA_ERR_IMPLAUSIBLE);
    for (uint8_t v = 0; v < 8; v++) {
        b[0] = v;
        assert_int_equal(dexcom_rx_parse_battery_state(b, 1, &x),
                         v >= 1 && v <= 4 ? DIA_OK : DIA_ERR_IMPLAUSIBLE);
        assert_int_equal(dexcom_rx_parse_glucose_unit(b, 1, &x),
                         v <= 2 ? DIA_OK : DIA_ERR_IMPLAUSIBLE);
        assert_int_equal(dexcom_rx_parse_clock_mode(b, 1, &x),
                         v <= 1 ? DIA_OK : DIA_ERR_IMPLAUSIBLE);
    }
    assert_int_equal(dexcom_rx_parse_battery_state(b, 0, &x), DIA_ERR_TRUNCATED);
    assert_string_equal(dexcom_rx_battery_state_name(DEXCOM_RX_BATTERY_NOT_CHARGING),
                        "NOT_CHARGING");
    assert_int_equal(dexcom_rx_parse_transmitter_id((const uint8_t *)"8G1234", 6, id), DIA_OK);
    assert_string_equal(id, "8G1234");
    assert_int_equal(dexcom_rx_parse_transmitter_id((const uint8_t *)"60HMW\0", 6, id), DIA_OK);
    assert_string_equal(id, "60HMW");
    assert_int_equal(dexcom_rx_parse_transmitter_id((const uint8_t *)"60H", 3, id),
                     DIA_ERR_TRUNCATED);
    assert_int_equal(dexcom_rx_parse_transmitter_id((const uint8_t *)"60H\nW", 5, id),
                     DIA_ERR_IMPLAUSIBLE);
    assert_int_equal(dexcom_rx_parse_transmitter_id((const uint8_t *)"1234567", 7, id),
                     DIA_ERR_IMPLAUSIBLE);
}

static void test_page_range(void **state)
{
    (void)state;
    uint8_t b[8];
    struct dexcom_rx_page_range r;

    /* first == last > 0: exactly one page (dexpy reads none). */
    put32(b, 360);
    put32(b + 4, 360);
    assert_int_equal(dexcom_rx_parse_page_range(b, 8, &r), DIA_OK);
    assert_false(r.empty);
    assert_int_equal(dexcom_rx_page_range_count(&r), 1);
    assert_int_equal(dexcom_rx_page_range_chunk(&r, 360, 4), 1);
    assert_int_equal(dexcom_rx_page_range_chunk(&r, 361, 4), 0);
    assert_int_equal(dexcom_rx_page_range_chunk(&r, 359, 4), 0);

    /* first == last == 0: one page too. */
    put32(b, 0);
    put32(b + 4, 0);
    assert_int_equal(dexcom_rx_parse_page_range(b, 8, &r), DIA_OK);
    assert_int_equal(dexcom_rx_page_range_count(&r), 1);
    assert_int_equal(dexcom_rx_page_range_chunk(&r, 0, 4), 1);

    /* Empty partition. */
    memset(b, 0xFF, 8);
    assert_int_equal(dexcom_rx_parse_page_range(b, 8, &r), DIA_OK);
    assert_true(r.empty);
    assert_int_equal(dexcom_rx_page_range_count(&r), 0);
    assert_int_equal(dexcom_rx_page_range_chunk(&r, 0xFFFFFFFFu, 4), 0);
    assert_int_equal(dexcom_rx_page_range_chunk(&r, 0, 4), 0);

    /* Walk a range in chunks of 4: 0x5DA..0x5C0 is refused (first > last);
     * 1242..1472 (capture) covers every page exactly once. */
    put32(b, 0x5DA);
    put32(b + 4, 0x5C0);
    assert_int_equal(dexcom_rx_parse_page_range(b, 8, &r), DIA_ERR_IMPLAUSIBLE);
    put32(b, 1242);
    put32(b + 4, 1472);
    assert_int_equal(dexcom_rx_parse_page_range(b, 8, &r), DIA_OK);
    uint64_t total = 0;
    uint32_t p;
    uint8_t c;
    unsigned requests = 0;
    for (p = r.first; (c = dexcom_rx_page_range_chunk(&r, p, 4)) > 0; p += c) {
        total += c;
        requests++;
    }
    assert_int_equal(total, 231);
    assert_int_equal(p, 1473);
    assert_int_equal(requests, 58);

    /* Near the top of the u32 space, no wrap-around. */
    put32(b, 0xFFFFFFFCu);
    put32(b + 4, 0xFFFFFFFEu);
    assert_int_equal(dexcom_rx_parse_page_range(b, 8, &r), DIA_OK);
    assert_int_equal(dexcom_rx_page_range_count(&r), 3);
    assert_int_equal(dexcom_rx_page_range_chunk(&r, 0xFFFFFFFCu, 4), 3);
    assert_int_equal(dexcom_rx_page_range_chunk(&r, 0xFFFFFFFFu, 4), 0);

    /* Half-empty answers are implausible; short payload is truncated. */
    put32(b, 0xFFFFFFFFu);
    put32(b + 4, 3);
    assert_int_equal(dexcom_rx_parse_page_range(b, 8, &r), DIA_ERR_IMPLAUSIBLE);
    put32(b, 3);
    put32(b + 4, 0xFFFFFFFFu);
    assert_int_equal(dexcom_rx_parse_page_range(b, 8, &r), DIA_ERR_IMPLAUSIBLE);
    assert_int_equal(dexcom_rx_parse_page_range(b, 7, &r), DIA_ERR_TRUNCATED);
}

static void test_time(void **state)
{
    (void)state;
    assert_int_equal(dexcom_rx_to_unix(0), 1230768000);
    assert_int_equal(dexcom_rx_to_unix(148358601), 1379126601);
    /* Host says 2013-09-14T02:43:51Z while the receiver says 02:43:21. */
    int64_t off = dexcom_rx_clock_offset(1379126631, 148358601);
    assert_int_equal(off, 30);
    assert_int_equal(dexcom_rx_system_to_utc(148358552, off), 1379126552 + 30);
    assert_int_equal(dexcom_rx_to_unix(0xFFFFFFFFu), 1230768000LL + 4294967295LL);
}

/* ------------------------------------------------------------------ */
/* Partition info and firmware header                                  */
/* ------------------------------------------------------------------ */

static const char g4_partition_xml[] =
    "<PartitionInfo SchemaVersion='1' PageHeaderVersion='1' PageDataLength='500'>"
    "<Partition Name='ManufacturingData' Id='0' RecordRevision='1' RecordLength='500'/>"
    "<Partition Name='FirmwareParameterData' Id='1' RecordRevision='1' RecordLength='500'/>"
    "<Partition Name='PCSoftwareParameter' Id='2' RecordRevision='1' RecordLength='500'/>"
    "<Partition Name='SensorData' Id='3' RecordRevision='1' RecordLength='20'/>"
    "<Partition Name='EGVData' Id='4' RecordRevision='2' RecordLength='13'/>"
    "<Partition Name='CalSet' Id='5' RecordRevision='2' RecordLength='148'/>"
    "<Partition Name='Aberration' Id='6' RecordRevision='1' RecordLength='15'/>"
    "<Partition Name='InsertionTime' Id='7' RecordRevision='1' RecordLength='15'/>"
    "<Partition Name='ReceiverLogData' Id='8' RecordRevision='1' RecordLength='20'/>"
    "<Partition Name='ReceiverErrorData' Id='9' RecordRevision='1' RecordLength='500'/>"
    "<Partition Name='MeterData' Id='10' RecordRevision='1' RecordLength='16'/>"
    "<Partition Name='UserEventData' Id='11' RecordRevision='1' RecordLength='20'/>"
    "<Partition Name='UserSettingData' Id='12' RecordRevision='3' RecordLength='48'/>"
    "</PartitionInfo>";

static struct dexcom_rx_partition_info pinfo; /* 9 KiB: keep it off the stack */

static void test_partition_info(void **state)
{
    (void)state;
    const uint8_t *x = (const uint8_t *)g4_partition_xml;
    size_t n = strlen(g4_partition_xml);
    assert_int_equal(dexcom_rx_partition_info_parse(x, n, &pinfo), DIA_OK);
    assert_int_equal(pinfo.count, 13);
    assert_int_equal(pinfo.skipped, 0);
    assert_int_equal(pinfo.page_data_length, 500);
    const struct dexcom_rx_partition *p = dexcom_rx_partition_find(&pinfo, 4);
    assert_non_null(p);
    assert_string_equal(p->name, "EGVData");
    assert_int_equal(p->revision, 2);
    assert_int_equal(p->record_length, 13);
    assert_int_equal(dexcom_rx_record_length(&pinfo, 5, 2), 148);
    assert_int_equal(dexcom_rx_record_length(&pinfo, 12, 3), 48);
    assert_null(dexcom_rx_partition_find(&pinfo, 18));

    /* Cut in the middle of a tag: the complete partitions before it count. */
    const char *cut = strstr(g4_partition_xml, "<Partition Name='CalSet'");
    assert_int_equal(
        dexcom_rx_partition_info_parse(x, (size_t)(cut - g4_partition_xml) + 20, &pinfo), DIA_OK);
    assert_int_equal(pinfo.count, 5);

    /* A touchscreen-style listing, double quotes and spaces, unknown ids. */
    const char *ts =
        "<?xml version=\"1.0\"?>\n<PartitionInfo PageDataLength = \"500\" >\n"
        "  <Partition Name=\"EGVData\" Id=\"4\" RecordRevision=\"5\" "
        "RecordLength=\"25\" />\n"
        "  <Partition Name=\"BackfilledEGVData\" Id=\"18\" RecordRevision=\"5\" "
        "RecordLength=\"25\"/>\n"
        "  <Partition Name=\"Bad\" Id=\"300\" RecordRevision=\"1\" RecordLength=\"9\"/>\n"
        "  <Partition Name=\"Tiny\" Id=\"14\" RecordRevision=\"1\" RecordLength=\"4\"/>\n"
        "</PartitionInfo>";
    assert_int_equal(dexcom_rx_partition_info_parse((const uint8_t *)ts, strlen(ts), &pinfo),
                     DIA_OK);
    assert_int_equal(pinfo.count, 2);
    assert_int_equal(pinfo.skipped, 2);
    assert_int_equal(dexcom_rx_record_length(&pinfo, 4, 5), 25);
    assert_int_equal(dexcom_rx_record_length(&pinfo, 18, 5), 25);
    /* Revision differs from the partition listing: built-in table. */
    assert_int_equal(dexcom_rx_record_length(&pinfo, 4, 2), 13);
    assert_int_equal(dexcom_rx_record_length(&pinfo, 4, 4), 23);
    assert_int_equal(dexcom_rx_record_length(NULL, 4, 9), 0);

    const char *other = "<PartitionInfo PageDataLength='400'><Partition Id='4' "
                        "RecordRevision='2' RecordLength='13'/></PartitionInfo>";
    assert_int_equal(dexcom_rx_partition_info_parse((const uint8_t *)other, strlen(other), &pinfo),
                     DIA_ERR_UNSUPPORTED);
    const char *none = "<PartitionInfo PageDataLength='500'></PartitionInfo>";
    assert_int_equal(dexcom_rx_partition_info_parse((const uint8_t *)none, strlen(none), &pinfo),
                     DIA_ERR_IMPLAUSIBLE);
    const char *junk = "<FirmwareHeader ProductId='G4Receiver'/>";
    assert_int_equal(dexcom_rx_partition_info_parse((const uint8_t *)junk, strlen(junk), &pinfo),
                     DIA_ERR_NOT_MINE);
}

static void test_firmware_header(void **state)
{
    (void)state;
    const char *fw = "<FirmwareHeader SchemaVersion='1' ApiVersion='2.2.0.0' "
                     "TestApiVersion='2.4.0.0' ProductId='G4Receiver' ProductName='Dexcom G4 "
                     "Receiver' SoftwareNumber='SW10050' FirmwareVersion='2.0.1.104' "
                     "PortVersion='4.6.4.45' RFVersion='1.0.0.27' DexBootVersion='3'/>";
    char v[32];
    const uint8_t *x = (const uint8_t *)fw;
    assert_int_equal(
        dexcom_rx_xml_attr(x, strlen(fw), "FirmwareHeader", "FirmwareVersion", v, sizeof v),
        DIA_OK);
    assert_string_equal(v, "2.0.1.104");
    assert_int_equal(
        dexcom_rx_xml_attr(x, strlen(fw), "FirmwareHeader", "ProductName", v, sizeof v), DIA_OK);
    assert_string_equal(v, "Dexcom G4 Receiver");
    assert_int_equal(dexcom_rx_xml_attr(x, strlen(fw), "FirmwareHeader", "Version", v, sizeof v),
                     DIA_ERR_NOT_MINE);
    assert_int_equal(dexcom_rx_xml_attr(x, strlen(fw), "FirmwareHeader", "ProductId", v, 5),
                     DIA_ERR_TRUNCATED);
    /* The value must not be read past len. */
    assert_int_equal(dexcom_rx_xml_attr(x, 60, "FirmwareHeader", "ApiVersion", v, sizeof v),
                     DIA_ERR_NOT_MINE);
}

/* ------------------------------------------------------------------ */
/* android-uploader pages and records                                  */
/* ------------------------------------------------------------------ */

static void check_research_record(const struct dexcom_rx_record *r, const json_t *want)
{
    assert_true(jbool(want, "crc_ok"));
    assert_int_equal(r->system_time, jint(want, "system_time"));
    assert_int_equal(r->display_time, jint(want, "display_time"));
    switch (r->kind) {
    case DEXCOM_RX_KIND_EGV:
        assert_int_equal(r->u.egv.cls, DEXCOM_RX_EGV_GLUCOSE);
        assert_int_equal(r->u.egv.mgdl, jint(want, "glucose"));
        assert_int_equal(r->u.egv.display_only, jbool(want, "display_only"));
        assert_int_equal(r->u.egv.trend, jint(want, "trend"));
        assert_int_equal(r->u.egv.noise, jint(want, "noise"));
        assert_int_equal(r->u.egv.measured_system_time, r->system_time);
        break;
    case DEXCOM_RX_KIND_METER:
        assert_int_equal(r->u.meter.mgdl, jint(want, "meter_glucose"));
        assert_int_equal(r->u.meter.meter_time, jint(want, "meter_time"));
        break;
    case DEXCOM_RX_KIND_SENSOR: {
        /* The research column is android-uploader's 16-bit reading; the
         * RSSI is its low byte, signed, and the high byte is byte 17. */
        long long raw = jint(want, "rssi");
        assert_int_equal(r->u.sensor.unfiltered, jint(want, "unfiltered"));
        assert_int_equal(r->u.sensor.filtered, jint(want, "filtered"));
        assert_int_equal(r->u.sensor.rssi, (int8_t)(uint8_t)(raw & 0xFF));
        assert_int_equal(r->u.sensor.raw_byte17, raw >> 8);
        assert_true(r->u.sensor.rssi < 0);
        break;
    }
    case DEXCOM_RX_KIND_CAL_SET:
        assert_true(r->u.cal.slope == jnum(want, "slope"));
        assert_true(r->u.cal.intercept == jnum(want, "intercept"));
        assert_true(r->u.cal.scale == jnum(want, "scale"));
        assert_true(r->u.cal.decay == jnum(want, "decay"));
        assert_int_equal(r->u.cal.n_sub, jint(want, "num_sub"));
        break;
    default:
        fail_msg("unexpected kind %d", r->kind);
    }
}

static void test_android_pages(void **state)
{
    (void)state;
    json_t *root = load_json("android-uploader-vectors.json");
    size_t i, k;
    json_t *v, *rec;
    unsigned records = 0;
    json_array_foreach(json_object_get(root, "pages_from_PageHeaderTest_comments"), i, v)
    {
        uint8_t page[DEXCOM_RX_PAGE_SIZE];
        assert_int_equal(unhex(jstr(v, "page_hex"), page, sizeof page), DEXCOM_RX_PAGE_SIZE);
        const json_t *h = json_object_get(v, "header_expected");
        struct dexcom_rx_page pg;
        assert_int_equal(dexcom_rx_page_open(page, sizeof page, 0, &pg), DIA_OK);
        assert_int_equal(pg.hdr.first_record_index, jint(h, "first_record_index"));
        assert_int_equal(pg.hdr.num_records, jint(h, "num_records"));
        assert_int_equal(pg.hdr.record_type, jint(h, "record_type"));
        assert_int_equal(pg.hdr.revision, jint(h, "revision"));
        assert_int_equal(pg.hdr.page_number, jint(h, "page_number"));
        const json_t *want = json_object_get(v, "records_decoded_by_research");
        assert_int_equal(json_array_size(want), pg.hdr.num_records);
        json_array_foreach(want, k, rec)
        {
            struct dexcom_rx_record r;
            assert_int_equal(dexcom_rx_page_record(&pg, (uint32_t)k, &r), DIA_OK);
            assert_int_equal(r.index, pg.hdr.first_record_index + k);
            check_research_record(&r, rec);
            records++;
        }
    }
    assert_int_equal(records, 28 + 4 + 25 + 2 + 1 + 38);

    /* Page-header vectors: good, one byte short, bad CRC. */
    const json_t *hv = json_object_get(root, "page_header_vectors");
    uint8_t b[DEXCOM_RX_PAGE_SIZE];
    struct dexcom_rx_page_header hdr;
    size_t n = unhex(jstr(hv, "pageHeader_hex"), b, sizeof b);
    assert_int_equal(dexcom_rx_page_header_parse(b, n, &hdr), DIA_OK);
    const json_t *e = json_object_get(hv, "expect");
    assert_int_equal(hdr.first_record_index, jint(e, "first_record_index"));
    assert_int_equal(hdr.num_records, jint(e, "num_records"));
    assert_int_equal(hdr.page_number, jint(e, "page_number"));
    assert_int_equal(hdr.reserved[0] | hdr.reserved[1] | hdr.reserved[2], 0);
    n = unhex(jstr(hv, "pageHeaderSmall_hex"), b, sizeof b);
    assert_int_equal(n, 27);
    assert_int_equal(dexcom_rx_page_header_parse(b, n, &hdr), DIA_ERR_TRUNCATED);
    n = unhex(jstr(hv, "pageHeaderBadCrc_hex"), b, sizeof b);
    assert_int_equal(dexcom_rx_page_header_parse(b, n, &hdr), DIA_ERR_CRC);
    json_decref(root);
}

/* android-uploader's record vectors lack the last CRC byte.  We check the
 * byte that is there against our CRC, complete the record, and decode. */
static void complete_record(const char *hex, uint8_t *rec, size_t *len)
{
    size_t n = unhex(hex, rec, 300);
    uint16_t crc = dexcom_rx_crc16(rec, n - 1);
    assert_int_equal(rec[n - 1], crc & 0xFF);
    rec[n] = (uint8_t)(crc >> 8);
    *len = n + 1;
}

static void test_android_records(void **state)
{
    (void)state;
    json_t *root = load_json("android-uploader-vectors.json");
    size_t i;
    json_t *v;
    uint8_t rec[320];
    size_t len;
    struct dexcom_rx_record r;

    json_array_foreach(json_object_get(root, "egv_record_vectors"), i, v)
    {
        complete_record(jstr(v, "hex_without_last_crc_byte"), rec, &len);
        assert_int_equal(dexcom_rx_record_decode(rec, len, 4, 2, &r), DIA_OK);
        const json_t *e = json_object_get(v, "expect");
        long long g = jint(e, "glucose");
        if (g < 13) {
            assert_int_equal(r.u.egv.cls, DEXCOM_RX_EGV_SPECIAL);
            assert_int_equal(r.u.egv.special, g);
            assert_int_equal(r.u.egv.mgdl, 0);
        } else {
            assert_int_equal(r.u.egv.cls, DEXCOM_RX_EGV_GLUCOSE);
            assert_int_equal(r.u.egv.mgdl, g);
        }
        assert_int_equal(r.u.egv.trend, jint(e, "trend"));
        assert_int_equal(r.u.egv.noise, jint(e, "noise"));
        assert_int_equal(r.system_time, jint(e, "system_time"));
        if (json_object_get(e, "trend_name")) {
            /* "NOT_COMPUTABLE" vs our "NotComputable" */
            const char *a = jstr(e, "trend_name"), *b = dexcom_rx_trend_name(r.u.egv.trend);
            for (; *a; a++) {
                if (*a == '_')
                    continue;
                assert_int_equal(*a | 0x20, *b | 0x20);
                b++;
            }
            assert_int_equal(*b, '\0');
        }
    }
    json_array_foreach(json_object_get(root, "meter_record_vectors"), i, v)
    {
        complete_record(jstr(v, "hex_without_last_crc_byte"), rec, &len);
        assert_int_equal(dexcom_rx_record_decode(rec, len, 10, 1, &r), DIA_OK);
        const json_t *e = json_object_get(v, "expect");
        assert_int_equal(r.u.meter.mgdl, jint(e, "meter_glucose"));
        assert_int_equal(r.u.meter.meter_time, jint(e, "meter_time"));
        assert_int_equal(r.system_time, jint(e, "system_time"));
        assert_int_equal(r.display_time, jint(e, "display_time"));
    }
    json_array_foreach(json_object_get(root, "sensor_record_vectors"), i, v)
    {
        complete_record(jstr(v, "hex_without_last_crc_byte"), rec, &len);
        assert_int_equal(dexcom_rx_record_decode(rec, len, 3, 1, &r), DIA_OK);
        const json_t *e = json_object_get(v, "expect");
        assert_int_equal(r.u.sensor.filtered, jint(e, "filtered"));
        assert_int_equal(r.u.sensor.unfiltered, jint(e, "unfiltered"));
        assert_int_equal(r.u.sensor.rssi, (int8_t)(uint8_t)jint(e, "rssi"));
        assert_int_equal(r.system_time, jint(e, "system_time"));
    }
    json_array_foreach(json_object_get(root, "cal_record_vectors"), i, v)
    {
        complete_record(jstr(v, "hex_without_last_crc_byte"), rec, &len);
        uint8_t rev = len == 249 ? 3 : 2;
        assert_int_equal(dexcom_rx_record_decode(rec, len, 5, rev, &r), DIA_OK);
        const json_t *e = json_object_get(v, "expect");
        assert_true(r.u.cal.slope == jnum(e, "slope"));
        assert_true(r.u.cal.intercept == jnum(e, "intercept"));
        assert_true(r.u.cal.scale == jnum(e, "scale"));
        assert_true(r.u.cal.decay == jnum(e, "decay"));
        assert_int_equal(r.u.cal.n_sub, jint(e, "num_subrecords"));
        assert_int_equal(r.system_time, jint(e, "system_time"));
        assert_int_equal(r.display_time, jint(e, "display_time"));
        /* The wrong revision is the wrong length: refused, not misread. */
        assert_int_equal(dexcom_rx_record_decode(rec, len, 5, rev == 3 ? 2 : 3, &r),
                         DIA_ERR_UNSUPPORTED);
    }

    /* SpecialValueTest: < 13 special, the others are readings. */
    const json_t *sv = json_object_get(root, "special_values");
    json_array_foreach(json_object_get(sv, "special"), i, v)
    {
        make_egv_g4(rec, 1000, 900, (uint16_t)json_integer_value(v), 0x48);
        assert_int_equal(dexcom_rx_record_decode(rec, 13, 4, 2, &r), DIA_OK);
        assert_int_equal(r.u.egv.cls, DEXCOM_RX_EGV_SPECIAL);
        assert_int_equal(r.u.egv.mgdl, 0);
        assert_int_equal(r.u.egv.special, json_integer_value(v));
    }
    json_array_foreach(json_object_get(sv, "not_special"), i, v)
    {
        make_egv_g4(rec, 1000, 900, (uint16_t)json_integer_value(v), 0x14);
        assert_int_equal(dexcom_rx_record_decode(rec, 13, 4, 2, &r), DIA_OK);
        if (json_integer_value(v) < 13) {
            /* android-uploader lists 11 as "not special" because it has no
             * name; ecc1 and we treat every value below 13 as a condition
             * code.  11 mg/dL is never a reading. */
            assert_int_equal(r.u.egv.cls, DEXCOM_RX_EGV_SPECIAL);
            assert_string_equal(dexcom_rx_special_name(r.u.egv.special), "unknown special value");
            continue;
        }
        assert_int_equal(r.u.egv.cls, DEXCOM_RX_EGV_GLUCOSE);
        assert_int_equal(r.u.egv.mgdl, json_integer_value(v));
    }
    assert_string_equal(dexcom_rx_special_name(5), "sensor not calibrated");
    assert_string_equal(dexcom_rx_special_display(5), "?NC");
    assert_string_equal(dexcom_rx_special_name(1), "sensor not active");
    assert_string_equal(dexcom_rx_special_display(10), "???");
    assert_string_equal(dexcom_rx_special_name(7), "unknown special value");
    json_decref(root);
}

/* ------------------------------------------------------------------ */
/* ecc1 pages                                                          */
/* ------------------------------------------------------------------ */

static void check_ecc1_page(const char *name)
{
    char rel[64];
    snprintf(rel, sizeof rel, "ecc1/%s.data.hex", name);
    char *hex = read_text(rel, NULL);
    uint8_t page[DEXCOM_RX_PAGE_SIZE];
    assert_int_equal(unhex(hex, page, sizeof page), DEXCOM_RX_PAGE_SIZE);
    free(hex);
    snprintf(rel, sizeof rel, "ecc1/%s.expected.json", name);
    json_t *want = load_json(rel);

    struct dexcom_rx_page pg;
    assert_int_equal(dexcom_rx_page_open(page, sizeof page, 0, &pg), DIA_OK);
    size_t n = json_array_size(want);
    assert_int_equal(pg.hdr.num_records, n);
    for (uint32_t i = 0; i < n; i++) {
        struct dexcom_rx_record r;
        assert_int_equal(dexcom_rx_page_record(&pg, i, &r), DIA_OK);
        /* ecc1 lists records newest first. */
        const json_t *e = json_array_get(want, n - 1 - i);
        const json_t *ts = json_object_get(e, "Timestamp");
        assert_time(jstr(ts, "SystemTime"), r.system_time, 'T');
        assert_time(jstr(ts, "DisplayTime"), r.display_time, 'T');
        const json_t *x;
        if ((x = json_object_get(e, "EGV"))) {
            assert_int_equal(r.kind, DEXCOM_RX_KIND_EGV);
            assert_int_equal(r.u.egv.cls, DEXCOM_RX_EGV_GLUCOSE);
            assert_int_equal(r.u.egv.mgdl, jint(x, "Glucose"));
            assert_int_equal(r.u.egv.display_only, jbool(x, "DisplayOnly"));
            assert_int_equal(r.u.egv.noise, jint(x, "Noise"));
            assert_int_equal(r.u.egv.trend, jint(x, "Trend"));
        } else if ((x = json_object_get(e, "Sensor"))) {
            assert_int_equal(r.kind, DEXCOM_RX_KIND_SENSOR);
            assert_int_equal(r.u.sensor.unfiltered, jint(x, "Unfiltered"));
            assert_int_equal(r.u.sensor.filtered, jint(x, "Filtered"));
            assert_int_equal(r.u.sensor.rssi, jint(x, "RSSI"));
            assert_int_equal(r.u.sensor.raw_byte17, jint(x, "Unknown"));
        } else if ((x = json_object_get(e, "Calibration"))) {
            assert_int_equal(r.kind, DEXCOM_RX_KIND_CAL_SET);
            assert_true(r.u.cal.slope == jnum(x, "Slope"));
            assert_true(r.u.cal.intercept == jnum(x, "Intercept"));
            assert_true(r.u.cal.scale == jnum(x, "Scale"));
            assert_true(r.u.cal.decay == jnum(x, "Decay"));
            const json_t *data = json_object_get(x, "Data");
            assert_int_equal(r.u.cal.n_sub, json_array_size(data));
            /* Sub-record times are system-domain; ecc1 shows them shifted
             * by the record's display − system offset. */
            uint32_t shift = r.display_time - r.system_time;
            for (unsigned k = 0; k < r.u.cal.n_sub; k++) {
                const json_t *d = json_array_get(data, k);
                assert_int_equal(r.u.cal.sub[k].meter_mgdl, jint(d, "Glucose"));
                assert_int_equal(r.u.cal.sub[k].sensor_raw, jint(d, "Raw"));
                assert_time(jstr(d, "TimeEntered"), r.u.cal.sub[k].entered_time + shift, 'T');
                assert_time(jstr(d, "TimeApplied"), r.u.cal.sub[k].applied_time + shift, 'T');
            }
        } else if ((x = json_object_get(e, "XML"))) {
            assert_int_equal(r.kind, DEXCOM_RX_KIND_XML);
            const char *keys[] = {"SerialNumber", "HardwarePartNumber", "HardwareRevision",
                                  "HardwareId", "DateTimeCreated"};
            for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
                char val[128];
                assert_int_equal(dexcom_rx_xml_attr(r.u.xml.text, r.u.xml.len,
                                                    "ManufacturingParameters", keys[k], val,
                                                    sizeof val),
                                 DIA_OK);
                assert_string_equal(val, jstr(x, keys[k]));
            }
        } else {
            fail_msg("%s: unknown expected record", name);
        }
    }
    json_decref(want);
}

static void test_ecc1_pages(void **state)
{
    (void)state;
    const char *names[] = {"0.0", "3.469", "4.312", "5.1432", "5.1432-1", "5.252", "5.845"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        check_ecc1_page(names[i]);
}

/* ------------------------------------------------------------------ */
/* Synthetic G6 pages                                                  */
/* ------------------------------------------------------------------ */

static void test_g6_synthetic(void **state)
{
    (void)state;
    json_t *root = load_json("g6-synthetic-pages.SYNTHETIC.json");
    size_t i, k;
    json_t *v, *e;
    const json_t *replies = json_object_get(root, "read_database_pages_reply_hex");
    json_array_foreach(json_object_get(root, "pages"), i, v)
    {
        uint8_t page[DEXCOM_RX_PAGE_SIZE];
        assert_int_equal(unhex(jstr(v, "hex"), page, sizeof page), DEXCOM_RX_PAGE_SIZE);

        /* The framed reply carries exactly this page. */
        static uint8_t reply[DEXCOM_RX_FRAME_MAX];
        size_t rn = unhex(jstr(replies, jstr(v, "name")), reply, sizeof reply);
        struct dexcom_rx_frame f;
        uint8_t resp;
        assert_int_equal(dexcom_rx_reply_parse(reply, rn, &f, &resp), DIA_OK);
        assert_int_equal(dexcom_rx_pages_in_payload(f.payload_len), 1);
        assert_memory_equal(f.payload, page, DEXCOM_RX_PAGE_SIZE);

        struct dexcom_rx_page pg;
        assert_int_equal(dexcom_rx_page_open(page, sizeof page, 25, &pg), DIA_OK);
        assert_int_equal(pg.hdr.record_type, jint(v, "record_type"));
        assert_int_equal(pg.hdr.revision, jint(v, "revision"));
        assert_int_equal(pg.hdr.page_number, jint(v, "page_number"));
        assert_int_equal(pg.hdr.first_record_index, jint(v, "first_record_index"));
        const json_t *recs = json_object_get(v, "records");
        assert_int_equal(pg.hdr.num_records, json_array_size(recs));
        json_array_foreach(recs, k, e)
        {
            struct dexcom_rx_record r;
            assert_int_equal(dexcom_rx_page_record(&pg, (uint32_t)k, &r), DIA_OK);
            assert_true(jbool(e, "crc_ok"));
            assert_int_equal(r.kind, DEXCOM_RX_KIND_EGV);
            const struct dexcom_rx_egv *g = &r.u.egv;
            assert_int_equal(r.system_time, jint(e, "system_time"));
            assert_int_equal(r.display_time, jint(e, "display_time"));
            long long glucose = jint(e, "glucose");
            if (glucose < 13) {
                assert_int_equal(g->cls, DEXCOM_RX_EGV_SPECIAL);
                assert_int_equal(g->special, glucose);
                assert_int_equal(g->mgdl, 0);
            } else {
                assert_int_equal(g->cls, DEXCOM_RX_EGV_GLUCOSE);
                assert_int_equal(g->mgdl, glucose);
            }
            assert_int_equal(g->raw_glucose & 0xFC00, strtoul(jstr(e, "flags_hex"), NULL, 16));
            assert_int_equal(g->display_only, jbool(e, "display_only"));
            assert_int_equal(g->backfilled, jbool(e, "backfilled"));
            assert_true(g->has_g5_fields);
            assert_int_equal(g->egv_system_time, jint(e, "egv_system_time"));
            /* Revision ≥ 4: measured at offset 10, not at system time. */
            assert_int_equal(g->measured_system_time, jint(e, "egv_system_time"));
            assert_int_equal(dexcom_rx_to_unix(g->measured_system_time), jint(e, "egv_unix"));
            assert_int_equal(g->transmitter_time, jint(e, "transmitter_time"));
            assert_int_equal(g->raw_filtered_rate, jint(e, "filtered_rate"));
            assert_int_equal(g->trend, jint(e, "trend"));
            assert_int_equal(g->noise, jint(e, "noise"));
            assert_int_equal(g->algorithm_state, jint(e, "algorithm_state"));
            assert_true(g->has_predicted);
            assert_int_equal(g->raw_predicted & 0x3FF, jint(e, "predicted_glucose"));
            assert_int_equal(g->raw_predicted & 0xFC00,
                             strtoul(jstr(e, "predicted_flags_hex"), NULL, 16));
            long long pred = jint(e, "predicted_glucose");
            assert_int_equal(g->predicted_available, pred > 13);
            if (pred > 13)
                assert_int_equal(g->predicted_mgdl, pred);
            if (g->backfilled)
                assert_true(g->measured_system_time < r.system_time);
        }
        /* Without a record length, the built-in table agrees. */
        assert_int_equal(dexcom_rx_page_open(page, sizeof page, 0, &pg), DIA_OK);
        assert_int_equal(pg.record_length, 25);
    }

    const json_t *ranges = json_object_get(root, "read_database_page_range_reply_hex");
    struct {
        const char *key;
        uint64_t count;
        uint32_t first;
    } want[] = {{"EGV_DATA(4)", 6, 0x163}, {"BACKFILLED_EGV(18)", 3, 0}, {"empty_partition", 0, 0}};
    for (size_t j = 0; j < 3; j++) {
        uint8_t b[32];
        size_t n = unhex(jstr(ranges, want[j].key), b, sizeof b);
        struct dexcom_rx_frame f;
        uint8_t resp;
        struct dexcom_rx_page_range r;
        assert_int_equal(dexcom_rx_reply_parse(b, n, &f, &resp), DIA_OK);
        assert_int_equal(dexcom_rx_parse_page_range(f.payload, f.payload_len, &r), DIA_OK);
        assert_int_equal(dexcom_rx_page_range_count(&r), want[j].count);
        if (want[j].count)
            assert_int_equal(r.first, want[j].first);
    }
    json_decref(root);
}

/* ------------------------------------------------------------------ */
/* Page and record negatives, other layouts                            */
/* ------------------------------------------------------------------ */

static void test_page_negative(void **state)
{
    (void)state;
    uint8_t recs[3 * 13];
    make_egv_g4(recs, 1000, 900, 120, 0x14);
    make_egv_g4(recs + 13, 1300, 1200, 125, 0x14);
    make_egv_g4(recs + 26, 1600, 1500, 130, 0x14);
    uint8_t page[DEXCOM_RX_PAGE_SIZE];
    make_page(page, 4, 2, 7, 100, recs, 13, 3);
    struct dexcom_rx_page pg;
    struct dexcom_rx_record r;
    assert_int_equal(dexcom_rx_page_open(page, sizeof page, 13, &pg), DIA_OK);

    /* Truncated page and short header. */
    assert_int_equal(dexcom_rx_page_open(page, sizeof page - 1, 13, &pg), DIA_ERR_TRUNCATED);
    assert_int_equal(dexcom_rx_page_header_parse(page, 20, &pg.hdr), DIA_ERR_TRUNCATED);

    /* Corrupt header CRC. */
    page[5] ^= 0x10;
    assert_int_equal(dexcom_rx_page_open(page, sizeof page, 13, &pg), DIA_ERR_CRC);
    page[5] ^= 0x10;

    /* More records than fit: implausible even with a good header CRC. */
    put32(page + 4, 39);
    seal(page, DEXCOM_RX_PAGE_HEADER_SIZE);
    assert_int_equal(dexcom_rx_page_open(page, sizeof page, 13, &pg), DIA_ERR_IMPLAUSIBLE);
    put32(page + 4, 38);
    seal(page, DEXCOM_RX_PAGE_HEADER_SIZE);
    assert_int_equal(dexcom_rx_page_open(page, sizeof page, 13, &pg), DIA_OK);
    put32(page + 4, 3);
    seal(page, DEXCOM_RX_PAGE_HEADER_SIZE);

    /* Unknown revision, no record length: unsupported. */
    page[9] = 9;
    seal(page, DEXCOM_RX_PAGE_HEADER_SIZE);
    assert_int_equal(dexcom_rx_page_open(page, sizeof page, 0, &pg), DIA_ERR_UNSUPPORTED);
    assert_int_equal(dexcom_rx_page_open(page, sizeof page, 13, &pg), DIA_OK);
    assert_int_equal(dexcom_rx_page_record(&pg, 0, &r), DIA_ERR_UNSUPPORTED);
    assert_int_equal(r.kind, DEXCOM_RX_KIND_RAW);
    assert_int_equal(r.system_time, 1000);
    page[9] = 2;
    seal(page, DEXCOM_RX_PAGE_HEADER_SIZE);
    assert_int_equal(dexcom_rx_page_open(page, sizeof page, 9, &pg), DIA_ERR_IMPLAUSIBLE);

    /* One corrupt record: only that one is rejected. */
    assert_int_equal(dexcom_rx_page_open(page, sizeof page, 13, &pg), DIA_OK);
    page[28 + 13 + 8] ^= 0x01; /* glucose of record 1 */
    assert_int_equal(dexcom_rx_page_record(&pg, 0, &r), DIA_OK);
    assert_int_equal(r.u.egv.mgdl, 120);
    assert_int_equal(dexcom_rx_page_record(&pg, 1, &r), DIA_ERR_CRC);
    assert_int_equal(r.kind, DEXCOM_RX_KIND_RAW);
    assert_int_equal(r.u.egv.mgdl, 0);
    assert_int_equal(r.index, 101);
    assert_int_equal(dexcom_rx_page_record(&pg, 2, &r), DIA_OK);
    assert_int_equal(r.u.egv.mgdl, 130);
    assert_int_equal(r.index, 102);
    assert_int_equal(dexcom_rx_page_record(&pg, 3, &r), DIA_ERR_ARG);

    /* A payload that is not whole pages. */
    assert_int_equal(dexcom_rx_pages_in_payload(4 * 528), 4);
    assert_int_equal(dexcom_rx_pages_in_payload(4 * 528 - 1), DIA_ERR_TRUNCATED);
    assert_int_equal(dexcom_rx_pages_in_payload(0), DIA_ERR_TRUNCATED);
}

static void test_implausible_records(void **state)
{
    (void)state;
    uint8_t rec[64];
    struct dexcom_rx_record r;

    /* Glucose above 600: refused, nothing published. */
    make_egv_g4(rec, 1000, 900, 700, 0x14);
    assert_int_equal(dexcom_rx_record_decode(rec, 13, 4, 2, &r), DIA_ERR_IMPLAUSIBLE);
    assert_int_equal(r.kind, DEXCOM_RX_KIND_RAW);
    assert_int_equal(r.u.egv.mgdl, 0);
    /* 600 is the last accepted value; 401 and 39 carry the range flags. */
    make_egv_g4(rec, 1000, 900, 600, 0x14);
    assert_int_equal(dexcom_rx_record_decode(rec, 13, 4, 2, &r), DIA_OK);
    assert_true(r.u.egv.above_range);
    make_egv_g4(rec, 1000, 900, 39, 0x14);
    assert_int_equal(dexcom_rx_record_decode(rec, 13, 4, 2, &r), DIA_OK);
    assert_true(r.u.egv.below_range);
    assert_int_equal(r.u.egv.mgdl, 39);
    /* Undocumented flag bits. */
    make_egv_g4(rec, 1000, 900, 0x1000 | 120, 0x14);
    assert_int_equal(dexcom_rx_record_decode(rec, 13, 4, 2, &r), DIA_ERR_IMPLAUSIBLE);
    /* Display-only is decoded and flagged (the caller skips it). */
    make_egv_g4(rec, 1000, 900, 0x8000 | 120, 0x14);
    assert_int_equal(dexcom_rx_record_decode(rec, 13, 4, 2, &r), DIA_OK);
    assert_true(r.u.egv.display_only);
    assert_int_equal(r.u.egv.mgdl, 120);

    /* G5 EGV (rev 4, 23 bytes) with the measured time erased. */
    memset(rec, 0, sizeof rec);
    put32(rec, 400000000);
    put32(rec + 4, 399996400);
    put16(rec + 8, 0x2000 | 110);
    put32(rec + 10, 399999400);
    put32(rec + 14, 999400);
    rec[19] = 0x14;
    rec[20] = 6;
    seal(rec, 23);
    assert_int_equal(dexcom_rx_record_decode(rec, 23, 4, 4, &r), DIA_OK);
    assert_true(r.u.egv.backfilled);
    assert_false(r.u.egv.has_predicted);
    assert_int_equal(r.u.egv.measured_system_time, 399999400);
    assert_int_equal(r.u.egv.mgdl, 110);
    /* Backfilled partition with 23-byte records uses the same layout. */
    assert_int_equal(dexcom_rx_record_decode(rec, 23, 18, 4, &r), DIA_OK);
    assert_int_equal(r.u.egv.measured_system_time, 399999400);
    put32(rec + 10, 0xFFFFFFFFu);
    seal(rec, 23);
    assert_int_equal(dexcom_rx_record_decode(rec, 23, 4, 4, &r), DIA_ERR_IMPLAUSIBLE);
    assert_string_equal(r.why, "no measurement time");
    /* Wrong length for the revision. */
    assert_int_equal(dexcom_rx_record_decode(rec, 13, 4, 4, &r), DIA_ERR_CRC);
    seal(rec, 13);
    assert_int_equal(dexcom_rx_record_decode(rec, 13, 4, 4, &r), DIA_ERR_UNSUPPORTED);

    /* Meter glucose 0 and 700. */
    memset(rec, 0, sizeof rec);
    put32(rec, 1000);
    put32(rec + 4, 900);
    put16(rec + 8, 0);
    put32(rec + 10, 990);
    seal(rec, 16);
    assert_int_equal(dexcom_rx_record_decode(rec, 16, 10, 1, &r), DIA_ERR_IMPLAUSIBLE);
    put16(rec + 8, 700);
    seal(rec, 16);
    assert_int_equal(dexcom_rx_record_decode(rec, 16, 10, 1, &r), DIA_ERR_IMPLAUSIBLE);
    /* Meter rev 3 (G5/G6, 21 bytes). */
    put16(rec + 8, 104);
    rec[10] = 1;
    put32(rec + 11, 995);
    put32(rec + 15, 77777);
    seal(rec, 21);
    assert_int_equal(dexcom_rx_record_decode(rec, 21, 10, 3, &r), DIA_OK);
    assert_int_equal(r.u.meter.mgdl, 104);
    assert_int_equal(r.u.meter.entry_type, 1);
    assert_int_equal(r.u.meter.meter_time, 995);
    assert_int_equal(r.u.meter.meter_transmitter_time, 77777);

    /* CalSet claiming more sub-records than fit, and a NaN slope. */
    uint8_t cal[148];
    memset(cal, 0, sizeof cal);
    cal[43] = 7;
    seal(cal, sizeof cal);
    assert_int_equal(dexcom_rx_record_decode(cal, 148, 5, 2, &r), DIA_ERR_IMPLAUSIBLE);
    cal[43] = 6;
    seal(cal, sizeof cal);
    assert_int_equal(dexcom_rx_record_decode(cal, 148, 5, 2, &r), DIA_OK);
    memset(cal + 8, 0xFF, 8);
    seal(cal, sizeof cal);
    assert_int_equal(dexcom_rx_record_decode(cal, 148, 5, 2, &r), DIA_ERR_IMPLAUSIBLE);

    /* Record shorter than two times and a CRC. */
    assert_int_equal(dexcom_rx_record_decode(rec, 9, 4, 2, &r), DIA_ERR_TRUNCATED);
}

/*
 * A revision ≥ 4 measurement time must lie before its record was written
 * (150 s of slack) and not more than 24 h before (dexcom_rx.h says why).
 * Written at 400000000; a 25-byte (rev 5) and a 23-byte (rev 4) record, in
 * the EGV and the BACKFILLED_EGV partition.
 */
static void test_measurement_time_limits(void **state)
{
    (void)state;
    static const struct {
        int64_t lead; /* measured − written, s */
        int rc;
        const char *why;
    } cases[] = {
        {0, DIA_OK, NULL},
        {-600, DIA_OK, NULL}, /* a backfill 10 minutes late */
        {DEXCOM_RX_MEASURED_AFTER_WRITE_MAX_S, DIA_OK, NULL},
        {DEXCOM_RX_MEASURED_AFTER_WRITE_MAX_S + 1, DIA_ERR_IMPLAUSIBLE,
         "measured after it was written"},
        {3600, DIA_ERR_IMPLAUSIBLE, "measured after it was written"},
        {-DEXCOM_RX_MEASURED_BEFORE_WRITE_MAX_S, DIA_OK, NULL},
        {-DEXCOM_RX_MEASURED_BEFORE_WRITE_MAX_S - 1, DIA_ERR_IMPLAUSIBLE,
         "measured more than 24 h before it was written"},
        {-399999999, DIA_ERR_IMPLAUSIBLE, "measured more than 24 h before it was written"},
    };
    assert_int_equal(DEXCOM_RX_MEASURED_AFTER_WRITE_MAX_S, 150);
    assert_int_equal(DEXCOM_RX_MEASURED_BEFORE_WRITE_MAX_S, 86400);
    static const struct {
        uint8_t type, rev;
        size_t len;
    } layouts[] = {{4, 5, 25}, {4, 4, 23}, {18, 5, 25}, {18, 1, 23}};
    for (size_t l = 0; l < sizeof layouts / sizeof layouts[0]; l++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            uint8_t rec[25] = {0};
            struct dexcom_rx_record r;
            put32(rec, 400000000);
            put32(rec + 4, 399996400);
            put16(rec + 8, 120);
            put32(rec + 10, (uint32_t)(400000000 + cases[i].lead));
            rec[19] = 0x14;
            if (layouts[l].len == 25)
                put16(rec + 21, 125);
            seal(rec, layouts[l].len);
            int rc =
                dexcom_rx_record_decode(rec, layouts[l].len, layouts[l].type, layouts[l].rev, &r);
            if (rc != cases[i].rc)
                fail_msg("type %u rev %u, measured %+lld s: %s, want %s", layouts[l].type,
                         layouts[l].rev, (long long)cases[i].lead, dia_errname(rc),
                         dia_errname(cases[i].rc));
            if (cases[i].why) {
                assert_non_null(r.why);
                assert_string_equal(r.why, cases[i].why);
                /* refused: nothing left for a careless caller to publish */
                assert_int_equal(r.kind, DEXCOM_RX_KIND_RAW);
                assert_int_equal(r.u.egv.mgdl, 0);
                /* the times stay, for the log */
                assert_int_equal(r.system_time, 400000000);
            } else {
                assert_null(r.why);
                assert_int_equal(r.u.egv.measured_system_time, 400000000 + cases[i].lead);
                assert_int_equal(r.u.egv.mgdl, 120);
            }
        }
    }
    /* A G4 record has no measurement time of its own: never refused for it. */
    uint8_t g4[13];
    struct dexcom_rx_record r;
    make_egv_g4(g4, 400000000, 399996400, 120, 0x14);
    assert_int_equal(dexcom_rx_record_decode(g4, 13, 4, 2, &r), DIA_OK);
    assert_int_equal(r.u.egv.measured_system_time, 400000000);
}

static void test_other_layouts(void **state)
{
    (void)state;
    uint8_t rec[64];
    struct dexcom_rx_record r;

    /* Insertion rev 2 (25 bytes): state, number, transmitter id. */
    memset(rec, 0, sizeof rec);
    put32(rec, 5000);
    put32(rec + 4, 4000);
    put32(rec + 8, 4990);
    rec[12] = 7;
    put32(rec + 13, 42);
    memcpy(rec + 17, "8G1234", 6);
    seal(rec, 25);
    assert_int_equal(dexcom_rx_record_decode(rec, 25, 7, 2, &r), DIA_OK);
    assert_int_equal(r.kind, DEXCOM_RX_KIND_INSERTION);
    assert_true(r.u.insertion.has_insertion_time);
    assert_int_equal(r.u.insertion.session_state, 7);
    assert_string_equal(dexcom_rx_session_state_name(7), "STARTED");
    assert_int_equal(r.u.insertion.number, 42);
    assert_string_equal(r.u.insertion.transmitter_id, "8G1234");

    /* User event: insulin 3.5 U. */
    memset(rec, 0, sizeof rec);
    put32(rec, 148158683);
    put32(rec + 4, 148133521);
    rec[8] = 2;
    put32(rec + 10, 148133460);
    put32(rec + 14, 350);
    seal(rec, 20);
    assert_int_equal(dexcom_rx_record_decode(rec, 20, 11, 1, &r), DIA_OK);
    assert_int_equal(r.kind, DEXCOM_RX_KIND_USER_EVENT);
    assert_int_equal(r.u.event.value, 350);
    assert_string_equal(dexcom_rx_event_type_name(r.u.event.type), "Insulin");
    assert_string_equal(dexcom_rx_event_subtype_name(3, 6), "Alcohol");
    assert_string_equal(dexcom_rx_event_subtype_name(4, 2), "Medium");

    /* User settings: the clock-change log.  G4 rev 3 (48 bytes). */
    memset(rec, 0, sizeof rec);
    put32(rec, 148358601);
    put32(rec + 4, 148333440);
    put32(rec + 8, 126467628);
    put32(rec + 12, (uint32_t)-25161);
    put32(rec + 16, 0x12345);
    put32(rec + 20, 0x32);
    seal(rec, 48);
    assert_int_equal(dexcom_rx_record_decode(rec, 48, 12, 3, &r), DIA_OK);
    assert_int_equal(r.kind, DEXCOM_RX_KIND_USER_SETTINGS);
    assert_int_equal(r.u.settings.system_time_offset, 126467628);
    assert_int_equal(r.u.settings.display_time_offset, -25161);
    assert_int_equal(r.u.settings.raw_transmitter, 0x12345);
    assert_int_equal(r.u.settings.enable_flags, 0x32);
    /* G6 rev 6 (60 bytes). */
    memset(rec, 0, sizeof rec);
    put32(rec + 8, 1000);
    put32(rec + 12, (uint32_t)-3600);
    memcpy(rec + 16, "8G1234", 6);
    put32(rec + 22, 0x1F2);
    seal(rec, 60);
    assert_int_equal(dexcom_rx_record_decode(rec, 60, 12, 6, &r), DIA_OK);
    assert_int_equal(r.u.settings.display_time_offset, -3600);
    assert_string_equal(r.u.settings.transmitter_id, "8G1234");
    assert_int_equal(r.u.settings.enable_flags, 0x1F2);
    assert_int_equal(dexcom_rx_record_decode(rec, 60, 12, 5, &r), DIA_ERR_UNSUPPORTED);

    /* Receiver log (type 8): times only, body raw. */
    memset(rec, 0xAB, sizeof rec);
    put32(rec, 10);
    put32(rec + 4, 20);
    seal(rec, 20);
    assert_int_equal(dexcom_rx_record_decode(rec, 20, 8, 1, &r), DIA_OK);
    assert_int_equal(r.kind, DEXCOM_RX_KIND_RAW);
    assert_int_equal(r.raw_len, 20);
    assert_int_equal(r.display_time, 20);
    /* An unknown partition: raw decode still reads the times. */
    assert_int_equal(dexcom_rx_record_decode(rec, 20, 15, 1, &r), DIA_ERR_UNSUPPORTED);
    assert_int_equal(dexcom_rx_record_decode_raw(rec, 20, 15, 1, &r), DIA_OK);
    assert_int_equal(r.system_time, 10);

    assert_string_equal(dexcom_rx_trend_name(4), "Flat");
    assert_string_equal(dexcom_rx_trend_name(9), "RateOutOfRange");
    assert_string_equal(dexcom_rx_trend_name(12), "Unknown");
    assert_string_equal(dexcom_rx_noise_name(5), "NotComputed");
    assert_string_equal(dexcom_rx_record_type_name(18), "BACKFILLED_EGV");
    assert_string_equal(dexcom_rx_record_type_name(4), "EGV_DATA");
}

/* ------------------------------------------------------------------ */
/* The G4 Studio capture, end to end                                   */
/* ------------------------------------------------------------------ */

struct capture_counts {
    unsigned frames_in, frames_out, pages, records, decoded, egv, sensor, meter, event, insertion,
        cal;
};

/* Cursor into one expected list, compared in order. */
struct expect_list {
    const json_t *list;
    size_t next;
};

static const json_t *expect_next(struct expect_list *l, uint32_t page, uint32_t sys)
{
    const json_t *e = json_array_get(l->list, l->next++);
    if (!e)
        fail_msg("more records than expected");
    assert_int_equal(jint(e, "page"), page);
    assert_int_equal(jint(e, "system_time"), sys);
    assert_true(jbool(e, "crc_ok"));
    return e;
}

/* Our decoded glucose readings, for the Studio comparison. */
struct reading {
    uint32_t sys, disp;
    uint16_t mgdl;
    bool used;
};

static void test_g4_capture(void **state)
{
    (void)state;
    json_t *expect = load_json("g4-studio-capture-expected.json");
    const json_t *recs = json_object_get(expect, "records");
    struct expect_list l_egv = {json_object_get(recs, "egv"), 0};
    struct expect_list l_sensor = {json_object_get(recs, "sensor"), 0};
    struct expect_list l_meter = {json_object_get(recs, "meter"), 0};
    struct expect_list l_event = {json_object_get(recs, "user_event"), 0};
    struct expect_list l_ins = {json_object_get(recs, "insertion"), 0};
    struct expect_list l_cal = {json_object_get(recs, "cal_set"), 0};
    const json_t *exp_pages = json_object_get(expect, "pages");

    static struct reading readings[400];
    unsigned n_readings = 0;
    static struct reading meters[64];
    unsigned n_meters = 0;
    static struct reading events[64];
    unsigned n_events = 0;

    char *csv = read_text("g4-studio-capture-alexandre-normand.csv", NULL);
    static struct dexcom_rx_stream s;
    dexcom_rx_stream_init(&s);
    static uint8_t line[8192];
    struct capture_counts c = {0};
    struct dexcom_rx_frame req = {0};
    static uint8_t req_buf[64];
    bool have_pi = false;
    unsigned chunk_seed = 1;

    char *save = NULL;
    for (char *ln = strtok_r(csv, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        bool in = strncmp(ln, "in,", 3) == 0;
        assert_true(in || strncmp(ln, "out,", 4) == 0);
        size_t n = unhex(strchr(ln, ',') + 1, line, sizeof line);
        if (!in) {
            /* Requests: parse and rebuild the ones we can build. */
            memcpy(req_buf, line, n);
            assert_int_equal(dexcom_rx_frame_parse(req_buf, n, &req), DIA_OK);
            assert_int_equal(req.frame_len, n);
            if (dexcom_rx_cmd_is_allowed(req.code)) {
                uint8_t again[DEXCOM_RX_REQUEST_MAX];
                assert_int_equal(
                    dexcom_rx_request(again, sizeof again, req.code, req.payload, req.payload_len),
                    (int)n);
                assert_memory_equal(again, req_buf, n);
            }
            c.frames_out++;
            continue;
        }
        /* Replies go through the stream recognizer in uneven chunks. */
        size_t pos = 0;
        unsigned got = 0;
        while (pos < n) {
            chunk_seed = chunk_seed * 1103515245u + 12345u;
            size_t chunk = 1 + (chunk_seed >> 16) % 97;
            if (chunk > n - pos)
                chunk = n - pos;
            const uint8_t *p = line + pos;
            size_t left = chunk;
            pos += chunk;
            for (;;) {
                size_t used;
                struct dexcom_rx_frame f;
                int rc = dexcom_rx_stream_feed(&s, p, left, &used, &f);
                p += used;
                left -= used;
                if (rc != 1)
                    break;
                got++;
                c.frames_in++;
                uint8_t resp;
                assert_int_equal(dexcom_rx_reply_check(&f, &resp), DIA_OK);
                if (req.code == DEXCOM_RX_CMD_READ_PARTITION_INFO) {
                    assert_int_equal(
                        dexcom_rx_partition_info_parse(f.payload, f.payload_len, &pinfo), DIA_OK);
                    assert_int_equal(pinfo.count, 13);
                    have_pi = true;
                }
                if (req.code != DEXCOM_RX_CMD_READ_PAGES)
                    continue;
                int npages = dexcom_rx_pages_in_payload(f.payload_len);
                assert_int_equal(npages, req.payload[5]);
                for (int pi = 0; pi < npages; pi++) {
                    const uint8_t *pb = f.payload + (size_t)pi * DEXCOM_RX_PAGE_SIZE;
                    struct dexcom_rx_page_header h;
                    assert_int_equal(dexcom_rx_page_header_parse(pb, DEXCOM_RX_PAGE_SIZE, &h),
                                     DIA_OK);
                    assert_int_equal(h.record_type, req.payload[0]);
                    const json_t *ep = json_array_get(exp_pages, c.pages);
                    assert_int_equal(h.page_number, jint(ep, "page"));
                    assert_int_equal(h.revision, jint(ep, "revision"));
                    assert_int_equal(h.num_records, jint(ep, "num_records"));
                    assert_int_equal(h.first_record_index, jint(ep, "first_record_index"));
                    c.pages++;
                    uint16_t rl =
                        dexcom_rx_record_length(have_pi ? &pinfo : NULL, h.record_type, h.revision);
                    struct dexcom_rx_page pg;
                    assert_int_equal(dexcom_rx_page_open(pb, DEXCOM_RX_PAGE_SIZE, rl, &pg), DIA_OK);
                    for (uint32_t i = 0; i < pg.hdr.num_records; i++) {
                        struct dexcom_rx_record r;
                        assert_int_equal(dexcom_rx_page_record(&pg, i, &r), DIA_OK);
                        c.records++;
                        if (r.kind != DEXCOM_RX_KIND_RAW && r.kind != DEXCOM_RX_KIND_XML)
                            c.decoded++;
                        const json_t *e;
                        char tmp[32];
                        switch (r.kind) {
                        case DEXCOM_RX_KIND_EGV:
                            e = expect_next(&l_egv, h.page_number, r.system_time);
                            c.egv++;
                            assert_int_equal(r.display_time, jint(e, "display_time"));
                            iso(r.system_time, 'T', tmp);
                            assert_string_equal(tmp, jstr(e, "system_iso"));
                            assert_int_equal(r.u.egv.raw_glucose & 0x3FF, jint(e, "glucose"));
                            assert_int_equal(r.u.egv.display_only, jbool(e, "display_only"));
                            assert_int_equal(r.u.egv.trend, jint(e, "trend"));
                            assert_int_equal(r.u.egv.noise, jint(e, "noise"));
                            if (jint(e, "glucose") < 13) {
                                assert_int_equal(r.u.egv.cls, DEXCOM_RX_EGV_SPECIAL);
                            } else {
                                assert_int_equal(r.u.egv.cls, DEXCOM_RX_EGV_GLUCOSE);
                                if (!r.u.egv.display_only) {
                                    assert_true(n_readings < 400);
                                    readings[n_readings++] =
                                        (struct reading){r.u.egv.measured_system_time,
                                                         r.display_time, r.u.egv.mgdl, false};
                                }
                            }
                            break;
                        case DEXCOM_RX_KIND_SENSOR:
                            e = expect_next(&l_sensor, h.page_number, r.system_time);
                            c.sensor++;
                            assert_int_equal(r.u.sensor.unfiltered, jint(e, "unfiltered"));
                            assert_int_equal(r.u.sensor.filtered, jint(e, "filtered"));
                            assert_int_equal(r.u.sensor.rssi, jint(e, "rssi_int8"));
                            assert_int_equal(r.u.sensor.raw_byte17, jint(e, "byte17"));
                            break;
                        case DEXCOM_RX_KIND_METER:
                            e = expect_next(&l_meter, h.page_number, r.system_time);
                            c.meter++;
                            assert_int_equal(r.u.meter.mgdl, jint(e, "meter_glucose"));
                            assert_int_equal(r.u.meter.meter_time, jint(e, "meter_time"));
                            meters[n_meters++] = (struct reading){
                                r.u.meter.meter_time, r.display_time, r.u.meter.mgdl, false};
                            break;
                        case DEXCOM_RX_KIND_USER_EVENT:
                            e = expect_next(&l_event, h.page_number, r.system_time);
                            c.event++;
                            assert_int_equal(r.u.event.type, jint(e, "event_type"));
                            assert_int_equal(r.u.event.subtype, jint(e, "event_subtype"));
                            assert_int_equal(r.u.event.event_time, jint(e, "event_time"));
                            assert_int_equal(r.u.event.value, jint(e, "value"));
                            events[n_events++] = (struct reading){
                                r.system_time, r.u.event.event_time, r.u.event.type, false};
                            break;
                        case DEXCOM_RX_KIND_INSERTION:
                            e = expect_next(&l_ins, h.page_number, r.system_time);
                            c.insertion++;
                            assert_int_equal(r.u.insertion.insertion_time,
                                             jint(e, "insertion_time"));
                            assert_int_equal(r.u.insertion.session_state, jint(e, "session_state"));
                            break;
                        case DEXCOM_RX_KIND_CAL_SET:
                            e = expect_next(&l_cal, h.page_number, r.system_time);
                            c.cal++;
                            assert_true(r.u.cal.slope == jnum(e, "slope"));
                            assert_true(r.u.cal.intercept == jnum(e, "intercept"));
                            assert_true(r.u.cal.scale == jnum(e, "scale"));
                            assert_true(r.u.cal.decay == jnum(e, "decay"));
                            assert_int_equal(r.u.cal.n_sub, jint(e, "num_subrecords"));
                            break;
                        default:
                            break;
                        }
                    }
                }
            }
        }
        assert_int_equal(got, 1); /* one reply per line */
    }
    free(csv);

    assert_int_equal(c.frames_in + c.frames_out, 171);
    assert_int_equal(s.crc_errors, 0);
    assert_int_equal(s.garbage_bytes, 0);
    assert_int_equal(c.pages, 55);
    /* 706 records of the kinds the corpus decodes, plus manufacturing,
     * PC-parameter and receiver-log records read as XML or raw. */
    assert_int_equal(c.decoded, 706);
    assert_int_equal(c.records, 1132);
    assert_int_equal(c.egv, 299);
    assert_int_equal(c.sensor, 284);
    assert_int_equal(c.meter, 32);
    assert_int_equal(c.event, 35);
    assert_int_equal(c.insertion, 36);
    assert_int_equal(c.cal, 20);

    /* Dexcom Studio's export of the same session: 228 of 228 glucose
     * readings found among ours, same value, system and display time. */
    const json_t *studio = json_object_get(expect, "studio_export");
    size_t i;
    json_t *v;
    unsigned matched = 0;
    json_array_foreach(json_object_get(studio, "glucose"), i, v)
    {
        for (unsigned k = 0; k < n_readings; k++) {
            char a[32], b[32];
            iso(readings[k].sys, ' ', a);
            iso(readings[k].disp, ' ', b);
            if (readings[k].used || strcmp(a, jstr(v, "internal_time")) != 0)
                continue;
            assert_string_equal(b, jstr(v, "display_time"));
            assert_int_equal(readings[k].mgdl, jint(v, "value"));
            readings[k].used = true;
            matched++;
            break;
        }
    }
    assert_int_equal(json_array_size(json_object_get(studio, "glucose")), 228);
    assert_int_equal(matched, 228);

    /* Studio's meter InternalTime is the meter_time field. */
    matched = 0;
    json_array_foreach(json_object_get(studio, "meter"), i, v)
    {
        for (unsigned k = 0; k < n_meters; k++) {
            char a[32];
            iso(meters[k].sys, ' ', a);
            if (!meters[k].used && strcmp(a, jstr(v, "internal_time")) == 0 &&
                meters[k].mgdl == jint(v, "value")) {
                meters[k].used = true;
                matched++;
                break;
            }
        }
    }
    assert_int_equal(matched, json_array_size(json_object_get(studio, "meter")));

    /* Studio's events: event time (display domain) and type. */
    matched = 0;
    json_array_foreach(json_object_get(studio, "events"), i, v)
    {
        for (unsigned k = 0; k < n_events; k++) {
            char a[32], b[32];
            iso(events[k].sys, ' ', a);
            iso(events[k].disp, ' ', b);
            if (!events[k].used && strcmp(a, jstr(v, "internal_time")) == 0 &&
                strcmp(b, jstr(v, "event_time")) == 0 &&
                strcmp(dexcom_rx_event_type_name((uint8_t)events[k].mgdl), jstr(v, "event_type")) ==
                    0) {
                events[k].used = true;
                matched++;
                break;
            }
        }
    }
    assert_int_equal(matched, json_array_size(json_object_get(studio, "events")));
    json_decref(expect);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_vectors),
        cmocka_unit_test(test_no_payload_packets),
        cmocka_unit_test(test_packets_with_payload),
        cmocka_unit_test(test_small_replies),
        cmocka_unit_test(test_android_packets),
        cmocka_unit_test(test_frame_negative),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_small_payload_negative),
        cmocka_unit_test(test_page_range),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_partition_info),
        cmocka_unit_test(test_firmware_header),
        cmocka_unit_test(test_android_pages),
        cmocka_unit_test(test_android_records),
        cmocka_unit_test(test_ecc1_pages),
        cmocka_unit_test(test_g6_synthetic),
        cmocka_unit_test(test_page_negative),
        cmocka_unit_test(test_implausible_records),
        cmocka_unit_test(test_measurement_time_limits),
        cmocka_unit_test(test_other_layouts),
        cmocka_unit_test(test_g4_capture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
