/*
 * mde.c: PyMDE-compatible MDE with L-BFGS and a strong-Wolfe line search. See mde.h.
 *
 * Evaluation of F and its gradient dominates the run time (about one evaluation per
 * iteration); in 3-D it runs in single precision on rows padded to 4 floats through
 * fastmath__mde_eval3 (fastmath.c, vectorised; mde_eval() and the result's figures in double).
 * Edges are split into n_threads contiguous chunks (at most 64; in 3-D shares of cost, mde_t.cut,
 * else of count), each with its own gradient buffer, reduced in chunk order, so results are
 * bitwise identical for a given thread count whatever the scheduling. The L-BFGS runs in
 * coefficient space: two passes over the vectors an iteration, on the pool in chunks of a fixed
 * size (see run_internal()). Gradient of one edge (PyMDE §2.9): with c = f'(d) / (p d), grad_i += c
 * (x_i - x_j), grad_j -= c (x_i - x_j); d = 0 contributes nothing.
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
#include "algo/sortdef.h"

#define C1         1e-4
#define C2         0.9
#define MAX_LS     25
#define TOL_CHANGE 1e-9
/* attractive pairs closer than this are merged (see merged_subgradient): the line search ends
 * its zoom when the bracket moves coordinates less than TOL_CHANGE, so it cannot resolve them.
 * Only the double-precision evaluation merges; the float one zeroes exactly coincident rows. */
#define MERGED_D TOL_CHANGE
/* merged pairs a chunk of the double evaluation lists for merged_subgradient(), which scans a
 * chunk with more again (a scan of every edge had cost warm refreshes 15% of their MDE time) */
#define MERGED_LIST 1024
/* elements a chunk of the L-BFGS passes, at most (chunk_size rounds it to whole rows, which
 * can exceed it by a row): 64 KiB of a double vector, 16 KiB of a bfloat16 one */
#define VEC_CHUNK     8190
#define VEC_ROWS      2048 /* at most, rows a chunk of the padding and the gradient's reduction */
#define VEC_CHUNKS    8    /* chunk counts are multiples of this (see chunk_size) */
#define VEC_MIN_ELEMS 512  /* elements (rows) a chunk holds at least */
/* A single-precision line search that fails, or needs more evaluations than this (cold runs: 1;
 * a restart's, which starts from a guess, is not counted), is looking for steps its F cannot
 * resolve: mde_t.exact */
#define FLOAT_LS_EVALS 5
/*
 * With ftol at least this, a single-precision line search that finds no decrease, or needs more
 * than FLOAT_LS_EVALS evaluations, ends the run instead of going on in double: F in float
 * resolves ~1e-7 of itself, so 10 iterations could lower it by less than ftol asks (warm
 * refreshes: 1e-4). A converged map went to double at its first iteration and spent 10 more
 * there (~50 evaluations, 0.8 s at full scale) before ftol stopped it, on every refresh that
 * changed nothing much.
 */
#define FTOL_FLOAT_STOP 1e-6

/*
 * The chunk size of a vector pass over @p n elements, at most @p cap, a multiple of @p unit
 * (whole rows). The number of chunks is a multiple of VEC_CHUNKS where the chunks can hold
 * VEC_MIN_ELEMS each, so that vec_run() can hand each thread an equal block of them (2, 4 or 8
 * threads). The size depends only on n, never on the thread count: the sums of the chunks are
 * added in chunk order, so the results are the same on any number of threads.
 */
static size_t chunk_size(size_t n, size_t cap, size_t unit)
{
    size_t n_chunks = (n + cap - 1) / cap;
    if (n >= VEC_CHUNKS * VEC_MIN_ELEMS)
        n_chunks = (n_chunks + VEC_CHUNKS - 1) / VEC_CHUNKS * VEC_CHUNKS;
    else
        n_chunks = n / VEC_MIN_ELEMS ? n / VEC_MIN_ELEMS : 1;
    size_t chunk = (n + n_chunks - 1) / n_chunks;
    chunk = (chunk + unit - 1) / unit * unit;
    return chunk ? chunk : unit;
}

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
    o->clock = NULL;
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

static int adjacency_build(uint32_t n, const graph_edges_t *e, adjacency_t *a)
{
    a->ptr = calloc((size_t)n + 1, sizeof(*a->ptr));
    a->nbr = malloc((2 * e->m + 1) * sizeof(*a->nbr));
    uint32_t *unsorted = malloc((2 * e->m + 1) * sizeof(*unsorted));
    uint64_t *fill = malloc(((size_t)n + 1) * sizeof(*fill));
    if (!a->ptr || !a->nbr || !unsorted || !fill) {
        free(unsorted);
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
        unsorted[fill[e->i[k]]++] = e->j[k];
        unsorted[fill[e->j[k]]++] = e->i[k];
    }
    /* sorted rows by transposing: u is appended to the rows of its neighbours in increasing u
     * (the lists are symmetric), two passes instead of a sort a row (sorts were most of
     * mde_init at full scale) */
    memcpy(fill, a->ptr, ((size_t)n + 1) * sizeof(*fill));
    for (uint32_t u = 0; u < n; u++)
        for (uint64_t k = a->ptr[u]; k < a->ptr[u + 1]; k++)
            a->nbr[fill[unsorted[k]]++] = u;
    free(unsorted);
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

ATL_RADIX_SORT_DEFINE(sort_ring_top, ring_pt_t, e.h >> 40)

/* Sort by (h, item): a stable radix pass by the top 24 bits of h (3 byte passes, not 8), then an
 * insertion pass for the few neighbours that share them (nearly sorted: linear) */
static void sort_ring(ring_pt_t *pt, ring_pt_t *tmp, size_t len)
{
    sort_ring_top(pt, tmp, len);
    for (size_t i = 1; i < len; i++) {
        ring_pt_t x = pt[i];
        size_t j = i;
        for (; j > 0 && (pt[j - 1].h > x.h || (pt[j - 1].h == x.h && pt[j - 1].item > x.item)); j--)
            pt[j] = pt[j - 1];
        pt[j] = x;
    }
}

/* The ring, sorted, with an index by the top `shift`-complement bits of a point: first[b] is the
 * first point with h >= b << shift (about one point a bucket), so a pick searches a bucket, not
 * the whole ring (the binary search over the ring was most of mde_init at full scale). */
typedef struct ring {
    ring_pt_t *pt;
    uint32_t *first; /* (len >> shift_bits) + 2 entries */
    size_t len;
    int shift;
} ring_t;

static void ring_free(ring_t *r)
{
    free(r->pt);
    free(r->first);
}

static int ring_build(const uint64_t *keys, uint32_t n, ring_t *r)
{
    size_t len = (size_t)n * MDE_RING_REPLICAS;
    int bits = 1;
    while (bits < 30 && ((size_t)1 << bits) < len)
        bits++;
    r->len = len;
    r->shift = 64 - bits;
    r->pt = malloc((len + 1) * sizeof(*r->pt));
    r->first = malloc((((size_t)1 << bits) + 2) * sizeof(*r->first));
    ring_pt_t *tmp = malloc((len + 1) * sizeof(*tmp));
    if (!r->pt || !r->first || !tmp || len >= UINT32_MAX) {
        free(tmp);
        ring_free(r);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t q = 0; q < MDE_RING_REPLICAS; q++)
            r->pt[(size_t)i * MDE_RING_REPLICAS + q] =
                (ring_pt_t){mix64((keys ? keys[i] : i) ^ mix64(0x51a6ull + q)), i};
    sort_ring(r->pt, tmp, len); /* qsort was half of mde_init at full scale */
    free(tmp);
    size_t at = 0;
    for (size_t b = 0; b <= ((size_t)1 << bits); b++) {
        while (at < len && (r->pt[at].h >> r->shift) < b)
            at++;
        r->first[b] = (uint32_t)at;
    }
    return 0;
}

/* The item owning the first ring point at or after @p u (wrapping around). */
static uint32_t ring_pick(const ring_t *r, uint64_t u)
{
    size_t b = u >> r->shift, lo = r->first[b], hi = r->first[b + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->pt[mid].h < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return r->pt[lo < r->len ? lo : 0].item;
}

/* picks between the prefetch of a bucket's point and its pick (twice that for first[]) */
#define RING_AHEAD 16

/* pick[t] = ring_pick(u[t]) for t in [0, len): random reads of the ring (~14 MB at full scale),
 * prefetched RING_AHEAD picks ahead in two steps (the bucket's first point, then the point) */
static void ring_pick_all(const ring_t *r, const uint64_t *u, uint32_t *pick, size_t len)
{
    for (size_t t = 0; t < len; t++) {
        if (t + 2 * RING_AHEAD < len)
            __builtin_prefetch(&r->first[u[t + 2 * RING_AHEAD] >> r->shift]);
        if (t + RING_AHEAD < len)
            __builtin_prefetch(&r->pt[r->first[u[t + RING_AHEAD] >> r->shift]]);
        pick[t] = ring_pick(r, u[t]);
    }
}

/*
 * Item i draws its quota of partners j != i, not kNN neighbours, not repeated by i. The quota
 * is n_rep / n on average, the fraction settled by the item's own stream (not its index). Each
 * item's first quota draws are picked for all items at once (ring_pick_all: the ring's cache
 * misses were most of mde_init at full scale); a rejected draw takes the stream's next value
 * as before, so the pairs are the same.
 */
static int sample_repulsive(mde_t *m, const adjacency_t *adj, const uint64_t *keys, size_t n_rep,
                            size_t cap)
{
    size_t at = m->m_attr, total = 0;
    uint32_t n = m->n;
    double mean = n ? (double)n_rep / n : 0;
    size_t base = (size_t)mean;
    ring_t ring = {0};
    if (n < 2) {
        m->m = at;
        return 0;
    }
    rng_t *st = malloc((size_t)n * sizeof(*st));
    size_t *off = malloc(((size_t)n + 1) * sizeof(*off));
    uint64_t *u = malloc(((size_t)n * (base + 1) + 1) * sizeof(*u));
    uint32_t *pick = malloc(((size_t)n * (base + 1) + 1) * sizeof(*pick));
    if (!st || !off || !u || !pick || ring_build(keys, n, &ring) != 0) {
        free(st), free(off), free(u), free(pick);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) { /* each stream's quota and first quota draws */
        rng_init(&st[i], mix64(m->o.seed) ^ mix64(keys ? keys[i] : i));
        size_t quota = base + (rng_uniform(&st[i]) < mean - (double)base);
        off[i] = total;
        for (size_t q = 0; q < quota; q++)
            u[total++] = rng_next(&st[i]);
    }
    off[n] = total;
    ring_pick_all(&ring, u, pick, total);
    for (uint32_t i = 0; i < n; i++) {
        size_t quota = off[i + 1] - off[i], first = at, drawn = 0;
        for (size_t q = 0; q < quota && at < cap; q++) {
            for (int attempt = 0; attempt < 32; attempt++, drawn++) {
                uint32_t j =
                    drawn < quota ? pick[off[i] + drawn] : ring_pick(&ring, rng_next(&st[i]));
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
                drawn++;
                break;
            }
        }
    }
    ring_free(&ring);
    free(st), free(off), free(u), free(pick);
    m->m = at;
    return 0;
}

/* Workspace layout in m->buf, each n*dim doubles. */
enum {
    B_G,     /* gradient buffers: at x and at the previous iterate when a run starts, then */
    B_GPREV, /* they trade places with the line-search slots (grad_bufs) */
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

/*
 * The stored L-BFGS pairs' format: bfloat16 while the evaluation runs in single precision,
 * float once the run goes on in double (mde_t.exact, which also drops the stored pairs, so
 * they never mix). The two passes an iteration stream the whole history: 35 MB in double at
 * full scale, more than the L3; 17.7 MB in float; 8.8 MB in bfloat16, which took the full-scale
 * 2000 iterations from 6.7 to 6.2 s with the same distortion and evaluation count. Near an
 * optimum 8 bits are too few: 30 iterations from converged coordinates took 125 evaluations
 * with bfloat16 pairs (test_mde), 36-57 in float (the figure moves with the trajectory).
 */
static int hist_bf16(const mde_t *m)
{
    return m->xp && !m->exact;
}

static size_t hist_elem(const mde_t *m)
{
    return hist_bf16(m) ? sizeof(uint16_t) : sizeof(float);
}

/* L-BFGS pair `slot`: s then y, in the format of hist_bf16() */
static void *hist_s(const mde_t *m, int slot)
{
    return (char *)m->hist + (size_t)(2 * slot) * m->nx * hist_elem(m);
}

static void *hist_y(const mde_t *m, int slot)
{
    return (char *)m->hist + (size_t)(2 * slot + 1) * m->nx * hist_elem(m);
}

/* element @p k of a stored vector */
static const void *hist_at(const mde_t *m, const void *v, size_t k)
{
    return (const char *)v + k * hist_elem(m);
}

/* Sort edges [lo, hi) by their (new) first endpoint >> @p shift, or by their second endpoint
 * if @p by_j: a counting sort, stable. */
static int sort_edges(mde_t *m, size_t lo, size_t hi, int by_j, int shift)
{
    size_t n = hi - lo;
    uint64_t *cnt = calloc((size_t)m->n + 1, sizeof(*cnt));
    uint32_t *ti = malloc((n + 1) * sizeof(*ti)), *tj = malloc((n + 1) * sizeof(*tj));
    float *tw = malloc((n + 1) * sizeof(*tw));
    if (!cnt || !ti || !tj || !tw) {
        free(cnt), free(ti), free(tj), free(tw);
        return -ENOMEM;
    }
#define EDGE_KEY(k) (by_j ? m->ej[k] : m->ei[k] >> shift)
    for (size_t k = lo; k < hi; k++)
        cnt[EDGE_KEY(k) + 1]++;
    for (uint32_t v = 0; v < m->n; v++)
        cnt[v + 1] += cnt[v];
    for (size_t k = lo; k < hi; k++) {
        size_t at = cnt[EDGE_KEY(k)]++;
        ti[at] = m->ei[k], tj[at] = m->ej[k], tw[at] = m->w[k];
    }
    memcpy(m->ei + lo, ti, n * sizeof(*ti));
    memcpy(m->ej + lo, tj, n * sizeof(*tj));
    memcpy(m->w + lo, tw, n * sizeof(*tw));
#undef EDGE_KEY
    free(cnt), free(ti), free(tj), free(tw);
    return 0;
}

/*
 * The repulsive edges' partners are random over all items: in order of i alone, each edge
 * reads x_j and writes g_j at random, two cache misses once the points and a thread's
 * gradient outgrow the L2 cache (2.4 MB at full scale). In blocks of 2^MDE_IBLOCK_SHIFT
 * first endpoints (the block's rows of x and g, 512 KB, stay in L2), each block's edges by j:
 * the j side then sweeps x and g in order, which the hardware prefetcher streams.
 */
#define MDE_IBLOCK_SHIFT 14

static int sort_repulsive(mde_t *m)
{
    int rc = sort_edges(m, m->m_attr, m->m, 1, 0);
    return rc ? rc : sort_edges(m, m->m_attr, m->m, 0, MDE_IBLOCK_SHIFT);
}

/*
 * Whether the 3-D evaluation takes the repulsive edges as (j, i) (mde_t.rep_by_j). Its scatter
 * sums the first endpoint's terms in a register while that endpoint repeats (a branch
 * misprediction where its run ends) and read-modify-writes the second's row on every edge.
 * After sort_repulsive() j comes in runs and i hardly repeats, so as (i, j) every edge does two
 * read-modify-writes (i's register is flushed at once); as (j, i), one, and a misprediction
 * for each run of j. Measured on Zen 5 (rdtsc around the kernel, 1 thread): the small graph's
 * runs of ~10 edges, the repulsive edges 20-25% cheaper as (j, i); the full-scale graph's
 * runs of ~2.2 (j sorted within blocks of 16k first endpoints), the whole run 18% slower.
 * Holding j's row in a register with scatter's own operations (the same bits) was 12% slower:
 * the gain is the read-modify-write saved. Break-even, roughly: a misprediction per run
 * against a read-modify-write per edge: runs of REP_RUN_MIN edges or more.
 */
#define REP_RUN_MIN 3.5

static int repulsive_by_j(const mde_t *m)
{
    size_t runs = 0;
    for (size_t k = m->m_attr; k < m->m; k++)
        runs += k == m->m_attr || m->ej[k] != m->ej[k - 1];
    return runs && (double)(m->m - m->m_attr) >= REP_RUN_MIN * (double)runs;
}

/*
 * Relabel items in breadth-first order of the kNN graph (Cuthill-McKee without the degree
 * sort), sort the attractive edges by their first endpoint and the repulsive ones as
 * sort_repulsive() says. Neighbours then sit near each other in memory, so the gathers of x_j
 * and scatters into the gradient during an evaluation mostly hit cache. The problem is unchanged
 * (repulsive pairs were sampled before); callers keep their own order: mde_run() and mde_eval()
 * translate at the boundary.
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
    int rc = sort_edges(m, 0, m->m_attr, 0, 0);
    rc = rc ? rc : sort_repulsive(m);
    m->rep_by_j = rc == 0 && repulsive_by_j(m);
    return rc;
}

/* The edges' endpoints as row offsets in the padded rows (4 floats a row: the kernel's address
 * is then a base and an index, without a shift an endpoint) */
static int row_offsets(mde_t *m)
{
    m->oi = malloc((m->m + 1) * sizeof(*m->oi));
    m->oj = malloc((m->m + 1) * sizeof(*m->oj));
    if (!m->oi || !m->oj)
        return -ENOMEM;
    for (size_t k = 0; k < m->m; k++)
        m->oi[k] = 4 * m->ei[k], m->oj[k] = 4 * m->ej[k];
    return 0;
}

/* The 3-D evaluation's chunks: one a thread, each into its own gradient buffer */
static size_t eval3_chunks(const mde_t *m)
{
    return m->o.n_threads > 64 ? 64 : m->o.n_threads;
}

/*
 * The evaluation's chunk boundaries in edges [lo, hi) whose first endpoints, as the kernel takes
 * them, are @p first: equal shares of cost, 1 an edge and RUN_COST more for each run of a
 * repeated first endpoint (the run's end writes its sum to the endpoint's gradient row, and its
 * branch mispredicts). In breadth-first order the early items are the first endpoint of more
 * edges: with equal numbers of edges, the second half of the full-scale graph's attractive edges
 * had 43k runs against 21k and took 1.110x the first half's time (one thread, median of 400
 * alternating evaluations); balanced with a run as 1, 2 or 3 edges, 1.002x, 0.991x and 0.911x.
 */
#define RUN_COST 1

/* edge @p k's cost in balance_chunks(): 1, and RUN_COST more where a run of @p first starts */
static double edge_cost(const uint32_t *first, size_t lo, size_t k)
{
    return 1 + (k == lo || first[k] != first[k - 1] ? RUN_COST : 0);
}

static void balance_chunks(const uint32_t *first, size_t lo, size_t hi, size_t nc, size_t *cut)
{
    double total = 0, at = 0;
    for (size_t k = lo; k < hi; k++)
        total += edge_cost(first, lo, k);
    cut[0] = lo;
    size_t c = 1;
    for (size_t k = lo; k < hi && c < nc; k++) {
        at += edge_cost(first, lo, k);
        while (c < nc && at >= total * (double)c / (double)nc)
            cut[c++] = k + 1;
    }
    while (c <= nc)
        cut[c++] = hi;
}

/* mde_t.cut for the evaluation's chunks */
static int chunk_cuts(mde_t *m)
{
    size_t nc = eval3_chunks(m);
    m->cut = malloc(2 * (nc + 1) * sizeof(*m->cut));
    if (!m->cut)
        return -ENOMEM;
    balance_chunks(m->oi, 0, m->m_attr, nc, m->cut);
    balance_chunks(m->rep_by_j ? m->oj : m->oi, m->m_attr, m->m, nc, m->cut + nc + 1);
    return 0;
}

/* The bytes of the 3-D kernel's rows, 4 floats each, n rounded up to whole cache lines (each
 * thread's gradient buffer starts 4 n floats after the previous one, in n_threads such sizes) */
static size_t padded_bytes(const mde_t *m)
{
    return (((size_t)m->n + 4) & ~(size_t)3) * 4 * sizeof(float);
}

static int all_finite(const double *x, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!isfinite(x[k]))
            return 0;
    return 1;
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
        !(o->eps >= 0) || n == 0 || (o->dim == 3 && n > (1u << 30))) /* row offsets: 4 (n - 1) */
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
        /* 16-byte rows (never across a cache line); the sizes rounded up to the alignment */
        m->xp = aligned_alloc(64, padded_bytes(m));
        m->gp = aligned_alloc(64, padded_bytes(m) * m->o.n_threads);
        if (!m->xp || !m->gp) {
            free(m->xp), free(m->gp);
            free(m->ei), free(m->ej), free(m->w), free(m->buf), free(m->hist);
            par_pool_free(m->pool);
            memset(m, 0, sizeof(*m));
            return -ENOMEM;
        }
        /* gp is cleared by mde_run() at its start (then each evaluation's reduction clears
         * what it read); xp is defined before the first padding */
        memset(m->xp, 0, padded_bytes(m));
    }
    m->hist = malloc(2 * ((size_t)m->o.memory + 1) * m->nx * sizeof(float) + 1);
    size_t mem = m->o.memory > 64 ? 64 : m->o.memory, n_vchunks;
    m->vec_chunk = chunk_size(m->nx, VEC_CHUNK, o->dim);
    m->row_chunk = chunk_size(n, VEC_ROWS, 1);
    n_vchunks = (m->nx + m->vec_chunk - 1) / m->vec_chunk + (n + m->row_chunk - 1) / m->row_chunk;
    m->vpart = malloc(n_vchunks * (8 + 2 * 64) * sizeof(double));
    m->gram = malloc(3 * (mem + 1) * (mem + 1) * sizeof(double));
    m->merged = malloc((size_t)m->o.n_threads * MERGED_LIST * sizeof(size_t));
    m->merged_u =
        calloc(1 + (size_t)m->o.n_threads * MERGED_LIST * ((size_t)o->dim + 1), sizeof(double));
    m->passes = calloc(1, sizeof(*m->passes));
    adjacency_t adj = {0};
    int rc = 0;
    if (!m->ei || !m->ej || !m->w || !m->buf || !m->hist || !m->vpart || !m->gram || !m->merged ||
        !m->merged_u || !m->passes || adjacency_build(n, knn, &adj) != 0) {
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
    if (rc == 0 && o->dim == 3 && (rc = row_offsets(m)) == 0)
        rc = chunk_cuts(m);
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
    free(m->oi);
    free(m->oj);
    free(m->cut);
    free(m->vpart);
    free(m->gram);
    free(m->merged);
    free(m->merged_u);
    free(m->passes);
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
    double *f_chunk;      /* per chunk */
    size_t chunk;         /* edges a chunk (dim 3: the number of chunks, see eval3_body) */
    size_t *merged_chunk; /* per chunk, double precision only: merged attractive pairs (the
                           * first MERGED_LIST of them listed in mde_t.merged) */
    int which;            /* dim 3: MDE_KERNEL_ATTRACTIVE and/or MDE_KERNEL_REPULSIVE */
    double *t_end;        /* dim 3, with mde_opts_t.clock: when each chunk ended */
    unsigned *t_tid;      /* and on which thread */
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
 * Attractive pairs closer than MERGED_D are merged, taken as d = 0: no penalty (w d < w 1e-9,
 * and F must not change while they move within MERGED_D of each other, as their gradient says)
 * and no gradient here (merged_subgradient() gives theirs); they are counted in *n_merged, and
 * the first MERGED_LIST of a chunk listed in @p merged.
 */
static double eval_block(const mde_t *m, const double *x, double *g, size_t k0, size_t n,
                         size_t *n_merged, size_t *merged)
{
    uint32_t dim = m->o.dim;
    int attractive = k0 < m->m_attr;
    double diff[BLOCK * MDE_MAX_DIM], d[BLOCK], fv[BLOCK], coef[BLOCK], f = 0;
    double d_min = attractive ? MERGED_D * MERGED_D : 0;
    uint8_t zero[BLOCK];
    for (size_t k = 0; k < n; k++) {
        const double *xi = x + (size_t)m->ei[k0 + k] * dim, *xj = x + (size_t)m->ej[k0 + k] * dim;
        double d2 = 0;
        for (uint32_t a = 0; a < dim; a++) {
            double t = xi[a] - xj[a];
            diff[k * dim + a] = t;
            d2 += t * t;
        }
        /* coincident (or merged) points contribute no gradient here: nudge d so the kernel
         * stays finite, then zero the coefficient below */
        zero[k] = !(d2 > d_min);
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
        if (zero[k]) { /* repulsive d = 0: infinite penalty; a merged pair: d = 0 */
            if (attractive) {
                f -= (double)m->w[k0 + k];
                if (*n_merged < MERGED_LIST)
                    merged[*n_merged] = k0 + k;
                (*n_merged)++;
            } else
                f += (double)INFINITY - fv[k];
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

/* dim 3: chunk c (of n_chunks) takes the c-th share of the attractive edges and the c-th of
 * the repulsive ones (mde_t.cut), so that chunks cost the same (a repulsive edge costs several
 * attractive ones: exp, log and a random partner); each into its own padded gradient buffer */
static int eval3_body(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)end;
    const eval_job_t *j = ud;
    const mde_t *m = j->m;
    size_t c = begin, nc = j->chunk, n_inf = 0;
    float *g = m->gp + c * 4 * (size_t)m->n; /* zero: the reduction clears it */
    double f = 0;
    size_t a0 = m->cut[c], a1 = m->cut[c + 1], r0 = m->cut[nc + 1 + c], r1 = m->cut[nc + 2 + c];
    if (a1 > a0 && (j->which & MDE_KERNEL_ATTRACTIVE))
        f += fastmath__mde_eval3(m->xp, g, m->oi + a0, m->oj + a0, m->w + a0, a1 - a0, 0, &n_inf);
    const uint32_t *ri = m->rep_by_j ? m->oj : m->oi, *rj = m->rep_by_j ? m->oi : m->oj;
    if (r1 > r0 && (j->which & MDE_KERNEL_REPULSIVE)) /* (i, j) or (j, i): symmetric */
        f += fastmath__mde_eval3(m->xp, g, ri + r0, rj + r0, m->w + r0, r1 - r0, 1, &n_inf);
    j->f_chunk[c] = n_inf ? (double)INFINITY : f;
    if (m->o.clock)
        j->t_end[c] = m->o.clock(), j->t_tid[c] = tid;
    return 0;
}

static int eval_body(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)tid;
    const eval_job_t *j = ud;
    const mde_t *m = j->m;
    size_t c = begin / j->chunk;
    double *g = buf(m, B_FIXED_COUNT + c), f = 0;
    size_t n_merged = 0;
    memset(g, 0, m->nx * sizeof(double));
    for (size_t k = begin; k < end;) {
        size_t n = end - k < BLOCK ? end - k : BLOCK;
        if (k < m->m_attr && k + n > m->m_attr)
            n = m->m_attr - k; /* keep blocks homogeneous */
        f += eval_block(m, j->x, g, k, n, &n_merged, m->merged + c * MERGED_LIST);
        k += n;
    }
    j->f_chunk[c] = f;
    j->merged_chunk[c] = n_merged;
    return 0;
}

static double eval_exact(const mde_t *m, const double *x, double *grad);

double mde_eval(const mde_t *m, const double *x, double *grad)
{
    double *xi = malloc((m->nx + 1) * sizeof(double)), *gi = malloc((m->nx + 1) * sizeof(double));
    if (!xi || !gi) {
        free(xi);
        free(gi);
        return NAN;
    }
    to_internal(m, x, xi);
    m->merged_u[0] = 0; /* a function of x alone (see merged_warm_start) */
    double f = eval_exact(m, xi, gi);
    to_external(m, gi, grad);
    free(xi);
    free(gi);
    return f;
}

/* ---- vector passes on the pool ---------------------------------------------------------- */

/*
 * Passes over the n x dim vectors (L-BFGS, padding, gradient reduction) run on the pool in
 * chunks of a fixed size, each chunk's sums kept apart and added in chunk order: the results
 * do not depend on the thread count, and the vector work no longer runs on one thread.
 */

enum { PASS_PAIR, PASS_DIR, PASS_PAD, PASS_REDUCE };

typedef struct vec_job {
    const mde_t *m;
    int pass;
    size_t n, chunk; /* elements (rows for PAD and REDUCE), and per chunk */
    size_t stride;   /* sums per chunk in m->vpart */
    const double *g, *gprev, *d, *x;
    double t, scale;
    void *sn, *yn;
    double *out;
    int n_vec;             /* PAIR: stored pairs; DIR: stored vectors in the basis */
    const void *const *bs; /* PAIR: s of the stored pairs; DIR: the stored basis vectors */
    const void *const *by; /* PAIR: their y */
    const double *coef;    /* DIR: of g, then of bs[] */
    double *step;          /* PAIR, 3-D: x to move by t (d - dmean), or NULL */
    const double *dmean;   /* d's column means */
} vec_job_t;

/* mde_opts_t.clock's time, or 0 without one */
static double pass_clock(const mde_t *m)
{
    return m->o.clock ? m->o.clock() : 0;
}

/* A pass begun at @p t0 (pass_clock()) is over: its time into *seconds and one more call,
 * with a clock (one reading); nothing without */
static void pass_done(const mde_t *m, double t0, double *seconds, uint32_t *calls)
{
    if (!m->o.clock)
        return;
    *seconds += m->o.clock() - t0;
    (*calls)++;
}

/* A vector pass begun at @p t0 is over: into its fields of mde_t.passes (the rare padding pass
 * is in none) */
static void pass_account(const mde_t *m, int pass, double t0)
{
    mde_passes_t *p = m->passes;
    if (pass == PASS_PAIR)
        pass_done(m, t0, &p->pair_s, &p->n_pair);
    else if (pass == PASS_DIR)
        pass_done(m, t0, &p->dir_s, &p->n_dir);
    else if (pass == PASS_REDUCE)
        pass_done(m, t0, &p->reduce_s, &p->n_reduce);
}

static int vec_body(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)tid;
    const vec_job_t *j = ud;
    const mde_t *m = j->m;
    int bf16 = hist_bf16(m);
    for (size_t c = begin; c < end; c++) {
        size_t lo = c * j->chunk, hi = lo + j->chunk < j->n ? lo + j->chunk : j->n, len = hi - lo;
        double *acc = m->vpart + c * j->stride;
        memset(acc, 0, j->stride * sizeof(double));
        if (j->pass == PASS_PAIR) {
            void *sn = j->sn ? (char *)j->sn + lo * hist_elem(m) : NULL;
            void *yn = j->yn ? (char *)j->yn + lo * hist_elem(m) : NULL;
            fastmath__lbfgs_pair(sn, yn, bf16, j->t, j->d + lo, j->g + lo, j->gprev + lo, len, acc);
            int k = 0;
            for (; k + 4 <= j->n_vec; k += 4) {
                const void *v[8];
                for (int q = 0; q < 4; q++) {
                    v[2 * q] = hist_at(m, j->bs[k + q], lo);
                    v[2 * q + 1] = hist_at(m, j->by[k + q], lo);
                }
                fastmath__lbfgs_gdots4(v, bf16, j->g + lo, len, acc + 8 + 2 * k);
            }
            for (; k < j->n_vec; k++)
                fastmath__lbfgs_gdots1(hist_at(m, j->bs[k], lo), hist_at(m, j->by[k], lo), bf16,
                                       j->g + lo, len, acc + 8 + 2 * k);
            if (j->step) /* the last iteration's step, d still unchanged (see pending_step) */
                fastmath__mde_step3(j->step + lo, j->t, j->d + lo, j->dmean, len / 3);
        } else if (j->pass == PASS_DIR) {
            int k = 0;
            const void *v[4];
            if (j->n_vec >= 4) { /* g's term with the first four: one pass less over d */
                for (int q = 0; q < 4; q++)
                    v[q] = hist_at(m, j->bs[q], lo);
                fastmath__lbfgs_axpy4_init(j->out + lo, j->coef[0], j->g + lo, j->coef + 1, v, bf16,
                                           len);
                k = 4;
            } else {
                fastmath__lbfgs_scale(j->out + lo, j->coef[0], j->g + lo, len);
            }
            for (; k + 4 <= j->n_vec; k += 4) {
                for (int q = 0; q < 4; q++)
                    v[q] = hist_at(m, j->bs[k + q], lo);
                fastmath__lbfgs_axpy4(j->out + lo, j->coef + 1 + k, v, bf16, len);
            }
            for (; k < j->n_vec; k++)
                fastmath__lbfgs_axpy(j->out + lo, j->coef[1 + k], hist_at(m, j->bs[k], lo), bf16,
                                     len);
            fastmath__lbfgs_dir_stats(j->out + lo, j->g + lo, len, acc);
            if (j->stride > 3) /* 3-D: d's column sums */
                fastmath__mde_colsum3(j->out + lo, len / 3, acc + 3);
            if (j->x) /* the line search's first trial point, while d is in cache */
                fastmath__mde_pad3_step(j->x + lo, j->t, j->out + lo, m->xp + 4 * (lo / 3),
                                        len / 3);
        } else if (j->pass == PASS_PAD) {
            if (j->d)
                fastmath__mde_pad3_step(j->x + 3 * lo, j->t, j->d + 3 * lo, m->xp + 4 * lo,
                                        hi - lo);
            else
                fastmath__mde_pad3(j->x + 3 * lo, m->xp + 4 * lo, hi - lo);
        } else if (j->pass == PASS_REDUCE) {
            acc[0] =
                fastmath__mde_reduce3_dot(m->gp + 4 * lo, (size_t)j->n_vec, m->n, hi - lo, j->scale,
                                          j->out + 3 * lo, j->d ? j->d + 3 * lo : NULL);
        }
    }
    return 0;
}

/*
 * Run a pass; its sums (the chunks' added in order; for DIR, entry 2 is a maximum) into
 * @p sums (j->stride entries; may be NULL).
 * Each thread takes one contiguous block of the chunks (the caller the first: it claims before
 * a worker can), so a thread works on the same rows of g, d and the stored pairs in every pass
 * and finds them in its own L2 cache. Chunks claimed one at a time went to either thread, and
 * half of every pass's reads came from the other core's cache: on the small graph (4,645
 * items, 1.1 MB of stored pairs) the two passes and the reduction took 351 Mcycles over 2000
 * iterations on 2 threads against 453 on 1; in blocks, 291.
 */
static void vec_run(const mde_t *m, vec_job_t *j, double *sums)
{
    size_t n_chunks = (j->n + j->chunk - 1) / j->chunk;
    size_t nt = m->o.n_threads ? m->o.n_threads : 1;
    double t0 = pass_clock(m);
    par_pool_for(n_chunks >= 2 ? m->pool : NULL, n_chunks, (n_chunks + nt - 1) / nt, vec_body, j);
    pass_account(m, j->pass, t0);
    if (!sums)
        return;
    for (size_t i = 0; i < j->stride; i++)
        sums[i] = 0;
    for (size_t c = 0; c < n_chunks; c++) {
        const double *acc = m->vpart + c * j->stride;
        for (size_t i = 0; i < j->stride; i++) {
            if (j->pass == PASS_DIR && i == 2)
                sums[i] = acc[i] > sums[i] ? acc[i] : sums[i];
            else
                sums[i] += acc[i];
        }
    }
}

/* The spread of the threads' ends: each thread's last chunk end, the latest minus the earliest
 * (0 when one thread ran every chunk: the worker had not come) */
static double ends_spread(const double *t_end, const unsigned *t_tid, size_t n_chunks)
{
    double last[64];
    int ran[64] = {0};
    for (size_t c = 0; c < n_chunks; c++) {
        unsigned t = t_tid[c] < 64 ? t_tid[c] : 63;
        last[t] = ran[t] ? fmax(last[t], t_end[c]) : t_end[c];
        ran[t] = 1;
    }
    double lo = INFINITY, hi = -INFINITY;
    for (int t = 0; t < 64; t++)
        if (ran[t])
            lo = fmin(lo, last[t]), hi = fmax(hi, last[t]);
    return hi > lo ? hi - lo : 0;
}

/* The 3-D kernel over the edge sets in @p which, the chunks' gradients into their buffers:
 * the sum of the chunks' penalties, in chunk order */
static double eval3_sum(const mde_t *m, int which)
{
    double f_chunk[64], t_end[64], f = 0, t0 = pass_clock(m);
    unsigned t_tid[64];
    eval_job_t j = {.m = m,
                    .f_chunk = f_chunk,
                    .chunk = eval3_chunks(m),
                    .which = which,
                    .t_end = t_end,
                    .t_tid = t_tid};
    par_pool_for(m->pool, j.chunk, 1, eval3_body, &j);
    pass_done(m, t0, &m->passes->eval_s, &m->passes->n_eval);
    if (m->o.clock)
        m->passes->wait_s += ends_spread(t_end, t_tid, j.chunk);
    for (size_t c = 0; c < j.chunk; c++)
        f += f_chunk[c];
    return f;
}

/* The F and gradient of the points in m->xp, into @p grad; *gtd = grad . d if @p d is set */
static double eval_padded(const mde_t *m, double *grad, const double *d, double *gtd)
{
    double inv_p = m->m ? 1.0 / (double)m->m : 0;
    double f = eval3_sum(m, MDE_KERNEL_ATTRACTIVE | MDE_KERNEL_REPULSIVE);
    vec_job_t r = {.m = m,
                   .pass = PASS_REDUCE,
                   .n = m->n,
                   .chunk = m->row_chunk,
                   .stride = 1,
                   .d = d,
                   .scale = inv_p,
                   .out = grad,
                   .n_vec = (int)eval3_chunks(m)};
    double s;
    vec_run(m, &r, &s);
    if (gtd)
        *gtd = s;
    return f * inv_p;
}

int mde_kernel_load(mde_t *m, const double *x)
{
    if (!m->xp || !all_finite(x, m->nx))
        return -EINVAL;
    to_internal(m, x, m->xo);
    fastmath__mde_pad3(m->xo, m->xp, m->n);
    return 0;
}

double mde_kernel_eval(mde_t *m, int which)
{
    if (!m->xp || which < MDE_KERNEL_ATTRACTIVE ||
        which > (MDE_KERNEL_ATTRACTIVE | MDE_KERNEL_REPULSIVE))
        return NAN;
    return eval3_sum(m, which);
}

/* |x_i - x_j|^2 of edge @p e */
static double edge_d2(const mde_t *m, const double *x, size_t e)
{
    uint32_t dim = m->o.dim;
    const double *xi = x + (size_t)m->ei[e] * dim, *xj = x + (size_t)m->ej[e] * dim;
    double d2 = 0;
    for (uint32_t a = 0; a < dim; a++)
        d2 += (xi[a] - xj[a]) * (xi[a] - xj[a]);
    return d2;
}

/*
 * One block step of merged_subgradient() for attractive edge @p e: take its term @p u (dim
 * entries, updated) out of @p grad, put the best one back. @return the largest change of u.
 */
static double merged_pair_term(const mde_t *m, double *grad, size_t e, double *u, double inv_p)
{
    uint32_t dim = m->o.dim;
    double *gi = grad + (size_t)m->ei[e] * dim, *gj = grad + (size_t)m->ej[e] * dim;
    double v[MDE_MAX_DIM], norm = 0, cap = (double)m->w[e] * inv_p, change = 0;
    for (uint32_t a = 0; a < dim; a++) {
        gi[a] -= u[a], gj[a] += u[a];
        v[a] = (gj[a] - gi[a]) / 2;
        norm += v[a] * v[a];
    }
    norm = sqrt(norm);
    double scale = norm > cap ? cap / norm : 1;
    for (uint32_t a = 0; a < dim; a++) {
        v[a] *= scale;
        change = fmax(change, fabs(v[a] - u[a]));
        u[a] = v[a];
        gi[a] += v[a], gj[a] -= v[a];
    }
    return change;
}

/*
 * The gradient at merged attractive pairs (closer than MERGED_D, where the line search no
 * longer resolves a move). The Linear penalty w d has a kink at d = 0, which holds a pair
 * together at an optimum once the pull of their other terms apart is weaker than w; there its
 * gradient w (x_i - x_j) / d points along rounding noise, and with it every line search failed
 * (the run stalled: test_mde, test_merged_pair). Instead the merged pairs' terms get the
 * subgradient of least norm: each pair e = (i, j) adds u_e at i and -u_e at j, |u_e| <= w_e / p,
 * the u_e minimising |g|^2 (o, the rest of the gradient, is @p grad on entry). A convex
 * quadratic program over balls, solved by exact block coordinate descent: for one pair, with
 * a and b the gradients at i and j without its term, the best u is (b - a) / 2 shortened to
 * w_e / p; sweeps over the pairs until no u_e changes by more than 1e-12 of the largest cap,
 * at most MERGED_SWEEPS an evaluation, from the last evaluation's solution (merged_warm_start).
 * Unshortened, i and j get the same gradient and move together. Merged pairs share items often
 * (test_mde's planted graph: groups of up to 25 items), and one pass in edge order then left a
 * gradient whose negative was no descent direction (review of 5f97a70: three items merged with
 * weight 10 and a fourth pulling one of them: F stuck at 0.28, the optimum 0).
 * Scratch: the evaluation's chunk buffers, free after its reduction, hold each pair's edge and
 * u_e (dim + 1 doubles). Pairs beyond that (a start where most items coincide) get one pass each
 * afterwards: a subgradient still, not the least-norm one.
 */
#define MERGED_SWEEPS 10

/*
 * The last solution of merged_subgradient() (mde_t.merged_u: a count, then records of edge and
 * u_e) starts the next one: between the evaluations of a run the merged pairs and the rest of
 * the gradient change little, and from u = 0 the sweeps ran to MERGED_SWEEPS on every
 * evaluation (1,000-1,700 merged pairs in a full-scale warm refresh: 0.25 s of its 0.75 s MDE).
 * Both lists are in edge order; a pair's u_e is added into @p grad as it is taken over.
 */
static void merged_warm_start(const mde_t *m, double *grad, double *rec, size_t nm)
{
    size_t rec_len = (size_t)m->o.dim + 1, n_prev = (size_t)m->merged_u[0], p = 0;
    const double *prev = m->merged_u + 1;
    for (size_t q = 0; q < nm && p < n_prev; q++) {
        double *r = rec + q * rec_len;
        while (p < n_prev && prev[p * rec_len] < r[0])
            p++;
        if (p == n_prev || prev[p * rec_len] != r[0])
            continue;
        size_t e = (size_t)r[0];
        double *gi = grad + (size_t)m->ei[e] * m->o.dim, *gj = grad + (size_t)m->ej[e] * m->o.dim;
        for (uint32_t a = 0; a < m->o.dim; a++) {
            r[1 + a] = prev[p * rec_len + 1 + a];
            gi[a] += r[1 + a], gj[a] -= r[1 + a];
        }
    }
}

/* Keep the solution for merged_warm_start() (none if it does not fit) */
static void merged_keep(const mde_t *m, const double *rec, size_t nm)
{
    size_t rec_len = (size_t)m->o.dim + 1;
    if (nm > (size_t)m->o.n_threads * MERGED_LIST) {
        m->merged_u[0] = 0;
        return;
    }
    memcpy(m->merged_u + 1, rec, nm * rec_len * sizeof(double));
    m->merged_u[0] = (double)nm;
}

/* Append merged attractive edge @p e to the records (its u_e 0); the largest cap into *cap_max */
static void merged_record(const mde_t *m, double *rec, size_t *nm, size_t e, double inv_p,
                          double *cap_max)
{
    double *r = rec + *nm * ((size_t)m->o.dim + 1);
    r[0] = (double)e; /* exact below 2^53 */
    for (uint32_t a = 0; a < m->o.dim; a++)
        r[1 + a] = 0;
    *cap_max = fmax(*cap_max, (double)m->w[e] * inv_p);
    (*nm)++;
}

/* @p counts: merged pairs per chunk of @p chunk edges (eval_exact), listed in m->merged up to
 * MERGED_LIST a chunk; a chunk with more is scanned again. Either way in edge order. */
static void merged_subgradient(const mde_t *m, const double *x, double *grad, double inv_p,
                               const size_t *counts, size_t chunk, size_t n_chunks)
{
    uint32_t dim = m->o.dim;
    size_t rec_len = (size_t)dim + 1, room = (size_t)m->o.n_threads * m->nx / rec_len, nm = 0;
    size_t total = 0;
    double *rec = buf(m, B_FIXED_COUNT), cap_max = 0;
    for (size_t c = 0; c < n_chunks; c++)
        total += counts[c];
    for (size_t c = 0; c < n_chunks && total <= room; c++) {
        if (counts[c] <= MERGED_LIST) {
            for (size_t q = 0; q < counts[c]; q++)
                merged_record(m, rec, &nm, m->merged[c * MERGED_LIST + q], inv_p, &cap_max);
            continue;
        }
        size_t hi = (c + 1) * chunk < m->m_attr ? (c + 1) * chunk : m->m_attr;
        for (size_t e = c * chunk; e < hi; e++)
            if (edge_d2(m, x, e) <= MERGED_D * MERGED_D)
                merged_record(m, rec, &nm, e, inv_p, &cap_max);
    }
    for (size_t e = 0; e < m->m_attr && total > room && nm < room; e++)
        if (edge_d2(m, x, e) <= MERGED_D * MERGED_D)
            merged_record(m, rec, &nm, e, inv_p, &cap_max);
    merged_warm_start(m, grad, rec, nm);
    for (int sweep = 0; sweep < MERGED_SWEEPS; sweep++) {
        double change = 0;
        for (size_t q = 0; q < nm; q++)
            change = fmax(change, merged_pair_term(m, grad, (size_t)rec[q * rec_len],
                                                   rec + q * rec_len + 1, inv_p));
        if (change <= 1e-12 * cap_max)
            break;
    }
    merged_keep(m, rec, nm);
    if (total <= room)
        return;
    size_t seen = 0; /* the pairs without room: one pass, each from u = 0 */
    for (size_t e = 0; e < m->m_attr; e++) {
        double u[MDE_MAX_DIM] = {0};
        if (edge_d2(m, x, e) <= MERGED_D * MERGED_D && seen++ >= nm)
            (void)merged_pair_term(m, grad, e, u, inv_p);
    }
}

/* F and its gradient in double precision, any dimension: mde_eval() and the result's figures */
static double eval_exact(const mde_t *m, const double *x, double *grad)
{
    unsigned nt = m->o.n_threads;
    double f_chunk[64];
    size_t merged_chunk[64], n_merged = 0;
    if (nt > 64)
        nt = 64;
    double t0 = pass_clock(m);
    eval_job_t j = {.m = m,
                    .x = x,
                    .f_chunk = f_chunk,
                    .chunk = (m->m + nt - 1) / nt,
                    .merged_chunk = merged_chunk};
    if (j.chunk == 0)
        j.chunk = 1;
    size_t n_chunks = (m->m + j.chunk - 1) / j.chunk;
    double f = 0, inv_p = m->m ? 1.0 / (double)m->m : 0;
    par_pool_for(m->pool, m->m, j.chunk, eval_body, &j);
    memset(grad, 0, m->nx * sizeof(double));
    for (size_t c = 0; c < n_chunks; c++) {
        const double *g = buf(m, B_FIXED_COUNT + c);
        for (size_t k = 0; k < m->nx; k++)
            grad[k] += g[k];
        f += f_chunk[c];
        n_merged += merged_chunk[c];
    }
    for (size_t k = 0; k < m->nx; k++)
        grad[k] *= inv_p;
    if (n_merged)
        merged_subgradient(m, x, grad, inv_p, merged_chunk, j.chunk, n_chunks);
    pass_done(m, t0, &m->passes->exact_s, &m->passes->n_exact);
    return f * inv_p;
}

/* Whether the solver evaluates with the single-precision kernel: in 3-D, until mde_t.exact */
static int float_eval(const mde_t *m)
{
    return m->xp && !m->exact;
}

/* F and its gradient for the solver: float_eval() on the padded rows, else eval_exact() */
static double eval_internal(mde_t *m, const double *x, double *grad)
{
    if (!float_eval(m))
        return eval_exact(m, x, grad);
    vec_job_t p = {.m = m, .pass = PASS_PAD, .n = m->n, .chunk = m->row_chunk, .x = x};
    vec_run(m, &p, NULL);
    m->xp_t = NAN;
    return eval_padded(m, grad, NULL, NULL);
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

/* f and gradient (into g) at x + t d, and g . d into *gtd. In 3-D the trial point goes straight
 * into the padded rows and the gradient's reduction computes g . d on the way; otherwise the
 * trial point is kept in B_XT. */
static double phi(mde_t *m, const double *x, double t, const double *d, double *g, double *gtd,
                  unsigned *evals)
{
    (*evals)++;
    if (float_eval(m)) {
        if (t != m->xp_t) { /* else the direction pass padded this trial point already */
            vec_job_t p = {
                .m = m, .pass = PASS_PAD, .n = m->n, .chunk = m->row_chunk, .x = x, .t = t, .d = d};
            vec_run(m, &p, NULL);
        }
        m->xp_t = NAN;
        return eval_padded(m, g, d, gtd);
    }
    double *xt = buf(m, B_XT);
    fastmath__mde_axpy_to(xt, x, t, d, m->nx);
    double f = eval_internal(m, xt, g);
    *gtd = dot(g, d, m->nx);
    return f;
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

/* The six gradient buffers: g and g_prev of the iteration are two of them, and change places
 * with the line search's slots instead of being copied (a pass of 1.8 MB at full scale). */
static const int grad_bufs[] = {B_G, B_GPREV, B_LS0, B_LS1, B_LS2, B_LS3};

/* Evaluate at t into a free gradient buffer: neither @p g0 (the gradient at x) nor one used by
 * the points in @p keep. */
static ls_point_t ls_eval(mde_t *m, const double *x, const double *d, double t,
                          const ls_point_t *keep, int n_keep, int g0, unsigned *evals)
{
    int slot = B_LS0;
    for (size_t b = 0; b < ATL_ARRAY_LEN(grad_bufs); b++) {
        int s = grad_bufs[b], used = s == g0;
        for (int k = 0; k < n_keep; k++)
            used |= keep[k].g == s;
        if (!used) {
            slot = s;
            break;
        }
    }
    ls_point_t p = {t, 0, 0, slot};
    p.f = phi(m, x, t, d, buf(m, slot), &p.gtd, evals);
    return p;
}

/*
 * Strong-Wolfe line search from (f0, g0 in buffer @p g0, gtd0) along d (max |d_k| = dmax) with
 * first trial t. @return the accepted point (its gradient in another of grad_bufs), t = 0 if
 * none was acceptable.
 */
static ls_point_t strong_wolfe(mde_t *m, const double *x, const double *d, double dmax, double t,
                               double f0, double gtd0, int g0, unsigned *evals)
{
    ls_point_t zero = {0, f0, gtd0, g0}, prev = zero, cur, br[2];
    cur = ls_eval(m, x, d, t, &prev, 1, g0, evals);
    for (int h = 0; h < 10 && !(isfinite(cur.f) && isfinite(cur.gtd)); h++)
        cur = ls_eval(m, x, d, t *= 0.5, &prev, 1, g0, evals); /* overflow: shorter first step */
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
        cur = ls_eval(m, x, d, tn, &prev, 1, g0, evals);
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
        cur = ls_eval(m, x, d, tn, br, 2, g0, evals);
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
            best = ls_eval(m, x, d, tb, NULL, 0, g0, evals);
            if (isfinite(best.f) && best.f <= f0 + C1 * tb * gtd0)
                return best;
        }
        return zero;
    }
    return best;
}

/*
 * L-BFGS in coefficient space ("vector-free" L-BFGS, Chen, Wang & Zhou, NIPS 2014). The
 * two-loop recursion (Nocedal & Wright, Algorithm 7.4) only ever needs dot products between the
 * stored s_k, y_k and g, and produces d as a linear combination of them. The dot products
 * among the stored pairs are kept (m->gram, by buffer); those of the new g come from one pass
 * over the history (two a stored pair), those of a new pair from the Gram matrix and the last
 * direction's coefficients (derive_pair_dots); the recursion then runs on (2h + 1)
 * coefficients, and a second pass forms d. Two passes of the vectors an iteration, both on the
 * pool, instead of 4h + 2 one after another on one thread; same mathematics, rounding aside.
 */
typedef struct lbfgs {
    int n_hist, head, spare;
    int phys[65];   /* pair slot -> buffer */
    double rho[64]; /* by slot */
    double gamma;
    double *ss, *sy, *yy;      /* (memory + 1)^2 each, by buffer: s_p . s_q, s_p . y_q, y_p . y_q */
    double sg[65], yg[65];     /* by buffer: s_p . g, y_p . g for the current g */
    double dg, ds[65], dy[65]; /* the last direction: d = dg g + sum ds_p s_p + dy_p y_p (by
                                * buffer), g the gradient it was formed from */
} lbfgs_t;

/*
 * The new pair's dots with the stored pair in buffer @p q, from the Gram matrix instead of a pass
 * over the vectors (Chen, Wang & Zhou's vector-free L-BFGS): with s_new = t d, d as in
 * lbfgs_t.dg/ds/dy on the previous gradient g_prev, and y_new = g - g_prev,
 *   s_new . v = t (dg g_prev . v + sum_p ds_p s_p . v + dy_p y_p . v),   y_new . v = g . v - g_prev
 * . v for v = s_q and y_q; g_prev . v are @p gps, @p gpy, and L->sg, L->yg already hold g's. They
 * describe s_new and y_new before their rounding to float (a relative 6e-8 apart).
 * out = {s_new . s_q, s_new . y_q, y_new . s_q, y_new . y_q}.
 */
static void derive_pair_dots(const lbfgs_t *L, size_t stride, const int *hp, int h, int q, double t,
                             double gps, double gpy, double out[4])
{
    double ss = L->dg * gps, sy = L->dg * gpy;
    for (int k = 0; k < h; k++) {
        size_t p = (size_t)hp[k];
        ss += L->ds[p] * L->ss[p * stride + q] + L->dy[p] * L->sy[q * stride + p];
        sy += L->ds[p] * L->sy[p * stride + q] + L->dy[p] * L->yy[p * stride + q];
    }
    out[0] = t * ss, out[1] = t * sy;
    out[2] = L->sg[q] - gps, out[3] = L->yg[q] - gpy;
}

/* Record the direction's coefficients (see lbfgs_t.dg) */
static void keep_direction(lbfgs_t *L, const double *coef, const int *p, int nb)
{
    int h = (nb - 1) / 2;
    for (int b = 0; b < 65; b++)
        L->ds[b] = L->dy[b] = 0;
    L->dg = coef[2 * h];
    for (int k = 0; k < h; k++)
        L->ds[p[k]] = coef[k], L->dy[p[k]] = coef[h + k];
}

/* b_i . b_j for the basis (s_0 .. s_{h-1}, y_0 .. y_{h-1}, g) in slot order, p[] the buffers */
static double basis_dot(const lbfgs_t *L, size_t stride, const int *p, int h, int i, int j,
                        double gg)
{
    if (i > j) {
        int t = i;
        i = j, j = t;
    }
    if (j == 2 * h) /* with g */
        return i == 2 * h ? gg : (i < h ? L->sg[p[i]] : L->yg[p[i - h]]);
    if (j < h) /* s . s */
        return L->ss[(size_t)p[i] * stride + p[j]];
    if (i >= h) /* y . y */
        return L->yy[(size_t)p[i - h] * stride + p[j - h]];
    return L->sy[(size_t)p[i] * stride + p[j - h]]; /* s_i . y_j */
}

/* d's coefficients on the basis: d = -H g */
static void two_loop_coef(const mde_t *m, const lbfgs_t *L, double gg, double *coef, int *p)
{
    int h = L->n_hist, nb = 2 * h + 1;
    size_t stride = (size_t)m->o.memory + 1;
    double alpha[64];
    for (int k = 0; k < h; k++)
        p[k] = L->phys[(L->head + k) % (int)m->o.memory];
    for (int i = 0; i < nb; i++)
        coef[i] = 0;
    coef[2 * h] = 1; /* q = g */
    for (int k = h - 1; k >= 0; k--) {
        double sq = 0;
        for (int i = 0; i < nb; i++)
            if (coef[i] != 0)
                sq += coef[i] * basis_dot(L, stride, p, h, k, i, gg);
        alpha[k] = L->rho[(L->head + k) % (int)m->o.memory] * sq;
        coef[h + k] -= alpha[k];
    }
    for (int i = 0; i < nb; i++)
        coef[i] *= L->gamma;
    for (int k = 0; k < h; k++) {
        double yr = 0;
        for (int i = 0; i < nb; i++)
            if (coef[i] != 0)
                yr += coef[i] * basis_dot(L, stride, p, h, h + k, i, gg);
        coef[k] += alpha[k] - L->rho[(L->head + k) % (int)m->o.memory] * yr;
    }
    for (int i = 0; i < nb; i++)
        coef[i] = -coef[i];
}

/* d = sum coef_i basis_i (g's term first); returns g . d, max |d_k| into *dmax and, in 3-D,
 * d's column means into dmean[3]. With @p x set (3-D, float evaluation), also pads x + t0 d into
 * m->xp for the line search's first trial (see mde_t.xp_t). */
static double form_direction(mde_t *m, const lbfgs_t *L, const double *g, double *d,
                             const double *coef, const int *p, int nb, double *dmax, double *dmean,
                             const double *x, double t0)
{
    const void *basis[2 * 64];
    double c[2 * 64 + 1];
    int h = (nb - 1) / 2;
    for (int k = 0; k < h; k++) {
        basis[k] = hist_s(m, p[k]);
        basis[h + k] = hist_y(m, p[k]);
    }
    c[0] = coef[2 * h];
    for (int k = 0; k < 2 * h; k++)
        c[1 + k] = coef[k];
    (void)L;
    vec_job_t j = {.m = m,
                   .pass = PASS_DIR,
                   .n = m->nx,
                   .chunk = m->vec_chunk,
                   .stride = m->o.dim == 3 ? 6 : 3,
                   .g = g,
                   .out = d,
                   .n_vec = 2 * h,
                   .bs = basis,
                   .coef = c,
                   .x = x,
                   .t = t0};
    double sums[6];
    vec_run(m, &j, sums);
    m->xp_t = x ? t0 : (double)NAN;
    *dmax = sums[2];
    for (int col = 0; col < 3 && j.stride == 6; col++)
        dmean[col] = sums[3 + col] / (double)m->n;
    return sums[0];
}

/*
 * In 3-D an accepted step x += t d is left pending: the next pair pass, which reads d anyway,
 * moves x by t (d - mean(d)), the step and the Centered projection in one, instead of two
 * passes over x on one thread. Before anything else reads x, this does it. @return 0.
 */
static int apply_step(const mde_t *m, double *x, double t, const double *d, const double *dmean,
                      int pending)
{
    if (pending)
        fastmath__mde_step3(x, t, d, dmean, m->n);
    return 0;
}

/*
 * The line search's first trial step. PyTorch: 1 / |g|_1 (at most 1) at a (re)start, else 1.
 * Here, when no pair is stored and the run did not just (re)start (every new pair was rejected
 * by y.s > 1e-10, which happens near an optimum), d = -g and a first trial of 1 is orders of
 * magnitude too long: each line search zoomed from 1 down to ~2e-6, 7 evaluations an iteration
 * (test_mde under ThreadSanitizer on an Intel Xeon: 134 evaluations for 30 iterations from
 * converged coordinates). Then the last accepted step scaled by the change in g . d, t_prev
 * (g_prev . d_prev) / (g . d) (Nocedal & Wright, Numerical Optimization, eq. 3.60), at most 1;
 * g . d = -|g|^2 for d = -g. Runs that store a pair every iteration never take this path.
 */
static double first_trial(int restart, int n_hist, double gl1, double gg, double t_prev,
                          double gtd_prev)
{
    if (restart)
        return gl1 > 1 ? 1 / gl1 : 1;
    if (n_hist == 0 && t_prev > 0 && gtd_prev < 0 && gg > 0)
        return fmin(1, t_prev * gtd_prev / -gg);
    return 1;
}

/* Long (about 170 lines) on purpose: one L-BFGS iteration is a sequence of steps sharing a
 * dozen workspace vectors; split, each piece would take most of them as arguments. */
static int run_internal(mde_t *m, double *x, mde_result_t *res)
{
    size_t nx = m->nx, stride = (size_t)m->o.memory + 1; /* x: mde_run() checked it is finite */
    if (m->o.memory > 64)
        return -EINVAL;
    center(m, x);
    if (m->gp) /* each evaluation's reduction clears what it read; mde_kernel_eval() does not */
        memset(m->gp, 0, padded_bytes(m) * m->o.n_threads);
    m->exact = 0;
    memset(m->passes, 0, sizeof(*m->passes));
    m->merged_u[0] = 0; /* no merged_warm_start() from another run */
    m->xp_t = NAN;
    int gb = B_G, gpb = B_GPREV; /* buffers of g and g_prev */
    double *g = buf(m, gb), *gprev = buf(m, gpb), *d = buf(m, B_D);
    lbfgs_t L = {.spare = (int)m->o.memory, .gamma = 1};
    L.ss = m->gram, L.sy = m->gram + stride * stride, L.yy = m->gram + 2 * stride * stride;
    for (int k = 0; k <= (int)m->o.memory; k++)
        L.phys[k] = k;
    unsigned evals = 1;
    double f = eval_internal(m, x, g), t_prev = 0, f_hist[10], coef[2 * 64 + 1], dmean[3];
    double gtd_prev = 0; /* g . d of the last iteration's direction (see first_trial) */
    int restart = 1, rc = 0, p[64], pending = 0; /* see apply_step */
    uint32_t it = 0;
    for (; it < m->o.max_iter; it++) {
        /* one pass: the new pair s = t_prev d_prev, y = g - g_prev (into the spare buffer),
         * the dot products of g with everything stored, and in 3-D the last step */
        const void *hs[64], *hy[64];
        int hp[64];
        for (int k = 0; k < L.n_hist; k++) {
            hp[k] = L.phys[(L.head + k) % (int)m->o.memory];
            hs[k] = hist_s(m, hp[k]);
            hy[k] = hist_y(m, hp[k]);
        }
        vec_job_t pj = {.m = m,
                        .pass = PASS_PAIR,
                        .n = nx,
                        .chunk = m->vec_chunk,
                        .stride = 8 + 2 * (size_t)L.n_hist,
                        .g = g,
                        .gprev = gprev,
                        .d = d,
                        .t = t_prev,
                        .sn = restart ? NULL : hist_s(m, L.spare),
                        .yn = restart ? NULL : hist_y(m, L.spare),
                        .n_vec = L.n_hist,
                        .bs = hs,
                        .by = hy,
                        .step = pending ? x : NULL,
                        .dmean = dmean};
        pending = 0;
        double sums[8 + 2 * 64], gps[64], gpy[64];
        vec_run(m, &pj, sums);
        double gg = sums[5], gl1 = sums[6], r = sqrt(gg);
        for (int k = 0; k < L.n_hist; k++) {
            gps[k] = L.sg[hp[k]], gpy[k] = L.yg[hp[k]];
            L.sg[hp[k]] = sums[8 + 2 * k];
            L.yg[hp[k]] = sums[8 + 2 * k + 1];
        }
        /* kept if y's > 1e-10 (the scratch buffer first, so a rejected pair never overwrites
         * the oldest stored one) */
        if (!restart && sums[1] > 1e-10) {
            int q = L.spare;
            for (int k = 0; k < L.n_hist; k++) {
                double a[4];
                size_t pk = (size_t)hp[k];
                derive_pair_dots(&L, stride, hp, L.n_hist, hp[k], t_prev, gps[k], gpy[k], a);
                L.ss[q * stride + pk] = L.ss[pk * stride + q] = a[0];
                L.sy[q * stride + pk] = a[1]; /* s_new . y_k */
                L.sy[pk * stride + q] = a[2]; /* s_k . y_new */
                L.yy[q * stride + pk] = L.yy[pk * stride + q] = a[3];
            }
            L.ss[q * stride + q] = sums[0], L.sy[q * stride + q] = sums[1];
            L.yy[q * stride + q] = sums[2];
            L.sg[q] = sums[3], L.yg[q] = sums[4];
            int slot = (L.head + L.n_hist) % (int)m->o.memory;
            if (L.n_hist == (int)m->o.memory)
                L.head = (L.head + 1) % (int)m->o.memory;
            else
                L.n_hist++;
            L.spare = L.phys[slot];
            L.phys[slot] = q;
            L.rho[slot] = 1.0 / sums[1];
            L.gamma = sums[1] / sums[2];
        }
        double gtd, dmax;
        int nb = 1;
        if (restart || L.n_hist == 0) {
            coef[0] = -1;
        } else {
            two_loop_coef(m, &L, gg, coef, p);
            nb = 2 * L.n_hist + 1;
        }
        double t0 = first_trial(restart, L.n_hist, gl1, gg, t_prev, gtd_prev);
        const double *pad = float_eval(m) ? x : NULL;
        gtd = form_direction(m, &L, g, d, coef, p, nb, &dmax, dmean, pad, t0);
        if (!(gtd < 0)) { /* not a descent direction: fall back to steepest descent */
            L.n_hist = 0;
            coef[0] = -1, nb = 1;
            gtd = form_direction(m, &L, g, d, coef, p, 1, &dmax, dmean, pad, t0);
        }
        keep_direction(&L, coef, p, nb);
        unsigned ls_evals = evals;
        int from_restart = restart; /* its first trial is a guess (t0 above): not counted */
        int in_double = !float_eval(m);
        ls_point_t pt = strong_wolfe(m, x, d, dmax, t0, f, gtd, gb, &evals);
        restart = 0;
        if (pt.t > 0) {
            if (m->o.dim == 3) {
                pending = 1; /* in the next pair pass, or apply_step() */
            } else {
                for (size_t k = 0; k < nx; k++)
                    x[k] += pt.t * d[k];
                center(m, x);
            }
            f = pt.f;
            gpb = gb; /* the old g becomes g_prev; the accepted gradient g */
            gb = pt.g;
            gprev = buf(m, gpb);
            g = buf(m, gb);
        } else {
            restart = 1; /* zero step: drop the memory */
            L.n_hist = 0;
            L.head = 0;
        }
        int float_done =
            float_eval(m) && (pt.t == 0 || (!from_restart && evals - ls_evals > FLOAT_LS_EVALS));
        int converged = float_done && m->o.ftol >= FTOL_FLOAT_STOP;
        if (float_done && !converged) {
            pending = apply_step(m, x, pt.t, d, dmean, pending);
            m->exact = 1; /* see mde_t.exact: F and g at x again, in double, and a fresh start */
            restart = 1, L.n_hist = 0, L.head = 0;
            f = eval_internal(m, x, g);
            evals++;
        }
        t_prev = pt.t;
        gtd_prev = gtd;
        if (m->o.trace)
            m->o.trace[it] = f;
        if (m->o.progress && (it % 10 == 0) &&
            m->o.progress(m->o.progress_ud, "mde", (double)it / m->o.max_iter)) {
            rc = ATL_ECANCELED;
            it++;
            break;
        }
        /* In double, a failed search along steepest descent (a restart) leaves nothing to try:
         * converged as far as the line search resolves (PyTorch's L-BFGS stops there too, by
         * tolerance_change, which PyMDE turns off). After any other direction the memory was
         * dropped above and the next iteration tries steepest descent: a badly scaled memory
         * can give a tiny direction far from an optimum (review of 5f97a70: stopping there too
         * left F at 0.141 with |g| 0.29, where steepest descent went on to F 0). */
        int stuck = pt.t == 0 && in_double && from_restart;
        if (r <= m->o.eps || converged || stuck) {
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
    pending = apply_step(m, x, t_prev, d, dmean, pending);
    if (res) {
        res->iterations = it;
        res->evaluations = evals;
        res->distortion = eval_exact(m, x, g);
        res->grad_norm = sqrt(dot(g, g, nx));
        res->n_attractive = m->m_attr;
        res->n_repulsive = m->m - m->m_attr;
        res->passes = *m->passes;
    }
    if (rc == 0 && m->o.progress)
        m->o.progress(m->o.progress_ud, "mde", 1.0);
    return rc;
}

int mde_run(mde_t *m, double *x, mde_result_t *res)
{
    if (!all_finite(x, m->nx))
        return -EINVAL;
    to_internal(m, x, m->xo);
    int rc = run_internal(m, m->xo, res);
    to_external(m, m->xo, x);
    return rc;
}
