/*
 * graph.c: CSR construction and row pruning. See graph.h.
 */
#include "algo/graph.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/atl.h"
#include "algo/par.h"
#include "algo/sortdef.h"

void graph_edges_init(graph_edges_t *e)
{
    memset(e, 0, sizeof(*e));
}

void graph_edges_destroy(graph_edges_t *e)
{
    free(e->i);
    free(e->j);
    free(e->w);
    graph_edges_init(e);
}

/* The three parallel arrays grow together; the capacity is the smallest they reached. */
static int edges_grow(graph_edges_t *e)
{
    size_t ci = e->cap, cj = e->cap, cw = e->cap;
    int rc = atl_array_grow((void **)&e->i, &ci, e->m + 1, sizeof(*e->i), 1024) ||
             atl_array_grow((void **)&e->j, &cj, e->m + 1, sizeof(*e->j), 1024) ||
             atl_array_grow((void **)&e->w, &cw, e->m + 1, sizeof(*e->w), 1024);
    if (!rc)
        e->cap = ci < cj ? (ci < cw ? ci : cw) : (cj < cw ? cj : cw);
    return rc ? -ENOMEM : 0;
}

int graph_edges_add(graph_edges_t *e, uint32_t i, uint32_t j, float w)
{
    /* three growth checks per edge were a fifth of reading T (callgrind, small store) */
    if (e->m >= e->cap && edges_grow(e) != 0)
        return -ENOMEM;
    e->i[e->m] = i;
    e->j[e->m] = j;
    e->w[e->m] = w;
    e->m++;
    return 0;
}

/* Order for pruning: larger s first, then lower column (s > 0, so its bits order as it does). */
static inline int prune_before(const graph_prune_slot_t *a, const graph_prune_slot_t *b)
{
    return a->s_bits != b->s_bits ? a->s_bits > b->s_bits : a->col < b->col;
}

static int cmp_prune(const void *x, const void *y)
{
    const graph_prune_slot_t *a = x, *b = y;
    return prune_before(a, b) ? -1 : prune_before(b, a);
}

/* Move the @p keep first of v[0, n) in prune order to v[0, keep), in any order (the bounded
 * heap it replaced cost O(n log keep) with an unpredictable branch a comparison: half of
 * reading T from the store). Keys are distinct (one entry a column). */
ATL_SELECT_DEFINE(select_first, graph_prune_slot_t, prune_before, cmp_prune)

#define PREFILTER_SAMPLE 128

/* Whether a does not follow b in prune order, without a branch. */
static inline int prune_not_after(const graph_prune_slot_t *a, const graph_prune_slot_t *b)
{
    return (a->s_bits > b->s_bits) | ((a->s_bits == b->s_bits) & (a->col <= b->col));
}

/*
 * A long row's candidates for its first @p keep: a pivot from an evenly spaced sample of 128
 * (its rank scaled from keep / n, with a margin), then every entry not after it moved to the
 * front, without a branch an entry (the quickselect's partitions, mispredicted at random, were
 * most of reading T). Only when at least @p keep entries are not after the pivot (counted
 * first); else nothing moves. @return the entries left to select from (all of them, or those).
 */
static size_t prefilter(graph_prune_slot_t *v, size_t n, size_t keep)
{
    graph_prune_slot_t smp[PREFILTER_SAMPLE];
    for (size_t i = 0; i < PREFILTER_SAMPLE; i++)
        smp[i] = v[i * (n / PREFILTER_SAMPLE)];
    size_t rank = keep * PREFILTER_SAMPLE * 5 / (4 * n) + 4; /* 1.25 x the expected, + 4 */
    if (rank >= PREFILTER_SAMPLE)
        return n;
    select_first(smp, PREFILTER_SAMPLE, rank + 1); /* smp[0, rank] precede the rest */
    graph_prune_slot_t piv = smp[0];
    for (size_t i = 1; i <= rank; i++)
        if (!prune_not_after(&smp[i], &piv))
            piv = smp[i]; /* the last of them: the (rank + 1)-th of the sample */
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += (size_t)prune_not_after(&v[i], &piv);
    if (c < keep)
        return n;
    c = 0;
    for (size_t i = 0; i < n; i++) { /* c <= i: forward compaction in place */
        graph_prune_slot_t e = v[i];
        v[c] = e;
        c += (size_t)prune_not_after(&e, &piv);
    }
    return c;
}

size_t graph_prune_row(const uint32_t *cols, const double *s, size_t n, size_t keep, double min_s,
                       uint32_t *out_col, float *out_dist, graph_prune_slot_t *scratch)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(s[i] > min_s) || !(s[i] > 0))
            continue;
        memcpy(&scratch[m].s_bits, &s[i], sizeof(double));
        scratch[m++].col = cols[i];
    }
    if (m > 2 * keep + 64 && keep >= 16)
        m = prefilter(scratch, m, keep);
    if (m > keep)
        select_first(scratch, m, keep), m = keep;
    for (size_t i = 0; i < m; i++) {
        double v;
        memcpy(&v, &scratch[i].s_bits, sizeof(v));
        out_col[i] = scratch[i].col;
        out_dist[i] = (float)(1.0 / log(v));
    }
    return m;
}

ATL_RADIX_SORT_DEFINE(radix_u64, uint64_t, e)

/* Sort u64 keys ascending: insertion sort for short runs, else the byte radix sort, which skips
 * the bytes all keys share (a row of T, (distance bits << 32 | column), varies in about 5 of
 * its 8). It replaced a quicksort whose unpredictable branches were a quarter of a full-scale
 * T build. @p tmp holds n keys. */
static void sort_u64(uint64_t *a, uint64_t *tmp, size_t n)
{
    if (n > 32) {
        radix_u64(a, tmp, n);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        uint64_t v = a[i];
        size_t k = i;
        for (; k > 0 && a[k - 1] > v; k--)
            a[k] = a[k - 1];
        a[k] = v;
    }
}

/* Positive finite floats order like their bit patterns as unsigned integers. */
static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* Per thread: which row last saw a column (row + 1) and where that row keeps it. */
typedef struct seen {
    uint32_t *stamp, *at;
    uint64_t *tmp; /* the radix sort's buffer: the longest row */
} seen_t;

typedef struct build_job {
    uint64_t *adj;       /* per row: (col << 32 | dist bits), then (dist bits << 32 | col) */
    const uint64_t *deg; /* row starts */
    uint64_t *uniq;      /* per row: entries left after removing duplicate columns */
    seen_t seen[GRAPH_BUILD_THREADS];
} build_job_t;

static int seen_init(build_job_t *j, uint32_t n, size_t rows)
{
    uint64_t longest = 0;
    for (size_t i = 0; i < rows; i++)
        if (j->deg[i + 1] - j->deg[i] > longest)
            longest = j->deg[i + 1] - j->deg[i];
    for (unsigned t = 0; t < GRAPH_BUILD_THREADS; t++) {
        j->seen[t].stamp = calloc((size_t)n + 1, sizeof(uint32_t));
        j->seen[t].at = malloc(((size_t)n + 1) * sizeof(uint32_t));
        j->seen[t].tmp = malloc((longest + 1) * sizeof(uint64_t));
        if (!j->seen[t].stamp || !j->seen[t].at || !j->seen[t].tmp)
            return -ENOMEM;
    }
    return 0;
}

static void seen_free(build_job_t *j)
{
    for (unsigned t = 0; t < GRAPH_BUILD_THREADS; t++)
        free(j->seen[t].stamp), free(j->seen[t].at), free(j->seen[t].tmp);
}

/* One row: drop duplicate columns keeping the smallest distance (found through the thread's
 * stamps, without the sort by column this used to take: a third of a full-scale T build), then
 * order by (distance, column), the order the kNN search relies on. */
static int build_rows(void *ud, unsigned tid, size_t begin, size_t end)
{
    build_job_t *j = ud;
    seen_t *s = &j->seen[tid];
    for (size_t i = begin; i < end; i++) {
        uint64_t *r = j->adj + j->deg[i];
        size_t len = j->deg[i + 1] - j->deg[i];
        uint32_t u = 0, stamp = (uint32_t)i + 1;
        for (size_t k = 0; k < len; k++) {
            uint32_t c = (uint32_t)(r[k] >> 32);
            uint64_t swapped = (r[k] << 32) | c;
            if (s->stamp[c] != stamp) {
                s->stamp[c] = stamp;
                s->at[c] = u;
                r[u++] = swapped;
            } else if (swapped < r[s->at[c]]) { /* same column: the smaller distance */
                r[s->at[c]] = swapped;
            }
        }
        sort_u64(r, s->tmp, u);
        j->uniq[i] = u;
    }
    return 0;
}

/* An edge's validity, as graph_build() states it */
static int edge_valid(uint32_t n, uint32_t i, uint32_t j, float w)
{
    return i < n && j < n && isfinite(w) && w > 0;
}

/* Where the edges come from: an edge list, or rows of (column, distance) (graph_build_rows) */
typedef struct edge_src {
    const graph_edges_t *e;
    const uint32_t *cnt;
    uint32_t *const *col;
    float *const *dist;
} edge_src_t;

/* One edge into adj at its ends' fill positions at[i]++ and at[j]++ (when @p adj is set), else
 * validated and counted into at[i] and at[j]. Self loops are dropped. */
static inline int edge_put(uint32_t n, uint64_t *at, uint64_t *adj, uint32_t i, uint32_t j, float w)
{
    if (!adj && !edge_valid(n, i, j, w))
        return -EINVAL;
    if (i == j)
        return 0;
    if (!adj) {
        at[i]++, at[j]++;
    } else {
        uint64_t d = float_bits(w);
        adj[at[i]++] = (uint64_t)j << 32 | d;
        adj[at[j]++] = (uint64_t)i << 32 | d;
    }
    return 0;
}

/* Edges [k0, k1) of @p src (an edge list's, or rows [k0, k1)'s) in order through edge_put();
 * @return -EINVAL at the first invalid one. Rows give the edges (i, col[i][q], dist[i][q]) row
 * by row, as an edge list of them would. */
static int edges_scatter(const edge_src_t *src, size_t k0, size_t k1, uint32_t n, uint64_t *at,
                         uint64_t *adj)
{
    int rc = 0;
    if (src->e)
        for (size_t k = k0; k < k1 && rc == 0; k++)
            rc = edge_put(n, at, adj, src->e->i[k], src->e->j[k], src->e->w[k]);
    else
        for (size_t i = k0; i < k1 && rc == 0; i++)
            for (uint32_t q = 0; q < src->cnt[i] && rc == 0; q++)
                rc = edge_put(n, at, adj, (uint32_t)i, src->col[i][q], src->dist[i][q]);
    return rc;
}

/* The source in GRAPH_BUILD_THREADS parts of about equal entries, scattered into adj at once
 * (par_scatter_rows: every row gets its entries in the order of one pass over the source) */
typedef struct scatter_src {
    const edge_src_t *src;
    uint32_t n;
    size_t k[GRAPH_BUILD_THREADS + 1]; /* part q: edges, or rows, [k[q], k[q + 1]) */
    uint64_t *adj;                     /* allocated between the passes */
} scatter_src_t;

static int scatter_part_cb(void *ud, unsigned part, int fill, uint64_t *at)
{
    scatter_src_t *c = ud;
    return edges_scatter(c->src, c->k[part], c->k[part + 1], c->n, at, fill ? c->adj : NULL);
}

static int scatter_alloc(void *ud, uint64_t total)
{
    scatter_src_t *c = ud;
    c->adj = malloc((total ? total : 1) * sizeof(*c->adj));
    return c->adj ? 0 : -ENOMEM;
}

/* Row starts into @p deg (n + 1) and each entry into @p *adj (allocated here) */
static int scatter_parts(uint32_t n, const edge_src_t *src, uint64_t *deg, uint64_t **adj)
{
    enum { NP = GRAPH_BUILD_THREADS };

    scatter_src_t c = {src, n, {0}, NULL};
    size_t total = src->e ? src->e->m : 0, done = 0;
    if (!src->e)
        for (uint32_t i = 0; i < n; i++)
            total += src->cnt[i];
    for (unsigned q = 0; q < NP; q++) {
        size_t k1 = c.k[q];
        if (src->e)
            k1 = q + 1 == NP ? total : total * (q + 1) / NP;
        else
            for (; k1 < n && (q + 1 == NP || done < total * (q + 1) / NP); k1++)
                done += src->cnt[k1];
        c.k[q + 1] = k1;
    }
    int rc = par_scatter_rows(n, NP, NP, scatter_part_cb, scatter_alloc, &c, deg);
    *adj = c.adj;
    return rc;
}

/* Rows [begin, end) of T from the rows' unique entries in adj */
typedef struct copy_job {
    const uint64_t *adj, *deg, *uniq;
    graph_t *out;
} copy_job_t;

static int copy_rows(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)tid;
    const copy_job_t *j = ud;
    for (size_t i = begin; i < end; i++) {
        uint64_t w = j->out->row_ptr[i];
        for (uint64_t k = 0; k < j->uniq[i]; k++, w++) {
            uint64_t v = j->adj[j->deg[i] + k];
            j->out->col[w] = (uint32_t)v;
            j->out->dist[w] = bits_float((uint32_t)(v >> 32));
        }
    }
    return 0;
}

static int build_from(uint32_t n, const edge_src_t *src, graph_t *out)
{
    uint64_t *deg = calloc((size_t)n + 1, sizeof(*deg)), *uniq = NULL, *adj = NULL;
    int rc = 0;
    if (!deg)
        return -ENOMEM;
    if ((rc = scatter_parts(n, src, deg, &adj)) != 0)
        goto out;
    uniq = malloc(((size_t)n + 1) * sizeof(*uniq));
    if (!uniq) {
        rc = -ENOMEM;
        goto out;
    }
    build_job_t job = {adj, deg, uniq, {{0}}};
    rc = seen_init(&job, n, n);
    if (rc == 0)
        rc = par_for(n, 32, GRAPH_BUILD_THREADS, build_rows, &job);
    seen_free(&job);
    if (rc != 0)
        goto out;
    uint64_t w = 0;
    for (uint32_t i = 0; i < n; i++)
        w += uniq[i];
    out->n = n; /* with headroom: a refresh's T becomes the next one's buffer (see below) */
    out->row_cap = graph_cap_ahead((uint64_t)n + 1), out->cap = graph_cap_ahead(w);
    out->row_ptr = malloc(out->row_cap * sizeof(*out->row_ptr));
    out->col = malloc(out->cap * sizeof(*out->col));
    out->dist = malloc(out->cap * sizeof(*out->dist));
    if (!out->row_ptr || !out->col || !out->dist) {
        graph_destroy(out);
        rc = -ENOMEM;
        goto out;
    }
    w = 0;
    for (uint32_t i = 0; i < n; i++)
        out->row_ptr[i] = w, w += uniq[i];
    out->row_ptr[n] = w;
    copy_job_t cj = {adj, deg, uniq, out};
    if ((rc = par_for(n, 1024, GRAPH_BUILD_THREADS, copy_rows, &cj)) != 0)
        graph_destroy(out); /* out is written only on success */
out:
    free(adj);
    free(deg);
    free(uniq);
    return rc;
}

int graph_build(uint32_t n, const graph_edges_t *e, graph_t *out)
{
    edge_src_t src = {e, NULL, NULL, NULL};
    return build_from(n, &src, out);
}

int graph_build_rows(uint32_t n, const uint32_t *cnt, uint32_t *const *col, float *const *dist,
                     graph_t *out)
{
    edge_src_t src = {NULL, cnt, col, dist};
    return build_from(n, &src, out);
}

typedef struct update_job {
    const graph_t *old;
    const uint32_t *old_of_new, *new_of_old, *slot;
    const uint64_t *adj, *deg, *uniq;
    graph_t *out;
} update_job_t;

/* A carried row: old row @p p renumbered into @p out from entry @p w. @return 0, or -EINVAL
 * when a neighbour left (the row should have been marked affected). */
static int copy_carried_row(const graph_t *old, const uint32_t *new_of_old, uint32_t p,
                            graph_t *out, uint64_t w)
{
    for (uint64_t k = old->row_ptr[p]; k < old->row_ptr[p + 1]; k++, w++) {
        uint32_t c = new_of_old[old->col[k]];
        if (c >= out->n)
            return -EINVAL;
        out->col[w] = c;
        out->dist[w] = old->dist[k];
    }
    return 0;
}

/* Rows [begin, end) of the updated graph (row_ptr set): rebuilt rows from adj, the others the
 * old row renumbered (monotone, so its order holds). */
static int update_rows(void *ud, unsigned tid, size_t begin, size_t end)
{
    const update_job_t *j = ud;
    (void)tid;
    for (size_t i = begin; i < end; i++) {
        uint64_t w = j->out->row_ptr[i];
        uint32_t a = j->slot[i];
        if (a != UINT32_MAX) {
            for (uint64_t k = 0; k < j->uniq[a]; k++, w++) {
                uint64_t v = j->adj[j->deg[a] + k];
                j->out->col[w] = (uint32_t)v;
                j->out->dist[w] = bits_float((uint32_t)(v >> 32));
            }
            continue;
        }
        int rc = copy_carried_row(j->old, j->new_of_old, j->old_of_new[i], j->out, w);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/*
 * A refresh's T alternates between two buffers (graph_update writes the new T into the spare,
 * the old one becomes the next spare), and T's size drifts by about a thousand entries a
 * refresh at full scale: buffers sized exactly were too small every other refresh, reallocated
 * and faulted in again (~0.23 s of a 0.1 s copy). So a buffer that has to grow gets headroom.
 */
uint64_t graph_cap_ahead(uint64_t need)
{
    return need + need / 64 + 4096;
}

/* @p g with room for n rows, then for w entries: its buffers are kept when large enough. */
static int reserve_rows(graph_t *g, uint32_t n)
{
    if (!g->row_ptr || g->row_cap < (uint64_t)n + 1) {
        free(g->row_ptr);
        g->row_cap = graph_cap_ahead((uint64_t)n + 1);
        if (!(g->row_ptr = malloc(g->row_cap * sizeof(*g->row_ptr))))
            return -ENOMEM;
    }
    g->n = n;
    return 0;
}

static int reserve_entries(graph_t *g, uint64_t w)
{
    if (!g->col || !g->dist || g->cap < (w ? w : 1)) {
        free(g->col), free(g->dist);
        g->cap = graph_cap_ahead(w);
        g->col = malloc(g->cap * sizeof(*g->col));
        g->dist = malloc(g->cap * sizeof(*g->dist));
        if (!g->col || !g->dist)
            return -ENOMEM;
    }
    return 0;
}

/* The affected rows in order, and each row's place among them (UINT32_MAX: carried over).
 * @return 0, or -EINVAL: an unaffected row has no previous version (it must be rebuilt). */
static int list_affected(uint32_t n, const uint8_t *affected, const uint32_t *old_of_new,
                         uint32_t n_old, uint32_t *slot, uint32_t *rows, uint32_t *n_aff)
{
    for (uint32_t i = 0; i < n; i++) {
        slot[i] = affected[i] ? *n_aff : UINT32_MAX;
        if (affected[i])
            rows[(*n_aff)++] = i;
        else if (old_of_new[i] >= n_old)
            return -EINVAL;
    }
    return 0;
}

/* Row starts of an updated graph: a rebuilt row (slot[i] set) has len[slot[i]] entries, a
 * carried one its old row's; then room for every entry. @return 0 or -ENOMEM. */
static int reserve_layout(graph_t *out, uint32_t n, const graph_t *old, const uint32_t *old_of_new,
                          const uint32_t *slot, const uint64_t *len)
{
    int rc = reserve_rows(out, n);
    uint64_t w = 0;
    for (uint32_t i = 0; rc == 0 && i <= n; i++) {
        out->row_ptr[i] = w;
        if (i < n)
            w += slot[i] != UINT32_MAX
                     ? len[slot[i]]
                     : old->row_ptr[old_of_new[i] + 1] - old->row_ptr[old_of_new[i]];
    }
    return rc == 0 ? reserve_entries(out, w) : rc;
}

int graph_update(const graph_t *old, const uint32_t *old_of_new, const uint32_t *new_of_old,
                 uint32_t n, const uint8_t *affected, const graph_edges_t *e, graph_t *out)
{
    uint32_t *rows = malloc(((size_t)n + 1) * sizeof(*rows)), *slot = NULL, n_aff = 0;
    uint64_t *deg = NULL, *uniq = NULL, *adj = NULL, *fill = NULL;
    int rc = rows ? 0 : -ENOMEM;
    if (rc == 0 && !(slot = malloc(((size_t)n + 1) * sizeof(*slot))))
        rc = -ENOMEM;
    if (rc == 0)
        rc = list_affected(n, affected, old_of_new, old->n, slot, rows, &n_aff);
    if (rc == 0 && (!(deg = calloc((size_t)n_aff + 1, sizeof(*deg))) ||
                    !(uniq = malloc(((size_t)n_aff + 1) * sizeof(*uniq)))))
        rc = -ENOMEM;
    for (size_t k = 0; rc == 0 && k < e->m; k++) {
        if (e->i[k] >= n || e->j[k] >= n || slot[e->i[k]] == UINT32_MAX || !isfinite(e->w[k]) ||
            !(e->w[k] > 0))
            rc = -EINVAL;
        else if (e->i[k] != e->j[k])
            deg[slot[e->i[k]] + 1]++;
    }
    for (uint32_t a = 0; rc == 0 && a < n_aff; a++)
        deg[a + 1] += deg[a];
    if (rc == 0 && (!(adj = malloc((deg[n_aff] + 1) * sizeof(*adj))) ||
                    !(fill = malloc(((size_t)n_aff + 1) * sizeof(*fill)))))
        rc = -ENOMEM;
    if (rc == 0) {
        memcpy(fill, deg, ((size_t)n_aff + 1) * sizeof(*fill));
        for (size_t k = 0; k < e->m; k++)
            if (e->i[k] != e->j[k])
                adj[fill[slot[e->i[k]]]++] = (uint64_t)e->j[k] << 32 | float_bits(e->w[k]);
        build_job_t job = {adj, deg, uniq, {{0}}};
        /* small chunks: the rows rebuilt are mostly hubs of very different sizes */
        rc = seen_init(&job, n, n_aff);
        if (rc == 0)
            rc = par_for(n_aff, 8, GRAPH_BUILD_THREADS, build_rows, &job);
        seen_free(&job);
    }
    if (rc == 0)
        rc = reserve_layout(out, n, old, old_of_new, slot, uniq);
    if (rc == 0) { /* the copy is most of an incremental T at full scale (72M entries) */
        update_job_t job = {old, old_of_new, new_of_old, slot, adj, deg, uniq, out};
        rc = par_for(n, 1024, GRAPH_BUILD_THREADS, update_rows, &job);
    }
    if (rc != 0)
        graph_destroy(out);
    free(rows), free(slot), free(deg), free(uniq), free(adj), free(fill);
    return rc;
}

typedef struct delta_job {
    const graph_t *old;
    const uint32_t *old_of_new, *new_of_old, *rows, *slot;
    const uint64_t *ddeg; /* per affected row: its deltas in dadj[ddeg[a], ddeg[a + 1]) */
    uint64_t *dadj;       /* (col << 32 | dist bits), dist 0: the edge is gone; then see below */
    uint32_t *n_present, *n_gone;
    uint64_t *len; /* per affected row: its new length */
    graph_t *out;
    seen_t seen[GRAPH_BUILD_THREADS];
} delta_job_t;

/* Pass 1, affected rows [begin, end): each column named once (the first delta wins; they
 * agree), the present edges first as (dist bits << 32 | col), sorted, then the gone columns;
 * and the new length: the old row renumbered without gone items and named columns, plus the
 * present edges. */
static int delta_count(void *ud, unsigned tid, size_t begin, size_t end)
{
    delta_job_t *j = ud;
    seen_t *s = &j->seen[tid];
    for (size_t a = begin; a < end; a++) {
        uint32_t row = j->rows[a], stamp = row + 1, p = j->old_of_new[row];
        uint64_t *d = j->dadj + j->ddeg[a], nd = j->ddeg[a + 1] - j->ddeg[a], u = 0, g = 0;
        for (uint64_t k = 0; k < nd; k++) {
            uint32_t c = (uint32_t)(d[k] >> 32);
            if (s->stamp[c] == stamp)
                continue;
            s->stamp[c] = stamp;
            if ((uint32_t)d[k] != 0)
                d[u++] = (d[k] << 32) | c;
            else
                s->tmp[g++] = c;
        }
        sort_u64(d, s->tmp + g, u); /* tmp holds the gone columns, then the sort's scratch */
        memcpy(d + u, s->tmp, g * sizeof(*d));
        uint64_t w = u;
        if (p != UINT32_MAX)
            for (uint64_t k = j->old->row_ptr[p]; k < j->old->row_ptr[p + 1]; k++) {
                uint32_t c = j->new_of_old[j->old->col[k]];
                w += c != UINT32_MAX && s->stamp[c] != stamp;
            }
        j->n_present[a] = (uint32_t)u, j->n_gone[a] = (uint32_t)g, j->len[a] = w;
    }
    return 0;
}

/* Pass 2, rows [begin, end) of the new graph (row_ptr set): an affected row is its old row
 * renumbered, without gone items and named columns, merged with its present edges (both in
 * (distance, column) order); every other row is its old row renumbered (update_rows). */
static int delta_write(void *ud, unsigned tid, size_t begin, size_t end)
{
    delta_job_t *j = ud;
    seen_t *s = &j->seen[tid];
    graph_t *out = j->out;
    for (size_t i = begin; i < end; i++) {
        uint64_t w = out->row_ptr[i];
        uint32_t a = j->slot[i], p = j->old_of_new[i];
        if (a == UINT32_MAX) {
            int rc = copy_carried_row(j->old, j->new_of_old, p, out, w);
            if (rc != 0)
                return rc;
            continue;
        }
        const uint64_t *d = j->dadj + j->ddeg[a];
        uint64_t u = j->n_present[a], x = 0, stamp = (uint32_t)i + 1;
        for (uint64_t k = 0; k < u; k++)
            s->stamp[(uint32_t)d[k]] = (uint32_t)stamp;
        for (uint64_t k = u; k < u + j->n_gone[a]; k++)
            s->stamp[(uint32_t)d[k]] = (uint32_t)stamp;
        if (p != UINT32_MAX)
            for (uint64_t k = j->old->row_ptr[p]; k < j->old->row_ptr[p + 1]; k++) {
                uint32_t c = j->new_of_old[j->old->col[k]];
                if (c == UINT32_MAX || s->stamp[c] == stamp)
                    continue; /* gone, or named by a delta */
                uint64_t v = (uint64_t)float_bits(j->old->dist[k]) << 32 | c;
                for (; x < u && d[x] < v; x++, w++)
                    out->col[w] = (uint32_t)d[x], out->dist[w] = bits_float((uint32_t)(d[x] >> 32));
                out->col[w] = c, out->dist[w] = j->old->dist[k], w++;
            }
        for (; x < u; x++, w++)
            out->col[w] = (uint32_t)d[x], out->dist[w] = bits_float((uint32_t)(d[x] >> 32));
    }
    return 0;
}

int graph_update_delta(const graph_t *old, const uint32_t *old_of_new, const uint32_t *new_of_old,
                       uint32_t n, const uint8_t *affected, const graph_edges_t *delta,
                       graph_t *out)
{
    uint32_t *rows = malloc(((size_t)n + 1) * sizeof(*rows)), *slot = NULL, n_aff = 0;
    uint32_t *n_present = NULL, *n_gone = NULL;
    uint64_t *ddeg = NULL, *dadj = NULL, *fill = NULL, *len = NULL;
    delta_job_t job = {0};
    int rc = rows && (slot = malloc(((size_t)n + 1) * sizeof(*slot))) ? 0 : -ENOMEM;
    if (rc == 0)
        rc = list_affected(n, affected, old_of_new, old->n, slot, rows, &n_aff);
    if (rc == 0 && (!(ddeg = calloc((size_t)n_aff + 2, sizeof(*ddeg))) ||
                    !(n_present = malloc(((size_t)n_aff + 1) * sizeof(*n_present))) ||
                    !(n_gone = malloc(((size_t)n_aff + 1) * sizeof(*n_gone))) ||
                    !(len = malloc(((size_t)n_aff + 1) * sizeof(*len)))))
        rc = -ENOMEM;
    for (size_t k = 0; rc == 0 && k < delta->m; k++) {
        uint32_t a = delta->i[k], b = delta->j[k];
        float w = delta->w[k];
        if (a >= n || b >= n || slot[a] == UINT32_MAX || slot[b] == UINT32_MAX ||
            !(w == 0 || (w > 0 && isfinite(w))))
            rc = -EINVAL;
        else if (a != b)
            ddeg[slot[a] + 1]++, ddeg[slot[b] + 1]++;
    }
    uint64_t longest = 0;
    for (uint32_t a = 0; rc == 0 && a < n_aff; a++) {
        longest = ddeg[a + 1] > longest ? ddeg[a + 1] : longest;
        ddeg[a + 1] += ddeg[a];
    }
    if (rc == 0 && (!(dadj = malloc((ddeg[n_aff] + 1) * sizeof(*dadj))) ||
                    !(fill = malloc(((size_t)n_aff + 1) * sizeof(*fill)))))
        rc = -ENOMEM;
    if (rc == 0) {
        memcpy(fill, ddeg, ((size_t)n_aff + 1) * sizeof(*fill));
        for (size_t k = 0; k < delta->m; k++) {
            uint32_t a = delta->i[k], b = delta->j[k];
            uint64_t w = delta->w[k] == 0 ? 0 : float_bits(delta->w[k]); /* -0: gone too */
            if (a != b)
                dadj[fill[slot[a]]++] = (uint64_t)b << 32 | w,
                dadj[fill[slot[b]]++] = (uint64_t)a << 32 | w;
        }
        job = (delta_job_t){old,  old_of_new, new_of_old, rows, slot, ddeg,
                            dadj, n_present,  n_gone,     len,  out,  {{0}}};
        for (unsigned t = 0; t < GRAPH_BUILD_THREADS && rc == 0; t++) {
            job.seen[t].stamp = calloc((size_t)n + 1, sizeof(uint32_t));
            job.seen[t].tmp = malloc((2 * longest + 1) * sizeof(uint64_t));
            if (!job.seen[t].stamp || !job.seen[t].tmp)
                rc = -ENOMEM;
        }
        if (rc == 0) /* small chunks: the affected rows are mostly hubs of very different sizes */
            rc = par_for(n_aff, 8, GRAPH_BUILD_THREADS, delta_count, &job);
    }
    if (rc == 0)
        rc = reserve_layout(out, n, old, old_of_new, slot, len);
    for (unsigned t = 0; rc == 0 && t < GRAPH_BUILD_THREADS; t++) /* stamps anew: rows + 1 */
        memset(job.seen[t].stamp, 0, ((size_t)n + 1) * sizeof(uint32_t));
    if (rc == 0) /* the copy is most of it at full scale (72M entries) */
        rc = par_for(n, 1024, GRAPH_BUILD_THREADS, delta_write, &job);
    if (rc != 0)
        graph_destroy(out);
    for (unsigned t = 0; t < GRAPH_BUILD_THREADS; t++)
        free(job.seen[t].stamp), free(job.seen[t].tmp);
    free(rows), free(slot), free(ddeg), free(dadj), free(fill), free(len), free(n_present),
        free(n_gone);
    return rc;
}

double graph_row_change_min(const graph_t *old, uint32_t p, const uint32_t *new_of_old,
                            const graph_t *t, uint32_t i)
{
    uint64_t a = old->row_ptr[p], la = old->row_ptr[p + 1] - a;
    uint64_t b = t->row_ptr[i], lb = t->row_ptr[i + 1] - b;
    uint64_t q = 0;
    for (; q < la && q < lb; q++)
        if (new_of_old[old->col[a + q]] != t->col[b + q] || old->dist[a + q] != t->dist[b + q])
            return fmin((double)old->dist[a + q], (double)t->dist[b + q]);
    if (q < la)
        return (double)old->dist[a + q];
    if (q < lb)
        return (double)t->dist[b + q];
    return INFINITY;
}

void graph_destroy(graph_t *g)
{
    free(g->row_ptr);
    free(g->col);
    free(g->dist);
    memset(g, 0, sizeof(*g));
}

size_t graph_n_edges(const graph_t *g)
{
    return g->n ? (size_t)(g->row_ptr[g->n] / 2) : 0;
}

int graph_pruner_init(graph_pruner_t *p, size_t top, double min_s)
{
    memset(p, 0, sizeof(*p));
    if (top == 0)
        return -EINVAL;
    p->top = top;
    p->min_s = min_s;
    return 0;
}

int graph_pruner_row(graph_pruner_t *p, uint32_t row, const uint32_t *cols, const double *s,
                     size_t n)
{
    size_t keep = n < p->top ? n : p->top, col_cap = p->kept_cap, rows_cap = p->rows_cap;
    if (atl_array_grow((void **)&p->scratch, &p->cap, n, sizeof(*p->scratch), 1024) ||
        atl_array_grow((void **)&p->col, &col_cap, p->kept + keep, sizeof(*p->col), 1024) ||
        atl_array_grow((void **)&p->dist, &p->kept_cap, p->kept + keep, sizeof(*p->dist), 1024) ||
        atl_array_grow((void **)&p->row, &rows_cap, p->n_rows + 1, sizeof(*p->row), 1024) ||
        atl_array_grow((void **)&p->start, &p->rows_cap, p->n_rows + 1, sizeof(*p->start), 1024))
        return -ENOMEM;
    size_t k = graph_prune_row(cols, s, n, p->top, p->min_s, p->col + p->kept, p->dist + p->kept,
                               p->scratch);
    p->row[p->n_rows] = row, p->start[p->n_rows++] = p->kept;
    p->kept += k;
    return 0;
}

int graph_pruners_finish(graph_pruner_t *const *p, unsigned np, uint32_t n, graph_t *out)
{
    uint32_t *cnt = calloc((size_t)n + 1, sizeof(*cnt));
    uint32_t **col = calloc((size_t)n + 1, sizeof(*col));
    float **dist = calloc((size_t)n + 1, sizeof(*dist));
    uint8_t *fed = calloc((size_t)n + 1, 1);
    int rc = cnt && col && dist && fed ? 0 : -ENOMEM;
    for (unsigned q = 0; q < np && rc == 0; q++)
        for (size_t r = 0; r < p[q]->n_rows && rc == 0; r++) {
            uint32_t i = p[q]->row[r];
            size_t at = p[q]->start[r],
                   end = r + 1 < p[q]->n_rows ? p[q]->start[r + 1] : p[q]->kept;
            if (i >= n || fed[i]) {
                rc = -EINVAL;
                break;
            }
            fed[i] = 1, cnt[i] = (uint32_t)(end - at);
            col[i] = p[q]->col + at, dist[i] = p[q]->dist + at;
        }
    if (rc == 0)
        rc = graph_build_rows(n, cnt, col, dist, out);
    free(cnt), free(col), free(dist), free(fed);
    return rc;
}

int graph_pruner_finish(graph_pruner_t *p, uint32_t n, graph_t *out)
{
    return graph_pruners_finish(&p, 1, n, out);
}

void graph_pruner_destroy(graph_pruner_t *p)
{
    free(p->scratch);
    free(p->col);
    free(p->dist);
    free(p->row);
    free(p->start);
    memset(p, 0, sizeof(*p));
}
