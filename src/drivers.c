/*
 * The driver registries (DESIGN §7): one X-macro row per driver, as
 * rtl_433's device list.  Adding a source or sink is its own file in
 * src/source/ or src/sink/ plus one line here.
 */
#include <string.h>

#include "core/driver.h"

#define DIA_SOURCE_LIST(X) X(sim) X(dexcom_usb) X(dexcom_share)
#define DIA_SINK_LIST(X)   X(jsonl) X(influx) X(mqtt) X(nightscout)

#define DECLARE_SOURCE(id) extern const struct dia_source_driver dia_source_##id;
#define DECLARE_SINK(id)   extern const struct dia_sink_driver dia_sink_##id;
#define SOURCE_ROW(id)     &dia_source_##id,
#define SINK_ROW(id)       &dia_sink_##id,
DIA_SOURCE_LIST(DECLARE_SOURCE)
DIA_SINK_LIST(DECLARE_SINK)

const struct dia_source_driver *const dia_source_drivers[] = {DIA_SOURCE_LIST(SOURCE_ROW) NULL};
const struct dia_sink_driver *const dia_sink_drivers[] = {DIA_SINK_LIST(SINK_ROW) NULL};

const struct dia_source_driver *dia_source_driver_find(const char *name)
{
    for (size_t i = 0; dia_source_drivers[i]; i++) {
        if (strcmp(dia_source_drivers[i]->name, name) == 0)
            return dia_source_drivers[i];
    }
    return NULL;
}

const struct dia_sink_driver *dia_sink_driver_find(const char *name)
{
    for (size_t i = 0; dia_sink_drivers[i]; i++) {
        if (strcmp(dia_sink_drivers[i]->name, name) == 0)
            return dia_sink_drivers[i];
    }
    return NULL;
}
