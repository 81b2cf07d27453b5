/*
 * par.c: parallel-for. See par.h. Threads are created per call: the callers run loops of
 * milliseconds or more, where thread start-up (~20 us) is noise.
 */
#include "algo/par.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
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

/* ---- scatter into rows ------------------------------------------------------------------- */

typedef struct scatter_job {
    par_scatter_cb cb;
    void *ud;
    uint64_t **at; /* per part */
    int *rc;       /* per part */
    int fill;
} scatter_job_t;

static int scatter_body(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)tid;
    scatter_job_t *j = ud;
    for (size_t q = begin; q < end; q++)
        j->rc[q] = j->cb(j->ud, (unsigned)q, j->fill, j->at[q]);
    return 0;
}

/* the first part's error, in part order, after a pass */
static int scatter_pass(scatter_job_t *j, unsigned n_parts, unsigned n_threads)
{
    int rc = par_for(n_parts, 1, n_threads, scatter_body, j);
    for (unsigned q = 0; q < n_parts && rc == 0; q++)
        rc = j->rc[q];
    return rc;
}

int par_scatter_rows(uint32_t n_rows, unsigned n_parts, unsigned n_threads, par_scatter_cb cb,
                     int (*before_fill)(void *ud, uint64_t total), void *ud, uint64_t *row_start)
{
    scatter_job_t j = {cb, ud, calloc(n_parts + 1, sizeof(*j.at)),
                       calloc(n_parts + 1, sizeof(*j.rc)), 0};
    int rc = j.at && j.rc ? 0 : -ENOMEM;
    for (unsigned q = 0; q < n_parts && rc == 0; q++)
        if (!(j.at[q] = calloc((size_t)n_rows + 1, sizeof(uint64_t))))
            rc = -ENOMEM;
    if (rc == 0)
        rc = scatter_pass(&j, n_parts, n_threads);
    if (rc == 0) {
        uint64_t w = 0;
        for (uint32_t r = 0; r < n_rows; r++) {
            row_start[r] = w;
            for (unsigned q = 0; q < n_parts; q++) {
                uint64_t c = j.at[q][r];
                j.at[q][r] = w, w += c;
            }
        }
        row_start[n_rows] = w;
        if (before_fill)
            rc = before_fill(ud, w);
    }
    if (rc == 0) {
        j.fill = 1;
        rc = scatter_pass(&j, n_parts, n_threads);
    }
    for (unsigned q = 0; j.at && q < n_parts; q++)
        free(j.at[q]);
    free(j.at);
    free(j.rc);
    return rc;
}

/* ---- pool -------------------------------------------------------------------------------- */

/*
 * A loop is published as a generation: `claim` packs the generation (24 bits), the number of
 * chunks (20 bits) and the next chunk (20 bits). A thread claims chunk i of generation g by CAS
 * from (g, n, i) to (g, n, i + 1), so a worker that woke late for an old generation can never
 * take a chunk of a newer one; after a successful claim the loop's fields are stable (the
 * caller publishes a new loop only after every chunk of the current one is done). The caller
 * takes chunks like the workers, then waits only for chunks that were claimed and are still
 * running.
 */
#define POOL_GEN(v)   ((uint32_t)((v) >> 40))
#define POOL_NCH(v)   ((uint32_t)((v) >> 20) & 0xfffffu)
#define POOL_NEXT(v)  ((uint32_t)(v)&0xfffffu)
#define POOL_MAX_CH   0xfffffu
#define POOL_GEN_MASK 0xffffffu

struct par_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* workers: a new generation or stop */
    pthread_cond_t done_cv; /* the caller: the last chunk of the loop finished */
    unsigned n_workers;
    int stop;
    atomic_int stopping;    /* stop, for spinning workers */
    uint32_t gen;           /* under mu: the newest generation */
    _Atomic uint64_t claim; /* generation, chunks, next chunk (see above) */
    atomic_size_t done;     /* chunks finished in the current generation */
    atomic_int rc;
    size_t n, chunk, n_chunks; /* the current loop */
    par_body_cb body;
    void *ud;
    pthread_t th[];
};

/* Take and run chunks of generation @p g until none is left. */
static void pool_work(par_pool_t *p, uint32_t g, unsigned tid)
{
    g &= POOL_GEN_MASK;
    uint64_t v = atomic_load(&p->claim);
    for (;;) {
        if (POOL_GEN(v) != g || POOL_NEXT(v) >= POOL_NCH(v))
            return;
        if (!atomic_compare_exchange_weak(&p->claim, &v, v + 1))
            continue;
        size_t begin = (size_t)POOL_NEXT(v) * p->chunk, n_chunks = POOL_NCH(v);
        size_t end = begin + p->chunk < p->n ? begin + p->chunk : p->n;
        if (atomic_load(&p->rc) == 0) {
            int rc = p->body(p->ud, tid, begin, end);
            if (rc != 0) {
                int zero = 0;
                atomic_compare_exchange_strong(&p->rc, &zero, rc);
            }
        }
        if (atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1 == n_chunks) {
            /* the last chunk: wake the caller if it sleeps (it checks `done` under mu) */
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
        v = atomic_load(&p->claim);
    }
}

/*
 * How long a thread of the pool spins before it sleeps: a worker that finished its chunks, for
 * the next loop; the caller, for the worker's last chunk. An MDE iteration runs five short
 * loops back to back (0.1-1 ms each on the small graphs); a worker that went to sleep between
 * them was woken by a futex 10-50 us later on this kind of VM, by which time the caller had
 * claimed most chunks itself, so the second thread gave ~1.3x. OpenMP runtimes spin the same
 * way (GOMP_SPINCOUNT, KMP_BLOCKTIME).
 */
#define POOL_SPIN_PAUSES 4096

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spin until @p ready holds, at most POOL_SPIN_PAUSES pauses: ~55 us on the 2-core Xeon this
 * was measured on (13 ns a pause), up to ~250 us where a pause takes ~140 cycles. A count, not
 * a clock: algo/ reads no clock. @return whether it holds. */
static int spin_until(int (*ready)(par_pool_t *, uint32_t), par_pool_t *p, uint32_t arg)
{
    for (unsigned i = 0; i < POOL_SPIN_PAUSES; i++) {
        if (ready(p, arg))
            return 1;
        cpu_relax();
    }
    return ready(p, arg);
}

/* a loop newer than generation @p seen was published (or the pool stops) */
static int new_loop(par_pool_t *p, uint32_t seen)
{
    return POOL_GEN(atomic_load_explicit(&p->claim, memory_order_acquire)) !=
               (seen & POOL_GEN_MASK) ||
           atomic_load_explicit(&p->stopping, memory_order_relaxed);
}

/* every chunk of the current loop finished */
static int loop_done(par_pool_t *p, uint32_t unused)
{
    (void)unused;
    return atomic_load_explicit(&p->done, memory_order_acquire) >= p->n_chunks;
}

typedef struct pool_arg {
    par_pool_t *p;
    unsigned tid;
} pool_arg_t;

static void *pool_main(void *arg)
{
    pool_arg_t a = *(pool_arg_t *)arg;
    free(arg);
    par_pool_t *p = a.p;
    uint32_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        pool_work(p, seen, a.tid);
        spin_until(new_loop, p, seen); /* then p->gen is checked under the mutex */
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int par_pool_new(unsigned n_threads, par_pool_t **out)
{
    if (n_threads <= 1) {
        *out = NULL;
        return 0;
    }
    unsigned nw = n_threads - 1;
    par_pool_t *p = calloc(1, sizeof(*p) + nw * sizeof(pthread_t));
    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->claim, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->rc, 0);
    atomic_init(&p->stopping, 0);
    for (unsigned t = 0; t < nw; t++) {
        pool_arg_t *a = malloc(sizeof(*a));
        if (a)
            *a = (pool_arg_t){p, t + 1};
        if (!a || pthread_create(&p->th[t], NULL, pool_main, a) != 0) {
            int rc = a ? -EAGAIN : -ENOMEM;
            free(a);
            p->n_workers = t;
            par_pool_free(p);
            return rc;
        }
        p->n_workers = t + 1;
    }
    *out = p;
    return 0;
}

void par_pool_free(par_pool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    atomic_store(&p->stopping, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned t = 0; t < p->n_workers; t++)
        pthread_join(p->th[t], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int par_pool_for(par_pool_t *p, size_t n, size_t chunk, par_body_cb body, void *ud)
{
    if (chunk == 0)
        chunk = 1;
    if (!p) {
        for (size_t b = 0; b < n; b += chunk) {
            int rc = body(ud, 0, b, b + chunk < n ? b + chunk : n);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    size_t n_chunks = (n + chunk - 1) / chunk;
    if (n_chunks > POOL_MAX_CH)
        return -EINVAL;
    if (n_chunks == 0)
        return 0;
    pthread_mutex_lock(&p->mu);
    uint32_t g = p->gen + 1;
    p->n = n, p->chunk = chunk, p->n_chunks = n_chunks;
    p->body = body, p->ud = ud;
    atomic_store(&p->done, 0);
    atomic_store(&p->rc, 0);
    atomic_store(&p->claim,
                 (uint64_t)(g & POOL_GEN_MASK) << 40 | (uint64_t)n_chunks << 20); /* next 0 */
    p->gen = g;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pool_work(p, g, 0);
    /* only chunks already claimed by a running worker are left: a bounded spin for it, then
     * sleep (spinning longer would take the core from the worker on a busy machine with as
     * many threads as cores) */
    if (spin_until(loop_done, p, 0))
        return atomic_load(&p->rc);
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->n_chunks)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return atomic_load(&p->rc);
}
