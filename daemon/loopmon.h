/*
 * loopmon.h: how long the event loop is busy per iteration (issue 10.4). The loop thread runs
 * Kafka polling, decoding and HTTP; a callback that runs long delays every request. Each loop
 * iteration's busy time (wall time between two iterations minus the time spent waiting in
 * epoll, libuv's UV_METRICS_IDLE_TIME) goes into a histogram and a maximum, published in
 * /metrics; an iteration busy over LOOPMON_SLOW_MS is logged (at most every 10 s). The loop
 * thread's CPU time per iteration is kept beside it: on a loaded machine wall time also counts
 * the time the thread waited for a CPU, CPU time only the loop's own work.
 */
#ifndef ATL_DAEMON_LOOPMON_H
#define ATL_DAEMON_LOOPMON_H

#include <stdint.h>

#include <uv.h>

#include "daemon/text_buf.h"

#define LOOPMON_SLOW_MS  100
#define LOOPMON_N_BUCKET 10

typedef struct loopmon {
    uv_prepare_t prep;
    uint64_t last_ns, last_idle_ns, last_cpu_ns;
    uint64_t hist[LOOPMON_N_BUCKET];
    uint64_t slow; /* iterations busy over LOOPMON_SLOW_MS */
    double sum_s, max_s, max_cpu_s;
    uint64_t last_warn_ns;
} loopmon_t;

/**
 * Start measuring @p loop: call before uv_run() (it enables UV_METRICS_IDLE_TIME). The prepare
 * handle is unreferenced (it does not keep the loop alive); loopmon_destroy() closes it.
 * Loop thread only.
 */
void loopmon_init(loopmon_t *m, uv_loop_t *loop);

/** Close the handle (uv_run must run once more for the close callback). */
void loopmon_destroy(loopmon_t *m);

/** Append the Prometheus text: atlasd_loop_busy_seconds (histogram), atlasd_loop_busy_max_seconds.
 */
void loopmon_metrics(const loopmon_t *m, text_buf_t *b);

#endif
