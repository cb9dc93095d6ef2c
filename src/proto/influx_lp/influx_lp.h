/*
 * InfluxDB line protocol encoder (pure: libc only, no allocation).
 *
 * One point per line (specs/smartpix-and-sinks.md §4.3):
 *
 *     measurement[,tag=value…] field=value[,field=value…] timestamp\n
 *
 * Escaping, exactly as the spec's verified round trip:
 *   measurement               `,` and space are escaped with `\`;
 *   tag keys, tag values,
 *   field keys                `,`, `=` and space are escaped with `\`;
 *   string field values       inside "…", `"` and `\` are escaped with `\`.
 * Tag values are never quoted; an empty tag value is not allowed, so such a
 * tag is left out.  Field types are fixed by the caller's choice of function:
 * integers get the `i` suffix (`-5i`), floats are written plainly and always
 * carry a decimal point or exponent (`120.0`, `6.83`), so InfluxDB never
 * sees the same field as int in one point and float in another (§4.3: a
 * field's type is fixed per shard; a change is a 400 type conflict).
 *
 * Our own choices where the spec leaves a gap (each one keeps a line that
 * InfluxDB 1.x parses back to what we meant):
 *   - a backslash in a measurement, key or tag value is written as `/`
 *     (1.x reads `\` followed by `,`, `=` or space as an escape, so a value
 *     ending in `\` would swallow the separator after it);
 *   - control characters (below 0x20, and 0x7f) in those names become `_`;
 *   - newlines and carriage returns in string fields become spaces (§4.3:
 *     "newlines are not allowed unescaped; replace them");
 *   - NaN and infinities are refused (InfluxDB has no such float).
 *
 * Usage: influx_lp_init once over a caller buffer, then per point
 * influx_lp_begin, influx_lp_tag…, influx_lp_int/float/string/bool…,
 * influx_lp_end.  Errors are sticky within a point and reported by
 * influx_lp_end, which then removes the partial line, so the buffer always
 * holds whole lines only.  Tags should be added sorted by key (InfluxDB's
 * own advice for write speed); the encoder does not reorder them.
 */
#ifndef DIA_PROTO_INFLUX_LP_H
#define DIA_PROTO_INFLUX_LP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct influx_lp {
    char *buf;
    size_t cap;
    size_t len;        /* bytes of complete lines (plus the current partial line) */
    size_t line_start; /* where the current point began */
    int phase;         /* 0 between points, 1 after measurement/tags, 2 after a field */
    int err;           /* first error within the current point (sticky) */
};

void influx_lp_init(struct influx_lp *lp, char *buf, size_t cap);
/* Forget every line written so far (the buffer is reused). */
void influx_lp_reset(struct influx_lp *lp);

void influx_lp_begin(struct influx_lp *lp, const char *measurement);
/* An empty or NULL value leaves the tag out (empty tag values are invalid). */
void influx_lp_tag(struct influx_lp *lp, const char *key, const char *value);
void influx_lp_int(struct influx_lp *lp, const char *key, int64_t value);
void influx_lp_float(struct influx_lp *lp, const char *key, double value);
void influx_lp_string(struct influx_lp *lp, const char *key, const char *value);
void influx_lp_bool(struct influx_lp *lp, const char *key, bool value);

/*
 * Finish the point with its timestamp (an integer in the precision the
 * write request names) and a newline.  Returns
 *   DIA_OK             the line is in the buffer;
 *   DIA_ERR_TRUNCATED  the buffer is too small (flush it and encode again);
 *   DIA_ERR_ARG        the point is invalid: empty measurement or key, no
 *                      field, a tag after a field, a non-finite float.
 * On error the partial line is removed.
 */
int influx_lp_end(struct influx_lp *lp, int64_t timestamp);

/* Shortest decimal text that reads back as the same double, with a decimal
 * point or exponent always present ("120.0", "6.83", "1e+16"); the way
 * Python's repr() writes floats, which dexpy's lines show (§3.5).  Returns
 * the length, or 0 when v is not finite or len is too small. */
size_t influx_lp_format_float(char *out, size_t len, double v);

#endif
