/*
 * weight.c: pair weights and retention (DESIGN §3; osu! atlas embed.ipynb cells 8 and 10).
 */
#include "algo/weight.h"

#include <math.h>

int64_t weight_pair(float pp_a, float pp_b)
{
    return weight_pair_inline(pp_a, pp_b);
}

int64_t weight_pp_fixed(float pp)
{
    return llround((double)pp * WEIGHT_ONE);
}

int weight_retained(uint32_t num_users, int64_t sum_pp_fixed)
{
    if (num_users == 0)
        return 0;
    double avg_pp = weight_to_double(sum_pp_fixed) / num_users;
    double act = (avg_pp - 100.0) / 400.0;
    act = act < 0.0 ? 0.0 : (act > 1.0 ? 1.0 : act);
    return (double)num_users >= 50.0 - 45.0 * act;
}
