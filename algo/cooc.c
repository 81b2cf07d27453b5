/*
 * cooc.c: exact co-occurrence rows from the profiles (see cooc.h).
 *
 * Each thread owns a dense accumulator over all items: one 64-bit word per item holding the
 * stamp of the row that last touched it (row + 1, in the high bits) and that row's sum (the low
 * bits), so starting a row costs nothing, a term touches one 8-byte word (the array of a
 * full-scale store, 180k items, fits a 2 MiB L2 cache), and a row's touched columns are listed
 * as they first appear. They are then put in order by a radix sort, or, when the row touches
 * more than 1/16 of the items, by scanning the stamps in column order. Every weight term is an
 * integer (weight_pair), so the sums do not depend on the order users are visited: a row is
 * bit for bit what incremental ingestion leaves in S.
 *
 * The work is memory-bound: a row visits each of its users' profiles once, at a random place
 * in memory. So the index keeps, for each (item, user) entry, where that entry sits in the
 * user's pp-ordered copy: the row starts there and scans outwards (no binary search: the scan
 * stops at the NaN that separates users, or where the pp window ends), and the copy of the
 * user a few entries ahead is prefetched.
 */
#include "algo/cooc.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/par.h"
#include "algo/weight.h"

/* a profile entry in a user's pp-ordered copy */
typedef struct by_pp {
    float pp;
    uint32_t item;
} by_pp_t;

struct cooc_index {
    cooc_profiles_t p;
    unsigned flags;
    /* each user's entries ordered by pp (ties by item), or with COOC_UPPER by item, user after
     * user, with a separator (pp NaN, item UINT32_MAX) before, between and after them: user
     * u's run starts at user_start[u] + u + 1 */
    by_pp_t *by_pp;
    uint64_t *item_start; /* n_items + 1 */
    uint64_t *at;         /* for each item, where each of its entries sits in by_pp */
    uint64_t *terms;      /* per item: sum of its users' profile lengths */
    unsigned acc_bits;    /* an accumulator word: stamp << acc_bits | sum */
};

static int cmp_by_pp(const void *x, const void *y)
{
    const by_pp_t *a = x, *b = y;
    if (a->pp != b->pp)
        return a->pp < b->pp ? -1 : 1;
    return (a->item > b->item) - (a->item < b->item);
}

static unsigned bits_for(uint64_t n)
{
    unsigned b = 1;
    while (b < 64 && ((uint64_t)1 << b) < n)
        b++;
    return b;
}

/*
 * The accumulator word's split: the stamp needs bits for n_items + 1 (row + 1), the sum of a
 * row is at most (its users) x 2 WEIGHT_ONE (one term per user and column). -EOVERFLOW when
 * both do not fit in 64 bits (over 5e8 users of one item with 180k items: never in practice).
 */
static int choose_acc_bits(const cooc_index_t *ix, unsigned *out)
{
    uint64_t max_users = 0;
    for (uint32_t i = 0; i < ix->p.n_items; i++)
        if (ix->item_start[i + 1] - ix->item_start[i] > max_users)
            max_users = ix->item_start[i + 1] - ix->item_start[i];
    unsigned stamp_bits = bits_for((uint64_t)ix->p.n_items + 2);
    unsigned sum_bits = bits_for(max_users * 2 * WEIGHT_ONE + 1);
    if (stamp_bits + sum_bits > 64)
        return -EOVERFLOW;
    *out = 64 - stamp_bits;
    return 0;
}

int cooc_index_new(const cooc_profiles_t *p, unsigned flags, cooc_index_t **out)
{
    if (!p || (p->n_users && (!p->user_start || !p->item || !p->pp)) || (flags & ~COOC_UPPER))
        return -EINVAL;
    uint64_t n_entries = p->n_users ? p->user_start[p->n_users] : 0;
    cooc_index_t *ix = calloc(1, sizeof(*ix));
    if (!ix)
        return -ENOMEM;
    ix->p = *p;
    ix->flags = flags;
    ix->item_start = calloc((size_t)p->n_items + 1, sizeof(*ix->item_start));
    ix->terms = calloc((size_t)p->n_items + 1, sizeof(*ix->terms));
    ix->at = malloc((n_entries ? n_entries : 1) * sizeof(*ix->at));
    ix->by_pp = malloc((n_entries + p->n_users + 1) * sizeof(*ix->by_pp));
    if (!ix->item_start || !ix->terms || !ix->at || !ix->by_pp) {
        cooc_index_free(ix);
        return -ENOMEM;
    }
    for (uint32_t u = 0; u < p->n_users; u++) {
        uint64_t b = p->user_start[u], e = p->user_start[u + 1];
        if (e < b || e > n_entries) {
            cooc_index_free(ix);
            return -EINVAL;
        }
        for (uint64_t k = b; k < e; k++) {
            /* pp is finite and >= 0 (store/event.c admits nothing else): the scans rely on
             * NaN being the separator only */
            if (p->item[k] >= p->n_items || (k > b && p->item[k] <= p->item[k - 1]) ||
                !isfinite(p->pp[k]) || p->pp[k] < 0) {
                cooc_index_free(ix);
                return -EINVAL;
            }
            ix->item_start[p->item[k] + 1]++;
            ix->terms[p->item[k]] += e - b;
        }
    }
    for (uint32_t i = 0; i < p->n_items; i++)
        ix->item_start[i + 1] += ix->item_start[i];
    int rc = choose_acc_bits(ix, &ix->acc_bits);
    uint64_t *fill = rc == 0 ? malloc(((size_t)p->n_items + 1) * sizeof(*fill)) : NULL;
    if (!fill) {
        cooc_index_free(ix);
        return rc ? rc : -ENOMEM;
    }
    memcpy(fill, ix->item_start, ((size_t)p->n_items + 1) * sizeof(*fill));
    by_pp_t sep = {NAN, UINT32_MAX};
    ix->by_pp[0] = sep;
    for (uint32_t u = 0; u < p->n_users; u++) {
        uint64_t b = p->user_start[u], n = p->user_start[u + 1] - b, run = b + u + 1;
        by_pp_t *v = ix->by_pp + run;
        for (uint64_t k = 0; k < n; k++)
            v[k] = (by_pp_t){p->pp[b + k], p->item[b + k]};
        if (n > 1 && !(flags & COOC_UPPER))
            qsort(v, n, sizeof(*v), cmp_by_pp);
        v[n] = sep;
        for (uint64_t k = 0; k < n; k++)
            ix->at[fill[v[k].item]++] = run + k;
    }
    free(fill);
    *out = ix;
    return 0;
}

void cooc_index_free(cooc_index_t *ix)
{
    if (!ix)
        return;
    free(ix->item_start);
    free(ix->at);
    free(ix->terms);
    free(ix->by_pp);
    free(ix);
}

uint64_t cooc_index_row_terms(const cooc_index_t *ix, uint32_t r)
{
    return r < ix->p.n_items ? ix->terms[r] : 0;
}

uint32_t cooc_index_row_users(const cooc_index_t *ix, uint32_t r)
{
    return r < ix->p.n_items ? (uint32_t)(ix->item_start[r + 1] - ix->item_start[r]) : 0;
}

void cooc_block_init(cooc_block_t *b)
{
    memset(b, 0, sizeof(*b));
}

void cooc_block_destroy(cooc_block_t *b)
{
    for (size_t i = 0; i < b->n_chunks; i++)
        free(b->chunks[i].row_start);
    free(b->chunks);
    for (size_t t = 0; t < b->n_arenas; t++) {
        free(b->arenas[t].col);
        free(b->arenas[t].s);
    }
    free(b->arenas);
    cooc_block_init(b);
}

/* ---- one row ------------------------------------------------------------------------------ */

typedef struct workspace {
    uint64_t *slot; /* per item: stamp << acc_bits | sum (choose_acc_bits) */
    uint32_t *touched, *tmp;
} workspace_t;

/* LSD radix sort of @p n u32 values below 2^bits (11-bit digits). */
static void radix_u32(uint32_t *v, uint32_t *tmp, size_t n, unsigned bits)
{
    for (unsigned shift = 0; shift < bits; shift += 11) {
        size_t count[2048] = {0};
        for (size_t i = 0; i < n; i++)
            count[(v[i] >> shift) & 2047]++;
        size_t sum = 0;
        for (size_t d = 0; d < 2048; d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[count[(v[i] >> shift) & 2047]++] = v[i];
        uint32_t *t = v;
        v = tmp;
        tmp = t;
    }
    /* an odd number of passes leaves the result in the scratch buffer */
    if (((bits + 10) / 11) & 1)
        memcpy(tmp, v, n * sizeof(*v));
}

/*
 * Room for @p more entries in a thread's arena. One growing array a thread, kept across
 * blocks, rather than one a chunk: the chunks' arrays (thousands of them, each holding
 * different rows from block to block) were reallocated 22k times in a full-scale S check,
 * copying 1.5 GB into fresh pages (~10% of its time in page faults).
 */
static int arena_reserve(cooc_arena_t *a, size_t more)
{
    if (a->n + more <= a->cap)
        return 0;
    size_t cap = a->cap ? a->cap : 65536;
    while (cap < a->n + more)
        cap *= 2;
    uint32_t *col = realloc(a->col, cap * sizeof(*col));
    if (!col)
        return -ENOMEM;
    a->col = col;
    int64_t *s = realloc(a->s, cap * sizeof(*s));
    if (!s)
        return -ENOMEM;
    a->s = s;
    a->cap = cap;
    return 0;
}

/* Add term @p wv to column @p t of row @p stamp, listing t the first time the row touches it. */
static inline void accumulate(workspace_t *w, unsigned acc_bits, uint64_t stamp, uint32_t t,
                              int64_t wv, size_t *nt)
{
    /* without a branch (a select and a conditional count): whether the slot is fresh is as
     * good as random */
    uint64_t *sl = &w->slot[t], v = *sl;
    int fresh = v >> acc_bits != stamp;
    *sl = fresh ? stamp << acc_bits | (uint64_t)wv : v + (uint64_t)wv;
    w->touched[*nt] = t;
    *nt += (size_t)fresh;
}

#define COOC_PREFETCH 8 /* users ahead whose profile copy is prefetched */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATL_NO_CLONES) &&  \
    !defined(__SANITIZE_THREAD__) /* TSan instruments the ifunc resolver, which runs before it */
#define COOC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define COOC_CLONES
#endif

/*
 * weight_pair_inline(a, e[i].pp) for a whole run, into @p wv: the same operations (IEEE
 * division and comparisons, no contraction under -std=c11), written without a branch so that the
 * compiler divides 8 pairs at once (AVX-512) or 4 (AVX2); x lies in [-2^17, 2^17], so it converts
 * through int32 (a packed conversion AVX2 has). Built for each ISA by target_clones: a machine
 * always runs the same clone, and every clone gives the scalar function's values.
 */
COOC_CLONES
static void run_weights(float a, const by_pp_t *restrict e, size_t n, int32_t *restrict wv)
{
    const double pa = a;
    for (size_t i = 0; i < n; i++) {
        double b = e[i].pp;
        double hi = pa > b ? pa : b, diff = pa > b ? pa - b : b - pa;
        double d = diff / (hi > 0.0 ? hi : 1.0); /* hi = 0: both 0, d = 0 as in the scalar */
        double x = 2.0 * (1.0 - d / 0.5) * WEIGHT_ONE;
        int32_t r = (int32_t)x;
        int32_t w = r + (x - (double)r >= 0.5);
        wv[i] = w & -(int32_t)(d < 0.5); /* a mask, not a select: GCC vectorises only this */
    }
}

/* The terms of the row's entry of pp @p a with @p len entries of its user's run: their weights
 * at once (run_weights), then accumulated. A zero term (pp ratio beyond 2) is added too, without
 * a branch: a slot that only zero terms touched holds 0 and is left out of the row
 * (row_compute). */
static inline void add_run(workspace_t *w, unsigned acc_bits, uint64_t stamp, float a,
                           const by_pp_t *run, size_t len, size_t *nt)
{
    int32_t *wv = (int32_t *)w->tmp; /* free until row_compute sorts */
    run_weights(a, run, len, wv);
    for (size_t i = 0; i < len; i++)
        accumulate(w, acc_bits, stamp, run[i].item, wv[i], nt);
}

/*
 * A row: every user holding its item, one run each (the next users' runs are prefetched).
 * Full rows: a pair weighs 0 unless min(a, b) > max(a, b) / 2, so for an entry of pp a only
 * partners with pp in (a / 2, 2a) count: each user's run is ordered by pp, and the scan runs
 * outwards from the entry itself over the window [0.499 a, 2.002 a] only (the margins keep every
 * nonzero term whatever the rounding; run_weights decides each term exactly); the NaN
 * between users fails both window tests, so a scan never leaves its user. The upper triangle:
 * in a user's item-ordered run the partners t > r are the entries after r's own, every one
 * weighed (about 3 in 4 fall in the pp window): half the pairs of the full row.
 */
static size_t row_terms(const cooc_index_t *ix, workspace_t *w, uint32_t r)
{
    const uint64_t k0 = ix->item_start[r], k1 = ix->item_start[r + 1];
    const by_pp_t *v = ix->by_pp;
    const int upper = ix->flags & COOC_UPPER;
    const uint64_t stamp = (uint64_t)r + 1;
    const unsigned acc_bits = ix->acc_bits;
    size_t nt = 0;
    for (uint64_t k = k0; k < k1; k++) {
        if (k + COOC_PREFETCH < k1) { /* the run's first 4 lines: ~32 entries */
            const char *pf = (const char *)&v[ix->at[k + COOC_PREFETCH]];
            __builtin_prefetch(pf);
            __builtin_prefetch(pf + 64);
            __builtin_prefetch(pf + 128);
            __builtin_prefetch(pf + 192);
        }
        uint64_t at = ix->at[k];
        float a = v[at].pp;
        if (upper) { /* the run after the entry */
            uint64_t e = at + 1;
            while (v[e].item != UINT32_MAX)
                e++;
            add_run(w, acc_bits, stamp, a, &v[at + 1], e - at - 1, &nt);
            continue;
        }
        /* the window on either side of the entry (the sums are integers: any order) */
        double lo = (double)a * 0.499, hi = (double)a * 2.002;
        uint64_t b = at, e = at + 1;
        while ((double)v[b - 1].pp >= lo)
            b--;
        while ((double)v[e].pp <= hi)
            e++;
        add_run(w, acc_bits, stamp, a, &v[b], at - b, &nt);
        add_run(w, acc_bits, stamp, a, &v[at + 1], e - at - 1, &nt);
    }
    return nt;
}

/* Row @p r's entries appended to arena @p a (counted in @p out). */
static int row_compute(const cooc_index_t *ix, workspace_t *w, uint32_t r, cooc_arena_t *a,
                       cooc_chunk_t *out)
{
    const uint64_t stamp = (uint64_t)r + 1;
    const unsigned acc_bits = ix->acc_bits;
    size_t nt = row_terms(ix, w, r);
    if (arena_reserve(a, nt) != 0)
        return -ENOMEM;
    if (nt * 16 > ix->p.n_items) { /* a scan of the stamps costs less than the sort */
        nt = 0;
        for (uint32_t t = ix->flags & COOC_UPPER ? r + 1 : 0; t < ix->p.n_items; t++)
            if (w->slot[t] >> acc_bits == stamp)
                w->touched[nt++] = t;
    } else {
        radix_u32(w->touched, w->tmp, nt, bits_for(ix->p.n_items));
    }
    const uint64_t mask = ((uint64_t)1 << acc_bits) - 1;
    for (size_t i = 0; i < nt; i++) {
        uint32_t t = w->touched[i];
        int64_t acc = (int64_t)(w->slot[t] & mask);
        if (acc == 0) /* touched by zero terms only (add_run) */
            continue;
        a->col[a->n] = t;
        a->s[a->n] = acc;
        a->n++;
        out->n++;
    }
    return 0;
}

/* ---- a block of rows ---------------------------------------------------------------------- */

#define ROWS_PER_CHUNK 8

typedef struct block_job {
    const cooc_index_t *ix;
    workspace_t *ws;
    cooc_block_t *b;
    uint32_t lo;
} block_job_t;

static int block_body(void *ud, unsigned tid, size_t begin, size_t end)
{
    block_job_t *j = ud;
    cooc_chunk_t *c = &j->b->chunks[begin / ROWS_PER_CHUNK];
    cooc_arena_t *a = &j->b->arenas[tid];
    c->lo = j->lo + (uint32_t)begin;
    c->hi = j->lo + (uint32_t)end;
    c->n = 0;
    c->tid = tid, c->off = a->n;
    c->row_start[0] = 0;
    for (uint32_t r = c->lo; r < c->hi; r++) {
        int rc = row_compute(j->ix, &j->ws[tid], r, a, c);
        if (rc != 0)
            return rc;
        c->row_start[r - c->lo + 1] = c->n;
    }
    return 0;
}

static void workspaces_free(workspace_t *ws, unsigned n)
{
    for (unsigned i = 0; ws && i < n; i++) {
        free(ws[i].slot);
        free(ws[i].touched);
        free(ws[i].tmp);
    }
    free(ws);
}

/* Grow the array *@p p of *@p have elements of @p size bytes to @p want, the new ones zeroed
 * (nothing if it has as many). */
static int grow_zeroed(void **p, size_t *have, size_t want, size_t size)
{
    if (want <= *have)
        return 0;
    char *q = realloc(*p, want * size);
    if (!q)
        return -ENOMEM;
    memset(q + *have * size, 0, (want - *have) * size);
    *p = q;
    *have = want;
    return 0;
}

int cooc_block_compute(const cooc_index_t *ix, uint32_t lo, uint32_t hi, unsigned n_threads,
                       cooc_block_t *b)
{
    if (!ix || !b || lo > hi || hi > ix->p.n_items)
        return -EINVAL;
    if (n_threads < 1)
        n_threads = 1;
    size_t n_items = ix->p.n_items ? ix->p.n_items : 1;
    size_t rows = hi - lo, n_chunks = (rows + ROWS_PER_CHUNK - 1) / ROWS_PER_CHUNK;
    if (grow_zeroed((void **)&b->chunks, &b->n_chunks, n_chunks, sizeof(*b->chunks)) ||
        grow_zeroed((void **)&b->arenas, &b->n_arenas, n_threads, sizeof(*b->arenas)))
        return -ENOMEM;
    for (size_t t = 0; t < b->n_arenas; t++)
        b->arenas[t].n = 0;
    for (size_t i = 0; i < b->n_chunks; i++) {
        b->chunks[i].n = 0;
        b->chunks[i].col = NULL, b->chunks[i].s = NULL;
        b->chunks[i].tid = 0, b->chunks[i].off = 0;
        b->chunks[i].lo = b->chunks[i].hi = lo;
        if (!b->chunks[i].row_start &&
            !(b->chunks[i].row_start = malloc((ROWS_PER_CHUNK + 1) * sizeof(uint64_t))))
            return -ENOMEM;
        b->chunks[i].row_start[0] = 0;
    }
    workspace_t *ws = calloc(n_threads, sizeof(*ws));
    int rc = ws ? 0 : -ENOMEM;
    for (unsigned i = 0; rc == 0 && i < n_threads; i++) {
        ws[i].slot = calloc(n_items, sizeof(*ws[i].slot));
        ws[i].touched = malloc(n_items * sizeof(*ws[i].touched));
        ws[i].tmp = malloc(n_items * sizeof(*ws[i].tmp));
        if (!ws[i].slot || !ws[i].touched || !ws[i].tmp)
            rc = -ENOMEM;
    }
    block_job_t job = {ix, ws, b, lo};
    if (rc == 0 && rows > 0)
        rc = par_for(rows, ROWS_PER_CHUNK, n_threads, block_body, &job);
    workspaces_free(ws, n_threads);
    b->entries = 0;
    for (size_t i = 0; rc == 0 && i < n_chunks; i++) { /* the arenas no longer move */
        cooc_chunk_t *c = &b->chunks[i];
        if (c->n > 0)
            c->col = b->arenas[c->tid].col + c->off, c->s = b->arenas[c->tid].s + c->off;
        b->entries += c->n;
    }
    /* chunks past this block's rows stay empty (lo == hi) */
    return rc;
}
