/*
 * Driver options: the schema a driver declares, and the values a user gave.
 *
 * One grammar serves the config file and the command line (DESIGN §8):
 *
 *     NAME[:TARGET][,KEY=VALUE]…        jsonl:/var/log/cgm.jsonl,fsync=always
 *     SCHEME://REST[,KEY=VALUE]…        mqtt://broker:1883,topic=cgm
 *     NAME+SCHEME://REST[,KEY=VALUE]…   nightscout+https://ns.example.org,token-file=/etc/t
 *
 * The part before the first comma names the driver and its target; the
 * target is the driver's main argument (a path, a URL, a region).  A value
 * may be double-quoted to contain commas.  Options of type SECRET may also
 * be given as KEY-file=PATH (the file's first line) or KEY-env=VARIABLE, so
 * that passwords need not sit in the config file.  Secrets are resolved when
 * the configuration is validated, kept only in memory, and never printed:
 * every function that formats options for humans redacts them.
 */
#ifndef DIA_CORE_OPTIONS_H
#define DIA_CORE_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dia_opt_type {
    DIA_OPT_STRING = 1,
    DIA_OPT_INT,      /* decimal integer within [min, max] */
    DIA_OPT_BOOL,     /* 1/0, true/false, yes/no, on/off */
    DIA_OPT_SECRET,   /* password, API secret, token: never printed */
    DIA_OPT_DURATION, /* 90, 90s, 15m, 24h, 7d, or "all" (= -1); stored in seconds */
    DIA_OPT_ENUM,     /* one of choices ("a|b|c") */
};

struct dia_option_spec {
    const char *name;
    enum dia_opt_type type;
    const char *default_value; /* NULL: no default */
    bool required;
    long long min, max;  /* DIA_OPT_INT / DIA_OPT_DURATION bounds (both 0: unbounded) */
    const char *choices; /* DIA_OPT_ENUM: "always|batch|never" */
    const char *help;
};

/* What the user wrote for one driver instance. */
struct dia_option_value {
    char *key;
    char *value; /* resolved text (for secrets: the secret itself) */
    bool secret; /* value must never be printed */
    int line;    /* where it was given (0: command line or generated) */
};

struct dia_options {
    char *driver; /* driver name as resolved from the spec */
    char *target; /* NULL when absent */
    struct dia_option_value *v;
    size_t n;
    char *origin; /* "FILE:LINE" or "command line", for error messages */
};

/* Parse one spec string; scheme_driver maps a URL scheme to a driver name
 * (NULL: the scheme itself is the name).  Errors go to errbuf. */
int dia_options_parse(const char *spec, const char *origin, struct dia_options *out, char *errbuf,
                      size_t errlen);
void dia_options_free(struct dia_options *o);
int dia_options_set(struct dia_options *o, const char *key, const char *value, bool secret);

/*
 * Check o against a schema: unknown keys, missing required options, values
 * of the wrong type; fill in defaults; resolve KEY-file / KEY-env secrets.
 * On error returns DIA_ERR_CONFIG with "ORIGIN: option KEY: reason" in errbuf.
 */
int dia_options_validate(struct dia_options *o, const struct dia_option_spec *schema, char *errbuf,
                         size_t errlen);

/* Typed lookups after validation.  Missing keys return the fallback. */
const char *dia_opt_str(const struct dia_options *o, const char *key, const char *fallback);
long long dia_opt_int(const struct dia_options *o, const char *key, long long fallback);
bool dia_opt_bool(const struct dia_options *o, const char *key, bool fallback);
/* Seconds; -1 for "all". */
long long dia_opt_duration(const struct dia_options *o, const char *key, long long fallback);

/* Parse helpers shared with the config loader. */
int dia_parse_bool(const char *text, bool *out);
int dia_parse_duration(const char *text, long long *seconds);

/* "driver:target,key=value,password=<redacted>" for logs and status. */
void dia_options_describe(const struct dia_options *o, char *buf, size_t len);

#endif
