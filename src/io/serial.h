/*
 * Serial transport (termios) for devices that appear as a tty: the Dexcom
 * receiver's CDC-ACM port today, the Carelink stick later.
 *
 * The port is opened raw (cfmakeraw, 8N1, no flow control; the spec for the
 * Dexcom receiver, dexcom-receiver-usb-and-share.md §1.2, gives 115200 baud,
 * which CDC-ACM ignores), O_NOCTTY so a device can never become our
 * controlling terminal, O_CLOEXEC, and locked exclusively (TIOCEXCL plus
 * flock) so ModemManager, a second diabridge or a terminal program cannot
 * write into it while we talk.  Both directions are flushed on open and on
 * close: after a cable pull in the middle of a transfer, bytes left in the
 * tty buffers would otherwise confuse the next session (spec §1.1).
 *
 * Every read and write has a deadline (poll).  Failures are classified:
 *   DIA_ERR_TIMEOUT       nothing (or not enough) arrived in time;
 *   DIA_ERR_DISCONNECTED  the device went away (EIO, ENXIO, ENODEV, hang-up,
 *                         end of file): the caller closes and reconnects;
 *   DIA_ERR_IO            anything else (permissions, port busy, …), with a
 *                         sentence saying what to do.
 */
#ifndef DIA_IO_SERIAL_H
#define DIA_IO_SERIAL_H

#include <stddef.h>
#include <stdint.h>

struct dia_serial;

/* Open `path` raw at `baud` (e.g. 115200).  On failure returns a classified
 * error with a sentence naming the path and what to do in errbuf. */
int dia_serial_open(const char *path, unsigned baud, struct dia_serial **out, char *errbuf,
                    size_t errlen);
/* Flush both directions, release the lock, close.  NULL is fine. */
void dia_serial_close(struct dia_serial *s);
const char *dia_serial_path(const struct dia_serial *s);

/* Discard what is buffered in both directions (before a new request). */
int dia_serial_flush(struct dia_serial *s);

/* Write all len bytes within timeout_ms. */
int dia_serial_write_all(struct dia_serial *s, const void *buf, size_t len, int timeout_ms);

/* Wait up to timeout_ms for data, then read what is there (at most cap
 * bytes) into buf; *got receives the count (≥ 1 on DIA_OK). */
int dia_serial_read(struct dia_serial *s, void *buf, size_t cap, int timeout_ms, size_t *got);

/* The last failure of this port as a sentence (for logs). */
const char *dia_serial_errmsg(const struct dia_serial *s);

/*
 * Find the tty of a USB device by vendor and product id, the way the spec
 * (§1.1) describes: for each /sys/class/tty/NAME, the USB device directory
 * is the parent of what NAME/device points to, holding idVendor and
 * idProduct.  sysfs_root is "/sys" normally (a fake tree in tests); the
 * result is dev_dir/NAME ("/dev/ttyACM0").  When several match, the first
 * in name order is taken.  Returns DIA_OK, or DIA_ERR_DISCONNECTED when no
 * such device is plugged in.
 */
int dia_serial_find_usb(const char *sysfs_root, const char *dev_dir, uint16_t vendor,
                        uint16_t product, char *out, size_t len);

#endif
