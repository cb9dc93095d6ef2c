/* InfluxDB line protocol encoder and the influx sink's record mapping:
 * escaping per specs/smartpix-and-sinks.md §4.3, fixed field types, and
 * dexpy's exact line (specs/dexcom-receiver-usb-and-share.md §3.5). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/record.h"
#include "proto/influx_lp/influx_lp.h"
#include "sink/influx_map.h"

static char buf[4096];

static const char *text(const struct influx_lp *lp)
{
    static char out[4096];
    snprintf(out, sizeof out, "%.*s", (int)lp->len, lp->buf);
    return out;
}

static void test_escaping(void **state)
{
    (void)state;
    struct influx_lp lp;
    influx_lp_init(&lp, buf, sizeof buf);
    influx_lp_begin(&lp, "my meas,x=y");
    influx_lp_tag(&lp, "tag key", "a,b=c d");
    influx_lp_tag(&lp, "empty", "");
    influx_lp_string(&lp, "str=f", "say \"hi\" \\ there\nnext");
    influx_lp_int(&lp, "n", -5);
    influx_lp_float(&lp, "f", 6.8);
    influx_lp_bool(&lp, "b", true);
    assert_int_equal(influx_lp_end(&lp, 1700000000000), DIA_OK);
    /* measurement: `,` and space; keys and tag values: `,` `=` space;
     * strings: `"` and `\`; the empty tag is left out */
    assert_string_equal(text(&lp), "my\\ meas\\,x=y,tag\\ key=a\\,b\\=c\\ d "
                                   "str\\=f=\"say \\\"hi\\\" \\\\ there next\",n=-5i,f=6.8,b=true "
                                   "1700000000000\n");
}

static void test_names_without_ambiguity(void **state)
{
    (void)state;
    struct influx_lp lp;
    influx_lp_init(&lp, buf, sizeof buf);
    influx_lp_begin(&lp, "m");
    influx_lp_tag(&lp, "dev", "A\\B\tC");
    influx_lp_int(&lp, "v", 1);
    assert_int_equal(influx_lp_end(&lp, 1), DIA_OK);
    assert_string_equal(text(&lp), "m,dev=A/B_C v=1i 1\n");
}

static void test_float_forms(void **state)
{
    (void)state;
    char f[40];
    struct {
        double v;
        const char *want;
    } cases[] = {
        {120.0, "120.0"},
        {224.0, "224.0"},
        {6.83, "6.83"},
        {-0.5, "-0.5"},
        {0.1, "0.1"},
        {1e16, "1e+16"},
        {1.0 / 3, "0.3333333333333333"},
        {0.0, "0.0"},
        {1e-7, "1e-07"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_true(influx_lp_format_float(f, sizeof f, cases[i].v) > 0);
        assert_string_equal(f, cases[i].want);
    }
    assert_int_equal(influx_lp_format_float(f, sizeof f, NAN), 0);
    assert_int_equal(influx_lp_format_float(f, sizeof f, INFINITY), 0);
}

static void test_invalid_points(void **state)
{
    (void)state;
    struct influx_lp lp;
    influx_lp_init(&lp, buf, sizeof buf);
    influx_lp_begin(&lp, "ok");
    influx_lp_int(&lp, "v", 1);
    assert_int_equal(influx_lp_end(&lp, 1), DIA_OK);
    size_t good = lp.len;

    influx_lp_begin(&lp, "nofield");
    assert_int_equal(influx_lp_end(&lp, 2), DIA_ERR_ARG);
    influx_lp_begin(&lp, "");
    influx_lp_int(&lp, "v", 1);
    assert_int_equal(influx_lp_end(&lp, 3), DIA_ERR_ARG);
    influx_lp_begin(&lp, "m");
    influx_lp_float(&lp, "v", NAN);
    assert_int_equal(influx_lp_end(&lp, 4), DIA_ERR_ARG);
    influx_lp_begin(&lp, "m");
    influx_lp_int(&lp, "v", 1);
    influx_lp_tag(&lp, "late", "tag");
    assert_int_equal(influx_lp_end(&lp, 5), DIA_ERR_ARG);
    influx_lp_begin(&lp, "m");
    influx_lp_int(&lp, "", 1);
    assert_int_equal(influx_lp_end(&lp, 6), DIA_ERR_ARG);
    /* every failed point is removed whole */
    assert_int_equal(lp.len, good);
    assert_string_equal(text(&lp), "ok v=1i 1\n");
}

static void test_buffer_full(void **state)
{
    (void)state;
    char small[24];
    struct influx_lp lp;
    influx_lp_init(&lp, small, sizeof small);
    influx_lp_begin(&lp, "m");
    influx_lp_int(&lp, "v", 1);
    assert_int_equal(influx_lp_end(&lp, 1), DIA_OK);
    size_t good = lp.len;
    influx_lp_begin(&lp, "measurement");
    influx_lp_int(&lp, "value", 123456);
    assert_int_equal(influx_lp_end(&lp, 1700000000000), DIA_ERR_TRUNCATED);
    assert_int_equal(lp.len, good);
}

static void glucose(struct dia_record *r, int64_t t, int mgdl, int trend, enum dia_origin origin)
{
    dia_record_init(r, DIA_KIND_GLUCOSE);
    snprintf(r->driver, sizeof r->driver, "dexcom-usb");
    snprintf(r->device_id, sizeof r->device_id, "SM12345678");
    r->origin = origin;
    r->t_utc_ms = t;
    r->u.glucose.mgdl = mgdl;
    r->u.glucose.trend = trend;
    dia_record_set_key(r, "egv:%lld", (long long)t);
}

/* §3.5: bg,device=dexcomg6,source=dexpy cbg=120.0,direction=4i 1630768000000000000 */
static void test_dexpy_line_exact(void **state)
{
    (void)state;
    struct influx_lp lp;
    struct dia_record r;
    influx_lp_init(&lp, buf, sizeof buf);
    glucose(&r, 1630768000123LL, 120, DIA_TREND_FLAT, DIA_ORIGIN_DEVICE);
    assert_int_equal(influx_map_record(&lp, &r, INFLUX_SCHEMA_DEXPY, "bg"), DIA_OK);
    assert_string_equal(text(&lp), "bg,device=dexcomg6,source=dexpy cbg=120.0,direction=4i "
                                   "1630768000000000000\n");
    assert_string_equal(influx_map_precision(INFLUX_SCHEMA_DEXPY), "ns");

    /* the measurement follows INFLUXDB_MEASUREMENT; Share's 224.0 */
    influx_lp_reset(&lp);
    glucose(&r, 1745081013000LL, 224, DIA_TREND_FLAT, DIA_ORIGIN_CLOUD);
    assert_int_equal(influx_map_record(&lp, &r, INFLUX_SCHEMA_DEXPY, "glucose"), DIA_OK);
    assert_string_equal(text(&lp), "glucose,device=dexcomg6,source=dexpy cbg=224.0,direction=4i "
                                   "1745081013000000000\n");

    /* dexpy wrote glucose only */
    influx_lp_reset(&lp);
    struct dia_record m;
    dia_record_init(&m, DIA_KIND_METER);
    m.u.meter.mgdl = 100;
    assert_int_equal(influx_map_record(&lp, &m, INFLUX_SCHEMA_DEXPY, "bg"), INFLUX_MAP_SKIPPED);
    assert_int_equal(lp.len, 0);
}

static void test_diabridge_schema(void **state)
{
    (void)state;
    struct influx_lp lp;
    struct dia_record r;
    influx_lp_init(&lp, buf, sizeof buf);
    glucose(&r, 1700000000123LL, 123, DIA_TREND_FLAT, DIA_ORIGIN_DEVICE);
    r.u.glucose.noise = 1;
    r.u.glucose.rate_x10 = -12;
    assert_int_equal(influx_map_record(&lp, &r, INFLUX_SCHEMA_DIABRIDGE, NULL), DIA_OK);
    char want[512];
    snprintf(want, sizeof want,
             "glucose,device=SM12345678,source=dexcom-usb,type=sgv sgv=123i,mmol=6.83,trend=4i,"
             "direction=\"Flat\",rate=-1.2,noise=1i,record_key=\"%s\" 1700000000123\n",
             r.key);
    assert_string_equal(text(&lp), want);
    assert_string_equal(influx_map_precision(INFLUX_SCHEMA_DIABRIDGE), "ms");

    /* insulin in units as a float, even when whole */
    influx_lp_reset(&lp);
    struct dia_record b;
    dia_record_init(&b, DIA_KIND_BOLUS);
    snprintf(b.driver, sizeof b.driver, "sim");
    snprintf(b.device_id, sizeof b.device_id, "SIM1");
    b.t_utc_ms = 1700000000000LL;
    b.u.bolus.type = DIA_BOLUS_NORMAL;
    b.u.bolus.programmed_mu = 2000;
    b.u.bolus.delivered_mu = 1950;
    dia_record_set_key(&b, "bolus:1");
    assert_int_equal(influx_map_record(&lp, &b, INFLUX_SCHEMA_DIABRIDGE, NULL), DIA_OK);
    snprintf(want, sizeof want,
             "bolus,device=SIM1,entry=%.8s,source=sim,type=normal programmed=2.0,delivered=1.95,"
             "record_key=\"%s\" 1700000000000\n",
             b.key, b.key);
    assert_string_equal(text(&lp), want);

    /* an event's text is a string field; newlines cannot break the line */
    influx_lp_reset(&lp);
    struct dia_record e;
    dia_record_init(&e, DIA_KIND_EVENT);
    snprintf(e.driver, sizeof e.driver, "sim");
    snprintf(e.device_id, sizeof e.device_id, "SIM1");
    e.t_utc_ms = 1700000000000LL;
    e.u.event.type = DIA_EVENT_NOTE;
    snprintf(e.u.event.text, sizeof e.u.event.text, "line one\nsaid \"x\"");
    dia_record_set_key(&e, "note:1");
    assert_int_equal(influx_map_record(&lp, &e, INFLUX_SCHEMA_DIABRIDGE, NULL), DIA_OK);
    assert_non_null(strstr(text(&lp), "text=\"line one said \\\"x\\\"\""));
    assert_non_null(strstr(text(&lp), ",type=note "));
}

/* Two carbs entries a person typed for the same minute are two records: they
 * must be two points, not one overwriting the other; the same record sent
 * again must stay one point. */
static void test_typed_times_do_not_collide(void **state)
{
    (void)state;
    struct influx_lp lp;
    struct dia_record c[3];
    for (int i = 0; i < 3; i++) {
        dia_record_init(&c[i], DIA_KIND_CARBS);
        snprintf(c[i].driver, sizeof c[i].driver, "dexcom-usb");
        snprintf(c[i].device_id, sizeof c[i].device_id, "SM12345678");
        c[i].t_utc_ms = 1700000040000LL;
        c[i].u.carbs.carbs_dg = 200 + 150 * (i == 1);
        /* the receiver's own identity of the entry: record index 41, 42, 41 */
        dia_record_set_key(&c[i], "p11/i%d/s%d", i == 1 ? 42 : 41,
                           i == 1 ? 1700000100 : 1700000070);
    }
    char series[3][200];
    for (int i = 0; i < 3; i++) {
        influx_lp_init(&lp, buf, sizeof buf);
        assert_int_equal(influx_map_record(&lp, &c[i], INFLUX_SCHEMA_DIABRIDGE, NULL), DIA_OK);
        /* series key: the text up to the first unescaped space */
        const char *sp = strchr(text(&lp), ' ');
        assert_non_null(sp);
        snprintf(series[i], sizeof series[i], "%.*s", (int)(sp - text(&lp)), text(&lp));
        assert_non_null(strstr(series[i], ",entry="));
    }
    assert_string_not_equal(series[0], series[1]); /* two entries, two points */
    assert_string_equal(series[0], series[2]);     /* one record, one point */

    /* readings keep the low-cardinality tags only */
    struct dia_record g;
    dia_record_init(&g, DIA_KIND_GLUCOSE);
    snprintf(g.driver, sizeof g.driver, "dexcom-usb");
    snprintf(g.device_id, sizeof g.device_id, "SM12345678");
    g.t_utc_ms = 1700000040000LL;
    g.u.glucose.mgdl = 100;
    dia_record_set_key(&g, "egv");
    influx_lp_init(&lp, buf, sizeof buf);
    assert_int_equal(influx_map_record(&lp, &g, INFLUX_SCHEMA_DIABRIDGE, NULL), DIA_OK);
    assert_null(strstr(text(&lp), "entry="));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),         cmocka_unit_test(test_names_without_ambiguity),
        cmocka_unit_test(test_float_forms),      cmocka_unit_test(test_invalid_points),
        cmocka_unit_test(test_buffer_full),      cmocka_unit_test(test_dexpy_line_exact),
        cmocka_unit_test(test_diabridge_schema), cmocka_unit_test(test_typed_times_do_not_collide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
