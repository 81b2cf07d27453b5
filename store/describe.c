/*
 * describe.c: one item as `atlasctl inspect` and the daemon's GET /items/<id> show it, built in
 * one place from the store's tables (stats, metadata, S, the coordinates of the last map).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <cJSON.h>

#include "algo/item.h"
#include "algo/weight.h"
#include "store/store.h"

static void add_map(store_t *s, uint64_t key, cJSON *o)
{
    store_item_coords_t c, nc;
    char id[ITEM_ID_MAX];
    if (store_coords_item(s, key, &c) != 0) {
        cJSON_AddNullToObject(o, "map");
        return;
    }
    cJSON *m = cJSON_AddObjectToObject(o, "map");
    cJSON_AddStringToObject(m, "snapshot", c.snapshot);
    cJSON_AddNumberToObject(m, "x", c.framed[0]);
    cJSON_AddNumberToObject(m, "y", c.framed[1]);
    cJSON *xyz = cJSON_AddArrayToObject(m, "xyz");
    for (int d = 0; d < 3; d++)
        cJSON_AddItemToArray(xyz, cJSON_CreateNumber(c.x3[d]));
    cJSON *nb = cJSON_AddArrayToObject(m, "neighbours"); /* nearest in T first */
    for (uint32_t q = 0; q < c.k; q++) {
        if (!c.knn[q] || store_coords_item(s, c.knn[q], &nc) != 0)
            continue;
        double d2 = 0;
        for (int d = 0; d < 3; d++)
            d2 += (c.x3[d] - nc.x3[d]) * (c.x3[d] - nc.x3[d]);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "item", item_key_format(c.knn[q], id));
        cJSON_AddNumberToObject(e, "distance_3d", sqrt(d2));
        cJSON_AddItemToArray(nb, e);
    }
}

int store_item_json(store_t *s, uint64_t key, uint32_t k, char **out)
{
    uint32_t nu;
    int64_t sum;
    char id[ITEM_ID_MAX], *arena = NULL;
    int rc = store_item_stats_get(s, key, &nu, &sum);
    if (rc != 0)
        return rc;
    corpus_row_t row;
    double zero[2] = {0, 0};
    uint64_t *keys = malloc(((size_t)k + 1) * sizeof(*keys));
    double *sv = malloc(((size_t)k + 1) * sizeof(*sv));
    uint32_t n = 0;
    cJSON *o = cJSON_CreateObject();
    if (!keys || !sv || !o) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = store_corpus_rows(s, &key, zero, 1, &row, &arena)) != 0 ||
        (rc = store_cooc_top(s, key, k, keys, sv, &n)) != 0)
        goto out;
    cJSON_AddStringToObject(o, "item", item_key_format(key, id));
    cJSON_AddNumberToObject(o, "players", nu);
    cJSON_AddNumberToObject(o, "avg_pp", nu ? weight_to_double(sum) / nu : 0.0);
    cJSON_AddBoolToObject(o, "retained", weight_retained(nu, sum));
    cJSON *b = cJSON_AddObjectToObject(o, "beatmap");
    char buf[1024];
    snprintf(buf, sizeof(buf), "%.*s", row.title_len, row.title ? row.title : "");
    cJSON_AddStringToObject(b, "title", buf);
    snprintf(buf, sizeof(buf), "%.*s", row.version_len, row.version ? row.version : "");
    cJSON_AddStringToObject(b, "version", buf);
    snprintf(buf, sizeof(buf), "%.*s", row.creator_len, row.creator ? row.creator : "");
    cJSON_AddStringToObject(b, "creator", buf);
    cJSON_AddNumberToObject(b, "beatmapset_id", row.beatmapset_id);
    cJSON_AddNumberToObject(b, "stars", (double)row.stars);
    cJSON *top = cJSON_AddArrayToObject(o, "top_cooccurring");
    for (uint32_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "item", item_key_format(keys[i], id));
        cJSON_AddNumberToObject(e, "s", sv[i]);
        cJSON_AddItemToArray(top, e);
    }
    add_map(s, key, o);
    if (!(*out = cJSON_PrintUnformatted(o)))
        rc = -ENOMEM;
out:
    cJSON_Delete(o);
    free(keys), free(sv), free(arena);
    return rc;
}
