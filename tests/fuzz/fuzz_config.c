/*
 * Fuzz target for the config file parser (issue 10.21): any bytes parse or fail with a message
 * (ATL_ECONFIG), never crash or leak; a message never carries a byte outside printable ASCII.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "algo/atl.h"
#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    atl_config_t c;
    char err[1024] = "";
    config_init(&c);
    int rc = config_load_stream(&c, f, "fuzz.conf", err, sizeof(err));
    fclose(f);
    config_destroy(&c);
    if (rc != 0 && rc != ATL_ECONFIG)
        __builtin_trap();
    for (const char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            __builtin_trap();
    return 0;
}
