/* algo/cooc: rows of S from profiles equal the pairwise sums over every user (any thread count,
 * any block range), and weight_pair_inline's rounding equals llround. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "algo/cooc.h"
#include "algo/rng.h"
#include "algo/weight.h"
#include "tests/check.h"

enum { USERS = 300, ITEMS = 90 };

static int64_t ref[ITEMS][ITEMS];

static int64_t llround_ref(float pa, float pb)
{
    double a = pa, b = pb, hi = a > b ? a : b, d = hi > 0.0 ? fabs(a - b) / hi : 0.0;
    return d < 0.5 ? llround(2.0 * (1.0 - d / 0.5) * WEIGHT_ONE) : 0;
}

int main(void)
{
    rng_t r;
    rng_init(&r, 11);
    /* rounding: random pairs, pairs around the a/2 and 2a cut-offs, equal and zero pp */
    for (int i = 0; i < 2000000; i++) {
        float a = (float)rng_below(&r, 1000000) / 997.0f, b;
        switch (i % 4) {
        case 0:
            b = (float)rng_below(&r, 1000000) / 997.0f;
            break;
        case 1:
            b = nextafterf(a * 0.5f, (float)(i & 8 ? 0 : 1e9));
            break;
        case 2:
            b = nextafterf(a * 2.0f, (float)(i & 8 ? 0 : 1e9));
            break;
        default:
            b = i & 8 ? a : 0.0f;
            break;
        }
        CHECK_EQ(weight_pair_inline(a, b), llround_ref(a, b));
        CHECK_EQ(weight_pair(a, b), llround_ref(a, b));
    }
    /* random profiles: sorted distinct items per user, pp with ties and zeros */
    uint64_t *start = calloc(USERS + 1, sizeof(*start));
    uint32_t *item = malloc(USERS * ITEMS * sizeof(*item));
    float *pp = malloc(USERS * ITEMS * sizeof(*pp));
    CHECK(start && item && pp);
    uint64_t n = 0;
    for (uint32_t u = 0; u < USERS; u++) {
        start[u] = n;
        unsigned density = 1 + (unsigned)rng_below(&r, 60);
        for (uint32_t i = 0; i < ITEMS; i++)
            if (rng_below(&r, 100) < density) {
                item[n] = i;
                pp[n] = rng_below(&r, 20) == 0 ? 0.0f : (float)(75 + rng_below(&r, 40) * 13);
                n++;
            }
    }
    start[USERS] = n;
    for (uint32_t u = 0; u < USERS; u++)
        for (uint64_t x = start[u]; x < start[u + 1]; x++)
            for (uint64_t y = start[u]; y < start[u + 1]; y++)
                if (x != y)
                    ref[item[x]][item[y]] += weight_pair(pp[x], pp[y]);
    cooc_profiles_t p = {USERS, ITEMS, start, item, pp};
    cooc_index_t *ix, *upper;
    E(cooc_index_new(&p, 0, &ix));
    E(cooc_index_new(&p, COOC_UPPER, &upper));
    cooc_block_t b;
    cooc_block_init(&b);
    const uint32_t ranges[][2] = {{0, ITEMS}, {0, 1}, {17, 18}, {5, 61}, {89, 90}, {40, 40}};
    for (unsigned threads = 1; threads <= 6; threads++) /* 4-6: the upper triangle only */
        for (size_t k = 0; k < sizeof(ranges) / sizeof(ranges[0]); k++) {
            uint32_t lo = ranges[k][0], hi = ranges[k][1], row = lo;
            uint64_t entries = 0;
            int up = threads > 3;
            E(cooc_block_compute(up ? upper : ix, lo, hi, up ? threads - 3 : threads, &b));
            for (size_t c = 0; c < b.n_chunks; c++) {
                const cooc_chunk_t *ch = &b.chunks[c];
                for (uint32_t rr = ch->lo; rr < ch->hi; rr++, row++) {
                    CHECK_EQ(rr, row); /* chunks are consecutive, in row order */
                    uint64_t i = ch->row_start[rr - ch->lo], e = ch->row_start[rr - ch->lo + 1];
                    uint32_t col = 0;
                    for (; i < e; i++, col++) {
                        while (col < ch->col[i]) /* columns skipped hold 0 */
                            CHECK(ref[rr][col++] == 0 || (up && col - 1 <= rr));
                        CHECK(ch->s[i] != 0);
                        CHECK(!up || col > rr);
                        CHECK_EQ(ch->s[i], ref[rr][col]);
                        entries++;
                    }
                    for (; col < ITEMS; col++)
                        CHECK(ref[rr][col] == 0 || (up && col <= rr));
                }
            }
            CHECK_EQ(row, hi);
            CHECK_EQ(b.entries, entries);
        }
    /* invalid input */
    uint32_t bad_item[2] = {3, 3};
    float bad_pp[2] = {100, 100};
    uint64_t bad_start[2] = {0, 2};
    cooc_profiles_t bad = {1, ITEMS, bad_start, bad_item, bad_pp};
    cooc_index_t *ix2 = NULL;
    CHECK_EQ(cooc_index_new(&bad, 0, &ix2), -EINVAL); /* items not increasing */
    CHECK_EQ(cooc_index_new(&p, 2, &ix2), -EINVAL);   /* an unknown flag */
    bad_item[1] = 4; /* pp must be finite and >= 0: NaN separates users in the index */
    bad_pp[1] = NAN;
    CHECK_EQ(cooc_index_new(&bad, 0, &ix2), -EINVAL);
    bad_pp[1] = -1;
    CHECK_EQ(cooc_index_new(&bad, 0, &ix2), -EINVAL);
    bad_pp[1] = 100;
    E(cooc_index_new(&bad, 0, &ix2));
    cooc_index_free(ix2);
    CHECK_EQ(cooc_block_compute(ix, 5, 4, 1, &b), -EINVAL);
    CHECK_EQ(cooc_block_compute(ix, 0, ITEMS + 1, 1, &b), -EINVAL);
    cooc_block_destroy(&b);
    cooc_index_free(ix);
    cooc_index_free(upper);
    free(start);
    free(item);
    free(pp);
    return 0;
}
