/*
 * Error codes shared by every layer of diabridge.
 *
 * One negative enum, as libsigrok does (SR_OK, SR_ERR_*): 0 is success,
 * every failure is a distinct negative value, and dia_strerror() turns it
 * into a sentence a user can act on.  Codecs use the first group to keep
 * rtl_433's distinction between "not my packet", "mine but corrupt" and
 * "mine but implausible"; drivers use the second group so the supervisor
 * can tell a transient failure (retry with back-off) from a permanent one.
 */
#ifndef DIA_CORE_ERR_H
#define DIA_CORE_ERR_H

#include <stdbool.h>

enum dia_err {
    DIA_OK = 0,

    /* codecs: classification of bad input */
    DIA_ERR_NOT_MINE = -1,    /* not this protocol/frame type at all */
    DIA_ERR_TRUNCATED = -2,   /* shorter than the layout requires */
    DIA_ERR_CRC = -3,         /* integrity check failed */
    DIA_ERR_IMPLAUSIBLE = -4, /* intact but a value is out of range */
    DIA_ERR_UNSUPPORTED = -5, /* valid, but a revision/kind we do not decode */
    DIA_ERR_DEVICE = -6,      /* device answered with an error code (NAK, …) */

    /* general */
    DIA_ERR_ARG = -10,   /* caller passed something invalid */
    DIA_ERR_NOMEM = -11, /* allocation failed */
    DIA_ERR_IO = -12,    /* read/write/open on a file or device failed */
    DIA_ERR_TIMEOUT = -13,
    DIA_ERR_CONFIG = -14,       /* configuration is wrong; fix it and restart */
    DIA_ERR_JOURNAL = -15,      /* the journal could not be read or written */
    DIA_ERR_JOURNAL_FULL = -16, /* the disk holding the journal is full */
    DIA_ERR_JOURNAL_CORRUPT = -17,
    DIA_ERR_JOURNAL_ACCESS = -18, /* permissions / read-only file system */

    /* delivery and transports */
    DIA_ERR_TRANSIENT = -20, /* try again later (network, 5xx, broker down) */
    DIA_ERR_PERMANENT = -21, /* this record can never be accepted: dead-letter it */
    DIA_ERR_AUTH = -22,      /* credentials rejected: stop, report, retry slowly */
    DIA_ERR_DISCONNECTED = -23,
    DIA_ERR_STOPPING = -24, /* shutdown was requested while waiting */
};

/* A short, human sentence for an error code; never NULL. */
const char *dia_strerror(int err);

/* The code's symbolic name ("DIA_ERR_CRC"), for logs and JSON counters. */
const char *dia_errname(int err);

/* Whether a failure is worth retrying without a configuration change. */
bool dia_err_is_transient(int err);

#endif
