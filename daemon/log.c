/*
 * log.c: logfmt lines on stderr. See log.h.
 *
 * A line that cannot be written (the log file's disk full, EIO) is counted, not retried: the
 * caller never waits for its log. The next line that can be written is preceded by one saying
 * how many were lost and why, so a log read after a full disk shows the gap instead of hiding it.
 */
#include "daemon/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "algo/atl.h"

log_level_t log_level_current = LOG_LEVEL_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static atomic_ulong lines_lost;
static atomic_int lost_errno;

/* Write @p n bytes of @p line whole. @return 0, or an errno value (a short write: ENOSPC). */
static int write_line(const char *line, size_t n)
{
    ssize_t w = write(STDERR_FILENO, line, n);
    if (w == (ssize_t)n)
        return 0;
    int e = w < 0 ? errno : ENOSPC;
    if (w > 0) { /* end the cut line, so that the next one starts on its own (best effort) */
        ssize_t nl = write(STDERR_FILENO, "\n", 1);
        (void)nl;
    }
    return e;
}

static int stamp(char *buf, size_t cap, const char *level, const char *mod, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    return snprintf(buf, cap, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s mod=%s msg=\"%s\"",
                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    ts.tv_nsec / 1000000, level, mod, msg);
}

/* Before a line: say how many lines before it were lost, if any. @return 0 or an errno value. */
static int report_lost(void)
{
    unsigned long n = atomic_exchange(&lines_lost, 0);
    if (n == 0)
        return 0;
    char line[256];
    int k = stamp(line, sizeof(line), "warn", "log", "log lines lost");
    k += snprintf(line + k, sizeof(line) - (size_t)k, " n=%lu err=\"%s\"\n", n,
                  strerror(atomic_load(&lost_errno)));
    int e = write_line(line, (size_t)k);
    if (e != 0)
        atomic_fetch_add(&lines_lost, n); /* still lost: with this one, said later */
    return e;
}

int log_level_parse(const char *s, log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return ATL_ECONFIG;
}

void log_write(log_level_t level, const char *mod, const char *msg, const char *kv_fmt, ...)
{
    char line[2048];
    int n = stamp(line, sizeof(line), level_names[level], mod, msg);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(line) - 2 && kv_fmt[0]) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, kv_fmt);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, kv_fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    int e = report_lost();
    if (e == 0)
        e = write_line(line, (size_t)n);
    if (e != 0) {
        atomic_store(&lost_errno, e);
        atomic_fetch_add(&lines_lost, 1);
    }
}
