/*
 * refresh.c: the pipeline from the store to a published snapshot, full or incremental.
 *
 * What an incremental refresh may skip, and why the result is still exact:
 *  - T. A row of T is a function of its S row's entries above 2 and the retained set (DESIGN
 *    §3). A change of S[i][j] that was or is above 2 marks rows i and j dirty (one at or below
 *    2 before and after cannot change T: store__cooc_apply), so with an unchanged retained set
 *    only dirty rows can have new pruned lists: those rows are re-read, the others kept from
 *    the last run. When the retained set changed, columns of rows that are not dirty can change
 *    too: new items' rows are read with their columns, and the rows that may keep them or kept
 *    a removed item. The rows of T that can differ are rebuilt from the edges whose state
 *    may have changed (graph_update_delta), the others carried over.
 *  - kNN. A row's list changes only through a changed edge (a, b, w) with a = the source or a
 *    node of its list and d(s, a) + w <= its k-th distance (knn_rows_affected, proof in
 *    knn.h); the nearest changed edge at a node is where its row of T parts from the last one
 *    (graph_row_change_min). Only such rows, new items' and rows that lost a neighbour are
 *    recomputed. max_distance stays the one of the last full kNN (DESIGN §5 bound from T's
 *    75th percentile), recomputed by every full refresh; a last full kNN without one (T had no
 *    edge) is not carried over: this run's kNN is a full one.
 * The tests compare incremental results with a from-scratch recomputation.
 */
#include "pipeline/refresh.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "algo/corpus.h"
#include "algo/graph.h"
#include "algo/knn.h"
#include "algo/layout.h"
#include "algo/mde.h"
#include "algo/par.h"
#include "algo/quality.h"
#include "algo/sortdef.h"
#include "pipeline/clock.h"
#include "pipeline/embed.h"

#define REFRESH_K   10
#define REFRESH_DIM 3
#define WARM_FTOL   1e-4

#define READ_AGAIN_FULL 1 /* read_incremental(): fall back to reading every row */

struct refresh_state {
    int valid;
    uint32_t n;
    uint64_t *keys; /* retained items of the last run, sorted */
    uint32_t *cnt;  /* pruned T entries per row (directed, before symmetrisation) */
    uint32_t **col;
    float **dist;
    graph_t t;
    graph_t spare; /* the T before t: its buffers take the next incremental T (graph_update) */
    knn_t knn;
};

void refresh_opts_default(refresh_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->keep = 10;
    o->seed = 42;
    o->if_dirty = 0;
}

refresh_state_t *refresh_state_new(void)
{
    return calloc(1, sizeof(refresh_state_t));
}

static void rows_free(uint32_t n, uint32_t *cnt, uint32_t **col, float **dist)
{
    for (uint32_t i = 0; col && i < n; i++)
        free(col[i]), free(dist[i]);
    free(cnt), free(col), free(dist);
}

static void state_clear(refresh_state_t *st)
{
    rows_free(st->n, st->cnt, st->col, st->dist);
    free(st->keys);
    graph_destroy(&st->t);
    graph_destroy(&st->spare);
    knn_destroy(&st->knn);
    memset(st, 0, sizeof(*st));
}

void refresh_state_free(refresh_state_t *st)
{
    if (!st)
        return;
    state_clear(st);
    free(st);
}

/* ---- reading T ------------------------------------------------------------------------- */

#define READ_THREADS 2 /* rows are read and pruned on 2 threads (store_retained_rows_par) */

/* One reading thread's pruning buffers and count. */
typedef struct read_tmp {
    graph_prune_slot_t *scratch;
    uint32_t *col;
    float *dist;
    size_t cap;
    uint32_t rows_read;
} read_tmp_t;

/* Pruned rows being read, on READ_THREADS threads: row arrays are sized for every retained item
 * before the rows come (read_begin_cb), each row is written by the one thread that read it.
 * Rows flagged in `collect` (items new to the retained set) also report every column with
 * S > min_s, the rows that may now keep them: a read that collects runs on one thread. */
typedef struct reader {
    uint32_t cap;
    uint32_t *cnt;
    uint32_t **col;
    float **dist;
    read_tmp_t tmp[READ_THREADS];
    uint32_t expect;
    const uint8_t *collect;
    uint32_t n_collect;
    uint8_t *affected; /* per position: a row that must be (re-)read */
    const refresh_opts_t *o;
} reader_t;

static uint32_t reader_rows_read(const reader_t *r)
{
    uint32_t n = 0;
    for (int t = 0; t < READ_THREADS; t++)
        n += r->tmp[t].rows_read;
    return n;
}

static int reader_grow(reader_t *r, uint32_t need)
{
    if (need <= r->cap)
        return 0;
    uint32_t cap = need * 2 + 64;
    uint32_t *cnt = realloc(r->cnt, cap * sizeof(*cnt));
    if (cnt)
        r->cnt = cnt;
    uint32_t **col = cnt ? realloc(r->col, cap * sizeof(*col)) : NULL;
    if (col)
        r->col = col;
    float **dist = col ? realloc(r->dist, cap * sizeof(*dist)) : NULL;
    if (!dist)
        return -ENOMEM;
    r->dist = dist;
    for (uint32_t i = r->cap; i < cap; i++)
        r->cnt[i] = 0, r->col[i] = NULL, r->dist[i] = NULL;
    r->cap = cap;
    return 0;
}

static int read_begin_cb(void *ud, uint32_t n_retained)
{
    return reader_grow(ud, n_retained + 1);
}

static int read_row_cb(void *ud, unsigned tid, uint32_t row, const uint32_t *cols, const double *s,
                       size_t n)
{
    reader_t *r = ud;
    read_tmp_t *t = &r->tmp[tid];
    if (row >= r->cap || tid >= READ_THREADS)
        return -EINVAL;              /* read_begin_cb sized the rows */
    if (n > t->cap || !t->scratch) { /* also for a row with no entries (n == 0) */
        free(t->scratch), free(t->col), free(t->dist);
        t->cap = n * 2 + 16;
        t->scratch = malloc(t->cap * sizeof(*t->scratch));
        t->col = malloc(t->cap * sizeof(uint32_t));
        t->dist = malloc(t->cap * sizeof(float));
        if (!t->scratch || !t->col || !t->dist)
            return -ENOMEM;
    }
    if (r->collect && row < r->n_collect && r->collect[row])
        for (size_t q = 0; q < n; q++)
            if (s[q] > GRAPH_MIN_S_DEFAULT && cols[q] < r->n_collect)
                r->affected[cols[q]] = 1;
    size_t m = graph_prune_row(cols, s, n, r->o->top ? r->o->top : GRAPH_TOP_DEFAULT,
                               GRAPH_MIN_S_DEFAULT, t->col, t->dist, t->scratch);
    free(r->col[row]), free(r->dist[row]);
    r->col[row] = malloc((m + 1) * sizeof(uint32_t));
    r->dist[row] = malloc((m + 1) * sizeof(float));
    if (!r->col[row] || !r->dist[row])
        return -ENOMEM;
    if (m > 0) { /* an empty first row leaves the scratch unallocated (NULL): no memcpy */
        memcpy(r->col[row], t->col, m * sizeof(uint32_t));
        memcpy(r->dist[row], t->dist, m * sizeof(float));
    }
    r->cnt[row] = (uint32_t)m;
    t->rows_read++;
    /* progress from thread 0 only, its count standing for every thread's */
    if (tid == 0 && r->o->progress && r->expect && t->rows_read % 512 == 0 &&
        r->o->progress(r->o->progress_ud, "read",
                       fmin(1.0, (double)t->rows_read * READ_THREADS / r->expect)))
        return ATL_ECANCELED;
    return 0;
}

/* The rows of @p only (NULL: every retained row), on READ_THREADS threads unless it collects. */
static int read_rows(store_t *s, reader_t *r, const uint64_t *only, uint32_t n_only,
                     uint64_t **keys, uint32_t *n)
{
    return store_retained_rows_par(s, only, n_only, GRAPH_MIN_S_DEFAULT,
                                   r->collect ? 1 : READ_THREADS, read_begin_cb, read_row_cb, r,
                                   keys, n);
}

static void reader_free(reader_t *r)
{
    rows_free(r->cap, r->cnt, r->col, r->dist);
    for (int t = 0; t < READ_THREADS; t++)
        free(r->tmp[t].scratch), free(r->tmp[t].col), free(r->tmp[t].dist);
    memset(r, 0, sizeof(*r));
}

/* The state takes the reader's first @p n rows and @p keys (owned from now on). */
static void state_adopt(refresh_state_t *st, reader_t *r, uint64_t *keys, uint32_t n)
{
    rows_free(st->n, st->cnt, st->col, st->dist);
    for (uint32_t i = n; i < r->cap; i++)
        free(r->col[i]), free(r->dist[i]);
    st->cnt = r->cnt, st->col = r->col, st->dist = r->dist;
    r->cnt = NULL, r->col = NULL, r->dist = NULL, r->cap = 0;
    free(st->keys);
    st->keys = keys;
    st->n = n;
}

static int same_keys(const uint64_t *a, uint32_t na, const uint64_t *b, uint32_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(*a)) == 0);
}

/* Positions of the last run's retained items in this run's list and back (KNN_NONE: gone/new),
 * and the edges of T whose state may have changed since (graph_update_delta()). */
typedef struct remap {
    uint32_t n_old, n_new;
    uint32_t *new_of_old, *old_of_new;
    graph_edges_t delta;
} remap_t;

static void remap_free(remap_t *m)
{
    free(m->new_of_old), free(m->old_of_new);
    graph_edges_destroy(&m->delta);
    memset(m, 0, sizeof(*m));
}

static int remap_init(remap_t *m, const uint64_t *old, uint32_t n_old, const uint64_t *cur,
                      uint32_t n_new)
{
    m->n_old = n_old, m->n_new = n_new;
    m->new_of_old = malloc(((size_t)n_old + 1) * sizeof(uint32_t));
    m->old_of_new = malloc(((size_t)n_new + 1) * sizeof(uint32_t));
    if (!m->new_of_old || !m->old_of_new)
        return -ENOMEM;
    uint32_t a = 0, b = 0;
    while (a < n_old || b < n_new) { /* both sorted: one merge */
        if (b == n_new || (a < n_old && old[a] < cur[b]))
            m->new_of_old[a++] = KNN_NONE;
        else if (a == n_old || cur[b] < old[a])
            m->old_of_new[b++] = KNN_NONE;
        else
            m->new_of_old[a] = b, m->old_of_new[b] = a, a++, b++;
    }
    return 0;
}

/* Keys of the positions flagged in @p want that have not been read yet (sorted). */
static uint64_t *pending_keys(const reader_t *r, const uint8_t *want, const uint64_t *keys,
                              uint32_t n, uint32_t *n_out)
{
    uint64_t *out = malloc(((size_t)n + 1) * sizeof(*out));
    uint32_t m = 0;
    for (uint32_t i = 0; out && i < n; i++)
        if (want[i] && !(i < r->cap && r->col[i]))
            out[m++] = keys[i];
    *n_out = m;
    return out;
}

static uint32_t float_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

/* Per column: the row that last listed it (as 2 row + 1, or 2 row + 2 once its new list has the
 * same entry) and the distance it had there. */
typedef struct col_marks {
    uint32_t *stamp, *dist_bits;
} col_marks_t;

/*
 * Mark what changed between a row's previous pruned list (previous positions, renumbered) and its
 * new one: every column whose entry appeared, left or changed distance, and the row itself. Only
 * those rows of T can differ from the previous T (an edge belongs to the two rows it joins).
 * Linear through the column marks (sorting both lists to merge them was 1.2 s of a full-scale
 * refresh that re-read 10.7k rows). Each entry that appeared or changed distance is an edge of T
 * now, at its new distance (@p delta); an entry that left is an edge still if the other row lists
 * this one, which is known once every row is read (@p left, resolve_left()).
 */
static int mark_changes(uint32_t i, const uint32_t *oc, const float *od, uint32_t on,
                        const uint32_t *nc, const float *nd, uint32_t nn, const remap_t *m,
                        uint8_t *aff, col_marks_t *cm, graph_edges_t *delta, graph_edges_t *left)
{
    const uint32_t listed = 2 * i + 1, kept = 2 * i + 2;
    int any = 0, rc = 0;
    for (uint32_t q = 0; q < on; q++) {
        uint32_t c = m->new_of_old[oc[q]];
        if (c == KNN_NONE) {
            any = 1; /* it listed an item that left */
            continue;
        }
        cm->stamp[c] = listed;
        cm->dist_bits[c] = float_key(od[q]);
    }
    for (uint32_t q = 0; q < nn && rc == 0; q++) {
        uint32_t c = nc[q];
        int was = cm->stamp[c] == listed;
        if (was && cm->dist_bits[c] == float_key(nd[q])) {
            cm->stamp[c] = kept;
            continue;
        }
        cm->stamp[c] = kept; /* new, or at another distance: an edge now, at this one */
        aff[c] = 1, any = 1;
        rc = graph_edges_add(delta, i, c, nd[q]);
    }
    for (uint32_t q = 0; q < on && rc == 0; q++) {
        uint32_t c = m->new_of_old[oc[q]];
        if (c != KNN_NONE && cm->stamp[c] == listed) { /* gone from the list */
            aff[c] = 1, any = 1;
            rc = graph_edges_add(left, i, c, 0);
        }
    }
    if (any)
        aff[i] = 1;
    return rc;
}

/* An entry that left row i's list is an edge still, at the distance it has there, if row c
 * lists i (its list is this run's: every row read or renumbered by now). */
static int resolve_left(const refresh_state_t *st, const graph_edges_t *left, graph_edges_t *delta)
{
    int rc = 0;
    for (size_t k = 0; k < left->m && rc == 0; k++) {
        uint32_t i = left->i[k], c = left->j[k];
        float d = 0;
        for (uint32_t q = 0; q < st->cnt[c]; q++)
            if (st->col[c][q] == i) {
                d = st->dist[c][q];
                break;
            }
        rc = graph_edges_add(delta, i, c, d);
    }
    return rc;
}

/*
 * Incremental read: the dirty rows, then, if the retained set changed, the rows that may keep a
 * new item (its columns with S > min_s) or that kept a removed one (their pruned lists), until
 * nothing is left to read; the other rows are kept, their columns renumbered. The state's rows
 * and keys are replaced; @p m maps the last run's positions to this run's for the kNN step.
 * @return 0, 1 when the retained set moved between two reads (the caller reads everything), or
 *         an error.
 */
/* Which rows of T can differ from the last run's: new items' rows and every row they list, rows
 * whose pruned entries changed (mark_changes), and rows a removed item listed. NULL on OOM. */
static uint8_t *affected_rows(const refresh_state_t *st, const reader_t *r, remap_t *m, uint32_t n,
                              graph_edges_t *left)
{
    uint8_t *aff = calloc((size_t)n + 1, 1);
    col_marks_t cm = {calloc((size_t)n + 1, sizeof(uint32_t)),
                      malloc(((size_t)n + 1) * sizeof(uint32_t))};
    int rc = aff && cm.stamp && cm.dist_bits ? 0 : -ENOMEM;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        uint32_t p = m->old_of_new[i];
        if (!r->col[i])
            continue;
        if (p == KNN_NONE) { /* a new item: its row and every row it lists, edges all */
            aff[i] = 1;
            for (uint32_t q = 0; q < r->cnt[i] && rc == 0; q++) {
                aff[r->col[i][q]] = 1;
                rc = graph_edges_add(&m->delta, i, r->col[i][q], r->dist[i][q]);
            }
        } else {
            rc = mark_changes(i, st->col[p], st->dist[p], st->cnt[p], r->col[i], r->dist[i],
                              r->cnt[i], m, aff, &cm, &m->delta, left);
        }
    }
    for (uint32_t p = 0; p < st->n && rc == 0; p++) /* rows a removed item listed lose it */
        for (uint32_t q = 0; m->new_of_old[p] == KNN_NONE && q < st->cnt[p]; q++)
            if (m->new_of_old[st->col[p][q]] != KNN_NONE)
                aff[m->new_of_old[st->col[p][q]]] = 1;
    free(cm.stamp), free(cm.dist_bits);
    if (rc != 0)
        free(aff), aff = NULL;
    return aff;
}

typedef struct renumber_job {
    reader_t *r;
    const uint8_t *kept;
    const uint32_t *new_of_old;
} renumber_job_t;

static int renumber_rows(void *ud, unsigned tid, size_t begin, size_t end)
{
    const renumber_job_t *j = ud;
    (void)tid;
    for (size_t i = begin; i < end; i++)
        for (uint32_t q = 0; j->kept[i] && q < j->r->cnt[i]; q++)
            j->r->col[i][q] = j->new_of_old[j->r->col[i][q]];
    return 0;
}

/* Rows not re-read are the last run's, taken over (not copied) and renumbered (on 2 threads,
 * and only when the retained set changed: ~36M entries at full scale). */
static int adopt_kept_rows(refresh_state_t *st, reader_t *r, const remap_t *m, uint32_t n)
{
    uint8_t *kept = calloc((size_t)n + 1, 1);
    int same = m->n_old == n, rc = kept ? 0 : -ENOMEM;
    for (uint32_t p = 0; same && p < m->n_old; p++)
        same = m->new_of_old[p] == p;
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        if (r->col[i])
            continue;
        uint32_t p = m->old_of_new[i];
        r->col[i] = st->col[p], r->dist[i] = st->dist[p], r->cnt[i] = st->cnt[p];
        st->col[p] = NULL, st->dist[p] = NULL;
        kept[i] = 1;
    }
    renumber_job_t job = {r, kept, m->new_of_old};
    if (rc == 0 && !same)
        rc = par_for(n, 1024, READ_THREADS, renumber_rows, &job);
    free(kept);
    return rc;
}

/* Rows that kept an item that left (KNN_NONE in @p m) must be re-read: those that list it are
 * among its neighbours in the last T, so only those rows' lists are searched (scanning every
 * row's list was ~80 ms of a full-scale refresh). */
static void want_rows_of_removed(const refresh_state_t *st, const remap_t *m, uint8_t *want)
{
    const graph_t *t = &st->t;
    int use_t = t->n == st->n && t->row_ptr;
    for (uint32_t g = 0; g < st->n; g++) {
        if (m->new_of_old[g] != KNN_NONE)
            continue; /* g stays */
        uint64_t a = use_t ? t->row_ptr[g] : 0, b = use_t ? t->row_ptr[g + 1] : st->n;
        for (uint64_t e = a; e < b; e++) {
            uint32_t p = use_t ? t->col[e] : (uint32_t)e;
            if (m->new_of_old[p] == KNN_NONE || want[m->new_of_old[p]])
                continue;
            for (uint32_t q = 0; q < st->cnt[p]; q++)
                if (st->col[p][q] == g) {
                    want[m->new_of_old[p]] = 1;
                    break;
                }
        }
    }
}

/*
 * Re-read the dirty rows (and the rows new or removed items make necessary) into the state.
 * @return 0; READ_AGAIN_FULL (1, not an error: the retained set moved under us, read every row
 *         instead); or a negative code.
 */
static int read_incremental(store_t *s, refresh_state_t *st, const refresh_opts_t *o,
                            const uint64_t *dirty, uint32_t n_dirty, remap_t *m, uint8_t **aff_out,
                            uint32_t *rows_read)
{
    reader_t r = {.o = o, .expect = n_dirty};
    graph_edges_t left = {0};
    uint64_t *keys = NULL, *more = NULL, *again = NULL;
    uint32_t n = 0, n_more = 0, n_again = 0;
    uint8_t *added = NULL, *want = NULL;
    int rc = read_rows(s, &r, dirty, n_dirty, &keys, &n); /* sizes the rows (read_begin_cb) */
    if (rc == 0 && n < 2)
        rc = READ_AGAIN_FULL; /* nothing to lay out: the full read says so (ATL_ENOTFOUND) */
    if (rc == 0)
        rc = remap_init(m, st->keys, st->n, keys, n);
    if (rc != 0)
        goto out;
    added = calloc((size_t)n + 1, 1);
    want = calloc((size_t)n + 1, 1);
    if (!added || !want) {
        rc = -ENOMEM;
        goto out;
    }
    uint32_t n_added = 0;
    for (uint32_t i = 0; i < n; i++)
        if (m->old_of_new[i] == KNN_NONE)
            added[i] = want[i] = 1, n_added++;
    want_rows_of_removed(st, m, want);
    /* new items are read again with their columns collected (the dirty pass could not know
     * which items were new) */
    r.collect = added, r.n_collect = n, r.affected = want;
    if (n_added) {
        for (uint32_t i = 0; i < n; i++)
            if (added[i] && r.col[i]) {
                free(r.col[i]), free(r.dist[i]);
                r.col[i] = NULL, r.dist[i] = NULL;
            }
    }
    for (int pass = 0; pass < 4; pass++) {
        free(more);
        if (!(more = pending_keys(&r, want, keys, n, &n_more))) {
            rc = -ENOMEM;
            goto out;
        }
        if (n_more == 0)
            break;
        r.expect = reader_rows_read(&r) + n_more;
        free(again), again = NULL;
        if ((rc = read_rows(s, &r, more, n_more, &again, &n_again)) != 0)
            goto out;
        if (!same_keys(keys, n, again, n_again)) { /* moved under us: positions differ */
            rc = READ_AGAIN_FULL;
            goto out;
        }
    }
    if (n_more != 0) {
        rc = READ_AGAIN_FULL;
        goto out;
    }
    uint8_t *aff = affected_rows(st, &r, m, n, &left);
    if (!aff) {
        rc = -ENOMEM;
        goto out;
    }
    *aff_out = aff;
    if ((rc = adopt_kept_rows(st, &r, m, n)) != 0)
        goto out;
    state_adopt(st, &r, keys, n);
    keys = NULL;
    if ((rc = resolve_left(st, &left, &m->delta)) != 0)
        goto out;
    *rows_read = reader_rows_read(&r);
out:
    reader_free(&r);
    graph_edges_destroy(&left);
    free(keys), free(more), free(again), free(added), free(want);
    return rc;
}

static int same_graph_as_built(const refresh_state_t *st, const graph_t *t)
{
    graph_t ref = {0};
    int same = graph_build_rows(st->n, st->cnt, st->col, st->dist, &ref) == 0 && ref.n == t->n &&
               memcmp(ref.row_ptr, t->row_ptr, ((size_t)t->n + 1) * sizeof(uint64_t)) == 0 &&
               memcmp(ref.col, t->col, t->row_ptr[t->n] * sizeof(uint32_t)) == 0 &&
               memcmp(ref.dist, t->dist, t->row_ptr[t->n] * sizeof(float)) == 0;
    graph_destroy(&ref);
    return same;
}

/*
 * Read T into the state: incrementally when the state is valid (read_incremental), else every
 * row. *incremental says which happened; @p m is set for an incremental read.
 */
static int read_graph(store_t *s, refresh_state_t *st, const refresh_opts_t *o,
                      const uint64_t *dirty, uint32_t n_dirty, uint32_t expect, int *incremental,
                      remap_t *m, uint8_t **aff, uint32_t *rows_read, char *err, size_t errlen)
{
    reader_t r = {.o = o};
    uint64_t *keys = NULL;
    uint32_t n = 0;
    int rc;
    *incremental = 0;
    if (st->valid && !o->full) {
        rc = read_incremental(s, st, o, dirty, n_dirty, m, aff, rows_read);
        if (rc == 0) {
            *incremental = 1;
            return 0;
        }
        remap_free(m);
        free(*aff), *aff = NULL;
        if (rc < 0) {
            snprintf(err, errlen, "reading S: %s", atl_strerror(rc));
            return rc;
        }
    }
    r.expect = st->n ? st->n : expect; /* for progress: the last map's size */
    rc = read_rows(s, &r, NULL, 0, &keys, &n);
    if (rc == 0 && n < 2) {
        snprintf(err, errlen, "the store has %u retained items: nothing to lay out yet", n);
        rc = ATL_ENOTFOUND;
    }
    if (rc != 0) {
        if (!err[0])
            snprintf(err, errlen, "reading S: %s", atl_strerror(rc));
        reader_free(&r);
        free(keys);
        return rc;
    }
    state_adopt(st, &r, keys, n);
    *rows_read = reader_rows_read(&r);
    reader_free(&r);
    return 0;
}

/* ---- kNN --------------------------------------------------------------------------------- */

/*
 * The last run's kNN renumbered onto this run's items (@p out), and the rows that must be
 * recomputed (see the file comment): new items, rows with a neighbour that left the retained
 * set, and rows whose list an edge change of T can reach (knn_rows_affected(), from the nearest
 * changed edge at each node of a row of T that was rebuilt: only rows flagged in @p aff can
 * differ from the last T).
 */
static uint32_t *carry_knn(const graph_t *old, const knn_t *prev, const graph_t *t,
                           const remap_t *m, const uint8_t *aff, knn_t *out, size_t *n_out)
{
    uint32_t n = t->n, k = prev->k, *rows = malloc(((size_t)n + 1) * sizeof(*rows));
    uint8_t *need = calloc((size_t)n + 1, 1);
    double *change = malloc(((size_t)n + 1) * sizeof(*change));
    size_t r = 0;
    out->n = n, out->k = k, out->max_distance = prev->max_distance;
    out->nbr = malloc(((size_t)n * k + 1) * sizeof(uint32_t));
    out->dist = malloc(((size_t)n * k + 1) * sizeof(float));
    out->count = calloc((size_t)n + 1, sizeof(uint32_t));
    if (!rows || !need || !change || !out->nbr || !out->dist || !out->count) {
        free(rows), free(need), free(change);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t p = m->old_of_new[i];
        change[i] =
            p != KNN_NONE && aff[i] ? graph_row_change_min(old, p, m->new_of_old, t, i) : INFINITY;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t p = m->old_of_new[i], c = 0;
        need[i] = p == KNN_NONE;
        for (uint32_t q = 0; p != KNN_NONE && q < prev->count[p]; q++) {
            uint32_t j = m->new_of_old[prev->nbr[(size_t)p * k + q]];
            need[i] |= j == KNN_NONE;
            if (j != KNN_NONE) {
                out->nbr[(size_t)i * k + c] = j;
                out->dist[(size_t)i * k + c] = prev->dist[(size_t)p * k + q];
                c++;
            }
        }
        out->count[i] = c;
        for (uint32_t q = c; q < k; q++)
            out->nbr[(size_t)i * k + q] = KNN_NONE, out->dist[(size_t)i * k + q] = INFINITY;
    }
    knn_rows_affected(out, change, need);
    for (uint32_t i = 0; i < n; i++)
        if (need[i])
            rows[r++] = i;
    free(need), free(change);
    *n_out = r;
    return rows;
}

static int compute_knn(refresh_state_t *st, graph_t *t, const remap_t *m, const uint8_t *aff,
                       const refresh_opts_t *o, uint32_t *knn_rows)
{
    knn_opts_t ko;
    knn_opts_default(&ko);
    ko.k = REFRESH_K;
    ko.progress = o->progress, ko.progress_ud = o->progress_ud;
    knn_t fresh = {0};
    int rc;
    /* carried over only from a kNN with a bound: a last full kNN on a T without edges had 0,
     * with which every recomputed row would stay empty for good */
    if (m && m->old_of_new && st->knn.n == m->n_old && st->t.n == m->n_old &&
        st->knn.max_distance > 0) {
        size_t n_rows = 0, n_changed = 0;
        uint32_t *rows = carry_knn(&st->t, &st->knn, t, m, aff, &fresh, &n_rows);
        if (!rows) {
            knn_destroy(&fresh);
            return -ENOMEM;
        }
        ko.max_distance = fresh.max_distance;
        rc = n_rows ? knn_update_rows(t, &ko, rows, n_rows, &fresh, &n_changed) : 0;
        free(rows);
        *knn_rows = (uint32_t)n_rows;
    } else {
        ko.max_distance = o->max_distance;
        rc = knn_build(t, &ko, &fresh);
        *knn_rows = t->n;
    }
    if (rc != 0) {
        knn_destroy(&fresh);
        return rc;
    }
    knn_destroy(&st->knn);
    st->knn = fresh;
    if (st->t.col) { /* else a first run: the spare comes after its publish (spare_prefault) */
        graph_destroy(&st->spare);
        st->spare = st->t;
    }
    st->t = *t;
    memset(t, 0, sizeof(*t));
    return 0;
}

/* ---- warm starts and stability ----------------------------------------------------------- */

/* Position of @p key in sorted @p keys, or UINT32_MAX. */
static uint32_t key_find(const uint64_t *keys, uint32_t n, uint64_t key)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && keys[lo] == key ? lo : UINT32_MAX;
}

/* Row i's neighbours as item keys, nearest first, 0 past the count. */
static void knn_row_keys(const knn_t *knn, const uint64_t *keys, uint32_t i, uint64_t *out)
{
    for (uint32_t q = 0; q < knn->k; q++)
        out[q] = q < knn->count[i] ? keys[knn->nbr[(size_t)i * knn->k + q]] : 0;
}

static inline int u64_less(const uint64_t *a, const uint64_t *b)
{
    return *a < *b;
}

ATL_SHELL_SORT_DEFINE(sort_short, uint64_t, u64_less) /* k is 10: no call per comparison */

/* Whether two kNN rows hold the same items, in any order (twice per item and refresh: qsort
 * there cost ~20 ms a call site at full scale). */
static int same_neighbours(const uint64_t *a, const uint64_t *b, uint32_t k)
{
    uint64_t x[KNN_MAX_K], y[KNN_MAX_K];
    if (memcmp(a, b, k * sizeof(*a)) == 0)
        return 1; /* the same order: mostly */
    memcpy(x, a, k * sizeof(*x));
    memcpy(y, b, k * sizeof(*y));
    sort_short(x, k), sort_short(y, k);
    return memcmp(x, y, k * sizeof(*x)) == 0;
}

static double map_width(const double *y, uint32_t n)
{
    double lo_x = INFINITY, hi_x = -INFINITY, lo_y = INFINITY, hi_y = -INFINITY;
    for (uint32_t i = 0; i < n; i++) {
        lo_x = fmin(lo_x, y[2 * i]), hi_x = fmax(hi_x, y[2 * i]);
        lo_y = fmin(lo_y, y[2 * i + 1]), hi_y = fmax(hi_y, y[2 * i + 1]);
    }
    return fmax(hi_x - lo_x, hi_y - lo_y);
}

/*
 * How far items whose kNN rows did not change moved, as a fraction of the map's width. When the
 * map was reframed (rescaled/recentred because it outgrew its frame; frame.reframed in the
 * manifest) the movement is measured in the previous frame, so the figure is the layout's own
 * movement, not the uniform zoom of the new frame. @return 0, or -ENOMEM (issue 10.15: it said
 * "unknown" then, and the refresh went on as if nothing had failed).
 */
static int stability(const store_coords_t *prev, const store_coords_t *c, refresh_result_t *r)
{
    uint8_t *mask = calloc((size_t)c->n + 1, 1);
    double *before = calloc((size_t)c->n * 2 + 1, sizeof(double));
    double *after = calloc((size_t)c->n * 2 + 1, sizeof(double));
    frame_t pf;
    r->stability_median = r->stability_p95 = -1;
    r->stability_items = 0;
    int rc = mask && before && after ? 0 : -ENOMEM;
    if (rc != 0 || prev->k != c->k) { /* another k: no row compares */
        free(mask), free(before), free(after);
        return rc;
    }
    if (r->reframed && frame_recover(prev->y2, prev->framed, prev->n, &pf) == 0)
        frame_apply(&pf, c->y2, c->n, after);
    else
        memcpy(after, c->framed, (size_t)c->n * 2 * sizeof(double));
    for (uint32_t i = 0; i < c->n; i++) {
        uint32_t at = key_find(prev->keys, prev->n, c->keys[i]);
        if (at == UINT32_MAX ||
            !same_neighbours(prev->knn + (size_t)at * c->k, c->knn + (size_t)i * c->k, c->k))
            continue;
        memcpy(before + 2 * (size_t)i, prev->framed + 2 * (size_t)at, 2 * sizeof(double));
        mask[i] = 1;
        r->stability_items++;
    }
    /* -EINVAL (a map of width 0) leaves the figure unknown; only memory is a failure */
    if (r->stability_items > 0 &&
        quality_displacement(before, after, c->n, 2, mask, map_width(after, c->n),
                             &r->stability_median, &r->stability_p95) == -ENOMEM)
        rc = -ENOMEM;
    free(mask), free(before), free(after);
    return rc;
}

/* ---- MDE and layout ------------------------------------------------------------------------ */

static int embed_3d(const refresh_state_t *st, const store_coords_t *prev, const refresh_opts_t *o,
                    double *x, refresh_result_t *r, char *err, size_t errlen)
{
    mde_result_t mr = {0};
    mde_opts_t mo;
    uint32_t n = st->n, placed_n = 0;
    uint8_t *placed = calloc((size_t)n + 1, 1);
    int rc = placed ? 0 : -ENOMEM;
    mde_opts_default(&mo);
    mo.dim = REFRESH_DIM, mo.seed = o->seed;
    mo.progress = o->progress, mo.progress_ud = o->progress_ud;
    for (uint32_t i = 0; rc == 0 && i < n && !o->cold; i++) {
        uint32_t at = key_find(prev->keys, prev->n, st->keys[i]);
        if (at != UINT32_MAX) {
            memcpy(x + 3 * (size_t)i, prev->x3 + 3 * (size_t)at, 3 * sizeof(double));
            placed[i] = 1, placed_n++;
        }
    }
    /* warm: new items start beside their placed neighbours */
    if (rc == 0)
        rc = embed_mde(&st->knn, st->keys, &mo, placed_n > 0, placed, WARM_FTOL, x, &mr);
    if (rc != 0 && rc != ATL_ECANCELED)
        snprintf(err, errlen, "MDE: %s", atl_strerror(rc));
    r->warm = placed_n > 0;
    r->mde_iterations = mr.iterations;
    free(placed);
    return rc;
}

/*
 * What an incremental refresh lets the 2-D layout move: new items, items whose kNN row changed,
 * and their kNN neighbours either way; everything else keeps its place on the map, exactly. A
 * forced rebuild (and a daemon's first refresh) moves everything. NULL (move all) when that is
 * most of the map or when the last map cannot be compared.
 */
static uint8_t *movable_items(const refresh_state_t *st, const store_coords_t *prev,
                              uint32_t *n_movable)
{
    uint32_t n = st->n, k = st->knn.k, count = 0;
    uint8_t *changed = calloc((size_t)n + 1, 1), *mov = calloc((size_t)n + 1, 1);
    uint64_t row[KNN_MAX_K];
    if (!changed || !mov || prev->k != k) {
        free(changed), free(mov);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t at = key_find(prev->keys, prev->n, st->keys[i]);
        knn_row_keys(&st->knn, st->keys, i, row);
        changed[i] = at == UINT32_MAX || !same_neighbours(row, prev->knn + (size_t)at * k, k);
    }
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t q = 0; q < st->knn.count[i]; q++) {
            uint32_t j = st->knn.nbr[(size_t)i * k + q];
            if (changed[i] || changed[j])
                mov[i] = mov[j] = 1;
        }
    for (uint32_t i = 0; i < n; i++)
        count += mov[i] |= changed[i];
    free(changed);
    if (count > n / 2) {
        free(mov);
        return NULL;
    }
    *n_movable = count;
    return mov;
}

/*
 * Frame the map for the frontend's default view (algo/frame.h): a warm map keeps the last map's
 * frame (recovered from its stored 2-D and framed positions) while it still fills 82-97% of the
 * view in landscape, so a refresh never rescales or rotates a map whose extent barely changed;
 * a cold map, or one that outgrew its frame, gets a new one.
 */
static int frame_map(const store_coords_t *prev, int warm, store_coords_t *c, refresh_result_t *r)
{
    frame_view_t v;
    frame_t pf;
    frame_view_default(&v);
    int have_prev = warm && frame_recover(prev->y2, prev->framed, prev->n, &pf) == 0;
    int rc = frame_choose(c->y2, c->n, &v, have_prev ? &pf : NULL, &r->frame, &r->reframed);
    if (rc == 0) {
        frame_apply(&r->frame, c->y2, c->n, c->framed);
        rc = frame_extent(c->framed, c->n, &v, &r->extent);
    }
    return rc;
}

static int layout_2d(const refresh_state_t *st, const store_coords_t *prev, const refresh_opts_t *o,
                     const double *x, const uint8_t *movable, store_coords_t *c,
                     refresh_result_t *r, char *err, size_t errlen)
{
    uint32_t n = st->n, placed_n = 0;
    uint8_t *placed = calloc((size_t)n + 1, 1);
    double *prev_y = calloc((size_t)n * 2 + 1, sizeof(double));
    layout_opts_t lo;
    int rc = placed && prev_y ? 0 : -ENOMEM;
    layout_opts_default(&lo);
    lo.seed = o->seed, lo.progress = o->progress, lo.progress_ud = o->progress_ud;
    for (uint32_t i = 0; rc == 0 && i < n && !o->cold; i++) {
        uint32_t at = key_find(prev->keys, prev->n, st->keys[i]);
        if (at != UINT32_MAX) {
            memcpy(prev_y + 2 * (size_t)i, prev->y2 + 2 * (size_t)at, 2 * sizeof(double));
            placed[i] = 1, placed_n++;
        }
    }
    if (rc == 0 && placed_n >= 2) { /* warm from the last map, then rotate/reflect onto it */
        memcpy(c->y2, prev_y, (size_t)n * 2 * sizeof(double));
        lo.movable = movable; /* the others stay exactly where they were: nothing to align */
        if ((rc = layout_umap(x, n, REFRESH_DIM, &lo, c->y2, placed, NULL)) == 0 && !movable)
            rc = layout_align(c->y2, prev_y, n, placed);
    } else if (rc == 0) {
        rc = layout_umap(x, n, REFRESH_DIM, &lo, c->y2, NULL, NULL);
    }
    if (rc == 0)
        rc = frame_map(prev, placed_n >= 2, c, r);
    if (rc != 0 && rc != ATL_ECANCELED)
        snprintf(err, errlen, "layout: %s", atl_strerror(rc));
    free(placed), free(prev_y);
    return rc;
}

/* ---- publishing ---------------------------------------------------------------------------- */

/* The manifest's "frame": layout -> corpus similarity, the view it was fitted to, and where the
 * map's 1st-99th percentile box sits in it (drawn units, after the frontend's x2). */
static int frame_fields(char *buf, size_t cap, const refresh_result_t *r)
{
    frame_view_t v;
    double scale, deg;
    int reflect;
    frame_view_default(&v);
    frame_describe(&r->frame, &scale, &deg, &reflect);
    const frame_extent_t *e = &r->extent;
    return snprintf(
        buf, cap,
        ",\"frame\":{\"scale\":%.9g,\"rotation_deg\":%.4f,\"reflect\":%s,\"a\":[%.9g,%.9g,%.9g,"
        "%.9g],\"t\":[%.9g,%.9g],\"reframed\":%s,\"view\":{\"centre\":[%g,%g],\"width\":%g,"
        "\"height\":%g,\"zoom\":[%g,%g],\"fill_target\":%g},\"extent\":{\"quantiles\":[%g,%g],"
        "\"width\":%.2f,\"height\":%.2f,\"fill\":%.4f,\"centre\":[%.2f,%.2f]}}",
        scale, deg, reflect ? "true" : "false", r->frame.a[0], r->frame.a[1], r->frame.a[2],
        r->frame.a[3], r->frame.t[0], r->frame.t[1], r->reframed ? "true" : "false", v.centre[0],
        v.centre[1], v.width, v.height, v.zoom[0], v.zoom[1], v.fill, v.pct_lo, v.pct_hi, e->width,
        e->height, e->fill, e->centre[0], e->centre[1]);
}

static char *manifest_fields(const refresh_opts_t *o, const refresh_result_t *r,
                             const store_counters_t *c, const char *offsets, const char *previous,
                             double max_distance)
{
    size_t cap = 6144 + strlen(offsets);
    char *buf = malloc(cap), when[32] = "";
    if (!buf)
        return NULL;
    time_t nt = (time_t)c->newest_update_time;
    struct tm tm;
    if (nt > 0 && gmtime_r(&nt, &tm))
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    double lag = o->lag_origin > 0 ? (double)(time(NULL) - o->lag_origin) : -1;
    int k =
        snprintf(buf, cap,
                 "{\"kafka_offsets\":%s,\"previous\":\"%s\",\"events_applied\":%" PRIu64
                 ",\"batch_seq\":%" PRIu64 ",\"newest_update_time\":%" PRId64
                 ",\"newest_event_time\":\"%s\",\"refresh_lag_seconds\":%.0f,\"refresh\":",
                 offsets, previous, c->events_applied, r->seq, c->newest_update_time, when, lag);
    int n = refresh_result_json(r, REFRESH_JSON_MANIFEST, buf + k, cap - (size_t)k);
    if (n < 0) {
        free(buf);
        return NULL;
    }
    k += n;
    k += frame_fields(buf + k, cap - (size_t)k, r);
    snprintf(buf + k, cap - (size_t)k,
             ",\"parameters\":{\"k\":%d,\"max_distance\":%.6g,\"dim\":%d,\"n_neighbors\":150,"
             "\"min_dist\":0.25,\"seed\":%" PRIu64 ",\"top\":%d,\"cold\":%s}}",
             REFRESH_K, max_distance, REFRESH_DIM, o->seed, o->top ? o->top : GRAPH_TOP_DEFAULT,
             o->cold ? "true" : "false");
    return buf;
}

/*
 * The snapshot of @p c. Its manifest claims the counters @p cnt and the Kafka @p offsets read
 * with the dirty list at the start of the run (store_dirty_get): what the rows read after
 * it reflect at least. Read here, after MDE and the layout, they named batches committed
 * meanwhile, whose rows the snapshot does not hold.
 */
static int publish(store_t *s, const refresh_opts_t *o, const store_coords_t *prev,
                   const store_coords_t *c, double max_distance, const store_counters_t *cnt,
                   const char *offsets, refresh_result_t *r, char *err, size_t errlen)
{
    corpus_row_t *rows = calloc((size_t)c->n + 1, sizeof(*rows));
    char *arena = NULL, *fields = NULL;
    uint8_t *buf = NULL;
    store_snapshot_info_t info;
    int rc = rows ? 0 : -ENOMEM;
    if (rc == 0 && (rc = store_corpus_rows(s, c->keys, c->framed, c->n, rows, &arena)) != 0)
        snprintf(err, errlen, "reading metadata: %s", atl_strerror(rc));
    size_t len = rc == 0 ? corpus_size(rows, c->n) : 0;
    if (rc == 0 && !(buf = malloc(len + 1)))
        rc = -ENOMEM; /* (it was left 0: the snapshot code then hashed NULL) */
    if (rc == 0)
        rc = corpus_encode(rows, c->n, buf);
    if (rc != 0 && !err[0])
        snprintf(err, errlen, "encoding the corpus: %s", atl_strerror(rc));
    if (rc == 0) {
        r->events_applied = cnt->events_applied;
        r->newest_update_time = cnt->newest_update_time;
    }
    if (rc == 0 && !(fields = manifest_fields(o, r, cnt, offsets, prev->snapshot, max_distance)))
        rc = -ENOMEM;
    if (rc == 0)
        rc =
            store_snapshot_publish(o->snapdir, buf, len, c->n, fields, o->keep, &info, err, errlen);
    if (rc == 0)
        snprintf(r->id, sizeof(r->id), "%s", info.id);
    free(rows), free(arena), free(fields), free(buf);
    return rc;
}

/* ---- the run ------------------------------------------------------------------------------- */

static int verify_s(store_t *s, const refresh_opts_t *o, refresh_result_t *r, char *err,
                    size_t errlen)
{
    store_rebuild_opts_t ro;
    store_rebuild_opts_default(&ro);
    if (o->verify_mem_bytes)
        ro.mem_bytes = o->verify_mem_bytes;
    ro.progress = o->progress, ro.progress_ud = o->progress_ud;
    int rc = store_rebuild(s, &ro, &r->verify);
    if (rc != 0 && rc != ATL_ECANCELED)
        snprintf(err, errlen, "verifying S: %s", atl_strerror(rc));
    r->verified = rc == 0;
    return rc;
}

/* Whether @p o's run walks the whole store: an S check, or a read of every row (no state to
 * update incrementally, or a forced rebuild) */
static int walks_whole_store(const refresh_state_t *st, const refresh_opts_t *o)
{
    return o->verify || o->full || !st->valid;
}

/* Read the store's file in order first (store_prefetch). A failed read only costs the speed-up:
 * it is reported in r->prefetch and the run goes on. No memory for its buffers fails the run as
 * any other allocation does; a cancellation stops it. */
static int prefetch_store(store_t *s, const refresh_opts_t *o, refresh_result_t *r, char *err,
                          size_t errlen)
{
    store_prefetch_opts_t po;
    store_prefetch_opts_default(&po);
    po.progress = o->progress, po.progress_ud = o->progress_ud;
    double t0 = pipeline_now();
    int rc = store_prefetch(s, &po, &r->prefetch);
    r->t_prefetch = pipeline_now() - t0;
    r->prefetched = 1;
    if (rc != 0 && rc != ATL_ECANCELED)
        snprintf(err, errlen, "reading the store ahead: %s", atl_strerror(rc));
    return rc;
}

static int fill_coords(const refresh_state_t *st, const char *id, store_coords_t *c)
{
    c->k = st->knn.k;
    memcpy(c->keys, st->keys, (size_t)st->n * sizeof(uint64_t));
    for (uint32_t i = 0; i < st->n; i++)
        knn_row_keys(&st->knn, st->keys, i, c->knn + (size_t)i * c->k);
    snprintf(c->snapshot, sizeof(c->snapshot), "%s", id);
    return 0;
}

/*
 * After a first full refresh there is no spare T yet (the T before): the next, incremental, T
 * would go to fresh pages, 574 MB at full scale that the kernel clears on first touch (~0.2-1 s
 * of that refresh on this kind of VM). So the spare is made once the snapshot is out, touched,
 * with room for a little growth: a restarted daemon's first incremental refresh costs what the
 * later ones do, and its first snapshot does not wait for the spare. A spare that cannot be
 * had is left to the next refresh (graph_update_delta() allocates what it lacks).
 */
static void spare_prefault(refresh_state_t *st)
{
    graph_t *g = &st->spare;
    const graph_t *t = &st->t;
    if (g->col || !t->col)
        return;
    g->row_cap = graph_cap_ahead((uint64_t)t->n + 1);
    g->cap = graph_cap_ahead(t->row_ptr[t->n]);
    g->row_ptr = malloc(g->row_cap * sizeof(*g->row_ptr));
    g->col = malloc(g->cap * sizeof(*g->col));
    g->dist = malloc(g->cap * sizeof(*g->dist));
    if (!g->row_ptr || !g->col || !g->dist) {
        graph_destroy(g);
        return;
    }
    memset(g->row_ptr, 0, g->row_cap * sizeof(*g->row_ptr));
    memset(g->col, 0, g->cap * sizeof(*g->col));
    memset(g->dist, 0, g->cap * sizeof(*g->dist));
}

/* T for this run: the last run's T updated where rows changed when incremental, else built. */
static int graph_stage(refresh_state_t *st, const refresh_opts_t *o, const remap_t *map,
                       const uint8_t *aff, refresh_result_t *r, graph_t *t, char *err,
                       size_t errlen)
{
    int update = r->incremental && st->t.n == map->n_old;
    if (update) { /* into the spare T's buffers */
        *t = st->spare;
        memset(&st->spare, 0, sizeof(st->spare));
    } else {
        graph_destroy(&st->spare);
    }
    int rc = update ? graph_update_delta(&st->t, map->old_of_new, map->new_of_old, st->n, aff,
                                         &map->delta, t)
                    : graph_build_rows(st->n, st->cnt, st->col, st->dist, t);
    r->graph_rows = st->n;
    for (uint32_t i = 0; update && i < st->n; i++)
        r->graph_rows -= !aff[i];
    if (rc == 0 && o->check_graph && r->incremental && !same_graph_as_built(st, t)) {
        snprintf(err, errlen, "the incremental T differs from T built from scratch");
        return ATL_EDIFF;
    }
    if (rc != 0)
        snprintf(err, errlen, "building T: %s", atl_strerror(rc));
    return rc;
}

/* The snapshot, then the coordinates and the consumed dirty marks in one store transaction. */
static int publish_stage(store_t *s, const refresh_state_t *st, const refresh_opts_t *o,
                         const store_coords_t *prev, const store_counters_t *cnt,
                         const char *offsets, store_coords_t *c, refresh_result_t *r, char *err,
                         size_t errlen)
{
    fill_coords(st, "", c);
    int rc = stability(prev, c, r);
    if (rc != 0) {
        snprintf(err, errlen, "measuring stability: %s", atl_strerror(rc));
        return rc;
    }
    r->items = st->n;
    if (o->progress)
        o->progress(o->progress_ud, "publish", 0);
    if ((rc = publish(s, o, prev, c, st->knn.max_distance, cnt, offsets, r, err, errlen)) != 0)
        return rc;
    snprintf(c->snapshot, sizeof(c->snapshot), "%s", r->id);
    /* after the snapshot: a crash before this commit only repeats the work next time */
    if ((rc = store_refresh_commit(s, c, r->seq, &r->marks_cleared)) != 0)
        snprintf(err, errlen, "storing coordinates: %s", atl_strerror(rc));
    return rc;
}

int refresh_run(store_t *s, refresh_state_t *st, const refresh_opts_t *o, refresh_result_t *r,
                char *err, size_t errlen)
{
    refresh_state_t local = {0};
    store_coords_t prev = {0}, c = {0};
    graph_t t = {0};
    remap_t map = {0};
    uint8_t *aff = NULL, *movable = NULL;
    uint64_t *dirty = NULL;
    uint32_t n_dirty = 0;
    store_counters_t cnt = {0};
    char *offsets = NULL;
    double t0 = pipeline_now(), t1;
    int rc = 0;
    memset(r, 0, sizeof(*r));
    r->full = o->full;
    err[0] = '\0';
    r->stability_median = r->stability_p95 = -1;
    if (!st)
        st = &local;
    if (walks_whole_store(st, o) && (rc = prefetch_store(s, o, r, err, errlen)) != 0)
        goto out;
    t1 = pipeline_now();
    if (o->verify && (rc = verify_s(s, o, r, err, errlen)) != 0)
        goto out;
    r->t_verify = pipeline_now() - t1;
    t1 = pipeline_now();
    if ((rc = store_dirty_get(s, &r->seq, &dirty, &n_dirty, &cnt, &offsets)) != 0 ||
        (rc = store_coords_load(s, &prev)) != 0) {
        snprintf(err, errlen, "reading the refresh state: %s", atl_strerror(rc));
        goto out;
    }
    r->dirty = n_dirty;
    if (o->if_dirty && n_dirty == 0 && prev.n > 0 && !o->full) {
        rc = ATL_ENOTFOUND;
        goto out;
    }
    if ((rc = read_graph(s, st, o, dirty, n_dirty, prev.n, &r->incremental, &map, &aff,
                         &r->rows_read, err, errlen)) != 0)
        goto out;
    r->t_read = pipeline_now() - t1;
    t1 = pipeline_now();
    if ((rc = graph_stage(st, o, &map, aff, r, &t, err, errlen)) != 0)
        goto out;
    r->t_graph = pipeline_now() - t1;
    t1 = pipeline_now();
    if ((rc = compute_knn(st, &t, r->incremental ? &map : NULL, aff, o, &r->knn_rows)) != 0) {
        if (rc != ATL_ECANCELED)
            snprintf(err, errlen, "kNN: %s", atl_strerror(rc));
        goto out;
    }
    r->t_knn = pipeline_now() - t1;
    r->max_distance = st->knn.max_distance;
    t1 = pipeline_now();
    if ((rc = store_coords_alloc(&c, st->n, st->knn.k)) != 0 ||
        (rc = embed_3d(st, &prev, o, c.x3, r, err, errlen)) != 0)
        goto out;
    r->t_mde = pipeline_now() - t1;
    t1 = pipeline_now();
    movable = r->incremental && !o->full ? movable_items(st, &prev, &r->layout_movable) : NULL;
    if ((rc = layout_2d(st, &prev, o, c.x3, movable, &c, r, err, errlen)) != 0)
        goto out;
    r->t_layout = pipeline_now() - t1;
    t1 = pipeline_now();
    if ((rc = publish_stage(s, st, o, &prev, &cnt, offsets, &c, r, err, errlen)) != 0)
        goto out;
    r->t_publish = pipeline_now() - t1;
    r->t_total = pipeline_now() - t0;
    if (o->progress)
        o->progress(o->progress_ud, "publish", 1);
    st->valid = 1;
    if (st != &local)
        spare_prefault(st);
out:
    if (rc != 0 && rc != ATL_ENOTFOUND)
        st->valid = 0; /* the next run starts from the store again */
    if (st == &local)
        state_clear(&local);
    graph_destroy(&t);
    remap_free(&map);
    free(aff), free(movable);
    store_coords_free(&prev);
    store_coords_free(&c);
    free(dirty), free(offsets);
    return rc;
}

/* ---- the result as JSON -------------------------------------------------------------------- */

/* A JSON string body: quotes, backslashes and control characters escaped. */
static size_t json_escape(const char *in, char *out, size_t cap)
{
    size_t k = 0;
    for (; *in && k + 7 < cap; in++) {
        unsigned char ch = (unsigned char)*in;
        if (ch == '"' || ch == '\\')
            out[k++] = '\\', out[k++] = (char)ch;
        else if (ch < 0x20)
            k += (size_t)snprintf(out + k, cap - k, "\\u%04x", ch);
        else
            out[k++] = (char)ch;
    }
    out[k] = '\0';
    return k;
}

int refresh_result_json(const refresh_result_t *r, unsigned flags, char *buf, size_t cap)
{
    int manifest = (flags & REFRESH_JSON_MANIFEST) != 0;
    char id[64] = "";
    if (!manifest)
        snprintf(id, sizeof(id), "\"snapshot\":\"%s\",", r->id);
    int k = snprintf(
        buf, cap,
        "{\"kind\":\"%s\",%s\"items\":%u,\"incremental\":%s,\"warm\":%s,\"dirty_items\":%u,"
        "\"rows_read\":%u,\"graph_rows\":%u,\"knn_rows\":%u,\"mde_iterations\":%u,"
        "\"layout_movable\":%u,\"max_distance\":%.6g,\"batch_seq\":%" PRIu64
        ",\"events_applied\":%" PRIu64 ",\"stability\":{\"unchanged_knn_items\":%u,"
        "\"median\":%.6f,\"p95\":%.6f},\"seconds\":{\"prefetch\":%.3f,\"verify\":%.3f,"
        "\"read\":%.3f,\"graph\":%.3f,\"knn\":%.3f,\"mde\":%.3f,\"layout\":%.3f",
        r->full ? "rebuild" : "refresh", id, r->items, r->incremental ? "true" : "false",
        r->warm ? "true" : "false", r->dirty, r->rows_read, r->graph_rows, r->knn_rows,
        r->mde_iterations, r->layout_movable, r->max_distance, r->seq, r->events_applied,
        r->stability_items, r->stability_median, r->stability_p95, r->t_prefetch, r->t_verify,
        r->t_read, r->t_graph, r->t_knn, r->t_mde, r->t_layout);
    if (k >= 0 && (size_t)k < cap && !manifest)
        k += snprintf(buf + k, cap - (size_t)k, ",\"publish\":%.3f,\"total\":%.3f", r->t_publish,
                      r->t_total);
    if (k >= 0 && (size_t)k < cap)
        k += snprintf(buf + k, cap - (size_t)k, "}");
    if (k >= 0 && (size_t)k < cap && r->prefetched) {
        const store_prefetch_result_t *p = &r->prefetch;
        char why[160];
        json_escape(p->read_error ? atl_strerror(p->read_error) : "", why, sizeof(why));
        k += snprintf(buf + k, cap - (size_t)k,
                      ",\"prefetch\":{\"file_bytes\":%" PRIu64 ",\"missing_bytes\":%" PRIu64
                      ",\"read_bytes\":%" PRIu64 ",\"skipped\":%s,\"error\":\"%s\"}",
                      p->file_bytes, p->missing_bytes, p->read_bytes, p->skipped ? "true" : "false",
                      why);
    }
    if (k >= 0 && (size_t)k < cap && r->verified) {
        const store_rebuild_result_t *v = &r->verify;
        char diff[2 * sizeof(v->first_diff) + 8];
        json_escape(v->first_diff, diff, sizeof(diff));
        k += snprintf(buf + k, cap - (size_t)k,
                      ",\"verify\":{\"s_entries\":%" PRIu64 ",\"s_diffs\":%" PRIu64
                      ",\"stats_items\":%" PRIu64 ",\"stats_diffs\":%" PRIu64
                      ",\"passes\":%u,\"repaired\":%s,\"first_diff\":\"%s\"}",
                      v->s_entries, v->s_diffs, v->stats_items, v->stats_diffs, v->passes,
                      v->s_diffs + v->stats_diffs && !r->verify_only ? "true" : "false", diff);
    }
    if (k >= 0 && (size_t)k < cap)
        k += snprintf(buf + k, cap - (size_t)k, "}");
    return k >= 0 && (size_t)k < cap ? k : -ENOSPC;
}
