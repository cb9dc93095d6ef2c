/*
 * Configuration loading: the native line grammar and dexpy.json.
 *
 * The config layer only knows specs and keywords; which drivers exist is
 * asked of the registries in dia_config_validate(), so core never names a
 * driver.  The dexpy.json translation is the one place that does spell out
 * driver option names, because it is a compatibility contract with dexpy.
 */
#include "core/config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/driver.h"
#include "core/err.h"
#include "core/log.h"
#include "core/url.h"

#define DEFAULT_RETENTION_S (90LL * 86400)

void dia_config_init(struct dia_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->log_level = DIA_LOG_INFO;
    cfg->retention_s = DEFAULT_RETENTION_S;
    cfg->sync = DIA_SYNC_FULL;
}

static void free_instances(struct dia_instance_config *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dia_options_free(&v[i].opts);
    free(v);
}

void dia_config_free(struct dia_config *cfg)
{
    free(cfg->journal_path);
    free_instances(cfg->sources, cfg->nsources);
    free_instances(cfg->sinks, cfg->nsinks);
    dia_config_init(cfg);
}

static int add_instance(struct dia_instance_config **v, size_t *n, const char *spec,
                        const char *origin, char *errbuf, size_t errlen)
{
    struct dia_instance_config *nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv)
        return DIA_ERR_NOMEM;
    *v = nv;
    memset(&nv[*n], 0, sizeof nv[*n]);
    int rc = dia_options_parse(spec, origin, &nv[*n].opts, errbuf, errlen);
    if (rc != DIA_OK)
        return rc;
    (*n)++;
    return DIA_OK;
}

int dia_config_apply(struct dia_config *cfg, const char *keyword, const char *value,
                     const char *origin, char *errbuf, size_t errlen)
{
    if (!value || !value[0]) {
        snprintf(errbuf, errlen, "%s: %s needs a value", origin, keyword);
        return DIA_ERR_CONFIG;
    }
    if (strcmp(keyword, "source") == 0)
        return add_instance(&cfg->sources, &cfg->nsources, value, origin, errbuf, errlen);
    if (strcmp(keyword, "sink") == 0)
        return add_instance(&cfg->sinks, &cfg->nsinks, value, origin, errbuf, errlen);
    if (strcmp(keyword, "journal") == 0) {
        free(cfg->journal_path);
        cfg->journal_path = strdup(value);
        return cfg->journal_path ? DIA_OK : DIA_ERR_NOMEM;
    }
    if (strcmp(keyword, "log-level") == 0) {
        int level = dia_log_level_parse(value);
        if (level < 0) {
            snprintf(errbuf, errlen,
                     "%s: log-level \"%s\" is not one of error, warning, info, debug", origin,
                     value);
            return DIA_ERR_CONFIG;
        }
        cfg->log_level = level;
        return DIA_OK;
    }
    if (strcmp(keyword, "retention") == 0) {
        long long s;
        if (dia_parse_duration(value, &s) != DIA_OK || (s >= 0 && s < 86400)) {
            snprintf(errbuf, errlen,
                     "%s: retention \"%s\" must be a duration of at least 1d (e.g. 90d), or all",
                     origin, value);
            return DIA_ERR_CONFIG;
        }
        cfg->retention_s = s;
        return DIA_OK;
    }
    if (strcmp(keyword, "sync") == 0) {
        if (strcmp(value, "full") == 0)
            cfg->sync = DIA_SYNC_FULL;
        else if (strcmp(value, "normal") == 0)
            cfg->sync = DIA_SYNC_NORMAL;
        else {
            snprintf(errbuf, errlen, "%s: sync \"%s\" is not full or normal", origin, value);
            return DIA_ERR_CONFIG;
        }
        return DIA_OK;
    }
    snprintf(errbuf, errlen,
             "%s: unknown keyword \"%s\" (known: source, sink, journal, log-level, retention, "
             "sync)",
             origin, keyword);
    return DIA_ERR_CONFIG;
}

static char *read_whole_file(const char *path, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errbuf, errlen, "cannot read config file %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
        if (len + 1 == cap) {
            if (cap > (1u << 20)) { /* a config file of megabytes is a mistake */
                free(buf);
                buf = NULL;
                snprintf(errbuf, errlen, "config file %s is larger than 1 MiB", path);
                fclose(f);
                return NULL;
            }
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
    }
    if (buf)
        buf[len] = '\0';
    else
        snprintf(errbuf, errlen, "out of memory reading %s", path);
    fclose(f);
    return buf;
}

int dia_config_load_file(struct dia_config *cfg, const char *path, char *errbuf, size_t errlen)
{
    char *text = read_whole_file(path, errbuf, errlen);
    if (!text)
        return DIA_ERR_CONFIG;
    const char *first = text + strspn(text, " \t\r\n");
    int rc;
    if (*first == '{') {
        rc = dia_config_load_dexpy(cfg, path, text, errbuf, errlen);
        free(text);
        return rc;
    }
    rc = DIA_OK;
    int lineno = 0;
    char *save = NULL;
    /* strtok_r on "\n" would skip empty lines and break numbering: walk by hand. */
    for (char *line = text; line && rc == DIA_OK; line = save) {
        lineno++;
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = '\0';
        char *p = line + strspn(line, " \t");
        if (!*p || *p == '#')
            continue;
        char *kw = p;
        p += strcspn(p, " \t");
        if (*p)
            *p++ = '\0';
        p += strspn(p, " \t");
        char origin[300];
        snprintf(origin, sizeof origin, "%s:%d", path, lineno);
        rc = dia_config_apply(cfg, kw, p, origin, errbuf, errlen);
    }
    free(text);
    return rc;
}

/* ---- dexpy.json ---------------------------------------------------------- */

/*
 * dexpy's keys (seeds/dexpy-README.md).  Every one may also come from an
 * environment variable of the same name, which wins, as in dexpy's Docker
 * set-up; an empty variable means null there.
 */
enum dexpy_type { DX_BOOL, DX_STRING, DX_PORT };

static const struct {
    const char *key;
    enum dexpy_type type;
} dexpy_keys[] = {
    {"USB_RECEIVER", DX_BOOL},
    {"DEXCOM_SHARE_SERVER", DX_STRING},
    {"DEXCOM_SHARE_USERNAME", DX_STRING},
    {"DEXCOM_SHARE_PASSWORD", DX_STRING},
    {"MQTT_SERVER", DX_STRING},
    {"MQTT_PORT", DX_PORT},
    {"MQTT_SSL", DX_BOOL},
    {"MQTT_CLIENTID", DX_STRING},
    {"MQTT_TOPIC", DX_STRING},
    {"INFLUXDB_SERVER", DX_STRING},
    {"INFLUXDB_PORT", DX_PORT},
    {"INFLUXDB_SSL", DX_BOOL},
    {"INFLUXDB_SSL_VERIFY", DX_BOOL},
    {"INFLUXDB_USERNAME", DX_STRING},
    {"INFLUXDB_PASSWORD", DX_STRING},
    {"INFLUXDB_DATABASE", DX_STRING},
    {"INFLUXDB_MEASUREMENT", DX_STRING},
    {"NIGHTSCOUT_URL", DX_STRING},
    {"NIGHTSCOUT_SECRET", DX_STRING},
    {"NIGHTSCOUT_TOKEN", DX_STRING},
};
#define DEXPY_NKEYS (sizeof dexpy_keys / sizeof dexpy_keys[0])

struct dexpy_value {
    bool set; /* not null */
    bool b;
    long port;
    char *s;
    int line; /* 0: from the environment */
};

/* Line of the first occurrence of "KEY" in the text, for messages. */
static int line_of_key(const char *text, const char *key)
{
    char quoted[80];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *at = strstr(text, quoted);
    if (!at)
        return 0;
    int line = 1;
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    return line;
}

static int dexpy_error(char *errbuf, size_t errlen, const char *path, int line, const char *key,
                       const char *what)
{
    if (line > 0)
        snprintf(errbuf, errlen, "%s:%d: %s: %s", path, line, key, what);
    else
        snprintf(errbuf, errlen, "environment variable %s (overriding %s): %s", key, path, what);
    return DIA_ERR_CONFIG;
}

static int dexpy_from_json(const json_t *v, enum dexpy_type type, struct dexpy_value *out,
                           const char **what)
{
    if (json_is_null(v))
        return DIA_OK;
    switch (type) {
    case DX_BOOL:
        if (!json_is_boolean(v)) {
            *what = "expected true, false or null";
            return DIA_ERR_CONFIG;
        }
        out->b = json_is_true(v);
        break;
    case DX_PORT:
        if (json_is_string(v)) { /* "1883" is what a hand-edited file often has */
            char *end;
            out->port = strtol(json_string_value(v), &end, 10);
            if (*end || end == json_string_value(v))
                out->port = -1;
        } else if (json_is_integer(v)) {
            out->port = (long)json_integer_value(v);
        } else {
            out->port = -1;
        }
        if (out->port < 1 || out->port > 65535) {
            *what = "expected a port number 1..65535";
            return DIA_ERR_CONFIG;
        }
        break;
    case DX_STRING:
        if (!json_is_string(v)) {
            *what = "expected a string or null";
            return DIA_ERR_CONFIG;
        }
        if (!json_string_value(v)[0])
            return DIA_OK; /* "" means not configured, like null */
        out->s = strdup(json_string_value(v));
        if (!out->s)
            return DIA_ERR_NOMEM;
        break;
    }
    out->set = true;
    return DIA_OK;
}

static int dexpy_from_env(const char *text, enum dexpy_type type, struct dexpy_value *out,
                          const char **what)
{
    free(out->s);
    memset(out, 0, sizeof *out);
    if (!text[0])
        return DIA_OK; /* KEY= in docker-compose: null */
    switch (type) {
    case DX_BOOL:
        if (dia_parse_bool(text, &out->b) != DIA_OK) {
            *what = "expected true or false";
            return DIA_ERR_CONFIG;
        }
        break;
    case DX_PORT: {
        char *end;
        out->port = strtol(text, &end, 10);
        if (*end || out->port < 1 || out->port > 65535) {
            *what = "expected a port number 1..65535";
            return DIA_ERR_CONFIG;
        }
        break;
    }
    case DX_STRING:
        if (!(out->s = strdup(text)))
            return DIA_ERR_NOMEM;
        break;
    }
    out->set = true;
    return DIA_OK;
}

static struct dexpy_value *dx(struct dexpy_value *vals, const char *key)
{
    for (size_t i = 0; i < DEXPY_NKEYS; i++) {
        if (strcmp(dexpy_keys[i].key, key) == 0)
            return &vals[i];
    }
    return NULL; /* not reached for our own key names */
}

/* Add an instance built from a spec and (secret) options, tagged with the
 * file line of the key that enabled it. */
static int dexpy_add(struct dia_config *cfg, bool sink, const char *spec, const char *path,
                     int line, char *errbuf, size_t errlen, struct dia_options **out)
{
    char origin[300];
    if (line > 0)
        snprintf(origin, sizeof origin, "%s:%d", path, line);
    else
        snprintf(origin, sizeof origin, "%s (environment)", path);
    int rc = sink ? add_instance(&cfg->sinks, &cfg->nsinks, spec, origin, errbuf, errlen)
                  : add_instance(&cfg->sources, &cfg->nsources, spec, origin, errbuf, errlen);
    if (rc == DIA_OK)
        *out = sink ? &cfg->sinks[cfg->nsinks - 1].opts : &cfg->sources[cfg->nsources - 1].opts;
    return rc;
}

static int dexpy_translate(struct dia_config *cfg, const char *path, struct dexpy_value *v,
                           char *errbuf, size_t errlen)
{
    struct dia_options *o = NULL;
    char spec[600];
    int rc = DIA_OK;

    struct dexpy_value *usb = dx(v, "USB_RECEIVER");
    if (usb->set && usb->b) {
        rc = dexpy_add(cfg, false, "dexcom-usb", path, usb->line, errbuf, errlen, &o);
        if (rc != DIA_OK)
            return rc;
    }

    struct dexpy_value *share = dx(v, "DEXCOM_SHARE_SERVER");
    if (share->set) {
        /* dexpy: "us" → share2.dexcom.com, "eu" → shareous1.dexcom.com */
        const char *region = NULL;
        if (strcasecmp(share->s, "us") == 0)
            region = "us";
        else if (strcasecmp(share->s, "eu") == 0 || strcasecmp(share->s, "ous") == 0)
            region = "ous";
        else if (strcasecmp(share->s, "jp") == 0)
            region = "jp";
        if (!region)
            return dexpy_error(errbuf, errlen, path, share->line, "DEXCOM_SHARE_SERVER",
                               "expected \"us\", \"eu\" or null");
        struct dexpy_value *user = dx(v, "DEXCOM_SHARE_USERNAME");
        struct dexpy_value *pw = dx(v, "DEXCOM_SHARE_PASSWORD");
        if (!user->set || !pw->set)
            return dexpy_error(errbuf, errlen, path, share->line, "DEXCOM_SHARE_SERVER",
                               "Share needs DEXCOM_SHARE_USERNAME and DEXCOM_SHARE_PASSWORD");
        snprintf(spec, sizeof spec, "dexcom-share:%s", region);
        if ((rc = dexpy_add(cfg, false, spec, path, share->line, errbuf, errlen, &o)) != DIA_OK)
            return rc;
        if ((rc = dia_options_set(o, "username", user->s, false)) != DIA_OK ||
            (rc = dia_options_set(o, "password", pw->s, true)) != DIA_OK)
            return rc;
    }

    struct dexpy_value *mqtt = dx(v, "MQTT_SERVER");
    if (mqtt->set) {
        struct dexpy_value *port = dx(v, "MQTT_PORT");
        /* dexpy turns TLS on for any MQTT_SSL but "" — false included.  We
         * honour the value as written: true is TLS, false is plain. */
        bool tls = dx(v, "MQTT_SSL")->set && dx(v, "MQTT_SSL")->b;
        snprintf(spec, sizeof spec, "%s://%s:%ld", tls ? "mqtts" : "mqtt", mqtt->s,
                 port->set ? port->port : (tls ? 8883L : 1883L));
        if ((rc = dexpy_add(cfg, true, spec, path, mqtt->line, errbuf, errlen, &o)) != DIA_OK)
            return rc;
        struct dexpy_value *cid = dx(v, "MQTT_CLIENTID");
        struct dexpy_value *topic = dx(v, "MQTT_TOPIC");
        if (cid->set && (rc = dia_options_set(o, "client-id", cid->s, false)) != DIA_OK)
            return rc;
        /* dexpy's st|trend|value payload on its topic, for existing subscribers */
        if (topic->set && (rc = dia_options_set(o, "dexpy-topic", topic->s, false)) != DIA_OK)
            return rc;
    }

    struct dexpy_value *influx = dx(v, "INFLUXDB_SERVER");
    if (influx->set) {
        struct dexpy_value *port = dx(v, "INFLUXDB_PORT");
        bool tls = dx(v, "INFLUXDB_SSL")->set && dx(v, "INFLUXDB_SSL")->b;
        snprintf(spec, sizeof spec, "influx+%s://%s:%ld", tls ? "https" : "http", influx->s,
                 port->set ? port->port : 8086L);
        if ((rc = dexpy_add(cfg, true, spec, path, influx->line, errbuf, errlen, &o)) != DIA_OK)
            return rc;
        struct dexpy_value *verify = dx(v, "INFLUXDB_SSL_VERIFY");
        if (tls && verify->set && !verify->b && (rc = dia_options_set(o, "insecure", "1", false)))
            return rc;
        struct dexpy_value *db = dx(v, "INFLUXDB_DATABASE");
        struct dexpy_value *user = dx(v, "INFLUXDB_USERNAME");
        struct dexpy_value *pw = dx(v, "INFLUXDB_PASSWORD");
        struct dexpy_value *meas = dx(v, "INFLUXDB_MEASUREMENT");
        if (db->set && (rc = dia_options_set(o, "db", db->s, false)) != DIA_OK)
            return rc;
        if (user->set && (rc = dia_options_set(o, "username", user->s, false)) != DIA_OK)
            return rc;
        if (pw->set && (rc = dia_options_set(o, "password", pw->s, true)) != DIA_OK)
            return rc;
        /* dexpy's schema: its measurement name, cbg and direction fields */
        if ((rc = dia_options_set(o, "schema", "dexpy", false)) != DIA_OK)
            return rc;
        if (meas->set && (rc = dia_options_set(o, "measurement", meas->s, false)) != DIA_OK)
            return rc;
    }

    struct dexpy_value *ns = dx(v, "NIGHTSCOUT_URL");
    if (ns->set) {
        if (strncmp(ns->s, "http://", 7) != 0 && strncmp(ns->s, "https://", 8) != 0)
            return dexpy_error(errbuf, errlen, path, ns->line, "NIGHTSCOUT_URL",
                               "expected a URL starting with https:// (or http://)");
        snprintf(spec, sizeof spec, "nightscout+%s", ns->s);
        if ((rc = dexpy_add(cfg, true, spec, path, ns->line, errbuf, errlen, &o)) != DIA_OK)
            return rc;
        struct dexpy_value *secret = dx(v, "NIGHTSCOUT_SECRET");
        struct dexpy_value *token = dx(v, "NIGHTSCOUT_TOKEN");
        if (secret->set && (rc = dia_options_set(o, "api-secret", secret->s, true)) != DIA_OK)
            return rc;
        if (token->set && (rc = dia_options_set(o, "token", token->s, true)) != DIA_OK)
            return rc;
        if (!secret->set && !token->set)
            return dexpy_error(errbuf, errlen, path, ns->line, "NIGHTSCOUT_URL",
                               "Nightscout needs NIGHTSCOUT_SECRET or NIGHTSCOUT_TOKEN");
    }
    return DIA_OK;
}

int dia_config_load_dexpy(struct dia_config *cfg, const char *path, const char *text, char *errbuf,
                          size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(errbuf, errlen, "%s:%d: not valid JSON: %s", path, jerr.line, jerr.text);
        return DIA_ERR_CONFIG;
    }
    struct dexpy_value vals[DEXPY_NKEYS];
    memset(vals, 0, sizeof vals);
    int rc = DIA_OK;
    if (!json_is_object(root)) {
        snprintf(errbuf, errlen, "%s:1: expected a JSON object of dexpy settings", path);
        rc = DIA_ERR_CONFIG;
        goto done;
    }
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        size_t i = 0;
        while (i < DEXPY_NKEYS && strcmp(dexpy_keys[i].key, key) != 0)
            i++;
        int line = line_of_key(text, key);
        if (i == DEXPY_NKEYS) {
            rc = dexpy_error(errbuf, errlen, path, line, key,
                             "unknown dexpy setting (check its spelling against dexpy's README)");
            goto done;
        }
        const char *what = NULL;
        vals[i].line = line;
        rc = dexpy_from_json(value, dexpy_keys[i].type, &vals[i], &what);
        if (rc == DIA_ERR_CONFIG) {
            rc = dexpy_error(errbuf, errlen, path, line, key, what);
            goto done;
        }
        if (rc != DIA_OK)
            goto done;
    }
    for (size_t i = 0; i < DEXPY_NKEYS; i++) {
        const char *env = getenv(dexpy_keys[i].key);
        if (!env)
            continue;
        const char *what = NULL;
        rc = dexpy_from_env(env, dexpy_keys[i].type, &vals[i], &what);
        if (rc == DIA_ERR_CONFIG) {
            rc = dexpy_error(errbuf, errlen, path, 0, dexpy_keys[i].key, what);
            goto done;
        }
        if (rc != DIA_OK)
            goto done;
        vals[i].line = 0;
    }
    cfg->from_dexpy = true;
    rc = dexpy_translate(cfg, path, vals, errbuf, errlen);
done:
    for (size_t i = 0; i < DEXPY_NKEYS; i++) {
        if (vals[i].s) {
            explicit_bzero(vals[i].s, strlen(vals[i].s));
            free(vals[i].s);
        }
    }
    json_decref(root);
    return rc;
}

/* ---- validation ---------------------------------------------------------- */

/* "name" is accepted by every driver: it fixes the instance name, which keys
 * the sink cursor and the source state, so reordering lines is harmless. */
static int assign_name(struct dia_instance_config *ic, struct dia_instance_config *all, size_t idx,
                       char *errbuf, size_t errlen)
{
    struct dia_options *o = &ic->opts;
    const char *given = dia_opt_str(o, "name", NULL);
    if (given) {
        if (!given[0] || strlen(given) >= sizeof ic->name || strpbrk(given, " \t/")) {
            snprintf(errbuf, errlen, "%s: option name: \"%s\" must be 1..47 characters, no spaces",
                     o->origin, given);
            return DIA_ERR_CONFIG;
        }
        snprintf(ic->name, sizeof ic->name, "%s", given);
        /* drop it so the driver's own schema does not see it; keep the
         * others in the order given (validation looks at neighbours) */
        for (size_t i = 0; i < o->n; i++) {
            if (strcmp(o->v[i].key, "name") == 0) {
                free(o->v[i].key);
                free(o->v[i].value);
                memmove(&o->v[i], &o->v[i + 1], (o->n - i - 1) * sizeof o->v[i]);
                o->n--;
                break;
            }
        }
    } else {
        int same = 0;
        for (size_t i = 0; i < idx; i++)
            same += strcmp(all[i].opts.driver, o->driver) == 0;
        if (same)
            snprintf(ic->name, sizeof ic->name, "%.30s#%d", o->driver, same + 1);
        else
            snprintf(ic->name, sizeof ic->name, "%.46s", o->driver);
    }
    for (size_t i = 0; i < idx; i++) {
        if (strcmp(all[i].name, ic->name) == 0) {
            snprintf(errbuf, errlen, "%s: two instances are named %s; give one name=…", o->origin,
                     ic->name);
            return DIA_ERR_CONFIG;
        }
    }
    return DIA_OK;
}

static void list_drivers(bool sinks, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0;; i++) {
        const char *name = sinks ? (dia_sink_drivers[i] ? dia_sink_drivers[i]->name : NULL)
                                 : (dia_source_drivers[i] ? dia_source_drivers[i]->name : NULL);
        if (!name)
            break;
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", name);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
}

/* A TLS scheme variant ("mqtts") belongs to the plain driver ("mqtt"). */
static const char *resolve_driver_name(const char *name, bool sink, char *buf, size_t len)
{
    bool found = sink ? dia_sink_driver_find(name) != NULL : dia_source_driver_find(name) != NULL;
    size_t n = strlen(name);
    if (found || n < 2 || name[n - 1] != 's')
        return name;
    snprintf(buf, len, "%.*s", (int)(n - 1), name);
    found = sink ? dia_sink_driver_find(buf) != NULL : dia_source_driver_find(buf) != NULL;
    return found ? buf : name;
}

/* The driver's own start-up check: the target and combinations of options
 * a schema cannot express (a port in range, db= for api=v1, a region). */
static int check_instance(const struct dia_options *o, bool sink,
                          int (*check)(const struct dia_options *, char *, size_t), char *errbuf,
                          size_t errlen)
{
    if (!check)
        return DIA_OK;
    char why[512] = "";
    int rc = check(o, why, sizeof why);
    if (rc == DIA_OK)
        return DIA_OK;
    /* drivers quote targets in display form already; this is the safety net */
    char shown[512];
    dia_text_redact_urls(why[0] ? why : "its settings are not usable", shown, sizeof shown);
    snprintf(errbuf, errlen, "%s: %s %s: %s", o->origin, sink ? "sink" : "source", o->driver,
             shown);
    return rc == DIA_ERR_NOMEM ? rc : DIA_ERR_CONFIG;
}

static int validate_list(struct dia_instance_config *v, size_t n, bool sink, char *errbuf,
                         size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        struct dia_options *o = &v[i].opts;
        char plain[48];
        const char *name = resolve_driver_name(o->driver, sink, plain, sizeof plain);
        const struct dia_option_spec *schema = NULL;
        bool wants_target = false;
        int (*check)(const struct dia_options *, char *, size_t) = NULL;
        if (sink) {
            const struct dia_sink_driver *d = dia_sink_driver_find(name);
            if (d) {
                schema = d->options;
                wants_target = d->target_help != NULL;
                check = d->check;
            }
        } else {
            const struct dia_source_driver *d = dia_source_driver_find(name);
            if (d) {
                schema = d->options;
                wants_target = d->target_help != NULL;
                check = d->check;
            }
        }
        if (!schema) {
            char known[256];
            list_drivers(sink, known, sizeof known);
            snprintf(errbuf, errlen,
                     "%s: %s %s is not available in this build of diabridge (available: %s)",
                     o->origin, sink ? "sink" : "source", o->driver, known);
            return DIA_ERR_CONFIG;
        }
        if (name != o->driver) {
            char *d = strdup(name);
            if (!d)
                return DIA_ERR_NOMEM;
            free(o->driver);
            o->driver = d;
        }
        if (o->target && !wants_target) {
            char shown[256];
            dia_url_display(o->target, shown, sizeof shown);
            snprintf(errbuf, errlen, "%s: %s takes no target (\"%s\"); use %s,KEY=VALUE", o->origin,
                     o->driver, shown, o->driver);
            return DIA_ERR_CONFIG;
        }
        int rc = assign_name(&v[i], v, i, errbuf, errlen);
        if (rc != DIA_OK)
            return rc;
        rc = dia_options_validate(o, schema, errbuf, errlen);
        if (rc != DIA_OK)
            return rc;
        rc = check_instance(o, sink, check, errbuf, errlen);
        if (rc != DIA_OK)
            return rc;
    }
    return DIA_OK;
}

int dia_config_validate(struct dia_config *cfg, char *errbuf, size_t errlen)
{
    int rc = validate_list(cfg->sources, cfg->nsources, false, errbuf, errlen);
    if (rc == DIA_OK)
        rc = validate_list(cfg->sinks, cfg->nsinks, true, errbuf, errlen);
    return rc;
}
