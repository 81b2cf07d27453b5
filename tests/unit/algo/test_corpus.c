/*
 * Corpus codec: golden bytes for a fixed two-row input (tests/data/corpus_two_rows.hex, written
 * by hand from DESIGN §6), round trip, num_users saturation, and rejection of malformed files.
 */
#include <errno.h>

#include "algo/corpus.h"
#include "tests/check.h"

static size_t read_hex(const char *path, uint8_t *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    size_t n = 0;
    int c, hi = -1;
    while ((c = fgetc(f)) != EOF) {
        int v = c >= '0' && c <= '9' ? c - '0' : (c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1);
        if (c == '#') { /* comment to end of line */
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
            continue;
        }
        if (v < 0)
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            CHECK(n < cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    corpus_row_t rows[2] = {
        {.beatmap_id = 856861,
         .mods = 64,
         .x = 1.5f,
         .y = -2.0f,
         .avg_pp = 300.0f,
         .stars = 6.5f,
         .year = 2018,
         .total_length = 90,
         .bpm = 180,
         .ar = 9,
         .cs = 4,
         .od = 8,
         .aim = 3.0f,
         .speed = 2.5f,
         .beatmapset_id = 388813,
         .num_users = 70000,
         .title = "Ab",
         .title_len = 2,
         .version = "X",
         .version_len = 1,
         .creator = "\xc3\xa9",
         .creator_len = 2},
        {.beatmap_id = 949011, .mods = 0, .x = 0, .y = 0.25f, .num_users = 12},
    };
    uint8_t buf[512], golden[512];
    size_t size = corpus_size(rows, 2);
    CHECK_EQ(size, 4 + 2 * 62 + 5);
    E(corpus_encode(rows, 2, buf));
    size_t gn = read_hex(argv[1], golden, sizeof(golden));
    CHECK_EQ(gn, size);
    for (size_t i = 0; i < size; i++)
        if (buf[i] != golden[i]) {
            fprintf(stderr, "byte %zu: got %02x, golden %02x\n", i, buf[i], golden[i]);
            abort();
        }

    corpus_row_t back[2];
    uint32_t n;
    char err[128];
    E(corpus_decode(buf, size, NULL, &n, err, sizeof(err)));
    CHECK_EQ(n, 2);
    E(corpus_decode(buf, size, back, &n, err, sizeof(err)));
    CHECK_EQ(back[0].beatmap_id, 856861);
    CHECK_EQ(back[0].num_users, 65535); /* saturated */
    CHECK(back[0].x == 1.5f && back[0].y == -2.0f && back[1].y == 0.25f);
    CHECK(memcmp(back[0].creator, "\xc3\xa9", 2) == 0 && back[0].creator_len == 2);
    CHECK_EQ(back[1].title_len, 0);

    CHECK_EQ(corpus_decode(buf, size - 1, NULL, &n, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "past the end") != NULL);
    CHECK_EQ(corpus_decode(buf, 3, NULL, &n, err, sizeof(err)), -EINVAL);
    uint8_t big[600];
    memcpy(big, buf, size);
    big[size] = 0;
    CHECK_EQ(corpus_decode(big, size + 1, NULL, &n, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "trailing") != NULL);
    big[0] = 200; /* row count past the end */
    CHECK_EQ(corpus_decode(big, size, NULL, &n, err, sizeof(err)), -EINVAL);
    rows[1].mods = 8; /* HD is not an item mod */
    CHECK_EQ(corpus_encode(rows, 2, buf), -EINVAL);
    return 0;
}
