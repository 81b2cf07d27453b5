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

#endif
