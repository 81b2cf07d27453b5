/*
 * knn.c: early-stopping Dijkstra kNN. See knn.h.
 *
 * Per source s (independent, so rows run in parallel and the result does not depend on the
 * thread count):
 *  - a binary heap keyed by (distance, index) gives the settle order of the exact definition;
 *  - `bound` starts at min(max_distance, distance to the k-th direct neighbour) (the k direct
 *    neighbours are k distinct nodes at those distances, so the k-th nearest is no farther)
 *    and every relaxation beyond it is skipped. Adjacency rows are sorted by distance, so the
 *    scan of a row stops at the first edge past the bound;
 *  - the bound then follows the k nearest nodes found so far (topk_t): any k distinct nodes'
 *    tentative distances bound the k-th nearest from above (a tentative distance is a path's
 *    length, never below the true one). A node within the final bound is still reached along
 *    its shortest path, every prefix of which is shorter, so the settle order of the k
 *    nearest, and so the row, is exactly that of a search without a bound (test_knn);
 *  - visited/tentative state uses a per-thread stamp array, so nothing is cleared per source.
 */
#include "algo/knn.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/par.h"
#include "algo/sortdef.h"

void knn_opts_default(knn_opts_t *o)
{
    o->k = 10;
    o->max_distance = 0;
    o->n_threads = 2;
    o->progress = NULL;
    o->progress_ud = NULL;
}

/* Rearrange d[0..n) so that d[k] is the k-th smallest, everything before it <= d[k] and
 * everything after >= d[k] (Hoare's selection, median of three): O(n) expected instead of the
 * O(n log n) sort, which at 36.7M edges was most of the kNN stage's 3 s. */
static void select_kth(float *d, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        float a = d[lo], b = d[mid], c = d[hi];
        float pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        size_t i = lo, j = hi;
        while (i <= j) {
            while (d[i] < pivot)
                i++;
            while (d[j] > pivot)
                j--;
            if (i <= j) {
                float t = d[i];
                d[i] = d[j], d[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return; /* j < k < i: d[k] == pivot, in place */
    }
}

int knn_auto_max_distance(const graph_t *t, double *out)
{
    size_t m = graph_n_edges(t), w = 0;
    if (m == 0) {
        *out = 0;
        return 0;
    }
    float *d = malloc(m * sizeof(*d));
    if (!d)
        return -ENOMEM;
    for (uint32_t i = 0; i < t->n; i++)
        for (uint64_t e = t->row_ptr[i]; e < t->row_ptr[i + 1]; e++)
            if (t->col[e] > i)
                d[w++] = t->dist[e];
    double pos = 0.75 * (double)(w - 1);
    size_t lo = (size_t)pos;
    double frac = pos - (double)lo;
    select_kth(d, w, lo);
    double q = (double)d[lo];
    if (lo + 1 < w) { /* the next order statistic: the smallest of the upper part */
        float next = d[lo + 1];
        for (size_t i = lo + 2; i < w; i++)
            next = d[i] < next ? d[i] : next;
        q += frac * ((double)next - q);
    }
    free(d);
    *out = 3.0 * q;
    return 0;
}

typedef struct heap_entry {
    double d;
    uint32_t v;
} heap_entry_t;

typedef struct knn_ws {
    double *dist;
    uint32_t *stamp; /* dist[v] valid iff stamp[v] == cur; settled iff done[v] == cur */
    uint32_t *done;
    uint32_t *in_top; /* in the k nearest found so far iff in_top[v] == cur */
    uint32_t cur;
    heap_entry_t *heap;
    size_t heap_n, heap_cap;
} knn_ws_t;

static int entry_less(const heap_entry_t *a, const heap_entry_t *b)
{
    return a->d < b->d || (a->d == b->d && a->v < b->v);
}

static int heap_push(knn_ws_t *w, double d, uint32_t v)
{
    if (atl_array_grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1, sizeof(*w->heap), 1024))
        return -ENOMEM;
    heap_entry_t e = {d, v};
    size_t c = w->heap_n++;
    while (c > 0) {
        size_t p = (c - 1) / 2;
        if (!entry_less(&e, &w->heap[p]))
            break;
        w->heap[c] = w->heap[p];
        c = p;
    }
    w->heap[c] = e;
    return 0;
}

static heap_entry_t heap_pop(knn_ws_t *w)
{
    heap_entry_t top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, s = i;
        const heap_entry_t *best = &last;
        if (l < n && entry_less(&w->heap[l], best))
            s = l, best = &w->heap[l];
        if (r < n && entry_less(&w->heap[r], best))
            s = r;
        if (s == i)
            break;
        w->heap[i] = w->heap[s];
        i = s;
    }
    if (n > 0)
        w->heap[i] = last;
    return top;
}

/* The k nearest distinct nodes found so far, by tentative distance (see the file comment) */
typedef struct topk {
    double d[KNN_MAX_K];
    uint32_t v[KNN_MAX_K];
    uint32_t n, k, max; /* max: the slot of the largest d, once n == k */
} topk_t;

static void topk_find_max(topk_t *t)
{
    t->max = 0;
    for (uint32_t i = 1; i < t->n; i++)
        if (t->d[i] > t->d[t->max])
            t->max = i;
}

/* v is now at tentative distance d; @return the bound the k nearest give (INFINITY while
 * fewer than k nodes were found) */
static double topk_offer(topk_t *t, knn_ws_t *w, uint32_t v, double d)
{
    uint32_t cur = w->cur, at;
    if (w->in_top[v] == cur) { /* a shorter path to one of them */
        for (at = 0; t->v[at] != v; at++)
            ;
        t->d[at] = d;
        if (at == t->max && t->n == t->k)
            topk_find_max(t);
    } else if (t->n < t->k) {
        w->in_top[v] = cur;
        t->v[t->n] = v, t->d[t->n] = d;
        if (++t->n == t->k)
            topk_find_max(t);
    } else if (d < t->d[t->max]) { /* replaces the farthest */
        w->in_top[t->v[t->max]] = 0;
        w->in_top[v] = cur;
        t->v[t->max] = v, t->d[t->max] = d;
        topk_find_max(t);
    }
    return t->n == t->k ? t->d[t->max] : (double)INFINITY;
}

/* Dijkstra from s, stopping after k settled nodes; writes the row of s. */
static int knn_row(const graph_t *t, uint32_t k, double max_d, knn_ws_t *w, uint32_t s,
                   uint32_t *nbr, float *dist, uint32_t *count)
{
    if (++w->cur == 0) { /* stamp wrap-around: reset once every 2^32 sources */
        memset(w->stamp, 0, t->n * sizeof(*w->stamp));
        memset(w->done, 0, t->n * sizeof(*w->done));
        memset(w->in_top, 0, t->n * sizeof(*w->in_top));
        w->cur = 1;
    }
    uint32_t cur = w->cur, found = 0;
    double bound = max_d;
    uint64_t b0 = t->row_ptr[s], deg = t->row_ptr[s + 1] - b0;
    if (deg >= k && (double)t->dist[b0 + k - 1] < bound)
        bound = (double)t->dist[b0 + k - 1];
    topk_t top; /* only the first top.n slots are read */
    top.n = 0, top.k = k, top.max = 0;
    w->heap_n = 0;
    w->dist[s] = 0;
    w->stamp[s] = cur;
    int rc = heap_push(w, 0, s);
    while (rc == 0 && w->heap_n > 0 && found < k) {
        heap_entry_t e = heap_pop(w);
        if (w->done[e.v] == cur || e.d > w->dist[e.v])
            continue; /* stale entry */
        w->done[e.v] = cur;
        if (e.v != s) {
            nbr[found] = e.v;
            dist[found] = (float)e.d;
            found++;
        }
        for (uint64_t x = t->row_ptr[e.v]; x < t->row_ptr[e.v + 1]; x++) {
            double nd = e.d + (double)t->dist[x];
            if (nd > bound)
                break; /* rows are sorted by distance */
            uint32_t v = t->col[x];
            if (w->done[v] == cur || (w->stamp[v] == cur && w->dist[v] <= nd))
                continue;
            w->dist[v] = nd;
            w->stamp[v] = cur;
            double b = topk_offer(&top, w, v, nd);
            bound = b < bound ? b : bound;
            if ((rc = heap_push(w, nd, v)) != 0)
                break;
        }
    }
    *count = found;
    for (uint32_t i = found; i < k; i++) {
        nbr[i] = KNN_NONE;
        dist[i] = 0;
    }
    return rc;
}

typedef struct knn_job {
    const graph_t *t;
    const knn_opts_t *o;
    knn_t *out;
    const uint32_t *rows; /* NULL: all rows */
    knn_ws_t *ws;         /* per thread */
    uint8_t *changed;     /* per listed row, update mode */
    size_t n_rows;
} knn_job_t;

static int job_body(void *ud, unsigned tid, size_t begin, size_t end)
{
    knn_job_t *j = ud;
    knn_t *r = j->out;
    uint32_t k = r->k, old_nbr[KNN_MAX_K];
    for (size_t i = begin; i < end; i++) {
        uint32_t s = j->rows ? j->rows[i] : (uint32_t)i;
        if (j->changed)
            memcpy(old_nbr, r->nbr + (size_t)s * k, k * sizeof(*old_nbr));
        int rc = knn_row(j->t, k, r->max_distance, &j->ws[tid], s, r->nbr + (size_t)s * k,
                         r->dist + (size_t)s * k, &r->count[s]);
        if (rc != 0)
            return rc;
        if (j->changed)
            j->changed[i] = memcmp(old_nbr, r->nbr + (size_t)s * k, k * sizeof(*old_nbr)) != 0;
    }
    /* progress from thread 0 only: the callback need not be thread-safe */
    if (tid == 0 && j->o->progress &&
        j->o->progress(j->o->progress_ud, "knn", (double)end / (double)j->n_rows))
        return ATL_ECANCELED;
    return 0;
}

static int run_job(knn_job_t *j)
{
    unsigned nt = j->o->n_threads ? j->o->n_threads : 1;
    int rc = 0;
    j->ws = calloc(nt, sizeof(*j->ws));
    if (!j->ws)
        return -ENOMEM;
    for (unsigned t = 0; t < nt && rc == 0; t++) {
        knn_ws_t *w = &j->ws[t];
        w->dist = malloc(((size_t)j->t->n + 1) * sizeof(*w->dist));
        w->stamp = calloc((size_t)j->t->n + 1, sizeof(*w->stamp));
        w->done = calloc((size_t)j->t->n + 1, sizeof(*w->done));
        w->in_top = calloc((size_t)j->t->n + 1, sizeof(*w->in_top));
        if (!w->dist || !w->stamp || !w->done || !w->in_top)
            rc = -ENOMEM;
    }
    if (rc == 0)
        rc = par_for(j->n_rows, 64, nt, job_body, j);
    for (unsigned t = 0; t < nt; t++) {
        free(j->ws[t].dist);
        free(j->ws[t].stamp);
        free(j->ws[t].done);
        free(j->ws[t].in_top);
        free(j->ws[t].heap);
    }
    free(j->ws);
    if (rc == 0 && j->o->progress)
        j->o->progress(j->o->progress_ud, "knn", 1.0);
    return rc;
}

int knn_build(const graph_t *t, const knn_opts_t *o, knn_t *out)
{
    if (o->k < 1 || o->k > KNN_MAX_K)
        return -EINVAL;
    knn_t r = {.n = t->n, .k = o->k};
    r.max_distance = o->max_distance;
    if (o->max_distance <= 0 && knn_auto_max_distance(t, &r.max_distance) != 0)
        return -ENOMEM;
    r.nbr = malloc(((size_t)t->n * o->k + 1) * sizeof(*r.nbr));
    r.dist = malloc(((size_t)t->n * o->k + 1) * sizeof(*r.dist));
    r.count = calloc((size_t)t->n + 1, sizeof(*r.count));
    knn_job_t j = {.t = t, .o = o, .out = &r, .n_rows = t->n};
    int rc = (!r.nbr || !r.dist || !r.count) ? -ENOMEM : run_job(&j);
    if (rc != 0) {
        knn_destroy(&r);
        return rc;
    }
    *out = r;
    return 0;
}

int knn_update_rows(const graph_t *t, const knn_opts_t *o, const uint32_t *rows, size_t n_rows,
                    knn_t *inout, size_t *n_changed)
{
    if (inout->n != t->n)
        return -EINVAL;
    for (size_t i = 0; i < n_rows; i++)
        if (rows[i] >= t->n)
            return -EINVAL;
    uint8_t *changed = calloc(n_rows + 1, 1);
    if (!changed)
        return -ENOMEM;
    knn_job_t j = {
        .t = t, .o = o, .out = inout, .rows = rows, .changed = changed, .n_rows = n_rows};
    int rc = run_job(&j);
    size_t c = 0;
    for (size_t i = 0; i < n_rows; i++)
        c += changed[i];
    free(changed);
    if (rc == 0)
        *n_changed = c;
    return rc;
}

#define KNN_CHANGE_MARGIN 1e-5

size_t knn_rows_affected(const knn_t *carried, const double *change_min, uint8_t *need)
{
    uint32_t k = carried->k;
    size_t c = 0;
    for (uint32_t i = 0; i < carried->n; i++) {
        if (!need[i]) {
            uint32_t cnt = carried->count[i];
            const uint32_t *nbr = carried->nbr + (size_t)i * k;
            const float *d = carried->dist + (size_t)i * k;
            double lim = (cnt == k ? (double)d[k - 1] : carried->max_distance);
            lim *= 1 + KNN_CHANGE_MARGIN;
            int hit = change_min[i] <= lim;
            for (uint32_t q = 0; q < cnt && !hit; q++)
                hit = (double)d[q] + change_min[nbr[q]] <= lim;
            need[i] = (uint8_t)hit;
        }
        c += need[i];
    }
    return c;
}

void knn_destroy(knn_t *k)
{
    free(k->nbr);
    free(k->dist);
    free(k->count);
    memset(k, 0, sizeof(*k));
}

size_t knn_short_rows(const knn_t *k)
{
    size_t c = 0;
    for (uint32_t i = 0; i < k->n; i++)
        c += k->count[i] < k->k;
    return c;
}

ATL_RADIX_SORT_DEFINE(radix_u64, uint64_t, e)

int knn_edges(const knn_t *k, graph_edges_t *out)
{
    size_t m = 0;
    uint64_t *keys = malloc(((size_t)k->n * k->k + 1) * sizeof(*keys));
    uint64_t *tmp = malloc(((size_t)k->n * k->k + 1) * sizeof(*tmp));
    if (!keys || !tmp) {
        free(keys), free(tmp);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < k->n; i++)
        for (uint32_t x = 0; x < k->count[i]; x++) {
            uint32_t j = k->nbr[(size_t)i * k->k + x];
            keys[m++] = i < j ? ((uint64_t)i << 32) | j : ((uint64_t)j << 32) | i;
        }
    radix_u64(keys, tmp, m); /* qsort's call per comparison was ~0.1 s of a full-scale refresh */
    free(tmp);
    graph_edges_t e;
    graph_edges_init(&e);
    int rc = 0;
    for (size_t x = 0; x < m && rc == 0;) {
        size_t y = x + 1;
        while (y < m && keys[y] == keys[x])
            y++;
        rc = graph_edges_add(&e, (uint32_t)(keys[x] >> 32), (uint32_t)keys[x], (float)(y - x));
        x = y;
    }
    free(keys);
    if (rc != 0) {
        graph_edges_destroy(&e);
        return rc;
    }
    *out = e;
    return 0;
}
