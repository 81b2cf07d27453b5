/*
 * cooc.c: exact co-occurrence rows from the profiles (see cooc.h).
 *
 * Each thread owns a dense accumulator over all items plus a stamp per item (the row + 1 that
 * last touched it), so starting a row costs nothing and a row's touched columns are listed as
 * they first appear. They are then put in order by a radix sort, or, when the row touches
 * more than 1/16 of the items, by scanning the stamps in column order. Every weight term is an
 * integer (weight_pair), so the sums do not depend on the order users are visited: a row is
 * bit for bit what incremental ingestion leaves in S.
 */
#include "algo/cooc.h"

#include <errno.h>
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
    by_pp_t *by_pp;       /* each user's entries ordered by pp (ties by item) */
    uint64_t *item_start; /* n_items + 1 */
    uint32_t *user;       /* users of each item, increasing */
    float *pp;            /* their pp for that item */
    uint64_t *terms;      /* per item: sum of its users' profile lengths */
};

static int cmp_by_pp(const void *x, const void *y)
{
    const by_pp_t *a = x, *b = y;
    if (a->pp != b->pp)
        return a->pp < b->pp ? -1 : 1;
    return (a->item > b->item) - (a->item < b->item);
}

int cooc_index_new(const cooc_profiles_t *p, cooc_index_t **out)
{
    if (!p || (p->n_users && (!p->user_start || !p->item || !p->pp)))
        return -EINVAL;
    uint64_t n_entries = p->n_users ? p->user_start[p->n_users] : 0;
    cooc_index_t *ix = calloc(1, sizeof(*ix));
    if (!ix)
        return -ENOMEM;
    ix->p = *p;
    ix->item_start = calloc((size_t)p->n_items + 1, sizeof(*ix->item_start));
    ix->terms = calloc((size_t)p->n_items + 1, sizeof(*ix->terms));
    ix->user = malloc((n_entries ? n_entries : 1) * sizeof(*ix->user));
    ix->pp = malloc((n_entries ? n_entries : 1) * sizeof(*ix->pp));
    if (!ix->item_start || !ix->terms || !ix->user || !ix->pp) {
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
            if (p->item[k] >= p->n_items || (k > b && p->item[k] <= p->item[k - 1])) {
                cooc_index_free(ix);
                return -EINVAL;
            }
            ix->item_start[p->item[k] + 1]++;
            ix->terms[p->item[k]] += e - b;
        }
    }
    for (uint32_t i = 0; i < p->n_items; i++)
        ix->item_start[i + 1] += ix->item_start[i];
    uint64_t *fill = malloc(((size_t)p->n_items + 1) * sizeof(*fill));
    if (!fill) {
        cooc_index_free(ix);
        return -ENOMEM;
    }
    memcpy(fill, ix->item_start, ((size_t)p->n_items + 1) * sizeof(*fill));
    for (uint32_t u = 0; u < p->n_users; u++)
        for (uint64_t k = p->user_start[u]; k < p->user_start[u + 1]; k++) {
            uint64_t at = fill[p->item[k]]++;
            ix->user[at] = u;
            ix->pp[at] = p->pp[k];
        }
    free(fill);
    ix->by_pp = malloc((n_entries ? n_entries : 1) * sizeof(*ix->by_pp));
    if (!ix->by_pp) {
        cooc_index_free(ix);
        return -ENOMEM;
    }
    for (uint32_t u = 0; u < p->n_users; u++) {
        by_pp_t *v = ix->by_pp + p->user_start[u];
        size_t n = p->user_start[u + 1] - p->user_start[u];
        for (size_t k = 0; k < n; k++)
            v[k] = (by_pp_t){p->pp[p->user_start[u] + k], p->item[p->user_start[u] + k]};
        if (n > 1)
            qsort(v, n, sizeof(*v), cmp_by_pp);
    }
    *out = ix;
    return 0;
}

void cooc_index_free(cooc_index_t *ix)
{
    if (!ix)
        return;
    free(ix->item_start);
    free(ix->user);
    free(ix->pp);
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

static void chunk_destroy(cooc_chunk_t *c)
{
    free(c->row_start);
    free(c->col);
    free(c->s);
    memset(c, 0, sizeof(*c));
}

void cooc_block_destroy(cooc_block_t *b)
{
    for (size_t i = 0; i < b->n_chunks; i++)
        chunk_destroy(&b->chunks[i]);
    free(b->chunks);
    cooc_block_init(b);
}

/* ---- one row ------------------------------------------------------------------------------ */

/* an item's accumulator and the stamp saying which row it holds, side by side: one cache line
 * touched per term instead of two */
typedef struct slot {
    int64_t acc;
    uint32_t stamp;
    uint32_t reserved;
} slot_t;

typedef struct workspace {
    slot_t *slot;
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

static int chunk_reserve(cooc_chunk_t *c, size_t more)
{
    if (c->n + more <= c->cap)
        return 0;
    size_t cap = c->cap ? c->cap : 4096;
    while (cap < c->n + more)
        cap *= 2;
    uint32_t *col = realloc(c->col, cap * sizeof(*col));
    if (!col)
        return -ENOMEM;
    c->col = col;
    int64_t *s = realloc(c->s, cap * sizeof(*s));
    if (!s)
        return -ENOMEM;
    c->s = s;
    c->cap = cap;
    return 0;
}

static unsigned bits_for(uint32_t n)
{
    unsigned b = 1;
    while (b < 32 && ((uint64_t)1 << b) < n)
        b++;
    return b;
}

/* First position in v[0..n) whose pp is >= @p x. */
static size_t lower_bound_pp(const by_pp_t *v, size_t n, double x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((double)v[mid].pp < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * A pair weighs 0 unless min(a, b) > max(a, b) / 2, so for an entry of pp a only partners with
 * pp in (a / 2, 2a) count: each user's entries are ordered by pp, and the loop runs over the
 * window [0.499 a, 2.002 a] only (the margins keep every nonzero term whatever the rounding;
 * weight_pair_inline decides each term exactly).
 */
static int row_compute(const cooc_index_t *ix, workspace_t *w, uint32_t r, cooc_chunk_t *out)
{
    const cooc_profiles_t *p = &ix->p;
    const uint32_t stamp = r + 1;
    size_t nt = 0;
    for (uint64_t k = ix->item_start[r]; k < ix->item_start[r + 1]; k++) {
        uint32_t u = ix->user[k];
        float a = ix->pp[k];
        const by_pp_t *v = ix->by_pp + p->user_start[u];
        size_t n = p->user_start[u + 1] - p->user_start[u];
        double top = (double)a * 2.002;
        for (size_t e = lower_bound_pp(v, n, (double)a * 0.499); e < n && (double)v[e].pp <= top;
             e++) {
            uint32_t t = v[e].item;
            if (t == r)
                continue;
            int64_t wv = weight_pair_inline(a, v[e].pp);
            if (wv == 0)
                continue;
            slot_t *sl = &w->slot[t];
            if (sl->stamp != stamp) {
                sl->stamp = stamp;
                sl->acc = wv;
                w->touched[nt++] = t;
            } else {
                sl->acc += wv;
            }
        }
    }
    if (chunk_reserve(out, nt) != 0)
        return -ENOMEM;
    if (nt * 16 > p->n_items) { /* a scan of the stamps costs less than the sort */
        nt = 0;
        for (uint32_t t = 0; t < p->n_items; t++)
            if (w->slot[t].stamp == stamp)
                w->touched[nt++] = t;
    } else {
        radix_u32(w->touched, w->tmp, nt, bits_for(p->n_items));
    }
    for (size_t i = 0; i < nt; i++) {
        uint32_t t = w->touched[i];
        if (w->slot[t].acc == 0) /* weights are > 0 here, so never; kept for safety */
            continue;
        out->col[out->n] = t;
        out->s[out->n] = w->slot[t].acc;
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
    c->lo = j->lo + (uint32_t)begin;
    c->hi = j->lo + (uint32_t)end;
    c->n = 0;
    c->row_start[0] = 0;
    for (uint32_t r = c->lo; r < c->hi; r++) {
        int rc = row_compute(j->ix, &j->ws[tid], r, c);
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

int cooc_block_compute(const cooc_index_t *ix, uint32_t lo, uint32_t hi, unsigned n_threads,
                       cooc_block_t *b)
{
    if (!ix || !b || lo > hi || hi > ix->p.n_items)
        return -EINVAL;
    if (n_threads < 1)
        n_threads = 1;
    size_t n_items = ix->p.n_items ? ix->p.n_items : 1;
    size_t rows = hi - lo, n_chunks = (rows + ROWS_PER_CHUNK - 1) / ROWS_PER_CHUNK;
    if (n_chunks > b->n_chunks) {
        cooc_chunk_t *c = realloc(b->chunks, n_chunks * sizeof(*c));
        if (!c)
            return -ENOMEM;
        memset(c + b->n_chunks, 0, (n_chunks - b->n_chunks) * sizeof(*c));
        b->chunks = c;
        b->n_chunks = n_chunks;
    }
    for (size_t i = 0; i < b->n_chunks; i++) {
        b->chunks[i].n = 0;
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
    for (size_t i = 0; rc == 0 && i < n_chunks; i++)
        b->entries += b->chunks[i].n;
    /* chunks past this block's rows stay empty (lo == hi) */
    return rc;
}
