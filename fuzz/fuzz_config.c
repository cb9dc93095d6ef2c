/*
 * libFuzzer target: the configuration parsers.  The first byte picks the
 * parser: a driver spec (validated against a schema with every option
 * type), a dexpy.json document, or a native config file.  Bad input must
 * give DIA_ERR_CONFIG with a message, never a crash or a leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "core/options.h"

static const struct dia_option_spec schema[] = {
    {.name = "s", .type = DIA_OPT_STRING},
    {.name = "i", .type = DIA_OPT_INT, .min = -5, .max = 5},
    {.name = "b", .type = DIA_OPT_BOOL, .default_value = "0"},
    {.name = "d", .type = DIA_OPT_DURATION, .min = 0, .max = 86400},
    {.name = "e", .type = DIA_OPT_ENUM, .choices = "x|yy|zzz"},
    {.name = "p", .type = DIA_OPT_SECRET},
    {0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char err[1024];
    switch (data[0] % 3) {
    case 0: {
        struct dia_options o;
        if (dia_options_parse(text, "fuzz", &o, err, sizeof err) == DIA_OK) {
            if (dia_options_validate(&o, schema, err, sizeof err) == DIA_OK) {
                char desc[512];
                dia_options_describe(&o, desc, sizeof desc);
                (void)dia_opt_int(&o, "i", 0);
                (void)dia_opt_duration(&o, "d", 0);
            }
            dia_options_free(&o);
        }
        break;
    }
    case 1: {
        struct dia_config cfg;
        dia_config_init(&cfg);
        (void)dia_config_load_dexpy(&cfg, "fuzz.json", text, err, sizeof err);
        dia_config_free(&cfg);
        break;
    }
    default: {
        char path[] = "/tmp/fuzz-config-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0)
            break;
        if (write(fd, text, strlen(text)) >= 0) {
            struct dia_config cfg;
            dia_config_init(&cfg);
            if (dia_config_load_file(&cfg, path, err, sizeof err) == DIA_OK)
                (void)dia_config_validate(&cfg, err, sizeof err);
            dia_config_free(&cfg);
        }
        close(fd);
        unlink(path);
        break;
    }
    }
    free(text);
    return 0;
}
