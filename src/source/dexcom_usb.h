/*
 * dexcom-usb source: the parts that are pure enough to test on their own.
 */
#ifndef DIABRIDGE_SOURCE_DEXCOM_USB_H
#define DIABRIDGE_SOURCE_DEXCOM_USB_H

#include <stdbool.h>
#include <stdint.h>

/* A receiver stores one reading every 5 minutes. */
#define DEXUSB_READING_INTERVAL_MS 300000

/* How the source keeps in step with the receiver's readings. */
struct dexusb_rhythm {
    int64_t poll_after_ms; /* grace after a reading is due, for the receiver to store it */
    int64_t retry_ms;      /* pause between the short retries while a reading is late */
    int retries;           /* short retries before falling back to the 5-minute slots */
};

/*
 * When to poll next, in host milliseconds.  newest_ms is the host time of
 * the newest reading seen (0: none yet), got_new whether the poll that just
 * ended brought a new one.  *late_polls counts the retries spent on a late
 * reading and is kept by the caller between polls.
 */
int64_t dexusb_next_poll(const struct dexusb_rhythm *r, int64_t newest_ms, int64_t now_ms,
                         bool got_new, int *late_polls);

#endif
