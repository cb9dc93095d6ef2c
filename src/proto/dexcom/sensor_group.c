/*
 * The Dexcom consolidation group naming rule; see sensor_group.h.
 */
#include "proto/dexcom/sensor_group.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

static bool is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static char upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static bool all_alnum(const char *text)
{
    if (!text[0])
        return false;
    for (const char *p = text; *p; p++) {
        if (!is_alnum(*p))
            return false;
    }
    return true;
}

bool dexcom_is_transmitter_id(const char *text)
{
    if (!text || !all_alnum(text))
        return false;
    size_t n = strlen(text);
    if (n == 5) {
        /* G4: the 32-symbol alphabet of the radio encoding (no I, O, V, Z) */
        for (size_t i = 0; i < n; i++) {
            if (strchr("IOVZ", upper(text[i])))
                return false;
        }
        return true;
    }
    return n == 6 && (text[0] == '4' || text[0] == '8');
}

/* "dexcom:" + id in capitals; "" and DIA_ERR_ARG when it does not fit. */
static int name_transmitter(const char *id, char *out, size_t len)
{
    size_t plen = strlen(DEXCOM_SENSOR_GROUP_PREFIX), n = strlen(id);
    if (plen + n >= len) {
        if (len)
            out[0] = '\0';
        return DIA_ERR_ARG;
    }
    memcpy(out, DEXCOM_SENSOR_GROUP_PREFIX, plen);
    for (size_t i = 0; i < n; i++)
        out[plen + i] = upper(id[i]);
    out[plen + n] = '\0';
    return DIA_OK;
}

int dexcom_sensor_group(const char *option, const char *transmitter_id, char *out, size_t len)
{
    if (!out || !len)
        return DIA_ERR_ARG;
    out[0] = '\0';
    if (option && option[0]) {
        size_t plen = strlen(DEXCOM_SENSOR_GROUP_PREFIX);
        if (strncasecmp(option, DEXCOM_SENSOR_GROUP_PREFIX, plen) == 0 && all_alnum(option + plen))
            return name_transmitter(option + plen, out, len);
        if (dexcom_is_transmitter_id(option))
            return name_transmitter(option, out, len);
        if (strlen(option) >= len)
            return DIA_ERR_ARG;
        snprintf(out, len, "%s", option);
        return DIA_OK;
    }
    if (transmitter_id && transmitter_id[0]) {
        if (!all_alnum(transmitter_id))
            return DIA_ERR_ARG;
        return name_transmitter(transmitter_id, out, len);
    }
    return DIA_OK;
}
