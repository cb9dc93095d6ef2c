/*
 * Record → Nightscout document mapping, shared by the nightscout sink and
 * `diabridge export --format nightscout`.  See docs/sinks/nightscout.md.
 */
#ifndef DIA_SINK_NIGHTSCOUT_MAP_H
#define DIA_SINK_NIGHTSCOUT_MAP_H

#include <jansson.h>

#include "core/record.h"

enum dia_ns_collection {
    DIA_NS_NONE = 0, /* this record has no Nightscout form */
    DIA_NS_ENTRIES,
    DIA_NS_TREATMENTS,
    DIA_NS_DEVICESTATUS,
};

/* A new JSON object for r, and the collection it belongs to (NULL and
 * DIA_NS_NONE when the record has no Nightscout form). */
json_t *dia_ns_document(const struct dia_record *r, enum dia_ns_collection *coll);
const char *dia_ns_collection_name(enum dia_ns_collection c);

#endif
