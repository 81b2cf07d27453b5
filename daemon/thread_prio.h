/*
 * thread_prio.h: background threads yield the CPU to the event loop (issue 10.4). On a
 * machine with few cores the loop's latency (HTTP, Kafka polling) is set by the scheduler as much
 * as by locks: the batch writer and the refresh workers run at a lower priority, so the loop,
 * mostly idle, is scheduled first whenever it has something to do.
 */
#ifndef ATL_THREAD_PRIO_H
#define ATL_THREAD_PRIO_H

/** Raise the calling thread's nice value by @p incr (Linux: per thread; threads it creates
 * inherit it). Best effort: failures are ignored. */
void thread_prio_background(int incr);

/**
 * Run fn(arg) on a new thread whose nice value is raised by @p incr, and wait for it to end.
 * For libuv thread-pool jobs: the pool thread keeps the loop's priority. When a job ends, its
 * pool thread signals the loop with uv_async_send(), and the loop spins (sched_yield) while a
 * sender is inside that call: a low-priority sender preempted there held the loop for up to
 * 0.5 s on a loaded machine (a priority inversion, issue 10.4). If no thread can be created,
 * fn runs on the calling thread at its own priority.
 */
void thread_prio_run_background(int incr, void (*fn)(void *arg), void *arg);

#endif
