/*
 * Fuzz target for the Kafka event decoder (STYLE R10): any bytes must decode or be rejected
 * with a reason, never crash, leak or read out of bounds. Built with libFuzzer under
 * -DATL_FUZZ=ON (clang); otherwise tests/fuzz/replay.c runs the seed corpus once.
 */
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    store_decode_opts_t o;
    store_event_t ev;
    store_reject_t why;
    char err[256];
    store_decode_opts_default(&o);
    int rc = store_event_decode(data, size, &o, &ev, &why, err, sizeof(err));
    if (rc != 0 && rc != ATL_EBADEVENT)
        __builtin_trap();
    if (rc == ATL_EBADEVENT && (why <= STORE_REJECT_NONE || why >= STORE_REJECT_COUNT))
        __builtin_trap();
    return 0;
}
