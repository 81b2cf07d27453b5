/*
 * log.h: the daemon's one logging macro family (STYLE R5).
 *
 * One line per event on stderr, for journald: `ts=... level=info mod=ingest msg="..." k=v ...`.
 * The level is checked before the arguments are evaluated, so a disabled debug line costs a
 * comparison. Hot paths never log per item: they bump counters instead.
 */
#ifndef ATL_LOG_H
#define ATL_LOG_H

typedef enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
} log_level_t;

extern log_level_t log_level_current;

/** Parse "error" | "warn" | "info" | "debug". @return 0 or ATL_ECONFIG. */
int log_level_parse(const char *s, log_level_t *out);

/**
 * Write one line: @p msg is quoted; @p kv_fmt (printf) appends `key=value` pairs.
 * Thread-safe (one write(2) per line).
 */
void log_write(log_level_t level, const char *mod, const char *msg, const char *kv_fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define LOG_AT(lvl, mod, msg, ...)                                                                 \
    do {                                                                                           \
        if ((lvl) <= log_level_current)                                                            \
            log_write((lvl), (mod), (msg), "" __VA_ARGS__);                                        \
    } while (0)

#define LOG_ERROR(mod, msg, ...) LOG_AT(LOG_LEVEL_ERROR, mod, msg, __VA_ARGS__)
#define LOG_WARN(mod, msg, ...)  LOG_AT(LOG_LEVEL_WARN, mod, msg, __VA_ARGS__)
#define LOG_INFO(mod, msg, ...)  LOG_AT(LOG_LEVEL_INFO, mod, msg, __VA_ARGS__)
#define LOG_DEBUG(mod, msg, ...) LOG_AT(LOG_LEVEL_DEBUG, mod, msg, __VA_ARGS__)

#endif
