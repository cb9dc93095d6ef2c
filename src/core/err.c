#include "core/err.h"

#include <stddef.h>

struct err_row {
    int code;
    const char *name;
    const char *text;
    bool transient;
};

static const struct err_row err_table[] = {
    {DIA_OK, "DIA_OK", "success", false},
    {DIA_ERR_NOT_MINE, "DIA_ERR_NOT_MINE", "data is not of the expected kind", false},
    {DIA_ERR_TRUNCATED, "DIA_ERR_TRUNCATED", "data is shorter than its layout requires", false},
    {DIA_ERR_CRC, "DIA_ERR_CRC", "checksum mismatch (corrupt data)", false},
    {DIA_ERR_IMPLAUSIBLE, "DIA_ERR_IMPLAUSIBLE", "a value is outside its plausible range", false},
    {DIA_ERR_UNSUPPORTED, "DIA_ERR_UNSUPPORTED", "record kind or revision is not supported", false},
    {DIA_ERR_DEVICE, "DIA_ERR_DEVICE", "the device answered with an error", true},
    {DIA_ERR_ARG, "DIA_ERR_ARG", "invalid argument", false},
    {DIA_ERR_NOMEM, "DIA_ERR_NOMEM", "out of memory", true},
    {DIA_ERR_IO, "DIA_ERR_IO", "input/output error", true},
    {DIA_ERR_TIMEOUT, "DIA_ERR_TIMEOUT", "timed out", true},
    {DIA_ERR_CONFIG, "DIA_ERR_CONFIG", "configuration error", false},
    {DIA_ERR_JOURNAL, "DIA_ERR_JOURNAL", "the journal could not be read or written", true},
    {DIA_ERR_JOURNAL_FULL, "DIA_ERR_JOURNAL_FULL", "the disk holding the journal is full", true},
    {DIA_ERR_JOURNAL_CORRUPT, "DIA_ERR_JOURNAL_CORRUPT", "the journal file is damaged", false},
    {DIA_ERR_JOURNAL_ACCESS, "DIA_ERR_JOURNAL_ACCESS",
     "no permission to write the journal (or the file system is read-only)", false},
    {DIA_ERR_TRANSIENT, "DIA_ERR_TRANSIENT", "temporary failure, will retry", true},
    {DIA_ERR_PERMANENT, "DIA_ERR_PERMANENT", "rejected permanently", false},
    {DIA_ERR_AUTH, "DIA_ERR_AUTH", "credentials were rejected", false},
    {DIA_ERR_DISCONNECTED, "DIA_ERR_DISCONNECTED", "device or server disconnected", true},
    {DIA_ERR_STOPPING, "DIA_ERR_STOPPING", "shutting down", false},
};

static const struct err_row *err_find(int code)
{
    for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++) {
        if (err_table[i].code == code)
            return &err_table[i];
    }
    return NULL;
}

const char *dia_strerror(int err)
{
    const struct err_row *row = err_find(err);
    return row ? row->text : "unknown error";
}

const char *dia_errname(int err)
{
    const struct err_row *row = err_find(err);
    return row ? row->name : "DIA_ERR_UNKNOWN";
}

bool dia_err_is_transient(int err)
{
    const struct err_row *row = err_find(err);
    return row ? row->transient : false;
}
