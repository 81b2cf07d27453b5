/*
 * embed.c: `atlasctl embed` (the algorithms on any graph, for side-by-side comparisons with
 * PyMDE on identical input) and `atlasctl export-graph` (a store's retained S as that input).
 *
 * Input S.tsv: `i<TAB>j<TAB>s`, each unordered pair once. Every item named in the file (or in
 * --retained) is a node; nodes are ordered by item key when every name is an item id (like the
 * daemon), else by name. Pruning (top 700 per row, S > 2, distance 1/ln S) is the daemon's;
 * --no-prune reads `i j distance` as T itself.
 */
#include "tools/embed.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "algo/graph.h"
#include "algo/item.h"
#include "algo/knn.h"
#include "algo/layout.h"
#include "algo/mde.h"
#include "algo/quality.h"
#include "store/store.h"
#include "tools/cli.h"

/* ---- names ------------------------------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void names_grow(name_table_t *t)
{
    size_t ns = t->n_slots ? t->n_slots * 2 : 1024;
    uint32_t *sl = xcalloc(ns, sizeof(*sl));
    for (uint32_t i = 0; i < t->n; i++) {
        size_t h = hash_str(t->names[i]) & (ns - 1);
        while (sl[h])
            h = (h + 1) & (ns - 1);
        sl[h] = i + 1;
    }
    free(t->slots);
    t->slots = sl;
    t->n_slots = ns;
}

static uint32_t names_intern(name_table_t *t, const char *s)
{
    if ((size_t)t->n * 2 >= t->n_slots)
        names_grow(t);
    size_t h = hash_str(s) & (t->n_slots - 1);
    while (t->slots[h]) {
        if (strcmp(t->names[t->slots[h] - 1], s) == 0)
            return t->slots[h] - 1;
        h = (h + 1) & (t->n_slots - 1);
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        t->names = xrealloc(t->names, t->cap * sizeof(*t->names));
    }
    t->names[t->n] = strdup(s);
    t->slots[h] = t->n + 1;
    return t->n++;
}

void names_free(name_table_t *t)
{
    for (uint32_t i = 0; i < t->n; i++)
        free(t->names[i]);
    free(t->names);
    free(t->slots);
}

/* Canonical order of names: by item key if all parse, else by strcmp. perm[rank] = id. */
static const name_table_t *order_table;
static uint64_t *order_keys;

static int cmp_by_key(const void *a, const void *b)
{
    uint64_t x = order_keys[*(const uint32_t *)a], y = order_keys[*(const uint32_t *)b];
    return (x > y) - (x < y);
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(order_table->names[*(const uint32_t *)a],
                  order_table->names[*(const uint32_t *)b]);
}

static uint32_t *names_order(const name_table_t *t, uint64_t **keys_out)
{
    uint32_t *perm = xmalloc(((size_t)t->n + 1) * sizeof(*perm));
    uint64_t *keys = xmalloc(((size_t)t->n + 1) * sizeof(*keys));
    int all_items = 1;
    for (uint32_t i = 0; i < t->n; i++) {
        perm[i] = i;
        if (item_key_parse(t->names[i], strlen(t->names[i]), &keys[i]) != 0) {
            all_items = 0;
            keys[i] = hash_str(t->names[i]);
        }
    }
    order_table = t;
    order_keys = keys;
    qsort(perm, t->n, sizeof(*perm), all_items ? cmp_by_key : cmp_by_name);
    *keys_out = keys;
    return perm;
}

static FILE *open_input(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fprintf(stderr, "atlasctl embed: cannot open %s: %s\n", path, strerror(errno));
    return f;
}

/* ---- reading the edge file --------------------------------------------------------------- */

typedef struct tsv_edges {
    uint32_t *i, *j;
    double *v;
    size_t m, cap;
} tsv_edges_t;

static int read_edges(const char *path, name_table_t *names, tsv_edges_t *e)
{
    FILE *f = open_input(path);
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    uint64_t lineno = 0;
    int rc = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *a = strtok(line, "\t\n"), *b = strtok(NULL, "\t\n"), *c = strtok(NULL, "\t\n");
        if (!a || a[0] == '#')
            continue;
        char *end = NULL;
        double v = c ? strtod(c, &end) : NAN;
        if (!b || !c || *end || !isfinite(v) || v < 0) {
            fprintf(stderr, "%s:%" PRIu64 ": expected i<TAB>j<TAB>value (finite, >= 0)\n", path,
                    lineno);
            rc = -1;
            break;
        }
        if (e->m == e->cap) {
            e->cap = e->cap ? e->cap * 2 : 1 << 16;
            e->i = xrealloc(e->i, e->cap * sizeof(*e->i));
            e->j = xrealloc(e->j, e->cap * sizeof(*e->j));
            e->v = xrealloc(e->v, e->cap * sizeof(*e->v));
        }
        e->i[e->m] = names_intern(names, a);
        e->j[e->m] = names_intern(names, b);
        e->v[e->m] = v;
        e->m++;
    }
    free(line);
    fclose(f);
    return rc;
}

static int read_retained(const char *path, name_table_t *names)
{
    FILE *f = open_input(path);
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        char *a = strtok(line, "\t\n ");
        if (a && a[0] != '#')
            names_intern(names, a);
    }
    free(line);
    fclose(f);
    return 0;
}

/* Labels file `item<TAB>group`: label index per rank, -1 for items without a label. */
static int32_t *read_labels(const char *path, name_table_t *names, const uint32_t *rank, uint32_t n)
{
    FILE *f = open_input(path);
    if (!f)
        return NULL;
    int32_t *lab = xmalloc(((size_t)n + 1) * sizeof(*lab));
    for (uint32_t i = 0; i < n; i++)
        lab[i] = -1;
    name_table_t groups = {0};
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        char *item = strtok(line, "\t\n"), *group = strtok(NULL, "\t\n");
        if (!item || !group)
            continue;
        uint32_t before = names->n, id = names_intern(names, item);
        if (names->n != before || id >= n)
            continue;
        lab[rank[id]] = (int32_t)names_intern(&groups, group);
    }
    free(line);
    fclose(f);
    names_free(&groups);
    return lab;
}

/* ---- pipeline ---------------------------------------------------------------------------- */

/* Symmetric CSR of S by rank, then one pruned row at a time into T. */
static int build_t(const tsv_edges_t *e, const uint32_t *rank, uint32_t n, const embed_args_t *a,
                   graph_t *t)
{
    if (a->no_prune) {
        graph_edges_t ge;
        graph_edges_init(&ge);
        for (size_t x = 0; x < e->m; x++)
            if (e->v[x] > 0 && graph_edges_add(&ge, rank[e->i[x]], rank[e->j[x]], (float)e->v[x]))
                return -ENOMEM;
        int rc = graph_build(n, &ge, t);
        graph_edges_destroy(&ge);
        return rc;
    }
    uint64_t *ptr = xcalloc((size_t)n + 2, sizeof(*ptr));
    for (size_t x = 0; x < e->m; x++) {
        ptr[rank[e->i[x]] + 2]++;
        ptr[rank[e->j[x]] + 2]++;
    }
    for (uint32_t i = 0; i < n; i++)
        ptr[i + 2] += ptr[i + 1];
    uint32_t *cols = xmalloc((2 * e->m + 1) * sizeof(*cols));
    double *s = xmalloc((2 * e->m + 1) * sizeof(*s));
    for (size_t x = 0; x < e->m; x++) {
        uint32_t i = rank[e->i[x]], j = rank[e->j[x]];
        cols[ptr[i + 1]] = j, s[ptr[i + 1]++] = e->v[x];
        cols[ptr[j + 1]] = i, s[ptr[j + 1]++] = e->v[x];
    }
    graph_pruner_t p;
    int rc = graph_pruner_init(&p, a->top, GRAPH_MIN_S_DEFAULT);
    for (uint32_t i = 0; i < n && rc == 0; i++)
        rc = graph_pruner_row(&p, i, cols + ptr[i], s + ptr[i], ptr[i + 1] - ptr[i]);
    if (rc == 0)
        rc = graph_pruner_finish(&p, n, t);
    graph_pruner_destroy(&p);
    free(ptr);
    free(cols);
    free(s);
    return rc;
}

/* --init FILE: rows `item x y z`; returns the placed mask. */
static uint8_t *read_init(const char *path, name_table_t *names, const uint32_t *rank, uint32_t n,
                          uint32_t dim, double *x)
{
    FILE *f = open_input(path);
    if (!f)
        return NULL;
    uint8_t *placed = xcalloc(n + 1, 1);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        char *name = strtok(line, "\t\n ");
        if (!name || name[0] == '#')
            continue;
        uint32_t before = names->n, id = names_intern(names, name);
        if (id >= before && before != names->n)
            continue; /* not a node of this graph */
        uint32_t r = rank[id];
        int ok = 1;
        for (uint32_t c = 0; c < dim && ok; c++) {
            char *tok = strtok(NULL, "\t\n "), *end = NULL;
            x[(size_t)r * dim + c] = tok ? strtod(tok, &end) : NAN;
            ok = tok && !*end && isfinite(x[(size_t)r * dim + c]);
        }
        placed[r] = (uint8_t)ok;
    }
    free(line);
    fclose(f);
    return placed;
}

/* @p v with @p fmt, or null when it is not finite; @return @p buf. */
static const char *json_num(char buf[32], double v, const char *fmt)
{
    if (!isfinite(v))
        return "null";
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(buf, 32, fmt, v);
#pragma GCC diagnostic pop
    return buf;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static int write_outputs(const embed_args_t *a, const name_table_t *names, const uint32_t *perm,
                         uint32_t n, const double *x, const knn_t *knn)
{
    FILE *f = fopen(a->out, "w");
    if (!f) {
        fprintf(stderr, "atlasctl embed: cannot write %s: %s\n", a->out, strerror(errno));
        return -1;
    }
    for (uint32_t r = 0; r < n; r++) {
        fputs(names->names[perm[r]], f);
        for (uint32_t c = 0; c < a->dim; c++)
            fprintf(f, "\t%.9g", x[(size_t)r * a->dim + c]);
        fputc('\n', f);
    }
    if (fclose(f) != 0)
        return -1;
    if (!a->knn_out)
        return 0;
    if (!(f = fopen(a->knn_out, "w")))
        return -1;
    for (uint32_t r = 0; r < n; r++)
        for (uint32_t q = 0; q < knn->count[r]; q++)
            fprintf(f, "%s\t%s\t%.9g\n", names->names[perm[r]],
                    names->names[perm[knn->nbr[(size_t)r * knn->k + q]]],
                    (double)knn->dist[(size_t)r * knn->k + q]);
    return fclose(f) == 0 ? 0 : -1;
}

/* The 2-D map of the 3-D coordinates (UMAP, cold), framed as the atlas exports it. */
static int run_layout(const embed_args_t *a, name_table_t *names, const uint32_t *perm,
                      const uint32_t *rank, uint32_t n, const double *x, double *seconds,
                      double *purity_2d)
{
    double t0 = cli_now(), *y = xmalloc(((size_t)n * 2 + 1) * sizeof(*y));
    layout_opts_t lo;
    layout_opts_default(&lo);
    lo.seed = a->seed;
    cli_progress_t prog;
    cli_progress_init(&prog, "layout");
    lo.progress = cli_progress_cb;
    lo.progress_ud = &prog;
    int rc = layout_umap(x, n, (uint32_t)a->dim, &lo, y, NULL, NULL);
    cli_progress_done(&prog);
    *seconds = cli_now() - t0;
    if (rc == 0 && a->labels) {
        int32_t *lab = read_labels(a->labels, names, rank, n);
        if (lab)
            quality_label_purity(y, n, 2, lab, 10, 2000, 1, purity_2d);
        free(lab);
    }
    FILE *f = rc == 0 ? fopen(a->layout_out, "w") : NULL;
    if (rc == 0 && !f)
        rc = -errno;
    if (f) {
        layout_frame(y, n, y);
        for (uint32_t r = 0; r < n; r++)
            fprintf(f, "%s\t%.6f\t%.6f\n", names->names[perm[r]], y[2 * (size_t)r],
                    y[2 * (size_t)r + 1]);
        if (fclose(f) != 0)
            rc = -EIO;
    }
    free(y);
    return rc;
}

static int prune_row_cb(void *ud, uint32_t row, const uint32_t *cols, const double *s, size_t n)
{
    return graph_pruner_row(ud, row, cols, s, n);
}

/* Read the retained graph of a store: T is built while rows stream out of one read snapshot.
 * *t_read is when the store read (including per-row pruning) ended. */
int embed_load_store_graph(const embed_args_t *a, name_table_t *names, uint64_t **keys, uint32_t *n,
                           graph_t *t, double *t_read)
{
    store_t *s;
    graph_pruner_t p;
    int rc = cli_store_open("embed", a->db, 1, &s);
    if (rc != 0)
        return -1;
    if ((rc = graph_pruner_init(&p, a->top, GRAPH_MIN_S_DEFAULT)) == 0)
        rc = store_retained_rows(s, prune_row_cb, &p, keys, n);
    store_close(s);
    *t_read = cli_now();
    if (rc == 0 && *n < 2) {
        fprintf(stderr, "atlasctl embed: the store has fewer than 2 retained items\n");
        rc = -1;
    }
    if (rc == 0)
        rc = graph_pruner_finish(&p, *n, t);
    graph_pruner_destroy(&p);
    char id[ITEM_ID_MAX];
    for (uint32_t i = 0; rc == 0 && i < *n; i++)
        names_intern(names, item_key_format((*keys)[i], id));
    return rc;
}

static int run_embed(embed_args_t *a)
{
    name_table_t names = {0};
    tsv_edges_t e = {0};
    graph_t t = {0};
    knn_t knn = {0};
    graph_edges_t ke;
    mde_t m = {0};
    uint64_t *keys = NULL;
    uint32_t *perm = NULL, *rank = NULL;
    double *x = NULL, *x0 = NULL;
    uint8_t *placed = NULL;
    int rc = -1;
    double t0 = cli_now(), t_load, t_prune, t_knn, t_mde;
    cli_progress_t prog;
    cli_progress_init(&prog, "embed");
    graph_edges_init(&ke);
    uint32_t n = 0;
    if (a->db) {
        /* straight from a store: retained rows pruned as they stream out of LMDB */
        if ((rc = embed_load_store_graph(a, &names, &keys, &n, &t, &t_load)) != 0)
            goto out;
        perm = xmalloc(((size_t)n + 1) * sizeof(*perm));
        rank = xmalloc(((size_t)n + 1) * sizeof(*rank));
        for (uint32_t r = 0; r < n; r++)
            perm[r] = rank[r] = r;
        t_prune = cli_now();
    } else {
        if ((a->retained && read_retained(a->retained, &names) != 0) ||
            read_edges(a->edges, &names, &e) != 0)
            goto out;
        n = names.n;
        if (n < 2) {
            fprintf(stderr, "atlasctl embed: the graph has fewer than 2 items\n");
            goto out;
        }
        perm = names_order(&names, &keys);
        rank = xmalloc(((size_t)n + 1) * sizeof(*rank));
        uint64_t *rkeys = xmalloc(((size_t)n + 1) * sizeof(*rkeys));
        for (uint32_t r = 0; r < n; r++) {
            rank[perm[r]] = r;
            rkeys[r] = keys[perm[r]];
        }
        free(keys);
        keys = rkeys;
        t_load = cli_now();
        if ((rc = build_t(&e, rank, n, a, &t)) != 0)
            goto out;
        t_prune = cli_now();
    }
    knn_opts_t ko;
    knn_opts_default(&ko);
    ko.k = (uint32_t)a->k;
    ko.n_threads = (unsigned)a->threads;
    ko.progress = cli_progress_cb;
    ko.progress_ud = &prog;
    if ((rc = knn_build(&t, &ko, &knn)) != 0 || (rc = knn_edges(&knn, &ke)) != 0)
        goto out;
    t_knn = cli_now();
    mde_opts_t mo;
    mde_opts_default(&mo);
    mo.dim = (uint32_t)a->dim;
    mo.max_iter = (uint32_t)a->max_iter;
    mo.seed = a->seed;
    mo.n_threads = (unsigned)a->threads;
    mo.ftol = a->ftol;
    mo.progress = cli_progress_cb;
    mo.progress_ud = &prog;
    if ((rc = mde_init(&m, &mo, n, &ke, keys)) != 0)
        goto out;
    x = xcalloc((size_t)n * a->dim + 1, sizeof(*x));
    if (a->init && strcmp(a->init, "random") != 0) {
        if (!(placed = read_init(a->init, &names, rank, n, (uint32_t)a->dim, x))) {
            rc = -1;
            goto out;
        }
        if (mde_coords_warm(&m, x, placed) != 0) {
            fprintf(stderr, "atlasctl embed: out of memory\n");
            abort(); /* tools/: abort on OOM (STYLE R3) */
        }
        x0 = xmalloc(((size_t)n * a->dim + 1) * sizeof(*x0));
        memcpy(x0, x, (size_t)n * a->dim * sizeof(*x0));
    } else {
        mde_coords_random(&m, x);
    }
    mde_result_t res;
    if ((rc = mde_run(&m, x, &res)) != 0)
        goto out;
    t_mde = cli_now();
    cli_progress_done(&prog);
    if ((rc = write_outputs(a, &names, perm, n, x, &knn)) != 0) {
        fprintf(stderr, "atlasctl embed: writing the output failed\n");
        goto out;
    }
    double t_layout = 0, purity_2d = -1;
    if (a->layout_out && (rc = run_layout(a, &names, perm, rank, n, x, &t_layout, &purity_2d)) != 0)
        goto out;
    size_t short_rows = knn_short_rows(&knn);
    double purity = -1;
    if (a->labels) {
        int32_t *lab = read_labels(a->labels, &names, rank, n);
        if (!lab || quality_label_purity(x, n, (uint32_t)a->dim, lab, 10, 2000, 1, &purity)) {
            free(lab);
            rc = -1;
            goto out;
        }
        free(lab);
    }
    /* warm start: how far the items that had coordinates moved, as a fraction of the width */
    double moved_med = -1, moved_p95 = -1;
    if (x0) {
        double width = 0;
        for (uint32_t c = 0; c < a->dim; c++) {
            double lo = INFINITY, hi = -INFINITY;
            for (uint32_t r = 0; r < n; r++) {
                lo = fmin(lo, x[(size_t)r * a->dim + c]);
                hi = fmax(hi, x[(size_t)r * a->dim + c]);
            }
            width = fmax(width, hi - lo);
        }
        quality_displacement(x0, x, n, (uint32_t)a->dim, placed, width, &moved_med, &moved_p95);
    }
    if (a->json) {
        /* JSON has no inf or nan (a start with coincident points has infinite distortion) */
        char j[7][32];
        printf("{\"items\":%u,\"moved_median\":%s,\"moved_p95\":%s,\"purity\":%s,\"t_edges\":"
               "%zu,\"max_distance\":%s,\"knn_edges\":%zu,"
               "\"short_rows\":%zu,\"repulsive_edges\":%zu,\"iterations\":%u,\"evaluations\":%u,"
               "\"distortion\":%s,\"grad_norm\":%s,\"threads\":%" PRIu64 ",\"seconds\":{"
               "\"load\":%.3f,\"prune\":%.3f,\"knn\":%.3f,\"mde\":%.3f,\"layout\":%.3f},"
               "\"purity_2d\":%s,\"peak_rss_mb\":%.1f}\n",
               n, json_num(j[0], moved_med, "%.5f"), json_num(j[1], moved_p95, "%.5f"),
               json_num(j[2], purity, "%.4f"), graph_n_edges(&t),
               json_num(j[3], knn.max_distance, "%.6g"), ke.m, short_rows, res.n_repulsive,
               res.iterations, res.evaluations, json_num(j[4], res.distortion, "%.6f"),
               json_num(j[5], res.grad_norm, "%.3g"), a->threads, t_load - t0, t_prune - t_load,
               t_knn - t_prune, t_mde - t_knn, t_layout, json_num(j[6], purity_2d, "%.4f"),
               peak_rss_mb());
    } else
        printf("items %u, T edges %zu, kNN edges %zu (%zu rows short of k), distortion %.4f "
               "after %u iterations, label purity %.3f\nload %.2f s, prune %.2f s, knn %.2f s, "
               "mde %.2f s, peak %.0f MiB\n",
               n, graph_n_edges(&t), ke.m, short_rows, res.distortion, res.iterations, purity,
               t_load - t0, t_prune - t_load, t_knn - t_prune, t_mde - t_knn, peak_rss_mb());
out:
    if (rc != 0 && rc != -1)
        fprintf(stderr, "atlasctl embed: %s\n", atl_strerror(rc));
    mde_destroy(&m);
    graph_edges_destroy(&ke);
    knn_destroy(&knn);
    graph_destroy(&t);
    names_free(&names);
    free(e.i);
    free(e.j);
    free(e.v);
    free(keys);
    free(perm);
    free(rank);
    free(x);
    free(x0);
    free(placed);
    return rc == 0 ? 0 : -1;
}

int cmd_embed(int argc, char **argv)
{
    embed_args_t a = {
        .k = 10, .dim = 3, .max_iter = 2000, .seed = 42, .threads = 2, .top = GRAPH_TOP_DEFAULT};
    const cli_opt_t opts[] = {
        {"edges", CLI_STR, &a.edges, "S.tsv", "i<TAB>j<TAB>s, each pair once (or --db)"},
        {"db", CLI_STR, &a.db, "DIR", "read the retained graph from a store instead"},
        {"retained", CLI_STR, &a.retained, "ITEMS.tsv", "also include these items (first column)"},
        {"k", CLI_U64, &a.k, "N", "neighbours per item (default 10)"},
        {"dim", CLI_U64, &a.dim, "N", "embedding dimension (default 3)"},
        {"max-iter", CLI_U64, &a.max_iter, "N", "MDE iterations (default 2000)"},
        {"ftol", CLI_F64, &a.ftol, "X", "stop when F falls < X*F over 10 iterations (default off)"},
        {"seed", CLI_U64, &a.seed, "N", "random seed (default 42)"},
        {"threads", CLI_U64, &a.threads, "N", "threads (default 2)"},
        {"top", CLI_U64, &a.top, "N", "T keeps this many largest S per row (default 700)"},
        {"init", CLI_STR, &a.init, "random|FILE",
         "start point: random (default) or item x y z rows"},
        {"no-prune", CLI_FLAG, &a.no_prune, NULL, "the file is T itself: i j distance"},
        {"out", CLI_STR, &a.out, "COORDS.tsv", "item<TAB>x<TAB>y<TAB>z (required)"},
        {"knn-out", CLI_STR, &a.knn_out, "KNN.tsv", "write item<TAB>neighbour<TAB>distance"},
        {"labels", CLI_STR, &a.labels, "FILE", "item<TAB>group: report 10-NN label purity"},
        {"layout", CLI_STR, &a.layout_out, "FILE", "also run the 2-D layout (UMAP): item x y"},
        {"json", CLI_FLAG, &a.json, NULL, "print figures as JSON"},
    };
    const cli_cmd_t cmd = {"embed", "--edges S.tsv --out COORDS.tsv [options]",
                           "Prune a co-occurrence graph, find exact shortest-path kNN and run MDE.",
                           opts, ATL_ARRAY_LEN(opts)};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    const char *why = !a.edges == !a.db                    ? "give exactly one of --edges and --db"
                      : !a.out                             ? "--out is required"
                      : (a.k < 1 || a.k > KNN_MAX_K)       ? "--k must be 1..256"
                      : (a.dim < 1 || a.dim > MDE_MAX_DIM) ? "--dim must be 1..16"
                      : (a.threads < 1 || a.threads > 64)  ? "--threads must be 1..64"
                      : a.top < 1                          ? "--top must be positive"
                                                           : NULL;
    if (why) {
        fprintf(stderr, "atlasctl embed: %s (see --help)\n", why);
        return CLI_EXIT_USAGE;
    }
    return run_embed(&a) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ---- export-graph ------------------------------------------------------------------------ */

typedef struct export_ctx {
    FILE *f;
    uint64_t pairs;
    uint32_t *pi, *pj;
    double *ps;
    size_t n, cap;
} export_ctx_t;

static int export_row(void *ud, uint32_t row, const uint32_t *cols, const double *s, size_t n)
{
    export_ctx_t *x = ud;
    for (size_t i = 0; i < n; i++) {
        if (cols[i] <= row)
            continue; /* each unordered pair once */
        if (x->n == x->cap) {
            x->cap = x->cap ? x->cap * 2 : 1 << 16;
            x->pi = xrealloc(x->pi, x->cap * sizeof(*x->pi));
            x->pj = xrealloc(x->pj, x->cap * sizeof(*x->pj));
            x->ps = xrealloc(x->ps, x->cap * sizeof(*x->ps));
        }
        x->pi[x->n] = row;
        x->pj[x->n] = cols[i];
        x->ps[x->n] = s[i];
        x->n++;
    }
    return 0;
}

int cmd_export_graph(int argc, char **argv)
{
    const char *db = NULL, *out = NULL, *retained = NULL;
    const cli_opt_t opts[] = {
        {"db", CLI_STR, &db, "DIR", "store directory (required)"},
        {"out", CLI_STR, &out, "S.tsv", "i<TAB>j<TAB>s for retained pairs (required; - stdout)"},
        {"retained", CLI_STR, &retained, "ITEMS.tsv", "also write the retained item ids"},
    };
    const cli_cmd_t cmd = {"export-graph", "--db DIR --out S.tsv",
                           "Dump S among retained items, each pair once, for `embed` or PyMDE.",
                           opts, ATL_ARRAY_LEN(opts)};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (!db || !out) {
        fprintf(stderr, "atlasctl export-graph: --db and --out are required (see --help)\n");
        return CLI_EXIT_USAGE;
    }
    store_t *s;
    if (cli_store_open("export-graph", db, 1, &s) != 0)
        return CLI_EXIT_FAIL;
    export_ctx_t x = {0};
    uint64_t *keys = NULL;
    uint32_t n = 0;
    rc = store_retained_rows(s, export_row, &x, &keys, &n);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "atlasctl export-graph: %s\n", atl_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    FILE *f = strcmp(out, "-") == 0 ? stdout : fopen(out, "w");
    FILE *fr = retained ? fopen(retained, "w") : NULL;
    if (!f || (retained && !fr)) {
        fprintf(stderr, "atlasctl export-graph: cannot write: %s\n", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    char a[ITEM_ID_MAX], b[ITEM_ID_MAX];
    for (size_t i = 0; i < x.n; i++)
        fprintf(f, "%s\t%s\t%.6f\n", item_key_format(keys[x.pi[i]], a),
                item_key_format(keys[x.pj[i]], b), x.ps[i]);
    for (uint32_t i = 0; fr && i < n; i++)
        fprintf(fr, "%s\n", item_key_format(keys[i], a));
    int bad = (f != stdout ? fclose(f) : fflush(f)) != 0 || (fr && fclose(fr) != 0);
    fprintf(stderr, "export-graph: %u retained items, %zu pairs\n", n, x.n);
    free(x.pi);
    free(x.pj);
    free(x.ps);
    free(keys);
    return bad ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
