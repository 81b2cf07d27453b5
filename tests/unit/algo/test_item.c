/* Item ids: mods reduction (NC->DT, HD ignored), text form, parsing round trips. */
#include <errno.h>

#include "algo/item.h"
#include "tests/check.h"

static void check_format(uint32_t beatmap, uint32_t legacy, const char *want)
{
    char buf[ITEM_ID_MAX];
    uint64_t key = item_key_make(beatmap, item_mods_from_legacy(legacy)), back;
    CHECK_STREQ(item_key_format(key, buf), want);
    E(item_key_parse(buf, strlen(buf), &back));
    CHECK_EQ(back, key);
}

int main(void)
{
    check_format(856861, 64, "856861_DT");
    check_format(856861, 576, "856861_DT"); /* NC+DT */
    check_format(856861, 512, "856861_DT"); /* lone NC */
    check_format(949011, 0, "949011_");
    check_format(949011, 8 | 1 | 32, "949011_"); /* HD NF SD ignored */
    check_format(1000052, 64 | 16 | 8, "1000052_DTHR");
    check_format(1, 2 | 1024 | 256, "1_EZFLHT");
    check_format(4294967295u, 64 | 2 | 1024 | 16 | 256, "4294967295_DTEZFLHRHT");
    CHECK_EQ(item_mods_to_legacy(item_mods_from_legacy(64 | 16 | 8 | 512)), 64 | 16);

    uint64_t k;
    const char *bad[] = {"",        "_",    "12",   "12_X",         "12_HRDT",
                         "12_DTDT", "12_D", "x_DT", "99999999999_", "12_dt"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ(item_key_parse(bad[i], strlen(bad[i]), &k), -EINVAL);
    /* keys sort by beatmap, then mods */
    CHECK(item_key_make(5, ITEM_MOD_ALL) < item_key_make(6, 0));
    return 0;
}
