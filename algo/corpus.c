/*
 * corpus.c: little-endian encoding of the corpus file. See corpus.h.
 */
#include "algo/corpus.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define MODS_ALLOWED (64u | 2u | 1024u | 16u | 256u)

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p + 4;
}

static uint8_t *put_f32(uint8_t *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, sizeof(v));
    return put_u32(p, v);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static float get_f32(const uint8_t *p)
{
    uint32_t v = get_u32(p);
    float f;
    memcpy(&f, &v, sizeof(f));
    return f;
}

size_t corpus_size(const corpus_row_t *rows, uint32_t n)
{
    size_t s = 4 + (size_t)n * CORPUS_ROW_BYTES;
    for (uint32_t i = 0; i < n; i++)
        s += (size_t)rows[i].title_len + rows[i].version_len + rows[i].creator_len;
    return s;
}

int corpus_encode(const corpus_row_t *rows, uint32_t n, uint8_t *buf)
{
    for (uint32_t i = 0; i < n; i++)
        if ((rows[i].mods & ~MODS_ALLOWED) || !isfinite(rows[i].x) || !isfinite(rows[i].y))
            return -EINVAL;
    uint8_t *p = put_u32(buf, n), *s = buf + 4 + (size_t)n * CORPUS_ROW_BYTES;
    for (uint32_t i = 0; i < n; i++) {
        const corpus_row_t *r = &rows[i];
        p = put_u32(p, (uint32_t)r->beatmap_id);
        p = put_u32(p, r->mods);
        p = put_f32(p, r->x);
        p = put_f32(p, r->y);
        p = put_f32(p, r->avg_pp);
        p = put_f32(p, r->stars);
        p = put_u16(p, r->title_len);
        p = put_u16(p, r->version_len);
        p = put_u16(p, r->creator_len);
        p = put_u16(p, r->year);
        p = put_u16(p, r->total_length);
        p = put_u16(p, r->bpm);
        p = put_f32(p, r->ar);
        p = put_f32(p, r->cs);
        p = put_f32(p, r->od);
        p = put_f32(p, r->aim);
        p = put_f32(p, r->speed);
        p = put_u32(p, r->beatmapset_id);
        p = put_u16(p, (uint16_t)(r->num_users > 65535 ? 65535 : r->num_users));

        const struct {
            const char *s;
            uint16_t len;
        } strs[3] = {
            {r->title, r->title_len}, {r->version, r->version_len}, {r->creator, r->creator_len}};

        for (int k = 0; k < 3; k++) {
            if (strs[k].len)
                memcpy(s, strs[k].s, strs[k].len);
            s += strs[k].len;
        }
    }
    return 0;
}

static int bad(char *errbuf, size_t errlen, const char *msg)
{
    if (errbuf && errlen) {
        size_t n = strlen(msg) < errlen - 1 ? strlen(msg) : errlen - 1;
        memcpy(errbuf, msg, n);
        errbuf[n] = '\0';
    }
    return -EINVAL;
}

int corpus_decode(const uint8_t *buf, size_t len, corpus_row_t *rows, uint32_t *n_out, char *errbuf,
                  size_t errlen)
{
    if (len < 4)
        return bad(errbuf, errlen, "shorter than the 4-byte row count");
    uint32_t n = get_u32(buf);
    if ((len - 4) / CORPUS_ROW_BYTES < n)
        return bad(errbuf, errlen, "row count larger than the file");
    const uint8_t *s = buf + 4 + (size_t)n * CORPUS_ROW_BYTES, *end = buf + len;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = buf + 4 + (size_t)i * CORPUS_ROW_BYTES;
        corpus_row_t r;
        r.beatmap_id = (int32_t)get_u32(p);
        r.mods = get_u32(p + 4);
        r.x = get_f32(p + 8), r.y = get_f32(p + 12);
        r.avg_pp = get_f32(p + 16), r.stars = get_f32(p + 20);
        r.title_len = get_u16(p + 24), r.version_len = get_u16(p + 26);
        r.creator_len = get_u16(p + 28), r.year = get_u16(p + 30);
        r.total_length = get_u16(p + 32), r.bpm = get_u16(p + 34);
        r.ar = get_f32(p + 36), r.cs = get_f32(p + 40), r.od = get_f32(p + 44);
        r.aim = get_f32(p + 48), r.speed = get_f32(p + 52);
        r.beatmapset_id = get_u32(p + 56);
        r.num_users = get_u16(p + 60);
        if (!isfinite(r.x) || !isfinite(r.y))
            return bad(errbuf, errlen, "a row has non-finite coordinates");
        if (r.mods & ~MODS_ALLOWED)
            return bad(errbuf, errlen, "a row has mods bits other than DT EZ FL HR HT");
        size_t need = (size_t)r.title_len + r.version_len + r.creator_len;
        if ((size_t)(end - s) < need)
            return bad(errbuf, errlen, "a row's strings run past the end of the file");
        r.title = (const char *)s;
        r.version = r.title + r.title_len;
        r.creator = r.version + r.version_len;
        s += need;
        if (rows)
            rows[i] = r;
    }
    if (s != end)
        return bad(errbuf, errlen, "trailing bytes after the last string");
    *n_out = n;
    return 0;
}
