/*
 * item.h: item ids (DESIGN §3): a beatmap id plus the mods that change what a play is.
 *
 * An item is written `856861_DT`, `949011_` (nomod keeps the underscore), `1000052_DTHR`: the
 * letters in the fixed order DT EZ FL HR HT. In memory and on disk an item is one u64 key,
 * (beatmap_id << 8) | mods5, where mods5 holds one bit per letter in that order. Sorting keys
 * sorts by beatmap id, then by mods, which is the canonical order used by digests and by the
 * refresh (so results never depend on the order items were first seen).
 */
#ifndef ATL_ITEM_H
#define ATL_ITEM_H

#include <stddef.h>
#include <stdint.h>

/* Legacy osu! API v1 mod bits that take part in an item id. */
#define ITEM_LEGACY_EZ 2u
#define ITEM_LEGACY_HR 16u
#define ITEM_LEGACY_DT 64u
#define ITEM_LEGACY_HT 256u
#define ITEM_LEGACY_NC 512u
#define ITEM_LEGACY_FL 1024u

/* Bits of mods5, in letter order. */
#define ITEM_MOD_DT  1u
#define ITEM_MOD_EZ  2u
#define ITEM_MOD_FL  4u
#define ITEM_MOD_HR  8u
#define ITEM_MOD_HT  16u
#define ITEM_MOD_ALL 31u

/* Longest text form: 10 digits, '_', "DTEZFLHRHT", NUL. */
#define ITEM_ID_MAX 24

/** Reduce a legacy bitmask to mods5: NC counts as DT; HD and every other mod is dropped. */
uint32_t item_mods_from_legacy(uint32_t legacy);

/** The legacy bitmask (DT 64, EZ 2, FL 1024, HR 16, HT 256 only) of a mods5 value. */
uint32_t item_mods_to_legacy(uint32_t mods5);

/** Pack a beatmap id and mods5 into an item key. */
uint64_t item_key_make(uint32_t beatmap_id, uint32_t mods5);

/** Beatmap id of an item key. */
uint32_t item_key_beatmap(uint64_t key);

/** mods5 of an item key. */
uint32_t item_key_mods(uint64_t key);

/**
 * Write the text id of @p key, e.g. `1000052_DTHR`, into @p buf (at least ITEM_ID_MAX bytes).
 * @return buf.
 */
char *item_key_format(uint64_t key, char *buf);

/**
 * Parse a text id such as `856861_DT`. Letters must be in canonical order, each at most once.
 * @return 0 and *out, or -EINVAL.
 */
int item_key_parse(const char *s, size_t len, uint64_t *out);

#endif
