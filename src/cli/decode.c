/* `diabridge decode CODEC FILE`: a capture file → JSON lines. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/codecs.h"
#include "cli/verbs.h"
#include "core/daemon.h"
#include "core/err.h"

static void list_codecs(FILE *out)
{
    fprintf(out, "Codecs:\n");
    for (size_t i = 0; i < dia_codec_count; i++)
        fprintf(out, "  %-16s %s\n", dia_codecs[i]->name, dia_codecs[i]->description);
    if (dia_codec_count == 0)
        fprintf(out, "  (none in this build)\n");
}

static const char decode_usage[] =
    "usage: diabridge decode CODEC FILE\n"
    "       diabridge decode --list\n"
    "\n"
    "Decodes a capture file (FILE, or - for stdin) and prints one JSON object per record.\n"
    "Input that fails a check is printed as {\"error\": ...} lines and counted on stderr;\n"
    "the exit status is 1 when nothing at all could be decoded.\n\n";

/* Captures are small (receiver pages, exports); 64 MiB is far beyond any. */
#define MAX_CAPTURE (64u << 20)

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) {
            if (ferror(f)) { /* a directory, a device that failed: not an empty file */
                int e = errno;
                free(buf);
                buf = NULL;
                errno = e ? e : EIO;
            }
            break;
        }
        if (cap >= MAX_CAPTURE) {
            free(buf);
            buf = NULL;
            errno = EFBIG;
            break;
        }
        uint8_t *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (f != stdin)
        fclose(f);
    *len = n;
    return buf;
}

int dia_verb_decode(int argc, char **argv)
{
    dia_cli_usage(decode_usage);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(decode_usage, stdout);
        list_codecs(stdout);
        return DIA_EXIT_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        dia_print_version();
        return DIA_EXIT_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "--list") == 0) {
        list_codecs(stdout);
        return DIA_EXIT_OK;
    }
    if (argc >= 2 && argv[1][0] == '-' && argv[1][1] == '-')
        return dia_usage_error("decode", "unknown option \"%s\"", argv[1]);
    if (argc != 3)
        return dia_usage_error("decode", "needs a CODEC and a FILE (see --list for codecs)");
    const struct dia_codec *codec = dia_codec_find(argv[1]);
    if (!codec) {
        dia_usage_error("decode", "unknown codec \"%s\"", argv[1]);
        list_codecs(stderr);
        return DIA_EXIT_USAGE;
    }
    size_t len = 0;
    uint8_t *data = read_all(argv[2], &len);
    if (!data) {
        fprintf(stderr, "diabridge decode: cannot read %s: %s\n", argv[2], strerror(errno));
        return DIA_EXIT_FAILURE;
    }
    struct dia_decode_stats st = {0};
    int rc = codec->decode(data, len, stdout, &st);
    free(data);
    fflush(stdout);
    fprintf(stderr, "diabridge decode: %lu records from %lu units; %lu units rejected\n",
            st.records, st.units_ok, st.units_rejected);
    if (rc != DIA_OK) {
        fprintf(stderr, "diabridge decode: %s: %s\n", argv[2], dia_strerror(rc));
        return DIA_EXIT_FAILURE;
    }
    return st.units_ok == 0 && st.units_rejected > 0 ? DIA_EXIT_FAILURE : DIA_EXIT_OK;
}
