/*
 * embed.h: what embed.c shares with the other tools/ files (the snapshot pipeline).
 */
#ifndef ATL_TOOLS_EMBED_H
#define ATL_TOOLS_EMBED_H

#include <stdint.h>

#include "algo/graph.h"

typedef struct name_table {
    char **names;
    uint32_t n, cap;
    /* open-addressing hash: slot -> index + 1 */
    uint32_t *slots;
    size_t n_slots;
} name_table_t;

/** Free a name table's strings and arrays. */
void names_free(name_table_t *t);

typedef struct embed_args {
    const char *edges, *db, *retained, *init, *out, *knn_out, *labels, *layout_out;
    uint64_t k, dim, max_iter, seed, threads, top;
    double ftol;
    int no_prune, json;
} embed_args_t;

/**
 * Read a store's retained graph (a->db) into T, pruning rows as they stream out of one read
 * snapshot; names get the item ids in retained (item-key) order. *t_read: when reading ended.
 * @return 0 or an error (printed).
 */
int embed_load_store_graph(const embed_args_t *a, name_table_t *names, uint64_t **keys, uint32_t *n,
                           graph_t *t, double *t_read);

#endif
