/*
 * Sink `jsonl`: one JSON object per line, appended to a file, or written to
 * stdout, a pipe or FIFO, or a device such as /dev/null.
 *
 * The line is the record's JSON form (docs/DATA_FORMAT.md), including
 * record_key and seq, so a consumer can deduplicate what at-least-once
 * delivery may repeat after a crash.  A record is acknowledged once its
 * whole line reached the kernel and, for a regular file with fsync=batch or
 * always, the disk: the journal cursor must never run ahead of the file.
 *
 * Pipes, FIFOs and devices have no disk to sync, and their reader may stall
 * or leave.  They get whole lines per write (a pipe takes up to PIPE_BUF
 * bytes in one piece, so a reader never sees half a line of ours unless one
 * line is longer than that), and the sink waits for room with poll() in
 * short steps, so a stalled reader cannot keep the daemon from stopping.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/driver.h"
#include "core/err.h"
#include "core/log.h"
#include "core/url.h"

enum fsync_policy { FSYNC_ALWAYS, FSYNC_BATCH, FSYNC_NEVER };

/* How long a wait for room in a pipe lasts before the stop flag is looked
 * at again, and how long a shutdown waits for the reader to take the rest of
 * a line that did not fit into the pipe in one piece. */
enum { ROOM_WAIT_STEP_MS = 200, STOP_GRACE_MS = 2000 };

struct jsonl_sink {
    int fd;
    bool owns_fd;   /* false for stdout, which the daemon keeps */
    bool is_stdout; /* the daemon's own stdout, by `-` or by a name like /dev/stdout */
    bool stream;    /* pipe, FIFO, socket or device: no fsync, waits for room */
    bool nonblocking;
    bool told_no_sync; /* the "cannot force to disk" warning was given */
    enum fsync_policy policy;
    char *buf; /* the lines of the records being sent */
    size_t len, cap;
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

/* The target as the user knows it, for messages. */
static const char *target_name(const struct dia_instance *in)
{
    const char *t = in->opts->target;
    return !t || strcmp(t, "-") == 0 ? "stdout" : t;
}

/* Whether an opened target is the daemon's own stdout: `jsonl:-`, or a name
 * for it such as /dev/stdout.  When its reader leaves, none can come back. */
static bool is_own_stdout(const struct stat *sb)
{
    struct stat out;
    return (S_ISFIFO(sb->st_mode) || S_ISSOCK(sb->st_mode)) && fstat(STDOUT_FILENO, &out) == 0 &&
           out.st_dev == sb->st_dev && out.st_ino == sb->st_ino;
}

static int open_stdout(struct dia_instance *in, struct jsonl_sink *s)
{
    struct stat sb;
    fflush(stdout); /* anything printed before stays before the records */
    if (fstat(STDOUT_FILENO, &sb) != 0) {
        dia_instance_error(in,
                           "cannot write to stdout: %s (start diabridge with its output open, "
                           "or give a file as the jsonl target)",
                           strerror(errno));
        return DIA_ERR_CONFIG;
    }
    s->fd = STDOUT_FILENO;
    s->is_stdout = true;
    s->stream = !S_ISREG(sb.st_mode);
    if (!s->stream)
        return end_torn_line(in, s->fd, "stdout");
    return DIA_OK;
}

static int open_path(struct dia_instance *in, struct jsonl_sink *s, const char *path)
{
    struct stat sb;
    bool special = stat(path, &sb) == 0 && !S_ISREG(sb.st_mode);
    if (special && S_ISDIR(sb.st_mode)) {
        dia_instance_error(in, "%s is a folder; give a file in it, such as %s/records.jsonl", path,
                           path);
        return DIA_ERR_CONFIG;
    }
    if (special && S_ISSOCK(sb.st_mode)) {
        dia_instance_error(in, "%s is a socket; jsonl writes to files, pipes and FIFOs", path);
        return DIA_ERR_CONFIG;
    }
    /*
     * A file is opened for reading too, for the torn-line check.  A FIFO must
     * not be: the daemon would be its own reader, so with the real reader gone
     * writes would fill the pipe and then block for ever.  Write-only and
     * non-blocking, opening a FIFO fails at once while nobody reads it, and a
     * write fails with EPIPE when the reader leaves.
     */
    int flags = special ? O_WRONLY | O_NONBLOCK : O_RDWR | O_CREAT | O_APPEND;
    int fd = open(path, flags | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0) {
        if (errno == ENXIO && special && S_ISFIFO(sb.st_mode)) {
            dia_instance_error(in,
                               "no program is reading the FIFO %s; the records wait in the "
                               "journal and are written once a program opens it for reading",
                               path);
            return DIA_ERR_TRANSIENT;
        }
        /* a missing folder or permission problem is for the user to fix,
         * but it may be a mount that is not there yet: keep retrying */
        dia_instance_error(in, "cannot open %s for appending: %s", path, strerror(errno));
        return DIA_ERR_IO;
    }
    if (fstat(fd, &sb) != 0 || S_ISREG(sb.st_mode) == special) {
        /* replaced between stat() and open(): the flags may be wrong for it */
        dia_instance_error(in, "%s changed while it was being opened; trying again", path);
        close(fd);
        return DIA_ERR_TRANSIENT;
    }
    s->fd = fd;
    s->owns_fd = true;
    s->stream = special;
    s->is_stdout = is_own_stdout(&sb);
    if (!special)
        return end_torn_line(in, fd, path);
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
    s->fd = -1;
    const char *path = in->opts->target;
    const char *policy = dia_opt_str(in->opts, "fsync", "batch");
    s->policy = strcmp(policy, "always") == 0  ? FSYNC_ALWAYS
                : strcmp(policy, "never") == 0 ? FSYNC_NEVER
                                               : FSYNC_BATCH;
    int rc = !path || strcmp(path, "-") == 0 ? open_stdout(in, s) : open_path(in, s, path);
    if (rc != DIA_OK) {
        if (s->owns_fd)
            close(s->fd);
        free(s);
        return rc;
    }
    int fl = fcntl(s->fd, F_GETFL);
    s->nonblocking = fl >= 0 && (fl & O_NONBLOCK);
    in->priv = s;
    return DIA_OK;
}

static int write_failed(struct dia_instance *in, struct jsonl_sink *s, int err)
{
    if (err == EPIPE && s->is_stdout) {
        /* `diabridge demo | head`: the reader is gone and cannot come back,
         * so retrying is pointless; ask the daemon to shut down cleanly. */
        dia_info(in->name, "stdout was closed by the program reading it; stopping");
        dia_instance_error(in, "stdout was closed by the program reading it");
        kill(getpid(), SIGTERM);
        return DIA_ERR_TRANSIENT;
    }
    if (err == EPIPE) {
        dia_instance_error(in,
                           "the program reading %s went away; the records wait in the journal "
                           "and are written once a program opens it for reading again",
                           target_name(in));
        return DIA_ERR_TRANSIENT;
    }
    if (err == ENOSPC || err == EDQUOT) {
        dia_instance_error(in,
                           "cannot write to %s: the disk is full (%s); make room, diabridge "
                           "tries again by itself",
                           target_name(in), strerror(err));
        return DIA_ERR_IO;
    }
    dia_instance_error(in, "writing to %s failed: %s", target_name(in), strerror(err));
    return DIA_ERR_IO;
}

/* A file takes the lines in as few writes as it likes. */
static int write_file(struct dia_instance *in, struct jsonl_sink *s, size_t *done)
{
    while (*done < s->len) {
        ssize_t w = write(s->fd, s->buf + *done, s->len - *done);
        if (w > 0)
            *done += (size_t)w;
        else if (w < 0 && errno != EINTR)
            return write_failed(in, s, errno);
        else if (w == 0)
            return write_failed(in, s, EIO);
    }
    return DIA_OK;
}

/* The bytes of s->buf from `from` that go into one write to a pipe: the
 * most whole lines that fit into PIPE_BUF, or the rest of a single longer
 * line. */
static size_t next_piece(const struct jsonl_sink *s, size_t from)
{
    size_t end = from;
    while (end < s->len) {
        const char *nl = memchr(s->buf + end, '\n', s->len - end);
        size_t line_end = nl ? (size_t)(nl - s->buf) + 1 : s->len;
        if (line_end - from > PIPE_BUF)
            return end > from ? end - from : line_end - from;
        end = line_end;
    }
    return end - from;
}

/*
 * A pipe, FIFO or device takes only what it has room for.  Waiting for room
 * is done in short polls that look at the stop flag, so a reader that stalls
 * cannot keep the daemon from stopping.  A stop is honoured between lines;
 * inside a line (only one longer than PIPE_BUF can be cut) the reader gets
 * STOP_GRACE_MS to take the rest, so it is not left with half a line.
 */
static int write_stream(struct dia_instance *in, struct jsonl_sink *s, size_t *done)
{
    int64_t give_up_at = 0;
    bool try_now = s->nonblocking; /* a blocking fd must not be written before it has room */
    while (*done < s->len) {
        if (dia_instance_stopping(in)) {
            bool mid_line = *done > 0 && s->buf[*done - 1] != '\n';
            if (!mid_line)
                return DIA_ERR_STOPPING;
            if (give_up_at == 0)
                give_up_at = dia_mono_ms() + STOP_GRACE_MS;
            else if (dia_mono_ms() >= give_up_at)
                return DIA_ERR_STOPPING;
        }
        if (!try_now) {
            struct pollfd p = {.fd = s->fd, .events = POLLOUT};
            int r = poll(&p, 1, ROOM_WAIT_STEP_MS);
            if (r < 0 && errno != EINTR)
                return write_failed(in, s, errno);
            if (r <= 0)
                continue;
            /* POLLERR/POLLHUP (the reader left): the write below says why */
        }
        size_t piece = next_piece(s, *done);
        /* A blocking pipe blocks until a write is taken whole; poll() only
         * promised room for PIPE_BUF bytes. */
        if (!s->nonblocking && piece > PIPE_BUF)
            piece = PIPE_BUF;
        ssize_t w = write(s->fd, s->buf + *done, piece);
        if (w > 0) {
            *done += (size_t)w;
            try_now = s->nonblocking;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            try_now = false;
        } else {
            return write_failed(in, s, w < 0 ? errno : EIO);
        }
    }
    return DIA_OK;
}

/*
 * fsync where it means something: a regular file.  A file system that cannot
 * sync (some FUSE and network mounts answer EINVAL or ENOTSUP) is told once
 * and is not a failed delivery: retrying would only write the same lines
 * again, for ever.  `quiet`: a write error is already being reported.
 */
static int sync_out(struct dia_instance *in, struct jsonl_sink *s, bool quiet)
{
    if (s->stream || s->policy == FSYNC_NEVER || fsync(s->fd) == 0)
        return DIA_OK;
    int err = errno;
    if (err == EINVAL || err == ENOTSUP || err == EOPNOTSUPP || err == EROFS) {
        if (!s->told_no_sync) {
            s->told_no_sync = true;
            dia_instance_warning(in,
                                 "%s cannot be forced to disk (%s): lines are written, but a power "
                                 "cut may lose the newest; fsync=never stops trying",
                                 target_name(in), strerror(err));
            dia_warn(in->name, "%s", in->warning);
        }
        return DIA_OK;
    }
    if (!quiet)
        dia_instance_error(in,
                           "forcing %s to disk failed: %s; its newest lines will be written again",
                           target_name(in), strerror(err));
    return DIA_ERR_IO;
}

static int append_line(struct jsonl_sink *s, const struct dia_record *r)
{
    char *line = dia_record_to_json_text(r);
    if (!line)
        return DIA_ERR_NOMEM;
    size_t n = strlen(line);
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16384;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *grown = realloc(s->buf, cap);
        if (!grown) {
            free(line);
            return DIA_ERR_NOMEM;
        }
        s->buf = grown;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, line, n);
    s->len += n;
    s->buf[s->len++] = '\n'; /* compact JSON has no newline of its own */
    free(line);
    return DIA_OK;
}

static size_t count_lines(const char *buf, size_t len)
{
    size_t lines = 0;
    if (len == 0)
        return 0;
    for (const char *p = buf; (p = memchr(p, '\n', len - (size_t)(p - buf))) != NULL; p++)
        lines++;
    return lines;
}

static int jsonl_send(struct dia_instance *in, const struct dia_record *recs, size_t n,
                      size_t *acked)
{
    struct jsonl_sink *s = in->priv;
    *acked = 0;
    /* fsync=always on a file: each record is written and synced alone, and
     * acknowledged as soon as it is on disk. */
    size_t group = s->policy == FSYNC_ALWAYS && !s->stream ? 1 : n;
    for (size_t i = 0; i < n; i += group) {
        size_t end = n - i > group ? i + group : n;
        s->len = 0;
        for (size_t j = i; j < end; j++) {
            int rc = append_line(s, &recs[j]);
            if (rc != DIA_OK)
                return rc;
        }
        size_t done = 0;
        int rc = s->stream ? write_stream(in, s, &done) : write_file(in, s, &done);
        /*
         * The whole lines that went out are acknowledged even when the rest
         * failed (a full disk, the reader gone, a shutdown): sending them again
         * would give the reader or the file each of them twice.  In a file they
         * must be on disk first.  A cut line is not acknowledged, and its record
         * is written again whole: in a file after end_torn_line() has ended the
         * fragment at the next open; in a pipe the fragment went with the reader
         * that left (or, after a shutdown that outwaited STOP_GRACE_MS, stays
         * with a reader that stopped reading: docs/sinks/jsonl.md).
         */
        size_t whole = count_lines(s->buf, done);
        if (whole > 0) {
            int src = sync_out(in, s, rc != DIA_OK);
            if (src != DIA_OK)
                return rc != DIA_OK ? rc : src;
            *acked += whole;
        }
        if (rc != DIA_OK)
            return rc;
    }
    return DIA_OK;
}

static void jsonl_close(struct dia_instance *in)
{
    struct jsonl_sink *s = in->priv;
    if (!s)
        return;
    if (s->owns_fd)
        close(s->fd);
    free(s->buf);
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
