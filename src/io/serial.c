/*
 * termios serial transport; see serial.h for the contract.
 *
 * Design notes:
 * - The descriptor is non-blocking and every wait goes through poll() with
 *   a deadline on the monotonic clock, so a receiver that stops answering
 *   costs one timeout, never a hung thread.
 * - A USB CDC-ACM tty whose device is unplugged reports POLLHUP/POLLERR and
 *   read() returns 0 or fails with EIO/ENODEV; a pty whose master closed
 *   does the same.  All of these mean "the device is gone":
 *   DIA_ERR_DISCONNECTED, so the supervisor backs off and reconnects.
 * - ModemManager probes any CDC-ACM port that claims to speak AT commands
 *   (spec dexcom-receiver-usb-and-share.md §1.1).  The udev rule keeps it
 *   away; TIOCEXCL and flock keep away everything else that opens the port
 *   after us (flock also stops a second diabridge).
 */
#include "io/serial.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"

struct dia_serial {
    int fd;
    char path[PATH_MAX];
    char errmsg[300];
};

static bool errno_means_gone(int e)
{
    return e == EIO || e == ENXIO || e == ENODEV || e == EPIPE || e == ENOENT;
}

/* Record a sentence (fmt takes the path, then a detail) and return code. */
__attribute__((format(printf, 3, 4))) static int fail_with(struct dia_serial *s, int code,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return code;
}
#define fail(s, code, fmt, detail) fail_with((s), (code), fmt, (s)->path, (detail))

static speed_t baud_constant(unsigned baud)
{
    switch (baud) {
    case 9600:
        return B9600;
    case 19200:
        return B19200;
    case 38400:
        return B38400;
    case 57600:
        return B57600;
    case 230400:
        return B230400;
    default:
        return B115200;
    }
}

int dia_serial_open(const char *path, unsigned baud, struct dia_serial **out, char *errbuf,
                    size_t errlen)
{
    *out = NULL;
    struct dia_serial *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errbuf, errlen, "out of memory");
        return DIA_ERR_NOMEM;
    }
    snprintf(s->path, sizeof s->path, "%s", path);
    int rc = DIA_OK;
    s->fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (s->fd < 0) {
        int e = errno;
        if (e == EACCES || e == EPERM)
            rc = fail(s, DIA_ERR_IO,
                      "%s: permission denied (%s); install the udev rule "
                      "(packaging/udev/60-diabridge-dexcom.rules) and add the service user to "
                      "the diabridge group",
                      strerror(e));
        else if (e == ENOENT || errno_means_gone(e))
            rc = fail(s, DIA_ERR_DISCONNECTED,
                      "%s: no such device (%s); is the receiver plugged in?", strerror(e));
        else if (e == EBUSY)
            rc = fail(s, DIA_ERR_IO, "%s: port is busy (%s); close the other program using it",
                      strerror(e));
        else
            rc = fail(s, DIA_ERR_IO, "%s: cannot open (%s)", strerror(e));
        goto error;
    }
    if (flock(s->fd, LOCK_EX | LOCK_NB) != 0) {
        rc = fail(s, DIA_ERR_IO,
                  "%s: another program holds the port (%s); stop it (a second diabridge, "
                  "dexpy, a terminal program) and try again",
                  strerror(errno));
        goto error;
    }
    if (ioctl(s->fd, TIOCEXCL) != 0 && errno != ENOTTY) {
        rc = fail(s, errno_means_gone(errno) ? DIA_ERR_DISCONNECTED : DIA_ERR_IO,
                  "%s: cannot lock the port (%s)", strerror(errno));
        goto error;
    }
    struct termios tio;
    if (tcgetattr(s->fd, &tio) != 0) {
        int e = errno;
        rc = fail(s, errno_means_gone(e) ? DIA_ERR_DISCONNECTED : DIA_ERR_IO,
                  e == ENOTTY ? "%s: is not a serial port (%s); give the receiver's tty, "
                                "e.g. /dev/ttyACM0"
                              : "%s: cannot read the port settings (%s)",
                  strerror(e));
        goto error;
    }
    cfmakeraw(&tio);
    tio.c_cflag &= ~(tcflag_t)(CSTOPB | PARENB | CRTSCTS | CSIZE);
    tio.c_cflag |= CS8 | CLOCAL | CREAD;
    tio.c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY);
    tio.c_cc[VMIN] = 0;
    tio.c_cc[VTIME] = 0;
    cfsetispeed(&tio, baud_constant(baud));
    cfsetospeed(&tio, baud_constant(baud));
    if (tcsetattr(s->fd, TCSANOW, &tio) != 0) {
        int e = errno;
        rc = fail(s, errno_means_gone(e) ? DIA_ERR_DISCONNECTED : DIA_ERR_IO,
                  "%s: cannot set raw mode (%s)", strerror(e));
        goto error;
    }
    (void)tcflush(s->fd, TCIOFLUSH);
    *out = s;
    return DIA_OK;
error:
    snprintf(errbuf, errlen, "%s", s->errmsg);
    if (s->fd >= 0)
        close(s->fd);
    free(s);
    return rc;
}

void dia_serial_close(struct dia_serial *s)
{
    if (!s)
        return;
    if (s->fd >= 0) {
        (void)tcflush(s->fd, TCIOFLUSH);
        (void)ioctl(s->fd, TIOCNXCL);
        close(s->fd); /* releases the flock */
    }
    free(s);
}

const char *dia_serial_path(const struct dia_serial *s)
{
    return s->path;
}

const char *dia_serial_errmsg(const struct dia_serial *s)
{
    return s->errmsg;
}

int dia_serial_flush(struct dia_serial *s)
{
    if (tcflush(s->fd, TCIOFLUSH) == 0)
        return DIA_OK;
    int e = errno;
    return fail(s, errno_means_gone(e) ? DIA_ERR_DISCONNECTED : DIA_ERR_IO, "%s: flush failed (%s)",
                strerror(e));
}

/* Wait for `events` until the deadline.  DIA_OK when ready. */
static int wait_ready(struct dia_serial *s, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - dia_mono_ms();
        if (left < 0)
            left = 0;
        struct pollfd p = {.fd = s->fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail(s, DIA_ERR_IO, "%s: poll failed (%s)", strerror(errno));
        }
        if (n == 0)
            return fail(s, DIA_ERR_TIMEOUT, "%s: %s", "no answer in time");
        if (p.revents & events)
            return DIA_OK; /* data first: drain what arrived before a hang-up */
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
            return fail(s, DIA_ERR_DISCONNECTED, "%s: %s",
                        "the device hung up (unplugged or reset)");
    }
}

int dia_serial_write_all(struct dia_serial *s, const void *buf, size_t len, int timeout_ms)
{
    const unsigned char *p = buf;
    int64_t deadline = dia_mono_ms() + timeout_ms;
    while (len > 0) {
        ssize_t n = write(s->fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_ready(s, POLLOUT, deadline);
            if (rc != DIA_OK)
                return rc;
            continue;
        }
        int e = n < 0 ? errno : EIO;
        return fail(s, errno_means_gone(e) ? DIA_ERR_DISCONNECTED : DIA_ERR_IO,
                    "%s: write failed (%s)", strerror(e));
    }
    return DIA_OK;
}

int dia_serial_read(struct dia_serial *s, void *buf, size_t cap, int timeout_ms, size_t *got)
{
    *got = 0;
    int64_t deadline = dia_mono_ms() + timeout_ms;
    for (;;) {
        int rc = wait_ready(s, POLLIN, deadline);
        if (rc != DIA_OK)
            return rc;
        ssize_t n = read(s->fd, buf, cap);
        if (n > 0) {
            *got = (size_t)n;
            return DIA_OK;
        }
        if (n == 0)
            return fail(s, DIA_ERR_DISCONNECTED, "%s: %s",
                        "end of file: the device was unplugged or reset");
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            continue;
        int e = errno;
        return fail(s, errno_means_gone(e) ? DIA_ERR_DISCONNECTED : DIA_ERR_IO,
                    "%s: read failed (%s)", strerror(e));
    }
}

/* ---- finding the device in sysfs ------------------------------------------ */

static bool read_hex_file(const char *path, unsigned *value)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    char line[32];
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok)
        return false;
    char *end;
    unsigned long v = strtoul(line, &end, 16);
    if (end == line || v > 0xFFFF)
        return false;
    *value = (unsigned)v;
    return true;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int dia_serial_find_usb(const char *sysfs_root, const char *dev_dir, uint16_t vendor,
                        uint16_t product, char *out, size_t len)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/class/tty", sysfs_root);
    DIR *d = opendir(dir);
    if (!d)
        return DIA_ERR_DISCONNECTED;
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < sizeof names / sizeof names[0]) {
        if (e->d_name[0] == '.')
            continue;
        char link[PATH_MAX * 2], real[PATH_MAX], id[PATH_MAX + 16];
        snprintf(link, sizeof link, "%s/%s/device", dir, e->d_name);
        if (!realpath(link, real))
            continue;
        /* The interface directory; its parent is the USB device. */
        char *slash = strrchr(real, '/');
        if (!slash)
            continue;
        *slash = '\0';
        unsigned vid = 0, pid = 0;
        snprintf(id, sizeof id, "%s/idVendor", real);
        if (!read_hex_file(id, &vid))
            continue;
        snprintf(id, sizeof id, "%s/idProduct", real);
        if (!read_hex_file(id, &pid))
            continue;
        if (vid == vendor && pid == product) {
            names[n] = strdup(e->d_name);
            if (names[n])
                n++;
        }
    }
    closedir(d);
    if (n == 0)
        return DIA_ERR_DISCONNECTED;
    qsort(names, n, sizeof names[0], by_name);
    int rc = DIA_OK;
    if ((size_t)snprintf(out, len, "%s/%s", dev_dir, names[0]) >= len)
        rc = DIA_ERR_ARG;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return rc;
}
