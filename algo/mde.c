/*
 * mde.c: PyMDE-compatible MDE with L-BFGS and a strong-Wolfe line search. See mde.h.
 *
 * Evaluation of F and its gradient dominates the run time (about one evaluation per
 * iteration); in 3-D it runs on rows padded to 4 doubles through fastmath__mde_eval3 (fastmath.c,
 * vectorised), and the L-BFGS vector loops go through the kernel file's fused helpers. Edges are
 * split into exactly n_threads contiguous chunks, each with its own gradient buffer, reduced in
 * chunk order, so results are bitwise identical for a given thread count whatever the scheduling.
 * Gradient of one edge (PyMDE §2.9): with c = f'(d) / (p d), grad_i += c (x_i - x_j), grad_j -= c
 * (x_i - x_j); d = 0 contributes nothing.
 *
 * The line search is a re-derivation of PyTorch's `_strong_wolfe` (from minFunc): bracketing
 * with cubic extrapolation in [t + 0.01 (t - t_prev), 10 t], then zoom with safeguarded cubic
 * interpolation (moved to 0.1 of the bracket width from an end after two near-boundary tries).
 * We use the gradient at the accepted point, where PyTorch keeps the last evaluated one (the
 * PYMDE_SPEC quirk): the accepted point is what the next L-BFGS update must see.
 */
#include "algo/mde.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/fastmath.h"
#include "algo/par.h"
#include "algo/rng.h"

#define C1         1e-4
#define C2         0.9
#define MAX_LS     25
#define TOL_CHANGE 1e-9

void mde_opts_default(mde_opts_t *o)
{
    o->dim = 3;
    o->max_iter = 2000;
    o->eps = 1e-5;
    o->ftol = 0;
    o->memory = 10;
    o->repulsive_fraction = 1.0;
    o->seed = 42;
    o->n_threads = 2;
    o->trace = NULL;
    o->progress = NULL;
    o->progress_ud = NULL;
}

/* ---- problem set-up ---------------------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Sorted neighbour lists of the kNN graph, to exclude kNN pairs from repulsive sampling. */
typedef struct adjacency {
    uint64_t *ptr;
    uint32_t *nbr;
} adjacency_t;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int adjacency_build(uint32_t n, const graph_edges_t *e, adjacency_t *a)
{
    a->ptr = calloc((size_t)n + 1, sizeof(*a->ptr));
    a->nbr = malloc((2 * e->m + 1) * sizeof(*a->nbr));
    uint64_t *fill = malloc(((size_t)n + 1) * sizeof(*fill));
    if (!a->ptr || !a->nbr || !fill) {
        free(fill);
        return -ENOMEM;
    }
    for (size_t k = 0; k < e->m; k++) {
        a->ptr[e->i[k] + 1]++;
        a->ptr[e->j[k] + 1]++;
    }
    for (uint32_t i = 0; i < n; i++)
        a->ptr[i + 1] += a->ptr[i];
    memcpy(fill, a->ptr, ((size_t)n + 1) * sizeof(*fill));
    for (size_t k = 0; k < e->m; k++) {
        a->nbr[fill[e->i[k]]++] = e->j[k];
        a->nbr[fill[e->j[k]]++] = e->i[k];
    }
    for (uint32_t i = 0; i < n; i++)
        qsort(a->nbr + a->ptr[i], a->ptr[i + 1] - a->ptr[i], sizeof(uint32_t), cmp_u32);
    free(fill);
    return 0;
}

static int adjacent(const adjacency_t *a, uint32_t i, uint32_t j)
{
    const uint32_t *p = a->nbr + a->ptr[i];
    size_t lo = 0, hi = a->ptr[i + 1] - a->ptr[i];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p[mid] < j)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < a->ptr[i + 1] - a->ptr[i] && p[lo] == j;
}

/*
 * Repulsive partners that stay put across refreshes. PyMDE draws pairs uniformly by index; here
 * each item draws from its own stream (seeded by its key) and a draw picks the item that follows
 * it on a hash ring of the item keys (consistent hashing, MDE_RING_REPLICAS points per item to
 * even out the arcs). Indices shift whenever an item enters or leaves, which with index draws
 * renews almost every pair and moved the whole map (p95 6% of the width at full scale); on the
 * ring an item's arrival changes only the draws landing on its own arcs (~1/n of them).
 */
#define MDE_RING_REPLICAS 8

typedef struct ring_pt {
    uint64_t h;
    uint32_t item;
} ring_pt_t;

static int cmp_ring(const void *a, const void *b)
{
    const ring_pt_t *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

static ring_pt_t *ring_build(const uint64_t *keys, uint32_t n)
{
    size_t len = (size_t)n * MDE_RING_REPLICAS;
    ring_pt_t *ring = malloc((len + 1) * sizeof(*ring));
    if (!ring)
        return NULL;
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t r = 0; r < MDE_RING_REPLICAS; r++)
            ring[(size_t)i * MDE_RING_REPLICAS + r] =
                (ring_pt_t){mix64((keys ? keys[i] : i) ^ mix64(0x51a6ull + r)), i};
    qsort(ring, len, sizeof(*ring), cmp_ring);
    return ring;
}

/* The item owning the first ring point at or after @p u (wrapping around). */
static uint32_t ring_pick(const ring_pt_t *ring, size_t len, uint64_t u)
{
    size_t lo = 0, hi = len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring[mid].h < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return ring[lo < len ? lo : 0].item;
}

/* Item i draws its quota of partners j != i, not kNN neighbours, not repeated by i. The quota
 * is n_rep / n on average, the fraction settled by the item's own stream (not its index). */
static int sample_repulsive(mde_t *m, const adjacency_t *adj, const uint64_t *keys, size_t n_rep,
                            size_t cap)
{
    size_t at = m->m_attr, len = (size_t)m->n * MDE_RING_REPLICAS;
    uint32_t n = m->n;
    double mean = n ? (double)n_rep / n : 0;
    size_t base = (size_t)mean;
    ring_pt_t *ring = n > 1 ? ring_build(keys, n) : NULL;
    if (n > 1 && !ring)
        return -ENOMEM;
    for (uint32_t i = 0; i < n && n > 1; i++) {
        rng_t r;
        rng_init(&r, mix64(m->o.seed) ^ mix64(keys ? keys[i] : i));
        size_t quota = base + (rng_uniform(&r) < mean - (double)base);
        size_t first = at;
        for (size_t q = 0; q < quota && at < cap; q++) {
            for (int attempt = 0; attempt < 32; attempt++) {
                uint32_t j = ring_pick(ring, len, rng_next(&r));
                if (j == i || adjacent(adj, i, j))
                    continue;
                int dup = 0;
                for (size_t x = first; x < at && !dup; x++)
                    dup = m->ej[x] == j;
                if (dup)
                    continue;
                m->ei[at] = i;
                m->ej[at] = j;
                m->w[at] = -1.0f;
                at++;
                break;
            }
        }
    }
    free(ring);
    m->m = at;
    return 0;
}

/* Workspace layout in m->buf, each n*dim doubles. */
enum {
    B_G,     /* gradient at x */
    B_GPREV, /* gradient at the previous iterate */
    B_D,     /* search direction */
    B_XT,    /* trial point */
    B_LS0,   /* four line-search gradient slots */
    B_LS1,
    B_LS2,
    B_LS3,
    B_Q, /* two-loop scratch */
    B_FIXED_COUNT
};

static size_t n_buffers(const mde_t *m)
{
    /* fixed + one gradient buffer per chunk (the L-BFGS history is m->hist, in float) */
    return B_FIXED_COUNT + m->o.n_threads;
}

static double *buf(const mde_t *m, size_t k)
{
    return m->buf + k * m->nx;
}

/* L-BFGS pair `slot`: s then y. (Single precision was tried: it cost 0.3% of final distortion
 * on the small graph for no measurable speed-up there, so the history stays double.) */
static hist_t *hist_s(const mde_t *m, int slot)
{
    return m->hist + (size_t)(2 * slot) * m->nx;
}

static hist_t *hist_y(const mde_t *m, int slot)
{
    return m->hist + (size_t)(2 * slot + 1) * m->nx;
}

/* Sort edges [lo, hi) by their (new) first endpoint: a counting sort, stable. */
static int sort_edges_by_i(mde_t *m, size_t lo, size_t hi)
{
    size_t n = hi - lo;
    uint64_t *cnt = calloc((size_t)m->n + 1, sizeof(*cnt));
    uint32_t *ti = malloc((n + 1) * sizeof(*ti)), *tj = malloc((n + 1) * sizeof(*tj));
    float *tw = malloc((n + 1) * sizeof(*tw));
    if (!cnt || !ti || !tj || !tw) {
        free(cnt), free(ti), free(tj), free(tw);
        return -ENOMEM;
    }
    for (size_t k = lo; k < hi; k++)
        cnt[m->ei[k] + 1]++;
    for (uint32_t v = 0; v < m->n; v++)
        cnt[v + 1] += cnt[v];
    for (size_t k = lo; k < hi; k++) {
        size_t at = cnt[m->ei[k]]++;
        ti[at] = m->ei[k], tj[at] = m->ej[k], tw[at] = m->w[k];
    }
    memcpy(m->ei + lo, ti, n * sizeof(*ti));
    memcpy(m->ej + lo, tj, n * sizeof(*tj));
    memcpy(m->w + lo, tw, n * sizeof(*tw));
    free(cnt), free(ti), free(tj), free(tw);
    return 0;
}

/*
 * Relabel items in breadth-first order of the kNN graph (Cuthill-McKee without the degree
 * sort) and sort each edge group by its first endpoint. Neighbours then sit near each other in
 * memory, so the gathers of x_j and scatters into the gradient during an evaluation mostly hit
 * cache. The problem is unchanged (repulsive pairs were sampled before); callers keep their
 * own order: mde_run() and mde_eval() translate at the boundary.
 */
static int reorder(mde_t *m, const adjacency_t *adj)
{
    uint32_t n = m->n, head = 0, tail = 0;
    m->perm = malloc(((size_t)n + 1) * sizeof(*m->perm)); /* perm[new] = old */
    m->inv = malloc(((size_t)n + 1) * sizeof(*m->inv));   /* inv[old] = new */
    m->xo = malloc((m->nx + 1) * sizeof(*m->xo));
    if (!m->perm || !m->inv || !m->xo)
        return -ENOMEM;
    for (uint32_t v = 0; v < n; v++)
        m->inv[v] = UINT32_MAX;
    for (uint32_t start = 0; start < n; start++) {
        if (m->inv[start] != UINT32_MAX)
            continue;
        m->inv[start] = tail;
        m->perm[tail++] = start;
        while (head < tail) {
            uint32_t u = m->perm[head++];
            for (uint64_t e = adj->ptr[u]; e < adj->ptr[u + 1]; e++) {
                uint32_t v = adj->nbr[e];
                if (m->inv[v] == UINT32_MAX) {
                    m->inv[v] = tail;
                    m->perm[tail++] = v;
                }
            }
        }
    }
    for (size_t k = 0; k < m->m; k++) {
        m->ei[k] = m->inv[m->ei[k]];
        m->ej[k] = m->inv[m->ej[k]];
    }
    int rc = sort_edges_by_i(m, 0, m->m_attr);
    return rc ? rc : sort_edges_by_i(m, m->m_attr, m->m);
}

/* Rows of x between the caller's order (old) and the internal one (new). */
static void to_internal(const mde_t *m, const double *x, double *xi)
{
    uint32_t dim = m->o.dim;
    for (uint32_t v = 0; v < m->n; v++)
        memcpy(xi + (size_t)v * dim, x + (size_t)m->perm[v] * dim, dim * sizeof(double));
}

static void to_external(const mde_t *m, const double *xi, double *x)
{
    uint32_t dim = m->o.dim;
    for (uint32_t v = 0; v < m->n; v++)
        memcpy(x + (size_t)m->perm[v] * dim, xi + (size_t)v * dim, dim * sizeof(double));
}

int mde_init(mde_t *m, const mde_opts_t *o, uint32_t n, const graph_edges_t *knn,
             const uint64_t *keys)
{
    memset(m, 0, sizeof(*m));
    if (o->dim == 0 || o->dim > MDE_MAX_DIM || o->memory == 0 || o->repulsive_fraction < 0 ||
        !(o->eps >= 0) || n == 0)
        return -EINVAL;
    for (size_t k = 0; k < knn->m; k++)
        if (knn->i[k] >= n || knn->j[k] >= n || knn->i[k] == knn->j[k] || !(knn->w[k] > 0))
            return -EINVAL;
    m->o = *o;
    if (m->o.n_threads < 1)
        m->o.n_threads = 1;
    m->n = n;
    m->nx = (size_t)n * o->dim;
    double pairs = (double)n * (n - 1) / 2.0 - (double)knn->m;
    size_t n_rep = (size_t)(o->repulsive_fraction * (double)knn->m);
    if ((double)n_rep > pairs)
        n_rep = pairs > 0 ? (size_t)pairs : 0;
    size_t cap = knn->m + (size_t)n * (n_rep / (n ? n : 1) + 1) + 1; /* quotas round up */
    m->ei = malloc(cap * sizeof(*m->ei));
    m->ej = malloc(cap * sizeof(*m->ej));
    m->w = malloc(cap * sizeof(*m->w));
    m->buf = malloc(n_buffers(m) * m->nx * sizeof(double));
    if (par_pool_new(m->o.n_threads, &m->pool) != 0) {
        free(m->ei), free(m->ej), free(m->w), free(m->buf), free(m->hist);
        memset(m, 0, sizeof(*m));
        return -ENOMEM;
    }
    if (o->dim == 3) {
        size_t row_bytes = 4 * sizeof(double), n_pad = (size_t)n + 1;
        m->xp = aligned_alloc(32, n_pad * row_bytes);
        m->gp = aligned_alloc(32, n_pad * row_bytes * m->o.n_threads);
        if (!m->xp || !m->gp) {
            free(m->xp), free(m->gp);
            free(m->ei), free(m->ej), free(m->w), free(m->buf), free(m->hist);
            par_pool_free(m->pool);
            memset(m, 0, sizeof(*m));
            return -ENOMEM;
        }
    }
    m->hist = malloc(2 * ((size_t)m->o.memory + 1) * m->nx * sizeof(hist_t) + 1);
    adjacency_t adj = {0};
    int rc = 0;
    if (!m->ei || !m->ej || !m->w || !m->buf || !m->hist || adjacency_build(n, knn, &adj) != 0) {
        rc = -ENOMEM;
        goto out;
    }
    if (knn->m) { /* a graph with no edges has NULL arrays */
        memcpy(m->ei, knn->i, knn->m * sizeof(*m->ei));
        memcpy(m->ej, knn->j, knn->m * sizeof(*m->ej));
        memcpy(m->w, knn->w, knn->m * sizeof(*m->w));
    }
    m->m_attr = knn->m;
    if ((rc = sample_repulsive(m, &adj, keys, n_rep, cap)) == 0)
        rc = reorder(m, &adj);
out:
    free(adj.ptr);
    free(adj.nbr);
    if (rc != 0)
        mde_destroy(m);
    return rc;
}

void mde_destroy(mde_t *m)
{
    free(m->ei);
    free(m->ej);
    free(m->w);
    free(m->buf);
    free(m->hist);
    free(m->perm);
    free(m->inv);
    free(m->xo);
    free(m->xp);
    free(m->gp);
    par_pool_free(m->pool);
    memset(m, 0, sizeof(*m));
}

static void center(const mde_t *m, double *x)
{
    uint32_t dim = m->o.dim;
    double mean[MDE_MAX_DIM] = {0};
    for (uint32_t i = 0; i < m->n; i++)
        for (uint32_t c = 0; c < dim; c++)
            mean[c] += x[(size_t)i * dim + c];
    for (uint32_t c = 0; c < dim; c++)
        mean[c] /= m->n;
    for (uint32_t i = 0; i < m->n; i++)
        for (uint32_t c = 0; c < dim; c++)
            x[(size_t)i * dim + c] -= mean[c];
}

static int coords_warm_internal(const mde_t *m, double *x, const uint8_t *placed);

void mde_coords_random(const mde_t *m, double *x)
{
    rng_t r;
    rng_init(&r, mix64(m->o.seed ^ 0xc01dull));
    for (size_t k = 0; k < m->nx; k++)
        x[k] = rng_normal(&r);
    center(m, x);
}

int mde_coords_warm(const mde_t *m, double *x, const uint8_t *placed)
{
    /* the edges are in internal labels: work on an internal copy of x and of the mask */
    double *xi = malloc((m->nx + 1) * sizeof(double));
    uint8_t *pi = malloc((size_t)m->n + 1);
    if (!xi || !pi) {
        free(xi);
        free(pi);
        return -ENOMEM;
    }
    to_internal(m, x, xi);
    for (uint32_t v = 0; v < m->n; v++)
        pi[v] = placed[m->perm[v]];
    int rc = coords_warm_internal(m, xi, pi);
    if (rc == 0) /* else @p x unchanged */
        to_external(m, xi, x);
    free(xi);
    free(pi);
    return rc;
}

/* @return 0, or -ENOMEM (@p x partly written: the caller drops it). */
static int coords_warm_internal(const mde_t *m, double *x, const uint8_t *placed)
{
    uint32_t dim = m->o.dim;
    uint8_t *have = malloc(m->n);
    double *acc = calloc(m->nx + 1, sizeof(double));
    uint32_t *cnt = calloc((size_t)m->n + 1, sizeof(uint32_t));
    rng_t r;
    rng_init(&r, mix64(m->o.seed ^ 0x3a7full));
    int rc = 0;
    if (!have || !acc || !cnt) {
        rc = -ENOMEM; /* (it left the unplaced rows as given and said nothing: issue 10.15) */
        goto out;
    }
    for (uint32_t i = 0; i < m->n; i++)
        have[i] = placed[i] != 0;
    /* a few rounds: new items next to new items get placed once their neighbours are */
    for (int round = 0; round < 4; round++) {
        memset(acc, 0, m->nx * sizeof(double));
        memset(cnt, 0, m->n * sizeof(uint32_t));
        for (size_t k = 0; k < m->m_attr; k++) {
            uint32_t i = m->ei[k], j = m->ej[k];
            if (have[j] && !have[i]) {
                for (uint32_t c = 0; c < dim; c++)
                    acc[(size_t)i * dim + c] += x[(size_t)j * dim + c];
                cnt[i]++;
            }
            if (have[i] && !have[j]) {
                for (uint32_t c = 0; c < dim; c++)
                    acc[(size_t)j * dim + c] += x[(size_t)i * dim + c];
                cnt[j]++;
            }
        }
        for (uint32_t i = 0; i < m->n; i++) {
            if (have[i] || cnt[i] == 0)
                continue;
            for (uint32_t c = 0; c < dim; c++)
                x[(size_t)i * dim + c] = acc[(size_t)i * dim + c] / cnt[i] + 0.01 * rng_normal(&r);
        }
        for (uint32_t i = 0; i < m->n; i++)
            have[i] |= cnt[i] > 0;
    }
    for (uint32_t i = 0; i < m->n; i++)
        if (!have[i])
            for (uint32_t c = 0; c < dim; c++)
                x[(size_t)i * dim + c] = rng_normal(&r);
    center(m, x);
out:
    free(have);
    free(acc);
    free(cnt);
    return rc;
}

/* ---- objective --------------------------------------------------------------------------- */

typedef struct eval_job {
    const mde_t *m;
    const double *x;
    double *f_chunk; /* per chunk */
    size_t chunk;
} eval_job_t;

#define BLOCK 256

/* Attractive edges: f = w d, coef = f'(d) / d = w / d. */
static double attractive_block(const mde_t *m, size_t k0, const double *d, double *coef, size_t n)
{
    double f = 0;
    for (size_t k = 0; k < n; k++) {
        double w = (double)m->w[k0 + k];
        f += w * d[k];
        coef[k] = w / d[k];
    }
    return f;
}

/*
 * One block of edges in three passes: gather differences and distances, compute the penalty
 * and coef = f'(d) / d for the whole block (the repulsive one vectorised), then scatter
 * coef (x_i - x_j) into the gradient. Blocks never mix attractive and repulsive edges.
 */
static double eval_block(const mde_t *m, const double *x, double *g, size_t k0, size_t n)
{
    uint32_t dim = m->o.dim;
    double diff[BLOCK * MDE_MAX_DIM], d[BLOCK], fv[BLOCK], coef[BLOCK], f = 0;
    uint8_t zero[BLOCK];
    for (size_t k = 0; k < n; k++) {
        const double *xi = x + (size_t)m->ei[k0 + k] * dim, *xj = x + (size_t)m->ej[k0 + k] * dim;
        double d2 = 0;
        for (uint32_t a = 0; a < dim; a++) {
            double t = xi[a] - xj[a];
            diff[k * dim + a] = t;
            d2 += t * t;
        }
        /* coincident points contribute no gradient (PyMDE sets c = 1 on 0/0): nudge d so the
         * kernel stays finite, then zero the coefficient below */
        zero[k] = !(d2 > 0);
        d[k] = zero[k] ? 1.0 : sqrt(d2);
    }
    if (k0 >= m->m_attr) {
        fastmath__mde_repulsive_block(d, fv, coef, n);
        for (size_t k = 0; k < n; k++)
            f += fv[k];
    } else {
        f = attractive_block(m, k0, d, coef, n);
    }
    for (size_t k = 0; k < n; k++) {
        double c = coef[k];
        const double *df = diff + k * dim;
        if (zero[k]) { /* d = 0: infinite repulsive penalty, zero attractive one */
            f += k0 >= m->m_attr ? (double)INFINITY - fv[k] : -(double)m->w[k0 + k];
            continue;
        }
        double *gi = g + (size_t)m->ei[k0 + k] * dim, *gj = g + (size_t)m->ej[k0 + k] * dim;
        for (uint32_t a = 0; a < dim; a++) {
            gi[a] += c * df[a];
            gj[a] -= c * df[a];
        }
    }
    return f;
}

/* dim 3: the chunk's edges through the padded kernel (attractive, then repulsive part) */
static int eval3_body(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)tid;
    const eval_job_t *j = ud;
    const mde_t *m = j->m;
    size_t c = begin / j->chunk, n_inf = 0, split = m->m_attr;
    double *g = m->gp + c * 4 * (size_t)m->n, f = 0;
    memset(g, 0, 4 * (size_t)m->n * sizeof(double));
    if (begin < split) {
        size_t e = end < split ? end : split;
        f += fastmath__mde_eval3(m->xp, g, m->ei + begin, m->ej + begin, m->w + begin, e - begin, 0,
                                 &n_inf);
    }
    if (end > split) {
        size_t b = begin > split ? begin : split;
        f += fastmath__mde_eval3(m->xp, g, m->ei + b, m->ej + b, m->w + b, end - b, 1, &n_inf);
    }
    j->f_chunk[c] = n_inf ? (double)INFINITY : f;
    return 0;
}

static int eval_body(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)tid;
    const eval_job_t *j = ud;
    const mde_t *m = j->m;
    size_t c = begin / j->chunk;
    double *g = buf(m, B_FIXED_COUNT + c), f = 0;
    memset(g, 0, m->nx * sizeof(double));
    for (size_t k = begin; k < end;) {
        size_t n = end - k < BLOCK ? end - k : BLOCK;
        if (k < m->m_attr && k + n > m->m_attr)
            n = m->m_attr - k; /* keep blocks homogeneous */
        f += eval_block(m, j->x, g, k, n);
        k += n;
    }
    j->f_chunk[c] = f;
    return 0;
}

static double eval_internal(const mde_t *m, const double *x, double *grad);

double mde_eval(const mde_t *m, const double *x, double *grad)
{
    double *xi = malloc((m->nx + 1) * sizeof(double)), *gi = malloc((m->nx + 1) * sizeof(double));
    if (!xi || !gi) {
        free(xi);
        free(gi);
        return NAN;
    }
    to_internal(m, x, xi);
    double f = eval_internal(m, xi, gi);
    to_external(m, gi, grad);
    free(xi);
    free(gi);
    return f;
}

static double eval_internal(const mde_t *m, const double *x, double *grad)
{
    unsigned nt = m->o.n_threads;
    double f_chunk[64];
    if (nt > 64)
        nt = 64;
    eval_job_t j = {m, x, f_chunk, (m->m + nt - 1) / nt};
    if (j.chunk == 0)
        j.chunk = 1;
    size_t n_chunks = (m->m + j.chunk - 1) / j.chunk;
    double f = 0, inv_p = m->m ? 1.0 / (double)m->m : 0;
    if (m->xp) {
        fastmath__mde_pad3(x, m->xp, m->n);
        par_pool_for(m->pool, m->m, j.chunk, eval3_body, &j);
        for (size_t c = 0; c < n_chunks; c++)
            f += f_chunk[c];
        fastmath__mde_reduce3(m->gp, n_chunks, m->n, inv_p, grad);
        return f * inv_p;
    }
    par_pool_for(m->pool, m->m, j.chunk, eval_body, &j);
    memset(grad, 0, m->nx * sizeof(double));
    for (size_t c = 0; c < n_chunks; c++) {
        const double *g = buf(m, B_FIXED_COUNT + c);
        for (size_t k = 0; k < m->nx; k++)
            grad[k] += g[k];
        f += f_chunk[c];
    }
    for (size_t k = 0; k < m->nx; k++)
        grad[k] *= inv_p;
    return f * inv_p;
}

double mde_distortion(const mde_t *m, const double *x)
{
    double *g = malloc(m->nx * sizeof(double));
    if (!g)
        return NAN;
    double f = mde_eval(m, x, g);
    free(g);
    return f;
}

/* ---- L-BFGS ------------------------------------------------------------------------------ */

static double dot(const double *a, const double *b, size_t n)
{
    return fastmath__mde_dot(a, b, n);
}

/* f and gradient (into g) at x + t d; the trial point is kept in B_XT. */
static double phi(mde_t *m, const double *x, double t, const double *d, double *g, unsigned *evals)
{
    double *xt = buf(m, B_XT);
    fastmath__mde_axpy_to(xt, x, t, d, m->nx);
    (*evals)++;
    return eval_internal(m, xt, g);
}

/* Minimiser of the cubic through (x1, f1, g1), (x2, f2, g2), clamped to [lo, hi]. */
static double cubic_min(double x1, double f1, double g1, double x2, double f2, double g2, double lo,
                        double hi)
{
    double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
    double d2sq = d1 * d1 - g1 * g2;
    if (d2sq >= 0 && isfinite(d2sq)) {
        double d2 = sqrt(d2sq), pos;
        if (x1 <= x2)
            pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2));
        else
            pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
        if (isfinite(pos))
            return pos < lo ? lo : (pos > hi ? hi : pos);
    }
    return (lo + hi) / 2;
}

typedef struct ls_point {
    double t, f, gtd;
    int g; /* buffer index of its gradient */
} ls_point_t;

/* Evaluate at t into a free gradient slot (one not used by the points in @p keep). */
static ls_point_t ls_eval(mde_t *m, const double *x, const double *d, double t,
                          const ls_point_t *keep, int n_keep, unsigned *evals)
{
    int slot = B_LS0;
    for (int s = B_LS0; s <= B_LS3; s++) {
        int used = 0;
        for (int k = 0; k < n_keep; k++)
            used |= keep[k].g == s;
        if (!used) {
            slot = s;
            break;
        }
    }
    ls_point_t p = {t, 0, 0, slot};
    p.f = phi(m, x, t, d, buf(m, slot), evals);
    p.gtd = dot(buf(m, slot), d, m->nx);
    return p;
}

/*
 * Strong-Wolfe line search from (f0, g0 in B_G, gtd0) along d with first trial t.
 * @return the accepted point (its gradient in a B_LS slot), t = 0 if none was acceptable.
 */
static ls_point_t strong_wolfe(mde_t *m, const double *x, const double *d, double t, double f0,
                               double gtd0, unsigned *evals)
{
    double dmax, l1;
    fastmath__mde_norms(d, m->nx, &dmax, &l1);
    ls_point_t zero = {0, f0, gtd0, B_G}, prev = zero, cur, br[2];
    cur = ls_eval(m, x, d, t, &prev, 1, evals);
    for (int h = 0; h < 10 && !(isfinite(cur.f) && isfinite(cur.gtd)); h++)
        cur = ls_eval(m, x, d, t *= 0.5, &prev, 1, evals); /* overflow: shorter first step */
    int ls_iter = 0, done = 0, nb = 0;
    while (ls_iter < MAX_LS) {
        if (!(cur.f <= f0 + C1 * cur.t * gtd0) || (ls_iter > 1 && cur.f >= prev.f)) {
            br[0] = prev, br[1] = cur, nb = 2;
            break;
        }
        if (fabs(cur.gtd) <= -C2 * gtd0) {
            br[0] = cur, nb = 1, done = 1;
            break;
        }
        if (cur.gtd >= 0) {
            br[0] = prev, br[1] = cur, nb = 2;
            break;
        }
        double lo = cur.t + 0.01 * (cur.t - prev.t), hi = cur.t * 10;
        double tn = cubic_min(prev.t, prev.f, prev.gtd, cur.t, cur.f, cur.gtd, lo, hi);
        prev = cur;
        cur = ls_eval(m, x, d, tn, &prev, 1, evals);
        ls_iter++;
    }
    if (nb == 0) { /* ran out of evaluations while extrapolating */
        br[0] = zero, br[1] = cur, nb = 2;
    }
    int low = 0, high = 1, insuf = 0;
    if (nb == 2 && br[1].f < br[0].f)
        low = 1, high = 0;
    while (!done && ls_iter < MAX_LS) {
        double bmin = fmin(br[0].t, br[1].t), bmax = fmax(br[0].t, br[1].t);
        if ((bmax - bmin) * dmax < TOL_CHANGE)
            break;
        double tn = cubic_min(br[0].t, br[0].f, br[0].gtd, br[1].t, br[1].f, br[1].gtd, bmin, bmax);
        double eps = 0.1 * (bmax - bmin);
        if (fmin(bmax - tn, tn - bmin) < eps) {
            if (insuf || tn >= bmax || tn <= bmin) {
                tn = fabs(tn - bmax) < fabs(tn - bmin) ? bmax - eps : bmin + eps;
                insuf = 0;
            } else {
                insuf = 1;
            }
        } else {
            insuf = 0;
        }
        cur = ls_eval(m, x, d, tn, br, 2, evals);
        ls_iter++;
        if (!(cur.f <= f0 + C1 * cur.t * gtd0) || cur.f >= br[low].f) {
            br[high] = cur;
            low = br[0].f <= br[1].f ? 0 : 1;
            high = 1 - low;
        } else {
            if (fabs(cur.gtd) <= -C2 * gtd0)
                done = 1;
            else if (cur.gtd * (br[high].t - br[low].t) >= 0)
                br[high] = br[low];
            br[low] = cur;
        }
    }
    ls_point_t best = br[low];
    if (!(isfinite(best.f) && best.f <= f0 + C1 * best.t * gtd0)) {
        /* no acceptable point: backtrack from the best t (PyMDE's NaN fallback) */
        double tb = best.t;
        while (tb > 1e-8) {
            tb *= 0.8;
            best = ls_eval(m, x, d, tb, NULL, 0, evals);
            if (isfinite(best.f) && best.f <= f0 + C1 * tb * gtd0)
                return best;
        }
        return zero;
    }
    return best;
}

/*
 * Two-loop recursion (Nocedal & Wright, Algorithm 7.4): d = -H g with the stored pairs, oldest
 * first in ring order. Each update of q (first loop) or r (second loop) is fused with the dot
 * product the next pair needs, so every history vector is read once per loop.
 */
static void two_loop(mde_t *m, const double *g, double *d, int n_hist, int head, double gamma,
                     const double *rho, const int *phys)
{
    size_t nx = m->nx;
    double alpha[64];
    int slot[64];
    for (int k = 0; k < n_hist; k++)
        slot[k] = (head + k) % (int)m->o.memory;
    memcpy(d, g, nx * sizeof(double)); /* q */
    double next = n_hist > 0 ? fastmath__mde_dot(hist_s(m, phys[slot[n_hist - 1]]), d, nx) : 0;
    for (int k = n_hist - 1; k >= 0; k--) {
        alpha[k] = rho[slot[k]] * next;
        const hist_t *sp = k > 0 ? hist_s(m, phys[slot[k - 1]]) : NULL;
        next = fastmath__mde_axpy_dot(d, -alpha[k], hist_y(m, phys[slot[k]]), sp, nx);
    }
    /* r = gamma q, fused with the first dot of the second loop */
    next = fastmath__mde_scale_dot(d, gamma, n_hist > 0 ? hist_y(m, phys[slot[0]]) : NULL, nx);
    for (int k = 0; k < n_hist; k++) {
        double c = alpha[k] - rho[slot[k]] * next;
        const hist_t *yn = k + 1 < n_hist ? hist_y(m, phys[slot[k + 1]]) : NULL;
        next = fastmath__mde_axpy_dot(d, c, hist_s(m, phys[slot[k]]), yn, nx);
    }
    fastmath__mde_scale_dot(d, -1.0, NULL, nx);
}

/* Long (about 110 lines) on purpose: one L-BFGS iteration is a sequence of steps sharing a
 * dozen workspace vectors; split, each piece would take most of them as arguments. */
static int run_internal(mde_t *m, double *x, mde_result_t *res)
{
    size_t nx = m->nx;
    for (size_t k = 0; k < nx; k++)
        if (!isfinite(x[k]))
            return -EINVAL;
    if (m->o.memory > 64)
        return -EINVAL;
    center(m, x);
    double *g = buf(m, B_G), *gprev = buf(m, B_GPREV), *d = buf(m, B_D);
    double rho[64];
    unsigned evals = 1;
    double f = eval_internal(m, x, g), t_prev = 0;
    int n_hist = 0, head = 0, restart = 1, rc = 0;
    double gamma = 1, f_hist[10];
    /* pair slot -> buffer; buffer `spare` takes each new pair, swapped in when it is kept */
    int phys[65], spare = (int)m->o.memory;
    for (int k = 0; k <= (int)m->o.memory; k++)
        phys[k] = k;
    uint32_t it = 0;
    for (; it < m->o.max_iter; it++) {
        double r = sqrt(dot(g, g, nx));
        if (!restart) {
            /* s = t_prev d_prev, y = g - g_prev, stored if y's > 1e-10 (scratch first, so a
             * rejected pair never overwrites the oldest stored one) */
            double yy;
            double ys = fastmath__mde_pair(hist_s(m, spare), hist_y(m, spare), t_prev, d, g, gprev,
                                           nx, &yy);
            if (ys > 1e-10) {
                int slot = (head + n_hist) % (int)m->o.memory;
                if (n_hist == (int)m->o.memory)
                    head = (head + 1) % (int)m->o.memory;
                else
                    n_hist++;
                int t = phys[slot];
                phys[slot] = spare;
                spare = t;
                rho[slot] = 1.0 / ys;
                gamma = ys / yy;
            }
        }
        if (restart || n_hist == 0) {
            for (size_t k = 0; k < nx; k++)
                d[k] = -g[k];
        } else {
            two_loop(m, g, d, n_hist, head, gamma, rho, phys);
        }
        double gtd = dot(g, d, nx);
        if (!(gtd < 0)) { /* not a descent direction: fall back to steepest descent */
            n_hist = 0;
            for (size_t k = 0; k < nx; k++)
                d[k] = -g[k];
            gtd = -r * r;
        }
        double t0 = 1;
        if (restart) {
            double gmax, l1;
            fastmath__mde_norms(g, nx, &gmax, &l1);
            t0 = l1 > 1 ? 1 / l1 : 1;
        }
        memcpy(gprev, g, nx * sizeof(double));
        ls_point_t p = strong_wolfe(m, x, d, t0, f, gtd, &evals);
        restart = 0;
        if (p.t > 0) {
            if (m->o.dim == 3) {
                fastmath__mde_step_center3(x, p.t, d, m->n);
            } else {
                for (size_t k = 0; k < nx; k++)
                    x[k] += p.t * d[k];
                center(m, x);
            }
            f = p.f;
            memcpy(g, buf(m, p.g), nx * sizeof(double));
        } else {
            restart = 1; /* zero step: drop the memory */
            n_hist = 0;
            head = 0;
        }
        t_prev = p.t;
        if (m->o.trace)
            m->o.trace[it] = f;
        if (m->o.progress && (it % 10 == 0) &&
            m->o.progress(m->o.progress_ud, "mde", (double)it / m->o.max_iter)) {
            rc = ATL_ECANCELED;
            it++;
            break;
        }
        if (r <= m->o.eps) {
            it++;
            break;
        }
        /* relative progress over the last 10 iterations (warm refreshes) */
        if (m->o.ftol > 0 && it >= 10 && f_hist[it % 10] - f <= m->o.ftol * fabs(f)) {
            it++;
            break;
        }
        f_hist[it % 10] = f;
    }
    if (res) {
        res->iterations = it;
        res->evaluations = evals;
        res->distortion = eval_internal(m, x, g);
        res->grad_norm = sqrt(dot(g, g, nx));
        res->n_attractive = m->m_attr;
        res->n_repulsive = m->m - m->m_attr;
    }
    if (rc == 0 && m->o.progress)
        m->o.progress(m->o.progress_ud, "mde", 1.0);
    return rc;
}

int mde_run(mde_t *m, double *x, mde_result_t *res)
{
    for (size_t k = 0; k < m->nx; k++)
        if (!isfinite(x[k]))
            return -EINVAL;
    to_internal(m, x, m->xo);
    int rc = run_internal(m, m->xo, res);
    to_external(m, m->xo, x);
    return rc;
}
