/* Pair weights (DESIGN §3) in fixed point, retention thresholds, and the delta accumulator. */
#include "algo/delta.h"
#include "algo/rng.h"
#include "algo/weight.h"
#include "tests/check.h"

int main(void)
{
    CHECK_EQ(weight_pair(300, 300), 2 * WEIGHT_ONE);
    CHECK_EQ(weight_pair(300, 225), WEIGHT_ONE); /* d = 0.25 -> 1 */
    CHECK_EQ(weight_pair(225, 300), WEIGHT_ONE); /* symmetric */
    CHECK_EQ(weight_pair(200, 100), 0);          /* d = 0.5 -> 0 */
    CHECK_EQ(weight_pair(200, 99), 0);
    CHECK_EQ(weight_pair(100, 90), 104858); /* 2 (1 - 0.2) = 1.6 -> round(1.6 * 65536) */
    CHECK_EQ(weight_pp_fixed(312.5f), 312 * WEIGHT_ONE + WEIGHT_ONE / 2);

    CHECK(!weight_retained(0, 0));
    CHECK(!weight_retained(49, 49 * 90 * (int64_t)WEIGHT_ONE)); /* <=100pp needs 50 */
    CHECK(weight_retained(50, 50 * 90 * (int64_t)WEIGHT_ONE));
    CHECK(weight_retained(5, 5 * 600 * (int64_t)WEIGHT_ONE)); /* >=500pp needs 5 */
    CHECK(!weight_retained(4, 4 * 600 * (int64_t)WEIGHT_ONE));
    CHECK(!weight_retained(27, 27 * 300 * (int64_t)WEIGHT_ONE)); /* 300pp needs 27.5 */
    CHECK(weight_retained(28, 28 * 300 * (int64_t)WEIGHT_ONE));

    /* delta list: random adds equal a dense reference, keys strictly increasing */
    enum { R = 37, C = 53 };

    static int64_t ref[R][C];
    delta_list_t d;
    delta_list_init(&d);
    rng_t r;
    rng_init(&r, 7);
    for (int i = 0; i < 200000; i++) {
        uint32_t row = (uint32_t)rng_below(&r, R), col = (uint32_t)rng_below(&r, C);
        int64_t v = (int64_t)rng_below(&r, 11) - 5;
        ref[row][col] += v;
        E(delta_list_add(&d, row, col, v));
    }
    E(delta_list_compact(&d));
    size_t k = 0;
    for (uint32_t row = 0; row < R; row++)
        for (uint32_t col = 0; col < C; col++) {
            if (ref[row][col] == 0)
                continue;
            CHECK(k < d.n);
            CHECK_EQ(delta_key_row(d.v[k].key), row);
            CHECK_EQ(delta_key_col(d.v[k].key), col);
            CHECK_EQ(d.v[k].value, ref[row][col]);
            k++;
        }
    CHECK_EQ(k, d.n);
    delta_list_destroy(&d);
    return 0;
}
