/*
 * Logging: one macro per level that checks the level before it formats
 * anything (gpsd's habit), so debug lines cost nothing when disabled.
 *
 * Lines go to stderr.  Under systemd (JOURNAL_STREAM set) each line starts
 * with the sd-daemon "<N>" priority prefix so journald keeps the level.
 * Never pass a secret to these functions: there is no redaction here.
 */
#ifndef DIA_CORE_LOG_H
#define DIA_CORE_LOG_H

enum dia_log_level {
    DIA_LOG_ERROR = 0,
    DIA_LOG_WARN = 1,
    DIA_LOG_INFO = 2,
    DIA_LOG_DEBUG = 3,
};

extern int dia_log_threshold;

void dia_log_init(void);
int dia_log_level_parse(const char *name); /* -1 when unknown */
void dia_log_write(int level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define dia_log(level, who, ...)                                                                   \
    do {                                                                                           \
        if ((level) <= dia_log_threshold)                                                          \
            dia_log_write((level), (who), __VA_ARGS__);                                            \
    } while (0)

#define dia_err(who, ...)   dia_log(DIA_LOG_ERROR, who, __VA_ARGS__)
#define dia_warn(who, ...)  dia_log(DIA_LOG_WARN, who, __VA_ARGS__)
#define dia_info(who, ...)  dia_log(DIA_LOG_INFO, who, __VA_ARGS__)
#define dia_debug(who, ...) dia_log(DIA_LOG_DEBUG, who, __VA_ARGS__)

#endif
