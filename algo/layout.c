/*
 * layout.c: UMAP to 2-D, Procrustes alignment and the export frame. See layout.h and
 * shared/reference/UMAP_SPEC.md (section numbers below refer to it).
 */
#include "algo/layout.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/fastmath.h"
#include "algo/par.h"
#include "algo/rng.h"
#include "algo/sortdef.h"

#define LEAF_SIZE          16
#define SMOOTH_K_TOLERANCE 1e-5
#define MIN_K_DIST_SCALE   1e-3

void layout_opts_default(layout_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->n_neighbors = 150;
    o->min_dist = 0.25;
    o->spread = 1.0;
    o->warm_epochs = 40;
    o->warm_alpha = 0.05;
    o->negative_sample_rate = 5;
    o->seed = 42;
    o->n_threads = 2;
}

/* ---- a, b (§4) ------------------------------------------------------------------------- */

int layout_fit_ab(double min_dist, double spread, double *a_out, double *b_out)
{
    if (!(min_dist >= 0) || !(spread > 0) || min_dist > 3 * spread)
        return -EINVAL;
    double a = 1, b = 1;
    /* Gauss-Newton with step halving on r(x) = 1/(1 + a x^2b) - target(x) */
    for (int it = 0; it < 200; it++) {
        double jtj[3] = {0}, jtr[2] = {0}, cost = 0;
        for (int k = 1; k < 300; k++) { /* x = 0 contributes nothing to the fit */
            double x = 3 * spread * k / 299.0;
            double t = x < min_dist ? 1 : exp(-(x - min_dist) / spread);
            double p = pow(x, 2 * b), f = 1 / (1 + a * p), r = f - t;
            double da = -p * f * f, db = -a * p * 2 * log(x) * f * f;
            jtj[0] += da * da, jtj[1] += da * db, jtj[2] += db * db;
            jtr[0] += da * r, jtr[1] += db * r;
            cost += r * r;
        }
        double det = jtj[0] * jtj[2] - jtj[1] * jtj[1];
        if (!(fabs(det) > 1e-300))
            break;
        double sa = (jtj[2] * jtr[0] - jtj[1] * jtr[1]) / det;
        double sb = (jtj[0] * jtr[1] - jtj[1] * jtr[0]) / det;
        double step = 1;
        for (int h = 0; h < 30; h++, step /= 2) {
            double na = a - step * sa, nb = b - step * sb, nc = 0;
            if (!(na > 0) || !(nb > 0))
                continue;
            for (int k = 1; k < 300; k++) {
                double x = 3 * spread * k / 299.0;
                double t = x < min_dist ? 1 : exp(-(x - min_dist) / spread);
                double r = 1 / (1 + na * pow(x, 2 * nb)) - t;
                nc += r * r;
            }
            if (nc <= cost) {
                a = na, b = nb;
                break;
            }
        }
        if (fabs(step * sa) < 1e-12 && fabs(step * sb) < 1e-12)
            break;
    }
    *a_out = a;
    *b_out = b;
    return 0;
}

/* ---- exact kNN with a k-d tree (§1) ------------------------------------------------------ */

typedef struct kd_node {
    uint32_t lo, hi;     /* range of perm */
    int32_t left, right; /* children, -1 for a leaf */
    uint32_t dim;
    double split;
} kd_node_t;

/* A candidate neighbour: squared distance, index; ordered by both (ties by index). */
typedef struct knn_cand {
    double d;
    uint32_t i;
} knn_cand_t;

static int cand_less(const knn_cand_t *a, const knn_cand_t *b)
{
    return a->d < b->d || (a->d == b->d && a->i < b->i);
}

static int cand_cmp(const void *x, const void *y)
{
    const knn_cand_t *a = x, *b = y;
    return cand_less(a, b) ? -1 : cand_less(b, a);
}

/* c[0 .. k) := the k smallest of c[0 .. n) (in any order) */
ATL_SELECT_DEFINE(cand_select, knn_cand_t, cand_less, cand_cmp)

/* k candidates by (d, i) */
ATL_SHELL_SORT_DEFINE(cand_sort, knn_cand_t, cand_less)

typedef struct kd_tree {
    const double *x;
    uint32_t n, dim;
    uint32_t *perm;
    kd_node_t *nodes;
    uint32_t n_nodes;
    knn_cand_t *keys; /* n: scratch for a node's points (coordinate, index) */
} kd_tree_t;

static int32_t kd_build(kd_tree_t *t, uint32_t lo, uint32_t hi)
{
    int32_t id = (int32_t)t->n_nodes++;
    kd_node_t *nd = &t->nodes[id];
    nd->lo = lo, nd->hi = hi, nd->left = nd->right = -1;
    if (hi - lo <= LEAF_SIZE)
        return id;
    /* split the widest dimension at the median */
    uint32_t best = 0;
    double width = -1;
    for (uint32_t d = 0; d < t->dim; d++) {
        double mn = INFINITY, mx = -INFINITY;
        for (uint32_t i = lo; i < hi; i++) {
            double v = t->x[(size_t)t->perm[i] * t->dim + d];
            mn = fmin(mn, v), mx = fmax(mx, v);
        }
        if (mx - mn > width)
            width = mx - mn, best = d;
    }
    /* the lower half by (coordinate, index), then the median (the upper half's first); a half
     * that becomes a leaf keeps its points in that order, the others are reordered below */
    uint32_t mid = lo + (hi - lo) / 2, nl = mid - lo, nr = hi - mid;
    knn_cand_t *k = t->keys;
    for (uint32_t i = lo; i < hi; i++)
        k[i - lo] = (knn_cand_t){t->x[(size_t)t->perm[i] * t->dim + best], t->perm[i]};
    cand_select(k, hi - lo, nl);
    uint32_t first = nl; /* the upper half's smallest */
    for (uint32_t i = nl + 1; i < hi - lo; i++)
        first = cand_less(&k[i], &k[first]) ? i : first;
    knn_cand_t tmp = k[nl];
    k[nl] = k[first], k[first] = tmp;
    if (nl <= LEAF_SIZE)
        cand_sort(k, nl);
    if (nr <= LEAF_SIZE)
        cand_sort(k + nl, nr);
    for (uint32_t i = lo; i < hi; i++)
        t->perm[i] = k[i - lo].i;
    t->nodes[id].dim = best;
    t->nodes[id].split = t->x[(size_t)t->perm[mid] * t->dim + best];
    int32_t l = kd_build(t, lo, mid), r = kd_build(t, mid, hi);
    t->nodes[id].left = l;
    t->nodes[id].right = r;
    return id;
}

typedef struct knn_job {
    const kd_tree_t *t;
    uint32_t k;
    uint32_t *nbr; /* n x k, ascending distance */
    double *dist;
    const uint32_t *pos;  /* a point's place in the tree's order (the inverse of perm) */
    const uint32_t *rows; /* the queries (NULL: every point) */
    /* bound pass (knn_bound_body): points to test, and the kept points a row may list */
    const knn_cand_t *kept; /* (first coordinate, index), in that order */
    uint32_t n_kept;
    const double *box;   /* the nodes' bounding boxes (kd_boxes) */
    uint8_t *lists_kept; /* out: the query's k nearest hold a kept point */
} knn_job_t;

static double sq_dist(const kd_tree_t *t, const double *q, uint32_t j)
{
    const double *p = t->x + (size_t)j * t->dim;
    double d2 = 0;
    if (t->dim == 3) {
        double u = q[0] - p[0], v = q[1] - p[1], w = q[2] - p[2];
        return u * u + v * v + w * w;
    }
    for (uint32_t c = 0; c < t->dim; c++)
        d2 += (q[c] - p[c]) * (q[c] - p[c]);
    return d2;
}

typedef struct cand_buf {
    knn_cand_t *c;
    size_t n, cap;
} cand_buf_t;

/* every point within squared distance r2 of q under node id, appended to @p b */
static int kd_range(const kd_tree_t *t, int32_t id, const double *q, double r2, cand_buf_t *b)
{
    const kd_node_t *nd = &t->nodes[id];
    if (nd->left < 0) {
        if (b->n + (nd->hi - nd->lo) > b->cap) {
            size_t cap = 2 * b->cap + (nd->hi - nd->lo);
            knn_cand_t *c = realloc(b->c, cap * sizeof(*c));
            if (!c)
                return -ENOMEM;
            b->c = c, b->cap = cap;
        }
        for (uint32_t p = nd->lo; p < nd->hi; p++) {
            uint32_t j = t->perm[p];
            double d2 = sq_dist(t, q, j);
            if (d2 <= r2)
                b->c[b->n++] = (knn_cand_t){d2, j};
        }
        return 0;
    }
    double diff = q[nd->dim] - nd->split;
    int32_t near = diff < 0 ? nd->left : nd->right, far = diff < 0 ? nd->right : nd->left;
    int rc = kd_range(t, near, q, r2, b);
    if (rc == 0 && diff * diff <= r2)
        rc = kd_range(t, far, q, r2, b);
    return rc;
}

/* The smallest subtree around point @p x (down its path from the root) that holds >= @p k points.
 */
static int32_t kd_around(const kd_tree_t *t, const double *x, uint32_t k)
{
    int32_t id = 0;
    for (;;) {
        const kd_node_t *nd = &t->nodes[id];
        if (nd->left < 0)
            return id;
        int32_t c = x[nd->dim] - nd->split < 0 ? nd->left : nd->right;
        if (t->nodes[c].hi - t->nodes[c].lo < k)
            return id;
        id = c;
    }
}

static int cand_reserve(cand_buf_t *b, size_t n)
{
    if (n <= b->cap)
        return 0;
    knn_cand_t *c = realloc(b->c, n * sizeof(*c));
    if (!c)
        return -ENOMEM;
    b->c = c, b->cap = n;
    return 0;
}

/*
 * The k nearest of each query (ties by index, as a max-heap of the k best would keep them),
 * without a heap: a radius r whose ball around q surely holds k points, from the k-th nearest
 * of q among k or more distinct points near it (the points of the smallest subtree around q
 * that holds >= k, and the previous query's k nearest that are not among them: queries run in
 * k-d tree order, so the previous one is mostly close; the data's density varies by orders of
 * magnitude, so either set alone often gave a loose bound); a range query collects every point
 * within r (the true k nearest are among them); a quickselect of the k smallest and a sort.
 */
static int knn_body(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)tid;
    knn_job_t *j = ud;
    const kd_tree_t *t = j->t;
    uint32_t k = j->k;
    cand_buf_t b = {NULL, 0, 0};
    int rc = cand_reserve(&b, 4 * (size_t)k + LEAF_SIZE);
    for (size_t at = begin; at < end && rc == 0; at++) {
        size_t q = j->rows ? j->rows[at] : at,
               prev = j->rows && at > begin ? j->rows[at - 1] : q - 1;
        const double *x = t->x + q * t->dim;
        const kd_node_t *nd = &t->nodes[kd_around(t, x, k)];
        if ((rc = cand_reserve(&b, (size_t)k + (nd->hi - nd->lo))) != 0)
            break;
        b.n = 0;
        for (uint32_t e = nd->lo; e < nd->hi; e++)
            b.c[b.n] = (knn_cand_t){sq_dist(t, x, t->perm[e]), t->perm[e]}, b.n++;
        for (uint32_t c = 0; at > begin && c < k; c++) {
            uint32_t p = j->nbr[prev * k + c];
            if (j->pos[p] < nd->lo || j->pos[p] >= nd->hi) /* else counted already */
                b.c[b.n++] = (knn_cand_t){sq_dist(t, x, p), p};
        }
        cand_select(b.c, b.n, k);
        double r2 = 0;
        for (uint32_t c = 0; c < k; c++)
            r2 = b.c[c].d > r2 ? b.c[c].d : r2;
        b.n = 0;
        if ((rc = kd_range(t, 0, x, r2, &b)) != 0)
            break;
        cand_select(b.c, b.n, k);
        cand_sort(b.c, k);
        for (uint32_t c = 0; c < k; c++) {
            j->dist[q * k + c] = sqrt(b.c[c].d);
            j->nbr[q * k + c] = b.c[c].i;
        }
    }
    free(b.c);
    return rc;
}

/* Points under node @p id that come before (d2, p) in q's order (squared distance, then index),
 * added to *count until it reaches @p k; @return whether it did. */
static int kd_count_before(const kd_tree_t *t, int32_t id, const double *q, double d2, uint32_t p,
                           uint32_t k, uint32_t *count)
{
    const kd_node_t *nd = &t->nodes[id];
    if (nd->left < 0) {
        for (uint32_t e = nd->lo; e < nd->hi; e++) {
            uint32_t j = t->perm[e];
            double dj = sq_dist(t, q, j);
            *count += dj < d2 || (dj == d2 && j < p);
        }
        return *count >= k;
    }
    double diff = q[nd->dim] - nd->split;
    int32_t near = diff < 0 ? nd->left : nd->right, far = diff < 0 ? nd->right : nd->left;
    return kd_count_before(t, near, q, d2, p, k, count) ||
           (diff * diff <= d2 && kd_count_before(t, far, q, d2, p, k, count));
}

/* Each node's bounding box (2 dim doubles a node: the lows, then the highs). Children follow
 * their parent in the nodes' order (kd_build numbers in pre-order): one pass from the last. */
static double *kd_boxes(const kd_tree_t *t)
{
    uint32_t dim = t->dim;
    double *box = malloc(((size_t)t->n_nodes * 2 * dim + 1) * sizeof(double));
    for (uint32_t id = t->n_nodes; box && id-- > 0;) {
        const kd_node_t *nd = &t->nodes[id];
        double *lo = box + (size_t)id * 2 * dim, *hi = lo + dim;
        if (nd->left < 0) {
            for (uint32_t d = 0; d < dim; d++)
                lo[d] = INFINITY, hi[d] = -INFINITY;
            for (uint32_t e = nd->lo; e < nd->hi; e++)
                for (uint32_t d = 0; d < dim; d++) {
                    double v = t->x[(size_t)t->perm[e] * dim + d];
                    lo[d] = fmin(lo[d], v), hi[d] = fmax(hi[d], v);
                }
        } else {
            const double *a = box + (size_t)nd->left * 2 * dim,
                         *b = box + (size_t)nd->right * 2 * dim;
            for (uint32_t d = 0; d < dim; d++)
                lo[d] = fmin(a[d], b[d]), hi[d] = fmax(a[dim + d], b[dim + d]);
        }
    }
    return box;
}

/* the first of the kept points (by first coordinate) at or after @p x0 */
static uint32_t kept_first_at(const knn_cand_t *kept, uint32_t n, double x0)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (kept[mid].d < x0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* the first term of sq_dist(q, kept point) within @p bound */
static int kept_within(const knn_cand_t *kp, const double *q, double bound)
{
    double u = q[0] - kp->d;
    return u * u <= bound;
}

/* kept point @p c in place of (*d2, *p), the first so far in q's order (distance, index) */
static void kept_consider(const kd_tree_t *t, const double *q, uint32_t c, double *d2, uint32_t *p)
{
    double dc = sq_dist(t, q, c);
    if (dc < *d2 || (dc == *d2 && c < *p))
        *d2 = dc, *p = c;
}

/*
 * For each listed point q: whether its k nearest hold one of the kept points. First a bound:
 * the smallest subtree around q holding >= k points lies in its bounding box, so q's k-th
 * squared distance is at most that to the box's farthest corner (a hair more, for rounding); a
 * kept point farther than that cannot be among q's k nearest. Where the nearest kept point is
 * within it, the test is made exact: the kept point p first in q's order (d2, index) is among
 * q's k nearest iff fewer than k points come before it, counted on the tree until k. The rows
 * found are exactly those computing every row would find; each costs a walk down the tree, a
 * look at the kept points near q in the first coordinate and, near one, a count of about k
 * points (no k nearest, no sort).
 */
static int knn_bound_body(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)tid;
    knn_job_t *j = ud;
    const kd_tree_t *t = j->t;
    uint32_t k = j->k, dim = t->dim;
    for (size_t at = begin; at < end; at++) {
        uint32_t q = j->rows[at];
        const double *x = t->x + (size_t)q * dim;
        const double *box = j->box + (size_t)kd_around(t, x, k) * 2 * dim;
        double r2 = 0;
        for (uint32_t d = 0; d < dim; d++) {
            double a = x[d] - box[d], b = box[dim + d] - x[d], far = a > b ? a : b;
            r2 += far * far;
        }
        double bound = r2 * (1 + 1e-9), d2 = INFINITY; /* the first kept point in q's order */
        uint32_t p = UINT32_MAX, count = 0, mid = kept_first_at(j->kept, j->n_kept, x[0]);
        /* only the kept points whose first coordinate alone is within the bound: a sum of
         * squares is never below its first term, rounded or not, so no other passes the test
         * below; sorted by that coordinate, they are a run around q's */
        for (uint32_t c = mid; c-- > 0 && kept_within(j->kept + c, x, bound);)
            kept_consider(t, x, j->kept[c].i, &d2, &p);
        for (uint32_t c = mid; c < j->n_kept && kept_within(j->kept + c, x, bound); c++)
            kept_consider(t, x, j->kept[c].i, &d2, &p);
        j->lists_kept[q] = (uint8_t)(d2 <= bound && !kd_count_before(t, 0, x, d2, p, k, &count));
    }
    return 0;
}

/* The k nearest of the points @p rows (NULL: every point) on @p t, a k-d tree whose order is
 * the identity (see kd_order: layout_umap renumbers the points in the order of the tree it
 * built, so t->perm is its own inverse). A row does not depend on which other rows are
 * computed. */
static int exact_knn(const kd_tree_t *t, uint32_t k, const uint32_t *rows, uint32_t n_rows,
                     uint32_t *nbr, double *dist)
{
    knn_job_t j = {t, k, nbr, dist, t->perm, rows, NULL, 0, NULL, NULL};
    return par_for(rows ? n_rows : t->n, 256, 2, knn_body, &j);
}

/* The listed points not yet computed (@p done), appended to @p rows; @return how many. */
static uint32_t rows_pending(const uint8_t *want, const uint8_t *done, uint32_t n, uint32_t *rows)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (want[i] && !done[i])
            rows[m++] = i;
    return m;
}

#define PARTIAL_MAX_KEPT_DIV 16 /* more kept points than n / 16: every row is computed */

/*
 * The kNN rows a partial layout reads (fuzzy_graph's @p need): the kept points', and those of
 * every point whose k nearest hold a kept point, found through knn_bound_body. Only edges with
 * a kept end are kept, and a row that holds no kept point has none; a kept point's neighbour
 * whose row lacks it gives a_ji = 0 without its row being computed (sym_rows). The same edges,
 * and the same bits, as computing every row (a row does not depend on the others). *need_out
 * is NULL when the partial set does not pay (too many kept points) or cannot stand in for
 * every row (a needed row of k zero distances would read the mean of all rows): every row is
 * computed then. Points are in the tree's order.
 */
static int partial_knn(const kd_tree_t *t, uint32_t k, const uint8_t *keep, uint32_t *nbr,
                       double *dist, uint8_t **need_out)
{
    uint32_t n = t->n;
    uint32_t n_kept = 0, m;
    for (uint32_t i = 0; i < n; i++)
        n_kept += keep[i] != 0;
    *need_out = NULL;
    if (n_kept > n / PARTIAL_MAX_KEPT_DIV)
        return 0;
    uint8_t *need = calloc((size_t)n + 1, 1), *done = calloc((size_t)n + 1, 1);
    uint8_t *lists = calloc((size_t)n + 1, 1); /* the row lists a kept point */
    uint32_t *rows = malloc(((size_t)n + 1) * sizeof(*rows));
    knn_cand_t *kept = malloc(((size_t)n_kept + 1) * sizeof(*kept));
    int rc = need && done && lists && rows && kept ? 0 : -ENOMEM;
    for (uint32_t i = 0, c = 0; rc == 0 && i < n; i++)
        if (keep[i])
            kept[c++] = (knn_cand_t){t->x[(size_t)i * t->dim], i};
    if (rc == 0)
        qsort(kept, n_kept, sizeof(*kept), cand_cmp);
    /* 1. the kept points */
    if (rc == 0) {
        m = rows_pending(keep, done, n, rows);
        rc = exact_knn(t, k, rows, m, nbr, dist);
        for (uint32_t r = 0; rc == 0 && r < m; r++)
            done[rows[r]] = need[rows[r]] = 1;
    }
    /* 2. the points whose k nearest hold a kept point (knn_bound_body), then their rows */
    if (rc == 0) {
        m = 0;
        for (uint32_t i = 0; i < n; i++)
            if (!done[i])
                rows[m++] = i;
        double *box = kd_boxes(t);
        knn_job_t j = {t, k, nbr, dist, t->perm, rows, kept, n_kept, box, lists};
        rc = box ? par_for(m, 256, 2, knn_bound_body, &j) : -ENOMEM;
        free(box);
    }
    if (rc == 0) {
        m = rows_pending(lists, done, n, rows);
        rc = exact_knn(t, k, rows, m, nbr, dist);
        for (uint32_t r = 0; rc == 0 && r < m; r++) {
            uint32_t i = rows[r];
            done[i] = 1;
            for (uint32_t c = 0; c < k; c++)
                if (keep[nbr[(size_t)i * k + c]])
                    need[i] = 1;
        }
    }
    int every = 0; /* a needed row whose k distances are all 0 reads the mean of every row */
    for (uint32_t i = 0; rc == 0 && i < n; i++)
        every |= need[i] && dist[(size_t)i * k + k - 1] == 0;
    free(done), free(lists), free(rows), free(kept);
    if (rc == 0 && !every)
        *need_out = need;
    else
        free(need);
    return rc;
}

/* ---- fuzzy simplicial set (§2, §3) ------------------------------------------------------- */

/*
 * rho and sigma of one row (distances ascending, column 0 = the point itself). sigma solves
 * psum(sigma) = log2(k) to umap-learn's tolerance, where umap-learn bisects (§2: ~28 sums of k
 * exps a row at full scale) inside the same bracket: each step takes Newton's point (on psum
 * as a function of u = 1/sigma, sum of exp(-r u), d/du = -slope) when it falls strictly inside
 * the bracket, else umap-learn's step (bisect, or double while there is no upper end). The
 * stopping test and the bracket are umap-learn's, so sigma meets the same |psum - log2 k| <
 * 1e-5 in a few sums; only where inside that tolerance it stops differs.
 */
static uint32_t smooth_row(const double *d, uint32_t k, double mean_all, double *rho_out,
                           double *sigma_out)
{
    uint32_t sums = 0;
    double rho = 0, mean_row = 0;
    for (uint32_t c = 0; c < k; c++) {
        mean_row += d[c];
        if (rho == 0 && d[c] > 0)
            rho = d[c];
    }
    mean_row /= k;
    double target = log2((double)k), lo = 0, hi = INFINITY, mid = 1;
    for (int it = 0; it < 64; it++) {
        double slope, psum = fastmath__umap_psum(d, k, rho, mid, &slope);
        sums++;
        if (fabs(psum - target) < SMOOTH_K_TOLERANCE)
            break;
        if (psum > target)
            hi = mid;
        else
            lo = mid;
        /* Newton on psum as a function of 1/sigma: a sum of exponentials, convex, so from
         * below the root (psum > target) it never overshoots (0, NaN or inf if flat) */
        double newton = mid / (1 + mid * (psum - target) / slope);
        if (newton > lo && newton < hi)
            mid = newton;
        else
            mid = isinf(hi) ? mid * 2 : (lo + hi) / 2;
    }
    double floor_ = MIN_K_DIST_SCALE * (rho > 0 ? mean_row : mean_all);
    *rho_out = rho;
    *sigma_out = mid < floor_ ? floor_ : mid;
    return sums;
}

uint32_t layout__smooth_row(const double *d, uint32_t k, double mean_all, double *rho,
                            double *sigma)
{
    return smooth_row(d, k, mean_all, rho, sigma);
}

typedef struct edges {
    uint32_t *head, *tail;
    double *w;
    size_t m;
} edges_t;

static void edges_free(edges_t *e)
{
    free(e->head);
    free(e->tail);
    free(e->w);
}

typedef struct fuzzy_job {
    const uint32_t *nbr;
    const double *dist;
    uint32_t k;
    double mean_all;
    uint32_t *idx;       /* n x (k - 1): a row's neighbours without the point, nearest first */
    double *a;           /* their memberships */
    const uint8_t *need; /* rows to compute (NULL: all) */
    /* the union (sym_rows): */
    const uint8_t *keep; /* only edges with a kept end (NULL: all) */
    size_t chunk;        /* rows a part */
    edges_t *part;       /* per chunk of rows: its edges, in row order */
    double *wmax;        /* per chunk: the largest weight */
} fuzzy_job_t;

/* Rows [begin, end) of A: smooth kNN distances and memberships (rows are independent: the same
 * bits on any thread count). */
static int fuzzy_rows(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)tid;
    const fuzzy_job_t *jb = ud;
    uint32_t k = jb->k, kk = k - 1;
    double w[1024];
    for (size_t i = begin; i < end; i++) {
        if (jb->need && !jb->need[i])
            continue;
        double rho, sigma;
        const double *d = jb->dist + i * k;
        smooth_row(d, k, jb->mean_all, &rho, &sigma);
        fastmath__umap_memberships(d, k, rho, sigma, w);
        uint32_t *idx = jb->idx + i * kk, c = 0;
        double *a = jb->a + i * kk;
        for (uint32_t x = 0; x < k && c < kk; x++) {
            uint32_t j = jb->nbr[i * k + x];
            if (j != i)
                idx[c] = j, a[c] = w[x], c++;
        }
        for (; c < kk; c++) /* the point itself was not in the list: the farthest is dropped */
            idx[c] = (uint32_t)i, a[c] = 0; /* (i, 0): skipped, never found (j != i) */
    }
    return 0;
}

/* P's edges of rows [begin, end) into the chunk's part: (i, j) for each j in i's list, with
 * p = a_ij + a_ji - a_ij a_ji, and (j, i) as well where j's list lacks i (so both directions are
 * stored once); with keep, only edges with a kept end. */
static int sym_rows(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)tid;
    const fuzzy_job_t *jb = ud;
    uint32_t kk = jb->k - 1;
    size_t c = begin / jb->chunk, rows = 0;
    for (size_t i = begin; i < end; i++)
        rows += !jb->need || jb->need[i];
    edges_t e = {malloc(2 * rows * kk * sizeof(uint32_t) + 1),
                 malloc(2 * rows * kk * sizeof(uint32_t) + 1),
                 malloc(2 * rows * kk * sizeof(double) + 1), 0};
    double wmax = 0;
    if (!e.head || !e.tail || !e.w) {
        edges_free(&e);
        return -ENOMEM;
    }
    for (size_t i = begin; i < end; i++) {
        if (jb->need && !jb->need[i])
            continue;
        for (uint32_t x = 0; x < kk; x++) {
            uint32_t j = jb->idx[i * kk + x];
            double aij = jb->a[i * kk + x];
            if (j == i || aij == 0 || (jb->keep && !jb->keep[i] && !jb->keep[j]))
                continue;
            uint32_t at = jb->need && !jb->need[j] /* j's row holds no kept point */
                              ? 0
                              : fastmath__find_u32(jb->idx + (size_t)j * kk, kk, (uint32_t)i);
            double aji = at ? jb->a[(size_t)j * kk + at - 1] : 0;
            double p = aij + aji - aij * aji;
            e.head[e.m] = (uint32_t)i, e.tail[e.m] = j, e.w[e.m] = p, e.m++;
            if (aji == 0) /* j's list lacks i: store the reverse direction here */
                e.head[e.m] = j, e.tail[e.m] = (uint32_t)i, e.w[e.m] = p, e.m++;
            wmax = fmax(wmax, p);
        }
    }
    jb->part[c] = e;
    jb->wmax[c] = wmax;
    return 0;
}

#define FUZZY_CHUNK 256

/*
 * P = A + A^T - A o A^T over the kNN rows, both directions stored, then pruned at
 * w < max(P) / n_epochs. With @p keep, only the edges with a kept end, from the rows they
 * read: the kept points' and the rows that list a kept point (@p need from partial_knn; made
 * here from @p keep it also holds the kept points' neighbours, whose rows add no edge unless
 * they list one) (a partial layout moves a few points: the smoothing of every row was most of
 * its time); max(P)
 * is then that of those rows (1 up to a rounding either way: a row's nearest neighbour has
 * membership 1). Rows stay in distance order: a_ji is found by a vectorised scan of j's row
 * (sorting every row by index for a binary search cost more than all the scans), and the union
 * runs in parallel, each chunk of rows into its own part, joined in row order.
 */
static int fuzzy_graph(const uint32_t *nbr, const double *dist, uint32_t n, uint32_t k,
                       uint32_t n_epochs, const uint8_t *keep, uint8_t *need, edges_t *out)
{
    uint32_t kk = k - 1; /* without the point itself */
    size_t n_parts = ((size_t)n + FUZZY_CHUNK - 1) / FUZZY_CHUNK;
    const uint8_t *given = need; /* from partial_knn: the rows to read (consumed) */
    uint32_t *idx = malloc((size_t)n * kk * sizeof(*idx) + 1);
    double *a = malloc((size_t)n * kk * sizeof(*a) + 1), mean_all = 0;
    edges_t *part = calloc(n_parts + 1, sizeof(*part)), e = {0};
    double *wmax_part = calloc(n_parts + 1, sizeof(double)), wmax = 0;
    int rc = idx && a && part && wmax_part ? 0 : -ENOMEM;
    for (size_t q = 0; rc == 0 && !need && q < (size_t)n * k; q++) /* read only where rho = 0 */
        mean_all += dist[q];
    mean_all /= (double)n * k;
    if (rc == 0 && keep && !need && !(need = calloc((size_t)n + 1, 1)))
        rc = -ENOMEM;
    for (uint32_t i = 0; rc == 0 && keep && !given && i < n; i++)
        for (uint32_t x = 0; x < k; x++) {
            uint32_t j = nbr[(size_t)i * k + x];
            if (keep[i] || keep[j])
                need[i] = need[j] = 1;
        }
    fuzzy_job_t job = {nbr, dist, k, mean_all, idx, a, need, keep, FUZZY_CHUNK, part, wmax_part};
    if (rc == 0)
        rc = par_for(n, FUZZY_CHUNK, 2, fuzzy_rows, &job);
    if (rc == 0)
        rc = par_for(n, FUZZY_CHUNK, 2, sym_rows, &job);
    size_t total = 0;
    for (size_t c = 0; rc == 0 && c < n_parts; c++)
        total += part[c].m, wmax = fmax(wmax, wmax_part[c]);
    if (rc == 0) {
        e = (edges_t){malloc(total * sizeof(uint32_t) + 1), malloc(total * sizeof(uint32_t) + 1),
                      malloc(total * sizeof(double) + 1), 0};
        rc = e.head && e.tail && e.w ? 0 : -ENOMEM;
    }
    for (size_t c = 0; rc == 0 && c < n_parts; c++) /* join, pruned */
        for (size_t q = 0; q < part[c].m; q++)
            if (!(part[c].w[q] < wmax / n_epochs))
                e.head[e.m] = part[c].head[q], e.tail[e.m] = part[c].tail[q],
                e.w[e.m] = part[c].w[q], e.m++;
    for (size_t c = 0; part && c < n_parts; c++)
        edges_free(&part[c]);
    free(part), free(wmax_part), free(idx), free(a), free(need);
    if (rc != 0)
        edges_free(&e);
    else
        *out = e;
    return rc;
}

/* ---- initialisation (§5, §9) ------------------------------------------------------------- */

/* Top two principal axes of x by power iteration with deflation, projected and rescaled per
 * column to [0, 10] (the rescale umap-learn applies to every cold init). */
static void init_pca(const double *x, uint32_t n, uint32_t dim, double *y)
{
    double mean[64] = {0}, cov[64 * 64] = {0}, axis[2][64];
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t c = 0; c < dim; c++)
            mean[c] += x[(size_t)i * dim + c] / n;
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t r = 0; r < dim; r++)
            for (uint32_t c = 0; c < dim; c++)
                cov[r * dim + c] +=
                    (x[(size_t)i * dim + r] - mean[r]) * (x[(size_t)i * dim + c] - mean[c]);
    for (int ax = 0; ax < 2; ax++) {
        double v[64];
        for (uint32_t c = 0; c < dim; c++)
            v[c] = 1.0 / (c + 1 + ax); /* deterministic, not orthogonal to any axis */
        for (int it = 0; it < 500; it++) {
            double nv[64] = {0}, norm = 0;
            for (uint32_t r = 0; r < dim; r++)
                for (uint32_t c = 0; c < dim; c++)
                    nv[r] += cov[r * dim + c] * v[c];
            if (ax == 1) { /* deflate the first axis */
                double p = 0;
                for (uint32_t c = 0; c < dim; c++)
                    p += nv[c] * axis[0][c];
                for (uint32_t c = 0; c < dim; c++)
                    nv[c] -= p * axis[0][c];
            }
            for (uint32_t c = 0; c < dim; c++)
                norm += nv[c] * nv[c];
            norm = sqrt(norm);
            if (!(norm > 0))
                break;
            for (uint32_t c = 0; c < dim; c++)
                v[c] = nv[c] / norm;
        }
        memcpy(axis[ax], v, sizeof(v));
    }
    for (int ax = 0; ax < 2; ax++) {
        double mn = INFINITY, mx = -INFINITY;
        for (uint32_t i = 0; i < n; i++) {
            double p = 0;
            for (uint32_t c = 0; c < dim; c++)
                p += (x[(size_t)i * dim + c] - mean[c]) * axis[ax][c];
            y[(size_t)i * 2 + ax] = p;
            mn = fmin(mn, p), mx = fmax(mx, p);
        }
        for (uint32_t i = 0; i < n; i++)
            y[(size_t)i * 2 + ax] = mx > mn ? 10 * (y[(size_t)i * 2 + ax] - mn) / (mx - mn) : 5;
    }
}

/* Unplaced points at the weighted mean of their placed neighbours (a few rounds, so chains of
 * new points get placed too); points with none at the centroid of the placed ones plus noise. */
static int init_warm(const edges_t *e, uint32_t n, const uint8_t *placed, double *y, rng_t *r)
{
    uint8_t *have = malloc((size_t)n + 1);
    double *acc = malloc(((size_t)n * 3 + 1) * sizeof(double)), cx = 0, cy = 0;
    uint32_t n_placed = 0;
    if (!have || !acc) {
        free(have), free(acc);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        have[i] = placed[i] != 0;
        if (have[i])
            cx += y[2 * (size_t)i], cy += y[2 * (size_t)i + 1], n_placed++;
    }
    for (int round = 0; round < 4; round++) {
        memset(acc, 0, (size_t)n * 3 * sizeof(double));
        for (size_t q = 0; q < e->m; q++) {
            uint32_t i = e->head[q], j = e->tail[q];
            if (have[i] || !have[j])
                continue;
            acc[3 * (size_t)i] += e->w[q] * y[2 * (size_t)j];
            acc[3 * (size_t)i + 1] += e->w[q] * y[2 * (size_t)j + 1];
            acc[3 * (size_t)i + 2] += e->w[q];
        }
        for (uint32_t i = 0; i < n; i++) {
            if (have[i] || acc[3 * (size_t)i + 2] == 0)
                continue;
            y[2 * (size_t)i] = acc[3 * (size_t)i] / acc[3 * (size_t)i + 2];
            y[2 * (size_t)i + 1] = acc[3 * (size_t)i + 1] / acc[3 * (size_t)i + 2];
        }
        for (uint32_t i = 0; i < n; i++)
            have[i] |= acc[3 * (size_t)i + 2] > 0;
    }
    for (uint32_t i = 0; i < n; i++)
        if (!have[i]) {
            y[2 * (size_t)i] = (n_placed ? cx / n_placed : 5) + rng_normal(r);
            y[2 * (size_t)i + 1] = (n_placed ? cy / n_placed : 5) + rng_normal(r);
        }
    free(have), free(acc);
    return 0;
}

/* ---- SGD (§6) ---------------------------------------------------------------------------- */

/*
 * Deterministic parallel SGD. The points are numbered in k-d tree order (layout_umap), so that
 * an edge's ends and a part's points sit close in memory. The edges (in head order) are cut
 * into one contiguous part per thread at head boundaries, and the points into the matching
 * ranges: part t owns the points whose index falls in its range. Within an epoch, part t reads
 * and writes its own points live, reads every other point from a snapshot taken at the start
 * of the epoch, and adds its moves of other parts' points (attraction of a tail) into a buffer
 * of its own, applied after the epoch in part order. Each part draws its negative samples from
 * its own RNG stream. Nothing then depends on which thread ran a part or when, so a seed and a
 * thread count reproduce a run bit for bit; with one thread every point is read live. Within a
 * part the visits run two side by side (fastmath.h, fastmath__umap_edges), each pair from the
 * positions at its start.
 *
 * The schedule is a calendar: each part keeps, for every epoch, the list of its edges due in
 * it; an edge's record (16 bytes) is in exactly one list, that of its next sample, and moves
 * on to the list of the one after when visited. An epoch so reads only its due edges, in one
 * sequential pass, instead of scanning every edge's clock (at full scale ~90% of the edges are
 * not due in a given epoch: the scan was a quarter of the layout's time, and each due edge a
 * cache miss). A list is in the order its edges arrived (the first in head order): fixed by
 * the input, the seed and the part count. Positions are single precision during the SGD, as
 * umap-learn's float32 embedding (half the memory traffic of the random reads).
 */
#define SGD_BLOCK 1022 /* records per list block (16 KiB with the header) */

/* An edge in the calendar: sampled for the k-th time (k >= 1) in epoch ceil(k eps); eps is
 * wmax / w in single precision, so that k eps is exact in double. */
typedef fastmath_umap_rec_t sgd_rec_t;

typedef struct sgd_block {
    struct sgd_block *next;
    uint32_t len, pad_;
    sgd_rec_t r[SGD_BLOCK];
} sgd_block_t;

typedef struct sgd_list {
    sgd_block_t *first, *last;
} sgd_list_t;

typedef struct sgd_cal {
    sgd_list_t *due;    /* n_epochs lists */
    sgd_block_t *spare; /* emptied blocks, reused before malloc */
    uint64_t samples, negatives;
} sgd_cal_t;

typedef struct sgd {
    uint32_t n, parts, n_epochs;
    float *y, *snap, *delta; /* delta: parts x 2n */
    size_t *cut;             /* parts + 1 boundaries in the head-ordered edges */
    uint32_t *own;           /* parts + 1 boundaries of owned points */
    rng_t *rng;              /* one per part */
    sgd_cal_t *cal;          /* one per part */
    double a, b, alpha;
    uint32_t ep, neg_rate;
    const uint8_t *movable;
} sgd_t;

/* The smallest epoch e with e >= t, for t > 0 (an edge whose clock reads t is due in e). */
static inline uint32_t due_epoch(double t)
{
    if (!(t < (double)UINT32_MAX))
        return UINT32_MAX;
    uint32_t c = (uint32_t)t; /* truncation, then up unless t was whole */
    return c + ((double)c < t);
}

uint32_t layout__sample_epoch(float eps, uint32_t k)
{
    return due_epoch((double)k * (double)eps);
}

/* The negatives of the k-th sample of an edge, which falls in epoch e (truncation is floor
 * here: the quotients are positive). */
static inline uint32_t sample_negatives(float eps, uint32_t k, uint32_t e, uint32_t neg_rate)
{
    double r = (double)neg_rate, q = (double)eps;
    uint32_t f = (uint32_t)((double)e * r / q);
    if (k == 1)
        return f - 1;
    return f - (uint32_t)((double)due_epoch((double)(k - 1) * q) * r / q);
}

uint32_t layout__sample_negatives(float eps, uint32_t k, uint32_t neg_rate)
{
    return sample_negatives(eps, k, layout__sample_epoch(eps, k), neg_rate);
}

static inline int list_push(sgd_cal_t *c, sgd_list_t *l, const sgd_rec_t *rec)
{
    sgd_block_t *b = l->last;
    if (!b || b->len == SGD_BLOCK) {
        sgd_block_t *nb = c->spare;
        if (nb)
            c->spare = nb->next;
        else if (!(nb = malloc(sizeof(*nb))))
            return -ENOMEM;
        nb->next = NULL, nb->len = 0;
        if (b)
            b->next = nb;
        else
            l->first = nb;
        l->last = b = nb;
    }
    b->r[b->len++] = *rec;
    return 0;
}

static int sgd_part(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)tid;
    sgd_t *s = ud;
    for (size_t t = begin; t < end; t++) {
        uint32_t n = s->n, ep = s->ep, ne = s->n_epochs, rate = s->neg_rate;
        fastmath_umap_t u = {s->y,
                             s->parts > 1 ? s->snap : s->y,
                             s->delta + t * 2 * (size_t)n,
                             s->own[t],
                             s->own[t + 1],
                             n,
                             (float)s->a,
                             (float)s->b,
                             (float)s->alpha};
        sgd_cal_t *c = &s->cal[t];
        sgd_list_t *l = &c->due[ep];
        rng_t rl = s->rng[t]; /* a local copy: the parts' states share a cache line */
        int rc = 0;
        uint64_t samples = 0, negatives = 0;
        uint16_t neg[SGD_BLOCK];
        while (l->first && rc == 0) {
            sgd_block_t *b = l->first;
            uint32_t len = b->len;
            /* each record's negatives now, and on to the list of its next sample (the block
             * stays as it is until the kernel has read it) */
            for (uint32_t i = 0; i < len && rc == 0; i++) {
                sgd_rec_t rec = b->r[i];
                uint32_t m = sample_negatives(rec.eps, rec.k, ep, rate);
                neg[i] = m < 65535 ? (uint16_t)m : 65535; /* <= 2 rate + 1 for eps >= 1 */
                negatives += !s->movable || s->movable[rec.head] ? neg[i] : 0;
                rec.k++;
                uint32_t d = due_epoch((double)rec.k * (double)rec.eps); /* > ep: eps >= 1 */
                if (d < ne)
                    rc = list_push(c, &c->due[d], &rec);
            }
            /* the attractions and negatives; a fixed y_j draws none (its clock still
             * advances) */
            if (rc == 0)
                fastmath__umap_edges(&u, &rl, b->r, neg, len, s->movable);
            samples += len;
            l->first = b->next;
            b->next = c->spare, c->spare = b;
        }
        if (!l->first)
            l->last = NULL;
        s->rng[t] = rl;
        c->samples += samples, c->negatives += negatives;
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void blocks_free(sgd_block_t *b)
{
    while (b) {
        sgd_block_t *nx = b->next;
        free(b);
        b = nx;
    }
}

static void sgd_free(sgd_t *s)
{
    for (uint32_t t = 0; s->cal && t < s->parts; t++) {
        for (uint32_t e = 0; s->cal[t].due && e < s->n_epochs; e++)
            blocks_free(s->cal[t].due[e].first);
        blocks_free(s->cal[t].spare);
        free(s->cal[t].due);
    }
    free(s->cal);
    free(s->cut), free(s->own), free(s->rng), free(s->snap), free(s->delta);
}

/*
 * The scheduled edges in head order (stable), only those with a moving end if @p movable is
 * set, with their periods (UMAP_SPEC §6: an edge of weight w is sampled every wmax / w epochs,
 * its negatives neg_rate times as often), into *out (m records).
 */
static int sgd_edges(const edges_t *e, uint32_t n, const uint8_t *movable, sgd_rec_t **out,
                     size_t *m_out)
{
    size_t *cnt = calloc((size_t)n + 1, sizeof(*cnt)), m = 0;
    if (!cnt)
        return -ENOMEM;
    for (size_t q = 0; q < e->m; q++)
        if (!movable || movable[e->head[q]] || movable[e->tail[q]])
            cnt[e->head[q] + 1]++, m++;
    sgd_rec_t *rec = malloc((m + 1) * sizeof(*rec));
    if (!rec) {
        free(cnt);
        return -ENOMEM;
    }
    double wmax = 0;
    for (size_t q = 0; q < e->m; q++)
        wmax = fmax(wmax, e->w[q]);
    for (uint32_t i = 0; i < n; i++)
        cnt[i + 1] += cnt[i];
    for (size_t q = 0; q < e->m; q++) {
        if (movable && !movable[e->head[q]] && !movable[e->tail[q]])
            continue;
        size_t x = cnt[e->head[q]]++;
        float eps = (float)(wmax / e->w[q]);
        rec[x] = (sgd_rec_t){e->head[q], e->tail[q], eps < 1 ? 1 : eps, 1};
    }
    free(cnt);
    *out = rec, *m_out = m;
    return 0;
}

/* Each part's calendar: its edges in the lists of their first samples, in head order. */
static int sgd_calendar(sgd_t *s, const sgd_rec_t *rec)
{
    if (!(s->cal = calloc(s->parts, sizeof(*s->cal))))
        return -ENOMEM;
    for (uint32_t t = 0; t < s->parts; t++) {
        sgd_cal_t *c = &s->cal[t];
        if (!(c->due = calloc((size_t)s->n_epochs + 1, sizeof(*c->due))))
            return -ENOMEM;
        for (size_t q = s->cut[t]; q < s->cut[t + 1]; q++) {
            uint32_t d = layout__sample_epoch(rec[q].eps, 1);
            int rc = d < s->n_epochs ? list_push(c, &c->due[d], &rec[q]) : 0;
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

static int optimize(const edges_t *e, uint32_t n, double *y, double a, double b, uint32_t n_epochs,
                    double alpha0, uint32_t neg_rate, rng_t *r, const layout_opts_t *o,
                    const uint8_t *movable, layout_result_t *res)
{
    unsigned parts = o->n_threads < 1 ? 1 : (o->n_threads > 64 ? 64 : o->n_threads);
    sgd_t s = {
        .n = n, .a = a, .b = b, .neg_rate = neg_rate, .movable = movable, .n_epochs = n_epochs};
    sgd_rec_t *rec = NULL;
    size_t m = 0;
    int rc = sgd_edges(e, n, movable, &rec, &m);
    if (rc != 0)
        goto out;
    if (m < 2 * (size_t)parts)
        parts = 1;
    s.parts = parts;
    s.y = malloc(2 * (size_t)n * sizeof(float));
    s.cut = malloc((parts + 1) * sizeof(*s.cut));
    s.own = malloc((parts + 1) * sizeof(*s.own));
    s.rng = malloc(parts * sizeof(*s.rng));
    s.snap = parts > 1 ? malloc(2 * (size_t)n * sizeof(float)) : NULL;
    s.delta = parts > 1 ? calloc(2 * (size_t)n * parts, sizeof(float)) : NULL;
    if (!s.y || !s.cut || !s.own || !s.rng || (parts > 1 && (!s.snap || !s.delta))) {
        rc = -ENOMEM;
        goto out;
    }
    /* parts of about equal work (an edge is visited 1 / eps times per epoch), cut where the
     * head changes; part t owns the points from its first head up to the next part's first
     * head */
    double total = 0, acc = 0;
    for (size_t q = 0; q < m; q++)
        total += 1 / (double)rec[q].eps;
    s.cut[0] = 0, s.own[0] = 0;
    size_t c = 0;
    for (unsigned t = 1; t < parts; t++) {
        while (c < m && acc < total * t / parts)
            acc += 1 / (double)rec[c++].eps;
        while (c > s.cut[t - 1] && c < m && rec[c].head == rec[c - 1].head)
            acc += 1 / (double)rec[c++].eps;
        s.cut[t] = c;
        s.own[t] = c < m ? rec[c].head : n;
        if (s.own[t] < s.own[t - 1])
            s.own[t] = s.own[t - 1];
    }
    s.cut[parts] = m, s.own[parts] = n;
    rc = sgd_calendar(&s, rec);
    free(rec);
    rec = NULL;
    if (rc != 0)
        goto out;
    for (size_t q = 0; q < 2 * (size_t)n; q++)
        s.y[q] = (float)y[q];
    s.rng[0] = *r; /* one part: the serial stream */
    for (unsigned t = 1; t < parts; t++)
        rng_init(&s.rng[t], rng_next(r) ^ t);
    s.alpha = alpha0;
    par_pool_t *pool = NULL;
    if (parts > 1 && (rc = par_pool_new(parts, &pool)) != 0)
        goto out;
    for (uint32_t ep = 0; ep < n_epochs && rc == 0; ep++) {
        s.ep = ep;
        if (parts > 1)
            memcpy(s.snap, s.y, 2 * (size_t)n * sizeof(float));
        if ((rc = par_pool_for(pool, parts, 1, sgd_part, &s)) != 0)
            break;
        for (unsigned t = 0; parts > 1 && t < parts; t++) {
            float *dl = s.delta + t * 2 * (size_t)n;
            for (size_t k = 0; k < 2 * (size_t)n; k++)
                s.y[k] += dl[k];
            memset(dl, 0, 2 * (size_t)n * sizeof(float));
        }
        s.alpha = alpha0 * (1 - (double)ep / n_epochs);
        if (o->progress && o->progress(o->progress_ud, "layout", (double)(ep + 1) / n_epochs))
            rc = ATL_ECANCELED;
    }
    *r = s.rng[0];
    par_pool_free(pool);
    /* back to double; a point that may not move keeps its bits */
    for (uint32_t i = 0; rc == 0 && i < n; i++)
        if (!movable || movable[i])
            y[2 * (size_t)i] = s.y[2 * (size_t)i], y[2 * (size_t)i + 1] = s.y[2 * (size_t)i + 1];
    for (uint32_t t = 0; rc == 0 && res && t < parts; t++)
        res->samples += s.cal[t].samples, res->negatives += s.cal[t].negatives;
out:
    free(rec);
    free(s.y);
    sgd_free(&s);
    return rc;
}

/* ---- entry points ------------------------------------------------------------------------ */

/* The points in k-d tree order (leaves left to right): near points get near indices; the
 * tree's nodes (*nodes_out) then describe the renumbered points with the identity order. */
static int kd_order(const double *x, uint32_t n, uint32_t dim, uint32_t *perm,
                    kd_node_t **nodes_out, uint32_t *n_nodes)
{
    kd_tree_t t = {x,
                   n,
                   dim,
                   perm,
                   malloc((2 * (size_t)n / LEAF_SIZE + 4) * 2 * sizeof(kd_node_t)),
                   0,
                   malloc(((size_t)n + 1) * sizeof(knn_cand_t))};
    if (t.nodes && t.keys) {
        for (uint32_t i = 0; i < n; i++)
            perm[i] = i;
        kd_build(&t, 0, n);
    }
    int rc = t.nodes && t.keys ? 0 : -ENOMEM;
    free(t.keys);
    if (rc != 0)
        free(t.nodes), t.nodes = NULL;
    *nodes_out = t.nodes, *n_nodes = t.n_nodes;
    return rc;
}

int layout__kd_order(const double *x, uint32_t n, uint32_t dim, uint32_t *perm, double *splits,
                     uint32_t *n_splits)
{
    kd_node_t *nodes;
    int rc = kd_order(x, n, dim, perm, &nodes, n_splits);
    for (uint32_t id = 0; rc == 0 && id < *n_splits; id++)
        splits[id] = nodes[id].left < 0 ? -(double)INFINITY : nodes[id].split;
    free(nodes);
    return rc;
}

int layout_umap(const double *x, uint32_t n, uint32_t dim, const layout_opts_t *o, double *y,
                const uint8_t *placed, layout_result_t *res)
{
    if (n < 2 || dim == 0 || dim > 64 || o->n_neighbors < 2 || o->n_neighbors > 1024 ||
        o->negative_sample_rate == 0 || o->negative_sample_rate > 10000)
        return -EINVAL;
    for (size_t q = 0; q < (size_t)n * dim; q++)
        if (!isfinite(x[q]))
            return -EINVAL;
    double a, b;
    int rc = layout_fit_ab(o->min_dist, o->spread, &a, &b);
    if (rc != 0)
        return rc;
    uint32_t k = o->n_neighbors < n ? o->n_neighbors : n;
    uint32_t cold_epochs = o->n_epochs ? o->n_epochs : (n <= 10000 ? 500 : 200);
    uint32_t epochs = placed ? o->warm_epochs : cold_epochs;
    const uint8_t *movable = placed ? o->movable : NULL;
    /* everything below runs on the points renumbered in k-d tree order (xp, yp, pp, mp):
     * an edge's ends are then mostly close in memory, and so are a part's points */
    uint32_t *perm = malloc(((size_t)n + 1) * sizeof(*perm));
    double *xp = malloc(((size_t)n * dim + 1) * sizeof(*xp));
    double *yp = malloc(((size_t)n * 2 + 1) * sizeof(*yp));
    uint8_t *pp = malloc(3 * (size_t)n + 1), *mp = pp + 2 * (size_t)n; /* placed, kept, movable */
    uint32_t *nbr = malloc((size_t)n * k * sizeof(*nbr));
    uint32_t *ident = malloc(((size_t)n + 1) * sizeof(*ident)); /* the renumbered tree's order */
    double *dist = malloc((size_t)n * k * sizeof(*dist));
    edges_t e = {0};
    kd_node_t *nodes = NULL;
    uint32_t n_nodes = 0;
    rng_t r;
    rng_init(&r, o->seed ^ 0x1a70u);
    if (!perm || !xp || !yp || !pp || !nbr || !ident || !dist) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = kd_order(x, n, dim, perm, &nodes, &n_nodes)) != 0)
        goto out;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(xp + (size_t)i * dim, x + (size_t)perm[i] * dim, dim * sizeof(double));
        if (placed)
            yp[2 * (size_t)i] = y[2 * (size_t)perm[i]],
                   yp[2 * (size_t)i + 1] = y[2 * (size_t)perm[i] + 1], pp[i] = placed[perm[i]];
        mp[i] = movable ? movable[perm[i]] : 1;
    }
    /* a partial layout needs only the edges of the points that move or get placed */
    for (uint32_t i = 0; movable && i < n; i++)
        pp[n + i] = mp[i] || !pp[i];
    for (uint32_t i = 0; i < n; i++)
        ident[i] = i;
    kd_tree_t tree = {xp, n, dim, ident, nodes, n_nodes, NULL};
    uint8_t *need = NULL; /* a partial layout reads only some rows (partial_knn) */
    if (movable && !o->knn_every_row && (rc = partial_knn(&tree, k, pp + n, nbr, dist, &need)) != 0)
        goto out;
    if ((!need && (rc = exact_knn(&tree, k, NULL, 0, nbr, dist)) != 0) ||
        (rc = fuzzy_graph(nbr, dist, n, k, epochs ? epochs : 1, movable ? pp + n : NULL, need,
                          &e)) != 0)
        goto out;
    free(nbr), free(dist), free(nodes), free(ident);
    nbr = NULL, dist = NULL, nodes = NULL, ident = NULL;
    if (placed && (rc = init_warm(&e, n, pp, yp, &r)) != 0)
        goto out;
    if (!placed)
        init_pca(xp, n, dim, yp);
    layout_result_t rs = {a, b, e.m, epochs, 0, 0};
    rc = optimize(&e, n, yp, a, b, epochs, placed ? o->warm_alpha : 1.0, o->negative_sample_rate,
                  &r, o, movable ? mp : NULL, &rs);
    if (rc != 0)
        goto out;
    for (uint32_t i = 0; i < n; i++)
        y[2 * (size_t)perm[i]] = yp[2 * (size_t)i],
              y[2 * (size_t)perm[i] + 1] = yp[2 * (size_t)i + 1];
    if (res)
        *res = rs;
out:
    free(perm), free(xp), free(yp), free(pp);
    free(nbr);
    free(ident);
    free(dist);
    free(nodes);
    edges_free(&e);
    return rc;
}

int layout_align(double *y, const double *prev, uint32_t n, const uint8_t *mask)
{
    double cy[2] = {0}, cp[2] = {0}, m00 = 0, m01 = 0, m10 = 0, m11 = 0;
    uint32_t c = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!mask || mask[i]) {
            cy[0] += y[2 * (size_t)i], cy[1] += y[2 * (size_t)i + 1];
            cp[0] += prev[2 * (size_t)i], cp[1] += prev[2 * (size_t)i + 1];
            c++;
        }
    if (c < 2)
        return -EINVAL;
    for (int d = 0; d < 2; d++)
        cy[d] /= c, cp[d] /= c;
    for (uint32_t i = 0; i < n; i++)
        if (!mask || mask[i]) {
            double u = y[2 * (size_t)i] - cy[0], v = y[2 * (size_t)i + 1] - cy[1];
            double p = prev[2 * (size_t)i] - cp[0], q = prev[2 * (size_t)i + 1] - cp[1];
            m00 += u * p, m01 += u * q, m10 += v * p, m11 += v * q;
        }
    /* maximise tr(R M), M = sum y p^T: best rotation, and best rotation after the reflection
     * (u, v) -> (u, -v); closed form for 2x2 */
    double rot = hypot(m00 + m11, m01 - m10), ref = hypot(m00 - m11, m01 + m10);
    int reflect = ref > rot;
    double th = reflect ? atan2(m01 + m10, m00 - m11) : atan2(m01 - m10, m00 + m11);
    double cs = cos(th), sn = sin(th);
    for (uint32_t i = 0; i < n; i++) {
        double u = y[2 * (size_t)i] - cy[0], v = y[2 * (size_t)i + 1] - cy[1];
        if (reflect)
            v = -v;
        y[2 * (size_t)i] = cs * u - sn * v + cp[0];
        y[2 * (size_t)i + 1] = sn * u + cs * v + cp[1];
    }
    return 0;
}
