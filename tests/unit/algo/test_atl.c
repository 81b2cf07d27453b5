/* atl_parse_double: the same double as strtod, bit for bit, and the same fields refused. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "algo/atl.h"
#include "tests/check.h"

static void check_as_strtod(const char *s)
{
    char *end;
    double want = strtod(s, &end), got = -1;
    int valid = *end == '\0' && end != s;
    int rc = atl_parse_double(s, strlen(s), &got);
    if (!valid) {
        CHECK_EQ(rc, -EINVAL);
        return;
    }
    CHECK_EQ(rc, 0);
    if (memcmp(&got, &want, sizeof(got)) != 0)
        fprintf(stderr, "'%s': %.17g, strtod %.17g\n", s, got, want);
    CHECK(memcmp(&got, &want, sizeof(got)) == 0);
}

/* A random plain decimal: 1-24 digits, maybe a dot anywhere, maybe leading zeros. */
static void random_decimal(unsigned *seed, char *buf)
{
    int n = 1 + rand_r(seed) % 24, dot = rand_r(seed) % 3 ? rand_r(seed) % (n + 1) : -1, k = 0;
    for (int i = 0; i < n; i++) {
        if (i == dot)
            buf[k++] = '.';
        buf[k++] = (char)('0' + rand_r(seed) % 10);
    }
    if (dot == n)
        buf[k++] = '.';
    buf[k] = '\0';
}

int main(void)
{
    const char *cases[] = {"0",
                           "0.0",
                           "1.",
                           ".5",
                           "000123.4500",
                           "69.660812",
                           "9007199254740992",
                           "9007199254740993",
                           "0.1",
                           "0.3",
                           "2.675",
                           "123456789012345678",
                           "1234567890123456789",
                           "1.7976931348623157",
                           "0.0000000000000000000001",
                           "0.00000000000000000000001",
                           "1e5",
                           "-0",
                           " 5",
                           "5 ",
                           "",
                           ".",
                           "1.2.3",
                           "abc",
                           "1,5",
                           "inf",
                           "nan",
                           "0x10",
                           "+3.5",
                           "4.5e-3"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_as_strtod(cases[i]);
    /* fields are not NUL-terminated: the length bounds them */
    double v;
    CHECK_EQ(atl_parse_double("12.5\t7", 4, &v), 0);
    CHECK(v == 12.5);
    CHECK_EQ(atl_parse_double("12.5\t7", 6, &v), -EINVAL);
    unsigned seed = 12345;
    char buf[32];
    for (int i = 0; i < 300000; i++) {
        random_decimal(&seed, buf);
        check_as_strtod(buf);
    }
    return 0;
}
