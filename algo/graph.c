/*
 * graph.c: CSR construction and row pruning. See graph.h.
 */
#include "algo/graph.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/atl.h"

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

int graph_edges_add(graph_edges_t *e, uint32_t i, uint32_t j, float w)
{
    /* three parallel arrays grow together; capacities stay equal */
    size_t ci = e->cap, cj = e->cap, cw = e->cap;
    if (atl_array_grow((void **)&e->i, &ci, e->m + 1, sizeof(*e->i), 1024) ||
        atl_array_grow((void **)&e->j, &cj, e->m + 1, sizeof(*e->j), 1024) ||
        atl_array_grow((void **)&e->w, &cw, e->m + 1, sizeof(*e->w), 1024))
        return -ENOMEM;
    e->cap = ci < cj ? (ci < cw ? ci : cw) : (cj < cw ? cj : cw);
    e->i[e->m] = i;
    e->j[e->m] = j;
    e->w[e->m] = w;
    e->m++;
    return 0;
}

/* Order for pruning: larger s first, then lower column. */
static int prune_before(const uint32_t *cols, const double *s, uint32_t a, uint32_t b)
{
    if (s[a] != s[b])
        return s[a] > s[b];
    return cols[a] < cols[b];
}

/* Sift-down in a min-heap (by prune order reversed: the root is the worst kept entry). */
static void heap_down(uint32_t *h, size_t n, size_t i, const uint32_t *cols, const double *s)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && prune_before(cols, s, h[w], h[l]))
            w = l;
        if (r < n && prune_before(cols, s, h[w], h[r]))
            w = r;
        if (w == i)
            return;
        uint32_t t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

size_t graph_prune_row(const uint32_t *cols, const double *s, size_t n, size_t keep, double min_s,
                       uint32_t *out_col, float *out_dist, uint32_t *scratch)
{
    /* Bounded heap of the best `keep` entries: O(n log keep). */
    size_t h = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(s[i] > min_s))
            continue;
        if (h < keep) {
            scratch[h] = (uint32_t)i;
            size_t c = h++;
            while (c > 0) { /* sift up */
                size_t p = (c - 1) / 2;
                if (!prune_before(cols, s, scratch[p], scratch[c]))
                    break;
                uint32_t t = scratch[p];
                scratch[p] = scratch[c];
                scratch[c] = t;
                c = p;
            }
        } else if (keep > 0 && prune_before(cols, s, (uint32_t)i, scratch[0])) {
            scratch[0] = (uint32_t)i;
            heap_down(scratch, h, 0, cols, s);
        }
    }
    for (size_t i = 0; i < h; i++) {
        out_col[i] = cols[scratch[i]];
        out_dist[i] = (float)(1.0 / log(s[scratch[i]]));
    }
    return h;
}

typedef struct adj {
    uint32_t col;
    float dist;
} adj_t;

static int cmp_adj(const void *a, const void *b)
{
    const adj_t *x = a, *y = b;
    if (x->dist != y->dist)
        return x->dist < y->dist ? -1 : 1;
    return (x->col > y->col) - (x->col < y->col);
}

static int cmp_adj_col(const void *a, const void *b)
{
    const adj_t *x = a, *y = b;
    if (x->col != y->col)
        return (x->col > y->col) - (x->col < y->col);
    return (x->dist > y->dist) - (x->dist < y->dist);
}

int graph_build(uint32_t n, const graph_edges_t *e, graph_t *out)
{
    uint64_t *deg = calloc((size_t)n + 1, sizeof(*deg));
    adj_t *adj = NULL;
    int rc = 0;
    if (!deg)
        return -ENOMEM;
    for (size_t k = 0; k < e->m; k++) {
        if (e->i[k] >= n || e->j[k] >= n || !isfinite(e->w[k]) || !(e->w[k] > 0)) {
            rc = -EINVAL;
            goto out;
        }
        if (e->i[k] != e->j[k]) {
            deg[e->i[k] + 1]++;
            deg[e->j[k] + 1]++;
        }
    }
    for (uint32_t i = 0; i < n; i++)
        deg[i + 1] += deg[i];
    adj = malloc((deg[n] ? deg[n] : 1) * sizeof(*adj));
    uint64_t *fill = malloc(((size_t)n + 1) * sizeof(*fill));
    if (!adj || !fill) {
        free(fill);
        rc = -ENOMEM;
        goto out;
    }
    memcpy(fill, deg, ((size_t)n + 1) * sizeof(*fill));
    for (size_t k = 0; k < e->m; k++) {
        if (e->i[k] == e->j[k])
            continue;
        adj[fill[e->i[k]]++] = (adj_t){e->j[k], e->w[k]};
        adj[fill[e->j[k]]++] = (adj_t){e->i[k], e->w[k]};
    }
    free(fill);
    /* dedupe each row (keep the smallest distance), then order by distance */
    uint64_t w = 0;
    uint64_t *row_ptr = malloc(((size_t)n + 1) * sizeof(*row_ptr));
    if (!row_ptr) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        adj_t *r = adj + deg[i];
        size_t len = deg[i + 1] - deg[i], u = 0;
        qsort(r, len, sizeof(*r), cmp_adj_col);
        for (size_t k = 0; k < len; k++)
            if (u == 0 || r[u - 1].col != r[k].col)
                r[u++] = r[k];
        qsort(r, u, sizeof(*r), cmp_adj);
        row_ptr[i] = w;
        memmove(adj + w, r, u * sizeof(*r));
        w += u;
    }
    row_ptr[n] = w;
    out->n = n;
    out->row_ptr = row_ptr;
    out->col = malloc((w ? w : 1) * sizeof(*out->col));
    out->dist = malloc((w ? w : 1) * sizeof(*out->dist));
    if (!out->col || !out->dist) {
        graph_destroy(out);
        rc = -ENOMEM;
        goto out;
    }
    for (uint64_t k = 0; k < w; k++) {
        out->col[k] = adj[k].col;
        out->dist[k] = adj[k].dist;
    }
out:
    free(adj);
    free(deg);
    return rc;
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
    graph_edges_init(&p->edges);
    p->top = top;
    p->min_s = min_s;
    return 0;
}

int graph_pruner_row(graph_pruner_t *p, uint32_t row, const uint32_t *cols, const double *s,
                     size_t n)
{
    if (n > p->cap) {
        size_t cap = n * 2;
        uint32_t *a = realloc(p->scratch, cap * sizeof(*a));
        if (!a)
            return -ENOMEM;
        p->scratch = a;
        uint32_t *b = realloc(p->col, cap * sizeof(*b));
        if (!b)
            return -ENOMEM;
        p->col = b;
        float *c = realloc(p->dist, cap * sizeof(*c));
        if (!c)
            return -ENOMEM;
        p->dist = c;
        p->cap = cap;
    }
    size_t k = graph_prune_row(cols, s, n, p->top, p->min_s, p->col, p->dist, p->scratch);
    for (size_t i = 0; i < k; i++) {
        int rc = graph_edges_add(&p->edges, row, p->col[i], p->dist[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int graph_pruner_finish(graph_pruner_t *p, uint32_t n, graph_t *out)
{
    return graph_build(n, &p->edges, out);
}

void graph_pruner_destroy(graph_pruner_t *p)
{
    graph_edges_destroy(&p->edges);
    free(p->scratch);
    free(p->col);
    free(p->dist);
    memset(p, 0, sizeof(*p));
}
