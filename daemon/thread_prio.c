/*
 * thread_prio.c: see thread_prio.h. _GNU_SOURCE for gettid(): on Linux, setpriority() on a
 * thread id sets that thread's nice value alone (a documented divergence from POSIX, where
 * nice values are per process).
 */
#define _GNU_SOURCE
#include "daemon/thread_prio.h"

#include <sys/resource.h>
#include <unistd.h>

void thread_prio_background(int incr)
{
    pid_t tid = gettid();
    int now = getpriority(PRIO_PROCESS, (id_t)tid);
    if (setpriority(PRIO_PROCESS, (id_t)tid, now + incr) != 0) {
        /* best effort: an unprivileged process may always raise its nice value */
    }
}
