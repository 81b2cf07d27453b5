/*
 * The one monotonic clock of the layers that time their work (pipeline/, and daemon/ and tools/
 * above it): seconds for durations, never for dates. algo/ reads no clock; store/ reports what
 * it did, and its callers time it.
 */
#ifndef ATL_PIPELINE_CLOCK_H
#define ATL_PIPELINE_CLOCK_H

#include <time.h>

/** Seconds on CLOCK_MONOTONIC (an arbitrary origin). */
static inline double pipeline_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
