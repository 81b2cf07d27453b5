/*
 * item.c: item ids. See item.h for the format; the letter order DT EZ FL HR HT is the one the
 * osu! atlas notebook (`decode_mods_bitset`) uses, so our ids equal the published corpus's.
 */
#include "algo/item.h"

#include <errno.h>
#include <string.h>

#include "algo/atl.h"

static const struct {
    const char *letters;
    uint32_t mods5;
    uint32_t legacy;
} mod_table[] = {
    {"DT", ITEM_MOD_DT, ITEM_LEGACY_DT}, {"EZ", ITEM_MOD_EZ, ITEM_LEGACY_EZ},
    {"FL", ITEM_MOD_FL, ITEM_LEGACY_FL}, {"HR", ITEM_MOD_HR, ITEM_LEGACY_HR},
    {"HT", ITEM_MOD_HT, ITEM_LEGACY_HT},
};

uint32_t item_mods_from_legacy(uint32_t legacy)
{
    uint32_t m = 0;
    /* The legacy API sets NC together with DT (576); treat a lone NC the same way. */
    if (legacy & ITEM_LEGACY_NC)
        legacy |= ITEM_LEGACY_DT;
    for (size_t i = 0; i < ATL_ARRAY_LEN(mod_table); i++)
        if (legacy & mod_table[i].legacy)
            m |= mod_table[i].mods5;
    return m;
}

uint32_t item_mods_to_legacy(uint32_t mods5)
{
    uint32_t l = 0;
    for (size_t i = 0; i < ATL_ARRAY_LEN(mod_table); i++)
        if (mods5 & mod_table[i].mods5)
            l |= mod_table[i].legacy;
    return l;
}

uint64_t item_key_make(uint32_t beatmap_id, uint32_t mods5)
{
    return ((uint64_t)beatmap_id << 8) | (mods5 & ITEM_MOD_ALL);
}

uint32_t item_key_beatmap(uint64_t key)
{
    return (uint32_t)(key >> 8);
}

uint32_t item_key_mods(uint64_t key)
{
    return (uint32_t)(key & ITEM_MOD_ALL);
}

char *item_key_format(uint64_t key, char *buf)
{
    char digits[10];
    int n = 0, nd = 0;
    uint32_t id = item_key_beatmap(key);
    do {
        digits[nd++] = (char)('0' + id % 10);
        id /= 10;
    } while (id);
    while (nd)
        buf[n++] = digits[--nd];
    buf[n++] = '_';
    uint32_t m = item_key_mods(key);
    for (size_t i = 0; i < ATL_ARRAY_LEN(mod_table); i++) {
        if (m & mod_table[i].mods5) {
            memcpy(buf + n, mod_table[i].letters, 2);
            n += 2;
        }
    }
    buf[n] = '\0';
    return buf;
}

int item_key_parse(const char *s, size_t len, uint64_t *out)
{
    size_t i = 0;
    uint64_t id = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        id = id * 10 + (uint64_t)(s[i] - '0');
        if (id > UINT32_MAX)
            return -EINVAL;
        i++;
    }
    if (i == 0 || i >= len || s[i] != '_')
        return -EINVAL;
    i++;
    uint32_t mods = 0;
    size_t next = 0; /* letters must follow table order */
    while (i < len) {
        if (len - i < 2)
            return -EINVAL;
        size_t t = next;
        while (t < ATL_ARRAY_LEN(mod_table) && memcmp(s + i, mod_table[t].letters, 2) != 0)
            t++;
        if (t == ATL_ARRAY_LEN(mod_table))
            return -EINVAL;
        mods |= mod_table[t].mods5;
        next = t + 1;
        i += 2;
    }
    *out = item_key_make((uint32_t)id, mods);
    return 0;
}
