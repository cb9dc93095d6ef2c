/*
 * The consolidation group of Dexcom glucose readings (DESIGN §6).
 *
 * One reading can reach diabridge from a receiver (dexcom-usb), from Dexcom
 * Share (dexcom-share) and, later, from the transmitter itself (BLE).  The
 * journal publishes one of them only when their group strings are equal,
 * so every Dexcom source names its group with this one function:
 *
 *     "dexcom:" + the transmitter id in capitals, e.g. "dexcom:8GABCD"
 *
 * A user's sensor= (or patient=) value goes through it too.  A value that
 * is shaped like a transmitter id (see dexcom_is_transmitter_id) names that
 * transmitter, so "8GABCD", "8gabcd" and "dexcom:8gabcd" all give the group
 * a receiver reporting transmitter 8GABCD uses by itself.  Any other value
 * (a patient name) is kept exactly as written; sources that all get the
 * same name then share one group.
 */
#ifndef DIA_PROTO_DEXCOM_SENSOR_GROUP_H
#define DIA_PROTO_DEXCOM_SENSOR_GROUP_H

#include <stdbool.h>
#include <stddef.h>

#define DEXCOM_SENSOR_GROUP_PREFIX "dexcom:"

/*
 * Is text a Dexcom transmitter id as a person would copy it from the app or
 * the receiver (any case)?  Five characters of the G4 alphabet
 * 0-9 A-Z without I, O, V, Z (shared/specs/dexcom-ble-and-g4-radio.md §3.3),
 * or six letters and digits starting with 4 (G5) or 8 (G6) (same spec
 * §1.1).  The shorter G7 / ONE+ ids are not recognised here, since a short
 * patient name could look the same: write them as "dexcom:ID".
 */
bool dexcom_is_transmitter_id(const char *text);

/*
 * The group for a Dexcom source's glucose readings, in out[0..len):
 *   - option (the user's sensor= value) when given: "dexcom:" + the id in
 *     capitals when it is a transmitter id, with or without the "dexcom:"
 *     prefix (after the prefix any letters and digits count as an id);
 *     otherwise the value unchanged;
 *   - else transmitter_id (what the device reported; letters and digits):
 *     "dexcom:" + it in capitals;
 *   - else "" (the source has nothing to name its sensor by; the journal
 *     then groups by device).
 * NULL and "" both mean "not given".  Returns DIA_OK, or DIA_ERR_ARG when
 * the result does not fit in len or transmitter_id is not letters and
 * digits (out is "" then).
 */
int dexcom_sensor_group(const char *option, const char *transmitter_id, char *out, size_t len);

#endif
