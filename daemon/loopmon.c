/*
 * loopmon.c: per-iteration busy time of the event loop (see loopmon.h).
 *
 * The prepare callback runs once per iteration, just before the loop waits in epoll. Between
 * two of them the loop ran timers, idle handles and every I/O callback, and waited in epoll;
 * libuv counts the waiting (uv_metrics_idle_time), so the rest is the time the loop could not
 * answer anything. That is what a client of /healthz sees at worst, whichever callback it was.
 */
#include "daemon/loopmon.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "daemon/log.h"

static const double bucket_s[LOOPMON_N_BUCKET - 1] = {0.001, 0.002, 0.005, 0.01, 0.02,
                                                      0.05,  0.1,   0.25,  1.0};

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_prepare(uv_prepare_t *h)
{
    loopmon_t *m = h->data;
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(h->loop), cpu = thread_cpu_ns();
    if (m->last_ns != 0) {
        uint64_t wall = now - m->last_ns, waited = idle - m->last_idle_ns;
        double busy_s = wall > waited ? (double)(wall - waited) * 1e-9 : 0.0;
        double cpu_s = (double)(cpu - m->last_cpu_ns) * 1e-9;
        if (cpu_s > m->max_cpu_s)
            m->max_cpu_s = cpu_s;
        int b = 0;
        while (b < LOOPMON_N_BUCKET - 1 && busy_s > bucket_s[b])
            b++;
        m->hist[b]++;
        m->sum_s += busy_s;
        if (busy_s > m->max_s)
            m->max_s = busy_s;
        if (busy_s * 1000.0 > LOOPMON_SLOW_MS) {
            m->slow++;
            if (now - m->last_warn_ns > 10ull * 1000 * 1000 * 1000) {
                m->last_warn_ns = now;
                LOG_WARN("loop", "loop iteration busy too long",
                         "ms=%.1f cpu_ms=%.1f slow_total=%" PRIu64, busy_s * 1000.0, cpu_s * 1000.0,
                         m->slow);
            }
        }
    }
    m->last_ns = now;
    m->last_idle_ns = idle;
    m->last_cpu_ns = cpu;
}

void loopmon_init(loopmon_t *m, uv_loop_t *loop)
{
    memset(m, 0, sizeof(*m));
    uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    uv_prepare_init(loop, &m->prep);
    m->prep.data = m;
    uv_prepare_start(&m->prep, on_prepare);
    uv_unref((uv_handle_t *)&m->prep);
}

void loopmon_destroy(loopmon_t *m)
{
    uv_close((uv_handle_t *)&m->prep, NULL);
}

void loopmon_metrics(const loopmon_t *m, text_buf_t *b)
{
    uint64_t cum = 0;
    text_buf_printf(b, "# HELP atlasd_loop_busy_seconds Busy time of each event-loop iteration "
                       "(callbacks, not waiting): the longest any request waits for the loop.\n"
                       "# TYPE atlasd_loop_busy_seconds histogram\n");
    for (int i = 0; i < LOOPMON_N_BUCKET - 1; i++) {
        cum += m->hist[i];
        text_buf_printf(b, "atlasd_loop_busy_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", bucket_s[i],
                        cum);
    }
    cum += m->hist[LOOPMON_N_BUCKET - 1];
    text_buf_printf(b,
                    "atlasd_loop_busy_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                    "atlasd_loop_busy_seconds_sum %.6f\natlasd_loop_busy_seconds_count %" PRIu64
                    "\n# HELP atlasd_loop_busy_max_seconds The longest event-loop iteration "
                    "since the start.\n# TYPE atlasd_loop_busy_max_seconds gauge\n"
                    "atlasd_loop_busy_max_seconds %.6f\n# HELP atlasd_loop_cpu_max_seconds The "
                    "most CPU time the loop thread used in one iteration since the start.\n# "
                    "TYPE atlasd_loop_cpu_max_seconds gauge\natlasd_loop_cpu_max_seconds %.6f\n",
                    cum, m->sum_s, cum, m->max_s, m->max_cpu_s);
}
