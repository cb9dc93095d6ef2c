/*
 * Codecs for `diabridge decode CODEC FILE`.
 *
 * Each row turns a capture file into JSON lines on `out`, one object per
 * decoded record, and one {"error": …} line per rejected unit of input
 * (frame, page, record) so bad input is visible rather than silently
 * skipped.  The table is the single place a codec is registered; the verb
 * and the benchmark harness both walk it.
 */
#ifndef DIA_CLI_CODECS_H
#define DIA_CLI_CODECS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct dia_decode_stats {
    unsigned long units_ok;       /* frames/pages/records decoded */
    unsigned long units_rejected; /* rejected with a classified error */
    unsigned long records;        /* JSON records written */
};

struct dia_codec {
    const char *name;        /* as typed on the command line: "dexcom-page" */
    const char *description; /* one line for `decode --list` */
    /* Decode a whole file's bytes; JSON lines to out.  With out == NULL the
     * codec only decodes and counts, building no JSON, so a benchmark
     * measures the codec itself.  Returns DIA_OK, or a negative
     * dia_err when the file as a whole is unusable. */
    int (*decode)(const uint8_t *data, size_t len, FILE *out, struct dia_decode_stats *stats);
    /* A representative capture under tests/data that the benchmark suite
     * decodes in a loop (bench/, issue #7).  Giving a codec a sample is all
     * it takes to get its row in `make bench`. */
    const char *bench_sample;
};

/* NULL-terminated by count: dia_codecs[0 .. dia_codec_count-1] */
extern const struct dia_codec *const dia_codecs[];
extern const size_t dia_codec_count;

const struct dia_codec *dia_codec_find(const char *name);

#endif
