/*
 * corpus.h: the corpus file the osu! Beatmap Atlas web frontend loads (DESIGN §6;
 * OSU_ATLAS_PIPELINE.md §4.2), encoded and decoded in memory (no I/O here).
 *
 *   u32 N, then N rows of 62 bytes, all little-endian, no padding:
 *     i32 beatmap_id | u32 mods (DT 64, EZ 2, FL 1024, HR 16, HT 256 only) | f32 x | f32 y
 *     f32 avg_pp | f32 stars | u16 len(title) | u16 len(version) | u16 len(creator)
 *     u16 year | u16 total_length | u16 bpm | f32 AR | f32 CS | f32 OD | f32 aim | f32 speed
 *     u32 beatmapset_id | u16 num_users (saturating at 65535)
 *   then, row by row, title, version and creator as raw UTF-8 without terminators.
 * An explicit serializer (not a packed struct) so the bytes are the same on any host.
 */
#ifndef ATL_CORPUS_H
#define ATL_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#define CORPUS_ROW_BYTES 62

typedef struct corpus_row {
    int32_t beatmap_id;
    uint32_t mods; /* legacy bits, DT EZ FL HR HT only */
    float x, y, avg_pp, stars;
    uint16_t year, total_length, bpm;
    float ar, cs, od, aim, speed;
    uint32_t beatmapset_id;
    uint32_t num_users;                    /* saturated to 65535 when written */
    const char *title, *version, *creator; /* UTF-8, not NUL-terminated; may be NULL if len 0 */
    uint16_t title_len, version_len, creator_len;
} corpus_row_t;

/** Bytes corpus_encode() writes for these rows. */
size_t corpus_size(const corpus_row_t *rows, uint32_t n);

/**
 * Encode @p n rows into @p buf (corpus_size() bytes).
 * @return 0, or -EINVAL (a mods bit outside DT/EZ/FL/HR/HT, non-finite x or y).
 */
int corpus_encode(const corpus_row_t *rows, uint32_t n, uint8_t *buf);

/**
 * Validate and decode a corpus: counts, string bounds, finite coordinates. Rows' strings point
 * into @p buf (valid while it is). @p rows may be NULL to validate only; else it must hold
 * *n_out rows (call once with NULL to learn the count).
 * @return 0 and *n_out, or -EINVAL with a reason in errbuf.
 */
int corpus_decode(const uint8_t *buf, size_t len, corpus_row_t *rows, uint32_t *n_out, char *errbuf,
                  size_t errlen);

#endif
