/*
 * tsan_c11.c: linked into every executable of a ThreadSanitizer build only (CMakeLists.txt).
 *
 * Debian's librdkafka makes its threads, mutexes and condition variables with C11 <threads.h>
 * (thrd_create, mtx_lock, cnd_wait, ...). glibc (2.34 on) implements those by calling its
 * pthread code internally, past the exported pthread_* symbols, and GCC 12's TSan runtime
 * intercepts only the pthread_* ones: a thread librdkafka starts had no TSan state, and its
 * first intercepted call crashed (SEGV near address 0 in `atlasctl kafka-mock` and atlasd),
 * while its locks were invisible, so TSan could not see what orders our callbacks on its
 * threads against our other threads. Defined here, in the executable, these symbols take
 * precedence over glibc's for librdkafka's calls, and each maps onto the pthread function
 * TSan sees. glibc's C11 types share the pthread layouts (thrd_t is a pthread_t, mtx_t a
 * pthread_mutex_t, cnd_t a pthread_cond_t), and C11's absolute times are CLOCK_REALTIME ones.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

/* a pthread result as C11's, as glibc maps it */
static int c11(int rc)
{
    switch (rc) {
    case 0:
        return thrd_success;
    case EBUSY:
        return thrd_busy;
    case ETIMEDOUT:
        return thrd_timedout;
    case ENOMEM:
        return thrd_nomem;
    default:
        return thrd_error;
    }
}

typedef struct c11_start {
    thrd_start_t func;
    void *arg;
} c11_start_t;

static void *c11_thread(void *p)
{
    c11_start_t s = *(c11_start_t *)p;
    free(p);
    return (void *)(intptr_t)s.func(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg)
{
    c11_start_t *s = malloc(sizeof(*s));
    if (!s)
        return thrd_nomem;
    s->func = func, s->arg = arg;
    int rc = pthread_create(thr, NULL, c11_thread, s);
    if (rc != 0)
        free(s);
    return c11(rc);
}

int thrd_join(thrd_t thr, int *res)
{
    void *r;
    int rc = pthread_join(thr, &r);
    if (rc == 0 && res)
        *res = (int)(intptr_t)r;
    return c11(rc);
}

int thrd_detach(thrd_t thr)
{
    return c11(pthread_detach(thr));
}

int mtx_init(mtx_t *mtx, int type)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    if (type & mtx_recursive)
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    int rc = pthread_mutex_init((pthread_mutex_t *)mtx, &a);
    pthread_mutexattr_destroy(&a);
    return c11(rc);
}

int mtx_lock(mtx_t *mtx)
{
    return c11(pthread_mutex_lock((pthread_mutex_t *)mtx));
}

int mtx_trylock(mtx_t *mtx)
{
    return c11(pthread_mutex_trylock((pthread_mutex_t *)mtx));
}

int mtx_timedlock(mtx_t *restrict mtx, const struct timespec *restrict ts)
{
    return c11(pthread_mutex_timedlock((pthread_mutex_t *)mtx, ts));
}

int mtx_unlock(mtx_t *mtx)
{
    return c11(pthread_mutex_unlock((pthread_mutex_t *)mtx));
}

void mtx_destroy(mtx_t *mtx)
{
    pthread_mutex_destroy((pthread_mutex_t *)mtx);
}

int cnd_init(cnd_t *cnd)
{
    return c11(pthread_cond_init((pthread_cond_t *)cnd, NULL));
}

int cnd_signal(cnd_t *cnd)
{
    return c11(pthread_cond_signal((pthread_cond_t *)cnd));
}

int cnd_broadcast(cnd_t *cnd)
{
    return c11(pthread_cond_broadcast((pthread_cond_t *)cnd));
}

int cnd_wait(cnd_t *cnd, mtx_t *mtx)
{
    return c11(pthread_cond_wait((pthread_cond_t *)cnd, (pthread_mutex_t *)mtx));
}

int cnd_timedwait(cnd_t *restrict cnd, mtx_t *restrict mtx, const struct timespec *restrict ts)
{
    return c11(pthread_cond_timedwait((pthread_cond_t *)cnd, (pthread_mutex_t *)mtx, ts));
}

void cnd_destroy(cnd_t *cnd)
{
    pthread_cond_destroy((pthread_cond_t *)cnd);
}

void call_once(once_flag *flag, void (*func)(void))
{
    pthread_once((pthread_once_t *)flag, func);
}
