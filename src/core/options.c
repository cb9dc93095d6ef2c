/*
 * Driver option specs: parsing, validation against a driver's schema, and
 * redacted descriptions.  See options.h for the grammar.
 */
#include "core/options.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/url.h"

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void dia_options_free(struct dia_options *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++) {
        free(o->v[i].key);
        if (o->v[i].value) {
            /* secrets should not linger in freed heap memory */
            if (o->v[i].secret)
                explicit_bzero(o->v[i].value, strlen(o->v[i].value));
            free(o->v[i].value);
        }
    }
    free(o->v);
    free(o->driver);
    free(o->target);
    free(o->origin);
    memset(o, 0, sizeof *o);
}

static struct dia_option_value *find_value(const struct dia_options *o, const char *key)
{
    for (size_t i = 0; i < o->n; i++) {
        if (strcmp(o->v[i].key, key) == 0)
            return &o->v[i];
    }
    return NULL;
}

int dia_options_set(struct dia_options *o, const char *key, const char *value, bool secret)
{
    struct dia_option_value *v = find_value(o, key);
    char *copy = strdup(value);
    if (!copy)
        return DIA_ERR_NOMEM;
    if (v) {
        if (v->secret)
            explicit_bzero(v->value, strlen(v->value));
        free(v->value);
        v->value = copy;
        v->secret = v->secret || secret;
        return DIA_OK;
    }
    struct dia_option_value *nv = realloc(o->v, (o->n + 1) * sizeof *nv);
    if (!nv) {
        free(copy);
        return DIA_ERR_NOMEM;
    }
    o->v = nv;
    char *k = strdup(key);
    if (!k) {
        free(copy);
        return DIA_ERR_NOMEM;
    }
    o->v[o->n++] = (struct dia_option_value){.key = k, .value = copy, .secret = secret};
    return DIA_OK;
}

/* Split at the next top-level comma; a double-quoted stretch may contain
 * commas.  Returns the token (unquoted, malloc'd) and advances *p. */
static char *next_token(const char **p, bool *bad_quote)
{
    const char *s = *p;
    char *out = malloc(strlen(s) + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    bool quoted = false;
    for (; *s; s++) {
        if (*s == '"') {
            quoted = !quoted;
            continue;
        }
        if (*s == ',' && !quoted)
            break;
        out[n++] = *s;
    }
    out[n] = '\0';
    *bad_quote = quoted;
    *p = *s == ',' ? s + 1 : s;
    return out;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    size_t lead = strspn(s, " \t");
    if (lead)
        memmove(s, s + lead, n - lead + 1);
}

int dia_options_parse(const char *spec, const char *origin, struct dia_options *out, char *errbuf,
                      size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->origin = strdup(origin ? origin : "command line");
    const char *p = spec;
    bool bad_quote = false;
    char *head = next_token(&p, &bad_quote);
    if (!head || !out->origin) {
        free(head);
        snprintf(errbuf, errlen, "out of memory");
        return DIA_ERR_NOMEM;
    }
    trim(head);
    if (!head[0] || bad_quote) {
        /* the spec is not quoted: it may hold a password */
        snprintf(errbuf, errlen,
                 bad_quote ? "%s: a double quote before the first comma is not closed"
                           : "%s: the driver name is missing before the first comma",
                 out->origin);
        free(head);
        dia_options_free(out);
        return DIA_ERR_CONFIG;
    }
    const char *url = strstr(head, "://");
    const char *colon = strchr(head, ':');
    if (url) {
        /* SCHEME://… or NAME+SCHEME://… */
        const char *plus = memchr(head, '+', (size_t)(url - head));
        if (plus) {
            out->driver = dup_range(head, (size_t)(plus - head));
            out->target = strdup(plus + 1);
        } else {
            out->driver = dup_range(head, (size_t)(url - head));
            out->target = strdup(head);
        }
    } else if (colon) {
        out->driver = dup_range(head, (size_t)(colon - head));
        out->target = colon[1] ? strdup(colon + 1) : NULL;
    } else {
        out->driver = strdup(head);
    }
    free(head);
    if (!out->driver) {
        dia_options_free(out);
        snprintf(errbuf, errlen, "out of memory");
        return DIA_ERR_NOMEM;
    }
    while (*p) {
        char *tok = next_token(&p, &bad_quote);
        if (!tok) {
            dia_options_free(out);
            snprintf(errbuf, errlen, "out of memory");
            return DIA_ERR_NOMEM;
        }
        trim(tok);
        if (bad_quote) {
            snprintf(errbuf, errlen, "%s: unbalanced quote in options of %s", out->origin,
                     out->driver);
            free(tok);
            dia_options_free(out);
            return DIA_ERR_CONFIG;
        }
        if (!tok[0]) {
            free(tok);
            continue;
        }
        char *eq = strchr(tok, '=');
        const char *value = "1"; /* a bare word is a switch: `insecure` */
        if (eq) {
            *eq = '\0';
            value = eq + 1;
            trim(tok);
        }
        if (!tok[0]) {
            snprintf(errbuf, errlen, "%s: option without a name in %s", out->origin, out->driver);
            free(tok);
            dia_options_free(out);
            return DIA_ERR_CONFIG;
        }
        if (find_value(out, tok)) {
            snprintf(errbuf, errlen, "%s: option %s is given twice for %s", out->origin, tok,
                     out->driver);
            free(tok);
            dia_options_free(out);
            return DIA_ERR_CONFIG;
        }
        int rc = dia_options_set(out, tok, value, false);
        free(tok);
        if (rc != DIA_OK) {
            dia_options_free(out);
            snprintf(errbuf, errlen, "out of memory");
            return rc;
        }
    }
    return DIA_OK;
}

int dia_parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return DIA_OK;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return DIA_OK;
        }
    }
    return DIA_ERR_ARG;
}

int dia_parse_duration(const char *text, long long *seconds)
{
    if (strcasecmp(text, "all") == 0) {
        *seconds = -1;
        return DIA_OK;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || v < 0)
        return DIA_ERR_ARG;
    long long mult = 1;
    if (*end) {
        if (end[1])
            return DIA_ERR_ARG;
        switch (*end) {
        case 's':
            mult = 1;
            break;
        case 'm':
            mult = 60;
            break;
        case 'h':
            mult = 3600;
            break;
        case 'd':
            mult = 86400;
            break;
        default:
            return DIA_ERR_ARG;
        }
    }
    if (v > (long long)1e12 / mult)
        return DIA_ERR_ARG;
    *seconds = v * mult;
    return DIA_OK;
}

static bool choice_ok(const char *choices, const char *value)
{
    size_t vlen = strlen(value);
    const char *p = choices;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vlen && strncmp(p, value, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

/* Read a secret from the first line of a file: the file is trusted only to
 * exist and be readable; its content is never echoed in an error. */
static int read_secret_file(const char *path, char **out, char *why, size_t whylen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
        return DIA_ERR_CONFIG;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    if (n <= 0) {
        free(line);
        snprintf(why, whylen, "%s is empty", path);
        return DIA_ERR_CONFIG;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n == 0) {
        free(line);
        snprintf(why, whylen, "the first line of %s is empty", path);
        return DIA_ERR_CONFIG;
    }
    *out = line;
    return DIA_OK;
}

static const struct dia_option_spec *spec_find(const struct dia_option_spec *schema,
                                               const char *key)
{
    for (const struct dia_option_spec *s = schema; s && s->name; s++) {
        if (strcmp(s->name, key) == 0)
            return s;
    }
    return NULL;
}

static void list_known(const struct dia_option_spec *schema, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const struct dia_option_spec *s = schema; s && s->name; s++) {
        int w = snprintf(buf + used, len - used, "%s%s%s", used ? ", " : "", s->name,
                         s->type == DIA_OPT_SECRET ? " (or -file / -env)" : "");
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
    if (!used)
        snprintf(buf, len, "none");
}

/* Resolve KEY-file=PATH and KEY-env=VAR into KEY=<secret>. */
static int resolve_secret_indirection(struct dia_options *o, const struct dia_option_spec *schema,
                                      struct dia_option_value *v, char *errbuf, size_t errlen)
{
    size_t klen = strlen(v->key);
    bool is_file = klen > 5 && strcmp(v->key + klen - 5, "-file") == 0;
    bool is_env = klen > 4 && strcmp(v->key + klen - 4, "-env") == 0;
    if (!is_file && !is_env)
        return 1; /* not an indirection */
    char base[64];
    snprintf(base, sizeof base, "%.*s", (int)(klen - (is_file ? 5 : 4)), v->key);
    const struct dia_option_spec *s = spec_find(schema, base);
    if (!s || s->type != DIA_OPT_SECRET)
        return 1;
    if (find_value(o, base)) {
        snprintf(errbuf, errlen,
                 "%s: option %s: give it once, either inline, as %s-file or as %s-env", o->origin,
                 base, base, base);
        return DIA_ERR_CONFIG;
    }
    char *secret = NULL;
    char why[300];
    if (is_file) {
        if (read_secret_file(v->value, &secret, why, sizeof why) != DIA_OK) {
            snprintf(errbuf, errlen, "%s: option %s: %s", o->origin, v->key, why);
            return DIA_ERR_CONFIG;
        }
    } else {
        const char *env = getenv(v->value);
        if (!env || !env[0]) {
            snprintf(errbuf, errlen, "%s: option %s: environment variable %s is not set", o->origin,
                     v->key, v->value);
            return DIA_ERR_CONFIG;
        }
        secret = strdup(env);
    }
    if (!secret)
        return DIA_ERR_NOMEM;
    /* Replace this entry in place: key becomes the base name. */
    char *newkey = strdup(base);
    if (!newkey) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
        return DIA_ERR_NOMEM;
    }
    free(v->key);
    free(v->value);
    v->key = newkey;
    v->value = secret;
    v->secret = true;
    return DIA_OK;
}

int dia_options_validate(struct dia_options *o, const struct dia_option_spec *schema, char *errbuf,
                         size_t errlen)
{
    for (size_t i = 0; i < o->n; i++) {
        struct dia_option_value *v = &o->v[i];
        int rc = resolve_secret_indirection(o, schema, v, errbuf, errlen);
        if (rc < 0)
            return rc;
        const struct dia_option_spec *s = spec_find(schema, v->key);
        if (!s && i > 0 && o->v[i - 1].secret) {
            /* `password=a,b`: the "option" b is most likely the rest of the
             * password, cut at an unquoted comma; do not print it */
            snprintf(errbuf, errlen,
                     "%s: option %s is followed by something that is not an option of %s; if "
                     "the value of %s contains a comma, put the whole value in double quotes "
                     "(%s=\"…\") or use %s-file=",
                     o->origin, o->v[i - 1].key, o->driver, o->v[i - 1].key, o->v[i - 1].key,
                     o->v[i - 1].key);
            return DIA_ERR_CONFIG;
        }
        if (!s) {
            char known[512];
            list_known(schema, known, sizeof known);
            snprintf(errbuf, errlen, "%s: option %s is not known for %s (known options: %s)",
                     o->origin, v->key, o->driver, known);
            return DIA_ERR_CONFIG;
        }
        if (s->type == DIA_OPT_SECRET)
            v->secret = true;
        bool b;
        long long n;
        char *end = NULL;
        switch (s->type) {
        case DIA_OPT_INT:
            errno = 0;
            n = strtoll(v->value, &end, 10);
            if (errno || end == v->value || *end) {
                snprintf(errbuf, errlen, "%s: option %s: \"%s\" is not a whole number", o->origin,
                         v->key, v->value);
                return DIA_ERR_CONFIG;
            }
            if ((s->min || s->max) && (n < s->min || n > s->max)) {
                snprintf(errbuf, errlen, "%s: option %s: %lld is outside %lld..%lld", o->origin,
                         v->key, n, s->min, s->max);
                return DIA_ERR_CONFIG;
            }
            break;
        case DIA_OPT_BOOL:
            if (dia_parse_bool(v->value, &b) != DIA_OK) {
                snprintf(errbuf, errlen, "%s: option %s: \"%s\" is not yes/no (use 1 or 0)",
                         o->origin, v->key, v->value);
                return DIA_ERR_CONFIG;
            }
            break;
        case DIA_OPT_DURATION:
            if (dia_parse_duration(v->value, &n) != DIA_OK) {
                snprintf(errbuf, errlen,
                         "%s: option %s: \"%s\" is not a duration (examples: 90s, 15m, 24h, 7d)",
                         o->origin, v->key, v->value);
                return DIA_ERR_CONFIG;
            }
            if ((s->min || s->max) && (n < s->min || n > s->max)) {
                snprintf(errbuf, errlen, "%s: option %s: %s is outside %llds..%llds", o->origin,
                         v->key, v->value, s->min, s->max);
                return DIA_ERR_CONFIG;
            }
            break;
        case DIA_OPT_ENUM:
            if (!choice_ok(s->choices, v->value)) {
                snprintf(errbuf, errlen, "%s: option %s: \"%s\" is not one of %s", o->origin,
                         v->key, v->value, s->choices);
                return DIA_ERR_CONFIG;
            }
            break;
        case DIA_OPT_STRING:
        case DIA_OPT_SECRET:
            break;
        }
    }
    for (const struct dia_option_spec *s = schema; s && s->name; s++) {
        if (find_value(o, s->name))
            continue;
        if (s->required) {
            snprintf(errbuf, errlen, "%s: %s needs option %s (%s)", o->origin, o->driver, s->name,
                     s->help ? s->help : "required");
            return DIA_ERR_CONFIG;
        }
        if (s->default_value && dia_options_set(o, s->name, s->default_value, false) != DIA_OK)
            return DIA_ERR_NOMEM;
    }
    return DIA_OK;
}

const char *dia_opt_str(const struct dia_options *o, const char *key, const char *fallback)
{
    const struct dia_option_value *v = find_value(o, key);
    return v ? v->value : fallback;
}

long long dia_opt_int(const struct dia_options *o, const char *key, long long fallback)
{
    const struct dia_option_value *v = find_value(o, key);
    return v ? strtoll(v->value, NULL, 10) : fallback;
}

bool dia_opt_bool(const struct dia_options *o, const char *key, bool fallback)
{
    const struct dia_option_value *v = find_value(o, key);
    bool b = fallback;
    if (v)
        dia_parse_bool(v->value, &b);
    return b;
}

long long dia_opt_duration(const struct dia_options *o, const char *key, long long fallback)
{
    const struct dia_option_value *v = find_value(o, key);
    long long s = fallback;
    if (v)
        dia_parse_duration(v->value, &s);
    return s;
}

void dia_options_describe(const struct dia_options *o, char *buf, size_t len)
{
    size_t used = 0;
    int w;
    char target[512] = "";
    if (o->target)
        dia_url_display(o->target, target, sizeof target); /* user:password@, ?token= */
    w = snprintf(buf, len, "%s%s%s", o->driver, o->target ? ":" : "", target);
    if (w < 0 || (size_t)w >= len)
        return;
    used = (size_t)w;
    for (size_t i = 0; i < o->n; i++) {
        char shown[512] = DIA_REDACTED;
        if (!o->v[i].secret) /* an option may hold a URL too: url= */
            dia_url_display(o->v[i].value, shown, sizeof shown);
        w = snprintf(buf + used, len - used, ",%s=%s", o->v[i].key, shown);
        if (w < 0 || (size_t)w >= len - used)
            return;
        used += (size_t)w;
    }
}
