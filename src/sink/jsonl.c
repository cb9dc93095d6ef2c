/*
 * Sink `jsonl`: one JSON object per line, to a file (appended) or stdout.
 *
 * The line is the record's JSON form (docs/DATA_FORMAT.md), including
 * record_key and seq, so a consumer can deduplicate what at-least-once
 * delivery may repeat after a crash.  A batch is acknowledged only after
 * its bytes reached the kernel (fflush) and, with fsync=batch or always,
 * the disk: the journal cursor must never run ahead of the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/driver.h"
#include "core/err.h"
#include "core/log.h"
#include "core/url.h"

enum fsync_policy { FSYNC_ALWAYS, FSYNC_BATCH, FSYNC_NEVER };

struct jsonl_sink {
    FILE *out;
    bool is_stdout;
    enum fsync_policy policy;
};

static const struct dia_option_spec jsonl_options[] = {
    {.name = "fsync",
     .type = DIA_OPT_ENUM,
     .default_value = "batch",
     .choices = "always|batch|never",
     .help = "when to force lines to disk: after every record, after every batch, or never"},
    {.name = "batch",
     .type = DIA_OPT_INT,
     .default_value = "500",
     .min = 1,
     .max = 100000,
     .help = "records per write"},
    {0},
};

/*
 * A crash or power cut in the middle of a write can leave the file ending in
 * half a line.  That record was never acknowledged, so it will be written
 * again; end the fragment with a newline first, or the new line would be
 * glued onto it and both would be unreadable.
 */
static int end_torn_line(struct dia_instance *in, int fd, const char *path)
{
    struct stat sb;
    char last;
    if (fstat(fd, &sb) != 0 || sb.st_size == 0)
        return DIA_OK;
    if (pread(fd, &last, 1, sb.st_size - 1) != 1 || last == '\n')
        return DIA_OK;
    dia_warn(in->name,
             "the last line of %s was cut short (by a crash?); ending it, the record "
             "will be written again",
             path);
    if (write(fd, "\n", 1) != 1) {
        dia_instance_error(in, "cannot write to %s: %s", path, strerror(errno));
        return DIA_ERR_IO;
    }
    return DIA_OK;
}

/* The target, checked without touching the file system: shared by the
 * start-up check and open().  A missing folder is not refused here: it
 * may be a mount that appears later. */
static int jsonl_check(const struct dia_options *o, char *why, size_t why_len)
{
    const char *path = o->target;
    if (!path || strcmp(path, "-") == 0)
        return DIA_OK;
    char shown[256];
    dia_url_display(path, shown, sizeof shown);
    if (strstr(path, "://")) {
        snprintf(why, why_len,
                 "jsonl writes to a file, or to stdout with -, not to \"%s\"; for a server use "
                 "its own sink",
                 shown);
        return DIA_ERR_CONFIG;
    }
    if (path[strlen(path) - 1] == '/') {
        snprintf(why, why_len,
                 "the target \"%s\" names a folder; give a file in it, such as %srecords.jsonl",
                 shown, shown);
        return DIA_ERR_CONFIG;
    }
    return DIA_OK;
}

static int jsonl_open(struct dia_instance *in)
{
    char why[600];
    if (jsonl_check(in->opts, why, sizeof why) != DIA_OK) {
        dia_instance_error(in, "%s", why);
        return DIA_ERR_CONFIG;
    }
    struct jsonl_sink *s = calloc(1, sizeof *s);
    if (!s)
        return DIA_ERR_NOMEM;
    const char *path = in->opts->target;
    const char *policy = dia_opt_str(in->opts, "fsync", "batch");
    s->policy = strcmp(policy, "always") == 0  ? FSYNC_ALWAYS
                : strcmp(policy, "never") == 0 ? FSYNC_NEVER
                                               : FSYNC_BATCH;
    if (!path || strcmp(path, "-") == 0) {
        s->out = stdout;
        s->is_stdout = true;
    } else {
        int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd >= 0 && end_torn_line(in, fd, path) != DIA_OK) {
            close(fd);
            free(s);
            return DIA_ERR_IO;
        }
        if (fd < 0 || !(s->out = fdopen(fd, "a"))) {
            dia_instance_error(in, "cannot open %s for appending: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            free(s);
            /* a missing folder or permission problem is for the user to fix,
             * but it may be a mount that is not there yet: keep retrying */
            return DIA_ERR_IO;
        }
    }
    in->priv = s;
    return DIA_OK;
}

/* `diabridge demo | head`: the reader is gone and will not come back, so
 * retrying is pointless; ask the daemon to shut down cleanly instead. */
static void stop_if_reader_gone(struct jsonl_sink *s)
{
    if (s->is_stdout && errno == EPIPE) {
        dia_info("jsonl", "stdout was closed by its reader; stopping");
        kill(getpid(), SIGTERM);
    }
}

static int flush_out(struct dia_instance *in, struct jsonl_sink *s)
{
    if (fflush(s->out) != 0) {
        stop_if_reader_gone(s);
        dia_instance_error(in, "writing %s failed: %s", in->opts->target ? in->opts->target : "-",
                           strerror(errno));
        clearerr(s->out);
        return DIA_ERR_IO;
    }
    if (s->policy != FSYNC_NEVER && !s->is_stdout && fsync(fileno(s->out)) != 0) {
        dia_instance_error(in, "fsync of %s failed: %s", in->opts->target, strerror(errno));
        return DIA_ERR_IO;
    }
    return DIA_OK;
}

static int jsonl_send(struct dia_instance *in, const struct dia_record *recs, size_t n,
                      size_t *acked)
{
    struct jsonl_sink *s = in->priv;
    *acked = 0;
    size_t pending = 0;
    for (size_t i = 0; i < n; i++) {
        char *line = dia_record_to_json_text(&recs[i]);
        if (!line)
            return DIA_ERR_NOMEM;
        int w = fprintf(s->out, "%s\n", line);
        free(line);
        if (w < 0) {
            stop_if_reader_gone(s);
            dia_instance_error(in, "writing failed: %s", strerror(errno));
            clearerr(s->out);
            return DIA_ERR_IO;
        }
        pending++;
        if (s->policy == FSYNC_ALWAYS) {
            int rc = flush_out(in, s);
            if (rc != DIA_OK)
                return rc;
            *acked += pending;
            pending = 0;
        }
    }
    int rc = flush_out(in, s);
    if (rc != DIA_OK)
        return rc;
    *acked += pending;
    return DIA_OK;
}

static void jsonl_close(struct dia_instance *in)
{
    struct jsonl_sink *s = in->priv;
    if (!s)
        return;
    if (s->is_stdout)
        fflush(stdout);
    else
        fclose(s->out);
    free(s);
    in->priv = NULL;
}

const struct dia_sink_driver dia_sink_jsonl = {
    .name = "jsonl",
    .description = "one JSON object per line, to a file or to stdout",
    .target_help = "PATH of the file to append to, or - for stdout (the default)",
    .options = jsonl_options,
    .default_batch = 500,
    .check = jsonl_check,
    .open = jsonl_open,
    .send = jsonl_send,
    .close = jsonl_close,
};
