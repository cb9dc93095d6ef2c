/*
 * src/io/serial: the termios transport against a real pty pair (the same
 * kernel tty layer a CDC-ACM receiver goes through), and the sysfs finder
 * against a fake /sys tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/err.h"
#include "io/serial.h"
#include "testutil.h"

struct pty {
    int master;
    char path[128];
};

static void pty_open(struct pty *p)
{
    p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    assert_true(p->master >= 0);
    assert_int_equal(grantpt(p->master), 0);
    assert_int_equal(unlockpt(p->master), 0);
    snprintf(p->path, sizeof p->path, "%s", ptsname(p->master));
}

static void test_roundtrip_raw(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    struct dia_serial *s = NULL;
    char err[256];
    assert_int_equal(dia_serial_open(p.path, 115200, &s, err, sizeof err), DIA_OK);
    assert_string_equal(dia_serial_path(s), p.path);

    /* Raw mode: every byte value passes unchanged, nothing is echoed. */
    uint8_t frame[256];
    for (int i = 0; i < 256; i++)
        frame[i] = (uint8_t)i;
    assert_int_equal(dia_serial_write_all(s, frame, sizeof frame, 1000), DIA_OK);
    uint8_t got[300];
    size_t n = 0;
    while (n < sizeof frame) {
        ssize_t r = read(p.master, got + n, sizeof got - n);
        assert_true(r > 0);
        n += (size_t)r;
    }
    assert_memory_equal(got, frame, sizeof frame);

    assert_int_equal(write(p.master, frame, sizeof frame), (ssize_t)sizeof frame);
    n = 0;
    while (n < sizeof frame) {
        size_t k = 0;
        assert_int_equal(dia_serial_read(s, got + n, sizeof got - n, 1000, &k), DIA_OK);
        assert_true(k > 0);
        n += k;
    }
    assert_memory_equal(got, frame, sizeof frame);
    dia_serial_close(s);
    close(p.master);
}

static void test_timeout(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    struct dia_serial *s = NULL;
    char err[256];
    assert_int_equal(dia_serial_open(p.path, 115200, &s, err, sizeof err), DIA_OK);
    uint8_t b[8];
    size_t k = 99;
    int64_t t0 = dia_mono_ms();
    assert_int_equal(dia_serial_read(s, b, sizeof b, 150, &k), DIA_ERR_TIMEOUT);
    int64_t took = dia_mono_ms() - t0;
    assert_int_equal(k, 0);
    /* It waited its time, and then gave up rather than hang.  The upper
     * bound only has to tell "timed out" from "hung", so it leaves room for
     * a machine busy with other work. */
    assert_true(took >= 140);
    assert_true(took < 10000);
    assert_non_null(strstr(dia_serial_errmsg(s), "no answer"));
    dia_serial_close(s);
    close(p.master);
}

static void test_flush_discards_stale_input(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    struct dia_serial *s = NULL;
    char err[256];
    assert_int_equal(dia_serial_open(p.path, 115200, &s, err, sizeof err), DIA_OK);
    /* One write: once its first byte can be read, the rest of it has
     * reached our side of the tty too (instead of sleeping and hoping). */
    assert_int_equal(write(p.master, "stale!", 6), 6);
    uint8_t b[8];
    size_t k = 0;
    assert_int_equal(dia_serial_read(s, b, 1, 10000, &k), DIA_OK);
    assert_int_equal(k, 1);
    assert_int_equal(dia_serial_flush(s), DIA_OK);
    assert_int_equal(dia_serial_read(s, b, sizeof b, 300, &k), DIA_ERR_TIMEOUT);
    dia_serial_close(s);
    close(p.master);
}

static void test_unplug_is_disconnected(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    struct dia_serial *s = NULL;
    char err[256];
    assert_int_equal(dia_serial_open(p.path, 115200, &s, err, sizeof err), DIA_OK);
    close(p.master); /* the cable is pulled */
    uint8_t b[8];
    size_t k = 0;
    /* Noticed at once, not after the timeout: the timeout is far longer than
     * the bound, which in turn is far longer than a loaded machine needs. */
    int64_t t0 = dia_mono_ms();
    assert_int_equal(dia_serial_read(s, b, sizeof b, 60000, &k), DIA_ERR_DISCONNECTED);
    assert_true(dia_mono_ms() - t0 < 10000);
    int rc = dia_serial_write_all(s, "x", 1, 500);
    assert_true(rc == DIA_ERR_DISCONNECTED || rc == DIA_OK); /* a pty may still buffer it */
    dia_serial_close(s);
}

static void test_exclusive(void **state)
{
    (void)state;
    struct pty p;
    pty_open(&p);
    struct dia_serial *a = NULL, *b = NULL;
    char err[256];
    assert_int_equal(dia_serial_open(p.path, 115200, &a, err, sizeof err), DIA_OK);
    int rc = dia_serial_open(p.path, 115200, &b, err, sizeof err);
    assert_int_equal(rc, DIA_ERR_IO);
    assert_null(b);
    assert_non_null(strstr(err, p.path));
    dia_serial_close(a);
    /* released on close */
    assert_int_equal(dia_serial_open(p.path, 115200, &b, err, sizeof err), DIA_OK);
    dia_serial_close(b);
    close(p.master);
}

static void test_open_errors(void **state)
{
    (void)state;
    struct dia_serial *s = NULL;
    char err[256];
    assert_int_equal(dia_serial_open("/dev/diabridge-no-such-tty", 115200, &s, err, sizeof err),
                     DIA_ERR_DISCONNECTED);
    assert_null(s);
    assert_non_null(strstr(err, "plugged in"));

    char *dir = testutil_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/plain-file", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(dia_serial_open(path, 115200, &s, err, sizeof err), DIA_ERR_IO);
    assert_non_null(strstr(err, "not a serial port"));
    testutil_rmdir(dir);
}

/* ---- sysfs finder ---------------------------------------------------------- */

static void mkdirs(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, 0755);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A USB device with one interface and a tty bound to it, as the kernel
 * lays it out: class/tty/NAME/device → the interface directory, whose
 * parent holds idVendor and idProduct. */
static void fake_usb_tty(const char *root, const char *name, const char *usbdev, const char *vid,
                         const char *pid)
{
    char dev[1024], intf[1200], link[1024], file[1300];
    snprintf(dev, sizeof dev, "%s/devices/pci0000:00/usb1/%s", root, usbdev);
    snprintf(intf, sizeof intf, "%s/%s:1.0", dev, usbdev);
    mkdirs(intf);
    snprintf(file, sizeof file, "%s/idVendor", dev);
    write_file(file, vid);
    snprintf(file, sizeof file, "%s/idProduct", dev);
    write_file(file, pid);
    snprintf(link, sizeof link, "%s/class/tty/%s", root, name);
    mkdirs(link);
    snprintf(file, sizeof file, "%s/device", link);
    assert_int_equal(symlink(intf, file), 0);
}

static void test_find_usb(void **state)
{
    (void)state;
    char *root = testutil_tmpdir();
    char out[256];
    /* nothing there yet */
    assert_int_equal(dia_serial_find_usb(root, "/dev", 0x22A3, 0x0047, out, sizeof out),
                     DIA_ERR_DISCONNECTED);

    fake_usb_tty(root, "ttyUSB0", "1-2", "0403\n", "6001\n"); /* an FTDI cable */
    char plain[512];
    snprintf(plain, sizeof plain, "%s/class/tty/ttyS0", root); /* no device link */
    mkdirs(plain);
    assert_int_equal(dia_serial_find_usb(root, "/dev", 0x22A3, 0x0047, out, sizeof out),
                     DIA_ERR_DISCONNECTED);

    fake_usb_tty(root, "ttyACM5", "1-4", "22a3\n", "0047\n");
    assert_int_equal(dia_serial_find_usb(root, "/dev", 0x22A3, 0x0047, out, sizeof out), DIA_OK);
    assert_string_equal(out, "/dev/ttyACM5");

    /* two receivers: the first by name */
    fake_usb_tty(root, "ttyACM3", "1-3", "22A3\n", "0047\n");
    assert_int_equal(dia_serial_find_usb(root, "/dev", 0x22A3, 0x0047, out, sizeof out), DIA_OK);
    assert_string_equal(out, "/dev/ttyACM3");

    /* a wrong product id is not ours */
    assert_int_equal(dia_serial_find_usb(root, "/dev", 0x22A3, 0x0048, out, sizeof out),
                     DIA_ERR_DISCONNECTED);
    /* the result must fit */
    char tiny[6];
    assert_int_equal(dia_serial_find_usb(root, "/dev", 0x22A3, 0x0047, tiny, sizeof tiny),
                     DIA_ERR_ARG);
    testutil_rmdir(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_raw),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_flush_discards_stale_input),
        cmocka_unit_test(test_unplug_is_disconnected),
        cmocka_unit_test(test_exclusive),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_find_usb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
