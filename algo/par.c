/*
 * par.c: parallel-for. See par.h. Threads are created per call: the callers run loops of
 * milliseconds or more, where thread start-up (~20 us) is noise.
 */
#include "algo/par.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct par_job {
    size_t n, chunk;
    atomic_size_t next;
    atomic_int rc;
    par_body_cb body;
    void *ud;
} par_job_t;

typedef struct par_thread {
    par_job_t *job;
    unsigned tid;
    pthread_t th;
} par_thread_t;

static void run_chunks(par_job_t *job, unsigned tid)
{
    for (;;) {
        if (atomic_load(&job->rc) != 0)
            return;
        size_t begin = atomic_fetch_add(&job->next, job->chunk);
        if (begin >= job->n)
            return;
        size_t end = begin + job->chunk < job->n ? begin + job->chunk : job->n;
        int rc = job->body(job->ud, tid, begin, end);
        if (rc != 0) {
            int zero = 0;
            atomic_compare_exchange_strong(&job->rc, &zero, rc);
            return;
        }
    }
}

static void *thread_main(void *arg)
{
    par_thread_t *t = arg;
    run_chunks(t->job, t->tid);
    return NULL;
}

int par_for(size_t n, size_t chunk, unsigned n_threads, par_body_cb body, void *ud)
{
    par_job_t job = {.n = n, .chunk = chunk ? chunk : 1, .body = body, .ud = ud};
    atomic_init(&job.next, 0);
    atomic_init(&job.rc, 0);
    if (n_threads < 1)
        n_threads = 1;
    par_thread_t *th = calloc(n_threads, sizeof(*th));
    if (!th)
        return -ENOMEM;
    unsigned started = 0;
    int rc = 0;
    for (unsigned t = 1; t < n_threads; t++) {
        th[t].job = &job;
        th[t].tid = t;
        if (pthread_create(&th[t].th, NULL, thread_main, &th[t]) != 0) {
            rc = -EAGAIN;
            break;
        }
        started = t;
    }
    run_chunks(&job, 0);
    for (unsigned t = 1; t <= started; t++)
        pthread_join(th[t].th, NULL);
    free(th);
    return rc ? rc : atomic_load(&job.rc);
}
