/*
 * thread_prio.c: see thread_prio.h. _GNU_SOURCE for gettid(): on Linux, setpriority() on a
 * thread id sets that thread's nice value alone (a documented divergence from POSIX, where
 * nice values are per process).
 */
#define _GNU_SOURCE
#include "daemon/thread_prio.h"

#include <pthread.h>
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

typedef struct bg_call {
    int incr;
    void (*fn)(void *arg);
    void *arg;
} bg_call_t;

static void *bg_main(void *ud)
{
    bg_call_t *c = ud;
    thread_prio_background(c->incr);
    c->fn(c->arg);
    return NULL;
}

void thread_prio_run_background(int incr, void (*fn)(void *arg), void *arg)
{
    bg_call_t c = {incr, fn, arg};
    pthread_t th;
    if (pthread_create(&th, NULL, bg_main, &c) != 0) {
        fn(arg);
        return;
    }
    pthread_join(th, NULL);
}
