/*
 * Records → InfluxDB points, for the influx sink (src/sink/influx.c).
 * Kept apart from the HTTP side so the exact bytes can be unit-tested.
 * The schemas are documented in docs/sinks/influx.md.
 */
#ifndef DIA_SINK_INFLUX_MAP_H
#define DIA_SINK_INFLUX_MAP_H

#include "core/record.h"
#include "proto/influx_lp/influx_lp.h"

enum influx_schema {
    INFLUX_SCHEMA_DIABRIDGE = 1, /* one measurement per kind, ms timestamps */
    INFLUX_SCHEMA_DEXPY,         /* dexpy's glucose points, byte for byte */
};

/* The timestamp unit a schema writes: "ms" or "ns" (v1 names). */
const char *influx_map_precision(enum influx_schema schema);

/*
 * Append r's point to lp.  measurement is used by the dexpy schema only.
 * Returns DIA_OK, INFLUX_MAP_SKIPPED when the schema writes nothing for this
 * kind of record, or influx_lp_end's error (DIA_ERR_TRUNCATED: buffer full;
 * DIA_ERR_ARG: the record cannot be written, e.g. it has no value at all).
 */
#define INFLUX_MAP_SKIPPED 1
int influx_map_record(struct influx_lp *lp, const struct dia_record *r, enum influx_schema schema,
                      const char *measurement);

#endif
