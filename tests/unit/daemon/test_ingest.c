/*
 * The reference time of the "future" check (ingest_reference_now): the earlier of a message's
 * Kafka timestamp and the clock. It used the later of the two, so a producer that stamped a row
 * with a far-future timestamp (CreateTime is the producer's) passed a far-future update_time,
 * which pins its profile entry for good; and a row two days ahead was rejected live but accepted
 * by a replica reading the log three days later.
 */
#include <stdint.h>
#include <stdio.h>

#include "daemon/ingest.h"
#include "tests/check.h"

int main(void)
{
    const int64_t wall = 1733000000; /* 2024-11-30 */
    /* a producer's far-future timestamp (9999-01-01) does not move "now" */
    CHECK_EQ(ingest_reference_now(INT64_C(253370764800000), wall), wall);
    /* an older message is judged by its own time: the same decision live and in a replay */
    CHECK_EQ(ingest_reference_now((wall - 3 * 86400) * INT64_C(1000) + 999, wall),
             wall - 3 * 86400);
    /* no timestamp: the clock */
    CHECK_EQ(ingest_reference_now(-1, wall), wall);
    CHECK_EQ(ingest_reference_now(wall * INT64_C(1000), wall), wall);
    fprintf(stderr, "ingest: the reference time of the future check\n");
    return 0;
}
